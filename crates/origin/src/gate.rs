//! Refusals decided before s3s sees a request, for what s3s itself lets through:
//! form POSTs (s3s buffers the whole file part before any access check; this store does not
//! implement POST object, so they are refused unread), bodies s3s would parse whole that
//! announce more than [`MAX_PARSED_BODY`] (or no length at all), SigV2 header authentication
//! (no time bound in s3s, no documented client uses it), presigned URLs past S3's one-week
//! cap, SigV2 presigned signatures (checked here in constant time) and empty `Content-MD5`
//! headers (which s3s reads as none). Only PutObject and
//! UploadPart bodies are streamed, to disk; every other body is bounded.

use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode, header};
use s3s::config::{S3Config, S3ConfigProvider, StaticConfigProvider};
use s3s::{Body, S3Error, S3ErrorCode};

use crate::sigv2::{Presigned, Query};
use crate::store::State;

/// The largest body the store parses whole (XML documents, bucket policies): a
/// CompleteMultipartUpload of 10 000 parts or a DeleteObjects of 1000 long keys fits.
pub(crate) const MAX_PARSED_BODY: usize = 4 << 20;

/// S3's cap on a presigned URL's lifetime (seven days), in seconds.
const MAX_PRESIGNED_SECS: i64 = 604_800;

/// Clock skew allowed between a signer and the store, in seconds (as SigV4's 15 minutes).
const MAX_SKEW_SECS: i64 = 900;

/// The s3s limits: documents parsed whole are bounded by [`MAX_PARSED_BODY`]; the form limits
/// are a second line behind [`check`], which refuses form POSTs before s3s reads them.
pub(crate) fn s3s_config() -> Arc<dyn S3ConfigProvider> {
    let mut config = S3Config::default();
    config.xml_max_body_size = MAX_PARSED_BODY;
    config.form_max_field_size = 64 << 10;
    config.form_max_fields_size = 1 << 20;
    config.post_object_max_file_size = 0;
    Arc::new(StaticConfigProvider::new(Arc::new(config)))
}

/// Why a request is refused before s3s.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A `multipart/form-data` POST (browser form upload).
    #[error("POST object (HTML form uploads) is not supported by this store.")]
    FormPost,
    /// `Authorization: AWS <key>:<signature>`.
    #[error(
        "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
    )]
    SigV2Header,
    /// A presigned query whose expiry is malformed or too far away.
    #[error("{0}")]
    QueryParameters(&'static str),
    /// A body the store would parse whole, longer than [`MAX_PARSED_BODY`].
    #[error("Your request was too big.")]
    TooLarge,
    /// A body the store would parse whole, without a `Content-Length`.
    #[error("You must provide the Content-Length HTTP header.")]
    LengthRequired,
    /// A `Content-MD5` header without a value.
    #[error("The Content-MD5 you specified was invalid.")]
    EmptyContentMd5,
    /// A SigV2 presigned signature that does not match.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your key and signing method."
    )]
    SignatureDoesNotMatch,
}

impl Refusal {
    fn to_s3_error(&self) -> S3Error {
        let (code, status) = match self {
            Refusal::FormPost => (S3ErrorCode::NotImplemented, StatusCode::NOT_IMPLEMENTED),
            Refusal::SigV2Header => (S3ErrorCode::InvalidRequest, StatusCode::BAD_REQUEST),
            // 403, as ceph's s3-tests expect of S3 for an out-of-range `X-Amz-Expires`.
            Refusal::QueryParameters(_) => (
                S3ErrorCode::Custom("AuthorizationQueryParametersError".into()),
                StatusCode::FORBIDDEN,
            ),
            Refusal::TooLarge => (
                S3ErrorCode::MaxMessageLengthExceeded,
                StatusCode::BAD_REQUEST,
            ),
            Refusal::LengthRequired => (
                S3ErrorCode::MissingContentLength,
                StatusCode::LENGTH_REQUIRED,
            ),
            Refusal::EmptyContentMd5 => (S3ErrorCode::InvalidDigest, StatusCode::BAD_REQUEST),
            Refusal::SignatureDoesNotMatch => {
                (S3ErrorCode::SignatureDoesNotMatch, StatusCode::FORBIDDEN)
            }
        };
        let mut e = S3Error::with_message(code, self.to_string());
        e.set_status_code(status);
        e
    }
}

