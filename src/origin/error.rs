//! Errors of fetching from the origin, each knowing the status the client gets.

use http::StatusCode;

/// Why an origin fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    /// Could not connect, or the connection broke before a response head.
    #[error("origin unreachable: {0}")]
    Connect(String),
    /// No response head within `origin.timeout`.
    #[error("origin timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The request could not be built or signed (a bug or a bad key).
    #[error("cannot build the origin request: {0}")]
    Request(String),
}

impl OriginError {
    /// The status the client gets when no stale copy can be served.
    pub fn status(&self) -> StatusCode {
        match self {
            OriginError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            OriginError::Connect(_) | OriginError::Request(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// Whether trying again may succeed.
    pub fn retryable(&self) -> bool {
        !matches!(self, OriginError::Request(_))
    }
}
