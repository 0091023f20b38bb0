//! Host routing: edge URLs and custom domains share entries; unknown hosts never reach the origin.

use crate::common::origin::{Route, ScriptedOrigin};
use std::time::Duration;

use crate::common::{
    cache_status, client, edge_url, http_origin_config, raw_request, raw_status, space, start_edge,
};

#[tokio::test]
async fn unknown_host_is_404_without_origin_traffic() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/a", Route::ok("a"));
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let c = client(&["assets", "nope"], &[]);
    let r = c.get(edge_url(&edge, "nope", "/a")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(origin.hits(), 0);
    edge.stop().await;
}

#[tokio::test]
async fn custom_domain_shares_entries_with_edge_url() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/logo.png", Route::ok("logo"));
    let spaces = space("assets", "custom_domain = \"images.example.com\"");
    let edge = start_edge(&http_origin_config(&origin.url(), &spaces)).await;
    let c = client(&["assets"], &["images.example.com", "IMAGES.example.COM"]);
    c.get(edge_url(&edge, "assets", "/logo.png"))
        .send()
        .await
        .unwrap();
    let port = edge.http_addr.unwrap().port();
    let r = c
        .get(format!("http://images.example.com:{port}/logo.png"))
        .send()
        .await
        .unwrap();
    assert!(cache_status(&r).contains("hit"), "{}", cache_status(&r));
    let raw = raw_request(
        edge.http_addr.unwrap(),
        format!("GET /logo.png HTTP/1.1\r\nHost: IMAGES.example.COM.:{port}\r\nConnection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(raw_status(&raw), 200);
    assert!(
        raw.to_ascii_lowercase()
            .contains("cache-status: test-pop; hit"),
        "{raw}"
    );
    assert_eq!(origin.hits(), 1);
    edge.stop().await;
}

#[tokio::test]
async fn bad_paths_get_400() {
    let origin = ScriptedOrigin::start().await;
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    for path in ["/a/%2e%2e/b", "/a/../b", "/a%00b", "/%ff%fe"] {
        let raw = raw_request(
            edge.http_addr.unwrap(),
            format!("GET {path} HTTP/1.1\r\nHost: assets.local.cdn.localhost\r\nConnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(raw_status(&raw), 400, "{path}: {raw}");
    }
    assert_eq!(origin.hits(), 0);
    edge.stop().await;
}
