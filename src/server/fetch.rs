//! Driving a fill: one origin fetch whose head and body are published to every request
//! reading the fill, then stored. Stale entries are revalidated here (a 304 refreshes the
//! entry without a body transfer) and served here when the origin fails (`stale-if-error`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::Edge;
use crate::cache::cors::{S3_VARY, s3_response_vary};
use crate::cache::entry::vary_names;
use crate::cache::freshness::admit;
use crate::cache::{
    CacheKey, DiskBody, Entry, EntryBody, Fill, FillError, FillHead, FillKind, Freshness, Spool,
    SpoolHead, Validators, VaryValues,
};
use crate::config::Space;
use crate::origin::{OriginError, OriginRequest};

/// Response headers a hop must not pass on, or that the cache recomputes.
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::AGE,
    header::CONTENT_LENGTH,
];

/// Everything a fill needs to fetch, owned so the fetch outlives the request that started it.
#[derive(Debug, Clone)]
pub struct FetchSpec {
    pub space: Arc<Space>,
    pub key: CacheKey,
    pub object_key: String,
    pub path_and_query: String,
    pub query: Option<String>,
    pub client_headers: HeaderMap,
    pub client_addr: SocketAddr,
    pub tls: bool,
    /// Expiry of a presigned URL this fetch carries.
    pub hard_expiry: Option<SystemTime>,
    /// Whether the origin sees the client's headers (HTTP origins and parents, not S3).
    pub forwards_client_headers: bool,
}

impl FetchSpec {
    /// Whether the response is selected by the request's `Origin` whatever the origin's
    /// `Vary` says: S3 origins answer CORS by it (see [`crate::cache::cors`]).
    pub fn varies_by_origin(&self) -> bool {
        !self.forwards_client_headers
    }

    /// The origin's response headers as the edge stores and sends them.
    fn response_headers(&self, origin: HeaderMap) -> HeaderMap {
        let mut headers = end_to_end(origin);
        if self.varies_by_origin() {
            s3_response_vary(&mut headers);
        }
        headers
    }

    /// The values of the request headers that select this response among its variants.
    fn vary_values(&self, headers: &HeaderMap) -> VaryValues {
        if self.varies_by_origin() {
            VaryValues::of(&S3_VARY, &self.client_headers)
        } else {
            VaryValues::of(&vary_names(headers), &self.client_headers)
        }
    }

    /// The origin request for this fetch with `method`, revalidating `revalidate` if given.
    pub fn origin_request(&self, method: Method, revalidate: Option<&Entry>) -> OriginRequest<'_> {
        let pass_through = method != Method::GET;
        OriginRequest {
            space: &self.space,
            method,
            object_key: &self.object_key,
            path_and_query: &self.path_and_query,
            query: self.query.as_deref(),
            client_headers: &self.client_headers,
            client_addr: self.client_addr,
            tls: self.tls,
            revalidate: revalidate.map(|e| (e.validators.etag.clone(), e.validators.last_modified)),
            pass_through,
        }
    }
}

