//! TLS termination: certificates chosen by SNI (exact names beat wildcards), loaded from
//! PEM files or generated self-signed for development, HTTP/2 and HTTP/1.1 by ALPN.

mod certs;
mod client;
mod resolver;

use std::sync::Arc;

pub use certs::{load_pem, self_signed};
pub use client::client_config;
pub use resolver::{CertStore, SniResolver};

use crate::config::Config;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    Load { path: String, reason: String },
    #[error("cannot generate a self-signed certificate: {0}")]
    SelfSigned(String),
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider every TLS config of the edge uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Loads the certificates `[tls]` names (and self-signed ones if asked) into a store.
pub fn cert_store(config: &Config) -> Result<CertStore, TlsError> {
    let mut store = CertStore::default();
    if config.tls.self_signed {
        let mut names: Vec<String> = config
            .spaces
            .iter()
            .map(|s| format!("*.{}.{}", s.region, config.cdn.domain))
            .chain(config.spaces.iter().filter_map(|s| s.custom_domain.clone()))
            .chain(["localhost".to_owned()])
            .collect();
        names.sort();
        names.dedup();
        let key = Arc::new(self_signed(&names)?);
        for name in &names {
            store.insert(name, key.clone());
        }
        store.set_default(key);
    }
    for files in &config.tls.certs {
        let key = Arc::new(load_pem(&files.cert, &files.key)?);
        for name in &files.names {
            store.insert(name, key.clone());
        }
        if files.default {
            store.set_default(key);
        }
    }
    for space in &config.spaces {
        if let crate::config::SpaceCert::Files { cert, key } = &space.certificate {
            let certified = Arc::new(load_pem(cert, key)?);
            if let Some(domain) = &space.custom_domain {
                store.insert(domain, certified);
            }
        }
    }
    Ok(store)
}

/// A rustls server config over `resolver` offering h2 and http/1.1.
pub fn server_config(resolver: Arc<SniResolver>) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
