//! The control plane: spaces as data the whole fleet shares. An admin creates, edits or
//! deletes a space over the API on any PoP; the spec is written to the fleet's state store
//! (the origin's private `edge-state` bucket, or `control.state_dir`) with a conditional
//! write, the PoP applies it at once and tells its peers, and every PoP also reads the store
//! every `control.poll_interval`, so one that was down catches up.
//!
//! Concurrent edits never lose an update: a create is a write-if-absent (the second of two
//! creates of one name gets 409); an edit reads the stored spec, lays its fields over it and
//! writes it back only if it is still the version read (retried on a race), so two edits of
//! different fields both land, and of the same field the later one wins.

pub mod api;
pub mod auth;
pub mod certs;
pub mod client;
pub mod fleet;
pub mod keys;
pub mod keys_api;
pub mod spaces;
mod sync;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

use crate::config::Config;
use crate::tls::acme::store::{self as state, CertStateStore, DirStore, StoreError, Write};
use certs::{CertUpload, Uploaded};
use spaces::{SpaceSpec, SpecError};

pub use sync::poll_loop;

/// The origin bucket that holds the fleet's control state.
pub use crate::config::STATE_BUCKET;

/// Where space specs are kept in the store.
const SPACES: &str = "spaces/";

/// Where uploaded certificates are kept in the store.
const CERTS: &str = "certs/";

/// Most spaces, and most certificates, the API keeps (each space costs its meters and a
/// routing entry on every PoP).
pub const MAX_RECORDS: usize = 1000;

/// Attempts of an edit that keeps losing races with other edits of the same space.
const EDIT_ATTEMPTS: usize = 8;

