//! The request path, as named phases: route, method, key, lookup, coalesce/fetch, respond.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::Edge;
use super::body::EdgeBody;
use super::conn::{ConnInfo, Route};
use super::fetch::{self, FetchSpec};
use super::head_memo;
use super::presign;
use super::respond::{self, CACHE_STATUS, Decision};
use crate::cache::key::{decoded_key, key_query, object_key, with_key_text};
use crate::cache::{
    CacheKey, DiskBody, Entry, EntryBody, FillError, FillHead, FillKind, FreshnessState, Join,
    Validators,
};
use crate::config::{PlainHttp, Space};
use crate::routing::host_name;

/// How a response came about, rendered as `Cache-Status` (RFC 9211).
#[derive(Debug, Clone, Copy)]
pub enum CacheOutcome {
    /// Served from a stored entry (`disk`: from the disk tier).
    Hit {
        ttl: i64,
        disk: bool,
    },
    Miss {
        stored: bool,
        collapsed: bool,
    },
    Revalidated {
        status: StatusCode,
        stored: bool,
        collapsed: bool,
    },
    StaleOnError {
        status: StatusCode,
        ttl: i64,
    },
    Bypass,
}

impl CacheOutcome {
    /// This PoP's member of `Cache-Status`, written without `format!`: the hit path renders
    /// one per response.
    fn header(self, pop: &str) -> HeaderValue {
        let mut text = String::with_capacity(pop.len() + 48);
        text.push_str(pop);
        let mut number = itoa::Buffer::new();
        match self {
            CacheOutcome::Hit { ttl, disk } => {
                text.push_str("; hit; ttl=");
                text.push_str(number.format(ttl));
                if disk {
                    text.push_str("; detail=disk");
                }
            }
            CacheOutcome::Miss {
                collapsed: true, ..
            } => text.push_str("; fwd=miss; collapsed"),
            CacheOutcome::Miss { stored: true, .. } => text.push_str("; fwd=miss; stored"),
            CacheOutcome::Miss { .. } => text.push_str("; fwd=miss"),
            CacheOutcome::Revalidated {
                status,
                stored,
                collapsed,
            } => {
                text.push_str("; fwd=stale; fwd-status=");
                text.push_str(status.as_str());
                if stored {
                    text.push_str("; stored");
                }
                if collapsed {
                    text.push_str("; collapsed");
                }
            }
            CacheOutcome::StaleOnError { status, ttl } => {
                text.push_str("; fwd=stale; fwd-status=");
                text.push_str(status.as_str());
                text.push_str("; ttl=");
                text.push_str(number.format(ttl));
            }
            CacheOutcome::Bypass => text.push_str("; fwd=bypass"),
        }
        // The PoP name is checked at config load; keep a valid value if it were not.
        HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static("edge; fwd=bypass"))
    }
}

/// Which query string an origin request carries.
#[derive(Debug, Clone, Copy)]
enum UpstreamQuery {
    /// The one the cache key keeps (cache fills: the stored response is the key's resource).
    Key,
    /// The client's, whole (requests the cache does not store).
    Raw,
}

/// Where the phases that need no waiting leave a request.
enum Step {
    /// Answered: a hit from memory, a redirect or an error.
    Answered(Response<EdgeBody>),
    /// Forwarded uncached: OPTIONS, and other methods on HTTP origins.
    PassThrough {
        space: Arc<Space>,
        /// Boxed, as `Miss`: the hit path moves a `Step` and should not copy these.
        request: Box<Request<Incoming>>,
        unsafe_method: bool,
    },
    /// Not answerable from memory: the disk tier, then a fill.
    Miss(Box<Miss>),
}

/// What the disk lookup and a fill need from a request the memory tier could not answer.
struct Miss {
    space: Arc<Space>,
    key: CacheKey,
    object_key: String,
    parts: http::request::Parts,
    hard_expiry: Option<SystemTime>,
    /// The entry found in memory (stale, or with its body on disk), if any.
    stored: Option<Arc<Entry>>,
}

