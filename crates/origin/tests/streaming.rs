//! Bodies stream in and out: a 1 GiB upload and download keep the store's peak RSS small.

use std::convert::Infallible;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use md5::Digest;

use crate::common::child::Child;
use crate::common::{ALICE, data, sign};

const CHUNK: usize = 1 << 20;
const CHUNKS: usize = 1024;

/// 1 GiB generated on the fly: one random MiB, each copy stamped with its index.
fn chunks() -> impl futures::Stream<Item = Bytes> {
    let block = Bytes::from(data(CHUNK, 99));
    futures::stream::iter(0..CHUNKS).map(move |i| {
        let mut chunk = block.to_vec();
        chunk[..8].copy_from_slice(&(i as u64).to_le_bytes());
        Bytes::from(chunk)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_round_trip_keeps_peak_rss_under_100_mib() {
    let _heavy = crate::common::HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let child = Child::spawn(dir.path()).await;
    assert_eq!(
        child
            .request(Some(ALICE), "PUT", "/stream", Bytes::new())
            .await
            .status,
        200
    );
    let total = (CHUNK * CHUNKS).to_string();

    let started = std::time::Instant::now();
    let sent = std::sync::Arc::new(std::sync::Mutex::new(md5::Md5::new()));
    // Upload, signed with UNSIGNED-PAYLOAD so the body can stream.
    let url = format!("http://{}/stream/huge.bin", child.addr);
    let headers = sign::sign_headers(
        ALICE,
        "PUT",
        &url,
        &[("content-length".into(), total.clone())],
        "UNSIGNED-PAYLOAD",
    );
    let stream = tokio::net::TcpStream::connect(child.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method("PUT")
        .uri("/stream/huge.bin")
        .header("host", child.addr.to_string());
    for (k, v) in &headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let hasher = sent.clone();
    let body = StreamBody::new(chunks().map(move |c| {
        hasher.lock().unwrap().update(&c);
        Ok::<_, Infallible>(Frame::data(c))
    }));
    let resp = sender.send_request(req.body(body).unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let expected = hex::encode(sent.lock().unwrap().clone().finalize());
    assert_eq!(resp.headers()["etag"], format!("\"{expected}\"").as_str());

    println!("uploaded 1 GiB in {:?}", started.elapsed());
    let started = std::time::Instant::now();
    // Download, hashing as it arrives.
    let url = format!("http://{}/stream/huge.bin", child.addr);
    let headers = sign::sign_headers(ALICE, "GET", &url, &[], &sign::sha256_hex(b""));
    let stream = tokio::net::TcpStream::connect(child.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method("GET")
        .uri("/stream/huge.bin")
        .header("host", child.addr.to_string());
    for (k, v) in &headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = sender
        .send_request(req.body(http_body_util::Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], total.as_str());
    let mut body = resp.into_body();
    let mut got = md5::Md5::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            len += data.len();
            got.update(&data);
        }
    }
    assert_eq!(len, CHUNK * CHUNKS);
    assert_eq!(hex::encode(got.finalize()), expected);

    println!("downloaded 1 GiB in {:?}", started.elapsed());
    let peak_mib = child.peak_rss_kib() / 1024;
    println!("store peak RSS over a 1 GiB round trip: {peak_mib} MiB");
    assert!(peak_mib < 100, "peak RSS {peak_mib} MiB");
}