/// Why a control-plane request failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Bad input; the message names the field.
    #[error(transparent)]
    Invalid(#[from] SpecError),
    #[error("space `{0}` already exists")]
    Exists(String),
    #[error("no space `{0}`")]
    NotFound(String),
    #[error("certificate `{0}` is already uploaded")]
    CertExists(String),
    #[error("no uploaded certificate `{0}`")]
    NoCert(String),
    #[error("certificate `{0}` is used by space `{1}`")]
    CertInUse(String, String),
    #[error("space `{0}` is defined in the config file and is read-only here")]
    ReadOnly(String),
    #[error("edits of space `{0}` kept racing with other edits; try again")]
    Conflict(String),
    #[error("at most {MAX_RECORDS} {0} can be kept through the API")]
    Limit(&'static str),
    #[error("the fleet's state store is unavailable: {0}")]
    Unavailable(String),
    #[error("the fleet's state store failed: {0}")]
    Store(#[from] StoreError),
}

impl ControlError {
    /// The HTTP status the API answers with.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
            ControlError::Exists(_)
            | ControlError::ReadOnly(_)
            | ControlError::Conflict(_)
            | ControlError::CertExists(_)
            | ControlError::CertInUse(..)
            | ControlError::Limit(_) => StatusCode::CONFLICT,
            ControlError::NotFound(_) | ControlError::NoCert(_) => StatusCode::NOT_FOUND,
            ControlError::Unavailable(_) | ControlError::Store(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

/// A stored record and the version it was read or written at.
#[derive(Debug, Clone)]
struct Versioned<T> {
    etag: String,
    value: T,
}

/// Records of one kind by name, as last read from or written to the store.
type Records<T> = BTreeMap<String, Versioned<T>>;

/// The fleet's shared state as this PoP knows it, and the way to change it.
pub struct ControlPlane {
    store: Result<Arc<dyn CertStateStore>, String>,
    /// API spaces by name.
    specs: Mutex<Records<SpaceSpec>>,
    /// Uploaded certificates by id.
    certs: Mutex<Records<Arc<Uploaded>>>,
    /// One refresh at a time.
    refreshing: tokio::sync::Mutex<()>,
    /// When each peer last answered (`/v1/fleet`).
    pub peers: fleet::PeerSightings,
    /// The config the PoP started with, and where its embedded origin listens: new spaces'
    /// buckets are created there.
    origin: (Arc<Config>, Option<SocketAddr>),
    /// Access keys limited to buckets.
    keys: keys::KeyRing,
}

impl ControlPlane {
    /// The control plane of a PoP started with `config`.
    pub fn new(config: &Config, embedded_origin: Option<SocketAddr>) -> ControlPlane {
        let store: Result<Arc<dyn CertStateStore>, String> = match &config.control.state_dir {
            Some(dir) => Ok(Arc::new(DirStore::new(dir))),
            None => state::origin_bucket(config, embedded_origin, STATE_BUCKET)
                .map(|s| Arc::new(s) as Arc<dyn CertStateStore>)
                .map_err(|e| format!("{e}; set control.state_dir")),
        };
        ControlPlane {
            store,
            specs: Mutex::new(BTreeMap::new()),
            certs: Mutex::new(BTreeMap::new()),
            refreshing: tokio::sync::Mutex::new(()),
            peers: fleet::PeerSightings::default(),
            origin: (Arc::new(config.clone()), embedded_origin),
            keys: keys::KeyRing::default(),
        }
    }

    fn store(&self) -> Result<&Arc<dyn CertStateStore>, ControlError> {
        self.store
            .as_ref()
            .map_err(|reason| ControlError::Unavailable(reason.clone()))
    }

    fn specs_lock(&self) -> MutexGuard<'_, Records<SpaceSpec>> {
        self.specs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn certs_lock(&self) -> MutexGuard<'_, Records<Arc<Uploaded>>> {
        self.certs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The API spaces' specs, by name.
    pub fn specs(&self) -> Vec<SpaceSpec> {
        self.specs_lock()
            .values()
            .map(|v| v.value.clone())
            .collect()
    }

    /// The uploaded certificates, by id.
    pub fn certs(&self) -> Vec<Arc<Uploaded>> {
        self.certs_lock()
            .values()
            .map(|v| v.value.clone())
            .collect()
    }

    /// The uploaded certificate `id`, if any.
    pub fn cert(&self, id: &str) -> Option<Arc<Uploaded>> {
        self.certs_lock().get(id).map(|v| v.value.clone())
    }

    /// Reads the store again; `true` when a record was added, changed or removed.
    pub async fn refresh(&self) -> Result<bool, ControlError> {
        let store = self.store()?;
        let _one = self.refreshing.lock().await;
        let known = self.specs_lock().clone();
        let (specs, specs_changed) = read_records(store.as_ref(), SPACES, &known, |name, body| {
            SpaceSpec::from_json(body)
                .ok()
                .filter(|spec| spec.name == name)
        })
        .await?;
        let known = self.certs_lock().clone();
        let (certs, certs_changed) = read_records(store.as_ref(), CERTS, &known, |id, body| {
            let pem: CertUpload = serde_json::from_slice(body).ok()?;
            Uploaded::from_pem(pem)
                .ok()
                .filter(|c| c.id == id)
                .map(Arc::new)
        })
        .await?;
        *self.specs_lock() = specs;
        *self.certs_lock() = certs;
        Ok(specs_changed || certs_changed)
    }

    /// Stores an uploaded certificate.
    pub async fn upload_cert(&self, cert: Uploaded) -> Result<Arc<Uploaded>, ControlError> {
        let store = self.store()?;
        // No refresh may install a listing older than this write.
        let _writing = self.refreshing.lock().await;
        if self.certs_lock().len() >= MAX_RECORDS {
            return Err(ControlError::Limit("certificates"));
        }
        let body = serde_json::to_vec_pretty(&cert.pem)
            .map(Bytes::from)
            .map_err(|e| ControlError::Invalid(SpecError(format!("body: {e}"))))?;
        let key = format!("{CERTS}{}.json", cert.id);
        let Some(etag) = store.put(&key, body, Write::IfAbsent).await? else {
            return Err(ControlError::CertExists(cert.id));
        };
        let cert = Arc::new(cert);
        self.certs_lock().insert(
            cert.id.clone(),
            Versioned {
                etag,
                value: cert.clone(),
            },
        );
        Ok(cert)
    }

    /// Removes the uploaded certificate `id`.
    pub async fn delete_cert(&self, id: &str) -> Result<(), ControlError> {
        let store = self.store()?;
        // No refresh may install a listing older than this write.
        let _writing = self.refreshing.lock().await;
        let key = format!("{CERTS}{id}.json");
        if !state::valid_key(&key) || store.get(&key).await?.is_none() {
            return Err(ControlError::NoCert(id.to_owned()));
        }
        store.delete(&key).await?;
        self.certs_lock().remove(id);
        Ok(())
    }

    /// Stores a new space (after `check` accepted it) and creates its bucket.
    pub async fn create(
        &self,
        spec: SpaceSpec,
        check: impl FnOnce(&SpaceSpec) -> Result<crate::config::Space, ControlError>,
    ) -> Result<crate::config::Space, ControlError> {
        let space = check(&spec)?;
        let store = self.store()?;
        // No refresh may install a listing older than this write.
        let _writing = self.refreshing.lock().await;
        if self.specs_lock().len() >= MAX_RECORDS {
            return Err(ControlError::Limit("spaces"));
        }
        self.create_bucket(&space.bucket).await?;
        let body = to_json(&spec)?;
        let Some(etag) = store
            .put(&key_of(&spec.name), body, Write::IfAbsent)
            .await?
        else {
            return Err(ControlError::Exists(spec.name));
        };
        self.specs_lock()
            .insert(spec.name.clone(), Versioned { etag, value: spec });
        Ok(space)
    }

    /// Lays `patch` over the stored spec of `name` and stores it if `check` accepts it.
    pub async fn update(
        &self,
        name: &str,
        patch: &[u8],
        check: impl Fn(&SpaceSpec) -> Result<crate::config::Space, ControlError>,
    ) -> Result<crate::config::Space, ControlError> {
        let store = self.store()?;
        let key = key_of(name);
        // No refresh may install a listing older than this write.
        let _writing = self.refreshing.lock().await;
        for _ in 0..EDIT_ATTEMPTS {
            let Some(stored) = store.get(&key).await? else {
                return Err(ControlError::NotFound(name.to_owned()));
            };
            let current = SpaceSpec::from_json(&stored.body)?;
            let spec = current.patched(patch)?;
            let space = check(&spec)?;
            if space.bucket != current_bucket(&current, name) {
                self.create_bucket(&space.bucket).await?;
            }
            let body = to_json(&spec)?;
            if let Some(etag) = store.put(&key, body, Write::IfMatch(stored.etag)).await? {
                self.specs_lock()
                    .insert(name.to_owned(), Versioned { etag, value: spec });
                return Ok(space);
            }
        }
        Err(ControlError::Conflict(name.to_owned()))
    }

    /// Removes the space `name` from the store.
    pub async fn delete(&self, name: &str) -> Result<(), ControlError> {
        let store = self.store()?;
        // No refresh may install a listing older than this write.
        let _writing = self.refreshing.lock().await;
        let key = key_of(name);
        if store.get(&key).await?.is_none() {
            return Err(ControlError::NotFound(name.to_owned()));
        }
        store.delete(&key).await?;
        self.specs_lock().remove(name);
        Ok(())
    }

    /// Creates `bucket` on the origin (private, owned by the edge's user) unless it exists;
    /// an HTTP origin has no buckets.
    async fn create_bucket(&self, bucket: &str) -> Result<(), ControlError> {
        let (config, embedded) = &self.origin;
        if matches!(config.origin.kind, crate::config::OriginKind::Http { .. }) {
            return Ok(());
        }
        let origin = state::origin_bucket(config, *embedded, bucket)?;
        origin.create_bucket_unless_present().await?;
        Ok(())
    }
}

fn current_bucket(spec: &SpaceSpec, name: &str) -> String {
    spec.bucket.clone().unwrap_or_else(|| name.to_owned())
}

fn key_of(name: &str) -> String {
    format!("{SPACES}{name}.json")
}

/// The name of a record stored under `key` in `prefix`.
fn name_of<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    key.strip_prefix(prefix)?
        .strip_suffix(".json")
        .filter(|n| !n.contains('/'))
}

/// The records under `prefix`: those of `known` whose version is unchanged, the others read
/// and parsed (unreadable ones skipped); and whether anything changed.
async fn read_records<T: Clone>(
    store: &dyn CertStateStore,
    prefix: &str,
    known: &Records<T>,
    parse: impl Fn(&str, &[u8]) -> Option<T>,
) -> Result<(Records<T>, bool), StoreError> {
    let mut fresh = Records::new();
    let mut changed = false;
    for item in store.list(prefix).await? {
        let Some(name) = name_of(prefix, &item.key) else {
            continue;
        };
        if let Some(v) = known.get(name).filter(|v| v.etag == item.etag) {
            fresh.insert(name.to_owned(), v.clone());
            continue;
        }
        // One record that cannot be read is skipped (and logged), never the whole state.
        let stored = match store.get(&item.key).await {
            Ok(Some(stored)) => stored,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(key = %item.key, error = %e, "unreadable record in the state store; skipped");
                if let Some(v) = known.get(name) {
                    fresh.insert(name.to_owned(), v.clone());
                }
                continue;
            }
        };
        match parse(name, &stored.body) {
            Some(value) => {
                changed = true;
                fresh.insert(
                    name.to_owned(),
                    Versioned {
                        etag: stored.etag,
                        value,
                    },
                );
            }
            None => {
                tracing::warn!(key = %item.key, "unreadable record in the state store; skipped");
            }
        }
    }
    changed |= known.keys().any(|name| !fresh.contains_key(name));
    Ok((fresh, changed))
}

fn to_json(spec: &SpaceSpec) -> Result<Bytes, ControlError> {
    serde_json::to_vec_pretty(spec)
        .map(Bytes::from)
        .map_err(|e| ControlError::Invalid(SpecError(format!("body: {e}"))))
}
