//! The edge in front of a versioned bucket of the embedded store (driven by the AWS CLI): a key
//! whose latest version is a delete marker is answered as a missing key (404 for a signed space
//! and for a listable bucket; never its old bytes) while its older versions stay in the store.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::common::s3::{ACCESS, SECRET};
use crate::common::{client, start_edge};

fn config(data: &Path) -> String {
    format!(
        r#"
[pop]
name = "ver"
[listen]
http = "127.0.0.1:0"
[cache]
default_ttl = "1h"
[origin]
kind = "embedded"
data_dir = "{data}"
lifecycle_interval = "10m"
lifecycle_day = "1h"
[[origin.user]]
id = "admin"
access_key = "{ACCESS}"
secret_key = "{SECRET}"
[[space]]
name = "assets"
[[space]]
name = "private"
origin_auth = "signed"
"#,
        data = data.join("origin").display()
    )
}

/// `aws s3api ...` against the origin; its JSON output.
fn aws(dir: &Path, origin: SocketAddr, args: &[&str]) -> serde_json::Value {
    let config = dir.join("aws-config");
    std::fs::write(
        &config,
        "[default]\nregion = us-east-1\noutput = json\ns3 =\n    addressing_style = path\n",
    )
    .unwrap();
    let out = Command::new("aws")
        .arg("--endpoint-url")
        .arg(format!("http://{origin}"))
        .args(args)
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_ACCESS_KEY_ID", ACCESS)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_PAGER", "")
        .output()
        .expect("the aws cli is installed (apt-get install awscli)");
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_whose_latest_version_is_a_delete_marker_are_404_at_the_edge() {
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&config(dir.path())).await;
    let origin = edge.origin_addr.unwrap();
    let body = dir.path().join("body.txt");
    std::fs::write(&body, "versioned bytes").unwrap();
    let body = body.to_str().unwrap();
    let c = client(&["assets", "private"], &[]);
    let port = edge.http_addr.unwrap().port();
    let url = |space: &str, path: &str| format!("http://{space}.local.cdn.localhost:{port}{path}");
    let d = dir.path();
    // Anonymous callers learn a key is missing only in a bucket they may list (as S3).
    aws(
        d,
        origin,
        &[
            "s3api",
            "put-bucket-acl",
            "--bucket",
            "assets",
            "--acl",
            "public-read",
        ],
    );
    for space in ["assets", "private"] {
        aws(
            d,
            origin,
            &[
                "s3api",
                "put-bucket-versioning",
                "--bucket",
                space,
                "--versioning-configuration",
                "Status=Enabled",
            ],
        );
        let put = aws(
            d,
            origin,
            &[
                "s3api",
                "put-object",
                "--bucket",
                space,
                "--key",
                "gone.txt",
                "--body",
                body,
                "--acl",
                "public-read",
            ],
        );
        let version = put["VersionId"].as_str().unwrap().to_owned();
        aws(
            d,
            origin,
            &[
                "s3api",
                "put-object",
                "--bucket",
                space,
                "--key",
                "kept.txt",
                "--body",
                body,
                "--acl",
                "public-read",
            ],
        );
        let del = aws(
            d,
            origin,
            &[
                "s3api",
                "delete-object",
                "--bucket",
                space,
                "--key",
                "gone.txt",
            ],
        );
        assert_eq!(del["DeleteMarker"], true);

        let r = c.get(url(space, "/gone.txt")).send().await.unwrap();
        assert_eq!(
            r.status(),
            404,
            "{space}: the latest version is a delete marker"
        );
        let r = c.get(url(space, "/gone.txt")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{space}: and stays so");
        let r = c.get(url(space, "/never.txt")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{space}: as a key that never existed");
        let r = c.get(url(space, "/kept.txt")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{space}");
        assert_eq!(r.text().await.unwrap(), "versioned bytes");
        // The old version is still in the store.
        let head = aws(
            d,
            origin,
            &[
                "s3api",
                "head-object",
                "--bucket",
                space,
                "--key",
                "gone.txt",
                "--version-id",
                &version,
            ],
        );
        assert_eq!(head["ContentLength"], 15);
    }
    edge.stop().await;
}
