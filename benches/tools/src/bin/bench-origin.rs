//! The benchmark's origin, the same for every cache under test.
//!
//! `GET /size/<bytes>/<anything>` answers `<bytes>` bytes with `Cache-Control: max-age=3600`,
//! an `ETag` and a `Last-Modified`; `GET /js/<bytes>/<anything>` answers as many bytes of
//! JavaScript-like text (`application/javascript`, for the compression workloads); paths
//! under `/slow/` (1 KiB) answer after 300 ms, so a
//! herd of cold requests all arrive while the first fetch is in flight. `GET /__count` tells
//! how many object requests were served (the herd test reads it before and after).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::ETAG;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

/// Largest body served.
const MAX_BODY: usize = 16 << 20;

fn main() {
    let addr = edge_bench::listen_arg();
    let body = Bytes::from(
        (0..MAX_BODY)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<u8>>(),
    );
    let script = Bytes::from(script_text(MAX_SCRIPT));
    let count = Arc::new(AtomicU64::new(0));
    edge_bench::serve(addr, move |request: Request<Incoming>| {
        let body = body.clone();
        let script = script.clone();
        let count = count.clone();
        async move { answer(&request, &body, &script, &count).await }
    })
}

/// Largest `/js/` body.
const MAX_SCRIPT: usize = 4 << 20;

/// JavaScript-like text that compresses about as real bundles do (4-6x with gzip): functions
/// with varied names and numbers from a fixed pseudo-random sequence.
fn script_text(len: usize) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "render", "state", "props", "update", "fetch", "node", "value", "index", "event", "cache",
        "layout", "query",
    ];
    let mut out = Vec::with_capacity(len + 256);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    while out.len() < len {
        let (a, b, c) = (next(), next(), next());
        let line = format!(
            "function {}{:x}({}, {}) {{ const {} = {}.{}({} * {}); return {} ? {} : \"{:x}\"; }}\n",
            WORDS[(a % 12) as usize],
            a % 4096,
            WORDS[(b % 12) as usize],
            WORDS[(c % 12) as usize],
            WORDS[((a >> 8) % 12) as usize],
            WORDS[((b >> 8) % 12) as usize],
            WORDS[((c >> 8) % 12) as usize],
            b % 1000,
            c % 97,
            WORDS[((a >> 16) % 12) as usize],
            WORDS[((b >> 16) % 12) as usize],
            c % 65536,
        );
        out.extend_from_slice(line.as_bytes());
    }
    out.truncate(len);
    out
}

async fn answer(
    request: &Request<Incoming>,
    body: &Bytes,
    script: &Bytes,
    count: &AtomicU64,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if path == "/__count" {
        return Response::new(Full::new(Bytes::from(
            count.load(Ordering::SeqCst).to_string(),
        )));
    }
    count.fetch_add(1, Ordering::SeqCst);
    if let Some(size) = path
        .strip_prefix("/js/")
        .and_then(|r| r.split('/').next())
        .and_then(|s| s.parse::<usize>().ok())
    {
        let mut response = Response::new(Full::new(script.slice(..size.min(MAX_SCRIPT))));
        let headers = response.headers_mut();
        edge_bench::insert_object_headers(headers);
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/javascript"),
        );
        if let Ok(etag) = HeaderValue::from_str(&format!("\"js-{size:x}-65920000\"")) {
            headers.insert(ETAG, etag);
        }
        return response;
    }
    let size = if let Some(rest) = path.strip_prefix("/slow/") {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = rest;
        1024
    } else if let Some(size) = path
        .strip_prefix("/size/")
        .and_then(|r| r.split('/').next())
        .and_then(|s| s.parse::<usize>().ok())
    {
        size.min(MAX_BODY)
    } else {
        let mut response = Response::new(Full::new(Bytes::from_static(b"not found\n")));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    let mut response = Response::new(Full::new(body.slice(..size)));
    let headers = response.headers_mut();
    edge_bench::insert_object_headers(headers);
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{size:x}-65920000\"")) {
        headers.insert(ETAG, etag);
    }
    response
}
