//! Answers to ACME challenges, read from the shared store so that whichever PoP the CA reaches
//! can answer for the PoP that ordered: HTTP-01 key authorizations (plain HTTP, any host) and
//! TLS-ALPN-01 certificates generated from the stored key authorization.
//!
//! Which answers are pending comes from a listing of the store, refreshed at most every half
//! second and only when asked: requests for made-up tokens or names cost the origin nothing
//! more, and an answer another PoP published is seen within a second. Answers are read once
//! per version.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::ServerConfig;
use rustls::pki_types::PrivateKeyDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::store::{CertStateStore, StoreError, Write, keys};

/// How old a listing of pending answers may be.
const LISTING_TTL: Duration = Duration::from_millis(500);
/// Bound on remembered answers and configs.
const MAX_CACHED: usize = 1024;

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// A challenge answer this PoP publishes while it orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    Http01 { token: String, key_auth: String },
    TlsAlpn01 { domain: String, key_auth: String },
}

impl Pending {
    fn key(&self) -> String {
        match self {
            Pending::Http01 { token, .. } => keys::http01(token),
            Pending::TlsAlpn01 { domain, .. } => keys::tls_alpn01(domain),
        }
    }

    fn prefix(&self) -> &'static str {
        match self {
            Pending::Http01 { .. } => keys::HTTP01,
            Pending::TlsAlpn01 { .. } => keys::TLS_ALPN01,
        }
    }

    fn value(&self) -> &str {
        match self {
            Pending::Http01 { key_auth, .. } | Pending::TlsAlpn01 { key_auth, .. } => key_auth,
        }
    }
}

/// The pending answers under one prefix: key to version.
#[derive(Debug)]
struct Listing {
    at: Instant,
    versions: HashMap<String, String>,
}

/// Challenge answers of the fleet, as this PoP sees them.
#[derive(Debug)]
pub struct Challenges {
    store: Arc<dyn CertStateStore>,
    /// By prefix; the async lock makes concurrent requests share one refresh.
    listings: tokio::sync::Mutex<HashMap<&'static str, Listing>>,
    /// Answers read, by key, with their version.
    values: Mutex<HashMap<String, (String, Bytes)>>,
    /// TLS-ALPN-01 configs by domain, with the key authorization they were made for.
    alpn: Mutex<HashMap<String, (Bytes, Arc<ServerConfig>)>>,
}

