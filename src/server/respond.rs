//! Answering from a representation the edge holds (a stored entry or a fill): conditional
//! requests (304), single and multipart ranges (206, 416) and HEAD, per RFC 9110.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_range_header::RangeUnsatisfiableError;

use super::body::EdgeBody;
use super::cache_status::CACHE_STATUS;
use crate::cache::{StoredHead, Validators};

/// What to send for a request against a representation of known validators and length.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    NotModified,
    Full,
    Partial(Vec<RangeInclusive<u64>>),
    Unsatisfiable,
}

/// Decides between 304, 200, 206 and 416 (RFC 9110 sections 13.2.2 and 14). The
/// representation's validators are read (by `validators`) only when the request is
/// conditional.
pub fn decide(
    method: &Method,
    request: &HeaderMap,
    status: StatusCode,
    validators: &dyn Fn() -> Validators,
    length: Option<u64>,
) -> Decision {
    if status != StatusCode::OK {
        return Decision::Full;
    }
    let fields = RequestFields::of(request);
    let known = std::cell::OnceCell::new();
    let validators = || known.get_or_init(validators);
    if let Some(inm) = fields.if_none_match {
        if etag_list_matches(inm, validators().etag.as_ref(), false) {
            return Decision::NotModified;
        }
    } else if let Some(ims) = fields
        .if_modified_since
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        && let Some(lm) = validators().last_modified
        && lm <= ims
    {
        return Decision::NotModified;
    }
    if method != Method::GET {
        return Decision::Full;
    }
    let Some(range) = fields.range.and_then(|v| v.to_str().ok()) else {
        return Decision::Full;
    };
    if let Some(if_range) = fields.if_range
        && !if_range_matches(if_range, validators())
    {
        return Decision::Full;
    }
    let Some(length) = length else {
        return Decision::Full;
    };
    match http_range_header::parse_range_header(range).and_then(|r| r.validate(length)) {
        Ok(ranges) if ranges.is_empty() => Decision::Full,
        Ok(ranges) => Decision::Partial(ranges),
        Err(RangeUnsatisfiableError::Unsatisfiable) => Decision::Unsatisfiable,
        // Malformed or abusive range sets may be ignored (RFC 9110 14.2).
        Err(_) => Decision::Full,
    }
}

/// Header fields a response is built from: a stored entry's packed head, or a fill's map.
pub trait Fields {
    /// The fields as a map with room for `spare` more.
    fn map(&self, spare: usize) -> HeaderMap;
    /// The first value of `name`.
    fn first(&self, name: &header::HeaderName) -> Option<HeaderValue>;
    /// Every value of `name`.
    fn values(&self, name: &header::HeaderName) -> Vec<HeaderValue>;
}

impl Fields for HeaderMap {
    fn map(&self, spare: usize) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.len() + spare);
        for (name, value) in self {
            map.append(name.clone(), value.clone());
        }
        map
    }
    fn first(&self, name: &header::HeaderName) -> Option<HeaderValue> {
        self.get(name).cloned()
    }
    fn values(&self, name: &header::HeaderName) -> Vec<HeaderValue> {
        self.get_all(name).iter().cloned().collect()
    }
}

impl Fields for StoredHead {
    fn map(&self, spare: usize) -> HeaderMap {
        self.to_map(spare)
    }
    fn first(&self, name: &header::HeaderName) -> Option<HeaderValue> {
        self.get(name)
    }
    fn values(&self, name: &header::HeaderName) -> Vec<HeaderValue> {
        self.get_all(name).collect()
    }
}

/// Fields a response from the cache adds to the stored ones: `Age`, `Cache-Status`,
/// `Accept-Ranges`, `Content-Length` and `Content-Range`.
const RESPONSE_FIELDS: usize = 5;

/// The request fields [`decide`] reads (the first value of each).
#[derive(Default)]
struct RequestFields<'a> {
    if_none_match: Option<&'a HeaderValue>,
    if_modified_since: Option<&'a HeaderValue>,
    range: Option<&'a HeaderValue>,
    if_range: Option<&'a HeaderValue>,
}

