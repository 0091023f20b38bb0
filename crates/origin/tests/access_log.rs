//! Server access logs: records delivered as objects to the target bucket, each line parsed
//! back field by field in the S3 server access log format; version ids of versioned requests;
//! signatures never logged; records buffered at a clean stop are delivered before the store
//! stops.

use std::time::{Duration, SystemTime};

use crate::common::{ALICE, BOB, Server, config, sign, xml_fields};

const LOGGING_XML: &str = r#"<BucketLoggingStatus xmlns="http://doc.s3.amazonaws.com/2006-03-01/"><LoggingEnabled><TargetBucket>logs</TargetBucket><TargetPrefix>access/</TargetPrefix></LoggingEnabled></BucketLoggingStatus>"#;

/// Splits a log line into its fields: space-separated, `[...]` and `"..."` (with `\"` and
/// `\\` escapes) kept whole.
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        let mut field = String::new();
        match c {
            '[' => {
                for c in chars.by_ref() {
                    field.push(c);
                    if c == ']' {
                        break;
                    }
                }
            }
            '"' => {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => field.extend(chars.next()),
                        '"' => break,
                        c => field.push(c),
                    }
                }
            }
            _ => {
                while let Some(&c) = chars.peek() {
                    if c == ' ' {
                        break;
                    }
                    field.push(c);
                    chars.next();
                }
            }
        }
        out.push(field);
        if chars.peek() == Some(&' ') {
            chars.next();
        }
    }
    out
}

