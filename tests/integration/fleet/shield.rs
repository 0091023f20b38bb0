//! The shield tier: edges behind a parent PoP fetch each object from the origin once.

use std::time::Duration;

use crate::common::origin::{Route, ScriptedOrigin};
use crate::common::{cache_status, client, http_origin_config, space, start_edge};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_edges_behind_a_shield_fetch_once() {
    let origin = ScriptedOrigin::start().await;
    origin.route(
        "/cold.bin",
        Route::generated(1 << 20).delay(Duration::from_millis(300)),
    );
    let shield = start_edge(
        &http_origin_config(&origin.url(), &space("assets", ""))
            .replace("name = \"test-pop\"", "name = \"shield\""),
    )
    .await;
    let shield_http = shield.http_addr.unwrap();
    let shield_admin = shield.admin_addr.unwrap();
    let mut edges = Vec::new();
    for _ in 0..3 {
        // The shield is also listed among the peers (as ops often do): it is still asked
        // once, first.
        let config = format!(
            "{}\n[parent]\nurl = \"http://{shield_http}\"\nadmin = \"http://{shield_admin}\"\n",
            http_origin_config(
                &origin.url(),
                &format!(
                    "peers = [\"http://{shield_admin}\"]\n{}",
                    space("assets", "")
                )
            )
        );
        edges.push(start_edge(&config).await);
    }
    let c = client(&["assets"], &[]);
    let mut tasks = Vec::new();
    for edge in &edges {
        for _ in 0..50 {
            let c = c.clone();
            let url = format!(
                "http://assets.local.cdn.localhost:{}/cold.bin",
                edge.http_addr.unwrap().port()
            );
            tasks.push(tokio::spawn(async move {
                let r = c.get(url).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap().len()
            }));
        }
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 1 << 20);
    }
    assert_eq!(
        origin.hits(),
        1,
        "150 cold requests through 3 edges and a shield: one origin fetch"
    );

    // The child's Cache-Status lists the shield's entry first.
    let r = c
        .get(format!(
            "http://assets.local.cdn.localhost:{}/cold.bin",
            edges[0].http_addr.unwrap().port()
        ))
        .send()
        .await
        .unwrap();
    assert!(
        cache_status(&r).starts_with("shield; fwd=miss")
            && cache_status(&r).contains(", test-pop; "),
        "{}",
        cache_status(&r)
    );

    // A purge through an edge reaches the shield first.
    let reply: serde_json::Value = c
        .delete(format!(
            "http://{}/v1/spaces/assets/cache",
            edges[0].admin_addr.unwrap()
        ))
        .bearer_auth("test-purge-token")
        .json(&serde_json::json!({ "files": ["cold.bin"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pops = reply["pops"].as_array().unwrap();
    assert_eq!(pops.len(), 2, "the shield once: {reply}");
    assert_eq!(pops[1]["pop"], "shield", "{reply}");
    assert_eq!(pops[1]["dropped"], 1);
}
