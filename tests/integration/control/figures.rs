//! What the dashboard reads: per-space metrics, `/v1/stats` in 10-second buckets, and
//! `/v1/fleet` with every PoP up or down.

use reqwest::Method;
use serde_json::{Value, json};

use super::call;
use super::input::{admin, embedded_pop};
use crate::common::process::free_port;
use crate::common::s3::S3cmd;
use crate::common::start_edge;

/// The sum of `field` over a series of buckets.
fn sum(series: &Value, field: &str) -> u64 {
    series
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[field].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_by_space_metrics_and_the_fleet() {
    let dir = tempfile::tempdir().unwrap();
    // A peer that is up (its own store; only its `/healthz` is asked) and one that is not.
    let b_dir = tempfile::tempdir().unwrap();
    let b = start_edge(&embedded_pop(b_dir.path()).replace("name = \"a\"", "name = \"b\"")).await;
    let dead_admin = free_port();
    let a_config = embedded_pop(dir.path()).replace(
        "peers = []",
        &format!(
            "peers = [\"{}\", \"http://127.0.0.1:{dead_admin}\"]",
            admin(&b)
        ),
    );
    let a = start_edge(&a_config).await;
    let c = reqwest::Client::new();

    let (status, _) = call(
        &c,
        &admin(&a),
        Method::POST,
        "/v1/spaces",
        Some(json!({"name": "photos", "origin_auth": "signed"})),
    )
    .await;
    assert_eq!(status, 201);
    let s3 = S3cmd::new(dir.path(), a.origin_addr.unwrap());
    let file = dir.path().join("a.txt");
    std::fs::write(&file, "0123456789").unwrap();
    s3.run(&["put", file.to_str().unwrap(), "s3://photos/a.txt"]);
    let edge = crate::common::client(&["photos"], &[]);
    let url = format!(
        "http://photos.local.cdn.localhost:{}/a.txt",
        a.http_addr.unwrap().port()
    );
    for _ in 0..3 {
        let r = edge.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "0123456789");
    }

    let (status, stats) = call(&c, &admin(&a), Method::GET, "/v1/stats?window=1m", None).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        (
            stats["bucket_seconds"].as_u64(),
            stats["window_seconds"].as_u64()
        ),
        (Some(10), Some(60))
    );
    let photos = &stats["spaces"]["photos"];
    assert_eq!(photos.as_array().unwrap().len(), 6);
    assert_eq!(sum(photos, "requests"), 3, "{photos}");
    assert_eq!(sum(photos, "hits"), 2, "{photos}");
    assert_eq!(sum(photos, "bytes_out"), 30, "{photos}");
    assert_eq!(sum(photos, "origin_fetches"), 1, "{photos}");
    assert!(
        photos
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["origin_latency_ms"].as_f64().is_some()),
        "{photos}"
    );
    assert!(sum(&stats["total"], "requests") >= 3);
    assert_eq!(sum(&stats["spaces"]["assets"], "requests"), 0);
    let (status, reply) = call(&c, &admin(&a), Method::GET, "/v1/stats?window=2h", None).await;
    assert_eq!(status, 400, "{reply}");

    let metrics = c
        .get(format!("{}/metrics", admin(&a)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("edge_space_requests_total{pop=\"a\",space=\"photos\",cache=\"hit\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("edge_space_response_bytes_total{pop=\"a\",space=\"photos\"} 30"),
        "{metrics}"
    );

    let (status, fleet) = call(&c, &admin(&a), Method::GET, "/v1/fleet", None).await;
    assert_eq!(status, 200, "{fleet}");
    let pops = fleet["pops"].as_array().unwrap();
    assert_eq!(pops.len(), 3, "{fleet}");
    assert_eq!(
        (pops[0]["name"].as_str(), pops[0]["status"].as_str()),
        (Some("a"), Some("up"))
    );
    assert_eq!(
        (pops[1]["name"].as_str(), pops[1]["status"].as_str()),
        (Some("b"), Some("up"))
    );
    assert_eq!(pops[2]["status"], "down", "{fleet}");
    assert!(pops[2]["last_seen"].is_null());
    a.stop().await;
    b.stop().await;
}