/// Strips hop-by-hop fields (and those named by `Connection`) from origin response headers.
pub fn end_to_end(mut headers: HeaderMap) -> HeaderMap {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(named.iter()) {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    headers
}

fn origin_failure(e: &OriginError) -> FillError {
    FillError::Origin(e.status(), e.to_string().into())
}

/// Runs one fill to its end. `stale` is the stored entry being revalidated, if any.
pub async fn drive(edge: Arc<Edge>, fill: Arc<Fill>, spec: FetchSpec, stale: Option<Arc<Entry>>) {
    let started = std::time::Instant::now();
    let result = edge
        .origin
        .fetch(&spec.origin_request(Method::GET, stale.as_deref()))
        .await;
    edge.metrics
        .origin_fetch(result.is_ok(), started.elapsed().as_secs_f64());
    let now = SystemTime::now();
    let response = match result {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(space = %spec.space.name, key = %spec.object_key, error = %e, "origin fetch failed");
            if let Some(stale) = stale.filter(|s| s.freshness.usable_on_error(now)) {
                serve_stale(&edge, &fill, &spec, &stale, e.status()).await;
            } else {
                fill.finish(Err(origin_failure(&e)));
                edge.cache.complete(&spec.key, &fill, None);
            }
            return;
        }
    };
    let (parts, body) = response.into_parts();

    if let Some(stale) = &stale {
        if parts.status == StatusCode::NOT_MODIFIED {
            refresh(&edge, &fill, &spec, stale, &parts.headers, now).await;
            return;
        }
        if parts.status.is_server_error() && stale.freshness.usable_on_error(now) {
            serve_stale(&edge, &fill, &spec, stale, parts.status).await;
            return;
        }
    }

    let headers = spec.response_headers(parts.headers);
    let content_length = body_length(&body);
    let origin_request_headers = edge_request_headers(&spec);
    let admission = admit(
        &uri_of(&spec),
        &origin_request_headers,
        parts.status,
        &headers,
        now,
        &edge.ttl_rules(&spec.space),
    )
    .map(|f| match spec.hard_expiry {
        Some(hard) => crate::cache::Freshness {
            hard_expiry: Some(hard),
            ..f
        },
        None => f,
    });
    let vary = spec.vary_values(&headers);
    let retained =
        admission.is_ok() && content_length.is_none_or(|len| len <= edge.cache.max_memory_object());
    // A large body that will be stored streams to the disk tier as it arrives.
    let spool = if admission.is_ok() && !retained {
        edge.cache.spool(content_length)
    } else {
        None
    };
    let kind = match &stale {
        Some(_) => FillKind::Revalidation(parts.status),
        None => FillKind::Miss,
    };
    let head = FillHead {
        status: parts.status,
        headers,
        content_length,
        admission,
        vary,
        kind,
        retained,
        disk_body: None,
    };
    let stored_meta = head
        .admission
        .ok()
        .map(|f| (parts.status, head.headers.clone(), f, head.vary.clone()));
    fill.set_head(head);
    if let Some(spool) = &spool {
        fill.start_spooling(spool.file());
    }

    let stored_as = |status, headers: HeaderMap, freshness, vary| SpoolHead {
        key: spec.key.clone(),
        status,
        headers,
        freshness,
        vary,
    };
    match pump(
        &edge,
        &fill,
        body,
        retained,
        spool,
        admission_ok(&stored_meta),
    )
    .await
    {
        Ok(spool) => {
            fill.finish(Ok(()));
            if let (Some(spool), Some((status, headers, freshness, vary))) =
                (spool, stored_meta.clone())
                && let Err(e) = spool
                    .commit(stored_as(status, headers, freshness, vary))
                    .await
            {
                tracing::warn!(space = %spec.space.name, key = %spec.object_key, error = %e, "large body not stored on disk");
            }
            let entry = match (stored_meta, fill.retained_body()) {
                (Some((status, headers, freshness, vary)), Some(body)) => Some(Entry {
                    key: spec.key.clone(),
                    status,
                    validators: Validators::from_headers(&headers),
                    headers,
                    body: EntryBody::Memory(body),
                    freshness,
                    vary,
                }),
                _ => None,
            };
            edge.cache.complete(&spec.key, &fill, entry);
        }
        Err(e) => {
            tracing::warn!(space = %spec.space.name, key = %spec.object_key, error = %e, "origin body failed");
            fill.finish(Err(e));
            edge.cache.complete(&spec.key, &fill, None);
        }
    }
}

fn admission_ok(meta: &Option<(StatusCode, HeaderMap, Freshness, VaryValues)>) -> bool {
    meta.is_some()
}

/// Bytes a spooling fill gathers before writing them to its file.
const SPOOL_FLUSH: u64 = 1 << 20;

