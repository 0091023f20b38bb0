//! The admin listener: the purge API, `/healthz` and `/readyz`. Never reachable through an
//! edge hostname: it only listens on `listen.admin`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::Edge;
use super::body::EdgeBody;
use super::listener::http_builder;
use crate::config::Scope;
use crate::control::auth::{self, Denied, Need};
use crate::control::{api, keys_api};
use crate::purge::fanout::FORWARDED_HEADER;
use crate::purge::{self, PopResult, PurgeError, PurgeReply};

/// How long a client has to finish the TLS handshake on the admin listener.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Largest purge request body accepted.
const MAX_BODY: usize = 1 << 20;

/// Serves the admin API until `shutdown` flips.
pub async fn serve_admin(
    edge: Arc<Edge>,
    listener: TcpListener,
    tls: Option<Arc<crate::tls::EdgeAcceptor>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = Arc::new(http_builder(&edge.config.limits));
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, _addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        // Purge fan-out and catch-up are small exchanges between PoPs: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        let edge = edge.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let edge = edge.clone();
                async move { Ok::<_, Infallible>(admin(&edge, request).await) }
            });
            match tls {
                None => {
                    let connection = builder.serve_connection(TokioIo::new(tcp), service);
                    let _ = watcher.watch(connection.into_owned()).await;
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                    let Ok(Ok(crate::tls::Accepted::Serve(stream))) = handshake else {
                        return;
                    };
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(connection.into_owned()).await;
                }
            }
        });
    }
    let _ = tokio::time::timeout(edge.config.limits.shutdown_grace, graceful.shutdown()).await;
}

async fn admin(edge: &Arc<Edge>, request: Request<Incoming>) -> Response<EdgeBody> {
    let path = request.uri().path().to_owned();
    if request.method() == Method::GET
        && let Some(page) = crate::dashboard::asset(&path)
    {
        return page;
    }
    match (request.method(), path.as_str()) {
        (&Method::GET, "/healthz") => {
            let mut response = text(StatusCode::OK, "ok\n");
            if let Ok(name) = HeaderValue::from_str(&edge.pop_name) {
                response
                    .headers_mut()
                    .insert(crate::control::fleet::POP_HEADER, name);
            }
            response
        }
        (&Method::GET, "/readyz") => text(StatusCode::OK, "ready\n"),
        (&Method::GET, "/metrics") => {
            let mut response = Response::new(EdgeBody::full(edge.render_metrics()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        (&Method::GET, "/v1/purges") => {
            let authorization = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            let need = Need::Read(Scope::Purge);
            if let Err(denied) = auth::authorize(authorization, &edge.live.load().config, need) {
                return json_error(denied_status(denied), &denied.to_string());
            }
            let since = request
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("since=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            json(StatusCode::OK, &edge.journal.since(since))
        }
        (method, _) if purge_space(&path).is_some() => {
            if method != Method::DELETE {
                return json_error(StatusCode::METHOD_NOT_ALLOWED, "use DELETE");
            }
            let space = purge_space(&path).unwrap_or_default().to_owned();
            match purge_local(edge, space, request).await {
                Ok(reply) => json(StatusCode::OK, &reply),
                Err(e) => json_error(e.status(), &e.to_string()),
            }
        }
        _ if keys_api::is_keys_path(&path) => from_reply(keys_api::handle(edge, request).await),
        _ if api::is_control_path(&path) => from_reply(api::handle(edge, request).await),
        _ => json_error(StatusCode::NOT_FOUND, "no such admin endpoint"),
    }
}

/// The response of a control-plane reply.
fn from_reply(reply: api::Reply) -> Response<EdgeBody> {
    match reply.body {
        Some(body) => json(reply.status, &body),
        None => {
            let mut response = Response::new(EdgeBody::full(Bytes::new()));
            *response.status_mut() = reply.status;
            response
        }
    }
}

fn denied_status(denied: Denied) -> StatusCode {
    match denied {
        Denied::Unauthorized => StatusCode::UNAUTHORIZED,
        Denied::Forbidden => StatusCode::FORBIDDEN,
    }
}

/// The space of a purge path `/v1/spaces/{space}/cache`.
fn purge_space(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/spaces/")?
        .strip_suffix("/cache")
        .filter(|space| !space.is_empty() && !space.contains('/'))
}

async fn purge_local(
    edge: &Arc<Edge>,
    space: String,
    request: Request<Incoming>,
) -> Result<PurgeReply, PurgeError> {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let live = edge.live.load_full();
    let who = auth::authorize(authorization, &live.config, Need::Write(Scope::Purge)).map_err(
        |denied| match denied {
            Denied::Unauthorized => PurgeError::Unauthorized,
            Denied::Forbidden => PurgeError::Forbidden,
        },
    )?;
    let forwarded = request.headers().contains_key(FORWARDED_HEADER);
    if live.config.space(&space).is_none() {
        return Err(PurgeError::UnknownSpace(space));
    }
    let body = Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| PurgeError::BadRequest(format!("cannot read body: {e}")))?
        .to_bytes();
    let (selectors, request) = purge::parse_request(&space, &body)?;
    // The parent first, so this PoP never refills from the parent's purged copy.
    let parent = match forwarded {
        false => edge.fanout.to_parent(&space, &request).await,
        true => None,
    };
    // Peers are siblings: they purge while this PoP does (their requests leave first).
    let peers = (!forwarded).then(|| {
        let (fanout, space, request) = (edge.fanout.clone(), space.clone(), request.clone());
        tokio::spawn(async move { fanout.to_peers(&space, &request).await })
    });
    let action = request.action(edge.cache.now());
    let dropped: usize = selectors
        .iter()
        .map(|s| edge.cache.purge_with(s, action))
        .sum();
    edge.journal.record(&space, &request, edge.cache.now());
    edge.metrics
        .purge(request.soft, request.tags.len(), dropped);
    tracing::info!(token = %who, %space, files = ?request.files, tags = ?request.tags, soft = request.soft, dropped, forwarded, "purged");
    let mut pops = vec![PopResult {
        pop: edge.pop_name.to_string(),
        status: "done".to_owned(),
        dropped: Some(dropped),
    }];
    pops.extend(parent);
    if let Some(peers) = peers {
        match peers.await {
            Ok(results) => pops.extend(results),
            Err(e) => tracing::error!(error = %e, "purge fan-out task failed"),
        }
    }
    Ok(PurgeReply { pops })
}

fn text(status: StatusCode, body: &'static str) -> Response<EdgeBody> {
    let mut response = Response::new(EdgeBody::full(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<EdgeBody> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(EdgeBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Answers name tokens' work and once carry a key's secret: never stored on the way.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json_error(status: StatusCode, reason: &str) -> Response<EdgeBody> {
    json(status, &serde_json::json!({ "error": reason }))
}

#[cfg(test)]
mod tests {
    use super::purge_space;

    #[test]
    fn purge_paths() {
        assert_eq!(purge_space("/v1/spaces/assets/cache"), Some("assets"));
        assert_eq!(purge_space("/v1/spaces/cache"), None);
        assert_eq!(purge_space("/v1/spaces//cache"), None);
        assert_eq!(purge_space("/v1/spaces/a/b/cache"), None);
    }
}
