//! Miss, hit, stale, revalidated: read from Cache-Status and counted at the origin.

use std::time::Duration;

use crate::common::origin::{Route, ScriptedOrigin};
use crate::common::{
    cache_status, client, edge_url, http_origin_config, space, start_edge, start_edge_with_clock,
    ttl_of,
};

#[tokio::test]
async fn miss_then_hit_with_age() {
    let origin = ScriptedOrigin::start().await;
    origin.route(
        "/a.txt",
        Route::ok("hello").header("content-type", "text/plain"),
    );
    let edge = start_edge(&http_origin_config(
        &origin.url(),
        &space("assets", "ttl = \"10m\""),
    ))
    .await;
    let c = client(&["assets"], &[]);
    let url = edge_url(&edge, "assets", "/a.txt");

    let first = c.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(cache_status(&first), "test-pop; fwd=miss; stored");
    assert_eq!(first.text().await.unwrap(), "hello");

    let second = c.get(&url).send().await.unwrap();
    let status = cache_status(&second);
    assert!(status.starts_with("test-pop; hit; ttl="), "{status}");
    assert!(second.headers().contains_key("age"));
    assert_eq!(second.headers()["content-type"], "text/plain");
    assert_eq!(second.text().await.unwrap(), "hello");
    assert_eq!(origin.hits(), 1);

    // HEAD is answered from the cache too, with the length.
    let head = c.head(&url).send().await.unwrap();
    assert_eq!(head.headers()["content-length"], "5");
    assert_eq!(origin.hits(), 1);
    edge.stop().await;
}

#[tokio::test]
async fn object_cache_control_beats_space_ttl_beats_default() {
    let origin = ScriptedOrigin::start().await;
    origin.route(
        "/own.txt",
        Route::ok("x").header("cache-control", "max-age=100"),
    );
    origin.route("/plain.txt", Route::ok("x"));
    let spaces = format!(
        "{}{}",
        space("withttl", "ttl = \"10m\""),
        space("nottl", "")
    );
    let edge = start_edge(&http_origin_config(&origin.url(), &spaces)).await;
    let c = client(&["withttl", "nottl"], &[]);

    let ttl = |r: &reqwest::Response| ttl_of(&cache_status(r)).unwrap();
    c.get(edge_url(&edge, "withttl", "/own.txt"))
        .send()
        .await
        .unwrap();
    let hit = c
        .get(edge_url(&edge, "withttl", "/own.txt"))
        .send()
        .await
        .unwrap();
    assert!((95..=100).contains(&ttl(&hit)), "{}", cache_status(&hit));

    c.get(edge_url(&edge, "withttl", "/plain.txt"))
        .send()
        .await
        .unwrap();
    let hit = c
        .get(edge_url(&edge, "withttl", "/plain.txt"))
        .send()
        .await
        .unwrap();
    assert!((595..=600).contains(&ttl(&hit)), "{}", cache_status(&hit));

    c.get(edge_url(&edge, "nottl", "/plain.txt"))
        .send()
        .await
        .unwrap();
    let hit = c
        .get(edge_url(&edge, "nottl", "/plain.txt"))
        .send()
        .await
        .unwrap();
    assert!((3595..=3600).contains(&ttl(&hit)), "{}", cache_status(&hit));
    edge.stop().await;
}

