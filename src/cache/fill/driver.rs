//! Driving a fill: one origin fetch whose head and body are published to every request
//! reading the fill, then stored. Decides admission (RFC 9111 storage rules and the TTLs),
//! caps the lifetime at a presigned URL's expiry, and keeps the body whole for the memory tier
//! or spools it to the disk tier. Answers to revalidations (a 304, a HEAD's answer, a failed
//! origin) are handled in `revalidate.rs`.

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::revalidate::{Update, head_answered, refresh, serve_stale};
use super::{Fill, FillError, FillHead, FillKind, FillPermit, FillRequest, Origin};
use crate::cache::admission::{Exchange, NotStored, TtlRules, admit};
use crate::cache::body::Body;
use crate::cache::cors::{S3_VARY, s3_response_vary};
use crate::cache::entry::{Entry, VaryValues, vary_names};
use crate::cache::freshness::Freshness;
use crate::cache::tags::{self, TagError, Tags};
use crate::cache::{Spool, SpoolHead};

/// Response headers a hop must not pass on, or that the cache recomputes. (`Age` is
/// end-to-end: it is passed on with responses that are not stored; a stored response's is
/// computed from its freshness.)
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::CONTENT_LENGTH,
];

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

/// The origin's response headers as the edge stores and sends them (without the tag
/// fields), and the cache tags they gave (an error: more than an entry may carry).
pub(super) fn response_headers(
    request: &FillRequest,
    origin: HeaderMap,
) -> (HeaderMap, Result<Tags, TagError>) {
    let mut headers = end_to_end(origin);
    if request.varies_by_origin() {
        s3_response_vary(&mut headers);
    }
    let tags = Tags::from_headers(&headers);
    tags::strip(&mut headers);
    (headers, tags)
}

/// The values of the request headers that select this response among its variants.
fn vary_values(request: &FillRequest, headers: &HeaderMap) -> VaryValues {
    if request.varies_by_origin() {
        VaryValues::of(&S3_VARY, &request.client_headers)
    } else {
        VaryValues::of(&vary_names(headers), &request.client_headers)
    }
}

/// The fields a stored response keeps: all but `Age`, which is computed when it is served.
pub(super) fn stored_headers(headers: &HeaderMap) -> HeaderMap {
    let mut stored = headers.clone();
    stored.remove(header::AGE);
    stored
}

/// The request headers the origin saw, as far as storage rules care (`Authorization`).
pub(super) fn origin_request_headers(request: &FillRequest) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(auth) = request.client_headers.get(header::AUTHORIZATION)
        && request.forwards_client_headers
    {
        headers.insert(header::AUTHORIZATION, auth.clone());
    }
    headers
}

