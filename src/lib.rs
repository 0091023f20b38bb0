//! `edge`: a CDN edge PoP in front of an S3-compatible object store.
//!
//! A PoP terminates TLS, routes each request's host to a space, serves it from a cache
//! (RFC 9111 freshness, coalesced misses, streamed bodies) and fetches misses from the
//! origin: the embedded store of `crates/origin`, any S3 endpoint, or an HTTP origin.

pub mod access_log;
pub mod cache;
pub mod config;
pub mod control;
pub mod dashboard;
pub mod fuzzing;
pub mod http_client;
pub mod logging;
pub mod metrics;
pub mod origin;
pub mod purge;
pub mod routing;
pub mod server;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use config::{Config, EmbeddedOrigin, OriginKind};
use server::Edge;

/// Why the PoP could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("cannot listen on {addr} ({key}): {source}")]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("embedded origin: {0}")]
    Store(#[from] origin_store::StoreError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Origin(#[from] origin::OriginError),
    #[error("config: {0}")]
    Config(String),
}

/// Re-export of the embedded store crate.
pub use ::origin as origin_store;

/// Listeners bound before the PoP starts (tests bind port 0 and read the addresses back).
#[derive(Default)]
pub struct Listeners {
    pub http: Option<TcpListener>,
    pub https: Option<TcpListener>,
    pub admin: Option<TcpListener>,
    /// The embedded origin's listener (only with `origin.kind = "embedded"`).
    pub origin: Option<TcpListener>,
}

async fn bind(
    key: &'static str,
    addr: Option<SocketAddr>,
) -> Result<Option<TcpListener>, EdgeError> {
    match addr {
        None => Ok(None),
        Some(addr) => TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|source| EdgeError::Bind { key, addr, source }),
    }
}

impl Listeners {
    /// Binds every address the config names.
    pub async fn bind(config: &Config) -> Result<Listeners, EdgeError> {
        let origin = match &config.origin.kind {
            OriginKind::Embedded(embedded) => bind("origin.listen", Some(embedded.listen)).await?,
            _ => None,
        };
        Ok(Listeners {
            http: bind("listen.http", config.listen.http).await?,
            https: bind("listen.https", config.listen.https).await?,
            admin: bind("listen.admin", config.listen.admin).await?,
            origin,
        })
    }
}

/// A running PoP.
pub struct Running {
    pub http_addr: Option<SocketAddr>,
    pub https_addr: Option<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    pub origin_addr: Option<SocketAddr>,
    pub edge: Arc<Edge>,
    /// Certificates and ACME (with an HTTPS listener or `[acme]`).
    pub tls: Option<Arc<tls::Tls>>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Running {
    /// Stops accepting, lets in-flight responses finish (up to the grace), and returns.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        // Pending disk writes land, and the disk directory is free for the next process.
        self.edge.cache.shutdown().await;
    }

    /// Waits until every listener has stopped.
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }

    /// A handle that triggers a graceful stop.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    /// Reloads the uploaded certificates `config` names (what SIGHUP does); open connections
    /// are not touched, and a file that does not load keeps its previous certificate.
    pub fn reload_certificates(&self, config: &Config) -> Option<tls::ReloadReport> {
        self.tls.as_ref().map(|t| t.reload_certificates(config))
    }

    /// The ACME manager, with `[acme]`: `reconcile(domains)` after a config change,
    /// `status()`, `metrics()`.
    pub fn acme(&self) -> Option<&tls::acme::AcmeManager> {
        self.tls.as_ref().and_then(|t| t.acme())
    }
}

fn store_config(embedded: &EmbeddedOrigin) -> origin_store::StoreConfig {
    origin_store::StoreConfig {
        data_dir: embedded.data_dir.clone(),
        domain: embedded.domain.clone(),
        region: "us-east-1".to_owned(),
        users: embedded
            .users
            .iter()
            .map(|u| origin_store::UserConfig {
                id: u.id.clone(),
                display_name: u.display_name.clone(),
                email: u.email.clone(),
                access_key: u.access_key.clone(),
                secret_key: u.secret_key.expose().to_owned(),
            })
            .collect(),
        lifecycle: origin_store::LifecycleConfig {
            interval: embedded.lifecycle_interval,
            day: embedded.lifecycle_day,
        },
        log_flush: embedded.log_flush,
    }
}

