//! Accept loops: one task per connection, served by hyper's HTTP/1.1 + HTTP/2 builder with
//! the configured limits, TLS by rustls, and graceful shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

use super::file_send::FileSend;
use super::idle::IdleTimeout;
use super::{ConnInfo, Edge};
use crate::config::Limits;
use crate::tls::{Accepted, EdgeAcceptor};

/// hyper's connection builder with the edge's limits.
pub fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(
            usize::try_from(limits.max_header_size)
                .unwrap_or(usize::MAX)
                .max(8192),
        )
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        // Rapid-reset (CVE-2023-44487) and error-storm limits: GOAWAY past these.
        .max_pending_accept_reset_streams(Some(32))
        .max_local_error_reset_streams(Some(256))
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Serves edge traffic on `listener` until `shutdown` flips, then lets connections finish
/// for up to `limits.shutdown_grace`.
pub async fn serve_edge(
    edge: Arc<Edge>,
    listener: TcpListener,
    tls: Option<Arc<EdgeAcceptor>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = edge.config.limits.clone();
    let builder = Arc::new(http_builder(&limits));
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections as usize));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let (tcp, client_addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%client_addr, "connection limit reached; closing");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let edge = edge.clone();
        let builder = builder.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        let handshake_timeout = limits.header_read_timeout;
        let idle = limits.idle_timeout;
        let span = tracing::debug_span!("conn", %client_addr);
        tokio::spawn(
            async move {
                let _permit = permit;
                match tls {
                    None => {
                        let conn = Arc::new(ConnInfo::plain(client_addr).sending_files());
                        let service = service_fn(move |request| {
                            let edge = edge.clone();
                            let conn = conn.clone();
                            async move { Ok::<_, Infallible>(edge.serve_request(request, &conn).await) }
                        });
                        let tcp = FileSend::new(tcp);
                        let connection = builder.serve_connection(TokioIo::new(IdleTimeout::new(tcp, idle)), service);
                        if let Err(e) = watcher.watch(connection.into_owned()).await {
                            tracing::debug!(error = %e, "connection ended");
                        }
                    }
                    Some(acceptor) => {
                        let stream =
                            match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp))
                                .await
                            {
                                Ok(Ok(Accepted::Serve(stream))) => {
                                    edge.metrics.tls_handshake(true);
                                    stream
                                }
                                Ok(Ok(Accepted::Challenge)) => return,
                                Ok(Err(e)) => {
                                    edge.metrics.tls_handshake(false);
                                    tracing::debug!(error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    edge.metrics.tls_handshake(false);
                                    return;
                                }
                            };
                        let sni = stream.get_ref().1.server_name().map(Arc::from);
                        let conn = Arc::new(ConnInfo::tls(client_addr, sni));
                        let service = service_fn(move |request| {
                            let edge = edge.clone();
                            let conn = conn.clone();
                            async move { Ok::<_, Infallible>(edge.serve_request(request, &conn).await) }
                        });
                        let connection = builder.serve_connection(TokioIo::new(IdleTimeout::new(stream, idle)), service);
                        if let Err(e) = watcher.watch(connection.into_owned()).await {
                            tracing::debug!(error = %e, "connection ended");
                        }
                    }
                }
            }
            .instrument(span),
        );
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace elapsed with connections still open");
    }
}
