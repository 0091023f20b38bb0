//! Logging through tracing: operational logs to stderr, filtered by `RUST_LOG`.

use crate::config::Log;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoggingError(String);

/// Installs the global subscriber (once per process).
pub fn init(_log: &Log) -> Result<(), LoggingError> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|e| LoggingError(e.to_string()))
}