/// The embedded store's listener limits: the edge's own `limits.*`.
fn origin_limits(config: &Config) -> origin_store::ServeLimits {
    origin_store::ServeLimits {
        header_read_timeout: config.limits.header_read_timeout,
        idle_timeout: config.limits.idle_timeout,
        max_connections: config.limits.max_connections,
    }
}

/// Opens the embedded store and creates each space's bucket if missing.
fn open_store(
    config: &Config,
    embedded: &EmbeddedOrigin,
) -> Result<origin_store::Store, EdgeError> {
    let store = origin_store::Store::open(store_config(embedded))?;
    for space in &config.spaces {
        if store.ensure_bucket(&space.bucket, &embedded.edge_user)? {
            tracing::info!(bucket = %space.bucket, owner = %embedded.edge_user, "created bucket");
        }
    }
    Ok(store)
}

/// Starts a PoP on already-bound listeners, on the real clock.
pub async fn start(config: Config, listeners: Listeners) -> Result<Running, EdgeError> {
    start_with_clock(config, listeners, cache::clock::system()).await
}

/// How often the memory tier drops a batch of entries past their keep window.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Starts a PoP on already-bound listeners, reading the time from `clock` (tests move a
/// [`cache::clock::ManualClock`] instead of sleeping).
pub async fn start_with_clock(
    config: Config,
    listeners: Listeners,
    clock: cache::SharedClock,
) -> Result<Running, EdgeError> {
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();

    let embedded = match &config.origin.kind {
        OriginKind::Embedded(embedded) => Some(embedded),
        _ => None,
    };
    let origin_addr = listeners.origin.as_ref().and_then(|l| l.local_addr().ok());
    let origin_tls = embedded.is_some_and(|e| e.tls) && listeners.origin.is_some();

    let http_addr = listeners.http.as_ref().and_then(|l| l.local_addr().ok());
    let https_addr = listeners.https.as_ref().and_then(|l| l.local_addr().ok());
    let admin_addr = listeners.admin.as_ref().and_then(|l| l.local_addr().ok());

    let tls = if listeners.https.is_some()
        || config.acme.is_some()
        || config.listen.admin_tls
        || origin_tls
    {
        Some(Arc::new(tls::Tls::new(&config, origin_addr)?))
    } else {
        None
    };

    let mut key_store = None;
    if let (Some(embedded), Some(listener)) = (embedded, listeners.origin) {
        let store = open_store(&config, embedded)?;
        key_store = Some((store.clone(), embedded.edge_user.clone()));
        let server_tls = match (&tls, origin_tls) {
            (Some(tls), true) => Some(Arc::new(tls::server_config(tls.resolver().clone())?)),
            _ => None,
        };
        let mut rx = shutdown_rx.clone();
        let limits = origin_limits(&config);
        tasks.spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            if let Err(e) = store.serve_full(listener, limits, server_tls, stop).await {
                tracing::error!(error = %e, "embedded origin stopped");
            }
        });
    }
    let tls_acceptor = match (&listeners.https, &tls) {
        (Some(_), Some(tls)) => Some(tls.acceptor()),
        _ => None,
    };

    let config_admin_tls = config.listen.admin_tls;
    let edge = Arc::new(Edge::new(
        config,
        server::EdgeParts {
            embedded_origin: origin_addr,
            https_port: https_addr.map(|a| a.port()),
            tls: tls.clone(),
            clock,
        },
    )?);
    if let Some(addr) = admin_addr {
        let _ = edge.admin_addr.set(addr);
    }
    if let Some((store, edge_user)) = key_store {
        // Access keys made over the API are enforced by this PoP's embedded store.
        edge.control.attach_key_store(store, edge_user);
    }
    tasks.spawn(sweep_memory(edge.cache.clone(), shutdown_rx.clone()));
    if let Some(tls) = &tls {
        tls.spawn(&edge.config, &shutdown_rx, &mut tasks);
    }
    let disk_path = (edge.config.cache.disk > 0).then_some(edge.config.cache.disk_path.as_path());
    purge::catch_up::CatchUp::new(edge.cache.clone(), edge.fanout.clone(), disk_path)
        .start(shutdown_rx.clone());
    tasks.spawn(edge.fanout.clone().retry_loop_until(shutdown_rx.clone()));
    catch_up_control(&edge).await;
    tasks.spawn(control::poll_loop(edge.clone(), shutdown_rx.clone()));
    if let Some(listener) = listeners.http {
        tasks.spawn(server::listener::serve_edge(
            edge.clone(),
            listener,
            None,
            shutdown_rx.clone(),
        ));
    }
    if let Some(listener) = listeners.https {
        tasks.spawn(server::listener::serve_edge(
            edge.clone(),
            listener,
            tls_acceptor,
            shutdown_rx.clone(),
        ));
    }
    if let Some(listener) = listeners.admin {
        let admin_tls = match (&tls, config_admin_tls) {
            (Some(tls), true) => Some(tls.acceptor()),
            _ => None,
        };
        tasks.spawn(server::admin::serve_admin(
            edge.clone(),
            listener,
            admin_tls,
            shutdown_rx.clone(),
        ));
    }
    tracing::info!(pop = %edge.pop_name, ?http_addr, ?https_addr, ?admin_addr, ?origin_addr, "edge started");
    Ok(Running {
        http_addr,
        https_addr,
        admin_addr,
        origin_addr,
        edge,
        tls,
        shutdown,
        tasks,
    })
}

