//! The store over HTTPS: an upload with the aws cli (certificate checked against a CA
//! bundle), HTTP/2 and HTTP/1.1 by ALPN, and the TLS fields of the access log.

use std::time::Duration;

use crate::common::{ALICE, Server, User, data, md5_hex, sign};

async fn aws(user: User, ca: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new("aws")
        .args(args)
        .arg("--ca-bundle")
        .arg(ca)
        .env("AWS_ACCESS_KEY_ID", user.access_key)
        .env("AWS_SECRET_ACCESS_KEY", user.secret_key)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .await
        .expect("the aws cli is installed (pip install awscli)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_uploads_over_https() {
    let (server, ca) = Server::start_tls().await;
    let endpoint = format!("https://127.0.0.1:{}", server.addr.port());
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(9 * 1024 * 1024 + 7, 3);
    let src = tmp.path().join("big.bin");
    std::fs::write(&src, &bytes).unwrap();
    let (ok, out) = aws(
        ALICE,
        &ca,
        &["s3", "mb", "s3://secure", "--endpoint-url", &endpoint],
    )
    .await;
    assert!(ok, "{out}");
    // 9 MiB: the aws cli uploads it in parts (multipart) over TLS.
    let (ok, out) = aws(
        ALICE,
        &ca,
        &[
            "s3",
            "cp",
            src.to_str().unwrap(),
            "s3://secure/dir/big.bin",
            "--endpoint-url",
            &endpoint,
        ],
    )
    .await;
    assert!(ok, "{out}");
    let got = tmp.path().join("got.bin");
    let (ok, out) = aws(
        ALICE,
        &ca,
        &[
            "s3",
            "cp",
            "s3://secure/dir/big.bin",
            got.to_str().unwrap(),
            "--endpoint-url",
            &endpoint,
        ],
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(md5_hex(&std::fs::read(&got).unwrap()), md5_hex(&bytes));

    // Without the CA bundle the certificate is refused: it is really checked.
    let out = tokio::process::Command::new("aws")
        .args(["s3", "ls", "s3://secure", "--endpoint-url", &endpoint])
        .env("AWS_ACCESS_KEY_ID", ALICE.access_key)
        .env("AWS_SECRET_ACCESS_KEY", ALICE.secret_key)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SSL"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_chooses_http2_or_http1_and_the_log_shows_tls() {
    let (server, ca) = Server::start_tls().await;
    let pem = std::fs::read(&ca).unwrap();
    let base = format!("https://127.0.0.1:{}", server.addr.port());
    let signed = |client: &reqwest::Client, method: &str, path: &str, body: &'static str| {
        let url = format!("{base}{path}");
        let headers =
            sign::sign_headers(ALICE, method, &url, &[], &sign::sha256_hex(body.as_bytes()));
        let mut req = client.request(method.parse().unwrap(), &url).body(body);
        for (k, v) in headers {
            if k != "host" {
                req = req.header(k, v);
            }
        }
        req
    };
    let h2 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let h1 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .http1_only()
        .build()
        .unwrap();
    let resp = signed(&h2, "PUT", "/tls", "").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let resp = signed(&h1, "PUT", "/logs", "").send().await.unwrap();
    assert_eq!(
        (resp.status().as_u16(), resp.version()),
        (200, reqwest::Version::HTTP_11)
    );
    let logging = r#"<BucketLoggingStatus xmlns="http://doc.s3.amazonaws.com/2006-03-01/"><LoggingEnabled><TargetBucket>logs</TargetBucket><TargetPrefix></TargetPrefix></LoggingEnabled></BucketLoggingStatus>"#;
    let resp = signed(&h2, "PUT", "/tls?logging", logging)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = signed(&h2, "PUT", "/tls/k", "v").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = signed(&h1, "GET", "/tls/k", "").send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "v");
    server.store.flush_access_logs().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let listed = signed(&h1, "GET", "/logs", "").send().await.unwrap();
    let text = listed.text().await.unwrap();
    let keys = crate::common::xml_fields(&text, "Key");
    let mut log = String::new();
    for key in keys {
        let path = format!("/logs/{key}");
        let body = signed(&h1, "GET", &path, "").send().await.unwrap();
        log.push_str(&body.text().await.unwrap());
    }
    let put = log
        .lines()
        .find(|l| l.contains("REST.PUT.OBJECT"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(put.contains("\"PUT /tls/k HTTP/2.0\""), "{put}");
    assert!(put.contains(" TLSv1.3 - -"), "{put}");
    assert!(put.contains(" TLS13_"), "cipher suite: {put}");
    let get = log
        .lines()
        .find(|l| l.contains("REST.GET.OBJECT"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(get.contains("\"GET /tls/k HTTP/1.1\""), "{get}");
}
