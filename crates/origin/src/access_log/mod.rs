//! Server access logs (PutBucketLogging): a record per request to a bucket with logging on,
//! buffered in memory and delivered as objects to the target bucket every flush interval
//! (`delivery`), and at a clean stop. The buffer is bounded: past [`FLUSH_AT`] bytes a
//! delivery starts at once, past [`MAX_BUFFERED`] records are dropped (and counted) until it
//! has run. A crash loses at most what was buffered since the last delivery.

pub mod delivery;
pub mod record;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use s3s::Body;

use self::record::{Record, operation_name, request_line};
use crate::index::logging::LoggingRecord;
use crate::request::{Connection, RequestInfo};
use crate::store::{State, now_ms};

/// Buffered bytes past which a delivery starts before the interval ends.
pub const FLUSH_AT: usize = 8 << 20;
/// Buffered bytes past which new records are dropped until a delivery has run.
pub const MAX_BUFFERED: usize = 32 << 20;

/// Where a source bucket's records go (its logging configuration, as last set).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// Owner of the source bucket: the target must still be theirs.
    pub owner: String,
    /// Target bucket.
    pub bucket: String,
    /// Key prefix.
    pub prefix: String,
}

/// Records waiting for delivery.
#[derive(Debug, Default)]
struct Buffer {
    /// Lines (each ending in `\n`) by destination.
    lines: HashMap<Destination, String>,
    bytes: usize,
    dropped: u64,
}

/// The store's access logging: which buckets log where, and the records not yet delivered.
#[derive(Debug)]
pub struct AccessLogs {
    /// Logging configurations by source bucket (a cache of the index's, checked against the
    /// bucket's record before use).
    configs: RwLock<HashMap<String, LoggingRecord>>,
    buffer: Mutex<Buffer>,
    /// Wakes the delivery loop early (buffer past [`FLUSH_AT`]).
    pub(crate) wake: tokio::sync::Notify,
    /// How often buffered records are delivered.
    pub flush_every: Duration,
}

impl AccessLogs {
    /// Access logging with the configurations the index holds.
    #[must_use]
    pub fn new(configs: Vec<(String, LoggingRecord)>, flush_every: Duration) -> AccessLogs {
        AccessLogs {
            configs: RwLock::new(configs.into_iter().collect()),
            buffer: Mutex::new(Buffer::default()),
            wake: tokio::sync::Notify::new(),
            flush_every,
        }
    }

    /// Notes `bucket`'s new logging configuration (None: off).
    pub fn configure(&self, bucket: &str, config: Option<LoggingRecord>) {
        let mut configs = self.configs.write().unwrap_or_else(|p| p.into_inner());
        match config {
            Some(c) => configs.insert(bucket.to_owned(), c),
            None => configs.remove(bucket),
        };
    }