/// The answer to a request refused before s3s, if it is. A refused request's body is never
/// read; when it has one, the connection is closed after the answer.
pub(crate) fn check<B>(req: &Request<B>, state: &State) -> Option<Response<Body>> {
    let refusal = refusal(req, state, unix_now())?;
    let mut resp = refusal
        .to_s3_error()
        .to_http_response()
        .unwrap_or_else(|_| {
            crate::service::error_response(S3ErrorCode::InternalError, "internal error")
        });
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if has_body {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Some(resp)
}

fn unix_now() -> i64 {
    crate::store::now_ms() / 1000
}

fn refusal<B>(req: &Request<B>, state: &State, now: i64) -> Option<Refusal> {
    if req.method() == http::Method::POST
        && req
            .headers()
            .get_all(header::CONTENT_TYPE)
            .iter()
            .any(|v| is_form(v.as_bytes()))
    {
        return Some(Refusal::FormPost);
    }
    if req
        .headers()
        .get_all(header::AUTHORIZATION)
        .iter()
        .any(|v| v.as_bytes().starts_with(b"AWS "))
    {
        return Some(Refusal::SigV2Header);
    }
    if req
        .headers()
        .get_all("content-md5")
        .iter()
        .any(|v| v.as_bytes().trim_ascii().is_empty())
    {
        return Some(Refusal::EmptyContentMd5);
    }
    let query = Query::parse(req.uri().query().unwrap_or_default());
    if let Some(refusal) = body_bound(req, state, &query) {
        return Some(refusal);
    }
    if query.has("X-Amz-Signature")
        && let Some(refusal) = query.all("X-Amz-Expires").find_map(sigv4_expires)
    {
        return Some(refusal);
    }
    if query.has("Signature") {
        return sigv2_presigned(req, state, &query, now);
    }
    None
}

/// Query parameters a streamed object write (PutObject, UploadPart) may carry: any other
/// names a sub-resource whose body is parsed whole.
const STREAMED_WRITE_PARAMS: &[&str] = &[
    "partNumber",
    "uploadId",
    "x-id",
    "AWSAccessKeyId",
    "Expires",
    "Signature",
];

/// Whether the request is a PutObject or UploadPart, whose body streams to disk.
pub(crate) fn is_streamed_write<B>(req: &Request<B>, state: &State, query: &Query) -> bool {
    if req.method() != http::Method::PUT {
        return false;
    }
    let path = req.uri().path().trim_start_matches('/');
    let virtual_host = match (&state.domain, req.headers().get(header::HOST)) {
        (Some(domain), Some(host)) => host
            .to_str()
            .ok()
            .and_then(|h| domain.bucket_of(h))
            .is_some(),
        _ => false,
    };
    let has_key = if virtual_host {
        !path.is_empty()
    } else {
        path.split_once('/').is_some_and(|(_, key)| !key.is_empty())
    };
    has_key
        && query
            .names()
            .all(|n| STREAMED_WRITE_PARAMS.contains(&n) || n.starts_with("X-Amz-"))
}

/// Bodies other than streamed object writes must state a length of at most
/// [`MAX_PARSED_BODY`]; refused before a byte of them is read.
fn body_bound<B>(req: &Request<B>, state: &State, query: &Query) -> Option<Refusal> {
    if is_streamed_write(req, state, query) {
        return None;
    }
    let headers = req.headers();
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Some(Refusal::LengthRequired);
    }
    let too_large = headers.get_all(header::CONTENT_LENGTH).iter().any(|v| {
        v.to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_none_or(|len| len > MAX_PARSED_BODY as u64)
    });
    too_large.then_some(Refusal::TooLarge)
}

fn is_form(content_type: &[u8]) -> bool {
    let wanted = b"multipart/form-data";
    let trimmed = content_type.trim_ascii_start();
    trimmed.len() >= wanted.len() && trimmed[..wanted.len()].eq_ignore_ascii_case(wanted)
}

/// S3's checks of `X-Amz-Expires` (its messages).
fn sigv4_expires(value: &str) -> Option<Refusal> {
    match value.trim().parse::<i64>() {
        Err(_) => Some(Refusal::QueryParameters("X-Amz-Expires should be a number")),
        Ok(secs) if secs < 0 => Some(Refusal::QueryParameters(
            "X-Amz-Expires must be non-negative",
        )),
        Ok(secs) if secs > MAX_PRESIGNED_SECS => Some(Refusal::QueryParameters(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        )),
        Ok(_) => None,
    }
}

/// A SigV2 presigned URL: expiry at most a week (plus skew) away, signature checked in
/// constant time. Malformed or expired ones, and unknown keys, are left to s3s to refuse.
fn sigv2_presigned<B>(req: &Request<B>, state: &State, query: &Query, now: i64) -> Option<Refusal> {
    let presigned = Presigned::parse(query)?;
    if presigned.expires > now.saturating_add(MAX_PRESIGNED_SECS + MAX_SKEW_SECS) {
        return Some(Refusal::QueryParameters(
            "Expires must be less than a week (in seconds) from now, that is 604800",
        ));
    }
    if presigned.expires < now {
        return None;
    }
    let secret = state.users.secret_of(presigned.access_key)?;
    let vh_bucket = match (&state.domain, req.headers().get(header::HOST)) {
        (Some(domain), Some(host)) => host.to_str().ok().and_then(|h| domain.bucket_of(h)),
        _ => None,
    };
    let ok = presigned.verify(
        &secret,
        req.method(),
        req.uri().path(),
        query,
        req.headers(),
        vh_bucket.as_deref(),
    );
    (!ok).then_some(Refusal::SignatureDoesNotMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_amz_expires_bounds() {
        assert_eq!(sigv4_expires("604800"), None);
        assert_eq!(sigv4_expires("1"), None);
        assert!(matches!(
            sigv4_expires("604801"),
            Some(Refusal::QueryParameters(m)) if m.contains("less than a week")
        ));
        assert!(matches!(
            sigv4_expires("4000000000"),
            Some(Refusal::QueryParameters(_))
        ));
        assert!(matches!(
            sigv4_expires("-1"),
            Some(Refusal::QueryParameters(m)) if m.contains("non-negative")
        ));
        assert!(matches!(
            sigv4_expires("99999999999999999999999"),
            Some(Refusal::QueryParameters(m)) if m.contains("number")
        ));
    }

    #[test]
    fn forms_are_recognised_in_any_case() {
        assert!(is_form(b"multipart/form-data; boundary=x"));
        assert!(is_form(b"Multipart/Form-Data;boundary=x"));
        assert!(!is_form(b"application/xml"));
        assert!(!is_form(b"multipart/mixed"));
    }
}
