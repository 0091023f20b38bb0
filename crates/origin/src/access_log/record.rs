//! One access log record and its line in the S3 server access log format
//! (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/LogFormat.html>): space-separated
//! fields, `-` for an empty one, the time in brackets, the request line, referer and user agent
//! in double quotes. Unquoted fields never hold a space, a quote or a control character
//! (they are percent-encoded), quoted ones escape `"` and `\` and control bytes, so every
//! line splits back into its fields; signature values in the request URI are redacted.

use std::fmt::Write as _;
use std::net::IpAddr;

use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};

/// What the key field leaves as it is (as S3 logs keys: unreserved characters and `/`).
const KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// What other unquoted fields encode: controls, space, quote, `%` and non-ASCII.
const TOKEN: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');

/// Query parameters whose values are secrets, replaced in the logged request URI.
const SECRET_PARAMS: &[&str] = &["x-amz-signature", "signature", "x-amz-security-token"];

/// Everything one line says.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub bucket_owner: String,
    pub bucket: String,
    /// Unix milliseconds of the request's arrival.
    pub time_ms: i64,
    pub remote_ip: Option<IpAddr>,
    /// Canonical user id of the signed-in caller (None: anonymous).
    pub requester: Option<String>,
    pub request_id: String,
    /// `REST.GET.OBJECT`...
    pub operation: String,
    /// The decoded object key.
    pub key: Option<String>,
    /// `GET /bucket/key?query HTTP/1.1`, secrets already redacted.
    pub request_line: String,
    pub status: u16,
    pub error_code: Option<String>,
    pub bytes_sent: u64,
    pub object_size: Option<u64>,
    pub total_ms: u64,
    pub turnaround_ms: u64,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    pub version_id: Option<String>,
    pub host_id: String,
    /// `SigV2` / `SigV4`.
    pub signature_version: Option<&'static str>,
    pub cipher_suite: Option<String>,
    /// `AuthHeader` / `QueryString`.
    pub auth_type: Option<&'static str>,
    pub host_header: Option<String>,
    pub tls_version: Option<&'static str>,
}

fn token(out: &mut String, value: Option<&str>) {
    match value {
        Some(v) if !v.is_empty() => out.extend(utf8_percent_encode(v, TOKEN)),
        _ => out.push('-'),
    }
}

fn quoted(out: &mut String, value: Option<&str>) {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        out.push('-');
        return;
    };
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\x{b:02X}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn number(out: &mut String, value: Option<u64>) {
    match value {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.push('-'),
    }
}

/// `[06/Feb/2019:00:00:38 +0000]`.
fn time(out: &mut String, ms: i64) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let month = MONTHS[usize::from(u8::from(t.month())) - 1];
    let _ = write!(
        out,
        "[{:02}/{month}/{}:{:02}:{:02}:{:02} +0000]",
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    );
}

impl Record {
    /// The record's line, without the newline.
    #[must_use]
    pub fn line(&self) -> String {
        let mut out = String::with_capacity(512);
        let sp = |out: &mut String| out.push(' ');
        token(&mut out, Some(&self.bucket_owner));
        sp(&mut out);
        token(&mut out, Some(&self.bucket));
        sp(&mut out);
        time(&mut out, self.time_ms);
        sp(&mut out);
        token(&mut out, self.remote_ip.map(|ip| ip.to_string()).as_deref());
        sp(&mut out);
        token(&mut out, self.requester.as_deref());
        sp(&mut out);
        token(&mut out, Some(&self.request_id));
        sp(&mut out);
        token(&mut out, Some(&self.operation));
        sp(&mut out);
        match self.key.as_deref().filter(|k| !k.is_empty()) {
            Some(k) => out.extend(utf8_percent_encode(k, KEY)),
            None => out.push('-'),
        }
        sp(&mut out);
        quoted(&mut out, Some(&self.request_line));
        sp(&mut out);
        number(&mut out, Some(u64::from(self.status)));
        sp(&mut out);
        token(&mut out, self.error_code.as_deref());
        sp(&mut out);
        number(&mut out, (self.bytes_sent > 0).then_some(self.bytes_sent));
        sp(&mut out);
        number(&mut out, self.object_size);
        sp(&mut out);
        number(&mut out, Some(self.total_ms));
        sp(&mut out);
        number(&mut out, Some(self.turnaround_ms));
        sp(&mut out);
        quoted(&mut out, self.referer.as_deref());
        sp(&mut out);
        quoted(&mut out, self.user_agent.as_deref());
        sp(&mut out);
        token(&mut out, self.version_id.as_deref());
        sp(&mut out);
        token(&mut out, Some(&self.host_id));
        sp(&mut out);
        token(&mut out, self.signature_version);
        sp(&mut out);
        token(&mut out, self.cipher_suite.as_deref());
        sp(&mut out);
        token(&mut out, self.auth_type);
        sp(&mut out);
        token(&mut out, self.host_header.as_deref());
        sp(&mut out);
        token(&mut out, self.tls_version);
        // Access point ARN, aclRequired.
        out.push_str(" - -");
        out
    }
}

