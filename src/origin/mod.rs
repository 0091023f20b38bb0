//! Fetching from the origin: the embedded store or any S3 endpoint (anonymous or SigV4
//! signed), a generic HTTP origin, or a parent PoP. Pooled keep-alive connections,
//! connect and response timeouts, `Forwarded` / `X-Forwarded-For`.

mod error;
mod sign;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri};
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

pub use error::OriginError;
pub use sign::Signer;

use crate::cache::key::is_presign_param;
use crate::cache::tags::WANT_TAGS;
use crate::config::{Config, OriginAuth, OriginKind, Space};
use crate::http_client::{ClientBuilder, HttpsClient};

/// Characters kept as they are in an S3 object key path (RFC 3986 unreserved and `/`).
const S3_KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Characters kept as they are in a path sent to an HTTP origin or parent: RFC 3986 `pchar`
/// (unreserved, sub-delims, `:` and `@`) and `/`; everything else is percent-encoded.
const HTTP_PATH: &AsciiSet = &S3_KEY
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// The request target an HTTP origin or a parent is asked for: the decoded object key
/// encoded one canonical way, and `query` (empty: none). Two requests with the same key
/// (`/img%2Fa.png`, `/img/a.png`) make the same origin request.
pub fn http_target(object_key: &str, query: &str) -> String {
    let mut target = String::with_capacity(object_key.len() + query.len() + 2);
    target.push('/');
    target.extend(utf8_percent_encode(object_key, HTTP_PATH));
    if !query.is_empty() {
        target.push('?');
        target.push_str(query);
    }
    target
}

/// Request headers a hop must not pass on (RFC 9110 7.6.1), plus those the cache owns.
const NOT_FORWARDED: &[HeaderName] = &[
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::HOST,
    header::CONTENT_LENGTH,
    header::FORWARDED,
];

/// Request headers the cache answers itself: never sent with a cache fill (the edge fetches
/// whole objects and revalidates with its own validators), passed on for uncached requests.
const CACHE_OWNED: &[HeaderName] = &[
    header::RANGE,
    header::IF_RANGE,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
];

/// Headers some origins let override the host, URL or method. They are not in the cache
/// key, so forwarding them would let one client change what is stored for everyone
/// (cache poisoning); the edge never passes them on.
const UNKEYED_OVERRIDES: &[&str] = &[
    "x-forwarded-host",
    "x-forwarded-server",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-host",
    "x-original-url",
    "x-rewrite-url",
    "x-original-host",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The body sent to the origin: none for cache fills, the client's for pass-through.
pub type OriginBody = Either<Empty<Bytes>, Incoming>;

/// Request headers an S3 origin needs for CORS (`Origin` first: fills send only it).
const CORS_REQUEST_HEADERS: &[&str] = &[
    "origin",
    "access-control-request-method",
    "access-control-request-headers",
];

/// Where misses go.
#[derive(Debug, Clone)]
enum Target {
    /// An S3 endpoint (the embedded store is one on loopback).
    S3 {
        endpoint: Uri,
        signer: Option<Signer>,
    },
    /// A generic HTTP origin: path and query forwarded as they are.
    Http { base: Uri },
    /// A parent PoP, asked with the space's own edge host name
    /// (`<space>.<region>.<cdn domain>`), so it routes to the space this PoP chose.
    Parent { base: Uri, cdn_domain: String },
}

/// What the cache layer asks of the origin.
#[derive(Debug)]
pub struct OriginRequest<'a> {
    pub space: &'a Space,
    pub method: Method,
    /// The decoded object key.
    pub object_key: &'a str,
    /// The request's raw path and query, for HTTP origins and parents.
    pub path_and_query: &'a str,
    /// The raw query string, if any.
    pub query: Option<&'a str>,
    /// The client's request headers.
    pub client_headers: &'a HeaderMap,
    pub client_addr: SocketAddr,
    /// Whether the client came over TLS.
    pub tls: bool,
    /// Validators of a stale entry to revalidate.
    pub revalidate: Option<(Option<HeaderValue>, Option<SystemTime>)>,
    /// An uncached request: the client's conditional and range headers go through.
    pub pass_through: bool,
}

/// A pooled client for the configured origin.
#[derive(Clone)]
pub struct OriginClient {
    target: Target,
    client: HttpsClient<OriginBody>,
    timeout: Duration,
    via: HeaderValue,
}

