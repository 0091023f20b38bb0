//! The access log: one line per request (combined or JSON) with the client address, written
//! through tracing under the `edge::access` target so it can go to its own file.

use std::net::SocketAddr;
use std::time::Duration;

use http::{HeaderMap, Method, StatusCode, Uri, Version};

use crate::config::AccessLog;

/// The tracing target access lines are logged under.
pub const TARGET: &str = "edge::access";

/// What the log needs of a request, captured before the handler consumes it.
pub struct RequestLine {
    method: Method,
    uri: Uri,
    version: Version,
    host: String,
    referer: String,
    user_agent: String,
}

impl RequestLine {
    /// Captures the fields of a request.
    pub fn capture(
        method: &Method,
        uri: &Uri,
        version: Version,
        headers: &HeaderMap,
    ) -> RequestLine {
        let text = |name: http::header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        RequestLine {
            method: method.clone(),
            uri: uri.clone(),
            version,
            host: uri
                .authority()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_else(|| text(http::header::HOST)),
            referer: text(http::header::REFERER),
            user_agent: text(http::header::USER_AGENT),
        }
    }

    /// Logs the finished request.
    #[allow(clippy::too_many_arguments)]
    pub fn log(
        &self,
        format: AccessLog,
        time: std::time::SystemTime,
        client: SocketAddr,
        status: StatusCode,
        bytes: u64,
        cache_status: &str,
        elapsed: Duration,
    ) {
        let path = redacted_target(&self.uri);
        let line = match format {
            AccessLog::Off => return,
            AccessLog::Combined => format!(
                "{} - - [{}] \"{} {} {:?}\" {} {} \"{}\" \"{}\" host=\"{}\" cache=\"{}\" time={:.6}",
                client.ip(),
                httpdate::fmt_http_date(time),
                escape(self.method.as_str()),
                escape(&path),
                self.version,
                status.as_u16(),
                bytes,
                escape(&self.referer),
                escape(&self.user_agent),
                escape(&self.host),
                escape(cache_status),
                elapsed.as_secs_f64(),
            ),
            AccessLog::Json => serde_json::json!({
                "time": httpdate::fmt_http_date(time),
                "client": client.ip().to_string(),
                "method": self.method.as_str(),
                "host": self.host,
                "path": path,
                "protocol": format!("{:?}", self.version),
                "status": status.as_u16(),
                "bytes": bytes,
                "referer": self.referer,
                "user_agent": self.user_agent,
                "cache_status": cache_status,
                "duration_s": elapsed.as_secs_f64(),
            })
            .to_string(),
        };
        tracing::info!(target: TARGET, "{line}");
    }
}

/// Query parameters whose values are credentials: signatures and key ids of presigned URLs
/// (SigV4 and SigV2) and session tokens. The log keeps the name and writes `REDACTED`.
const SECRET_PARAMS: &[&str] = &[
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "signature",
    "awsaccesskeyid",
];

/// The request target as logged: path and query, with credential values redacted.
fn redacted_target(uri: &Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_owned();
    };
    let mut out = String::with_capacity(path.len() + query.len() + 1);
    out.push_str(path);
    out.push('?');
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, _))
                if SECRET_PARAMS
                    .iter()
                    .any(|secret| secret.eq_ignore_ascii_case(name)) =>
            {
                out.push_str(name);
                out.push_str("=REDACTED");
            }
            _ => out.push_str(pair),
        }
    }
    out
}

/// A field of the combined log, escaped as nginx escapes its variables: `"`, `\` and bytes
/// outside printable ASCII become `\xHH`, so no field can end early or forge another.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte == b'"' || byte == b'\\' || !(0x20..0x7f).contains(&byte) {
            out.push_str(&format!("\\x{byte:02X}"));
        } else {
            out.push(char::from(byte));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_cannot_break_out_of_their_quotes() {
        assert_eq!(escape(r#"a" 200 "x"#), r"a\x22 200 \x22x");
        assert_eq!(escape("back\\slash\nnew"), r"back\x5Cslash\x0Anew");
        assert_eq!(escape("caf\u{e9}"), r"caf\xC3\xA9");
    }

    #[test]
    fn presign_credentials_are_redacted() {
        let uri: Uri = "/a.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F2024&X-Amz-Signature=abc&v=1&Signature=s&AWSAccessKeyId=k"
            .parse()
            .unwrap();
        assert_eq!(
            redacted_target(&uri),
            "/a.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&v=1&Signature=REDACTED&AWSAccessKeyId=REDACTED"
        );
        let plain: Uri = "/b?x=1".parse().unwrap();
        assert_eq!(redacted_target(&plain), "/b?x=1");
    }
}
