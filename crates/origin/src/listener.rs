//! The accept loop: one task per connection, HTTP/1.1 with keep-alive, under the listener's
//! limits (header-read timeout, idle timeout, connection cap) and graceful shutdown.

use std::convert::Infallible;
use std::sync::Arc;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::config::ServeLimits;
use crate::error::StoreError;
use crate::idle::IdleTimeout;
use crate::service::OriginService;

/// Serves `listener` until `shutdown` resolves; then stops accepting, lets in-flight requests
/// finish, and returns.
pub(crate) async fn serve(
    service: OriginService,
    listener: tokio::net::TcpListener,
    limits: ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StoreError> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let addr = listener
        .local_addr()
        .map_err(|e| StoreError::io("reading listener address", e))?;
    let permits = Arc::new(Semaphore::new(
        usize::try_from(limits.max_connections).unwrap_or(usize::MAX),
    ));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    tracing::info!(%addr, "origin store listening");
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, max = limits.max_connections, "origin connection limit reached; closing");
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let service = service.clone();
                    let svc = hyper::service::service_fn(move |req| {
                        let service = service.clone();
                        async move { Ok::<_, Infallible>(service.handle(req).await) }
                    });
                    let stream = IdleTimeout::new(stream, limits.idle_timeout);
                    let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
                    tokio::spawn(
                        async move {
                            let _permit = permit;
                            if let Err(e) = conn.await {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        }
                        .instrument(tracing::debug_span!("origin_conn", %peer)),
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
    tracing::info!(%addr, "origin store stopped");
    Ok(())
}
