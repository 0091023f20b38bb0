//! S3 behaviours as clients expect them, checked with boto3 (a client we did not write;
//! `scripts/test.sh` installs it when missing) against the store on port 0. Each test runs one
//! group of `boto3/conformance.py`, whose checks mirror ceph's s3-tests cases.

use std::path::Path;

use crate::common::{ALICE, BOB, Server, User};

/// Runs the checks of `group` against `endpoint`; fails with the script's report.
async fn run_group(endpoint: &str, ca: Option<&Path>, group: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/boto3/conformance.py");
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(script).arg(group).env("ENDPOINT", endpoint);
    if let Some(ca) = ca {
        cmd.env("CA_BUNDLE", ca);
    }
    for (name, user) in [("ALICE", ALICE), ("BOB", BOB)] {
        let User {
            id,
            access_key,
            secret_key,
        } = user;
        cmd.env(format!("{name}_ID"), id)
            .env(format!("{name}_NAME"), format!("{id} display"))
            .env(format!("{name}_KEY"), access_key)
            .env(format!("{name}_SECRET"), secret_key);
    }
    let out = cmd.output().await.expect(
        "python3 runs (with boto3 and requests: apt-get install python3-boto3 python3-requests)",
    );
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.contains(" passed, 0 failed"),
        "boto3 group {group} failed:\n{report}"
    );
}

async fn plain(group: &str) {
    let server = Server::start().await;
    run_group(&server.url(""), None, group).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_buckets() {
    plain("buckets").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_objects() {
    plain("objects").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_listing() {
    plain("listing").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_multipart() {
    plain("multipart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_presigned() {
    plain("presigned").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_acl() {
    plain("acl").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_policy() {
    plain("policy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_cors() {
    plain("cors").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_logging_configuration() {
    plain("logging").await;
}

/// Over HTTPS the same client works (certificate checked against the CA bundle), and the
/// policy conditions see `aws:SecureTransport = true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_over_https() {
    let (server, ca) = Server::start_tls().await;
    let endpoint = format!("https://127.0.0.1:{}", server.addr.port());
    run_group(&endpoint, Some(&ca), "objects").await;
    run_group(&endpoint, Some(&ca), "policy").await;
}
