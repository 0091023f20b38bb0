//! What the store knows of the request being served beyond what s3s hands the operations:
//! the connection it came on (peer address, TLS) and what the access check learned (the
//! operation, the caller, the facts policy conditions look at). It lives in a task-local for
//! the duration of the request, so the re-checks inside write transactions judge with the same
//! facts and the access log can name the operation and the requester.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use crate::policy::Facts;

tokio::task_local! {
    static CURRENT: Arc<RequestInfo>;
}

/// The TLS parameters of a connection, as the access log shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: &'static str,
    /// The cipher suite's IANA name.
    pub cipher: String,
}

/// The connection a request came on.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The client's address.
    pub peer: SocketAddr,
    /// Set for HTTPS connections.
    pub tls: Option<TlsInfo>,
}

/// What the access check learned about a request.
#[derive(Debug, Clone)]
pub struct Learned {
    /// The s3s operation name (`GetObject`...).
    pub op: String,
    /// The signed-in caller's user id (None: anonymous).
    pub requester: Option<String>,
    /// What policy conditions look at.
    pub facts: Arc<Facts>,
}

/// One request's context.
#[derive(Debug)]
pub struct RequestInfo {
    /// The connection.
    pub conn: Arc<Connection>,
    learned: OnceLock<Learned>,
}

impl RequestInfo {
    /// The context of a request on `conn`.
    #[must_use]
    pub fn new(conn: Arc<Connection>) -> Arc<RequestInfo> {
        Arc::new(RequestInfo {
            conn,
            learned: OnceLock::new(),
        })
    }

    /// Runs `fut` (the request's handling) with `self` as the current request.
    pub async fn scope<F: Future>(self: &Arc<Self>, fut: F) -> F::Output {
        CURRENT.scope(self.clone(), fut).await
    }

    /// The request being served by this task, if any.
    #[must_use]
    pub fn current() -> Option<Arc<RequestInfo>> {
        CURRENT.try_with(Arc::clone).ok()
    }

    /// Records what the access check learned (the first call wins).
    pub fn learn(&self, learned: Learned) {
        let _ = self.learned.set(learned);
    }

    /// What the access check learned, if it ran.
    #[must_use]
    pub fn learned(&self) -> Option<&Learned> {
        self.learned.get()
    }
}

/// The facts of the current request (empty outside a request, e.g. the store's own writes).
#[must_use]
pub fn current_facts() -> Arc<Facts> {
    RequestInfo::current()
        .and_then(|info| info.learned().map(|l| l.facts.clone()))
        .unwrap_or_default()
}