/// Copies the origin body into the fill, and into the spool file when the body goes to disk.
/// A body outgrowing the memory tier switches to spooling (or to a window, without a disk
/// tier). Stops early when nobody reads and nothing is stored. Returns the spool to commit.
async fn pump(
    edge: &Edge,
    fill: &Fill,
    mut body: Incoming,
    mut retained: bool,
    mut spool: Option<Spool>,
    storable: bool,
) -> Result<Option<Spool>, FillError> {
    let limit = edge.cache.max_memory_object();
    let timeout = edge.origin.body_timeout();
    loop {
        let frame = match tokio::time::timeout(timeout, body.frame()).await {
            Err(_) => return Err(FillError::Body("origin body timed out".into())),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(FillError::Body(e.to_string().into())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        fill.push(data).await;
        if retained && fill.received() > limit {
            retained = false;
            spool = if storable {
                edge.cache.spool(None)
            } else {
                None
            };
            match &spool {
                Some(spool) => fill.start_spooling(spool.file()),
                None => fill.stop_retaining(),
            }
        }
        if let Some(writer) = &mut spool
            && fill.received() - writer.written() >= SPOOL_FLUSH
        {
            spool = flush(fill, spool.take()).await;
        }
        if !retained && spool.is_none() && fill.reader_count() == 0 {
            return Err(FillError::Abandoned);
        }
    }
    if spool.is_some() {
        spool = flush(fill, spool.take()).await;
    }
    Ok(spool)
}

/// Writes what the fill holds beyond the spool file's end; on a disk error the fill falls
/// back to a window (the body is then not stored).
async fn flush(fill: &Fill, spool: Option<Spool>) -> Option<Spool> {
    let mut spool = spool?;
    match spool.write(fill.unflushed()).await {
        Ok(written) => {
            fill.set_flushed(written);
            Some(spool)
        }
        Err(_) => {
            fill.stop_spooling();
            None
        }
    }
}

fn body_length(body: &Incoming) -> Option<u64> {
    http_body::Body::size_hint(body).exact()
}

fn uri_of(spec: &FetchSpec) -> http::Uri {
    http::Uri::builder()
        .path_and_query(spec.path_and_query.as_str())
        .build()
        .unwrap_or_default()
}

/// The request headers the origin saw, as far as storage rules care (Authorization).
fn edge_request_headers(spec: &FetchSpec) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(auth) = spec.client_headers.get(header::AUTHORIZATION)
        && spec.forwards_client_headers
    {
        headers.insert(header::AUTHORIZATION, auth.clone());
    }
    headers
}

/// A 304 from the origin: merge its headers into the stored ones and refresh freshness.
async fn refresh(
    edge: &Edge,
    fill: &Arc<Fill>,
    spec: &FetchSpec,
    stale: &Entry,
    update: &HeaderMap,
    now: SystemTime,
) {
    let mut headers = stale.headers.clone();
    for name in end_to_end(update.clone()).keys() {
        headers.remove(name);
        for value in update.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    let headers = spec.response_headers(headers);
    let admission = admit(
        &uri_of(spec),
        &HeaderMap::new(),
        stale.status,
        &headers,
        now,
        &edge.ttl_rules(&spec.space),
    )
    .map(|fresh| stale.freshness.refreshed(fresh));
    let head = FillHead {
        status: stale.status,
        headers: headers.clone(),
        content_length: Some(stale.body.len()),
        admission,
        vary: stale.vary.clone(),
        kind: FillKind::Revalidation(StatusCode::NOT_MODIFIED),
        retained: true,
        disk_body: disk_body(&stale.body),
    };
    fill.set_head(head);
    push_stored(fill, &stale.body).await;
    fill.finish(Ok(()));
    let entry = admission.ok().map(|freshness| Entry {
        key: stale.key.clone(),
        status: stale.status,
        validators: Validators::from_headers(&headers),
        headers,
        body: stale.body.clone(),
        freshness,
        vary: stale.vary.clone(),
    });
    edge.cache.complete(&spec.key, fill, entry);
}

/// The origin failed; the stale entry may still be served.
async fn serve_stale(
    edge: &Edge,
    fill: &Arc<Fill>,
    spec: &FetchSpec,
    stale: &Entry,
    status: StatusCode,
) {
    let head = FillHead {
        status: stale.status,
        headers: stale.headers.clone(),
        content_length: Some(stale.body.len()),
        admission: Ok(stale.freshness),
        vary: stale.vary.clone(),
        kind: FillKind::StaleOnError(status),
        retained: true,
        disk_body: disk_body(&stale.body),
    };
    fill.set_head(head);
    push_stored(fill, &stale.body).await;
    fill.finish(Ok(()));
    // The stale entry stays as it is; the next request tries the origin again.
    edge.cache.complete(&spec.key, fill, None);
}

/// Publishes a stored body to a fill: a memory body whole; a disk body is not copied, the
/// head names it and readers stream it from its file (`FillHead::disk_body`).
async fn push_stored(fill: &Fill, body: &EntryBody) {
    if let EntryBody::Memory(bytes) = body {
        fill.push(bytes.clone()).await;
    }
}

fn disk_body(body: &EntryBody) -> Option<Arc<DiskBody>> {
    match body {
        EntryBody::Disk(disk) => Some(disk.clone()),
        EntryBody::Memory(_) => None,
    }
}
