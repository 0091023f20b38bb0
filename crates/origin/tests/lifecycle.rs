//! Lifecycle rules driven by the AWS CLI against a store whose lifecycle "day" lasts two
//! seconds and whose worker runs every 500 ms: expiry of current versions (a delete marker in
//! versioned buckets), of noncurrent versions and of expired delete markers, aborts of stale
//! multipart uploads, and S3's validation errors.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::aws::Aws;
use crate::common::{ALICE, Server};

const DAY: Duration = Duration::from_secs(2);
const TICK: Duration = Duration::from_millis(500);

async fn lifecycle_server() -> Server {
    Server::start_with_lifecycle(TICK, DAY).await
}

/// Polls `check` until it holds or `limit` passes.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn blob_count(server: &Server) -> usize {
    std::fs::read_dir(server.dir.path().join("blobs"))
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum()
}

async fn put_rules(aws: &Aws, bucket: &str, rules: &str) {
    aws.json(&[
        "s3api",
        "put-bucket-lifecycle-configuration",
        "--bucket",
        bucket,
        "--lifecycle-configuration",
        rules,
    ])
    .await;
}

async fn keys(aws: &Aws, bucket: &str) -> Vec<String> {
    let ls = aws
        .json(&["s3api", "list-objects-v2", "--bucket", bucket])
        .await;
    ls["Contents"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| o["Key"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn uploads(aws: &Aws) -> Vec<String> {
    let v: Value = aws
        .json(&["s3api", "list-multipart-uploads", "--bucket", "mpu"])
        .await;
    v["Uploads"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|u| u["Key"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn version_count(aws: &Aws, bucket: &str) -> (usize, usize) {
    let v = aws
        .json(&["s3api", "list-object-versions", "--bucket", bucket])
        .await;
    let n = |f: &str| v[f].as_array().map_or(0, Vec::len);
    (n("Versions"), n("DeleteMarkers"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiration_days_removes_matching_objects_and_their_bodies() {
    let server = lifecycle_server().await;
    let aws = Aws::new(&server, ALICE);
    aws.json(&["s3api", "create-bucket", "--bucket", "exp"])
        .await;
    let body = aws.file("b", b"temporary");
    for key in ["tmp/a", "tmp/b", "keep/c"] {
        aws.json(&[
            "s3api",
            "put-object",
            "--bucket",
            "exp",
            "--key",
            key,
            "--body",
            &body,
        ])
        .await;
    }
    put_rules(
        &aws,
        "exp",
        r#"{"Rules":[{"ID":"tmp","Status":"Enabled","Filter":{"Prefix":"tmp/"},"Expiration":{"Days":1}}]}"#,
    )
    .await;
    let got = aws
        .json(&[
            "s3api",
            "get-bucket-lifecycle-configuration",
            "--bucket",
            "exp",
        ])
        .await;
    assert_eq!(got["Rules"][0]["ID"], "tmp");
    assert_eq!(got["Rules"][0]["Expiration"]["Days"], 1);
    assert_eq!(got["Rules"][0]["Filter"]["Prefix"], "tmp/");
    // A fresh object is younger than a day: still there right after the rule is stored
    // (unless the two aws cli runs took a lifecycle day on a loaded machine).
    let put_at = Instant::now();
    aws.json(&[
        "s3api",
        "put-object",
        "--bucket",
        "exp",
        "--key",
        "tmp/fresh",
        "--body",
        &body,
    ])
    .await;
    let head = aws
        .run(&[
            "s3api",
            "head-object",
            "--bucket",
            "exp",
            "--key",
            "tmp/fresh",
        ])
        .await;
    assert!(
        head.ok || put_at.elapsed() >= DAY,
        "a fresh object expired within a day: {}",
        head.stderr
    );
    eventually(
        Duration::from_secs(20),
        "tmp/ objects to expire",
        || async { keys(&aws, "exp").await == ["keep/c"] },
    )
    .await;
    assert_eq!(
        blob_count(&server),
        1,
        "expired bodies are removed from disk"
    );
    // Deleting the configuration stops it.
    aws.json(&["s3api", "delete-bucket-lifecycle", "--bucket", "exp"])
        .await;
    let err = aws
        .fails(&[
            "s3api",
            "get-bucket-lifecycle-configuration",
            "--bucket",
            "exp",
        ])
        .await;
    assert!(err.contains("NoSuchLifecycleConfiguration"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioned_expiry_writes_markers_then_removes_noncurrent_versions() {
    let server = lifecycle_server().await;
    let aws = Aws::new(&server, ALICE);
    aws.json(&["s3api", "create-bucket", "--bucket", "vexp"])
        .await;
    aws.json(&[
        "s3api",
        "put-bucket-versioning",
        "--bucket",
        "vexp",
        "--versioning-configuration",
        "Status=Enabled",
    ])
    .await;
    let body = aws.file("b", b"versioned");
    for _ in 0..2 {
        aws.json(&[
            "s3api",
            "put-object",
            "--bucket",
            "vexp",
            "--key",
            "v/x",
            "--body",
            &body,
        ])
        .await;
    }
    aws.json(&[
        "s3api",
        "put-object",
        "--bucket",
        "vexp",
        "--key",
        "other",
        "--body",
        &body,
    ])
    .await;
    // Current versions expire after 1 day, noncurrent ones 2 days after they became
    // noncurrent, and a marker left alone goes too.
    put_rules(
        &aws,
        "vexp",
        r#"{"Rules":[
            {"ID":"current","Status":"Enabled","Filter":{"Prefix":"v/"},"Expiration":{"Days":1},
             "NoncurrentVersionExpiration":{"NoncurrentDays":2}},
            {"ID":"markers","Status":"Enabled","Filter":{"Prefix":"v/"},
             "Expiration":{"ExpiredObjectDeleteMarker":true}}]}"#,
    )
    .await;
    // First the current version expires into a delete marker.
    eventually(
        Duration::from_secs(20),
        "a delete marker on v/x",
        || async { version_count(&aws, "vexp").await.1 == 1 },
    )
    .await;
    let err = aws
        .fails(&["s3api", "head-object", "--bucket", "vexp", "--key", "v/x"])
        .await;
    assert!(err.contains("404"), "{err}");
    // Then the noncurrent versions, then the lone marker.
    eventually(
        Duration::from_secs(30),
        "every version of v/x to go",
        || async { version_count(&aws, "vexp").await == (1, 0) },
    )
    .await;
    assert_eq!(keys(&aws, "vexp").await, ["other"]);
    assert_eq!(blob_count(&server), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_multipart_uploads_are_aborted() {
    let server = lifecycle_server().await;
    let aws = Aws::new(&server, ALICE);
    aws.json(&["s3api", "create-bucket", "--bucket", "mpu"])
        .await;
    let part = aws.file("p", &vec![7u8; 1024]);
    let mut ids = Vec::new();
    for key in ["up/a", "stay/b"] {
        let up = aws
            .json(&[
                "s3api",
                "create-multipart-upload",
                "--bucket",
                "mpu",
                "--key",
                key,
            ])
            .await;
        let id = up["UploadId"].as_str().unwrap().to_owned();
        aws.json(&[
            "s3api",
            "upload-part",
            "--bucket",
            "mpu",
            "--key",
            key,
            "--upload-id",
            &id,
            "--part-number",
            "1",
            "--body",
            &part,
        ])
        .await;
        ids.push(id);
    }
    put_rules(
        &aws,
        "mpu",
        r#"{"Rules":[{"ID":"abort","Status":"Enabled","Filter":{"Prefix":"up/"},
            "AbortIncompleteMultipartUpload":{"DaysAfterInitiation":1}}]}"#,
    )
    .await;
    eventually(
        Duration::from_secs(20),
        "the up/ upload to be aborted",
        || async { uploads(&aws).await == ["stay/b"] },
    )
    .await;
    assert_eq!(
        blob_count(&server),
        1,
        "the aborted upload's part is removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_rules_are_refused_as_s3_does() {
    let server = Server::start().await;
    let aws = Aws::new(&server, ALICE);
    aws.json(&["s3api", "create-bucket", "--bucket", "bad"])
        .await;
    let err = aws
        .fails(&[
            "s3api",
            "get-bucket-lifecycle-configuration",
            "--bucket",
            "bad",
        ])
        .await;
    assert!(err.contains("NoSuchLifecycleConfiguration"), "{err}");
    for (rules, code) in [
        (
            r#"{"Rules":[{"ID":"a","Status":"Enabled","Filter":{"Prefix":""},"Expiration":{"Days":0}}]}"#,
            "InvalidArgument",
        ),
        (
            r#"{"Rules":[{"ID":"a","Status":"Enabled","Filter":{"Prefix":""},"Expiration":{"Days":1,"Date":"2030-01-01T00:00:00Z"}}]}"#,
            "MalformedXML",
        ),
        (
            r#"{"Rules":[{"ID":"a","Status":"Enabled","Filter":{"Prefix":""},"Expiration":{"Date":"2030-01-01T05:00:00Z"}}]}"#,
            "InvalidArgument",
        ),
        (
            r#"{"Rules":[{"ID":"a","Status":"Enabled","Filter":{"Prefix":""},"NoncurrentVersionExpiration":{"NoncurrentDays":-1}}]}"#,
            "InvalidArgument",
        ),
        (
            r#"{"Rules":[{"ID":"a","Status":"Enabled","Filter":{"Prefix":""},"Expiration":{"Days":1}},
                        {"ID":"a","Status":"Enabled","Filter":{"Prefix":"x"},"Expiration":{"Days":2}}]}"#,
            "InvalidArgument",
        ),
        (
            r#"{"Rules":[{"ID":"a","Status":"Enabled","Filter":{"Prefix":""}}]}"#,
            "InvalidRequest",
        ),
    ] {
        let err = aws
            .fails(&[
                "s3api",
                "put-bucket-lifecycle-configuration",
                "--bucket",
                "bad",
                "--lifecycle-configuration",
                rules,
            ])
            .await;
        assert!(err.contains(code), "{rules}: {err}");
    }
    // A Date rule round-trips.
    put_rules(
        &aws,
        "bad",
        r#"{"Rules":[{"ID":"d","Status":"Disabled","Filter":{"Prefix":"p/"},"Expiration":{"Date":"2030-01-01T00:00:00Z"}}]}"#,
    )
    .await;
    let got = aws
        .json(&[
            "s3api",
            "get-bucket-lifecycle-configuration",
            "--bucket",
            "bad",
        ])
        .await;
    assert_eq!(got["Rules"][0]["Status"], "Disabled");
    assert!(
        got["Rules"][0]["Expiration"]["Date"]
            .as_str()
            .unwrap()
            .starts_with("2030-01-01T00:00:00"),
        "{got}"
    );
}
