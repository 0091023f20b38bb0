//! Cache tags and soft purges on one PoP (and a PoP behind a shield): tags from the origin's
//! fields and S3 metadata, never shown to clients, kept on disk across a restart; purges by
//! tag drop exactly what carries the tag; soft purges make entries stale instead.

use std::time::Duration;

use edge::cache::clock::ManualClock;

use crate::common::origin::{Route, ScriptedOrigin};
use crate::common::s3::{S3cmd, origin_user};
use crate::common::{
    TestEdge, cache_status, client, edge_url, http_origin_config, space, start_edge,
    start_edge_on_clock, ttl_of,
};

const TOKEN: &str = "test-purge-token";

async fn get(c: &reqwest::Client, edge: &TestEdge, path: &str) -> (String, String) {
    let r = c.get(edge_url(edge, "assets", path)).send().await.unwrap();
    for name in ["surrogate-key", "cache-tag", "x-amz-meta-surrogate-key"] {
        assert!(!r.headers().contains_key(name), "{name} reached a client");
    }
    let status = cache_status(&r);
    (status, r.text().await.unwrap())
}

/// Sends a purge to `edge`'s admin API; the reply's status and body.
async fn purge(
    c: &reqwest::Client,
    edge: &TestEdge,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = c
        .delete(format!(
            "http://{}/v1/spaces/assets/cache",
            edge.admin_addr.unwrap()
        ))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn dropped(reply: &serde_json::Value) -> u64 {
    reply["pops"][0]["dropped"].as_u64().unwrap()
}

/// The value of the purge metric `name` for `mode` (`hard` or `soft`).
async fn purge_metric(c: &reqwest::Client, edge: &TestEdge, name: &str, mode: &str) -> u64 {
    let text = c
        .get(format!("http://{}/metrics", edge.admin_addr.unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let label = format!("mode=\"{mode}\"");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} for {mode} in {text}"))
}

#[tokio::test]
async fn a_tag_purge_drops_exactly_what_carries_the_tag() {
    let origin = ScriptedOrigin::start().await;
    let cc = "max-age=600";
    origin.route(
        "/p42.html",
        Route::ok("42")
            .header("cache-control", cc)
            .header("surrogate-key", "p42 all"),
    );
    origin.route(
        "/p42.json",
        Route::ok("42j")
            .header("cache-control", cc)
            .header("cache-tag", "p42,all"),
    );
    origin.route(
        "/p43.html",
        Route::ok("43")
            .header("cache-control", cc)
            .header("surrogate-key", "p43  all"),
    );
    origin.route("/plain", Route::ok("plain").header("cache-control", cc));
    let many: Vec<String> = (0..=edge::cache::tags::MAX_TAGS)
        .map(|i| format!("t{i}"))
        .collect();
    origin.route(
        "/too-many",
        Route::ok("x")
            .header("cache-control", cc)
            .header("surrogate-key", &many.join(" ")),
    );
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let c = client(&["assets"], &[]);
    let paths = ["/p42.html", "/p42.json", "/p43.html", "/plain"];
    for path in paths {
        get(&c, &edge, path).await;
        assert!(get(&c, &edge, path).await.0.contains("hit"), "{path}");
    }

    let (status, reply) = purge(&c, &edge, serde_json::json!({ "tags": ["p42"] })).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(dropped(&reply), 2, "{reply}");
    for (path, hit) in [
        ("/p42.html", false),
        ("/p42.json", false),
        ("/p43.html", true),
        ("/plain", true),
    ] {
        assert_eq!(get(&c, &edge, path).await.0.contains("hit"), hit, "{path}");
    }
    // Tags and files together; a tag of another space's responses is not this one's.
    let (_, reply) = purge(
        &c,
        &edge,
        serde_json::json!({ "tags": ["all"], "files": ["/plain"] }),
    )
    .await;
    assert_eq!(dropped(&reply), 4, "{reply}");
    for path in paths {
        assert!(get(&c, &edge, path).await.0.contains("fwd=miss"), "{path}");
    }

    // More tags than an entry keeps: served, never stored (no purge could miss it).
    let (first, _) = get(&c, &edge, "/too-many").await;
    assert_eq!(first, "test-pop; fwd=miss");
    assert_eq!(get(&c, &edge, "/too-many").await.0, "test-pop; fwd=miss");

    for bad in [
        serde_json::json!({ "tags": ["two words"] }),
        serde_json::json!({ "tags": [] }),
        serde_json::json!({ "tags": ["x".repeat(300)] }),
        serde_json::json!({ "tags": ["t"], "soft": "yes" }),
    ] {
        let (status, reply) = purge(&c, &edge, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {reply}");
        assert!(reply["error"].is_string());
    }
    assert_eq!(
        purge_metric(&c, &edge, "edge_purges_total", "hard").await,
        2
    );
    assert_eq!(
        purge_metric(&c, &edge, "edge_purge_tags_total", "hard").await,
        2
    );
    assert_eq!(
        purge_metric(&c, &edge, "edge_purged_entries_total", "hard").await,
        6
    );
    edge.stop().await;
}

fn disk_config(origin: &str, dir: &std::path::Path) -> String {
    http_origin_config(origin, &space("assets", "")).replace(
        "[cache]\n",
        &format!("[cache]\ndisk_path = \"{}\"\n", dir.display()),
    )
}

async fn scanned(edge: &TestEdge) {
    for _ in 0..200 {
        if !edge.edge.cache.disk().scanning() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the disk scan did not end");
}

/// Tags are kept in the disk entry's meta: a restarted PoP purges by tag what its disk
/// holds, and a soft purge made before the restart still holds after it.
#[tokio::test]
async fn a_restarted_pop_purges_by_tag_what_its_disk_holds() {
    let origin = ScriptedOrigin::start().await;
    for (path, tag) in [("/a", "ta"), ("/b", "tb"), ("/c", "tc")] {
        origin.route(
            path,
            Route::ok(format!("body {path}"))
                .header("cache-control", "max-age=600")
                .header("etag", "\"v1\"")
                .header("surrogate-key", tag),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let config = disk_config(&origin.url(), dir.path());
    let edge = start_edge(&config).await;
    let c = client(&["assets"], &[]);
    for path in ["/a", "/b", "/c"] {
        get(&c, &edge, path).await;
    }
    // Written to disk before the soft purge marks /b's file.
    for _ in 0..200 {
        if edge.edge.cache.disk_usage().1 == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_, reply) = purge(
        &c,
        &edge,
        serde_json::json!({ "tags": ["tb"], "soft": true }),
    )
    .await;
    assert_eq!(dropped(&reply), 1, "{reply}");
    edge.stop().await;

    let edge = start_edge(&config).await;
    scanned(&edge).await;
    let (_, reply) = purge(&c, &edge, serde_json::json!({ "tags": ["ta"] })).await;
    assert_eq!(dropped(&reply), 1, "the disk entry tagged ta: {reply}");
    assert_eq!(get(&c, &edge, "/a").await.0, "test-pop; fwd=miss; stored");
    let (status, body) = get(&c, &edge, "/b").await;
    assert_eq!(
        status, "test-pop; fwd=stale; fwd-status=304; stored",
        "soft purge kept"
    );
    assert_eq!(body, "body /b");
    let (status, _) = get(&c, &edge, "/c").await;
    assert!(
        status.contains("hit") && status.contains("detail=disk"),
        "{status}"
    );
    edge.stop().await;
}

/// A soft purge marks entries stale: the next request revalidates (a 304, no body), and an
/// entry allowing `stale-while-revalidate` is served stale meanwhile. `Cache-Status` tells
/// which happened.
#[tokio::test]
async fn a_soft_purge_revalidates_and_serves_stale_where_allowed() {
    let origin = ScriptedOrigin::start().await;
    origin.route(
        "/a",
        Route::ok("a")
            .header("cache-control", "max-age=600")
            .header("etag", "\"a1\""),
    );
    origin.route(
        "/swr",
        Route::ok("swr")
            .header("cache-control", "max-age=600, stale-while-revalidate=60")
            .header("etag", "\"s1\"")
            .header("cache-tag", "t"),
    );
    let clock = ManualClock::new();
    let edge = start_edge_on_clock(
        &http_origin_config(&origin.url(), &space("assets", "")),
        clock.clone(),
    )
    .await;
    let c = client(&["assets"], &[]);
    get(&c, &edge, "/a").await;
    get(&c, &edge, "/swr").await;

    let (_, reply) = purge(
        &c,
        &edge,
        serde_json::json!({ "files": ["/a"], "soft": true }),
    )
    .await;
    assert_eq!(dropped(&reply), 1);
    let (status, body) = get(&c, &edge, "/a").await;
    assert_eq!(status, "test-pop; fwd=stale; fwd-status=304; stored");
    assert_eq!(body, "a");
    let revalidation = origin
        .seen()
        .into_iter()
        .rfind(|s| s.path_and_query == "/a")
        .unwrap();
    assert_eq!(revalidation.headers["if-none-match"], "\"a1\"");
    assert!(get(&c, &edge, "/a").await.0.contains("hit"));

    let (_, reply) = purge(
        &c,
        &edge,
        serde_json::json!({ "tags": ["t"], "soft": true }),
    )
    .await;
    assert_eq!(dropped(&reply), 1);
    clock.advance(Duration::from_secs(2));
    let (status, body) = get(&c, &edge, "/swr").await;
    assert!(status.contains("hit"), "served stale: {status}");
    assert_eq!(ttl_of(&status), Some(-2));
    assert_eq!(body, "swr");
    // Revalidated in the background, then fresh again.
    let mut revalidated = false;
    for _ in 0..200 {
        let seen = origin.seen();
        if seen.iter().filter(|s| s.path_and_query == "/swr").count() == 2 {
            revalidated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(revalidated);
    let mut fresh = String::new();
    for _ in 0..200 {
        fresh = get(&c, &edge, "/swr").await.0;
        if ttl_of(&fresh).is_some_and(|ttl| ttl > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ttl_of(&fresh).is_some_and(|ttl| ttl > 500), "{fresh}");
    assert_eq!(
        purge_metric(&c, &edge, "edge_purges_total", "soft").await,
        2
    );
    assert_eq!(
        purge_metric(&c, &edge, "edge_purged_entries_total", "soft").await,
        2
    );
    edge.stop().await;
}

/// S3 objects are tagged by their `surrogate-key` metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_metadata_tags_objects() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[pop]\nname = \"s3-pop\"\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [cache]\ndefault_ttl = \"1h\"\n[origin]\nkind = \"embedded\"\ndata_dir = \"{}\"\n{}\
         [purge]\ntoken = \"{TOKEN}\"\n[[space]]\nname = \"assets\"\n",
        dir.path().join("origin").display(),
        origin_user()
    );
    let edge = start_edge(&config).await;
    let file = dir.path().join("p.txt");
    std::fs::write(&file, "product").unwrap();
    let s3 = S3cmd::new(dir.path(), edge.origin_addr.unwrap());
    s3.run(&[
        "put",
        "--acl-public",
        "--add-header=x-amz-meta-surrogate-key:product-42 sale",
        file.to_str().unwrap(),
        "s3://assets/p.txt",
    ]);
    s3.run(&[
        "put",
        "--acl-public",
        file.to_str().unwrap(),
        "s3://assets/q.txt",
    ]);
    let c = client(&["assets"], &[]);
    for path in ["/p.txt", "/q.txt"] {
        get(&c, &edge, path).await;
        assert!(get(&c, &edge, path).await.0.contains("hit"));
    }
    let (_, reply) = purge(&c, &edge, serde_json::json!({ "tags": ["sale"] })).await;
    assert_eq!(dropped(&reply), 1, "{reply}");
    assert!(get(&c, &edge, "/p.txt").await.0.contains("fwd=miss"));
    assert!(get(&c, &edge, "/q.txt").await.0.contains("hit"));
    edge.stop().await;
}

/// Behind a shield, a PoP's copies are tagged too (the shield passes its entries' tags to
/// the PoPs below it, never to clients), so one tag purge reaches both.
#[tokio::test]
async fn a_shield_passes_tags_down_so_a_tag_purge_reaches_every_copy() {
    let origin = ScriptedOrigin::start().await;
    origin.route(
        "/t",
        Route::ok("tagged")
            .header("cache-control", "max-age=600")
            .header("surrogate-key", "k"),
    );
    let shield = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let below = start_edge(
        &http_origin_config(&origin.url(), &space("assets", "")).replace(
            "[purge]\n",
            &format!(
                "[parent]\nurl = \"http://{}\"\nadmin = \"http://{}\"\n[purge]\n",
                shield.http_addr.unwrap(),
                shield.admin_addr.unwrap()
            ),
        ),
    )
    .await;
    let c = client(&["assets"], &[]);
    get(&c, &below, "/t").await;
    assert!(get(&c, &below, "/t").await.0.contains("hit"));
    let (_, reply) = purge(&c, &below, serde_json::json!({ "tags": ["k"] })).await;
    let pops = reply["pops"].as_array().unwrap();
    assert_eq!(pops.len(), 2, "{reply}");
    assert!(
        pops.iter()
            .all(|p| p["status"] == "done" && p["dropped"] == 1),
        "{reply}"
    );
    let (status, _) = get(&c, &below, "/t").await;
    assert_eq!(
        status.matches("fwd=miss").count(),
        2,
        "both refetched: {status}"
    );
    shield.stop().await;
    below.stop().await;
}