/// Runs one fill to its end: fetches `request` from `origin` (revalidating the permit's stale
/// entry, if any), publishes the response to the fill's readers and stores it under `rules`.
pub async fn drive(
    permit: FillPermit,
    request: FillRequest,
    origin: Arc<dyn Origin>,
    rules: TtlRules,
) {
    let stale = permit.stale().cloned();
    // A HEAD for a stale entry is revalidated with a HEAD (RFC 9111 section 4.3.5): its fill
    // has no body for GETs to share, so none joins it.
    let method = if request.head && stale.is_some() {
        permit.fill().close();
        Method::HEAD
    } else {
        Method::GET
    };
    let request_time = permit.cache().now();
    let result = origin
        .fetch(&request, method.clone(), stale.as_deref())
        .await;
    let now = permit.cache().now();
    let exchange = Exchange {
        request_time,
        response_time: now,
    };
    let response = match result {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(space = %request.space.name, key = %request.object_key, error = %e, "origin fetch failed");
            let status = match &e {
                FillError::Origin(status, _) => *status,
                _ => StatusCode::BAD_GATEWAY,
            };
            match stale.filter(|s| s.freshness.usable_on_error(now)) {
                Some(stale) => serve_stale(permit, &stale, status).await,
                None => {
                    permit.fill().finish(Err(e));
                    permit.complete(None);
                }
            }
            return;
        }
    };
    let (parts, body) = response.into_parts();

    if let Some(stale) = &stale {
        if parts.status == StatusCode::NOT_MODIFIED {
            let update = Update {
                status: parts.status,
                headers: &parts.headers,
                exchange,
            };
            refresh(permit, &request, stale, update, &rules).await;
            return;
        }
        if parts.status.is_server_error() && stale.freshness.usable_on_error(now) {
            serve_stale(permit, stale, parts.status).await;
            return;
        }
        if method == Method::HEAD {
            let update = Update {
                status: parts.status,
                headers: &parts.headers,
                exchange,
            };
            head_answered(permit, &request, stale, update, &rules).await;
            return;
        }
    }

    let (headers, tags) = response_headers(&request, parts.headers);
    let content_length = http_body::Body::size_hint(&body).exact();
    let admission = admit(
        &origin_request_headers(&request),
        parts.status,
        &headers,
        exchange,
        &rules,
    )
    .map(|f| match request.hard_expiry {
        Some(hard) => Freshness {
            hard_expiry: Some(hard),
            ..f
        },
        None => f,
    });
    // A response with more tags than an entry keeps is not stored: no entry may escape a
    // purge of a tag it was given.
    let (admission, tags) = match (admission, tags) {
        (Ok(_), Err(e)) => {
            tracing::debug!(space = %request.space.name, key = %request.object_key, error = %e, "cache tags refused; not stored");
            (Err(NotStored::Tags), Tags::default())
        }
        (admission, tags) => (admission, tags.unwrap_or_default()),
    };
    let cache = permit.cache().clone();
    let vary = vary_values(&request, &headers);
    let retained =
        admission.is_ok() && content_length.is_none_or(|len| len <= cache.max_memory_object());
    // A large body that will be stored streams to the disk tier as it arrives.
    let spool = if admission.is_ok() && !retained {
        cache.spool(content_length)
    } else {
        None
    };
    let head = FillHead {
        status: parts.status,
        headers,
        content_length,
        admission,
        vary,
        kind: match &stale {
            Some(_) => FillKind::Revalidation(parts.status),
            None => FillKind::Miss,
        },
        retained,
        stored_body: None,
        tags,
    };
    let stored = head.admission.ok().map(|freshness| Storing {
        status: parts.status,
        headers: stored_headers(&head.headers),
        freshness,
        vary: head.vary.clone(),
        tags: head.tags.clone(),
    });
    let fill = permit.fill().clone();
    fill.set_head(head);
    if let Some(spool) = &spool {
        fill.start_spooling(spool.file());
    }

    let pumped = pump(
        &cache,
        &fill,
        body,
        retained,
        spool,
        stored.is_some(),
        origin.body_timeout(),
    )
    .await;
    match pumped {
        Ok(spool) => {
            fill.finish(Ok(()));
            if let (Some(spool), Some(storing)) = (spool, stored.clone()) {
                let head = SpoolHead {
                    key: request.key.clone(),
                    status: storing.status,
                    headers: storing.headers,
                    freshness: storing.freshness,
                    vary: storing.vary,
                    tags: storing.tags,
                };
                if let Err(e) = spool.commit(head).await {
                    tracing::warn!(space = %request.space.name, key = %request.object_key, error = %e, "large body not stored on disk");
                }
            }
            let entry = match (stored, fill.retained_body()) {
                (Some(storing), Some(body)) => Some(
                    Entry::new(
                        request.key.clone(),
                        storing.status,
                        &storing.headers,
                        Body::Memory(body),
                        storing.freshness,
                        storing.vary,
                    )
                    .with_tags(storing.tags),
                ),
                _ => None,
            };
            permit.complete(entry);
        }
        Err(e) => {
            tracing::warn!(space = %request.space.name, key = %request.object_key, error = %e, "origin body failed");
            fill.finish(Err(e));
            permit.complete(None);
        }
    }
}

/// What a fill stores once its body is complete.
#[derive(Clone)]
struct Storing {
    status: StatusCode,
    headers: HeaderMap,
    freshness: Freshness,
    vary: VaryValues,
    tags: Tags,
}

/// Bytes a spooling fill gathers before writing them to its file.
const SPOOL_FLUSH: u64 = 1 << 20;

/// Copies the origin body into the fill, and into the spool file when the body goes to disk.
/// A body outgrowing the memory tier switches to spooling (or to a window, without a disk
/// tier). Stops early when nobody reads and nothing is stored. Returns the spool to commit.
async fn pump(
    cache: &crate::cache::Cache,
    fill: &Fill,
    mut body: Incoming,
    mut retained: bool,
    mut spool: Option<Spool>,
    storable: bool,
    timeout: std::time::Duration,
) -> Result<Option<Spool>, FillError> {
    let limit = cache.max_memory_object();
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
            spool = if storable { cache.spool(None) } else { None };
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
