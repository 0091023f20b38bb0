//! Hostile clients: request smuggling, cache poisoning, path tricks, the admin listener.

use std::time::Duration;

use crate::common::origin::{Route, ScriptedOrigin};
use crate::common::{
    cache_status, client, edge_url, http_origin_config, raw_request, raw_status, space, start_edge,
};

const HOST: &str = "Host: assets.local.cdn.localhost\r\n";

#[tokio::test]
async fn smuggling_shapes_are_rejected_and_never_reach_the_origin() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/", Route::ok("root"));
    origin.route("/x", Route::ok("x"));
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let addr = edge.http_addr.unwrap();
    let cases: Vec<(&str, String)> = vec![
        (
            "CL and TE",
            format!(
                "GET /x HTTP/1.1\r\n{HOST}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\n{HOST}\r\n"
            ),
        ),
        (
            "TE on a read",
            format!(
                "GET /x HTTP/1.1\r\n{HOST}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            ),
        ),
        (
            "duplicate CL",
            format!(
                "POST /x HTTP/1.1\r\n{HOST}Content-Length: 3\r\nContent-Length: 7\r\n\r\nabcdefg"
            ),
        ),
        (
            "obs-fold",
            format!("GET /x HTTP/1.1\r\n{HOST}X-Folded: a\r\n b\r\n\r\n"),
        ),
        (
            "bare CR",
            format!("GET /x HTTP/1.1\r\n{HOST}X-Bad: a\rb\r\n\r\n"),
        ),
        (
            "TE not chunked",
            format!("POST /x HTTP/1.1\r\n{HOST}Transfer-Encoding: gzip\r\n\r\nabc"),
        ),
        (
            "space before colon",
            format!("GET /x HTTP/1.1\r\n{HOST}Content-Length : 5\r\n\r\nhello"),
        ),
        (
            "long request line",
            format!("GET /{} HTTP/1.1\r\n{HOST}\r\n", "a".repeat(200 << 10)),
        ),
    ];
    for (name, request) in cases {
        let answer = raw_request(addr, request.as_bytes(), Duration::from_secs(5)).await;
        let status = raw_status(&answer);
        assert!(
            (400..500).contains(&status) || answer.is_empty(),
            "{name}: expected a 4xx and a closed connection, got {answer:.200}"
        );
        // Exactly one response: nothing smuggled behind it.
        assert!(
            answer.matches("HTTP/1.1 ").count() <= 1,
            "{name}: {answer:.400}"
        );
    }
    assert_eq!(origin.hits(), 0, "nothing reached the origin");

    // A write with both lengths (HTTP origins take writes), and a chunked write: 411, the
    // connection closed, nothing forwarded, and the request hidden behind never runs.
    for request in [
        format!(
            "POST /x HTTP/1.1\r\n{HOST}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n{HOST}\r\n\r\n"
        ),
        format!(
            "PUT /x HTTP/1.1\r\n{HOST}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n{HOST}\r\n\r\n"
        ),
        format!(
            "POST /x HTTP/1.1\r\n{HOST}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        ),
    ] {
        let answer = raw_request(addr, request.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(raw_status(&answer), 411, "{answer}");
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
    assert_eq!(origin.hits(), 0, "no write was forwarded");

    // A write that states its length is forwarded.
    let answer = raw_request(
        addr,
        format!("POST /x HTTP/1.1\r\n{HOST}Content-Length: 3\r\nConnection: close\r\n\r\nabc")
            .as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert_eq!(origin.hits(), 1);
    edge.stop().await;
}

#[tokio::test]
async fn bare_lf_line_endings_are_tolerated() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/x", Route::ok("x"));
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let answer = raw_request(
        edge.http_addr.unwrap(),
        b"GET /x HTTP/1.1\nHost: assets.local.cdn.localhost\nConnection: close\n\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    edge.stop().await;
}

#[tokio::test]
async fn unkeyed_headers_cannot_poison_the_cache() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/page", Route::ok("page"));
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let c = client(&["assets"], &[]);
    let url = edge_url(&edge, "assets", "/page");
    let r = c
        .get(&url)
        .header("x-forwarded-host", "evil.example")
        .header("x-original-url", "/admin")
        .header("x-http-method-override", "DELETE")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "page");
    let seen = &origin.seen()[0];
    for name in [
        "x-forwarded-host",
        "x-original-url",
        "x-http-method-override",
    ] {
        assert!(
            !seen.headers.contains_key(name),
            "{name} must not reach the origin"
        );
    }
    assert_eq!(seen.path_and_query, "/page");
    let r = c.get(&url).send().await.unwrap();
    assert!(cache_status(&r).contains("hit"));
    assert_eq!(r.text().await.unwrap(), "page");

    // A second Host header is refused.
    let answer = raw_request(
        edge.http_addr.unwrap(),
        format!("GET /page HTTP/1.1\r\n{HOST}Host: other.local.cdn.localhost\r\nConnection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(raw_status(&answer), 400, "{answer}");
    edge.stop().await;
}

#[tokio::test]
async fn admin_is_unreachable_through_edge_hostnames() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/keep.txt", Route::ok("keep"));
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let c = client(&["assets"], &[]);
    c.get(edge_url(&edge, "assets", "/keep.txt"))
        .send()
        .await
        .unwrap();
    // The purge path on an edge hostname is a write to an object (forwarded uncached to this
    // HTTP origin), never a purge; the metrics path is just a key.
    let r = c
        .delete(edge_url(&edge, "assets", "/v1/spaces/assets/cache"))
        .bearer_auth("test-purge-token")
        .body(r#"{"files": ["*"]}"#)
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 200);
    let r = c
        .get(edge_url(&edge, "assets", "/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .get(edge_url(&edge, "assets", "/keep.txt"))
        .send()
        .await
        .unwrap();
    assert!(
        cache_status(&r).contains("hit"),
        "nothing was purged: {}",
        cache_status(&r)
    );
    edge.stop().await;
}