/// Whether `token` can be an ACME token (base64url, RFC 8555 section 8.1).
fn valid_token(token: &str) -> bool {
    (1..=256).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn bounded_insert<V>(map: &mut HashMap<String, V>, key: String, value: V) {
    if map.len() >= MAX_CACHED && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
}

impl Challenges {
    /// Answers from `store`.
    pub fn new(store: Arc<dyn CertStateStore>) -> Challenges {
        Challenges {
            store,
            listings: tokio::sync::Mutex::new(HashMap::new()),
            values: Mutex::new(HashMap::new()),
            alpn: Mutex::new(HashMap::new()),
        }
    }

    /// The HTTP-01 answer (key authorization) for `token`, if any PoP published one.
    pub async fn http01(&self, token: &str) -> Option<Bytes> {
        if !valid_token(token) {
            return None;
        }
        self.lookup(keys::HTTP01, &keys::http01(token)).await
    }

    /// A server config answering the TLS-ALPN-01 challenge of `domain`, if one is pending.
    pub async fn tls_alpn01(&self, domain: &str) -> Option<Arc<ServerConfig>> {
        let domain = crate::config::normalize_host(domain)?;
        let key_auth = self
            .lookup(keys::TLS_ALPN01, &keys::tls_alpn01(&domain))
            .await?;
        if let Some((made_for, config)) = lock(&self.alpn).get(&domain)
            && made_for == &key_auth
        {
            return Some(config.clone());
        }
        match alpn_config(&domain, &key_auth) {
            Ok(config) => {
                let config = Arc::new(config);
                bounded_insert(&mut lock(&self.alpn), domain, (key_auth, config.clone()));
                Some(config)
            }
            Err(e) => {
                tracing::warn!(%domain, error = %e, "cannot make the TLS-ALPN-01 certificate");
                None
            }
        }
    }

    /// Makes `pending` answerable by every PoP.
    pub async fn publish(&self, pending: &Pending) -> Result<(), StoreError> {
        let value = Bytes::copy_from_slice(pending.value().as_bytes());
        let key = pending.key();
        let etag = self
            .store
            .put(&key, value.clone(), Write::Always)
            .await?
            .unwrap_or_default();
        if let Some(listing) = self.listings.lock().await.get_mut(pending.prefix()) {
            listing.versions.insert(key.clone(), etag.clone());
        }
        bounded_insert(&mut lock(&self.values), key, (etag, value));
        Ok(())
    }

    /// Removes a published answer (the order is over).
    pub async fn withdraw(&self, pending: &Pending) {
        let key = pending.key();
        if let Some(listing) = self.listings.lock().await.get_mut(pending.prefix()) {
            listing.versions.remove(&key);
        }
        lock(&self.values).remove(&key);
        if let Err(e) = self.store.delete(&key).await {
            tracing::debug!(%key, error = %e, "cannot remove a challenge answer");
        }
    }

    /// The answer under `key` if the (fresh enough) listing of `prefix` has it.
    async fn lookup(&self, prefix: &'static str, key: &str) -> Option<Bytes> {
        let version = self.version(prefix, key).await?;
        if let Some((known, value)) = lock(&self.values).get(key)
            && known == &version
        {
            return Some(value.clone());
        }
        match self.store.get(key).await {
            Ok(Some(stored)) => {
                bounded_insert(
                    &mut lock(&self.values),
                    key.to_owned(),
                    (stored.etag, stored.body.clone()),
                );
                Some(stored.body)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(%key, error = %e, "cannot read a challenge answer");
                None
            }
        }
    }

    /// The version of `key` in the listing of `prefix`, refreshing a stale listing first.
    async fn version(&self, prefix: &'static str, key: &str) -> Option<String> {
        let mut listings = self.listings.lock().await;
        let fresh = listings
            .get(prefix)
            .is_some_and(|l| l.at.elapsed() < LISTING_TTL);
        if !fresh {
            match self.store.list(prefix).await {
                Ok(listed) => {
                    let versions = listed.into_iter().map(|l| (l.key, l.etag)).collect();
                    listings.insert(
                        prefix,
                        Listing {
                            at: Instant::now(),
                            versions,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(%prefix, error = %e, "cannot list challenge answers");
                    return None;
                }
            }
        }
        listings.get(prefix)?.versions.get(key).cloned()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A TLS config for `acme-tls/1` handshakes naming `domain`: a self-signed certificate with
/// the `acmeIdentifier` extension holding SHA-256 of the key authorization (RFC 8737).
fn alpn_config(domain: &str, key_auth: &[u8]) -> Result<ServerConfig, String> {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key_auth);
    let mut params =
        rcgen::CertificateParams::new(vec![domain.to_owned()]).map_err(|e| e.to_string())?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(&digest)];
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let private = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| e.to_string())?;
    let provider = crate::tls::provider();
    let signing_key = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| e.to_string())?;
    // Not `with_single_cert`: its check of the leaf rejects the critical acmeIdentifier.
    let certified = Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing_key));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Always(certified)));
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    Ok(config)
}

/// Serves one certificate whatever the client asks.
#[derive(Debug)]
struct Always(Arc<CertifiedKey>);

impl ResolvesServerCert for Always {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::acme::store::DirStore;

    #[tokio::test]
    async fn answers_written_by_another_pop_are_seen_within_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn CertStateStore> = Arc::new(DirStore::new(dir.path()));
        let here = Challenges::new(store.clone());
        let there = Challenges::new(store);
        assert_eq!(here.http01("tok-1").await, None);
        let pending = Pending::Http01 {
            token: "tok-1".into(),
            key_auth: "tok-1.thumb".into(),
        };
        there.publish(&pending).await.unwrap();
        tokio::time::sleep(LISTING_TTL + Duration::from_millis(50)).await;
        assert_eq!(
            here.http01("tok-1").await.as_deref(),
            Some(&b"tok-1.thumb"[..])
        );
        there.withdraw(&pending).await;
        assert_eq!(there.http01("tok-1").await, None);
        assert_eq!(here.http01("../../etc/passwd").await, None);
    }

    #[tokio::test]
    async fn tls_alpn_certificate_follows_the_key_authorization() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn CertStateStore> = Arc::new(DirStore::new(dir.path()));
        let challenges = Challenges::new(store);
        assert!(challenges.tls_alpn01("img.example").await.is_none());
        let first = Pending::TlsAlpn01 {
            domain: "img.example".into(),
            key_auth: "a.b".into(),
        };
        challenges.publish(&first).await.unwrap();
        let config = challenges.tls_alpn01("IMG.example").await.unwrap();
        assert_eq!(config.alpn_protocols, vec![ACME_TLS_ALPN.to_vec()]);
        let again = challenges.tls_alpn01("img.example").await.unwrap();
        assert!(Arc::ptr_eq(&config, &again));
        challenges
            .publish(&Pending::TlsAlpn01 {
                domain: "img.example".into(),
                key_auth: "c.d".into(),
            })
            .await
            .unwrap();
        let renewed = challenges.tls_alpn01("img.example").await.unwrap();
        assert!(!Arc::ptr_eq(&config, &renewed));
    }
}