impl Edge {
    /// Answers one request.
    pub async fn handle(
        self: &Arc<Self>,
        request: Request<Incoming>,
        conn: &ConnInfo,
    ) -> Response<EdgeBody> {
        // Phase: framing. hyper already refuses duplicate lengths, obs-fold, bare CRs and
        // any transfer coding but chunked. A chunked request is refused too, and the
        // connection closed: bodies on reads have no meaning here, and a write must say its
        // length (as S3 insists). hyper drops a Content-Length sent beside Transfer-Encoding
        // (RFC 9112 6.3), so this is also the one place that refuses that smuggling shape
        // (RFC 9112 6.1 lets a server reject it) instead of forwarding it re-framed.
        // HTTP/2 has no Transfer-Encoding: there a write whose body follows without a stated
        // length is refused the same way (the stream, not the connection).
        let read = matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        );
        let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
        let unstated = request.version() == http::Version::HTTP_2
            && !read
            && !request.headers().contains_key(header::CONTENT_LENGTH)
            && !http_body::Body::is_end_stream(request.body());
        if chunked || unstated {
            let mut response = if read {
                self.error(StatusCode::BAD_REQUEST, "a body on a read request")
            } else {
                self.error(
                    StatusCode::LENGTH_REQUIRED,
                    "a request body needs Content-Length; uploads of unknown length are not forwarded",
                )
            };
            if chunked {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return response;
        }

        // Phase: ACME HTTP-01 answers, for any host (the CA may reach any PoP).
        if self.acme_challenges.is_some()
            && request.uri().path().starts_with(ACME_CHALLENGE_PATH)
            && let Some(response) = Box::pin(self.acme_challenge(&request)).await
        {
            return response;
        }

        // The slow paths are boxed: their futures are large, and hyper moves the request
        // future (HTTP/1.1) or spawns it (HTTP/2) on every request, hits included.
        match self.answer_now(request, conn) {
            Step::Answered(response) => response,
            Step::PassThrough {
                space,
                request,
                unsafe_method,
            } => Box::pin(self.pass_through(space, *request, conn, unsafe_method)).await,
            Step::Miss(miss) => Box::pin(self.answer_miss(miss, conn)).await,
        }
    }

