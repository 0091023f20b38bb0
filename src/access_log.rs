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
    pub fn log(
        &self,
        format: AccessLog,
        client: SocketAddr,
        status: StatusCode,
        bytes: u64,
        cache_status: &str,
        elapsed: Duration,
    ) {
        let path = self.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let line = match format {
            AccessLog::Off => return,
            AccessLog::Combined => format!(
                "{} - - [{}] \"{} {} {:?}\" {} {} \"{}\" \"{}\" host={} cache=\"{}\" time={:.6}",
                client.ip(),
                httpdate::fmt_http_date(std::time::SystemTime::now()),
                self.method,
                path,
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
                "time": httpdate::fmt_http_date(std::time::SystemTime::now()),
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

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}
