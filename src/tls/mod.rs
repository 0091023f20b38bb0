//! TLS termination: certificates chosen by SNI (ACME, then exact names, then wildcards, then
//! the default), loaded from PEM files, generated self-signed for development, or obtained
//! and renewed by ACME; HTTP/2 and HTTP/1.1 by ALPN; TLS 1.2 and 1.3 with rustls' defaults.

mod acceptor;
pub mod acme;
mod certs;
mod client;
mod reload;
mod resolver;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub use client::{client_config, client_config_with_roots, embedded_origin_tls};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

pub use acceptor::{AcceptError, Accepted, EdgeAcceptor};
pub use certs::{LeafInfo, generated_certificates, load_pem, parse_pem_bundle, self_signed};
pub use reload::ReloadReport;
pub use resolver::{CertStore, SniResolver};

use crate::config::Config;
use acme::AcmeManager;
use acme::challenge::Challenges;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("{path}: {reason}")]
    Load { path: String, reason: String },
    #[error("cannot generate a self-signed certificate: {0}")]
    SelfSigned(String),
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("acme: {0}")]
    Acme(#[from] acme::AcmeError),
    #[error("acme store: {0}")]
    Store(#[from] acme::store::StoreError),
}

/// The crypto provider every TLS config of the edge uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Loads the certificates `[tls]` names (and self-signed ones if asked) into a store.
pub fn cert_store(config: &Config) -> Result<CertStore, TlsError> {
    let generated = generated_cert(config)?;
    Ok(reload::build(config, generated.as_ref(), None)?.0)
}

fn generated_cert(config: &Config) -> Result<Option<Arc<CertifiedKey>>, TlsError> {
    config
        .tls
        .self_signed
        .then(|| self_signed(&reload::self_signed_names(config)).map(Arc::new))
        .transpose()
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

/// The PoP's TLS side: the certificates, the acceptor, ACME challenge answers and the ACME
/// manager.
pub struct Tls {
    resolver: Arc<SniResolver>,
    acceptor: Arc<EdgeAcceptor>,
    challenges: Option<Arc<Challenges>>,
    acme: Option<AcmeManager>,
    generated: Option<Arc<CertifiedKey>>,
    /// One reload at a time (SIGHUP and the file watcher may coincide).
    reloading: Mutex<()>,
}

impl Tls {
    /// Loads the certificates of `config` and sets up ACME if configured; `embedded_origin`
    /// is where the embedded origin listens (for `acme.store = "origin"`). Nothing runs until
    /// [`Tls::spawn`].
    pub fn new(config: &Config, embedded_origin: Option<SocketAddr>) -> Result<Tls, TlsError> {
        let generated = generated_cert(config)?;
        let (store, _) = reload::build(config, generated.as_ref(), None)?;
        let resolver = Arc::new(SniResolver::new(store));
        let (challenges, acme) = match &config.acme {
            Some(acme_config) => {
                let state = acme::store::from_config(config, embedded_origin)?;
                let challenges = Arc::new(Challenges::new(state.clone()));
                let manager = AcmeManager::new(
                    acme_config,
                    &config.pop.name,
                    state,
                    challenges.clone(),
                    resolver.clone(),
                )?;
                manager.reconcile(acme::domains_of(config));
                (Some(challenges), Some(manager))
            }
            None => (None, None),
        };
        let server = Arc::new(server_config(resolver.clone())?);
        Ok(Tls {
            acceptor: Arc::new(EdgeAcceptor::new(
                resolver.clone(),
                server,
                challenges.clone(),
            )),
            resolver,
            challenges,
            acme,
            generated,
            reloading: Mutex::new(()),
        })
    }

    /// Starts the ACME manager and the certificate file watcher; they stop with `shutdown`.
    pub fn spawn(
        self: &Arc<Self>,
        config: &Arc<Config>,
        shutdown: &watch::Receiver<bool>,
        tasks: &mut JoinSet<()>,
    ) {
        if let Some(manager) = &self.acme {
            tasks.spawn(
                manager
                    .clone()
                    .run(shutdown.clone())
                    .instrument(tracing::info_span!("acme")),
            );
        }
        let interval = config.tls.watch_interval;
        if !interval.is_zero() && !reload::fingerprint(config).is_empty() {
            let tls = self.clone();
            let config = config.clone();
            let mut shutdown = shutdown.clone();
            tasks.spawn(
                async move {
                    let mut last = reload::fingerprint(&config);
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep(interval) => {}
                            _ = shutdown.wait_for(|stop| *stop) => break,
                        }
                        let now = reload::fingerprint(&config);
                        if now != last {
                            tracing::info!("certificate files changed; reloading");
                            tls.reload_certificates(&config);
                            last = now;
                        }
                    }
                }
                .instrument(tracing::info_span!("cert-watch")),
            );
        }
    }

    /// Reloads the uploaded certificates of `config` (SIGHUP, changed files). Connections keep
    /// the certificate they were made with; a file that does not load keeps its previous one.
    pub fn reload_certificates(&self, config: &Config) -> ReloadReport {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let previous = self.resolver.store();
        match reload::build(config, self.generated.as_ref(), Some(&previous)) {
            Ok((store, report)) => {
                self.resolver.replace(store);
                tracing::info!(
                    loaded = report.loaded,
                    kept = report.kept.len(),
                    "certificates reloaded"
                );
                report
            }
            Err(e) => {
                // `build` with a previous store only fails on what it cannot fall back from.
                tracing::warn!(error = %e, "certificate reload failed; nothing changed");
                ReloadReport {
                    loaded: 0,
                    kept: vec![e.to_string()],
                }
            }
        }
    }

    /// Terminates TLS connections of the edge listener.
    pub fn acceptor(&self) -> Arc<EdgeAcceptor> {
        self.acceptor.clone()
    }

    /// The certificates by SNI.
    pub fn resolver(&self) -> &Arc<SniResolver> {
        &self.resolver
    }

    /// ACME challenge answers (with `[acme]`).
    pub fn challenges(&self) -> Option<&Arc<Challenges>> {
        self.challenges.as_ref()
    }

    /// The ACME manager (with `[acme]`): `reconcile`, `status`, `metrics`.
    pub fn acme(&self) -> Option<&AcmeManager> {
        self.acme.as_ref()
    }
}