    /// The phases that need no waiting: route, method, key, memory lookup, and the answer
    /// from an entry held in memory.
    fn answer_now(self: &Arc<Self>, request: Request<Incoming>, conn: &ConnInfo) -> Step {
        // Phase: route, from the request's one authority.
        let host = match request_authority(&request) {
            Ok(host) => host,
            Err(reason) => return Step::Answered(self.error(StatusCode::BAD_REQUEST, reason)),
        };
        let space = match conn.route(&self.live.load(), host) {
            Route::Space(space) => space,
            Route::UnknownHost => {
                return Step::Answered(self.error(StatusCode::NOT_FOUND, "unknown host"));
            }
            Route::Misdirected => {
                return Step::Answered(self.error(
                    StatusCode::MISDIRECTED_REQUEST,
                    "TLS server name names another space",
                ));
            }
        };
        if !conn.tls
            && space.http == PlainHttp::Redirect
            && !request.uri().path().starts_with(ACME_CHALLENGE_PATH)
        {
            return Step::Answered(self.redirect_to_https(host, &request));
        }

        // Phase: method.
        match *request.method() {
            Method::GET | Method::HEAD => {}
            Method::OPTIONS => {
                return Step::PassThrough {
                    space,
                    request: Box::new(request),
                    unsafe_method: false,
                };
            }
            _ if self.origin.is_s3() => {
                let mut response =
                    self.error(StatusCode::METHOD_NOT_ALLOWED, "the edge is read-only");
                response.headers_mut().insert(
                    header::ALLOW,
                    HeaderValue::from_static("GET, HEAD, OPTIONS"),
                );
                return Step::Answered(response);
            }
            _ => {
                return Step::PassThrough {
                    space,
                    request: Box::new(request),
                    unsafe_method: true,
                };
            }
        }

        // Phase: key (borrowed from the request; owned copies are made only for a fetch).
        let (parts, _body) = request.into_parts();
        let object_key = match decoded_key(parts.uri.path()) {
            Ok(key) => key,
            Err(e) => return Step::Answered(self.error(StatusCode::BAD_REQUEST, &e.to_string())),
        };
        if object_key.is_empty() && self.origin.is_s3() {
            return Step::Answered(self.error(StatusCode::NOT_FOUND, "no object key"));
        }
        let query = parts.uri.query();
        let hard_expiry = match presign::expiry(query) {
            Ok(expiry) => expiry,
            Err(e) => return Step::Answered(self.error(StatusCode::BAD_REQUEST, &e.to_string())),
        };
        if hard_expiry.is_some_and(|expiry| expiry <= SystemTime::now()) {
            return Step::Answered(
                self.error(StatusCode::FORBIDDEN, "the presigned URL has expired"),
            );
        }
        let query = key_query(query, &space.query);

        // Phase: lookup in memory; a fresh (or stale-while-revalidate) body held there is
        // answered now.
        let now = SystemTime::now();
        let stored = with_key_text(&space.name, &object_key, &query, |key| {
            if self.origin.is_s3() {
                // Every S3 response is stored as its `Origin` variant (`cache::cors`).
                self.cache
                    .lookup_variant(key, &crate::cache::cors::S3_VARY, &parts.headers)
            } else {
                self.cache.lookup(key, &parts.headers)
            }
        });
        if let Some(entry) = &stored
            && let EntryBody::Memory(body) = &entry.body
        {
            let state = entry.freshness.state(now);
            if state == FreshnessState::StaleWhileRevalidate {
                self.revalidate_in_background(
                    entry,
                    &space,
                    &entry.key,
                    &object_key,
                    &parts,
                    conn,
                    hard_expiry,
                );
            }
            if state != FreshnessState::Stale {
                let outcome = CacheOutcome::Hit {
                    ttl: entry.freshness.ttl_seconds(now),
                    disk: false,
                };
                return Step::Answered(self.respond_from_entry(entry, body, &parts, outcome, now));
            }
        }
        let key = CacheKey::new(&space.name, &object_key, &query);
        let object_key = object_key.into_owned();
        Step::Miss(Box::new(Miss {
            space,
            key,
            object_key,
            parts,
            hard_expiry,
            stored,
        }))
    }

    /// Starts revalidating a stale-while-revalidate entry unless a fill for it runs already.
    #[allow(clippy::too_many_arguments)]
    fn revalidate_in_background(
        self: &Arc<Self>,
        entry: &Arc<Entry>,
        space: &Arc<Space>,
        key: &CacheKey,
        object_key: &str,
        parts: &http::request::Parts,
        conn: &ConnInfo,
        hard_expiry: Option<SystemTime>,
    ) {
        if let Join::Leader(fill) = self.cache.join(key) {
            let spec = self.fetch_spec(
                space,
                key.clone(),
                object_key.to_owned(),
                UpstreamQuery::Key,
                parts,
                conn,
                hard_expiry,
            );
            tokio::spawn(fetch::drive(self.clone(), fill, spec, Some(entry.clone())));
        }
    }