    /// Whether any bucket logs (nothing else is looked at per request when none does).
    pub fn any(&self) -> bool {
        !self
            .configs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    fn config_of(&self, bucket: &str) -> Option<LoggingRecord> {
        let configs = self.configs.read().unwrap_or_else(|p| p.into_inner());
        if configs.is_empty() {
            return None;
        }
        configs.get(bucket).cloned()
    }

    /// Buffers one record for `to`.
    fn push(&self, to: Destination, record: &Record) {
        let mut line = record.line();
        line.push('\n');
        let mut buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        if buffer.bytes.saturating_add(line.len()) > MAX_BUFFERED {
            buffer.dropped = buffer.dropped.saturating_add(1);
            drop(buffer);
            self.wake.notify_one();
            return;
        }
        buffer.bytes += line.len();
        let full = buffer.bytes >= FLUSH_AT;
        buffer.lines.entry(to).or_default().push_str(&line);
        drop(buffer);
        if full {
            self.wake.notify_one();
        }
    }

    /// Takes every buffered record, by destination, and how many were dropped.
    fn take(&self) -> (HashMap<Destination, String>, u64) {
        let mut buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        let taken = std::mem::take(&mut *buffer);
        (taken.lines, taken.dropped)
    }
}

/// A request to a logged bucket, from its arrival until its response is fully sent.
pub struct Pending {
    to: Destination,
    record: Record,
    started: Instant,
    /// `Content-Length` of the request (the object size of a PUT).
    request_length: Option<u64>,
    method: http::Method,
}

fn header_string<B>(req: &Request<B>, name: impl header::AsHeaderName) -> Option<String> {
    req.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

impl Pending {
    /// Starts the record of `req` to `bucket`, if that bucket logs.
    pub fn begin<B>(
        state: &State,
        req: &Request<B>,
        bucket: String,
        conn: &Connection,
        started: Instant,
    ) -> Option<Pending> {
        let config = state.logs.config_of(&bucket)?;
        let source = state.index.bucket(&bucket).ok().flatten()?;
        if !config.applies_to(&source) {
            return None;
        }
        let query = req.uri().query();
        let has_query = |name: &str| {
            query.is_some_and(|q| {
                q.split('&')
                    .any(|p| p.split_once('=').map_or(p, |(n, _)| n) == name)
            })
        };
        let (auth_type, signature_version) = match req.headers().get(header::AUTHORIZATION) {
            Some(v) if v.as_bytes().starts_with(b"AWS4-") => (Some("AuthHeader"), Some("SigV4")),
            Some(v) if v.as_bytes().starts_with(b"AWS ") => (Some("AuthHeader"), Some("SigV2")),
            Some(_) => (Some("AuthHeader"), None),
            None if has_query("X-Amz-Signature") => (Some("QueryString"), Some("SigV4")),
            None if has_query("Signature") => (Some("QueryString"), Some("SigV2")),
            None => (None, None),
        };
        let path = req.uri().path();
        let key = key_of(path, &bucket, state, req);
        let version = match req.version() {
            http::Version::HTTP_2 => "HTTP/2.0",
            http::Version::HTTP_10 => "HTTP/1.0",
            _ => "HTTP/1.1",
        };
        let record = Record {
            bucket_owner: source.owner,
            bucket,
            time_ms: now_ms(),
            remote_ip: Some(conn.peer.ip()),
            key,
            request_line: request_line(req.method().as_str(), path, query, version),
            referer: header_string(req, header::REFERER),
            user_agent: header_string(req, header::USER_AGENT),
            signature_version,
            cipher_suite: conn.tls.as_ref().map(|t| t.cipher.clone()),
            auth_type,
            host_header: header_string(req, header::HOST),
            tls_version: conn.tls.as_ref().map(|t| t.version),
            version_id: query.and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(name, _)| name == "versionId")
                    .map(|(_, value)| value.into_owned())
            }),
            ..Record::default()
        };
        let request_length = req
            .headers()
            .get("x-amz-decoded-content-length")
            .or_else(|| req.headers().get(header::CONTENT_LENGTH))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        Some(Pending {
            to: Destination {
                owner: record.bucket_owner.clone(),
                bucket: config.target_bucket,
                prefix: config.target_prefix,
            },
            record,
            started,
            request_length,
            method: req.method().clone(),
        })
    }

    /// Completes the record from the response head; it is buffered when the body has been
    /// sent (or abandoned).
    pub fn finish(
        mut self,
        state: &Arc<State>,
        resp: Response<Body>,
        info: &RequestInfo,
        request_id: &str,
    ) -> Response<Body> {
        let r = &mut self.record;
        r.request_id = request_id.to_owned();
        r.host_id = request_id.to_owned();
        r.status = resp.status().as_u16();
        r.turnaround_ms = millis(self.started.elapsed());
        let learned = info.learned();
        r.requester = learned.and_then(|l| l.requester.clone());
        r.operation = match learned.and_then(|l| operation_name(&l.op)) {
            Some(name) => name.to_owned(),
            None if self.method == http::Method::OPTIONS => "REST.OPTIONS.PREFLIGHT".to_owned(),
            None => format!(
                "REST.{}.{}",
                self.method.as_str(),
                if r.key.is_some() { "OBJECT" } else { "BUCKET" }
            ),
        };
        if resp.status().is_client_error() || resp.status().is_server_error() {
            r.error_code = resp
                .body()
                .bytes()
                .and_then(|b| error_code(&b))
                .or_else(|| Some(resp.status().canonical_reason()?.replace(' ', "")));
        }
        // The version the request named, else the one the response names (a new version or
        // delete marker, or the version a read served).
        if r.version_id.is_none() {
            r.version_id = resp
                .headers()
                .get("x-amz-version-id")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        }
        r.object_size = object_size(&self.method, &resp, self.request_length);
        let (parts, body) = resp.into_parts();
        let logged = Logged {
            inner: body,
            sent: 0,
            pending: Some((self, state.clone())),
        };
        Response::from_parts(parts, Body::http_body(logged))
    }

    fn complete(mut self, state: &State, sent: u64) {
        self.record.bytes_sent = sent;
        self.record.total_ms = millis(self.started.elapsed());
        state.logs.push(self.to, &self.record);
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The decoded object key a request names, if any.
fn key_of<B>(path: &str, bucket: &str, state: &State, req: &Request<B>) -> Option<String> {
    let virtual_host = match (&state.domain, req.headers().get(header::HOST)) {
        (Some(domain), Some(host)) => host
            .to_str()
            .ok()
            .and_then(|h| domain.bucket_of(h))
            .is_some_and(|b| b == bucket),
        _ => false,
    };
    let path = path.trim_start_matches('/');
    let raw = if virtual_host {
        path
    } else {
        path.split_once('/').map_or("", |(_, key)| key)
    };
    (!raw.is_empty()).then(|| {
        percent_encoding::percent_decode_str(raw)
            .decode_utf8_lossy()
            .into_owned()
    })
}

/// The `<Code>` of an S3 error body.
fn error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let end = text[start..].find("</Code>")? + start;
    Some(text[start..end].to_owned())
}

/// The size of the object a request read or wrote.
fn object_size(
    method: &http::Method,
    resp: &Response<Body>,
    request_length: Option<u64>,
) -> Option<u64> {
    if !resp.status().is_success() {
        return None;
    }
    let header = |name: header::HeaderName| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match *method {
        http::Method::PUT => request_length,
        http::Method::GET | http::Method::HEAD => {
            if let Some(range) = header(header::CONTENT_RANGE) {
                return range.rsplit('/').next().and_then(|t| t.parse().ok());
            }
            header(header::CONTENT_LENGTH).and_then(|v| v.parse().ok())
        }
        _ => None,
    }
}

/// A response body that completes its request's record once it has been sent or dropped.
struct Logged {
    inner: Body,
    sent: u64,
    pending: Option<(Pending, Arc<State>)>,
}

impl Logged {
    fn complete(&mut self) {
        if let Some((pending, state)) = self.pending.take() {
            pending.complete(&state, self.sent);
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.complete();
    }
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent = this.sent.saturating_add(data.len() as u64);
                }
            }
            Poll::Ready(None) => this.complete(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_come_from_the_body() {
        assert_eq!(
            error_code(b"<Error><Code>NoSuchKey</Code><Message>x</Message></Error>").as_deref(),
            Some("NoSuchKey")
        );
        assert_eq!(error_code(b"no xml"), None);
    }
}
