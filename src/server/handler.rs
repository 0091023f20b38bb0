//! The request path, as named phases: framing, route, method, key, lookup, respond. Every
//! request ends as an [`Answer`]: its response and the cache outcome it came from.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::Edge;
use super::answer::Answer;
use super::body::EdgeBody;
use super::cache_status::{self, CACHE_STATUS};
use super::conn::{ConnInfo, Route};
use super::file_send::SendsFiles;
use super::presign;
use crate::cache::fill::driver;
use crate::cache::key::{decoded_key, key_query, with_key_text};
use crate::cache::{
    Body, BypassReason, CacheKey, CacheOutcome, Entry, FillError, FillPermit, FillRequest, Lookup,
    Variants,
};
use crate::config::{PlainHttp, Space};
use crate::routing::host_name;

/// Where the phases that need no waiting leave a request.
enum Step {
    /// Answered: a redirect or an error.
    Answered(Answer),
    /// Answered from memory for a space.
    Served(Answer, Arc<Space>),
    /// Forwarded uncached: OPTIONS, and other methods on HTTP origins.
    PassThrough {
        space: Arc<Space>,
        /// Boxed, as `Lookup`: the hit path moves a `Step` and should not copy these.
        request: Box<Request<Incoming>>,
        unsafe_method: bool,
    },
    /// Not answerable from memory: the full lookup (disk tier, fills), then a fetch.
    Lookup(Box<Pending>),
}

/// A request the memory tier could not answer.
pub(super) struct Pending {
    pub space: Arc<Space>,
    pub key: CacheKey,
    pub object_key: String,
    pub parts: http::request::Parts,
    pub hard_expiry: Option<SystemTime>,
}

/// Which query string an origin request carries.
#[derive(Debug, Clone, Copy)]
pub(super) enum UpstreamQuery {
    /// The one the cache key keeps (cache fills: the stored response is the key's resource).
    Key,
    /// The client's, whole (requests the cache does not store).
    Raw,
}

/// Where ACME HTTP-01 challenge answers are served.
const ACME_CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

impl Edge {
    /// Answers one request.
    pub async fn handle(
        self: &Arc<Self>,
        request: Request<Incoming>,
        conn: &ConnInfo,
    ) -> (Answer, Option<Arc<Space>>) {
        if let Some(refused) = self.framing(&request) {
            return (refused, None);
        }
        // ACME HTTP-01 answers, for any host (the CA may reach any PoP).
        if self.acme_challenges.is_some()
            && request.uri().path().starts_with(ACME_CHALLENGE_PATH)
            && let Some(response) = Box::pin(self.acme_challenge(&request)).await
        {
            return ((response, CacheOutcome::Bypass(BypassReason::Edge)), None);
        }
        // The slow paths are boxed: their futures are large, and hyper moves the request
        // future (HTTP/1.1) or spawns it (HTTP/2) on every request, hits included.
        match self.answer_now(request, conn) {
            Step::Answered(answer) => (answer, None),
            Step::Served(answer, space) => (answer, Some(space)),
            Step::PassThrough {
                space,
                request,
                unsafe_method,
            } => {
                let of = space.clone();
                let answer =
                    Box::pin(self.pass_through(space, *request, conn, unsafe_method)).await;
                (answer, Some(of))
            }
            Step::Lookup(pending) => {
                let of = pending.space.clone();
                (Box::pin(self.answer_lookup(*pending, conn)).await, Some(of))
            }
        }
    }

    /// Phase: framing. hyper already refuses duplicate lengths, obs-fold, bare CRs and any
    /// transfer coding but chunked. A chunked request is refused too, and the connection
    /// closed: bodies on reads have no meaning here, and a write must say its length (as S3
    /// insists). hyper drops a Content-Length sent beside Transfer-Encoding (RFC 9112 6.3),
    /// so this is also the one place that refuses that smuggling shape (RFC 9112 6.1 lets a
    /// server reject it) instead of forwarding it re-framed. HTTP/2 has no
    /// Transfer-Encoding: there a write whose body follows without a stated length is
    /// refused the same way (the stream, not the connection).
    fn framing(&self, request: &Request<Incoming>) -> Option<Answer> {
        let read = matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        );
        let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
        let unstated = request.version() == http::Version::HTTP_2
            && !read
            && !request.headers().contains_key(header::CONTENT_LENGTH)
            && !http_body::Body::is_end_stream(request.body());
        if !chunked && !unstated {
            return None;
        }
        let mut refused = if read {
            self.error(StatusCode::BAD_REQUEST, "a body on a read request")
        } else {
            self.error(
                StatusCode::LENGTH_REQUIRED,
                "a request body needs Content-Length; uploads of unknown length are not forwarded",
            )
        };
        if chunked {
            refused
                .0
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Some(refused)
    }

