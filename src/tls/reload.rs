//! Uploaded certificates: loaded at start (any error is fatal), reloaded on SIGHUP or when
//! their files change. A reload swaps the whole set at once, so open connections keep theirs;
//! a file that no longer loads keeps its previous certificate, and the reason is logged.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::sign::CertifiedKey;

use super::resolver::CertStore;
use super::{TlsError, load_pem};
use crate::config::{Config, SpaceCert};

/// What a reload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Certificate files loaded.
    pub loaded: usize,
    /// Files that did not load (their previous certificate is kept), with the reason.
    pub kept: Vec<String>,
}

/// One cert/key pair of the config and the names it serves.
struct Source<'a> {
    cert: &'a std::path::Path,
    key: &'a std::path::Path,
    names: Vec<&'a str>,
    default: bool,
}

fn sources(config: &Config) -> Vec<Source<'_>> {
    let mut sources: Vec<Source<'_>> = config
        .tls
        .certs
        .iter()
        .map(|files| Source {
            cert: &files.cert,
            key: &files.key,
            names: files.names.iter().map(String::as_str).collect(),
            default: files.default,
        })
        .collect();
    for space in &config.spaces {
        if let SpaceCert::Files { cert, key } = &space.certificate {
            sources.push(Source {
                cert,
                key,
                names: space.custom_domain.iter().map(String::as_str).collect(),
                default: false,
            });
        }
    }
    sources
}

/// The names the generated development certificate covers.
pub fn self_signed_names(config: &Config) -> Vec<String> {
    let mut names: Vec<String> = config
        .spaces
        .iter()
        .map(|s| format!("*.{}.{}", s.region, config.cdn.domain))
        .chain(config.spaces.iter().filter_map(|s| s.custom_domain.clone()))
        .chain(["localhost".to_owned()])
        .chain(origin_names(config))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// What the embedded origin is reached by when it serves HTTPS: its domain (and the buckets
/// under it) and the address it listens on, unless that is a wildcard one.
pub fn origin_names(config: &Config) -> Vec<String> {
    let crate::config::OriginKind::Embedded(embedded) = &config.origin.kind else {
        return Vec::new();
    };
    if !embedded.tls {
        return Vec::new();
    }
    let mut names: Vec<String> = embedded
        .domain
        .iter()
        .flat_map(|d| [d.clone(), format!("*.{d}")])
        .collect();
    if !embedded.listen.ip().is_unspecified() {
        names.push(embedded.listen.ip().to_string());
    }
    names
}

/// Builds the store of uploaded (and generated) certificates. Without `previous`, any file
/// that does not load is an error; with it, that file's names keep their previous certificate.
pub fn build(
    config: &Config,
    self_signed: Option<&Arc<CertifiedKey>>,
    previous: Option<&CertStore>,
) -> Result<(CertStore, ReloadReport), TlsError> {
    let mut store = CertStore::default();
    let mut report = ReloadReport::default();
    if let Some(key) = self_signed {
        for name in self_signed_names(config) {
            store.insert(&name, key.clone());
        }
        store.set_default(key.clone());
    }
    for source in sources(config) {
        match load_pem(source.cert, source.key) {
            Ok(key) => {
                report.loaded += 1;
                let key = Arc::new(key);
                for name in &source.names {
                    store.insert(name, key.clone());
                }
                if source.default {
                    store.set_default(key);
                }
            }
            Err(e) => {
                let Some(previous) = previous else {
                    return Err(e);
                };
                tracing::warn!(
                    cert = %source.cert.display(),
                    error = %e,
                    "certificate reload failed; keeping the previous certificate"
                );
                report.kept.push(e.to_string());
                for name in &source.names {
                    if let Some(key) = previous.entry(name) {
                        store.insert(name, key);
                    }
                }
                if source.default
                    && let Some(key) = previous.default_cert()
                {
                    store.set_default(key);
                }
            }
        }
    }
    Ok((store, report))
}

/// The files a reload reads, with their modification time and size (what the watcher compares).
pub fn fingerprint(config: &Config) -> Vec<(PathBuf, Option<(SystemTime, u64)>)> {
    sources(config)
        .into_iter()
        .flat_map(|s| [s.cert, s.key])
        .map(|path| {
            let meta = std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())));
            (path.to_owned(), meta)
        })
        .collect()
}
