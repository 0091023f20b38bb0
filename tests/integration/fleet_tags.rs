//! Tag and soft purges across three PoPs (processes), one of them down during the purges:
//! it gets them when it is back (pending retries, and the journals it catches up from), and
//! applies them to what its disk kept.

use std::time::{Duration, Instant};

use crate::common::client;
use crate::common::origin::{Route, ScriptedOrigin};
use crate::common::process::{EdgeProcess, free_port, spawn_edge_in};
use crate::fleet::{TOKEN, get, metric, pop_config};

async fn purge(
    c: &reqwest::Client,
    pop: &EdgeProcess,
    body: serde_json::Value,
) -> serde_json::Value {
    let r = c
        .delete(format!("{}/v1/spaces/assets/cache", pop.admin_url()))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Each PoP's `(status, dropped)` in a purge reply.
fn results(reply: &serde_json::Value) -> Vec<(String, Option<u64>)> {
    reply["pops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["status"].as_str().unwrap().to_owned(),
                p["dropped"].as_u64(),
            )
        })
        .collect()
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_and_soft_purges_reach_every_pop_even_one_that_was_down() {
    let origin = ScriptedOrigin::start().await;
    for (path, field, tag) in [
        ("/t1", "surrogate-key", "k1 shared"),
        ("/t2", "cache-tag", "k2,shared"),
        ("/u", "x-untagged", "-"),
    ] {
        origin.route(
            path,
            Route::ok(format!("body {path}"))
                .header("cache-control", "max-age=600")
                .header("etag", "\"v1\"")
                .header(field, tag),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let names = ["a", "b", "c"];
    let mut pops: Vec<EdgeProcess> = (0..3)
        .map(|i| {
            let peers: Vec<u16> = (0..3).filter(|&j| j != i).map(|j| ports[j].1).collect();
            let config = pop_config(&format!("pop-{}", names[i]), &origin.url(), &peers, None);
            spawn_edge_in(&dir.path().join(names[i]), &config, ports[i].0, ports[i].1)
        })
        .collect();
    let c = client(&["assets"], &[]);
    for pop in &pops {
        for path in ["/t1", "/t2", "/u"] {
            get(&c, pop, path).await;
            // (A request right after the first may still join its fill as it ends.)
            wait_for("stored", Duration::from_secs(5), async || {
                get(&c, pop, path).await.0.contains("hit")
            })
            .await;
        }
    }

    // Every PoP up: one tag purge drops the entry on each.
    let reply = purge(&c, &pops[0], serde_json::json!({ "tags": ["k1"] })).await;
    let done = vec![("done".to_owned(), Some(1)); 3];
    assert_eq!(results(&reply), done, "{reply}");
    for pop in &pops {
        assert!(get(&c, pop, "/t1").await.0.contains("fwd=miss"));
    }

    // pop-c goes down with all three on its disk; a hard and a soft tag purge reach the
    // others and wait for it.
    wait_for(
        "pop-c wrote its disk entries",
        Duration::from_secs(10),
        async || metric(&c, &pops[2], "edge_cache_disk_entries").await >= 3,
    )
    .await;
    pops[2].kill();
    let hard = purge(&c, &pops[0], serde_json::json!({ "tags": ["k1"] })).await;
    let soft = purge(
        &c,
        &pops[1],
        serde_json::json!({ "tags": ["k2"], "soft": true }),
    )
    .await;
    for reply in [&hard, &soft] {
        let statuses: Vec<String> = results(reply).into_iter().map(|r| r.0).collect();
        assert_eq!(statuses, ["done", "done", "pending"], "{reply}");
    }
    // The journal names the tags and the soft purge.
    let journal: serde_json::Value = c
        .get(format!("{}/v1/purges?since=0", pops[0].admin_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let last = journal.as_array().unwrap().last().unwrap();
    assert_eq!(
        (&last["tags"], &last["soft"]),
        (&serde_json::json!(["k2"]), &serde_json::json!(true)),
        "{journal}"
    );
    // Soft: the live PoPs revalidate (a 304) instead of fetching again.
    for pop in &pops[..2] {
        let (status, body) = get(&c, pop, "/t2").await;
        assert!(status.contains("fwd=stale; fwd-status=304"), "{status}");
        assert_eq!(body, "body /t2");
    }

    // pop-c is back: it serves neither purged entry from its disk as it was.
    pops[2].restart();
    wait_for(
        "pop-c caught up with its peers",
        Duration::from_secs(30),
        async || metric(&c, &pops[2], "edge_cache_disk_revalidating").await == 0,
    )
    .await;
    let (status, body) = get(&c, &pops[2], "/u").await;
    assert!(
        status.contains("hit") && status.contains("detail=disk"),
        "{status}"
    );
    assert_eq!(body, "body /u");
    let (status, _) = get(&c, &pops[2], "/t1").await;
    assert!(status.contains("fwd=miss"), "hard-purged by tag: {status}");
    let (status, body) = get(&c, &pops[2], "/t2").await;
    assert!(
        status.contains("fwd=stale; fwd-status=304"),
        "soft-purged by tag: {status}"
    );
    assert_eq!(body, "body /t2");
}