impl<'a> RequestFields<'a> {
    /// One pass over the request's few fields, cheaper than a hashed lookup for each name.
    fn of(request: &'a HeaderMap) -> RequestFields<'a> {
        let mut fields = RequestFields::default();
        for (name, value) in request {
            let slot = if name == header::IF_NONE_MATCH {
                &mut fields.if_none_match
            } else if name == header::IF_MODIFIED_SINCE {
                &mut fields.if_modified_since
            } else if name == header::RANGE {
                &mut fields.range
            } else if name == header::IF_RANGE {
                &mut fields.if_range
            } else {
                continue;
            };
            slot.get_or_insert(value);
        }
        fields
    }
}

/// `If-None-Match` weak comparison (or strong, for `If-Range`-like uses).
fn etag_list_matches(list: &HeaderValue, etag: Option<&HeaderValue>, strong: bool) -> bool {
    let Ok(list) = list.to_str() else {
        return false;
    };
    if list.trim() == "*" {
        return etag.is_some();
    }
    let Some(etag) = etag.and_then(|e| e.to_str().ok()) else {
        return false;
    };
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    if strong && etag.starts_with("W/") {
        return false;
    }
    list.split(',').any(|candidate| {
        let candidate = candidate.trim();
        !(strong && candidate.starts_with("W/")) && opaque(candidate) == opaque(etag)
    })
}

fn if_range_matches(if_range: &HeaderValue, validators: &Validators) -> bool {
    let Ok(text) = if_range.to_str() else {
        return false;
    };
    let text = text.trim();
    if text.starts_with('"') || text.starts_with("W/") {
        return etag_list_matches(if_range, validators.etag.as_ref(), true);
    }
    match (httpdate::parse_http_date(text), validators.last_modified) {
        (Ok(date), Some(lm)) => date == lm,
        _ => false,
    }
}

/// Fields a 304 carries from the stored response (RFC 9110 15.4.5).
const NOT_MODIFIED_FIELDS: &[header::HeaderName] = &[
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::VARY,
    header::LAST_MODIFIED,
];

/// Builds the response from a whole body held in memory.
pub fn from_bytes(
    decision: Decision,
    method: &Method,
    status: StatusCode,
    stored: &dyn Fields,
    body: &Bytes,
    extra: &[(header::HeaderName, HeaderValue)],
) -> Response<EdgeBody> {
    let length = body.len() as u64;
    let (status, mut headers, body, content_length) = match decision {
        Decision::NotModified => return not_modified(stored, extra),
        Decision::Full => (
            status,
            stored.map(RESPONSE_FIELDS),
            EdgeBody::full(body.clone()),
            length,
        ),
        Decision::Unsatisfiable => return unsatisfiable(length, extra),
        Decision::Partial(ranges) if ranges.len() == 1 => {
            let range = &ranges[0];
            let mut headers = stored.map(RESPONSE_FIELDS);
            headers.insert(header::CONTENT_RANGE, content_range(range, length));
            let piece = slice(body, range);
            let len = piece.len() as u64;
            (
                StatusCode::PARTIAL_CONTENT,
                headers,
                EdgeBody::full(piece),
                len,
            )
        }
        Decision::Partial(ranges) => {
            let (headers, pieces) = multipart(stored, &ranges, length, |r| slice(body, r));
            let len = pieces.iter().map(|p| p.len() as u64).sum();
            (
                StatusCode::PARTIAL_CONTENT,
                headers,
                EdgeBody::Chunks(pieces),
                len,
            )
        }
    };
    finish(&mut headers, status, extra, Some(content_length));
    let body = if *method == Method::HEAD {
        EdgeBody::Empty
    } else {
        body
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A whole response (200, or the stored status) with a head already rendered for it.
pub fn full(
    method: &Method,
    status: StatusCode,
    headers: HeaderMap,
    body: &Bytes,
) -> Response<EdgeBody> {
    let body = if *method == Method::HEAD {
        EdgeBody::Empty
    } else {
        EdgeBody::full(body.clone())
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn slice(body: &Bytes, range: &RangeInclusive<u64>) -> Bytes {
    let start = usize::try_from(*range.start())
        .unwrap_or(usize::MAX)
        .min(body.len());
    let end = usize::try_from(*range.end())
        .unwrap_or(usize::MAX)
        .saturating_add(1)
        .min(body.len());
    body.slice(start..end.max(start))
}

/// `Content-Range: bytes a-b/len`.
pub fn content_range(range: &RangeInclusive<u64>, length: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "bytes {}-{}/{}",
        range.start(),
        range.end(),
        length
    ))
    .expect("digits and ASCII are a valid header value")
}

/// Headers and parts of a `multipart/byteranges` body.
fn multipart(
    stored: &dyn Fields,
    ranges: &[RangeInclusive<u64>],
    length: u64,
    mut piece: impl FnMut(&RangeInclusive<u64>) -> Bytes,
) -> (HeaderMap, VecDeque<Bytes>) {
    let boundary = format!("edge{:016x}", rand_u64());
    let content_type = stored
        .first(&header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok().map(str::to_owned));
    let mut pieces = VecDeque::with_capacity(ranges.len() * 2 + 1);
    for range in ranges {
        let mut part = format!("\r\n--{boundary}\r\n");
        if let Some(ct) = &content_type {
            part.push_str(&format!("content-type: {ct}\r\n"));
        }
        part.push_str(&format!(
            "content-range: bytes {}-{}/{}\r\n\r\n",
            range.start(),
            range.end(),
            length
        ));
        pieces.push_back(Bytes::from(part));
        pieces.push_back(piece(range));
    }
    pieces.push_back(Bytes::from(format!("\r\n--{boundary}--\r\n")));
    let mut headers = stored.map(RESPONSE_FIELDS);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}"))
            .expect("boundary is ASCII"),
    );
    (headers, pieces)
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish()
}

/// A 304 for a stored response.
pub fn not_modified(
    stored: &dyn Fields,
    extra: &[(header::HeaderName, HeaderValue)],
) -> Response<EdgeBody> {
    let mut headers = HeaderMap::new();
    for name in NOT_MODIFIED_FIELDS {
        for value in stored.values(name) {
            headers.append(name.clone(), value);
        }
    }
    finish(&mut headers, StatusCode::NOT_MODIFIED, extra, None);
    let mut response = Response::new(EdgeBody::Empty);
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    *response.headers_mut() = headers;
    response
}

/// A 416 naming the representation's length.
pub fn unsatisfiable(
    length: u64,
    extra: &[(header::HeaderName, HeaderValue)],
) -> Response<EdgeBody> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_RANGE,
        HeaderValue::from_str(&format!("bytes */{length}"))
            .expect("digits are a valid header value"),
    );
    finish(
        &mut headers,
        StatusCode::RANGE_NOT_SATISFIABLE,
        extra,
        Some(0),
    );
    let mut response = Response::new(EdgeBody::Empty);
    *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
    *response.headers_mut() = headers;
    response
}

