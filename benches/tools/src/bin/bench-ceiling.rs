//! The ceiling: a bare hyper server answering every request with a fixed 1 KiB body and the
//! header set of an edge hit, on the same hyper builder and runtime as the edge. The edge's
//! hit path can only approach it; the gap is what the cache adds per request.

use bytes::Bytes;
use http::header::{ACCEPT_RANGES, AGE, ETAG};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;

fn main() {
    let addr = edge_bench::listen_arg();
    let body = Bytes::from(vec![b'x'; 1024]);
    edge_bench::serve(addr, move |_request: Request<Incoming>| {
        let mut response = Response::new(Full::new(body.clone()));
        // Sized once, as a careful server would: the ceiling should not pay for map growth.
        *response.headers_mut() = HeaderMap::with_capacity(8);
        let headers = response.headers_mut();
        edge_bench::insert_object_headers(headers);
        headers.insert(ETAG, HeaderValue::from_static("\"400-65920000\""));
        headers.insert(AGE, HeaderValue::from_static("12"));
        headers.insert(
            HeaderName::from_static("cache-status"),
            HeaderValue::from_static("bench; hit; ttl=3588"),
        );
        headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        async move { response }
    })
}
