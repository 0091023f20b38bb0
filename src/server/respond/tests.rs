//! Unit tests of `respond`.

use super::*;

fn validators() -> Validators {
    Validators {
        etag: Some(HeaderValue::from_static("\"abc\"")),
        last_modified: httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").ok(),
    }
}

fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(*n, HeaderValue::from_static(v));
    }
    h
}

fn decide_get(pairs: &[(&'static str, &'static str)]) -> Decision {
    decide(
        &Method::GET,
        &request(pairs),
        StatusCode::OK,
        &validators,
        Some(100),
    )
}

#[test]
fn conditional_requests() {
    assert_eq!(
        decide_get(&[("if-none-match", "\"abc\"")]),
        Decision::NotModified
    );
    assert_eq!(
        decide_get(&[("if-none-match", "W/\"abc\", \"x\"")]),
        Decision::NotModified
    );
    assert_eq!(decide_get(&[("if-none-match", "*")]), Decision::NotModified);
    assert_eq!(decide_get(&[("if-none-match", "\"zzz\"")]), Decision::Full);
    assert_eq!(
        decide_get(&[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")]),
        Decision::NotModified
    );
    assert_eq!(
        decide_get(&[("if-modified-since", "Sat, 05 Nov 1994 08:49:37 GMT")]),
        Decision::Full
    );
    // If-None-Match wins over If-Modified-Since.
    assert_eq!(
        decide_get(&[
            ("if-none-match", "\"zzz\""),
            ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")
        ]),
        Decision::Full
    );
}

#[test]
fn ranges() {
    assert_eq!(
        decide_get(&[("range", "bytes=0-9")]),
        Decision::Partial(vec![0..=9])
    );
    assert_eq!(
        decide_get(&[("range", "bytes=-10")]),
        Decision::Partial(vec![90..=99])
    );
    assert_eq!(
        decide_get(&[("range", "bytes=90-200")]),
        Decision::Partial(vec![90..=99])
    );
    assert_eq!(
        decide_get(&[("range", "bytes=0-1,5-6")]),
        Decision::Partial(vec![0..=1, 5..=6])
    );
    assert_eq!(
        decide_get(&[("range", "bytes=100-")]),
        Decision::Unsatisfiable
    );
    assert_eq!(decide_get(&[("range", "bytes=abc")]), Decision::Full);
    assert_eq!(
        decide_get(&[("range", "bytes=0-9"), ("if-range", "\"abc\"")]),
        Decision::Partial(vec![0..=9])
    );
    assert_eq!(
        decide_get(&[("range", "bytes=0-9"), ("if-range", "\"old\"")]),
        Decision::Full
    );
    assert_eq!(
        decide(
            &Method::HEAD,
            &request(&[("range", "bytes=0-9")]),
            StatusCode::OK,
            &validators,
            Some(100)
        ),
        Decision::Full
    );
}

#[test]
fn multipart_body_lists_each_range() {
    let body = Bytes::from_static(b"0123456789");
    let mut stored = HeaderMap::new();
    stored.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    let response = from_bytes(
        Decision::Partial(vec![0..=1, 8..=9]),
        &Method::GET,
        StatusCode::OK,
        &stored,
        &body,
        &[],
    );
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    let ct = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(ct.starts_with("multipart/byteranges; boundary="));
    let EdgeBody::Chunks(pieces) = response.into_body() else {
        panic!("chunks")
    };
    let text: Vec<u8> = pieces.iter().flat_map(|p| p.to_vec()).collect();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("content-range: bytes 0-1/10\r\n\r\n01"));
    assert!(text.contains("content-range: bytes 8-9/10\r\n\r\n89"));
}

#[test]
fn cache_status_appends_after_parent() {
    let mut headers = HeaderMap::new();
    headers.insert("cache-status", HeaderValue::from_static("shield; hit"));
    crate::server::cache_status::append(
        &mut headers,
        &HeaderValue::from_static("edge-1; fwd=miss"),
    );
    assert_eq!(headers["cache-status"], "shield; hit, edge-1; fwd=miss");
}