/// The request line as logged: `METHOD target VERSION`, secret query values redacted.
#[must_use]
pub fn request_line(method: &str, path: &str, query: Option<&str>, version: &str) -> String {
    let mut out = String::with_capacity(path.len() + 32);
    out.push_str(method);
    out.push(' ');
    out.push_str(path);
    if let Some(query) = query {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            let name = pair.split_once('=').map_or(pair, |(n, _)| n);
            let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
            if SECRET_PARAMS
                .iter()
                .any(|s| s.eq_ignore_ascii_case(decoded.as_ref()))
            {
                out.push_str(name);
                out.push_str("=REDACTED");
            } else {
                out.push_str(pair);
            }
        }
    }
    out.push(' ');
    out.push_str(version);
    out
}

/// S3's operation name of an s3s operation (`REST.GET.OBJECT`...); None for operations
/// without a name of their own.
#[must_use]
pub fn operation_name(op: &str) -> Option<&'static str> {
    Some(match op {
        "GetObject" => "REST.GET.OBJECT",
        "HeadObject" => "REST.HEAD.OBJECT",
        "PutObject" => "REST.PUT.OBJECT",
        "CopyObject" => "REST.COPY.OBJECT",
        "DeleteObject" => "REST.DELETE.OBJECT",
        "DeleteObjects" => "REST.POST.MULTI_OBJECT_DELETE",
        "ListObjects" | "ListObjectsV2" => "REST.GET.BUCKET",
        "ListObjectVersions" => "REST.GET.BUCKETVERSIONS",
        "HeadBucket" => "REST.HEAD.BUCKET",
        "CreateBucket" => "REST.PUT.BUCKET",
        "DeleteBucket" => "REST.DELETE.BUCKET",
        "GetBucketLocation" => "REST.GET.LOCATION",
        "GetBucketVersioning" => "REST.GET.VERSIONING",
        "PutBucketVersioning" => "REST.PUT.VERSIONING",
        "GetBucketAcl" | "GetObjectAcl" => "REST.GET.ACL",
        "PutBucketAcl" | "PutObjectAcl" => "REST.PUT.ACL",
        "GetBucketPolicy" => "REST.GET.BUCKETPOLICY",
        "PutBucketPolicy" => "REST.PUT.BUCKETPOLICY",
        "DeleteBucketPolicy" => "REST.DELETE.BUCKETPOLICY",
        "GetBucketCors" => "REST.GET.CORS",
        "PutBucketCors" => "REST.PUT.CORS",
        "DeleteBucketCors" => "REST.DELETE.CORS",
        "GetBucketLogging" => "REST.GET.LOGGING_STATUS",
        "PutBucketLogging" => "REST.PUT.LOGGING_STATUS",
        "GetBucketLifecycleConfiguration" => "REST.GET.LIFECYCLE",
        "PutBucketLifecycleConfiguration" => "REST.PUT.LIFECYCLE",
        "DeleteBucketLifecycle" => "REST.DELETE.LIFECYCLE",
        "CreateMultipartUpload" => "REST.POST.UPLOADS",
        "UploadPart" => "REST.PUT.PART",
        "UploadPartCopy" => "REST.COPY.PART",
        "CompleteMultipartUpload" => "REST.POST.UPLOAD",
        "AbortMultipartUpload" => "REST.DELETE.UPLOAD",
        "ListParts" => "REST.GET.UPLOAD",
        "ListMultipartUploads" => "REST.GET.UPLOADS",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_every_field_in_order() {
        let record = Record {
            bucket_owner: "alice".into(),
            bucket: "logs-src".into(),
            time_ms: 1_549_411_238_000,
            remote_ip: Some("192.0.2.3".parse().unwrap()),
            requester: None,
            request_id: "3E57427F3EXAMPLE".into(),
            operation: "REST.GET.OBJECT".into(),
            key: Some("dir/a b\n.txt".into()),
            request_line: request_line(
                "GET",
                "/logs-src/dir/a%20b%0A.txt",
                Some("X-Amz-Expires=60&X-Amz-Signature=abcdef"),
                "HTTP/1.1",
            ),
            status: 200,
            bytes_sent: 113,
            object_size: Some(113),
            total_ms: 7,
            turnaround_ms: 6,
            user_agent: Some("curl/8 \"quoted\"".into()),
            host_id: "3E57427F3EXAMPLE".into(),
            signature_version: Some("SigV4"),
            auth_type: Some("QueryString"),
            host_header: Some("127.0.0.1:9000".into()),
            ..Record::default()
        };
        assert_eq!(
            record.line(),
            "alice logs-src [06/Feb/2019:00:00:38 +0000] 192.0.2.3 - 3E57427F3EXAMPLE REST.GET.OBJECT \
             dir/a%20b%0A.txt \"GET /logs-src/dir/a%20b%0A.txt?X-Amz-Expires=60&X-Amz-Signature=REDACTED HTTP/1.1\" \
             200 - 113 113 7 6 - \"curl/8 \\\"quoted\\\"\" - 3E57427F3EXAMPLE SigV4 - QueryString 127.0.0.1:9000 - - -"
        );
    }

    #[test]
    fn unquoted_fields_never_split() {
        let record = Record {
            bucket_owner: "o w".into(),
            error_code: Some("Bad\"Code".into()),
            ..Record::default()
        };
        let line = record.line();
        assert!(line.starts_with("o%20w "), "{line}");
        assert!(line.contains(" Bad%22Code "), "{line}");
        assert!(!line.contains('\n'));
    }
}
