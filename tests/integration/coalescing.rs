//! Concurrent misses for one key cause one origin fetch; every waiter gets the same bytes.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::common::origin::{Route, ScriptedOrigin, pattern_byte, seeded_bytes};
use crate::common::{cache_status, client, edge_url, http_origin_config, space, start_edge};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_cold_requests_reach_the_origin_once() {
    let origin = ScriptedOrigin::start().await;
    let len: u64 = 8 << 20;
    origin.route(
        "/big.bin",
        Route::generated(len).delay(Duration::from_millis(500)),
    );
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let c = client(&["assets"], &[]);
    let url = edge_url(&edge, "assets", "/big.bin");

    let expected: Vec<u8> = (0..len).map(pattern_byte).collect();
    let expected = Sha256::digest(&expected);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let c = c.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let response = c.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let status = cache_status(&response);
            let body = response.bytes().await.unwrap();
            (status, Sha256::digest(&body))
        }));
    }
    // Exactly one request leads the fill; every other one either joined it (collapsed) or,
    // on a loaded machine where it arrived after the fill ended, was a hit. None may start a
    // second fetch.
    let (mut leaders, mut collapsed, mut hits) = (0, 0, 0);
    for task in tasks {
        let (status, digest) = task.await.unwrap();
        assert_eq!(digest, expected);
        if status.contains("collapsed") {
            collapsed += 1;
        } else if status.contains("fwd=miss") {
            leaders += 1;
        } else if status.contains("hit") {
            hits += 1;
        } else {
            panic!("unexpected Cache-Status {status:?}");
        }
    }
    assert_eq!(
        origin.hits(),
        1,
        "one origin fetch for 200 concurrent misses"
    );
    assert_eq!(
        leaders, 1,
        "one leader ({collapsed} collapsed, {hits} hits)"
    );
    assert!(
        collapsed >= 1,
        "some requests joined the fill ({hits} hits)"
    );
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_get_the_body_as_it_arrives() {
    // The origin sends the head, then the body a piece every 200 ms (3 s in all): a request
    // that joins the fill must see the first bytes long before the origin has finished.
    let origin = ScriptedOrigin::start().await;
    let len = 16 * (64 << 10);
    origin.route(
        "/slow.bin",
        Route::seeded(len, 7)
            .pace(Duration::from_millis(200))
            .header("cache-control", "max-age=600"),
    );
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let c = client(&["assets"], &[]);
    let url = edge_url(&edge, "assets", "/slow.bin");
    let started = Instant::now();
    let leader = {
        let (c, url) = (c.clone(), url.clone());
        tokio::spawn(async move { c.get(url).send().await.unwrap().bytes().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut joined = c.get(&url).send().await.unwrap();
    assert!(
        cache_status(&joined).contains("collapsed"),
        "{}",
        cache_status(&joined)
    );
    let first = joined.chunk().await.unwrap().unwrap();
    let first_after = started.elapsed();
    assert!(
        first_after < Duration::from_millis(1500),
        "the joined request waited {first_after:?} for its first bytes"
    );
    let mut body = first.to_vec();
    while let Some(chunk) = joined.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    assert!(
        started.elapsed() >= Duration::from_millis(2800),
        "the origin was still sending when the first bytes arrived"
    );
    assert_eq!(body, seeded_bytes(7, 0, len));
    assert_eq!(leader.await.unwrap(), seeded_bytes(7, 0, len));
    assert_eq!(origin.hits(), 1);
    edge.stop().await;
}
