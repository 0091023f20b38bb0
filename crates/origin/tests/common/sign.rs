//! SigV4 signing of raw test requests with aws-sigv4.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;

use super::User;

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

fn settings() -> SigningSettings {
    let mut s = SigningSettings::default();
    s.percent_encoding_mode = PercentEncodingMode::Single;
    s.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    s.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    s
}

/// Returns `headers` plus the SigV4 headers (Authorization, X-Amz-Date, x-amz-content-sha256).
pub fn sign_headers(
    user: User,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    payload_hash: &str,
) -> Vec<(String, String)> {
    sign_headers_with(settings(), user, method, url, headers, payload_hash)
}

/// Like [`sign_headers`], signing every header given, `Transfer-Encoding` included (as
/// botocore before 1.34 does; aws-sigv4 leaves it out by default).
pub fn sign_every_header(
    user: User,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    payload_hash: &str,
) -> Vec<(String, String)> {
    let mut s = settings();
    s.excluded_headers = None;
    sign_headers_with(s, user, method, url, headers, payload_hash)
}

fn sign_headers_with(
    settings: SigningSettings,
    user: User,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    payload_hash: &str,
) -> Vec<(String, String)> {
    let identity = Credentials::new(user.access_key, user.secret_key, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Precomputed(payload_hash.to_owned()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut out = headers.to_vec();
    for (k, v) in instructions.headers() {
        out.push((k.to_owned(), v.to_owned()));
    }
    out
}

/// A presigned GET URL valid for `expires` from `signed_at`.
pub fn presign(user: User, url: &str, signed_at: SystemTime, expires: Duration) -> String {
    let identity = Credentials::new(user.access_key, user.secret_key, None, None, "test").into();
    let mut s = settings();
    s.signature_location = SignatureLocation::QueryParams;
    s.expires_in = Some(expires);
    s.payload_checksum_kind = PayloadChecksumKind::NoHeader;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(signed_at)
        .settings(s)
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "GET",
        url,
        std::iter::empty(),
        SignableBody::UnsignedPayload,
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut url = url::Url::parse(url).unwrap();
    for (k, v) in instructions.params() {
        url.query_pairs_mut().append_pair(k, v);
    }
    url.to_string()
}

/// A `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` upload: the signed headers and the aws-chunked body.
/// With `tamper`, one data byte is changed after signing.
pub fn chunked_upload(
    user: User,
    url: &str,
    chunks: &[&[u8]],
    tamper: bool,
) -> (Vec<(String, String)>, Vec<u8>) {
    const STREAMING: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
    let time = SystemTime::now();
    let decoded: usize = chunks.iter().map(|c| c.len()).sum();
    let frame_len =
        |len: usize| format!("{len:x}").len() + ";chunk-signature=".len() + 64 + 2 + len + 2;
    let encoded: usize = chunks.iter().map(|c| frame_len(c.len())).sum::<usize>() + frame_len(0);
    let headers = vec![
        ("content-encoding".to_owned(), "aws-chunked".to_owned()),
        (
            "x-amz-decoded-content-length".to_owned(),
            decoded.to_string(),
        ),
        ("content-length".to_owned(), encoded.to_string()),
    ];
    let identity = Credentials::new(user.access_key, user.secret_key, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(time)
        .settings(settings())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "PUT",
        url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Precomputed(STREAMING.to_owned()),
    )
    .unwrap();
    let (instructions, seed) = sign(signable, &params).unwrap().into_parts();
    let mut out = headers.clone();
    for (k, v) in instructions.headers() {
        out.push((k.to_owned(), v.to_owned()));
    }
    let amz_date = out
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-date"))
        .unwrap()
        .1
        .clone();
    let scope = format!("{}/us-east-1/s3/aws4_request", &amz_date[..8]);
    let key = v4::generate_signing_key(user.secret_key, time, "us-east-1", "s3");
    let empty = sha256_hex(b"");
    let mut previous = seed;
    let mut body = Vec::with_capacity(encoded);
    for chunk in chunks.iter().copied().chain(std::iter::once(&b""[..])) {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n{empty}\n{}",
            sha256_hex(chunk)
        );
        let signature = v4::calculate_signature(key.as_ref(), sts.as_bytes());
        body.extend_from_slice(
            format!("{:x};chunk-signature={signature}\r\n", chunk.len()).as_bytes(),
        );
        let start = body.len();
        body.extend_from_slice(chunk);
        if tamper && !chunk.is_empty() && start == body.len() - chunk.len() && previous.len() == 64
        {
            body[start] ^= 1;
        }
        body.extend_from_slice(b"\r\n");
        previous = signature;
    }
    assert_eq!(body.len(), encoded);
    (out, body)
}

/// A SigV2 signature (HMAC-SHA1, base64) of `string_to_sign`.
pub fn sig_v2(user: User, string_to_sign: &str) -> String {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(user.secret_key.as_bytes()).unwrap();
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A SigV2 presigned GET of `path` (no sub-resources) expiring at `expires` (Unix seconds):
/// the path with its query string.
pub fn presign_v2(user: User, path: &str, expires: i64) -> String {
    let signature = sig_v2(user, &format!("GET\n\n\n{expires}\n{path}"));
    let signature: String = url::form_urlencoded::byte_serialize(signature.as_bytes()).collect();
    format!(
        "{path}?AWSAccessKeyId={}&Expires={expires}&Signature={signature}",
        user.access_key
    )
}

/// SigV2 header authentication of a body-less request: the `Date` and `Authorization` headers.
pub fn sign_v2_headers(user: User, method: &str, path: &str, date: &str) -> Vec<(String, String)> {
    let signature = sig_v2(user, &format!("{method}\n\n\n{date}\n{path}"));
    vec![
        ("date".to_owned(), date.to_owned()),
        (
            "authorization".to_owned(),
            format!("AWS {}:{signature}", user.access_key),
        ),
    ]
}
