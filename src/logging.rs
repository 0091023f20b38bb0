//! Logging through tracing: operational logs to stderr (filtered by `RUST_LOG`), access
//! lines to stdout or `log.access_path`.

use std::sync::Mutex;

use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::prelude::*;

use crate::access_log::TARGET;
use crate::config::{AccessLog, Log};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("log.access_path: cannot open {path}: {source}")]
    AccessPath {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Install(String),
}

/// Installs the global subscriber (once per process).
pub fn init(log: &Log) -> Result<(), LoggingError> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,s3s=off"));
    let operational = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            meta.target() != TARGET
        }))
        .with_filter(filter);
    let access_targets = Targets::new().with_target(TARGET, tracing::Level::INFO);
    let access = match (log.access, &log.access_path) {
        (AccessLog::Off, _) => None,
        (_, Some(path)) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| LoggingError::AccessPath {
                    path: path.display().to_string(),
                    source,
                })?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(Mutex::new(file))
                    .without_time()
                    .with_level(false)
                    .with_target(false)
                    .with_ansi(false)
                    .with_filter(access_targets)
                    .boxed(),
            )
        }
        (_, None) => Some(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stdout)
                .without_time()
                .with_level(false)
                .with_target(false)
                .with_ansi(false)
                .with_filter(access_targets)
                .boxed(),
        ),
    };
    tracing_subscriber::registry()
        .with(operational)
        .with(access)
        .try_init()
        .map_err(|e| LoggingError::Install(e.to_string()))
}
