//! The accept loop: one task per connection, under the listener's limits (header-read
//! timeout, idle timeout, connection cap) and graceful shutdown. Plain connections speak
//! HTTP/1.1 with keep-alive; TLS connections (with a [`rustls::ServerConfig`], certificates by
//! SNI) speak HTTP/2 or HTTP/1.1 as ALPN chose.

use std::convert::Infallible;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::config::ServeLimits;
use crate::error::StoreError;
use crate::idle::IdleTimeout;
use crate::request::{Connection, TlsInfo};
use crate::service::OriginService;

/// HTTP/2 streams one connection may have open at once.
const MAX_H2_STREAMS: u32 = 128;
/// Largest HTTP/2 header list accepted (as the edge's default `limits.max_header_size`).
const MAX_H2_HEADER_LIST: u32 = 64 * 1024;

/// Serves `listener` until `shutdown` resolves (over TLS with `tls`); then stops accepting,
/// lets in-flight requests finish, and returns.
pub(crate) async fn serve(
    service: OriginService,
    listener: tokio::net::TcpListener,
    limits: ServeLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
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
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tracing::info!(%addr, tls = acceptor.is_some(), "origin store listening");
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, max = limits.max_connections, "origin connection limit reached; closing");
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let conn = Conn {
                        service: service.clone(),
                        limits,
                        watcher: graceful.watcher(),
                    };
                    let acceptor = acceptor.clone();
                    tokio::spawn(
                        async move {
                            let _permit = permit;
                            let result = match acceptor {
                                None => conn.plain(stream, peer).await,
                                Some(acceptor) => conn.tls(&acceptor, stream, peer).await,
                            };
                            if let Err(e) = result {
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

/// What serving one connection needs.
struct Conn {
    service: OriginService,
    limits: ServeLimits,
    watcher: Watcher,
}

type ConnError = Box<dyn std::error::Error + Send + Sync>;

impl Conn {
    fn svc(
        &self,
        conn: Connection,
    ) -> impl hyper::service::Service<
        http::Request<hyper::body::Incoming>,
        Response = http::Response<s3s::Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static {
        let service = self.service.clone();
        let conn = Arc::new(conn);
        hyper::service::service_fn(move |req| {
            let service = service.clone();
            let conn = conn.clone();
            async move { Ok::<_, Infallible>(service.handle(req, conn).await) }
        })
    }

    fn http1(&self) -> hyper::server::conn::http1::Builder {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .keep_alive(true);
        builder
    }

    async fn plain(self, stream: TcpStream, peer: std::net::SocketAddr) -> Result<(), ConnError> {
        let svc = self.svc(Connection { peer, tls: None });
        let stream = IdleTimeout::new(stream, self.limits.idle_timeout);
        let conn = self.http1().serve_connection(TokioIo::new(stream), svc);
        self.watcher.watch(conn).await?;
        Ok(())
    }

    async fn tls(
        self,
        acceptor: &tokio_rustls::TlsAcceptor,
        stream: TcpStream,
        peer: std::net::SocketAddr,
    ) -> Result<(), ConnError> {
        let stream = IdleTimeout::new(stream, self.limits.idle_timeout);
        // The handshake is part of the request head: it gets the same deadline.
        let stream = tokio::time::timeout(self.limits.header_read_timeout, acceptor.accept(stream))
            .await
            .map_err(|_| "TLS handshake timed out")??;
        let session = stream.get_ref().1;
        let info = TlsInfo {
            version: match session.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "-",
            },
            cipher: session
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or("-")
                .to_owned(),
        };
        let h2 = session.alpn_protocol() == Some(b"h2".as_slice());
        let svc = self.svc(Connection {
            peer,
            tls: Some(info),
        });
        let io = TokioIo::new(stream);
        if h2 {
            let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            builder
                .timer(TokioTimer::new())
                .keep_alive_interval(None)
                .max_concurrent_streams(MAX_H2_STREAMS)
                .max_header_list_size(MAX_H2_HEADER_LIST);
            self.watcher
                .watch(builder.serve_connection(io, svc))
                .await?;
        } else {
            let conn = self.http1().serve_connection(io, svc);
            self.watcher.watch(conn).await?;
        }
        Ok(())
    }
}
