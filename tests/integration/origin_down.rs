//! A dead origin: fresh entries still served, stale-if-error entries served stale, the rest
//! a clear 502/504.

use std::time::Duration;

use crate::common::origin::{Route, ScriptedOrigin};
use crate::common::{
    cache_status, client, edge_url, http_origin_config, space, start_edge, start_edge_with_clock,
};

#[tokio::test]
async fn origin_killed_mid_test() {
    let origin = ScriptedOrigin::start().await;
    origin.route(
        "/fresh.txt",
        Route::ok("fresh").header("cache-control", "max-age=600"),
    );
    origin.route(
        "/sie.txt",
        Route::ok("sie").header("cache-control", "max-age=1, stale-if-error=600"),
    );
    origin.route(
        "/plain.txt",
        Route::ok("plain").header("cache-control", "max-age=1"),
    );
    let (edge, clock) =
        start_edge_with_clock(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    origin.follow_clock(clock.clone());
    let c = client(&["assets"], &[]);
    for path in ["/fresh.txt", "/sie.txt", "/plain.txt"] {
        c.get(edge_url(&edge, "assets", path))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    origin.stop();
    clock.advance(Duration::from_secs(2));

    let fresh = c
        .get(edge_url(&edge, "assets", "/fresh.txt"))
        .send()
        .await
        .unwrap();
    assert!(cache_status(&fresh).contains("hit"));
    assert_eq!(fresh.text().await.unwrap(), "fresh");

    let sie = c
        .get(edge_url(&edge, "assets", "/sie.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(sie.status(), 200);
    let status = cache_status(&sie);
    assert!(
        status.starts_with("test-pop; fwd=stale; fwd-status=502"),
        "{status}"
    );
    assert_eq!(sie.text().await.unwrap(), "sie");

    let plain = c
        .get(edge_url(&edge, "assets", "/plain.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        plain.status(),
        502,
        "no stale-if-error and no grace: a clear 502"
    );

    let cold = c
        .get(edge_url(&edge, "assets", "/never-seen.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(cold.status(), 502);
    edge.stop().await;
}

#[tokio::test]
async fn stale_grace_serves_stale_on_origin_5xx() {
    let origin = ScriptedOrigin::start().await;
    origin.route(
        "/g.txt",
        Route::ok("graceful").header("cache-control", "max-age=1"),
    );
    let config = http_origin_config(&origin.url(), &space("assets", ""))
        .replace("stale_grace = \"0s\"", "stale_grace = \"1h\"");
    let (edge, clock) = start_edge_with_clock(&config).await;
    origin.follow_clock(clock.clone());
    let c = client(&["assets"], &[]);
    let url = edge_url(&edge, "assets", "/g.txt");
    c.get(&url).send().await.unwrap().bytes().await.unwrap();
    origin.route("/g.txt", Route::ok("down").status(503));
    clock.advance(Duration::from_secs(2));
    let stale = c.get(&url).send().await.unwrap();
    assert!(
        cache_status(&stale).starts_with("test-pop; fwd=stale; fwd-status=503"),
        "{}",
        cache_status(&stale)
    );
    assert_eq!(stale.text().await.unwrap(), "graceful");
    edge.stop().await;
}

#[tokio::test]
async fn slow_origin_gets_a_504() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/slow", Route::ok("late").delay(Duration::from_secs(10)));
    let config = http_origin_config(&origin.url(), &space("assets", ""))
        .replace("timeout = \"5s\"", "timeout = \"500ms\"");
    let edge = start_edge(&config).await;
    let c = client(&["assets"], &[]);
    let response = c
        .get(edge_url(&edge, "assets", "/slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    edge.stop().await;
}