    /// The phases that may wait: the disk tier, then coalesce and fetch (a miss, or a
    /// revalidation of a stale entry).
    async fn answer_miss(self: &Arc<Self>, miss: Box<Miss>, conn: &ConnInfo) -> Response<EdgeBody> {
        let Miss {
            space,
            key,
            object_key,
            parts,
            hard_expiry,
            mut stored,
        } = *miss;

        // Phase: lookup on disk.
        let from_disk = stored.is_none();
        if from_disk {
            stored = self.cache.lookup_disk(&key, &parts.headers).await;
        }
        if let Some(entry) = stored.clone() {
            let now = SystemTime::now();
            let state = entry.freshness.state(now);
            if state != FreshnessState::Stale {
                if state == FreshnessState::StaleWhileRevalidate {
                    self.revalidate_in_background(
                        &entry,
                        &space,
                        &key,
                        &object_key,
                        &parts,
                        conn,
                        hard_expiry,
                    );
                }
                let outcome = CacheOutcome::Hit {
                    ttl: entry.freshness.ttl_seconds(now),
                    disk: from_disk,
                };
                if let EntryBody::Memory(body) = &entry.body {
                    return self.respond_from_entry(&entry, body, &parts, outcome, now);
                }
                match self
                    .respond_from_disk_entry(&entry, &parts, outcome, now)
                    .await
                {
                    Some(response) => return response,
                    // The disk entry failed its checksums (and is gone): a miss.
                    None => stored = None,
                }
            }
        }

        // Phase: coalesce and fetch.
        let (fill, collapsed) = match self.cache.join(&key) {
            Join::Leader(fill) => {
                let spec = self.fetch_spec(
                    &space,
                    key.clone(),
                    object_key.clone(),
                    UpstreamQuery::Key,
                    &parts,
                    conn,
                    hard_expiry,
                );
                tokio::spawn(fetch::drive(
                    self.clone(),
                    fill.clone(),
                    spec,
                    stored.clone(),
                ));
                (fill, false)
            }
            Join::Follower(fill) => (fill, true),
        };
        let Some(mut reader) = fill.reader(0) else {
            return self.error(StatusCode::SERVICE_UNAVAILABLE, "fill unavailable, retry");
        };
        let head = match reader.head().await {
            Ok(head) => head,
            Err(e) => return self.fill_error(&e),
        };
        if collapsed && !head.shareable_with(&parts.headers) {
            // Joined a fill whose response is not for this request: another variant, or one
            // a shared cache may not give to anyone but the client it was fetched for
            // (`private`, `no-store`, an `Authorization`-dependent answer...). This request
            // goes to the origin on its own.
            let fill = crate::cache::Fill::new();
            let spec = self.fetch_spec(
                &space,
                key,
                object_key,
                UpstreamQuery::Key,
                &parts,
                conn,
                hard_expiry,
            );
            let Some(mut own) = fill.reader(0) else {
                return self.error(StatusCode::SERVICE_UNAVAILABLE, "fill unavailable, retry");
            };
            tokio::spawn(fetch::drive(self.clone(), fill, spec, None));
            let head = match own.head().await {
                Ok(head) => head,
                Err(e) => return self.fill_error(&e),
            };
            return self.respond_from_fill(head, own, &parts, false).await;
        }
        self.respond_from_fill(head, reader, &parts, collapsed)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    fn fetch_spec(
        &self,
        space: &Arc<Space>,
        key: CacheKey,
        object_key: String,
        upstream_query: UpstreamQuery,
        parts: &http::request::Parts,
        conn: &ConnInfo,
        hard_expiry: Option<SystemTime>,
    ) -> FetchSpec {
        let mut client_headers = parts.headers.clone();
        // The route was taken from the request's one authority (`request_authority`): the
        // headers passed on carry that authority and nothing else.
        if let Some(authority) = parts.uri.authority()
            && let Ok(value) = HeaderValue::from_str(authority.as_str())
        {
            client_headers.insert(header::HOST, value);
        }
        // What HTTP origins and parents are asked for is built from the key: the decoded
        // object key, re-encoded one canonical way, and the query the key keeps (the raw
        // one for requests the cache does not store), so the response stored under a key
        // is the resource that key names.
        let upstream_query = match upstream_query {
            UpstreamQuery::Key => key.query(),
            UpstreamQuery::Raw => parts.uri.query().unwrap_or_default(),
        };
        let path_and_query = crate::origin::http_target(&object_key, upstream_query);
        FetchSpec {
            space: space.clone(),
            key,
            object_key,
            path_and_query,
            query: parts.uri.query().map(str::to_owned),
            client_headers,
            client_addr: conn.client_addr,
            tls: conn.tls,
            hard_expiry,
            forwards_client_headers: !self.origin.is_s3(),
        }
    }

    fn respond_from_entry(
        &self,
        entry: &Arc<Entry>,
        body: &Bytes,
        parts: &http::request::Parts,
        outcome: CacheOutcome,
        now: SystemTime,
    ) -> Response<EdgeBody> {
        let decision = respond::decide(
            &parts.method,
            &parts.headers,
            entry.status,
            &entry.validators,
            Some(body.len() as u64),
        );
        let age = entry.freshness.age(now).as_secs();
        // A whole hit's head depends only on the entry, its age and its ttl: hot objects
        // reuse the head this thread rendered last (see `head_memo`).
        let memo = match (&decision, outcome) {
            (Decision::Full, CacheOutcome::Hit { ttl, disk: false }) => {
                Some(head_memo::Stamp { age, ttl })
            }
            _ => None,
        };
        if let Some(stamp) = memo
            && let Some(headers) = head_memo::get(entry, stamp)
        {
            return respond::full(&parts.method, entry.status, headers, body);
        }
        let extra = [
            (header::AGE, HeaderValue::from(age)),
            (CACHE_STATUS, outcome.header(&self.pop_name)),
        ];
        let response = respond::from_bytes(
            decision,
            &parts.method,
            entry.status,
            &entry.headers,
            body,
            &extra,
        );
        if let Some(stamp) = memo {
            head_memo::offer(entry, stamp, response.headers());
        }
        response
    }

    /// Answers from an entry whose body is a disk file; `None` when the file is bad.
    async fn respond_from_disk_entry(
        &self,
        entry: &Entry,
        parts: &http::request::Parts,
        outcome: CacheOutcome,
        now: SystemTime,
    ) -> Option<Response<EdgeBody>> {
        let EntryBody::Disk(disk) = &entry.body else {
            return None;
        };
        let extra = [
            (
                header::AGE,
                HeaderValue::from(entry.freshness.age(now).as_secs()),
            ),
            (CACHE_STATUS, outcome.header(&self.pop_name)),
        ];
        from_disk_body(
            disk,
            entry.status,
            &entry.headers,
            &entry.validators,
            parts,
            &extra,
        )
        .await
    }

    async fn respond_from_fill(
        &self,
        head: Arc<FillHead>,
        reader: crate::cache::FillReader,
        parts: &http::request::Parts,
        collapsed: bool,
    ) -> Response<EdgeBody> {
        let now = SystemTime::now();
        let stored = head.admission.is_ok();
        let outcome = match head.kind {
            FillKind::Miss => CacheOutcome::Miss { stored, collapsed },
            FillKind::Revalidation(status) => CacheOutcome::Revalidated {
                status,
                stored,
                collapsed,
            },
            FillKind::StaleOnError(status) => CacheOutcome::StaleOnError {
                status,
                ttl: head.admission.as_ref().map_or(0, |f| f.ttl_seconds(now)),
            },
        };
        let mut extra = vec![(CACHE_STATUS, outcome.header(&self.pop_name))];
        if let Ok(freshness) = &head.admission {
            extra.push((header::AGE, HeaderValue::from(freshness.age(now).as_secs())));
        }
        let validators = Validators::from_headers(&head.headers);
        if let Some(disk) = &head.disk_body {
            return match from_disk_body(
                disk,
                head.status,
                &head.headers,
                &validators,
                parts,
                &extra,
            )
            .await
            {
                Some(response) => response,
                None => self.error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "stored copy unreadable, retry",
                ),
            };
        }
        let mut decision = respond::decide(
            &parts.method,
            &parts.headers,
            head.status,
            &validators,
            head.content_length,
        );
        if matches!(&decision, Decision::Partial(ranges) if ranges.len() > 1) {
            // Multipart ranges are answered from stored entries; while filling, send it whole.
            decision = Decision::Full;
        }
        match decision {
            Decision::NotModified => return respond::not_modified(&head.headers, &extra),
            Decision::Unsatisfiable => {
                return respond::unsatisfiable(head.content_length.unwrap_or(0), &extra);
            }
            _ => {}
        }
        let (status, headers) = respond::streaming_head(
            &decision,
            head.status,
            &head.headers,
            head.content_length,
            &extra,
        );
        let body = if parts.method == Method::HEAD {
            EdgeBody::Empty
        } else {
            let (reader, end) = match &decision {
                Decision::Partial(ranges) => {
                    let range = &ranges[0];
                    match reader.fill().reader(*range.start()) {
                        Some(ranged) => (ranged, Some(range.end() + 1)),
                        None => {
                            return self.error(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "range no longer buffered, retry",
                            );
                        }
                    }
                }
                _ => (reader, None),
            };
            stream_body(reader, end)
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }

    fn fill_error(&self, e: &FillError) -> Response<EdgeBody> {
        let status = match e {
            FillError::Origin(status, _) => *status,
            _ => StatusCode::BAD_GATEWAY,
        };
        self.error(status, "origin unavailable")
    }

    /// Methods the cache does not handle: forwarded uncached; unsafe ones invalidate.
    async fn pass_through(
        self: &Arc<Self>,
        space: Arc<Space>,
        request: Request<Incoming>,
        conn: &ConnInfo,
        unsafe_method: bool,
    ) -> Response<EdgeBody> {
        let (parts, body) = request.into_parts();
        let object_key = match object_key(parts.uri.path()) {
            Ok(key) => key,
            Err(e) => return self.error(StatusCode::BAD_REQUEST, &e.to_string()),
        };
        let spec = self.fetch_spec(
            &space,
            CacheKey::new(&space.name, &object_key, ""),
            object_key.clone(),
            UpstreamQuery::Raw,
            &parts,
            conn,
            None,
        );
        let response = match self
            .origin
            .forward(&spec.origin_request(parts.method.clone(), None), body)
            .await
        {
            Ok(response) => response,
            Err(e) => return self.error(e.status(), "origin unavailable"),
        };
        if unsafe_method && (response.status().is_success() || response.status().is_redirection()) {
            let selector = crate::cache::PurgeSelector::Path {
                space: space.name.clone(),
                key: object_key,
            };
            self.cache.purge(&selector);
        }
        let (mut head, body) = response.into_parts();
        head.headers = fetch::end_to_end(head.headers);
        respond::append_cache_status(
            &mut head.headers,
            &CacheOutcome::Bypass.header(&self.pop_name),
        );
        let body = body
            .map_err(|e| FillError::Body(e.to_string().into()))
            .boxed();
        Response::from_parts(head, EdgeBody::Stream(body))
    }

    /// The key authorization for `/.well-known/acme-challenge/<token>`, if one is published.
    async fn acme_challenge(&self, request: &Request<Incoming>) -> Option<Response<EdgeBody>> {
        let challenges = self.acme_challenges.as_ref()?;
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            return None;
        }
        let token = request.uri().path().strip_prefix(ACME_CHALLENGE_PATH)?;
        let answer = challenges.http01(token).await?;
        let mut response = Response::new(if request.method() == Method::HEAD {
            EdgeBody::Empty
        } else {
            EdgeBody::full(answer.clone())
        });
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(answer.len()));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Some(response)
    }

    fn redirect_to_https(&self, host: &str, request: &Request<Incoming>) -> Response<EdgeBody> {
        let name = host_name(host).unwrap_or(host);
        let port = self
            .https_port
            .map(|p| {
                if p == 443 {
                    String::new()
                } else {
                    format!(":{p}")
                }
            })
            .unwrap_or_default();
        let target = format!(
            "https://{name}{port}{}",
            request.uri().path_and_query().map_or("/", |pq| pq.as_str())
        );
        let mut response = self.error(StatusCode::PERMANENT_REDIRECT, "use HTTPS");
        if let Ok(location) = HeaderValue::from_str(&target) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        response
    }

    /// A response the edge makes itself, with a short text body.
    pub fn error(&self, status: StatusCode, reason: &str) -> Response<EdgeBody> {
        let body = Bytes::from(format!("{} {}\n", status.as_u16(), reason));
        let mut response = Response::new(EdgeBody::Empty);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(CACHE_STATUS, CacheOutcome::Bypass.header(&self.pop_name));
        *response.body_mut() = EdgeBody::full(body);
        response
    }
}

