//! The store handle: opening and recovering the data directory, creating buckets, serving.

use std::sync::Arc;

use s3s::service::{S3Service, S3ServiceBuilder};

use crate::access_log::AccessLogs;
use crate::acl::Acl;
use crate::config::{LifecycleConfig, ServeLimits, StoreConfig};
use crate::error::StoreError;
use crate::host::Domain;
use crate::index::Index;
use crate::index::records::BucketRecord;
use crate::storage::BlobStore;
use crate::users::{Auth, Users};

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct State {
    /// Metadata.
    pub index: Index,
    /// Body files.
    pub blobs: BlobStore,
    /// Users.
    pub users: Arc<Users>,
    /// Region answered by GetBucketLocation.
    pub region: String,
    /// Virtual-hosted-style base domain.
    pub domain: Option<Domain>,
    /// Server access logging.
    pub logs: AccessLogs,
    /// Multipart uploads completed lately.
    pub completed: crate::completed::Completed,
}

struct Inner {
    state: Arc<State>,
    s3: S3Service,
    lifecycle: LifecycleConfig,
    /// Set once the lifecycle worker runs (it starts with the first `serve`).
    lifecycle_started: std::sync::atomic::AtomicBool,
}

/// An open store. Cheap to clone; all clones share one database and data directory.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("state", &self.inner.state)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Opens (creating if needed) the store under `data_dir` and recovers from a crash:
    /// temp files and body files the index does not reference are deleted, so only objects
    /// whose bodies were durable before their metadata commit are ever listed.
    pub fn open(config: StoreConfig) -> Result<Store, StoreError> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| StoreError::io(format!("creating {}", config.data_dir.display()), e))?;
        let index = Index::open(&config.data_dir.join("index.redb"))?;
        let blobs = BlobStore::open(&config.data_dir)?;
        let removed = blobs.sweep(&index.referenced_blobs()?)?;
        if removed > 0 {
            tracing::info!(removed, "recovery removed unreferenced body and temp files");
        }
        let users = Arc::new(Users::new(&config.users));
        let logs = AccessLogs::new(index.loggings()?, config.log_flush);
        let state = Arc::new(State {
            index,
            blobs,
            users: users.clone(),
            region: config.region.clone(),
            domain: config.domain.as_deref().map(Domain::new),
            logs,
            completed: crate::completed::Completed::default(),
        });
        let mut builder = S3ServiceBuilder::new(crate::s3::Backend::new(state.clone()));
        builder.set_config(crate::gate::s3s_config());
        builder.set_auth(Auth(users));
        builder.set_access(crate::access::Access(state.clone()));
        if let Some(domain) = &state.domain {
            builder.set_host(domain.clone());
        }
        let s3 = builder.build();
        Ok(Store {
            inner: Arc::new(Inner {
                state,
                s3,
                lifecycle: config.lifecycle,
                lifecycle_started: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// Creates `bucket` owned by user `owner_id` (private) if missing; `Ok(true)` when created,
    /// `Ok(false)` when that user already owns it, `Err(BucketOwnedByOther)` when another does.
    pub fn ensure_bucket(&self, bucket: &str, owner_id: &str) -> Result<bool, StoreError> {
        let state = &self.inner.state;
        if !s3s::path::check_bucket_name(bucket) {
            return Err(StoreError::InvalidBucketName(bucket.to_owned()));
        }
        if state.users.by_id(owner_id).is_none() {
            return Err(StoreError::UnknownUser(owner_id.to_owned()));
        }
        let record = BucketRecord {
            owner: owner_id.to_owned(),
            created_ms: now_ms(),
            acl: Acl::default(),
            policy: None,
            cors: None,
            versioning: crate::versioning::Versioning::Unversioned,
            lifecycle: None,
        };
        let (current, created) = state.index.create_bucket(bucket, &record)?;
        if current.owner != owner_id {
            return Err(StoreError::BucketOwnedByOther(bucket.to_owned()));
        }
        Ok(created)
    }

    /// Replaces the limited access keys (keys that act as a configured user within their
    /// bucket grants) with `keys`; requests signed with a key no longer in the set are
    /// refused from the next one on. On an error (a key naming an unknown user, or the access
    /// key of a configured user) nothing changes.
    pub fn set_limited_keys(&self, keys: &[crate::limited::LimitedKey]) -> Result<(), StoreError> {
        self.inner.state.users.set_limited(keys)
    }

    /// Serves S3 over HTTP/1.1 on an already-bound listener until `shutdown` resolves, then
    /// stops accepting and finishes in-flight requests. Uses [`ServeLimits::default`].
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StoreError> {
        self.serve_with_limits(listener, ServeLimits::default(), shutdown)
            .await
    }

    /// Like [`Store::serve`], with the listener's limits (header-read and idle timeouts,
    /// connection cap). The first call also starts the lifecycle worker, which runs until
    /// the store is dropped.
    pub async fn serve_with_limits(
        &self,
        listener: tokio::net::TcpListener,
        limits: ServeLimits,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StoreError> {
        self.serve_full(listener, limits, None, shutdown).await
    }

    /// Like [`Store::serve_with_limits`], over TLS when `tls` is given (its certificate
    /// resolver picks by SNI; ALPN `h2` gets HTTP/2, anything else HTTP/1.1). Access logs are
    /// delivered while it serves, and what is buffered is delivered when it stops. The first
    /// call starts the lifecycle worker (it runs until the store is dropped).
    pub async fn serve_full(
        &self,
        listener: tokio::net::TcpListener,
        limits: ServeLimits,
        tls: Option<Arc<rustls::ServerConfig>>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StoreError> {
        if !self
            .inner
            .lifecycle_started
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            crate::lifecycle::spawn(Arc::downgrade(&self.inner.state), self.inner.lifecycle);
        }
        let state = self.inner.state.clone();
        let service = crate::service::OriginService::new(state.clone(), self.inner.s3.clone());
        let (stop_logs, stopped) = tokio::sync::watch::channel(false);
        let delivery = tokio::spawn(crate::access_log::delivery::run(state, stopped));
        let served = crate::listener::serve(service, listener, limits, tls, shutdown).await;
        let _ = stop_logs.send(true);
        if let Err(e) = delivery.await {
            tracing::error!(error = %e, "access log delivery task failed");
        }
        served
    }

    /// Delivers the buffered access log records now (they are also delivered every
    /// `log_flush` and when serving stops).
    pub async fn flush_access_logs(&self) {
        crate::access_log::delivery::flush(&self.inner.state).await;
    }
}