/// Adds `Age`, `Cache-Status` (after any parent's), `Accept-Ranges` and the length.
pub fn finish(
    headers: &mut HeaderMap,
    status: StatusCode,
    extra: &[(header::HeaderName, HeaderValue)],
    content_length: Option<u64>,
) {
    for (name, value) in extra {
        if name == CACHE_STATUS {
            super::cache_status::append(headers, value);
        } else {
            headers.insert(name.clone(), value.clone());
        }
    }
    if status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT {
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    match content_length {
        Some(len) if status != StatusCode::NOT_MODIFIED && status != StatusCode::NO_CONTENT => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        _ => {
            headers.remove(header::CONTENT_LENGTH);
        }
    }
}

/// Builds the response to stream from a fill: the head now, the body as it arrives.
pub fn streaming_head(
    decision: &Decision,
    status: StatusCode,
    stored: &dyn Fields,
    length: Option<u64>,
    extra: &[(header::HeaderName, HeaderValue)],
) -> (StatusCode, HeaderMap) {
    let mut headers = stored.map(RESPONSE_FIELDS);
    let (status, content_length) = match decision {
        Decision::Partial(ranges) if ranges.len() == 1 => {
            let range = &ranges[0];
            headers.insert(
                header::CONTENT_RANGE,
                content_range(range, length.unwrap_or(0)),
            );
            (
                StatusCode::PARTIAL_CONTENT,
                Some(range.end() - range.start() + 1),
            )
        }
        _ => (status, length),
    };
    finish(&mut headers, status, extra, content_length);
    (status, headers)
}

#[cfg(test)]
mod tests;