use http::header::HeaderName;

/// Where ACME HTTP-01 challenge answers are served.
const ACME_CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// The request's one authority: the target's (`:authority` in HTTP/2, absolute-form in
/// HTTP/1.1) or `Host`. When both are present they must name the same host and port
/// (RFC 9113 8.3.1; RFC 9112 3.2.2 lets a server refuse the disagreement rather than
/// pick one), so nothing downstream can be told one host while the route took another.
fn request_authority<B>(request: &Request<B>) -> Result<&str, &'static str> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return Err("more than one Host");
    }
    let host_header = match host_header {
        Some(value) => Some(value.to_str().map_err(|_| "missing or invalid Host")?),
        None => None,
    };
    match (request.uri().authority(), host_header) {
        (Some(target), Some(host)) if !crate::routing::same_authority(target.as_str(), host) => {
            Err("the request target's authority and Host disagree")
        }
        (Some(target), _) => Ok(target.as_str()),
        (None, Some(host)) => Ok(host),
        (None, None) => Err("missing or invalid Host"),
    }
}

/// Answers from a disk body: the first block sent is read and verified before the head is
/// (so a bad entry becomes a miss, `None`); later blocks are verified as they stream, and a
/// bad one cuts the response. Several ranges get the whole body (allowed by RFC 9110 14.2).
async fn from_disk_body(
    disk: &Arc<DiskBody>,
    status: StatusCode,
    stored: &http::HeaderMap,
    validators: &Validators,
    parts: &http::request::Parts,
    extra: &[(HeaderName, HeaderValue)],
) -> Option<Response<EdgeBody>> {
    let len = disk.len();
    let mut decision =
        respond::decide(&parts.method, &parts.headers, status, validators, Some(len));
    if matches!(&decision, Decision::Partial(ranges) if ranges.len() > 1) {
        decision = Decision::Full;
    }
    let (start, end) = match &decision {
        Decision::NotModified => return Some(respond::not_modified(stored, extra)),
        Decision::Unsatisfiable => return Some(respond::unsatisfiable(len, extra)),
        Decision::Partial(ranges) => (*ranges[0].start(), ranges[0].end() + 1),
        Decision::Full => (0, len),
    };
    let (status, headers) = respond::streaming_head(&decision, status, stored, Some(len), extra);
    let body = if parts.method == Method::HEAD || start >= end {
        EdgeBody::Empty
    } else {
        let first = disk.block(disk.block_of(start)).await.ok()?;
        let stream =
            futures::StreamExt::map(disk.clone().stream(start, end, Some(first)), |piece| {
                piece
                    .map(http_body::Frame::data)
                    .map_err(|e| FillError::Body(e.to_string().into()))
            });
        EdgeBody::Stream(http_body_util::StreamBody::new(stream).boxed())
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Some(response)
}

fn stream_body(reader: crate::cache::FillReader, end: Option<u64>) -> EdgeBody {
    let stream = futures::stream::unfold(reader, move |mut reader| async move {
        let chunk = reader.next_chunk(end).await?;
        Some((chunk.map(http_body::Frame::data), reader))
    });
    EdgeBody::Stream(http_body_util::StreamBody::new(stream).boxed())
}
