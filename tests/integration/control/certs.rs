//! Certificates uploaded through the admin API: checked on upload, served by every PoP for
//! a space's custom domain from the next handshake, refused while a space uses them.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use super::input::{admin, embedded_pop, s3_pop};
use super::{call, edge_cli};
use crate::common::pebble::handshake;
use crate::common::s3::S3cmd;
use crate::common::start_edge;

/// A self-signed certificate for `names`, valid from `not_before` to `not_after`: (chain
/// PEM, key PEM, DER).
fn certificate(
    names: &[&str],
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> (String, String, rustls::pki_types::CertificateDer<'static>) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params.not_before = not_before;
    params.not_after = not_after;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().clone())
}

/// Uploads `cert` and `key` through the admin API at `admin`.
async fn upload(
    c: &reqwest::Client,
    admin: &str,
    cert: &str,
    key: &str,
) -> (u16, serde_json::Value) {
    let body = json!({"cert": cert, "key": key});
    call(c, admin, Method::POST, "/v1/certificates", Some(body)).await
}

/// Waits until a handshake naming `domain` at `addr` is (or is no longer) answered with the
/// certificate `der`.
async fn until_presented(
    addr: std::net::SocketAddr,
    domain: &str,
    der: &rustls::pki_types::CertificateDer<'static>,
    presented: bool,
) {
    let started = Instant::now();
    while handshake(addr, domain, der).await.is_ok() != presented {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{domain} on {addr}: presented is still {}",
            !presented
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn with_https(config: String) -> String {
    config.replace(
        "admin = \"127.0.0.1:0\"\n",
        "admin = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\n[tls]\nself_signed = true\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_certificate_is_presented_by_every_pop_for_its_custom_domain() {
    let dir = tempfile::tempdir().unwrap();
    let a = start_edge(&with_https(embedded_pop(dir.path()))).await;
    let b = start_edge(&with_https(s3_pop(dir.path(), a.origin_addr.unwrap()))).await;
    let c = reqwest::Client::new();
    let now = time::OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    let domain = "photos.example.com";

    // Refused uploads change nothing.
    let (cert, key, der) = certificate(&[domain], now - day, now + day * 30);
    let (_, other_key, _) = certificate(&[domain], now - day, now + day * 30);
    let (old_cert, old_key, _) = certificate(&[domain], now - day * 60, now - day);
    for (body, field) in [
        (json!({"cert": cert, "key": other_key}), "key"),
        (json!({"cert": old_cert, "key": old_key}), "cert"),
        (json!({"cert": "not pem", "key": key}), "cert"),
        (json!({"cert": cert}), "key"),
        (json!({"cert": cert, "key": key, "chain": ""}), "chain"),
    ] {
        let (status, reply) =
            call(&c, &admin(&a), Method::POST, "/v1/certificates", Some(body)).await;
        assert_eq!(status, 400, "{reply}");
        let message = reply["error"].as_str().unwrap();
        assert!(message.starts_with(field), "{field}: {message}");
    }
    let (_, listed) = call(&c, &admin(&a), Method::GET, "/v1/certificates", None).await;
    assert_eq!(
        listed["certificates"],
        json!([]),
        "refused uploads store nothing"
    );

    // A certificate no space chose is stored, never served: uploading one for a name does
    // not take that name over.
    let (stray_cert, stray_key, stray_der) =
        certificate(&["other.example.com"], now - day, now + day * 30);
    let (status, stray) = upload(&c, &admin(&a), &stray_cert, &stray_key).await;
    assert_eq!(status, 201, "{stray}");

    // Uploaded once, on one PoP.
    let (status, uploaded) = upload(&c, &admin(&a), &cert, &key).await;
    assert_eq!(status, 201, "{uploaded}");
    assert_eq!(uploaded["names"], json!([domain]));
    let id = uploaded["id"].as_str().unwrap().to_owned();
    assert!(
        !uploaded.to_string().contains("PRIVATE"),
        "never the key: {uploaded}"
    );
    let (status, space) = call(
        &c,
        &admin(&a),
        Method::POST,
        "/v1/spaces",
        Some(json!({"name": "photos", "custom_domain": domain, "certificate": {"id": id}})),
    )
    .await;
    assert_eq!(status, 201, "{space}");
    assert_eq!(space["certificate"], json!({"id": id}));

    // Every PoP presents it for the custom domain (the second one after its next poll).
    let started = Instant::now();
    for pop in [&a, &b] {
        let addr = pop.https_addr.unwrap();
        loop {
            match handshake(addr, domain, &der).await {
                Ok(served) if served.dns_names == [domain] => break,
                other => assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "{addr}: {other:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eprintln!(
        "uploaded certificate presented by both PoPs within {:?}",
        started.elapsed()
    );
    for pop in [&a, &b] {
        let served = handshake(pop.https_addr.unwrap(), "other.example.com", &stray_der).await;
        assert!(
            served.is_err(),
            "a certificate no space uses is not served: {served:?}"
        );
    }

    // The record gone from the store behind the API's back (as when a PoP that had not
    // seen the space choose it deleted it): the space is still served everywhere, with the
    // default certificate, never dropped; uploading it again brings it back.
    let s3 = S3cmd::new(dir.path(), a.origin_addr.unwrap());
    s3.run(&["del", &format!("s3://edge-state/certs/{id}.json")]);
    until_presented(b.https_addr.unwrap(), domain, &der, false).await;
    let (status, space) = call(&c, &admin(&b), Method::GET, "/v1/spaces/photos", None).await;
    assert_eq!(status, 200, "the space is still served: {space}");
    let (status, again) = upload(&c, &admin(&a), &cert, &key).await;
    assert_eq!(status, 201, "{again}");
    until_presented(b.https_addr.unwrap(), domain, &der, true).await;

    // Listed by the CLI on the other PoP; in use: not deleted; free again once the space
    // lets go of it.
    let (ok, table) = edge_cli("cert", &admin(&b), &["list"]);
    assert!(
        ok && table.contains(&id) && table.contains(domain),
        "{table}"
    );
    let (ok, out) = edge_cli("cert", &admin(&b), &["delete", &id]);
    assert!(!ok && out.contains("409"), "{out}");
    let path = format!("/v1/certificates/{id}");
    let (status, _) = call(&c, &admin(&b), Method::DELETE, "/v1/spaces/photos", None).await;
    assert_eq!(status, 204);
    let (ok, out) = edge_cli("cert", &admin(&b), &["delete", &id]);
    assert!(ok, "{out}");
    let (status, _) = call(&c, &admin(&b), Method::DELETE, &path, None).await;
    assert_eq!(status, 404);
    // No longer presented: the PoP falls back to its default certificate.
    until_presented(a.https_addr.unwrap(), domain, &der, false).await;
    a.stop().await;
    b.stop().await;
}
