//! Accepting TLS connections: the ClientHello is read first, so that a TLS-ALPN-01 validation
//! (`acme-tls/1`) gets its challenge certificate and an unknown server name is refused with
//! the `unrecognized_name` alert before any handshake work, instead of the alert rustls would
//! pick when no certificate resolves.

use std::io;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::Acceptor;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use super::acme::challenge::{ACME_TLS_ALPN, Challenges};
use super::resolver::SniResolver;

/// TLS alert descriptions we send ourselves (RFC 8446 section 6).
const HANDSHAKE_FAILURE: u8 = 40;
const UNRECOGNIZED_NAME: u8 = 112;

/// What became of an accepted connection.
pub enum Accepted {
    /// A handshake for edge traffic: serve HTTP on it.
    Serve(Box<TlsStream<TcpStream>>),
    /// An `acme-tls/1` validation was answered; nothing more to do.
    Challenge,
}

/// Why a connection was not served.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The client named a host this PoP has no certificate for (and there is no default).
    #[error("no certificate for server name {0:?}")]
    UnknownName(Option<String>),
    /// The handshake failed or the connection broke.
    #[error("TLS handshake: {0}")]
    Io(#[from] io::Error),
}

/// Terminates TLS for the edge listener.
pub struct EdgeAcceptor {
    resolver: Arc<SniResolver>,
    config: Arc<ServerConfig>,
    challenges: Option<Arc<Challenges>>,
}

impl EdgeAcceptor {
    /// Serves certificates from `resolver` with `config` (whose resolver it is), and answers
    /// TLS-ALPN-01 validations from `challenges`.
    pub fn new(
        resolver: Arc<SniResolver>,
        config: Arc<ServerConfig>,
        challenges: Option<Arc<Challenges>>,
    ) -> EdgeAcceptor {
        EdgeAcceptor {
            resolver,
            config,
            challenges,
        }
    }

    /// Reads the ClientHello, then completes the handshake with the right config or refuses.
    pub async fn accept(&self, tcp: TcpStream) -> Result<Accepted, AcceptError> {
        let start = LazyConfigAcceptor::new(Acceptor::default(), tcp).await?;
        let hello = start.client_hello();
        let server_name = hello.server_name().map(str::to_owned);
        let acme_tls = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));

        if acme_tls {
            let config = match (&self.challenges, &server_name) {
                (Some(challenges), Some(name)) => challenges.tls_alpn01(name).await,
                _ => None,
            };
            let Some(config) = config else {
                refuse(start.io, UNRECOGNIZED_NAME).await;
                return Err(AcceptError::UnknownName(server_name));
            };
            let mut stream = start.into_stream(config).await?;
            let _ = stream.shutdown().await;
            tracing::info!(domain = ?server_name, "answered a TLS-ALPN-01 validation");
            return Ok(Accepted::Challenge);
        }

        if self.resolver.find(server_name.as_deref()).is_none() {
            let alert = if server_name.is_some() {
                UNRECOGNIZED_NAME
            } else {
                HANDSHAKE_FAILURE
            };
            refuse(start.io, alert).await;
            return Err(AcceptError::UnknownName(server_name));
        }
        let stream = start.into_stream(self.config.clone()).await?;
        Ok(Accepted::Serve(Box::new(stream)))
    }
}

/// Sends a fatal alert in a plaintext record (nothing is encrypted before the server's first
/// flight) and closes.
async fn refuse(mut tcp: TcpStream, description: u8) {
    // ContentType alert (21), legacy version TLS 1.2, length 2, level fatal (2).
    let record = [21, 3, 3, 0, 2, 2, description];
    let _ = tcp.write_all(&record).await;
    let _ = tcp.shutdown().await;
}
