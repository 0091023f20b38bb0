//! SigV2 presigned URLs (`?AWSAccessKeyId=&Expires=&Signature=`, as s3cmd's `signurl` makes
//! them), checked by the store itself before s3s: s3s compares SigV2 signatures with `!=`
//! and caps no expiry. Here the expiry is capped at a week and the signature compared in
//! constant time; s3s then checks the same signature again (and the expiry's lower bound).

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use http::{HeaderMap, Method};
use subtle::ConstantTimeEq;

/// The sub-resources that are part of the string to sign (AWS's list, sorted).
const SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// The decoded query pairs of a request.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    /// Decodes `query` as `application/x-www-form-urlencoded` (as s3s does).
    pub(crate) fn parse(query: &str) -> Query {
        Query(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// Every parameter name, in order (repeated names repeat).
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// Whether `name` occurs.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// Every value of `name`.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name` when it occurs exactly once.
    pub(crate) fn unique<'a>(&'a self, name: &str) -> Option<&'a str> {
        let mut values = self
            .0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let first = values.next()?;
        values.next().is_none().then_some(first)
    }
}

/// A header's value when it occurs exactly once (and is UTF-8).
fn unique_header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter().filter_map(|v| v.to_str().ok());
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

/// The SigV2 string to sign of a presigned request.
fn string_to_sign(
    method: &Method,
    raw_path: &str,
    query: &Query,
    headers: &HeaderMap,
    virtual_host_bucket: Option<&str>,
    expires: &str,
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(method.as_str());
    out.push('\n');
    out.push_str(unique_header(headers, "content-md5").unwrap_or_default());
    out.push('\n');
    out.push_str(unique_header(headers, "content-type").unwrap_or_default());
    out.push('\n');
    out.push_str(expires);
    out.push('\n');
    let mut amz: Vec<&str> = headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|n| n.starts_with("x-amz-"))
        .collect();
    amz.sort_unstable();
    for name in amz {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .collect();
        if values.is_empty() {
            continue;
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    if let Some(bucket) = virtual_host_bucket {
        out.push('/');
        out.push_str(bucket);
    }
    out.push_str(raw_path);
    let mut first = true;
    for name in SUBRESOURCES {
        if let Some(value) = query.unique(name) {
            out.push(if first { '?' } else { '&' });
            first = false;
            out.push_str(name);
            if !value.is_empty() {
                out.push('=');
                out.push_str(value);
            }
        }
    }
    out
}

/// The parts of a SigV2 presigned query.
pub(crate) struct Presigned<'a> {
    /// `AWSAccessKeyId`.
    pub access_key: &'a str,
    /// `Expires` as sent (it is signed as text).
    pub expires_text: &'a str,
    /// `Expires`, Unix seconds.
    pub expires: i64,
    /// `Signature`, decoded.
    pub signature: String,
}

impl<'a> Presigned<'a> {
    /// The presigned fields, or None when they are missing, repeated or malformed (s3s then
    /// refuses the request itself).
    pub(crate) fn parse(query: &'a Query) -> Option<Presigned<'a>> {
        let access_key = query.unique("AWSAccessKeyId")?;
        let expires_text = query.unique("Expires")?;
        let expires = expires_text.parse::<i64>().ok().filter(|&e| e >= 0)?;
        // s3s decodes the already form-decoded value once more.
        let signature = percent_encoding::percent_decode_str(query.unique("Signature")?)
            .decode_utf8()
            .ok()?
            .into_owned();
        Some(Presigned {
            access_key,
            expires_text,
            expires,
            signature,
        })
    }

    /// Whether the signature is right for this request, compared in constant time.
    pub(crate) fn verify(
        &self,
        secret: &str,
        method: &Method,
        raw_path: &str,
        query: &Query,
        headers: &HeaderMap,
        virtual_host_bucket: Option<&str>,
    ) -> bool {
        let sts = string_to_sign(
            method,
            raw_path,
            query,
            headers,
            virtual_host_bucket,
            self.expires_text,
        );
        let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()) else {
            return false;
        };
        mac.update(sts.as_bytes());
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        expected.as_bytes().ct_eq(self.signature.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_to_sign_follows_the_aws_example() {
        // The "Query string request authentication" example of the AWS SigV2 documentation.
        let query = Query::parse(
            "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1175139620&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D",
        );
        let presigned = Presigned::parse(&query).unwrap();
        assert_eq!(presigned.expires, 1_175_139_620);
        assert_eq!(presigned.signature, "NpgCjnDzrM+WFzoENXmpNDUsSn8=");
        let sts = string_to_sign(
            &Method::GET,
            "/photos/puppy.jpg",
            &query,
            &HeaderMap::new(),
            Some("johnsmith"),
            presigned.expires_text,
        );
        assert_eq!(sts, "GET\n\n\n1175139620\n/johnsmith/photos/puppy.jpg");
        assert!(presigned.verify(
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            &Method::GET,
            "/photos/puppy.jpg",
            &query,
            &HeaderMap::new(),
            Some("johnsmith"),
        ));
        assert!(!presigned.verify(
            "not-the-key",
            &Method::GET,
            "/photos/puppy.jpg",
            &query,
            &HeaderMap::new(),
            Some("johnsmith"),
        ));
    }

    #[test]
    fn amz_headers_and_subresources_are_canonical() {
        let query = Query::parse("acl&versionId=3&Expires=1&x=y");
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-meta-b", " two ".parse().unwrap());
        headers.append("x-amz-meta-a", "1".parse().unwrap());
        headers.append("x-amz-meta-a", "2".parse().unwrap());
        headers.insert("content-type", "text/plain".parse().unwrap());
        let sts = string_to_sign(&Method::PUT, "/b/k", &query, &headers, None, "1");
        assert_eq!(
            sts,
            "PUT\n\ntext/plain\n1\nx-amz-meta-a:1,2\nx-amz-meta-b:two\n/b/k?acl&versionId=3"
        );
    }
}
