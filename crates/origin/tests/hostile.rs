//! Hostile input at the store's HTTP layer (issue #11, items 3, 5 and 9): request bodies the
//! store would buffer, signatures without time bounds, slow and idle clients, too many
//! connections.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::child::Child;
use crate::common::raw::RawConn;
use crate::common::{ALICE, Server, sign};

const MIB: usize = 1 << 20;

/// Sends an anonymous `multipart/form-data` POST announcing `total` bytes to `path`, one MiB
/// at a time, until the store answers or stops reading; returns the status and the bytes sent
/// by then.
async fn post_form(addr: std::net::SocketAddr, path: &str, total: usize) -> (u16, usize) {
    let boundary = "----hostileformboundary";
    let prefix = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nbig.bin\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let suffix = format!("\r\n--{boundary}--\r\n");
    let data_len = total - prefix.len() - suffix.len();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: multipart/form-data; boundary={boundary}\r\n\
         content-length: {total}\r\n\r\n{prefix}"
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&got).into_owned();
        text.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0)
    });
    let chunk = vec![b'x'; MIB];
    let mut sent = 0usize;
    while sent < data_len && !reader.is_finished() {
        let n = chunk.len().min(data_len - sent);
        match tokio::time::timeout(Duration::from_secs(5), wr.write_all(&chunk[..n])).await {
            Ok(Ok(())) => sent += n,
            // Closed, or no longer read: either way the store stopped taking the body.
            Ok(Err(_)) | Err(_) => break,
        }
    }
    if sent == data_len {
        let _ = wr.write_all(suffix.as_bytes()).await;
    }
    let status = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("an answer")
        .unwrap();
    (status, sent)
}

/// Issue #11, item 5: an anonymous 400 MiB form POST to a missing or private bucket grew the
/// store's RSS by ~400 MB before any access check (s3s buffers the form's file part).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_form_post_is_refused_before_its_body() {
    let _heavy = crate::common::HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let child = Child::spawn(dir.path()).await;
    let created = child
        .request(Some(ALICE), "PUT", "/private", Bytes::new())
        .await;
    assert_eq!(created.status, 200);
    let before = child.peak_rss_kib();
    for path in ["/missing-bucket", "/private"] {
        let (status, sent) = post_form(child.addr, path, 400 * MIB).await;
        assert!(
            (400..600).contains(&status),
            "POST {path}: answered {status}"
        );
        assert!(
            sent < 32 * MIB,
            "POST {path}: the store read {} MiB before answering",
            sent / MIB
        );
    }
    let grown_mib = child.peak_rss_kib().saturating_sub(before) / 1024;
    println!("store peak RSS grew by {grown_mib} MiB over two 400 MiB form posts");
    assert!(grown_mib < 32, "peak RSS grew by {grown_mib} MiB");
}

/// XML and JSON bodies the store parses whole are bounded at a few MiB, as S3 does.
#[tokio::test]
async fn oversized_xml_body_is_refused() {
    let server = Server::start().await;
    server.store.ensure_bucket("bkt", ALICE.id).unwrap();
    let rule =
        "<CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>";
    let body = format!(
        "<CORSConfiguration>{}</CORSConfiguration>",
        rule.repeat(6 * MIB / rule.len())
    );
    let resp = server
        .request(Some(ALICE), "PUT", "/bkt?cors", &[], body)
        .await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (400, "MaxMessageLengthExceeded"),
        "{}",
        resp.text()
    );
}

fn unix_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

async fn server_with_object() -> Server {
    let server = Server::start().await;
    server.store.ensure_bucket("bkt", ALICE.id).unwrap();
    let resp = server
        .request(Some(ALICE), "PUT", "/bkt/k", &[], "secret")
        .await;
    assert_eq!(resp.status, 200);
    server
}

/// Issue #11, item 9: SigV2 header auth was accepted with a `Date` from 2001 (no time bound,
/// signature compared with `!=`). No client the store documents signs headers with SigV2, so
/// the store answers it as S3 does in SigV4-only regions.
#[tokio::test]
async fn sigv2_header_auth_is_refused() {
    let server = server_with_object().await;
    for date in [
        "Mon, 01 Jan 2001 00:00:00 GMT".to_owned(),
        httpdate::fmt_http_date(SystemTime::now()),
    ] {
        let headers = sign::sign_v2_headers(ALICE, "GET", "/bkt/k", &date);
        let resp = crate::common::send(server.addr, "GET", "/bkt/k", &headers, Bytes::new()).await;
        assert_eq!(
            (resp.status, resp.code().as_str()),
            (400, "InvalidRequest"),
            "Date {date}: {}",
            resp.text()
        );
        assert_ne!(resp.text(), "secret");
    }
}

