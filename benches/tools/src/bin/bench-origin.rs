//! The benchmark's origin, the same for every cache under test.
//!
//! `GET /size/<bytes>/<anything>` answers `<bytes>` bytes with `Cache-Control: max-age=3600`,
//! an `ETag` and a `Last-Modified`; paths under `/slow/` (1 KiB) answer after 300 ms, so a
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
    let count = Arc::new(AtomicU64::new(0));
    edge_bench::serve(addr, move |request: Request<Incoming>| {
        let body = body.clone();
        let count = count.clone();
        async move { answer(&request, &body, &count).await }
    })
}

async fn answer(
    request: &Request<Incoming>,
    body: &Bytes,
    count: &AtomicU64,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if path == "/__count" {
        return Response::new(Full::new(Bytes::from(
            count.load(Ordering::SeqCst).to_string(),
        )));
    }
    count.fetch_add(1, Ordering::SeqCst);
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
