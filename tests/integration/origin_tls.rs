//! `origin.tls = true`: the embedded origin serves HTTPS with the `[tls]` certificates (here
//! the generated development one); an upload with the aws cli goes over HTTPS, and the edge's
//! own fetches from the origin go over TLS, checking the certificate.

use std::path::Path;

use crate::common::s3::{ACCESS, SECRET};
use crate::common::{client, start_edge};

fn config(data: &Path) -> String {
    format!(
        r#"
[pop]
name = "otls"
[listen]
http = "127.0.0.1:0"
[tls]
self_signed = true
[cache]
default_ttl = "1h"
[origin]
kind = "embedded"
data_dir = "{data}"
tls = true
log_flush = "1s"
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

/// The certificate the origin serves, exported as the README's quick start does.
fn served_pem(origin: std::net::SocketAddr, dir: &Path) -> std::path::PathBuf {
    let path = dir.join("origin.pem");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {origin} </dev/null 2>/dev/null | openssl x509 > {}",
            path.display()
        ))
        .status()
        .expect("openssl is installed");
    assert!(status.success());
    path
}

fn aws(ca: &Path, endpoint: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("aws")
        .args(args)
        .args(["--endpoint-url", endpoint, "--ca-bundle"])
        .arg(ca)
        .env("AWS_ACCESS_KEY_ID", ACCESS)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("the aws cli is installed (pip install awscli)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "aws {args:?}: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_uploads_and_verified_edge_fetches() {
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&config(dir.path())).await;
    let origin = edge.origin_addr.unwrap();
    let endpoint = format!("https://{origin}");
    let ca = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || served_pem(origin, &dir)
    })
    .await
    .unwrap();
    let file = dir.path().join("hello.txt");
    std::fs::write(&file, "over tls").unwrap();
    let file = file.to_str().unwrap();
    tokio::task::spawn_blocking({
        let (ca, endpoint, file) = (ca.clone(), endpoint.clone(), file.to_owned());
        move || {
            aws(
                &ca,
                &endpoint,
                &[
                    "s3",
                    "cp",
                    "--acl",
                    "public-read",
                    &file,
                    "s3://assets/hello.txt",
                ],
            );
            aws(
                &ca,
                &endpoint,
                &["s3", "cp", &file, "s3://private/hello.txt"],
            );
            let listed = aws(&ca, &endpoint, &["s3", "ls", "s3://assets/"]);
            assert!(listed.contains("hello.txt"), "{listed}");
        }
    })
    .await
    .unwrap();

    // Plain HTTP to the origin port is not served.
    let plain = reqwest::get(format!("http://{origin}/assets/hello.txt")).await;
    assert!(
        plain.is_err() || plain.unwrap().status() == 400,
        "the origin speaks TLS only"
    );

    let c = client(&["assets", "private"], &[]);
    let port = edge.http_addr.unwrap().port();
    for space in ["assets", "private"] {
        let r = c
            .get(format!(
                "http://{space}.local.cdn.localhost:{port}/hello.txt"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{space}");
        assert_eq!(r.text().await.unwrap(), "over tls");
    }
}