impl OriginClient {
    /// Builds the client for `config`'s origin (or parent); `embedded_addr` is where the
    /// embedded store actually listens (it may have been bound to port 0).
    pub fn new(
        config: &Config,
        embedded_addr: Option<SocketAddr>,
    ) -> Result<OriginClient, OriginError> {
        let target = if let Some(parent) = &config.parent {
            Target::Parent {
                base: parent.url.clone(),
                cdn_domain: config.cdn.domain.clone(),
            }
        } else {
            match &config.origin.kind {
                OriginKind::Embedded(embedded) => {
                    let addr = embedded_addr.unwrap_or(embedded.listen);
                    let scheme = if embedded.tls { "https" } else { "http" };
                    let endpoint: Uri = format!("{scheme}://{addr}").parse().map_err(|e| {
                        OriginError::Request(format!("embedded origin address: {e}"))
                    })?;
                    let signer = embedded
                        .users
                        .iter()
                        .find(|u| u.id == embedded.edge_user)
                        .map(|u| Signer::new(&u.access_key, u.secret_key.expose(), "us-east-1"));
                    Target::S3 { endpoint, signer }
                }
                OriginKind::S3(s3) => Target::S3 {
                    endpoint: s3.endpoint.clone(),
                    signer: s3
                        .credentials
                        .as_ref()
                        .map(|c| Signer::new(&c.access_key, c.secret_key.expose(), &s3.region)),
                },
                OriginKind::Http { url } => Target::Http { base: url.clone() },
            }
        };
        // The embedded origin over HTTPS is checked against the certificate it serves (one
        // this process generated or was given), under its name rather than its address.
        let (tls, server_name) =
            match crate::tls::embedded_origin_tls(config).filter(|_| config.parent.is_none()) {
                Some((tls, name)) => (tls, Some(name)),
                None => (crate::tls::client_config(), None),
            };
        let client = ClientBuilder::new(tls, config.origin.connect_timeout)
            .server_name(server_name)
            .keepalive(Duration::from_secs(60))
            .pool(Duration::from_secs(60), 256)
            .build();
        let via = HeaderValue::from_str(&format!("1.1 {}", config.pop.name))
            .map_err(|e| OriginError::Request(e.to_string()))?;
        Ok(OriginClient {
            target,
            client,
            timeout: config.origin.timeout,
            via,
        })
    }

    /// Whether the origin is an S3 store (the edge is read-only there).
    pub fn is_s3(&self) -> bool {
        matches!(self.target, Target::S3 { .. })
    }

    /// Sends the request and waits for the response head (within `origin.timeout`).
    pub async fn fetch(
        &self,
        request: &OriginRequest<'_>,
    ) -> Result<Response<Incoming>, OriginError> {
        let outgoing = self.build(request)?.map(|()| Either::Left(Empty::new()));
        self.send(outgoing).await
    }

    /// Forwards a request the cache does not handle (OPTIONS, or unsafe methods to an HTTP
    /// origin) with its body.
    pub async fn forward(
        &self,
        request: &OriginRequest<'_>,
        body: Incoming,
    ) -> Result<Response<Incoming>, OriginError> {
        let mut outgoing = self.build(request)?.map(|()| Either::Right(body));
        if let Some(length) = request.client_headers.get(header::CONTENT_LENGTH) {
            outgoing
                .headers_mut()
                .insert(header::CONTENT_LENGTH, length.clone());
        }
        self.send(outgoing).await
    }

    async fn send(&self, outgoing: Request<OriginBody>) -> Result<Response<Incoming>, OriginError> {
        match tokio::time::timeout(self.timeout, self.client.request(outgoing)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => {
                let mut message = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(inner) = source {
                    message = format!("{message}: {inner}");
                    source = inner.source();
                }
                Err(OriginError::Connect(message))
            }
            Err(_) => Err(OriginError::Timeout(self.timeout)),
        }
    }

    /// How long to wait for each piece of body.
    pub fn body_timeout(&self) -> Duration {
        self.timeout
    }