/// Waits until the log objects under `logs/access/` hold at least `want` lines; returns them.
async fn delivered(server: &Server, want: usize) -> (Vec<String>, Vec<String>) {
    for _ in 0..100 {
        let list = server
            .request(Some(ALICE), "GET", "/logs?prefix=access/", &[], "")
            .await;
        let keys = xml_fields(&list.text(), "Key");
        let mut lines = Vec::new();
        for key in &keys {
            let body = server
                .request(Some(ALICE), "GET", &format!("/logs/{key}"), &[], "")
                .await;
            assert_eq!(body.status, 200);
            lines.extend(body.text().lines().map(str::to_owned));
        }
        if lines.len() >= want {
            return (keys, lines);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the access log was not delivered");
}

fn line_with<'a>(lines: &'a [Vec<String>], request_id: &str) -> &'a Vec<String> {
    lines
        .iter()
        .find(|f| f.get(5).map(String::as_str) == Some(request_id))
        .unwrap_or_else(|| panic!("no record for request {request_id} in {lines:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_log_parses_field_by_field() {
    let server = Server::start().await;
    for b in ["/src", "/logs"] {
        assert_eq!(
            server.request(Some(ALICE), "PUT", b, &[], "").await.status,
            200
        );
    }
    let resp = server
        .request(Some(ALICE), "PUT", "/src?logging", &[], LOGGING_XML)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());

    let put = server
        .request(Some(ALICE), "PUT", "/src/dir/a%20b.txt", &[], "hello")
        .await;
    assert_eq!(put.status, 200);
    let get = server
        .request(
            Some(ALICE),
            "GET",
            "/src/dir/a%20b.txt",
            &[
                ("user-agent", "test-agent/1.0 \"quoted\""),
                ("referer", "http://example.com/page"),
            ],
            "",
        )
        .await;
    assert_eq!(get.status, 200);
    let denied = server
        .request(None, "GET", "/src/dir/a%20b.txt", &[], "")
        .await;
    assert_eq!(denied.status, 403);
    let missing = server
        .request(Some(BOB), "HEAD", "/src/nope", &[], "")
        .await;
    assert_eq!(missing.status, 403);
    let url = sign::presign(
        ALICE,
        &server.url("/src/dir/a%20b.txt"),
        SystemTime::now(),
        Duration::from_secs(60),
    );
    let signature = url.split("X-Amz-Signature=").nth(1).unwrap().to_owned();
    let presigned = reqwest::get(&url).await.unwrap();
    assert_eq!(presigned.status(), 200);
    let presigned_id = presigned.headers()["x-amz-request-id"]
        .to_str()
        .unwrap()
        .to_owned();

    let (keys, raw) = delivered(&server, 5).await;
    for key in &keys {
        let stamp = key.strip_prefix("access/").unwrap();
        let (date, unique) = stamp.rsplit_once('-').unwrap();
        assert_eq!(date.len(), "2026-01-02-03-04-05".len(), "{key}");
        assert!(date.split('-').all(|p| p.parse::<u32>().is_ok()), "{key}");
        assert_eq!(unique.len(), 16, "{key}");
    }
    assert!(
        raw.iter().all(|l| !l.contains(&signature)),
        "no signature is logged"
    );
    let lines: Vec<Vec<String>> = raw.iter().map(|l| fields(l)).collect();
    for f in &lines {
        assert_eq!(f.len(), 26, "{f:?}");
    }
    let host = server.addr.to_string();

    let id = get.header("x-amz-request-id").unwrap();
    let f = line_with(&lines, id);
    assert_eq!(f[0], "alice", "bucket owner");
    assert_eq!(f[1], "src", "bucket");
    assert!(
        f[2].starts_with('[') && f[2].ends_with(" +0000]") && f[2].len() == 28,
        "time {}",
        f[2]
    );
    assert_eq!(f[3], "127.0.0.1", "remote ip");
    assert_eq!(f[4], "alice", "requester");
    assert_eq!(f[5], id, "request id");
    assert_eq!(f[6], "REST.GET.OBJECT", "operation");
    assert_eq!(f[7], "dir/a%20b.txt", "key");
    assert_eq!(f[8], "GET /src/dir/a%20b.txt HTTP/1.1", "request uri");
    assert_eq!(f[9], "200", "status");
    assert_eq!(f[10], "-", "error code");
    assert_eq!(f[11], "5", "bytes sent");
    assert_eq!(f[12], "5", "object size");
    let total: u64 = f[13].parse().unwrap();
    let turnaround: u64 = f[14].parse().unwrap();
    assert!(
        turnaround <= total,
        "turn-around {turnaround} within total {total}"
    );
    assert_eq!(f[15], "http://example.com/page", "referer");
    assert_eq!(f[16], "test-agent/1.0 \"quoted\"", "user agent");
    assert_eq!(f[17], "-", "version id");
    assert_eq!(f[18], id, "host id");
    assert_eq!(f[19], "SigV4", "signature version");
    assert_eq!(f[20], "-", "cipher suite (plain HTTP)");
    assert_eq!(f[21], "AuthHeader", "authentication type");
    assert_eq!(f[22], host, "host header");
    assert_eq!(f[23], "-", "TLS version");

    let f = line_with(&lines, put.header("x-amz-request-id").unwrap());
    assert_eq!((f[6].as_str(), f[9].as_str()), ("REST.PUT.OBJECT", "200"));
    assert_eq!((f[11].as_str(), f[12].as_str()), ("-", "5"));

    let f = line_with(&lines, denied.header("x-amz-request-id").unwrap());
    assert_eq!(f[4], "-", "anonymous requester");
    assert_eq!((f[9].as_str(), f[10].as_str()), ("403", "AccessDenied"));
    assert_eq!((f[19].as_str(), f[21].as_str()), ("-", "-"));

    let f = line_with(&lines, missing.header("x-amz-request-id").unwrap());
    assert_eq!(
        (f[4].as_str(), f[6].as_str(), f[9].as_str()),
        ("bob", "REST.HEAD.OBJECT", "403")
    );

    let f = line_with(&lines, &presigned_id);
    assert_eq!(f[21], "QueryString", "authentication type");
    assert!(
        f[8].contains("X-Amz-Signature=REDACTED") && f[8].contains("X-Amz-Credential="),
        "{}",
        f[8]
    );

    // Only the owner reads the configuration; turning it off stops the records.
    let resp = server
        .request(Some(BOB), "GET", "/src?logging", &[], "")
        .await;
    assert_eq!(resp.status, 403);
    let resp = server
        .request(Some(ALICE), "GET", "/src?logging", &[], "")
        .await;
    assert!(
        resp.text().contains("<TargetPrefix>access/</TargetPrefix>"),
        "{}",
        resp.text()
    );
}

/// In a versioned bucket each record carries the version id: the one the request named (even
/// when it does not exist), else the one the response names (a new version, a delete marker).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioned_requests_log_their_version_id() {
    let server = Server::start().await;
    for b in ["/src", "/logs"] {
        assert_eq!(
            server.request(Some(ALICE), "PUT", b, &[], "").await.status,
            200
        );
    }
    let enable = "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>";
    for (path, body) in [("/src?versioning", enable), ("/src?logging", LOGGING_XML)] {
        let resp = server.request(Some(ALICE), "PUT", path, &[], body).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    let first = server
        .request(Some(ALICE), "PUT", "/src/k", &[], "one")
        .await;
    let v1 = first.header("x-amz-version-id").unwrap().to_owned();
    let second = server
        .request(Some(ALICE), "PUT", "/src/k", &[], "two")
        .await;
    let v2 = second.header("x-amz-version-id").unwrap().to_owned();
    let old = server
        .request(
            Some(ALICE),
            "GET",
            &format!("/src/k?versionId={v1}"),
            &[],
            "",
        )
        .await;
    assert_eq!((old.status, old.text().as_str()), (200, "one"));
    // A well-formed id no version has (the sequence part of v2, another random part).
    let unknown = format!("{}{}", &v2[..16], "0".repeat(16));
    assert_ne!(unknown, v2);
    let missing = server
        .request(
            Some(ALICE),
            "GET",
            &format!("/src/k?versionId={unknown}"),
            &[],
            "",
        )
        .await;
    assert_eq!(
        (missing.status, missing.code().as_str()),
        (404, "NoSuchVersion")
    );
    let delete = server
        .request(Some(ALICE), "DELETE", "/src/k", &[], "")
        .await;
    assert_eq!(delete.header("x-amz-delete-marker"), Some("true"));
    let marker = delete.header("x-amz-version-id").unwrap().to_owned();

    let (_, raw) = delivered(&server, 5).await;
    let lines: Vec<Vec<String>> = raw.iter().map(|l| fields(l)).collect();
    for (resp, op, version) in [
        (&first, "REST.PUT.OBJECT", &v1),
        (&second, "REST.PUT.OBJECT", &v2),
        (&old, "REST.GET.OBJECT", &v1),
        (&missing, "REST.GET.OBJECT", &unknown),
        (&delete, "REST.DELETE.OBJECT", &marker),
    ] {
        let f = line_with(&lines, resp.header("x-amz-request-id").unwrap());
        assert_eq!(
            (f[6].as_str(), f[17].as_str()),
            (op, version.as_str()),
            "{f:?}"
        );
    }
    let f = line_with(&lines, missing.header("x-amz-request-id").unwrap());
    assert_eq!((f[9].as_str(), f[10].as_str()), ("404", "NoSuchVersion"));
}

/// Records still buffered when the store stops cleanly are delivered before it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_records_are_delivered_at_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), None);
    cfg.log_flush = Duration::from_secs(3600);
    let serve = |store: origin::Store| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            store
                .serve(listener, async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        (addr, tx, task)
    };
    let store = origin::Store::open(cfg.clone()).unwrap();
    let (addr, stop, task) = serve(store).await;
    let req = |method: &'static str, path: &'static str, body: &'static str| async move {
        let url = format!("http://{addr}{path}");
        let hash = sign::sha256_hex(body.as_bytes());
        let headers = sign::sign_headers(ALICE, method, &url, &[], &hash);
        crate::common::send(addr, method, path, &headers, body.into()).await
    };
    assert_eq!(req("PUT", "/src", "").await.status, 200);
    assert_eq!(req("PUT", "/logs", "").await.status, 200);
    assert_eq!(req("PUT", "/src?logging", LOGGING_XML).await.status, 200);
    assert_eq!(req("PUT", "/src/k", "v").await.status, 200);
    assert_eq!(req("GET", "/src/k", "").await.status, 200);
    let listed = req("GET", "/logs", "").await;
    assert!(
        xml_fields(&listed.text(), "Key").is_empty(),
        "nothing delivered yet"
    );
    stop.send(()).unwrap();
    task.await.unwrap();

    let store = origin::Store::open(cfg).unwrap();
    let (addr2, stop, task) = serve(store).await;
    let url = format!("http://{addr2}/logs");
    let headers = sign::sign_headers(ALICE, "GET", &url, &[], &sign::sha256_hex(b""));
    let listed = crate::common::send(addr2, "GET", "/logs", &headers, "".into()).await;
    let keys = xml_fields(&listed.text(), "Key");
    assert_eq!(keys.len(), 1, "{}", listed.text());
    let path = format!("/logs/{}", keys[0]);
    let url = format!("http://{addr2}{path}");
    let headers = sign::sign_headers(ALICE, "GET", &url, &[], &sign::sha256_hex(b""));
    let log = crate::common::send(addr2, "GET", &path, &headers, "".into()).await;
    let ops: Vec<String> = log.text().lines().map(|l| fields(l)[6].clone()).collect();
    assert!(ops.contains(&"REST.PUT.OBJECT".to_owned()), "{ops:?}");
    assert!(ops.contains(&"REST.GET.OBJECT".to_owned()), "{ops:?}");
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// All log lines delivered to `logs/` of a child store.
async fn child_log(child: &crate::common::child::Child) -> Vec<String> {
    let list = child
        .request(Some(ALICE), "GET", "/logs", bytes::Bytes::new())
        .await;
    let mut lines = Vec::new();
    for key in xml_fields(&list.text(), "Key") {
        let body = child
            .request(
                Some(ALICE),
                "GET",
                &format!("/logs/{key}"),
                bytes::Bytes::new(),
            )
            .await;
        lines.extend(body.text().lines().map(str::to_owned));
    }
    lines
}

