//! The PoP's configuration: loaded from TOML, validated into typed values with errors that
//! name the key and the reason.

mod acme;
mod admin;
mod fields;
mod origin;
mod purge;
mod raw;
mod secret;
mod space;
mod types;
mod units;
mod validate;

use std::path::{Path, PathBuf};

pub use fields::{is_dns_label, normalize_host};
pub use raw::{RawConfig, RawQuery, RawSpace, RawSpaceCert};
pub use secret::Secret;
pub use space::{ACME_BUCKET, STATE_BUCKET, validate_space};
pub use types::*;
pub use units::{format_duration, format_size, parse_duration, parse_size};

/// A config that cannot be used, with the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML or a key has the wrong type or is unknown.
    #[error("{key}: {reason}")]
    Parse { key: String, reason: String },
    /// A key has a value that cannot be used.
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

impl Config {
    /// Reads and validates the config file at `path`; relative paths in it are taken from the
    /// directory the process runs in.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw = parse_raw(text)?;
        validate(raw)
    }

    /// The effective config as TOML, secrets masked.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print config: {e}\n"))
    }

    /// The space with this name.
    pub fn space(&self, name: &str) -> Option<&Space> {
        self.spaces.iter().find(|s| s.name == name)
    }
}

fn parse_raw(text: &str) -> Result<RawConfig, ConfigError> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| ConfigError::Parse {
        key: line_of(text, e.span()),
        reason: e.message().trim().to_owned(),
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let key = if path == "." || path.is_empty() {
            line_of(text, inner.span())
        } else {
            path
        };
        ConfigError::Parse {
            key,
            reason: inner.message().trim().to_owned(),
        }
    })
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}")
        }
        None => "config".to_owned(),
    }
}

use validate::validate;

#[cfg(test)]
mod tests;