/// SigV2 presigned URLs (s3cmd's `signurl`) keep working, capped at seven days like SigV4's.
#[tokio::test]
async fn sigv2_presigned_expiry_is_capped() {
    let server = server_with_object().await;
    let in_2100 = 4_102_444_800;
    for expires in [in_2100, unix_now() + 604_800 + 3600] {
        let url = server.url(&sign::presign_v2(ALICE, "/bkt/k", expires));
        let resp = reqwest::get(&url).await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 403, "Expires={expires}: {text}");
        assert!(
            text.contains("<Code>AuthorizationQueryParametersError</Code>"),
            "{text}"
        );
    }
    let url = server.url(&sign::presign_v2(ALICE, "/bkt/k", unix_now() + 604_000));
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "secret");
    // Expired, and a wrong signature of the right length.
    let url = server.url(&sign::presign_v2(ALICE, "/bkt/k", unix_now() - 60));
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 403);
    let good = sign::presign_v2(ALICE, "/bkt/k", unix_now() + 60);
    let (head, sig) = good.split_once("Signature=").unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let bad = server.url(&format!("{head}Signature={flipped}{}", &sig[1..]));
    let resp = reqwest::get(&bad).await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("<Code>SignatureDoesNotMatch</Code>")
    );
}

/// A SigV4 presigned URL with `X-Amz-Expires=4000000000` was accepted; S3 caps it at 604800
/// seconds and answers `AuthorizationQueryParametersError`.
#[tokio::test]
async fn sigv4_presigned_expires_is_bounded() {
    let server = server_with_object().await;
    let url = server.url("/bkt/k");
    for (secs, message) in [
        (4_000_000_000u64, "less than a week"),
        (604_801, "less than a week"),
    ] {
        let presigned = sign::presign(ALICE, &url, SystemTime::now(), Duration::from_secs(secs));
        let resp = reqwest::get(&presigned).await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 403, "X-Amz-Expires={secs}: {text}");
        assert!(
            text.contains("<Code>AuthorizationQueryParametersError</Code>")
                && text.contains(message),
            "{text}"
        );
    }
    let week = sign::presign(ALICE, &url, SystemTime::now(), Duration::from_secs(604_800));
    let resp = reqwest::get(&week).await.unwrap();
    assert_eq!(resp.status(), 200);
    for (value, message) in [("-1", "non-negative"), ("abc", "should be a number")] {
        let tampered = week.replace("X-Amz-Expires=604800", &format!("X-Amz-Expires={value}"));
        assert_ne!(tampered, week);
        let resp = reqwest::get(&tampered).await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 403, "X-Amz-Expires={value}: {text}");
        assert!(
            text.contains("<Code>AuthorizationQueryParametersError</Code>")
                && text.contains(message),
            "{text}"
        );
    }
}

fn short_limits() -> origin::ServeLimits {
    origin::ServeLimits {
        header_read_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_millis(600),
        max_connections: 4,
    }
}

/// Issue #11, item 3: the store's listener had no header-read timeout.
#[tokio::test]
async fn slow_request_head_is_cut() {
    let server = Server::start_with_limits(short_limits()).await;
    let mut conn = RawConn::connect(server.addr).await;
    conn.write(b"GET /bkt/k HTTP/1.1\r\nhost: x\r\n").await;
    assert!(
        conn.closed_within(Duration::from_secs(3)).await,
        "a request head never finished keeps no connection open"
    );
}

/// ...nor a body-idle timeout: a client that stops sending its body is cut.
#[tokio::test]
async fn stalled_body_is_cut() {
    let server = Server::start_with_limits(short_limits()).await;
    server.store.ensure_bucket("bkt", ALICE.id).unwrap();
    let headers = sign::sign_headers(
        ALICE,
        "PUT",
        &server.url("/bkt/stalled"),
        &[("content-length".into(), "1000".into())],
        "UNSIGNED-PAYLOAD",
    );
    let mut conn = RawConn::connect(server.addr).await;
    conn.head("PUT", "/bkt/stalled", &headers).await;
    conn.write(&[b'x'; 10]).await;
    assert!(
        conn.closed_within(Duration::from_secs(4)).await,
        "a stalled body keeps no connection open"
    );
    let resp = server
        .request(Some(ALICE), "HEAD", "/bkt/stalled", &[], "")
        .await;
    assert_eq!(resp.status, 404, "nothing stored");
}

/// ...nor a connection limit: past `max_connections`, new connections are closed at once.
#[tokio::test]
async fn connections_past_the_limit_are_closed() {
    let limits = origin::ServeLimits {
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        max_connections: 2,
    };
    let server = Server::start_with_limits(limits).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = RawConn::connect(server.addr).await;
        conn.write(b"GET / HTTP/1.1\r\n").await;
        held.push(conn);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = RawConn::connect(server.addr).await;
    assert!(
        extra.closed_within(Duration::from_secs(2)).await,
        "a third connection is closed"
    );
    drop(held);
    // Served again once the held connections are gone (their tasks end on EOF).
    let mut status = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut conn = RawConn::connect(server.addr).await;
        let headers =
            sign::sign_headers(ALICE, "GET", &server.url("/"), &[], &sign::sha256_hex(b""));
        conn.head("GET", "/", &headers).await;
        if let Some(resp) = conn.response_within(Duration::from_secs(2)).await {
            status = resp.status;
            break;
        }
    }
    assert_eq!(status, 200, "served again once connections closed");
}
