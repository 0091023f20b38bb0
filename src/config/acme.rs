//! Validation of `[acme]`.

use std::path::PathBuf;
use std::time::Duration;

use super::fields::*;
use super::*;

pub(super) fn validate_acme(raw: raw::RawAcme) -> Result<Acme, ConfigError> {
    let directory = raw
        .directory
        .unwrap_or_else(|| "https://acme-staging-v02.api.letsencrypt.org/directory".to_owned());
    uri("acme.directory", &directory)?;
    let store = match (raw.store.as_deref(), raw.cache_dir) {
        (Some("origin"), None) => AcmeStore::Origin,
        (Some("origin"), Some(_)) => {
            return Err(invalid(
                "acme.store",
                "give either store = \"origin\" or cache_dir, not both",
            ));
        }
        (Some(other), _) => {
            return Err(invalid(
                "acme.store",
                format!("`{other}` is not a store (only \"origin\")"),
            ));
        }
        (None, dir) => AcmeStore::Dir(dir.unwrap_or_else(|| "data/acme".to_owned()).into()),
    };
    let challenge = match raw.challenge.as_deref() {
        None | Some("http-01") => AcmeChallenge::Http01,
        Some("tls-alpn-01") => AcmeChallenge::TlsAlpn01,
        Some(other) => {
            return Err(invalid(
                "acme.challenge",
                format!("`{other}` is not http-01 or tls-alpn-01"),
            ));
        }
    };
    let poll_interval = duration(
        "acme.poll_interval",
        raw.poll_interval.as_deref(),
        Duration::from_secs(10),
    )?;
    if poll_interval.is_zero() {
        return Err(invalid("acme.poll_interval", "must be more than 0s"));
    }
    let retry_min = duration(
        "acme.retry_min",
        raw.retry_min.as_deref(),
        Duration::from_secs(10),
    )?;
    let retry_max = duration(
        "acme.retry_max",
        raw.retry_max.as_deref(),
        Duration::from_secs(6 * 3600),
    )?;
    if retry_min.is_zero() || retry_max < retry_min {
        return Err(invalid(
            "acme.retry_max",
            "retry_min must be more than 0s and at most retry_max",
        ));
    }
    let lease = duration("acme.lease", raw.lease.as_deref(), Duration::from_secs(300))?;
    if lease < Duration::from_secs(10) {
        return Err(invalid("acme.lease", "must be at least 10s"));
    }
    Ok(Acme {
        directory,
        contact: raw.contact,
        ca_roots: raw.ca_roots.map(PathBuf::from),
        store,
        challenge,
        poll_interval,
        retry_min,
        retry_max,
        lease,
    })
}