/// Drops memory entries past their keep window every few seconds, until shutdown.
/// Longest a starting PoP waits to read the fleet's shared state before it serves.
const CONTROL_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads the fleet's shared state (spaces created over the API) before the PoP serves, so
/// one that was down serves what changed meanwhile; a store that does not answer in time is
/// read again by the poll loop.
async fn catch_up_control(edge: &Arc<Edge>) {
    let wait = CONTROL_CATCH_UP.min(edge.config.origin.timeout);
    match tokio::time::timeout(wait, edge.sync_control()).await {
        Ok(Ok(_)) => {}
        Ok(Err(control::ControlError::Unavailable(reason))) => {
            tracing::debug!(%reason, "no shared control state: spaces come from the config file only");
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot read the fleet's control state at start; polling")
        }
        Err(_) => tracing::warn!("the fleet's control state did not answer at start; polling"),
    }
}

async fn sweep_memory(cache: Arc<cache::Cache>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        cache.sweep();
    }
}

/// Resolves when the process gets SIGTERM or SIGINT.
async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Resolves on each SIGHUP (never on platforms without it).
struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    fn new() -> Hangups {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signal = signal(SignalKind::hangup())
                .map_err(|e| tracing::warn!(error = %e, "cannot listen for SIGHUP"))
                .ok();
            Hangups { signal }
        }
        #[cfg(not(unix))]
        Hangups {}
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal
            && signal.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await;
    }
}

/// `edge serve`: binds, serves until SIGTERM/SIGINT, then shuts down gracefully. SIGHUP
/// reloads the config file at `config_path` (spaces, TTLs, tokens, log format) and the
/// certificates; a file that does not load keeps the running config.
pub async fn run(config: Config, config_path: std::path::PathBuf) -> Result<(), EdgeError> {
    let listeners = Listeners::bind(&config).await?;
    let running = start(config.clone(), listeners).await?;
    let mut config = config;
    let mut hangups = Hangups::new();
    let stop = termination();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            () = hangups.next() => {
                match Config::load(&config_path) {
                    Ok(new) => {
                        let needs_restart = running.edge.reload(new.clone());
                        tracing::info!(config = %config_path.display(), "SIGHUP: config reloaded");
                        if !needs_restart.is_empty() {
                            tracing::warn!(?needs_restart, "these settings changed but apply only after a restart");
                        }
                        config = new;
                    }
                    Err(e) => tracing::error!(config = %config_path.display(), error = %e, "SIGHUP: reload refused; keeping the running config"),
                }
                running.reload_certificates(&config);
            }
        }
    }
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

/// `edge origin`: only the embedded store.
pub async fn run_origin_only(config: Config) -> Result<(), EdgeError> {
    let OriginKind::Embedded(embedded) = &config.origin.kind else {
        return Err(EdgeError::Config(
            "origin.kind: `edge origin` needs kind = \"embedded\"".to_owned(),
        ));
    };
    let store = open_store(&config, embedded)?;
    let listener = bind("origin.listen", Some(embedded.listen))
        .await?
        .ok_or_else(|| EdgeError::Config("origin.listen".to_owned()))?;
    let server_tls = if embedded.tls {
        let store = tls::cert_store(&config)?;
        let resolver = Arc::new(tls::SniResolver::new(store));
        Some(Arc::new(tls::server_config(resolver)?))
    } else {
        None
    };
    tracing::info!(addr = ?listener.local_addr().ok(), tls = embedded.tls, "origin started");
    store
        .serve_full(listener, origin_limits(&config), server_tls, termination())
        .await?;
    Ok(())
}
