//! SigV4 signing of raw test requests with aws-sigv4.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode, sign,
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
pub fn sign_headers(user: User, method: &str, url: &str, headers: &[(String, String)], payload_hash: &str) -> Vec<(String, String)> {
    let identity = Credentials::new(user.access_key, user.secret_key, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(SystemTime::now())
        .settings(settings())
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
    let signable = SignableRequest::new("GET", url, std::iter::empty(), SignableBody::UnsignedPayload).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut url = url::Url::parse(url).unwrap();
    for (k, v) in instructions.params() {
        url.query_pairs_mut().append_pair(k, v);
    }
    url.to_string()
}