    fn build(&self, request: &OriginRequest<'_>) -> Result<Request<()>, OriginError> {
        let (uri, forward_client_headers, signer) = match &self.target {
            Target::S3 { endpoint, signer } => {
                let signer = (request.space.origin_auth == OriginAuth::Signed)
                    .then_some(signer.as_ref())
                    .flatten();
                // Only presign parameters are passed on, and only when the edge does not sign.
                let presign: Vec<&str> = match (signer, request.query) {
                    (None, Some(q)) => q
                        .split('&')
                        .filter(|p| is_presign_param(p.split_once('=').map_or(p, |(n, _)| n)))
                        .collect(),
                    _ => Vec::new(),
                };
                let mut target = format!(
                    "{}/{}",
                    endpoint.to_string().trim_end_matches('/'),
                    utf8_percent_encode(&request.space.bucket, S3_KEY)
                );
                target.push('/');
                target.extend(utf8_percent_encode(request.object_key, S3_KEY));
                if !presign.is_empty() {
                    target.push('?');
                    target.push_str(&presign.join("&"));
                }
                (target, false, signer)
            }
            Target::Http { base } => (join(base, request.path_and_query), true, None),
            Target::Parent { base, .. } => (join(base, request.path_and_query), true, None),
        };
        let uri: Uri = uri
            .parse()
            .map_err(|e| OriginError::Request(format!("origin URL: {e}")))?;
        let mut builder = Request::builder().method(request.method.clone()).uri(uri);
        let headers = builder
            .headers_mut()
            .ok_or_else(|| OriginError::Request("bad request".into()))?;
        if forward_client_headers {
            for (name, value) in request.client_headers {
                if !NOT_FORWARDED.contains(name)
                    && (request.pass_through || !CACHE_OWNED.contains(name))
                    && !UNKEYED_OVERRIDES.contains(&name.as_str())
                    && !is_connection_option(request.client_headers, name)
                {
                    headers.append(name.clone(), value.clone());
                }
            }
            if let Target::Parent { cdn_domain, .. } = &self.target {
                let space = request.space;
                let host = format!("{}.{}.{cdn_domain}", space.name, space.region);
                let host = HeaderValue::from_str(&host)
                    .map_err(|e| OriginError::Request(format!("parent host `{host}`: {e}")))?;
                headers.insert(header::HOST, host);
                // The parent passes its entries' cache tags on, so this PoP's copies are
                // tagged (and purged by tag) too.
                headers.insert(WANT_TAGS, HeaderValue::from_static("1"));
            }
        }
        if !forward_client_headers {
            // S3 origins see only what CORS needs, never the client's credentials. A cache
            // fill passes `Origin` alone: the stored variant is selected by it and nothing
            // else (`cache::cors`); the preflight headers go with uncached preflights only.
            let cors = if request.pass_through {
                CORS_REQUEST_HEADERS
            } else {
                &CORS_REQUEST_HEADERS[..1]
            };
            for name in cors {
                if let Some(value) = request.client_headers.get(*name) {
                    headers.insert(*name, value.clone());
                }
            }
        }
        add_forwarding(headers, request, &self.via);
        if let Some((etag, last_modified)) = &request.revalidate {
            if let Some(etag) = etag {
                headers.insert(header::IF_NONE_MATCH, etag.clone());
            }
            if let Some(lm) = last_modified
                && let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(*lm))
            {
                headers.insert(header::IF_MODIFIED_SINCE, value);
            }
        }
        let mut outgoing = builder
            .body(())
            .map_err(|e| OriginError::Request(e.to_string()))?;
        if let Some(signer) = signer {
            signer.sign(&mut outgoing, SystemTime::now())?;
        }
        Ok(outgoing)
    }
}

fn join(base: &Uri, path_and_query: &str) -> String {
    let base = base.to_string();
    format!("{}{}", base.trim_end_matches('/'), path_and_query)
}

/// Whether `name` is listed in the request's `Connection` header (hop-by-hop).
fn is_connection_option(headers: &HeaderMap, name: &HeaderName) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|option| option.trim().eq_ignore_ascii_case(name.as_str()))
}

fn add_forwarding(headers: &mut HeaderMap, request: &OriginRequest<'_>, via: &HeaderValue) {
    let ip = request.client_addr.ip();
    let xff = match request
        .client_headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(previous) => format!("{previous}, {ip}"),
        None => ip.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", value);
    }
    let node = match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("\"[{v6}]\""),
    };
    let proto = if request.tls { "https" } else { "http" };
    let mut forwarded = format!("for={node};proto={proto}");
    if let Some(host) = request
        .client_headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        && host.bytes().all(|b| b.is_ascii_graphic())
        && !host.contains('"')
    {
        forwarded.push_str(&format!(";host=\"{host}\""));
    }
    let forwarded = match request
        .client_headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
    {
        Some(previous) => format!("{previous}, {forwarded}"),
        None => forwarded,
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded) {
        headers.insert(header::FORWARDED, value);
    }
    headers.append(header::VIA, via.clone());
}
