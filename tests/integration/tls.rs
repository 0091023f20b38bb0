//! HTTPS with a generated certificate, HTTP/2 and HTTP/1.1 negotiated by ALPN.

use crate::common::origin::{Route, ScriptedOrigin};
use crate::common::{cache_status, client, http_origin_config, space, start_edge};

#[tokio::test]
async fn http2_over_tls_by_alpn() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/h2.txt", Route::ok("over h2"));
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let port = edge.https_addr.unwrap().port();
    let url = format!("https://assets.local.cdn.localhost:{port}/h2.txt");

    let c = client(&["assets"], &[]);
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.text().await.unwrap(), "over h2");
    let r = c.get(&url).send().await.unwrap();
    assert!(cache_status(&r).contains("hit"));

    let h1 = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .http1_only()
        .resolve("assets.local.cdn.localhost", "127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap();
    let r = h1.get(&url).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.text().await.unwrap(), "over h2");
    edge.stop().await;
}
