//! ACME against a real pebble per test: issuance over HTTP-01 for two custom domains, renewal
//! over TLS-ALPN-01 without a failed handshake, two PoPs sharing one certificate through the
//! origin store, and a failing domain that does not hold back the others.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::common::origin::{Route, ScriptedOrigin};
use crate::common::pebble::{
    Pebble, PebbleOptions, acme_section, eventually, handshake, loopback, same_port, start_pop,
};

const ISSUE_LIMIT: Duration = Duration::from_secs(45);

fn space(name: &str, domain: &str, extra: &str) -> String {
    format!(
        "\n[[space]]\nname = \"{name}\"\ncustom_domain = \"{domain}\"\ncertificate = \"acme\"\n{extra}\n"
    )
}

fn http_origin_pop(pop: &str, origin: &str, acme: &str, spaces: &str) -> String {
    format!(
        r#"
[pop]
name = "{pop}"
[listen]
http = "127.0.0.1:0"
https = "127.0.0.1:0"
[cdn]
domain = "cdn.localhost"
{acme}
[origin]
kind = "http"
url = "{origin}"
timeout = "5s"
{spaces}
"#
    )
}

async fn serial_of(running: &edge::Running, domain: &str) -> Option<String> {
    running
        .acme()
        .unwrap()
        .status()
        .into_iter()
        .find(|d| d.domain == domain)
        .and_then(|d| d.serial)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_issues_certificates_for_two_custom_domains() {
    let ip = loopback(0, 5, 1);
    let (http_port, mut http) = same_port(&[ip]).await;
    let (tls_port, mut https) = same_port(&[ip]).await;
    let pebble = Pebble::start(PebbleOptions {
        http_port,
        tls_port,
        validity_secs: None,
    })
    .await;
    for domain in ["img.acme.test", "docs.acme.test"] {
        pebble.add_a(domain, IpAddr::V4(ip)).await;
    }
    let origin = ScriptedOrigin::start().await;
    origin.route("/hello.txt", Route::ok("hello over pebble TLS"));
    let cache = pebble.dir.path().join("acme-cache");
    let config = http_origin_pop(
        "pop-single",
        &origin.url(),
        &acme_section(
            &pebble,
            "http-01",
            &format!("cache_dir = \"{}\"", cache.display()),
        ),
        &format!(
            "{}{}",
            space("img", "img.acme.test", ""),
            // Plain HTTP is redirected on this one: the challenge path must not be.
            space("docs", "docs.acme.test", "http = \"redirect\"")
        ),
    );
    let running = start_pop(&config, http.remove(0), https.remove(0)).await;

    let manager = running.acme().unwrap().clone();
    eventually(ISSUE_LIMIT, "two certificates", || {
        let manager = manager.clone();
        async move { manager.status().iter().all(|d| d.serial.is_some()) }
    })
    .await;

    let root = pebble.root().await;
    let addr = SocketAddr::from((ip, tls_port));
    for domain in ["img.acme.test", "docs.acme.test"] {
        let served = handshake(addr, domain, &root).await.unwrap();
        assert_eq!(served.dns_names, vec![domain.to_owned()]);
        assert_eq!(served.chain_len, 2, "leaf and pebble's intermediate");
        assert_eq!(Some(served.serial), serial_of(&running, domain).await);
    }

    // A browser-like client trusting only pebble's root fetches through the edge.
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_der(&root).unwrap())
        .resolve("img.acme.test", addr)
        .no_proxy()
        .build()
        .unwrap();
    let response = client
        .get(format!("https://img.acme.test:{tls_port}/hello.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "hello over pebble TLS");

    // The single PoP kept its state in cache_dir.
    assert!(cache.join("certs/img.acme.test.pem").exists());
    assert!(
        std::fs::read_dir(cache.join("accounts"))
            .unwrap()
            .next()
            .is_some()
    );
    assert_eq!(pebble.issued(), 2, "{}", pebble.log_text());
    let metrics = manager.metrics();
    assert_eq!(metrics.orders_succeeded, 2);
    assert_eq!(metrics.domains_without_certificate, 0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn01_renews_without_a_failed_handshake() {
    let ip = loopback(0, 5, 2);
    let (http_port, mut http) = same_port(&[ip]).await;
    let (tls_port, mut https) = same_port(&[ip]).await;
    let pebble = Pebble::start(PebbleOptions {
        http_port,
        tls_port,
        validity_secs: Some(12),
    })
    .await;
    let domain = "renew.acme.test";
    pebble.add_a(domain, IpAddr::V4(ip)).await;
    let cache = pebble.dir.path().join("acme-cache");
    let config = http_origin_pop(
        "pop-renew",
        "http://127.0.0.1:9",
        &acme_section(
            &pebble,
            "tls-alpn-01",
            &format!("cache_dir = \"{}\"", cache.display()),
        ),
        &space("renew", domain, ""),
    );
    let running = start_pop(&config, http.remove(0), https.remove(0)).await;
    let manager = running.acme().unwrap().clone();
    eventually(ISSUE_LIMIT, "the first certificate", || {
        let manager = manager.clone();
        async move { manager.status()[0].serial.is_some() }
    })
    .await;

    // New connections in a loop while the certificate is renewed (at 2/3 of 12 s).
    let root = pebble.root().await;
    let addr = SocketAddr::from((ip, tls_port));
    let first = handshake(addr, domain, &root).await.unwrap().serial;
    let mut handshakes = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let renewed = loop {
        let served = handshake(addr, domain, &root)
            .await
            .unwrap_or_else(|e| panic!("handshake {handshakes} failed during renewal: {e}"));
        handshakes += 1;
        if served.serial != first {
            break served;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no renewal:\n{}",
            pebble.log_text()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(renewed.dns_names, vec![domain.to_owned()]);
    assert!(handshakes > 20, "only {handshakes} handshakes");
    assert!(manager.metrics().orders_succeeded >= 2);
    assert!(pebble.issued() >= 2);
    running.stop().await;
}

const ACCESS: &str = "AKIDFLEET";
const SECRET: &str = "fleet-secret-key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pops_share_one_certificate_through_the_origin_http01() {
    two_pops_share_one_certificate("http-01", loopback(0, 5, 3), loopback(0, 5, 4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pops_share_one_certificate_through_the_origin_tls_alpn01() {
    two_pops_share_one_certificate("tls-alpn-01", loopback(0, 5, 6), loopback(0, 5, 7)).await;
}

/// PoP A holds the lease and orders; the CA's DNS points at PoP B, which answers the challenge
/// from the shared store; both then serve the one certificate.
async fn two_pops_share_one_certificate(challenge: &str, ip_a: Ipv4Addr, ip_b: Ipv4Addr) {
    let (http_port, mut http) = same_port(&[ip_a, ip_b]).await;
    let (tls_port, mut https) = same_port(&[ip_a, ip_b]).await;
    let pebble = Pebble::start(PebbleOptions {
        http_port,
        tls_port,
        validity_secs: None,
    })
    .await;
    let domain = "shared.acme.test";
    // The CA reaches PoP B; PoP A orders.
    pebble.add_a(domain, IpAddr::V4(ip_b)).await;
    let acme = acme_section(&pebble, challenge, "store = \"origin\"");
    let spaces = space("shared", domain, "");

    let config_a = format!(
        r#"
[pop]
name = "pop-a"
[listen]
http = "127.0.0.1:0"
https = "127.0.0.1:0"
{acme}
[origin]
kind = "embedded"
data_dir = "{data}"
[[origin.user]]
id = "fleet"
access_key = "{ACCESS}"
secret_key = "{SECRET}"
{spaces}
"#,
        data = pebble.dir.path().join("origin").display()
    );
    let (http_b, https_b) = (http.remove(1), https.remove(1));
    let pop_a = start_pop(&config_a, http.remove(0), https.remove(0)).await;
    let manager_a = pop_a.acme().unwrap().clone();
    // PoP B's listeners are bound already: the CA's connection waits in its backlog.
    eventually(ISSUE_LIMIT, "PoP A to take the lease and order", || {
        let manager = manager_a.clone();
        async move { manager.metrics().orders_started == 1 }
    })
    .await;

    let config_b = format!(
        r#"
[pop]
name = "pop-b"
[listen]
http = "127.0.0.1:0"
https = "127.0.0.1:0"
{acme}
[origin]
kind = "s3"
endpoint = "http://{origin}"
access_key = "{ACCESS}"
secret_key = "{SECRET}"
{spaces}
"#,
        origin = pop_a.origin_addr.unwrap()
    );
    let pop_b = start_pop(&config_b, http_b, https_b).await;
    let manager_b = pop_b.acme().unwrap().clone();

    let root = pebble.root().await;
    let serials = |ip, root: rustls::pki_types::CertificateDer<'static>| async move {
        handshake(SocketAddr::from((ip, tls_port)), domain, &root)
            .await
            .ok()
            .map(|s| s.serial)
    };
    eventually(ISSUE_LIMIT, "both PoPs to serve the certificate", || {
        let root = root.clone();
        async move {
            let a = serials(ip_a, root.clone()).await;
            let b = serials(ip_b, root).await;
            a.is_some() && a == b
        }
    })
    .await;

    assert_eq!(manager_a.metrics().orders_started, 1);
    assert_eq!(manager_a.metrics().orders_succeeded, 1);
    assert_eq!(manager_b.metrics().orders_started, 0, "B never ordered");
    assert_eq!(manager_b.metrics().certificates_loaded, 1, "B read A's");
    assert_eq!(pebble.orders(), 1, "{}", pebble.log_text());
    assert_eq!(pebble.issued(), 1, "{}", pebble.log_text());
    // In the shared bucket: the account and the certificate; the lease was released and the
    // challenge answer withdrawn.
    use edge::tls::acme::store::{BUCKET, CertStateStore, OriginStore};
    let store = OriginStore::new(
        &format!("http://{}", pop_a.origin_addr.unwrap())
            .parse()
            .unwrap(),
        BUCKET,
        "us-east-1",
        edge::origin::Signer::new(ACCESS, SECRET, "us-east-1"),
        Duration::from_secs(5),
    )
    .unwrap();
    let keys = |prefix: &'static str| {
        let store = &store;
        async move {
            store
                .list(prefix)
                .await
                .unwrap()
                .into_iter()
                .map(|l| l.key)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(keys("certs/").await, [format!("certs/{domain}.pem")]);
    assert_eq!(keys("accounts/").await.len(), 1);
    // (A releases right after storing; B may have read the certificate a moment before.)
    let released = async {
        for _ in 0..50 {
            if keys("leases/").await.is_empty() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(released.await, "the lease was released");
    assert!(keys("challenges/http-01/").await.is_empty());
    assert!(keys("challenges/tls-alpn-01/").await.is_empty());
    pop_b.stop().await;
    pop_a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_domain_backs_off_while_others_are_served_and_new_ones_are_added() {
    let ip = loopback(0, 5, 5);
    let (http_port, mut http) = same_port(&[ip]).await;
    let (tls_port, mut https) = same_port(&[ip]).await;
    let pebble = Pebble::start(PebbleOptions {
        http_port,
        tls_port,
        validity_secs: None,
    })
    .await;
    pebble.add_a("ok.acme.test", IpAddr::V4(ip)).await;
    // Nothing listens there: validation fails.
    pebble
        .add_a("broken.acme.test", IpAddr::V4(loopback(0, 5, 250)))
        .await;
    pebble.add_a("later.acme.test", IpAddr::V4(ip)).await;
    let config = http_origin_pop(
        "pop-fail",
        "http://127.0.0.1:9",
        &acme_section(
            &pebble,
            "http-01",
            &format!(
                "cache_dir = \"{}\"",
                pebble.dir.path().join("acme").display()
            ),
        ),
        &format!(
            "{}{}",
            space("okay", "ok.acme.test", ""),
            space("broken", "broken.acme.test", "")
        ),
    );
    let running = start_pop(&config, http.remove(0), https.remove(0)).await;
    let manager = running.acme().unwrap().clone();
    eventually(ISSUE_LIMIT, "ok served and broken failing twice", || {
        let manager = manager.clone();
        async move {
            let status = manager.status();
            let broken = status.iter().find(|d| d.domain == "broken.acme.test");
            let ok = status.iter().find(|d| d.domain == "ok.acme.test");
            ok.is_some_and(|d| d.serial.is_some()) && broken.is_some_and(|d| d.failures >= 2)
        }
    })
    .await;
    let metrics = manager.metrics();
    assert_eq!(metrics.domains_failing, 1);
    assert_eq!(metrics.domains_without_certificate, 1);
    assert!(metrics.orders_failed >= 2);
    let broken = manager
        .status()
        .into_iter()
        .find(|d| d.domain == "broken.acme.test")
        .unwrap();
    let error = broken.last_error.unwrap();
    assert!(
        error.contains("refused") || error.contains("connect"),
        "{error}"
    );

    let root = pebble.root().await;
    let addr = SocketAddr::from((ip, tls_port));
    handshake(addr, "ok.acme.test", &root).await.unwrap();
    let refused = handshake(addr, "broken.acme.test", &root)
        .await
        .unwrap_err();
    assert!(refused.contains("UnrecognisedName"), "{refused}");

    // Fix DNS: the next retry (backoff at most 4 s) succeeds.
    pebble.add_a("broken.acme.test", IpAddr::V4(ip)).await;
    // A domain added at run time gets its certificate without a restart.
    manager.reconcile(["ok.acme.test", "broken.acme.test", "later.acme.test"]);
    let deadline = tokio::time::Instant::now() + ISSUE_LIMIT;
    // Every domain served, and the failure count settled (it is updated after the serial).
    while !manager.status().iter().all(|d| d.serial.is_some())
        || manager.metrics().domains_failing != 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all served: {:#?}",
            manager.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(manager.metrics().domains_failing, 0);
    handshake(addr, "broken.acme.test", &root).await.unwrap();
    handshake(addr, "later.acme.test", &root).await.unwrap();

    // Removing a domain stops serving it.
    manager.reconcile(["ok.acme.test"]);
    let gone = handshake(addr, "later.acme.test", &root).await.unwrap_err();
    assert!(gone.contains("UnrecognisedName"), "{gone}");
    running.stop().await;
}
