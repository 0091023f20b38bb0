//! Parsers for single values (sizes, durations, addresses, secrets, host names, URLs),
//! each error naming the key it was read from.

use std::net::SocketAddr;
use std::time::Duration;

use http::Uri;

use super::{ConfigError, Secret, invalid, parse_duration, parse_size};

pub(super) fn size(key: &str, value: Option<&str>, default: u64) -> Result<u64, ConfigError> {
    match value {
        Some(text) => parse_size(text).map_err(|reason| invalid(key, reason)),
        None => Ok(default),
    }
}

pub(super) fn duration(
    key: &str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        Some(text) => parse_duration(text).map_err(|reason| invalid(key, reason)),
        None => Ok(default),
    }
}

pub(super) fn socket_addr(
    key: &str,
    value: Option<&str>,
) -> Result<Option<SocketAddr>, ConfigError> {
    value
        .map(|text| {
            text.parse().map_err(|_| {
                invalid(
                    key,
                    format!("`{text}` is not an address like 127.0.0.1:8080"),
                )
            })
        })
        .transpose()
}

/// Resolves `<name>` / `<name>_env` into a secret.
pub(super) fn secret(
    key: &str,
    inline: Option<&str>,
    env: Option<&str>,
) -> Result<Option<Secret>, ConfigError> {
    match (inline, env) {
        (Some(_), Some(_)) => Err(invalid(
            key,
            format!("give either {key} or {key}_env, not both"),
        )),
        (Some(""), None) => Err(invalid(key, "is empty")),
        (Some(value), None) => Ok(Some(Secret::new(value))),
        (None, Some(var)) => match std::env::var(var) {
            Ok(value) if !value.is_empty() => Ok(Some(Secret::new(value))),
            Ok(_) => Err(invalid(
                format!("{key}_env"),
                format!("environment variable {var} is empty"),
            )),
            Err(_) => Err(invalid(
                format!("{key}_env"),
                format!("environment variable {var} is not set"),
            )),
        },
        (None, None) => Ok(None),
    }
}

/// Lower-cases a host name and strips a trailing dot; rejects what cannot be a host.
pub fn normalize_host(name: &str) -> Option<String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*')
        });
    let ip = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok();
    (valid || ip).then_some(name)
}

pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

pub(super) fn uri(key: &str, text: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = text
        .parse()
        .map_err(|_| invalid(key, format!("`{text}` is not a URL")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") if uri.host().is_some() => Ok(uri),
        _ => Err(invalid(
            key,
            format!("`{text}` must be an http:// or https:// URL"),
        )),
    }
}

/// A named token of a list at `key` (`purge.tokens[0]`...): its name non-empty and not in
/// `taken`, its secret given inline or by `token_env`.
pub(super) fn named_token(
    key: &str,
    name: &str,
    token: Option<&str>,
    token_env: Option<&str>,
    taken: impl Fn(&str) -> bool,
) -> Result<Secret, ConfigError> {
    if name.is_empty() || taken(name) {
        return Err(invalid(
            format!("{key}.name"),
            "must be non-empty and unique",
        ));
    }
    secret(&format!("{key}.token"), token, token_env)?
        .ok_or_else(|| invalid(format!("{key}.token"), "is required (inline or token_env)"))
}