#[tokio::test]
async fn query_strings_are_distinct_entries_unless_ignored() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/q.txt", Route::ok("q"));
    let spaces = format!(
        "{}{}",
        space("full", ""),
        space("ignored", "query = \"ignore\"")
    );
    let edge = start_edge(&http_origin_config(&origin.url(), &spaces)).await;
    let c = client(&["full", "ignored"], &[]);

    for v in ["?v=1", "?v=2", "?v=1"] {
        c.get(edge_url(&edge, "full", &format!("/q.txt{v}")))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(origin.hits(), 2);
    assert_eq!(
        origin.seen()[1].path_and_query,
        "/q.txt?v=2",
        "HTTP origins get the query as is"
    );

    for v in ["?v=1", "?v=2", ""] {
        c.get(edge_url(&edge, "ignored", &format!("/q.txt{v}")))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(origin.hits(), 3);

    // Encoded and plain spellings of a path are one entry.
    origin.route("/img/a.png", Route::ok("png"));
    c.get(edge_url(&edge, "full", "/img/a.png"))
        .send()
        .await
        .unwrap();
    let hit = c
        .get(edge_url(&edge, "full", "/img/%61.png"))
        .send()
        .await
        .unwrap();
    assert!(cache_status(&hit).contains("hit"), "{}", cache_status(&hit));
    edge.stop().await;
}

#[tokio::test]
async fn stale_entry_is_revalidated_with_a_304() {
    let origin = ScriptedOrigin::start().await;
    origin.route(
        "/r.txt",
        Route::ok("revalidate me")
            .header("cache-control", "max-age=1")
            .header("etag", "\"v1\""),
    );
    let (edge, clock) =
        start_edge_with_clock(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    origin.follow_clock(clock.clone());
    let c = client(&["assets"], &[]);
    let url = edge_url(&edge, "assets", "/r.txt");

    c.get(&url).send().await.unwrap().bytes().await.unwrap();
    clock.advance(Duration::from_secs(2));
    let revalidated = c.get(&url).send().await.unwrap();
    assert_eq!(
        cache_status(&revalidated),
        "test-pop; fwd=stale; fwd-status=304; stored"
    );
    assert_eq!(revalidated.text().await.unwrap(), "revalidate me");
    let seen = origin.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].headers["if-none-match"], "\"v1\"");

    let hit = c.get(&url).send().await.unwrap();
    assert!(cache_status(&hit).contains("hit"), "{}", cache_status(&hit));
    assert_eq!(origin.hits(), 2);
    edge.stop().await;
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_in_background() {
    let origin = ScriptedOrigin::start().await;
    origin.route(
        "/swr.txt",
        Route::ok("v1").header("cache-control", "max-age=1, stale-while-revalidate=60"),
    );
    let (edge, clock) =
        start_edge_with_clock(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    origin.follow_clock(clock.clone());
    let c = client(&["assets"], &[]);
    let url = edge_url(&edge, "assets", "/swr.txt");

    c.get(&url).send().await.unwrap().bytes().await.unwrap();
    origin.route(
        "/swr.txt",
        Route::ok("v2").header("cache-control", "max-age=60"),
    );
    clock.advance(Duration::from_secs(2));
    let stale = c.get(&url).send().await.unwrap();
    let status = cache_status(&stale);
    assert!(status.starts_with("test-pop; hit; ttl=-"), "{status}");
    assert_eq!(stale.text().await.unwrap(), "v1");
    // The background refresh lands shortly.
    for _ in 0..50 {
        if origin.hits() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fresh = c.get(&url).send().await.unwrap();
    assert!(
        cache_status(&fresh).contains("hit; ttl="),
        "{}",
        cache_status(&fresh)
    );
    assert_eq!(fresh.text().await.unwrap(), "v2");
    assert_eq!(origin.hits(), 2);
    edge.stop().await;
}

#[tokio::test]
async fn what_is_not_stored() {
    let origin = ScriptedOrigin::start().await;
    origin.route(
        "/private",
        Route::ok("p").header("cache-control", "private, max-age=60"),
    );
    origin.route(
        "/nostore",
        Route::ok("n").header("cache-control", "no-store"),
    );
    origin.route("/cookie", Route::ok("c").header("set-cookie", "session=1"));
    origin.route(
        "/cookie-explicit",
        Route::ok("c")
            .header("set-cookie", "a=1")
            .header("cache-control", "max-age=60"),
    );
    origin.route("/forbidden", Route::ok("f").status(403));
    origin.route("/broken", Route::ok("b").status(503));
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let c = client(&["assets"], &[]);
    for path in [
        "/private",
        "/nostore",
        "/cookie",
        "/forbidden",
        "/broken",
        "/cookie-explicit",
    ] {
        let first = c.get(edge_url(&edge, "assets", path)).send().await.unwrap();
        let _ = first.bytes().await;
        let second = c.get(edge_url(&edge, "assets", path)).send().await.unwrap();
        let status = cache_status(&second);
        if path == "/cookie-explicit" {
            assert!(status.contains("hit"), "{path}: {status}");
        } else {
            assert!(
                status.contains("fwd=miss") && !status.contains("stored"),
                "{path}: {status}"
            );
        }
    }
    // 404 is kept for negative_ttl (default 10s).
    c.get(edge_url(&edge, "assets", "/missing"))
        .send()
        .await
        .unwrap();
    let second = c
        .get(edge_url(&edge, "assets", "/missing"))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 404);
    assert!(
        cache_status(&second).contains("hit"),
        "{}",
        cache_status(&second)
    );
    edge.stop().await;
}

#[tokio::test]
async fn vary_keeps_variants_apart() {
    let origin = ScriptedOrigin::start().await;
    origin.route(
        "/v.txt",
        Route::ok("varied").header("vary", "Accept-Language"),
    );
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let c = client(&["assets"], &[]);
    let url = edge_url(&edge, "assets", "/v.txt");
    for lang in ["en", "fr", "en", "fr"] {
        c.get(&url)
            .header("accept-language", lang)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    assert_eq!(origin.hits(), 2);
    edge.stop().await;
}
