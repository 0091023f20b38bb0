//! The control plane's state on RGW: spaces made through the admin API are stored in the
//! `edge-state` bucket of the gateway (conditional writes as RGW answers them), their buckets
//! are created there, and another PoP in front of the same gateway serves them.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use super::{config, space, url};
use crate::common::ceph::cluster;
use crate::common::{client, start_edge};
use crate::control::{ADMIN_TOKEN, call};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spaces_made_through_the_api_are_kept_on_rgw_and_served_by_another_pop() {
    let ceph = cluster();
    let dir = tempfile::tempdir().unwrap();
    let s3 = ceph.s3cmd(dir.path());
    let toml_bucket = ceph.bucket(&s3, "ctl-file");
    // Names no other test uses: every edge in front of this gateway shares its state.
    let (made, raced) = (ceph.name("ctl"), ceph.name("ctl"));
    let sections = format!(
        "[[admin.tokens]]\nname = \"ops\"\ntoken = \"{ADMIN_TOKEN}\"\n\
         [control]\npoll_interval = \"200ms\"\n{}",
        space("file", &toml_bucket, "")
    );
    let a = start_edge(&config("ctl-a", &ceph.endpoint, "", &sections)).await;
    let b = start_edge(&config("ctl-b", &ceph.endpoint, "", &sections)).await;
    let (admin_a, admin_b) = (
        format!("http://{}", a.admin_addr.unwrap()),
        format!("http://{}", b.admin_addr.unwrap()),
    );
    let c = reqwest::Client::new();

    // Made on one PoP: its bucket is created on RGW, an object goes in, the other serves it.
    let (status, reply) = call(
        &c,
        &admin_a,
        Method::POST,
        "/v1/spaces",
        Some(json!({"name": made})),
    )
    .await;
    assert_eq!(status, 201, "{reply}");
    let file = dir.path().join("a.txt");
    std::fs::write(&file, "on rgw").unwrap();
    s3.run(&[
        "put",
        "--acl-public",
        file.to_str().unwrap(),
        &format!("s3://{made}/a.txt"),
    ]);
    let edge = client(&[made.as_str()], &[]);
    let started = Instant::now();
    loop {
        let r = edge
            .get(url(b.http_addr, &made, "/a.txt"))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            assert_eq!(r.text().await.unwrap(), "on rgw");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "pop b never served {made}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Two creates of one name race on RGW's conditional writes: one wins.
    let (first, second) = tokio::join!(
        call(
            &c,
            &admin_a,
            Method::POST,
            "/v1/spaces",
            Some(json!({"name": raced}))
        ),
        call(
            &c,
            &admin_b,
            Method::POST,
            "/v1/spaces",
            Some(json!({"name": raced}))
        ),
    );
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{first:?} {second:?}");

    // Edits of different fields from both PoPs at once both land (If-Match on RGW).
    let path = format!("/v1/spaces/{made}");
    let (ttl, domain) = tokio::join!(
        call(
            &c,
            &admin_a,
            Method::PATCH,
            &path,
            Some(json!({"ttl": "7m"}))
        ),
        call(
            &c,
            &admin_b,
            Method::PATCH,
            &path,
            Some(json!({"custom_domain": format!("{made}.example.com")}))
        ),
    );
    assert_eq!((ttl.0, domain.0), (200, 200), "{ttl:?} {domain:?}");
    let started = Instant::now();
    loop {
        let (_, space) = call(&c, &admin_a, Method::GET, &path, None).await;
        if space["ttl"] == "7m" && space["custom_domain"] == format!("{made}.example.com") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{space}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for name in [&made, &raced] {
        let (status, _) = call(
            &c,
            &admin_b,
            Method::DELETE,
            &format!("/v1/spaces/{name}"),
            None,
        )
        .await;
        assert_eq!(status, 204);
    }
    a.stop().await;
    b.stop().await;
}