    /// The phases that need no waiting: route, method, key, and the memory tier's answer.
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
            _ if self.upstream.client.is_s3() => {
                let mut refused =
                    self.error(StatusCode::METHOD_NOT_ALLOWED, "the edge is read-only");
                refused.0.headers_mut().insert(
                    header::ALLOW,
                    HeaderValue::from_static("GET, HEAD, OPTIONS"),
                );
                return Step::Answered(refused);
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
        if object_key.is_empty() && self.upstream.client.is_s3() {
            return Step::Answered(self.error(StatusCode::NOT_FOUND, "no object key"));
        }
        let query = parts.uri.query();
        let now = self.cache.now();
        let hard_expiry = match presign::expiry(query) {
            Ok(expiry) => expiry,
            Err(e) => return Step::Answered(self.error(StatusCode::BAD_REQUEST, &e.to_string())),
        };
        if hard_expiry.is_some_and(|expiry| expiry <= now) {
            return Step::Answered(
                self.error(StatusCode::FORBIDDEN, "the presigned URL has expired"),
            );
        }
        let query = key_query(query, &space.query);

        // Phase: lookup in memory; what it holds is answered now.
        let variants = self.variants();
        let found = with_key_text(&space.name, &object_key, &query, |key| {
            self.cache.lookup_memory(key, variants, &parts.headers, now)
        });
        if let Some(lookup) = found
            && let Ok((entry, outcome)) =
                self.from_storage(lookup, &space, &parts, hard_expiry, conn, now)
            && let Body::Memory(body) = &entry.body
            && let Some(answer) =
                self.memory_hit(&space, &entry, body, &parts, outcome, variants, now)
        {
            // (Memory entries hold their bodies in memory; a coded variant not yet in memory
            // is found or made by the full lookup.)
            return Step::Served(answer, space);
        }
        let mut pending = Box::new(Pending {
            key: CacheKey::new(&space.name, &object_key, &query),
            object_key: object_key.into_owned(),
            space,
            parts,
            hard_expiry,
        });
        // Stored bodies are read for the socket when it sends disk pieces from their files
        // and gets them unframed (HTTP/1; h2c frames them). Marked here, off the memory-hit
        // path: an extension costs an allocation.
        if conn.sends_files && pending.parts.version <= http::Version::HTTP_11 {
            pending.parts.extensions.insert(SendsFiles);
        }
        Step::Lookup(pending)
    }

    /// How the stored responses of this PoP's origin vary.
    fn variants(&self) -> Variants {
        if self.upstream.client.is_s3() {
            // Every S3 response is stored as its `Origin` variant (`cache::cors`).
            Variants::Always(&crate::cache::cors::S3_VARY)
        } else {
            Variants::ByVary
        }
    }

    /// Phase: respond from storage. A fresh entry, or a stale one the request may have while
    /// it is revalidated (the revalidation is started here when this request got it), is
    /// served with its hit outcome; any other lookup is handed back. The one place that
    /// decides what a hit is.
    fn from_storage(
        self: &Arc<Self>,
        lookup: Lookup,
        space: &Arc<Space>,
        parts: &http::request::Parts,
        hard_expiry: Option<SystemTime>,
        conn: &ConnInfo,
        now: SystemTime,
    ) -> Result<(Arc<Entry>, CacheOutcome), Lookup> {
        let (entry, tier) = match lookup {
            Lookup::Fresh(entry, tier) => (entry, tier),
            Lookup::StaleWhileRevalidate {
                entry,
                tier,
                revalidation,
            } => {
                if let Some(permit) = revalidation {
                    let request = self.fill_request(
                        space,
                        entry.key.clone(),
                        entry.key.object_key().to_owned(),
                        UpstreamQuery::Key,
                        parts,
                        conn,
                        hard_expiry,
                    );
                    self.spawn_fill(permit, request);
                }
                (entry, tier)
            }
            other => return Err(other),
        };
        let outcome = Edge::hit(&entry, tier, now);
        Ok((entry, outcome))
    }