/// A SIGKILL loses at most what was buffered since the last delivery (`log_flush` is 1 s in
/// the test stores): every record delivered before it survives the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loses_at_most_the_last_interval() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = crate::common::child::Child::spawn(dir.path()).await;
    for b in ["/src", "/logs"] {
        assert_eq!(
            child
                .request(Some(ALICE), "PUT", b, bytes::Bytes::new())
                .await
                .status,
            200
        );
    }
    let resp = child
        .request(Some(ALICE), "PUT", "/src?logging", LOGGING_XML.into())
        .await;
    assert_eq!(resp.status, 200);
    let mut ids = Vec::new();
    for i in 0..5 {
        let resp = child
            .request(Some(ALICE), "PUT", &format!("/src/k{i}"), "v".into())
            .await;
        ids.push(resp.header("x-amz-request-id").unwrap().to_owned());
    }
    let mut delivered = Vec::new();
    for _ in 0..100 {
        delivered = child_log(&child).await;
        if ids
            .iter()
            .all(|id| delivered.iter().any(|l| l.contains(id.as_str())))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ids.iter()
            .all(|id| delivered.iter().any(|l| l.contains(id.as_str()))),
        "{delivered:?}"
    );
    // More records, then a crash before the next delivery may have run.
    for i in 0..5 {
        child
            .request(
                Some(ALICE),
                "GET",
                &format!("/src/k{i}"),
                bytes::Bytes::new(),
            )
            .await;
    }
    child.kill().await;

    let child = crate::common::child::Child::spawn(dir.path()).await;
    let after = child_log(&child).await;
    for id in &ids {
        assert!(
            after.iter().any(|l| l.contains(id.as_str())),
            "record {id} survived"
        );
    }
    assert!(after.len() >= delivered.len());
    // Logging goes on after the restart.
    let resp = child
        .request(Some(ALICE), "GET", "/src/k0", bytes::Bytes::new())
        .await;
    let id = resp.header("x-amz-request-id").unwrap().to_owned();
    for _ in 0..100 {
        if child_log(&child).await.iter().any(|l| l.contains(&id)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("records after the restart are delivered too");
}
