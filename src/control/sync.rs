//! Applying the shared state to this PoP: the config file's spaces plus the API's, installed
//! as one new routing table (as a reload does), the entries of removed spaces dropped; and
//! keeping it current: peers told of a change at once, the store polled meanwhile.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tokio::sync::watch;

use super::ControlError;
use super::spaces::{CertificateRef, SpaceSpec};
use crate::cache::PurgeAction;
use crate::cache::PurgeSelector;
use crate::config::Config;
use crate::server::Edge;

/// The path peers are told of a change on.
pub const SYNC_PATH: &str = "/v1/control/sync";

impl Edge {
    /// The config file's config with the API's spaces added: those valid under it, whose
    /// names the file does not define (the file wins).
    pub fn composed_config(&self, base: &Config) -> Config {
        let mut config = base.clone();
        for spec in self.control.specs() {
            if config.space(&spec.name).is_some() {
                tracing::warn!(space = %spec.name, "an API space has the name of a config file space; the file's is served");
                continue;
            }
            let uploaded = |id: &str| self.control.cert(id).map(|c| c.leaf.clone());
            match spec.to_space(&config, uploaded) {
                Ok(space) => config.spaces.push(space),
                // Its uploaded certificate is gone (deleted on a PoP that had not yet seen
                // the space choose it): the space stays served, with the default certificate.
                Err(e) if matches!(spec.certificate, Some(CertificateRef::Uploaded { .. })) => {
                    tracing::warn!(space = %spec.name, error = %e, "stored API space's certificate is not usable; served without it");
                    let without = SpaceSpec {
                        certificate: None,
                        ..spec.clone()
                    };
                    match without.to_space(&config, uploaded) {
                        Ok(space) => config.spaces.push(space),
                        Err(e) => {
                            tracing::warn!(space = %spec.name, error = %e, "stored API space is not valid here; not served");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(space = %spec.name, error = %e, "stored API space is not valid here; not served");
                }
            }
        }
        config
    }

    /// Installs the config file's config with the API's spaces; entries of spaces no longer
    /// served are dropped.
    pub fn apply_control(&self) {
        let _one = self
            .applying
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let base = self.base.load_full();
        let config = self.composed_config(&base);
        let old = self.live.load_full();
        // Entries of a space no longer served, or now served from another bucket or with
        // other rights at the origin, must not be served again.
        let dropped: Vec<String> = old
            .config
            .spaces
            .iter()
            .filter(|s| {
                config
                    .space(&s.name)
                    .is_none_or(|now| now.bucket != s.bucket || now.origin_auth != s.origin_auth)
            })
            .map(|s| s.name.clone())
            .collect();
        let unchanged = *old.config == config;
        if let Some(tls) = &self.tls {
            // An uploaded certificate is served only for the custom domain of a space that
            // chose it (and that it names): never for names the uploader has no space for.
            let mut uploaded = crate::tls::CertStore::default();
            for space in &config.spaces {
                if let (crate::config::SpaceCert::Uploaded { id }, Some(domain)) =
                    (&space.certificate, &space.custom_domain)
                    && let Some(cert) = self.control.cert(id)
                    && cert.leaf.covers(domain)
                {
                    uploaded.insert(domain, cert.key.clone());
                }
            }
            tls.resolver().set_uploaded(uploaded);
            if let Some(acme) = tls.acme() {
                acme.reconcile(crate::tls::acme::domains_of(&config));
            }
        }
        if !unchanged {
            self.install(config);
        }
        for space in dropped {
            if let Ok(selector) = PurgeSelector::parse(&space, "*") {
                let dropped = self.cache.purge_with(&selector, PurgeAction::Drop);
                tracing::info!(%space, dropped, "space removed or moved: its entries dropped");
            }
        }
    }

    /// Reads the shared state again and applies it if it changed.
    pub async fn sync_control(&self) -> Result<bool, ControlError> {
        let changed = self.control.refresh().await?;
        if changed {
            self.apply_control();
        }
        let keys_changed = self.control.refresh_keys().await?;
        Ok(changed || keys_changed)
    }

    /// After a change this PoP made: applies it and tells every peer to read the store.
    pub async fn control_changed(self: &Arc<Self>) {
        self.apply_control();
        let live = self.live.load();
        let Some(token) = live.config.purge.peer_token.clone() else {
            return;
        };
        let peers = live.config.purge.peers.clone();
        if peers.is_empty() {
            return;
        }
        let client = self.fanout.client();
        let timeout = live.config.purge.timeout;
        let tells = peers.into_iter().map(|peer| {
            let client = client.clone();
            let token = token.expose().to_owned();
            async move {
                let request = http::Request::post(format!("{peer}{SYNC_PATH}"))
                    .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
                    .body(Full::new(Bytes::new()));
                let Ok(request) = request else { return };
                match tokio::time::timeout(timeout, client.request(request)).await {
                    Err(_) => {
                        tracing::warn!(%peer, "peer did not take a control sync in time; it catches up by polling");
                    }
                    Ok(Ok(r)) if r.status().is_success() => {}
                    Ok(Ok(r)) => {
                        tracing::warn!(%peer, status = %r.status(), "peer refused a control sync; it catches up by polling");
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(%peer, error = %e, "peer unreachable for a control sync; it catches up by polling");
                    }
                }
            }
        });
        futures::future::join_all(tells).await;
    }
}

/// Reads the shared state every `control.poll_interval` until `shutdown` flips.
pub async fn poll_loop(edge: Arc<Edge>, mut shutdown: watch::Receiver<bool>) {
    let every = edge.config.control.poll_interval;
    let mut failing = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        match tokio::time::timeout(every.max(Duration::from_secs(5)), edge.sync_control()).await {
            Ok(Ok(_)) => failing = false,
            Ok(Err(ControlError::Unavailable(_))) => return,
            Ok(Err(e)) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot read the fleet's control state; serving what was read last");
            }
            Ok(Err(_)) | Err(_) => {}
        }
    }
}
