//! The fleet's ACME state on RGW: conditional writes and the order lease against the real
//! gateway (which reads `If-Match` on PUT without quotes), and two PoPs with pebble taking
//! over the lease a dead PoP left and sharing one certificate through RGW.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use edge::origin::Signer;
use edge::tls::acme::lease::{self, Acquire};
use edge::tls::acme::store::{BUCKET, CertStateStore, OriginStore, Write, keys};

use crate::common::ceph::cluster;
use crate::common::pebble::{
    Pebble, PebbleOptions, acme_section, eventually, handshake, loopback, same_port, start_pop,
};

const ISSUE_LIMIT: Duration = Duration::from_secs(45);

/// A store in `bucket` of the main gateway, as a PoP makes it (created on first use).
fn store(bucket: &str) -> OriginStore {
    let ceph = cluster();
    OriginStore::new(
        &ceph.endpoint.parse().unwrap(),
        bucket,
        "us-east-1",
        Signer::new(&ceph.access_key, &ceph.secret_key, "us-east-1"),
        Duration::from_secs(10),
    )
    .unwrap()
}

fn bytes(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_writes_listing_and_lease_takeover_on_rgw() {
    let bucket = cluster().name("acme-state");
    let s = store(&bucket);
    let key = "leases/cond.example";
    let e1 = s
        .put(key, bytes("one"), Write::IfAbsent)
        .await
        .unwrap()
        .expect("a new key is written");
    assert_eq!(s.put(key, bytes("x"), Write::IfAbsent).await.unwrap(), None);
    let current = s.get(key).await.unwrap().unwrap();
    assert_eq!(
        (current.body, current.etag.clone()),
        (bytes("one"), e1.clone())
    );

    // If-Match on the current version wins (RGW needs the bare ETag), on an old one loses.
    let e2 = s
        .put(key, bytes("two"), Write::IfMatch(e1.clone()))
        .await
        .unwrap()
        .expect("If-Match with the current ETag writes");
    assert_ne!(e1, e2);
    assert_eq!(
        s.put(key, bytes("three"), Write::IfMatch(e1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.put(
            "leases/none.example",
            bytes("x"),
            Write::IfMatch(e2.clone())
        )
        .await
        .unwrap(),
        None,
        "If-Match on a missing key"
    );
    assert_eq!(s.get(key).await.unwrap().unwrap().body, bytes("two"));

    // Sixteen PoPs racing on one version: exactly one wins, and its body is what is stored.
    let s = std::sync::Arc::new(s);
    let mut racers = Vec::new();
    for i in 0..16 {
        let (s, e2) = (s.clone(), e2.clone());
        racers.push(tokio::spawn(async move {
            let body = bytes(&format!("racer {i}"));
            s.put(key, body.clone(), Write::IfMatch(e2))
                .await
                .unwrap()
                .map(|_| body)
        }));
    }
    let mut winners = Vec::new();
    for racer in racers {
        winners.extend(racer.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "one winner of sixteen");
    assert_eq!(s.get(key).await.unwrap().unwrap().body, winners[0]);

    // Listing: only the prefix, in key order whatever the write order.
    for name in ["b", "c", "a"] {
        let written = s
            .put(&format!("certs/{name}.pem"), bytes(name), Write::Always)
            .await
            .unwrap();
        assert!(written.is_some());
    }
    let listed: Vec<String> = s
        .list("certs/")
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect();
    assert_eq!(listed, ["certs/a.pem", "certs/b.pem", "certs/c.pem"]);
    s.delete("certs/a.pem").await.unwrap();
    s.delete("certs/a.pem").await.unwrap();
    assert_eq!(s.get("certs/a.pem").await.unwrap(), None);

    // A PoP died holding a lease; another (a fresh store, as after a restart) takes it over
    // once it has expired, not before.
    let t0 = SystemTime::now();
    let ttl = Duration::from_secs(60);
    let dead = store(&bucket);
    let Acquire::Acquired(_) = lease::acquire(&dead, "img.example", "pop-dead", ttl, t0)
        .await
        .unwrap()
    else {
        panic!("a free lease is taken");
    };
    let fresh = store(&bucket);
    let busy = lease::acquire(&fresh, "img.example", "pop-b", ttl, t0 + ttl / 2)
        .await
        .unwrap();
    assert!(
        matches!(&busy, Acquire::Busy { holder, .. } if holder == "pop-dead"),
        "{busy:?}"
    );
    let taken = lease::acquire(&fresh, "img.example", "pop-b", ttl, t0 + ttl * 2)
        .await
        .unwrap();
    assert!(matches!(taken, Acquire::Acquired(_)), "{taken:?}");
    let busy = lease::acquire(&dead, "img.example", "pop-c", ttl, t0 + ttl * 2)
        .await
        .unwrap();
    assert!(
        matches!(&busy, Acquire::Busy { holder, .. } if holder == "pop-b"),
        "{busy:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_for_the_acme_store_are_a_clear_error() {
    let ceph = cluster();
    let s = OriginStore::new(
        &ceph.endpoint.parse().unwrap(),
        &ceph.name("acme-denied"),
        "us-east-1",
        Signer::new(&ceph.access_key, "not-the-secret", "us-east-1"),
        Duration::from_secs(10),
    )
    .unwrap();
    let e = s.get("certs/a.pem").await.unwrap_err();
    assert!(
        e.to_string().contains("HTTP 403: SignatureDoesNotMatch"),
        "{e}"
    );
    assert!(!e.is_retryable(), "an operator must fix the keys");
}

fn pop_config(pop: &str, acme: &str, domain: &str, bucket: &str) -> String {
    let ceph = cluster();
    format!(
        r#"
[pop]
name = "{pop}"
[listen]
http = "127.0.0.1:0"
https = "127.0.0.1:0"
{acme}
{origin}
[[space]]
name = "shared"
bucket = "{bucket}"
custom_domain = "{domain}"
certificate = "acme"
"#,
        origin = ceph.origin_section(&ceph.endpoint)
    )
}

/// A PoP died holding the order lease of a domain; PoP A takes it over once it expired and
/// orders from pebble, whose validation reaches PoP B; B answers from the state on RGW and
/// both serve the one certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pop_takes_over_a_dead_pops_lease_and_the_fleet_shares_the_certificate() {
    let ceph = cluster();
    let (ip_a, ip_b) = (loopback(0, 17, 1), loopback(0, 17, 2));
    let (http_port, mut http) = same_port(&[ip_a, ip_b]).await;
    let (tls_port, mut https) = same_port(&[ip_a, ip_b]).await;
    let pebble = Pebble::start(PebbleOptions {
        http_port,
        tls_port,
        validity_secs: None,
    })
    .await;
    let domain = "rgw.acme.test";
    pebble.add_a(domain, IpAddr::V4(ip_b)).await;

    let state = store(BUCKET);
    let Acquire::Acquired(_) = lease::acquire(
        &state,
        domain,
        "pop-dead",
        Duration::from_secs(1),
        SystemTime::now(),
    )
    .await
    .unwrap() else {
        panic!("no other test orders {domain}");
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let acme = acme_section(&pebble, "http-01", "store = \"origin\"");
    let bucket = ceph.name("acme-site");
    let (http_b, https_b) = (http.remove(1), https.remove(1));
    let pop_a = start_pop(
        &pop_config("pop-a", &acme, domain, &bucket),
        http.remove(0),
        https.remove(0),
    )
    .await;
    let manager_a = pop_a.acme().unwrap().clone();
    eventually(
        ISSUE_LIMIT,
        "PoP A to take the expired lease and order",
        || {
            let manager = manager_a.clone();
            async move { manager.metrics().orders_started == 1 }
        },
    )
    .await;
    let pop_b = start_pop(
        &pop_config("pop-b", &acme, domain, &bucket),
        http_b,
        https_b,
    )
    .await;
    let manager_b = pop_b.acme().unwrap().clone();

    let root = pebble.root().await;
    let serial = |ip, root: rustls::pki_types::CertificateDer<'static>| async move {
        handshake(SocketAddr::from((ip, tls_port)), domain, &root)
            .await
            .ok()
            .map(|s| s.serial)
    };
    eventually(ISSUE_LIMIT, "both PoPs to serve the certificate", || {
        let root = root.clone();
        async move {
            let a = serial(ip_a, root.clone()).await;
            a.is_some() && a == serial(ip_b, root).await
        }
    })
    .await;
    assert_eq!(manager_a.metrics().orders_succeeded, 1);
    assert_eq!(manager_b.metrics().orders_started, 0, "B never ordered");
    assert_eq!(manager_b.metrics().certificates_loaded, 1, "B read A's");
    assert_eq!(pebble.orders(), 1, "{}", pebble.log_text());
    assert_eq!(pebble.issued(), 1, "{}", pebble.log_text());

    // On RGW: the account and the certificate; the lease released, the answer withdrawn.
    assert!(state.get(&keys::cert(domain)).await.unwrap().is_some());
    assert!(
        state
            .get(&keys::account(&pebble.directory))
            .await
            .unwrap()
            .is_some()
    );
    eventually(Duration::from_secs(5), "the lease to be released", || {
        let state = &state;
        async move { state.get(&keys::lease(domain)).await.unwrap().is_none() }
    })
    .await;
    assert_eq!(state.list(keys::HTTP01).await.unwrap(), []);
    pop_b.stop().await;
    pop_a.stop().await;
}
