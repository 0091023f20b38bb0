//! When RGW is not there or refuses: a gateway down at the edge's start, stopped while the
//! edge serves (stale-if-error) and back again; wrong keys; a missing bucket. Each case is a
//! clear error for what cannot be served, and the edge keeps serving what it has.

use std::time::{Duration, Instant};

use super::{config, space, url};
use crate::common::ceph::{Gateway, cluster};
use crate::common::{cache_status, client, start_edge};

async fn get(c: &reqwest::Client, url: &str) -> (u16, String, String) {
    let r = c.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let cache = cache_status(&r);
    (status, cache, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_down_at_start_then_stale_if_error_while_stopped_and_recovery() {
    let ceph = cluster();
    let dir = tempfile::tempdir().unwrap();
    let s3 = ceph.s3cmd(dir.path());
    let bucket = ceph.bucket(&s3, "avail");
    let objects = [
        ("sie.txt", "max-age=1, stale-if-error=600"),
        ("plain.txt", "max-age=1"),
        ("fresh.txt", "max-age=600"),
        ("late.txt", "max-age=600"),
    ];
    for (key, cache_control) in objects {
        s3.put(
            dir.path(),
            key.as_bytes(),
            &format!("s3://{bucket}/{key}"),
            &[
                "--acl-public",
                &format!("--add-header=Cache-Control:{cache_control}"),
            ],
        );
    }
    // A gateway of this test's own, down when the edge starts.
    let gateway = Gateway::start("avail");
    gateway.stop();
    let edge = start_edge(&config(
        "ceph-avail",
        &gateway.endpoint,
        "stale_grace = \"0s\"",
        &space("pub", &bucket, ""),
    ))
    .await;
    let c = client(&["pub"], &[]);
    let at = |key: &str| url(edge.http_addr, "pub", &format!("/{key}"));

    let (status, _, body) = get(&c, &at("sie.txt")).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("origin unavailable"),
        "a clear reason: {body}"
    );

    gateway.restart();
    for key in ["sie.txt", "plain.txt", "fresh.txt"] {
        let (status, cache, body) = get(&c, &at(key)).await;
        assert_eq!((status, body.as_str()), (200, key));
        assert_eq!(cache, "ceph-avail; fwd=miss; stored");
    }

    gateway.stop();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, cache, body) = get(&c, &at("fresh.txt")).await;
    assert_eq!((status, body.as_str()), (200, "fresh.txt"));
    assert!(cache.contains("hit"), "{cache}");
    let (status, cache, body) = get(&c, &at("sie.txt")).await;
    assert_eq!((status, body.as_str()), (200, "sie.txt"));
    assert!(
        cache.starts_with("ceph-avail; fwd=stale; fwd-status=502"),
        "{cache}"
    );
    let (status, _, body) = get(&c, &at("plain.txt")).await;
    assert_eq!(status, 502, "stale without stale-if-error: {body}");
    let (status, _, _) = get(&c, &at("late.txt")).await;
    assert_eq!(status, 502, "never fetched");

    // Back: the stale entry is revalidated, the rest fetched.
    gateway.restart();
    let (status, cache, body) = get(&c, &at("sie.txt")).await;
    assert_eq!((status, body.as_str()), (200, "sie.txt"));
    assert_eq!(cache, "ceph-avail; fwd=stale; fwd-status=304; stored");
    for key in ["plain.txt", "late.txt"] {
        let (status, _, body) = get(&c, &at(key)).await;
        assert_eq!((status, body.as_str()), (200, key));
    }
    edge.stop().await;
}

/// Waits until the disk tier of `edge` holds `n` entries.
async fn wait_for_disk_entries(edge: &edge::Running, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while edge.edge.cache.disk_usage().1 < n {
        assert!(Instant::now() < deadline, "the disk tier got no entry");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_are_a_clear_403_while_stored_objects_are_still_served() {
    let ceph = cluster();
    let dir = tempfile::tempdir().unwrap();
    let s3 = ceph.s3cmd(dir.path());
    let bucket = ceph.bucket(&s3, "keys");
    for key in ["cached.txt", "uncached.txt"] {
        s3.put(
            dir.path(),
            key.as_bytes(),
            &format!("s3://{bucket}/{key}"),
            &["--add-header=Cache-Control:max-age=600"],
        );
    }
    let disk = dir.path().join("cache");
    let cache = format!("disk_path = \"{}\"", disk.display());
    let spaces = space("priv", &bucket, "origin_auth = \"signed\"");
    let c = client(&["priv"], &[]);

    let edge = start_edge(&config("ceph-keys", &ceph.endpoint, &cache, &spaces)).await;
    let (status, _, _) = get(&c, &url(edge.http_addr, "priv", "/cached.txt")).await;
    assert_eq!(status, 200);
    wait_for_disk_entries(&edge, 1).await;
    edge.stop().await;

    // The same PoP restarted with a wrong secret, then with an unknown access key.
    let good = config("ceph-keys", &ceph.endpoint, &cache, &spaces);
    let wrong_secret = good.replace(&ceph.secret_key, "not-the-secret-key");
    let wrong_access = good.replace(&ceph.access_key, "NOSUCHACCESSKEY00000");
    for (text, code) in [
        (wrong_secret, "SignatureDoesNotMatch"),
        (wrong_access, "InvalidAccessKeyId"),
    ] {
        let edge = start_edge(&text).await;
        // (Until the start-up scan has indexed it, an entry stored with `Vary`, as every S3
        // space's is, is not found on disk.)
        let deadline = Instant::now() + Duration::from_secs(10);
        while edge.edge.cache.disk().scanning() {
            assert!(Instant::now() < deadline, "the disk scan never ended");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (status, cache, body) = get(&c, &url(edge.http_addr, "priv", "/uncached.txt")).await;
        assert_eq!(status, 403, "{body}");
        assert!(
            body.contains(code),
            "RGW's reason reaches the client: {body}"
        );
        assert!(!cache.contains("stored"), "{cache}");
        let (status, cache, body) = get(&c, &url(edge.http_addr, "priv", "/cached.txt")).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "cached.txt"),
            "{code}: {cache}"
        );
        assert!(cache.ends_with("detail=disk"), "{code}: {cache}");
        edge.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_a_clear_404_and_other_spaces_keep_serving() {
    let ceph = cluster();
    let dir = tempfile::tempdir().unwrap();
    let s3 = ceph.s3cmd(dir.path());
    let bucket = ceph.bucket(&s3, "present");
    s3.put(
        dir.path(),
        b"here",
        &format!("s3://{bucket}/here.txt"),
        &["--acl-public"],
    );
    let edge = start_edge(&config(
        "ceph-nobucket",
        &ceph.endpoint,
        "",
        &format!(
            "{}{}{}",
            space("pub", &bucket, ""),
            space("gone", "no-such-bucket-here", ""),
            space(
                "gonesigned",
                "no-such-bucket-here",
                "origin_auth = \"signed\""
            )
        ),
    ))
    .await;
    let c = client(&["pub", "gone", "gonesigned"], &[]);
    for space in ["gone", "gonesigned"] {
        let (status, _, body) = get(&c, &url(edge.http_addr, space, "/here.txt")).await;
        assert_eq!(status, 404, "{space}: {body}");
        assert!(body.contains("NoSuchBucket"), "{space}: {body}");
    }
    let (status, _, body) = get(&c, &url(edge.http_addr, "pub", "/here.txt")).await;
    assert_eq!((status, body.as_str()), (200, "here"));
    edge.stop().await;
}