    /// The phases that may wait: the full lookup (disk tier, fills in flight), then a fetch
    /// or a read of another request's fetch.
    async fn answer_lookup(self: &Arc<Self>, pending: Pending, conn: &ConnInfo) -> Answer {
        let variants = self.variants();
        // A stored body found bad is dropped by its tier: the second lookup is a miss.
        for _ in 0..2 {
            let now = self.cache.now();
            let lookup = self
                .cache
                .lookup(&pending.key, variants, &pending.parts.headers, now)
                .await;
            let stored = self.from_storage(
                lookup,
                &pending.space,
                &pending.parts,
                pending.hard_expiry,
                conn,
                now,
            );
            match stored {
                Ok((entry, outcome)) => {
                    if let Some(answer) = self
                        .stored_hit(
                            &pending.space,
                            &entry,
                            &pending.parts,
                            outcome,
                            variants,
                            now,
                        )
                        .await
                    {
                        return answer;
                    }
                }
                Err(Lookup::Miss(permit)) => {
                    let Some(reader) = permit.reader() else {
                        return self
                            .error(StatusCode::SERVICE_UNAVAILABLE, "fill unavailable, retry");
                    };
                    self.spawn_fill(permit, self.pending_fill_request(&pending, conn));
                    return self.read_fill(reader, &pending, conn, false).await;
                }
                Err(Lookup::Join(fill)) => {
                    let Some(reader) = fill.reader(0) else {
                        return self
                            .error(StatusCode::SERVICE_UNAVAILABLE, "fill unavailable, retry");
                    };
                    return self.read_fill(reader, &pending, conn, true).await;
                }
                // `from_storage` hands back only the lookups it does not serve.
                Err(Lookup::Fresh(..) | Lookup::StaleWhileRevalidate { .. }) => {}
            }
        }
        self.error(
            StatusCode::SERVICE_UNAVAILABLE,
            "stored copy unreadable, retry",
        )
    }

    /// Answers from a fill once its head is known. A request that joined another's fill
    /// gets its response only when a shared cache may give it to anyone (and it is of the
    /// request's variant); otherwise the request goes to the origin on its own.
    async fn read_fill(
        self: &Arc<Self>,
        mut reader: crate::cache::FillReader,
        pending: &Pending,
        conn: &ConnInfo,
        collapsed: bool,
    ) -> Answer {
        let head = match reader.head().await {
            Ok(head) => head,
            Err(e) => return self.fill_error(&e),
        };
        if collapsed && !head.shareable_with(&pending.parts.headers) {
            let permit = FillPermit::detached(self.cache.clone(), pending.key.clone());
            let Some(mut own) = permit.reader() else {
                return self.error(StatusCode::SERVICE_UNAVAILABLE, "fill unavailable, retry");
            };
            self.spawn_fill(permit, self.pending_fill_request(pending, conn));
            let head = match own.head().await {
                Ok(head) => head,
                Err(e) => return self.fill_error(&e),
            };
            return self
                .fill_answer(
                    &pending.space,
                    &pending.key,
                    head,
                    own,
                    &pending.parts,
                    false,
                    self.variants(),
                )
                .await;
        }
        self.fill_answer(
            &pending.space,
            &pending.key,
            head,
            reader,
            &pending.parts,
            collapsed,
            self.variants(),
        )
        .await
    }

    /// Starts the task that drives `permit`'s fill of `request`.
    pub(super) fn spawn_fill(&self, permit: FillPermit, request: FillRequest) {
        let rules = self.ttl_rules(&request.space);
        let origin: Arc<dyn crate::cache::Origin> = self.upstream.clone();
        tokio::spawn(driver::drive(permit, request, origin, rules));
    }

    fn pending_fill_request(&self, pending: &Pending, conn: &ConnInfo) -> FillRequest {
        self.fill_request(
            &pending.space,
            pending.key.clone(),
            pending.object_key.clone(),
            UpstreamQuery::Key,
            &pending.parts,
            conn,
            pending.hard_expiry,
        )
    }

    /// What a fill (or a forwarded request) asks the origin for.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fill_request(
        &self,
        space: &Arc<Space>,
        key: CacheKey,
        object_key: String,
        upstream_query: UpstreamQuery,
        parts: &http::request::Parts,
        conn: &ConnInfo,
        hard_expiry: Option<SystemTime>,
    ) -> FillRequest {
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
        FillRequest {
            space: space.clone(),
            key,
            object_key,
            path_and_query,
            query: parts.uri.query().map(str::to_owned),
            client_headers,
            client_addr: conn.client_addr,
            tls: conn.tls,
            hard_expiry,
            forwards_client_headers: !self.upstream.client.is_s3(),
            head: parts.method == Method::HEAD,
        }
    }

    pub(super) fn fill_error(&self, e: &FillError) -> Answer {
        let status = match e {
            FillError::Origin(status, _) => *status,
            _ => StatusCode::BAD_GATEWAY,
        };
        self.error(status, "origin unavailable")
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

    fn redirect_to_https(&self, host: &str, request: &Request<Incoming>) -> Answer {
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
        let mut answer = self.error(StatusCode::PERMANENT_REDIRECT, "use HTTPS");
        if let Ok(location) = HeaderValue::from_str(&target) {
            answer.0.headers_mut().insert(header::LOCATION, location);
        }
        answer
    }

    /// A response the edge makes itself, with a short text body.
    pub fn error(&self, status: StatusCode, reason: &str) -> Answer {
        let outcome = CacheOutcome::Bypass(BypassReason::Edge);
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
        headers.insert(CACHE_STATUS, cache_status::render(&outcome, &self.pop_name));
        *response.body_mut() = EdgeBody::full(body);
        (response, outcome)
    }
}

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
