//! Picking a certificate by SNI: an ACME certificate for the exact name, then an uploaded or
//! generated one for the exact name, then the wildcard one label up, then the default.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Certificates by host name; names starting with `*.` are wildcards.
#[derive(Default, Clone)]
pub struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Adds `key` for `name` (`*.example.com` for a wildcard); later entries replace earlier.
    pub fn insert(&mut self, name: &str, key: Arc<CertifiedKey>) {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        match name.strip_prefix("*.") {
            Some(suffix) => self.wildcard.insert(suffix.to_owned(), key),
            None => self.exact.insert(name, key),
        };
    }

    /// Every name with its certificate (wildcards as `*.suffix`), for expiry metrics.
    pub fn names(&self) -> Vec<(String, Arc<CertifiedKey>)> {
        self.exact
            .iter()
            .map(|(name, key)| (name.clone(), key.clone()))
            .chain(
                self.wildcard
                    .iter()
                    .map(|(suffix, key)| (format!("*.{suffix}"), key.clone())),
            )
            .collect()
    }

    /// Served for a missing or unknown SNI.
    pub fn set_default(&mut self, key: Arc<CertifiedKey>) {
        self.default = Some(key);
    }

    /// The certificate for `server_name`, if any.
    pub fn find(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = server_name else {
            return self.default.clone();
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.exact_for(&name)
            .or_else(|| self.wildcard_for(&name))
            .or_else(|| self.default.clone())
    }

    /// The certificate stored for exactly `name` (lower-case, no trailing dot).
    fn exact_for(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.exact.get(name).cloned()
    }

    /// The wildcard certificate one label above `name` (lower-case, no trailing dot).
    fn wildcard_for(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent).cloned()
    }

    /// Whether a certificate (not the default) covers `server_name`.
    pub fn covers(&self, server_name: &str) -> bool {
        let name = server_name.trim_end_matches('.').to_ascii_lowercase();
        self.exact.contains_key(&name)
            || name
                .split_once('.')
                .is_some_and(|(_, parent)| self.wildcard.contains_key(parent))
    }

    /// Whether a default certificate is set.
    pub fn has_default(&self) -> bool {
        self.default.is_some()
    }

    /// The default certificate, if any.
    pub fn default_cert(&self) -> Option<Arc<CertifiedKey>> {
        self.default.clone()
    }

    /// The entry stored under exactly `name` (`*.example.com` for a wildcard), without
    /// falling back to wildcards or the default: what a reload keeps when a file is bad.
    pub fn entry(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        match name.strip_prefix("*.") {
            Some(suffix) => self.wildcard.get(suffix).cloned(),
            None => self.exact.get(&name).cloned(),
        }
    }
}

/// The rustls resolver; its stores can be swapped at run time (reloads, new ACME
/// certificates) without locking.
#[derive(Default)]
pub struct SniResolver {
    /// Uploaded and generated certificates (`[tls]`, spaces with cert files).
    store: ArcSwap<CertStore>,
    /// Certificates uploaded through the admin API (the fleet's shared state).
    uploaded: ArcSwap<CertStore>,
    /// ACME certificates by exact (lower-case) name.
    acme: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
}

impl SniResolver {
    /// A resolver over `store`.
    pub fn new(store: CertStore) -> SniResolver {
        SniResolver {
            store: ArcSwap::from_pointee(store),
            uploaded: ArcSwap::default(),
            acme: ArcSwap::default(),
        }
    }

    /// Replaces every certificate at once.
    pub fn replace(&self, store: CertStore) {
        self.store.store(Arc::new(store));
    }

    /// The current certificates.
    pub fn store(&self) -> Arc<CertStore> {
        self.store.load_full()
    }

    /// Serves `key` for `name` (an ACME certificate), or stops serving one with `None`.
    pub fn set_acme(&self, name: &str, key: Option<Arc<CertifiedKey>>) {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.acme.rcu(|current| {
            let mut next = HashMap::clone(current);
            match &key {
                Some(key) => next.insert(name.clone(), key.clone()),
                None => next.remove(&name),
            };
            next
        });
    }

    /// The ACME certificate served for `name`, if any.
    pub fn acme(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.acme
            .load()
            .get(&name.trim_end_matches('.').to_ascii_lowercase())
            .cloned()
    }

    /// Replaces the certificates uploaded through the admin API.
    pub fn set_uploaded(&self, store: CertStore) {
        self.uploaded.store(Arc::new(store));
    }

    /// The certificate a handshake naming `server_name` gets, if any: ACME's for the exact
    /// name, then exact names (files before uploads), then wildcards (uploads before
    /// files), then the default.
    pub fn find(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = server_name else {
            return self.store.load().find(None);
        };
        let acme = self.acme.load();
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if !acme.is_empty()
            && let Some(key) = acme.get(&name)
        {
            return Some(key.clone());
        }
        let store = self.store.load();
        let uploaded = self.uploaded.load();
        store
            .exact_for(&name)
            .or_else(|| uploaded.exact_for(&name))
            .or_else(|| uploaded.wildcard_for(&name))
            .or_else(|| store.find(Some(&name)))
    }
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SniResolver")
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.find(hello.server_name())
    }
}
