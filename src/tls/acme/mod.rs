//! Automatic certificates for spaces with `certificate = "acme"`: a manager that obtains one
//! per domain at start, renews it after two thirds of its lifetime, backs off on failure, and
//! picks up what other PoPs of the fleet obtained from the shared store.
//!
//! Built on instant-acme rather than rustls-acme: rustls-acme keeps HTTP-01 answers in process
//! memory and reads its cache only at start, so a fleet could neither answer a challenge on
//! another PoP than the one ordering, nor pick up a renewed certificate without a restart, nor
//! make sure one PoP orders at a time. Here each of those is ours: [`store`] (directory or
//! origin bucket), [`challenge`] (answers read from the store), [`lease`] (one order at a time)
//! and [`order`] (one ACME order).

pub mod challenge;
pub mod lease;
pub mod order;
pub mod store;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use instant_acme::Account;
use tokio::sync::{Notify, OnceCell, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use self::challenge::Challenges;
use self::lease::Acquire;
use self::order::AcmeHttp;
use self::store::{CertStateStore, StoreError, Write, keys};
use super::certs::{LeafInfo, parse_pem_bundle};
use super::resolver::SniResolver;
use crate::config::Acme;

/// Why a certificate could not be obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeError {
    /// The ACME protocol failed (network, CA error document, bad nonce...).
    #[error("ACME: {0}")]
    Protocol(#[from] instant_acme::Error),
    /// The shared store could not be read or written.
    #[error("ACME state store: {0}")]
    Store(#[from] StoreError),
    /// The CA did not validate or refused the order.
    #[error("the CA refused: {0}")]
    Rejected(String),
    /// The certificate the CA sent cannot be served.
    #[error("the issued certificate is unusable: {0}")]
    BadCertificate(String),
    /// Local setup: roots, keys, CSR.
    #[error("{0}")]
    Setup(String),
    /// The order did not finish while the lease was held.
    #[error("the order took longer than {0:?}")]
    Timeout(Duration),
}

impl AcmeError {
    /// Whether a later attempt may succeed (the manager retries every error with backoff;
    /// this says whether an operator must act first).
    pub fn is_retryable(&self) -> bool {
        match self {
            AcmeError::Store(e) => e.is_retryable(),
            AcmeError::Setup(_) => false,
            _ => true,
        }
    }
}

/// Counters and gauges of the manager, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcmeMetrics {
    /// Orders this PoP started (it held the lease).
    pub orders_started: u64,
    pub orders_succeeded: u64,
    pub orders_failed: u64,
    /// Certificates read from the store (obtained by this or another PoP).
    pub certificates_loaded: u64,
    /// Domains with `certificate = "acme"`.
    pub domains: usize,
    /// Domains without a served certificate right now.
    pub domains_without_certificate: usize,
    /// Domains whose last order failed.
    pub domains_failing: usize,
}

/// The state of one domain, for status pages and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainStatus {
    pub domain: String,
    /// The served certificate's serial (lower-case hex).
    pub serial: Option<String>,
    pub not_after: Option<SystemTime>,
    pub renew_at: Option<SystemTime>,
    /// Failed orders in a row.
    pub failures: u32,
    pub last_error: Option<String>,
    pub ordering: bool,
}

#[derive(Debug, Default)]
struct DomainState {
    cert: Option<LeafInfo>,
    /// The store version of the served certificate.
    etag: Option<String>,
    ordering: bool,
    failures: u32,
    last_error: Option<String>,
    /// No order before this (backoff, or another PoP holds the lease).
    not_before: Option<Instant>,
}

impl DomainState {
    /// When this domain needs an order, if it does not right now.
    fn due_in(&self, now: Instant, wall: SystemTime) -> Duration {
        let renew = match &self.cert {
            None => Duration::ZERO,
            Some(cert) => cert.renew_at().duration_since(wall).unwrap_or_default(),
        };
        let wait = self
            .not_before
            .map(|t| t.saturating_duration_since(now))
            .unwrap_or_default();
        renew.max(wait)
    }
}

#[derive(Debug, Default)]
struct Counters {
    orders_started: AtomicU64,
    orders_succeeded: AtomicU64,
    orders_failed: AtomicU64,
    certificates_loaded: AtomicU64,
}

struct Inner {
    acme: Acme,
    /// This PoP's name, written into the leases it holds.
    holder: String,
    store: Arc<dyn CertStateStore>,
    challenges: Arc<Challenges>,
    resolver: Arc<SniResolver>,
    http: AcmeHttp,
    account: OnceCell<Account>,
    domains: Mutex<BTreeMap<String, DomainState>>,
    wake: Notify,
    counters: Counters,
}

/// How an order task ended.
enum Outcome {
    /// A certificate is served (ordered here, or found in the store under the lease).
    Deployed,
    /// Another PoP holds the lease.
    Busy {
        holder: String,
        expires: SystemTime,
    },
    Failed(AcmeError),
}

/// Obtains and renews the ACME certificates of this PoP; cheap to clone.
#[derive(Clone)]
pub struct AcmeManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AcmeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeManager")
            .field("directory", &self.inner.acme.directory)
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

impl AcmeManager {
    /// A manager for `acme`, serving what it obtains through `resolver`; `holder` names this
    /// PoP in leases (its `pop.name`). Call [`AcmeManager::run`] to start it.
    pub fn new(
        acme: &Acme,
        holder: &str,
        store: Arc<dyn CertStateStore>,
        challenges: Arc<Challenges>,
        resolver: Arc<SniResolver>,
    ) -> Result<AcmeManager, AcmeError> {
        Ok(AcmeManager {
            inner: Arc::new(Inner {
                http: AcmeHttp::new(acme)?,
                acme: acme.clone(),
                holder: holder.to_owned(),
                store,
                challenges,
                resolver,
                account: OnceCell::new(),
                domains: Mutex::new(BTreeMap::new()),
                wake: Notify::new(),
                counters: Counters::default(),
            }),
        })
    }

    /// Makes `domains` the set of ACME domains: new ones get a certificate (from the store, or
    /// ordered) without a restart, removed ones stop being served. Callable at any time (config
    /// reload).
    pub fn reconcile<I, S>(&self, domains: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let wanted: Vec<String> = domains
            .into_iter()
            .filter_map(|d| crate::config::normalize_host(d.as_ref()))
            .collect();
        let removed: Vec<String> = {
            let mut current = self.inner.lock();
            let removed = current
                .keys()
                .filter(|d| !wanted.contains(d))
                .cloned()
                .collect::<Vec<_>>();
            for domain in &removed {
                current.remove(domain);
            }
            for domain in &wanted {
                current.entry(domain.clone()).or_default();
            }
            removed
        };
        for domain in &removed {
            self.inner.resolver.set_acme(domain, None);
            tracing::info!(%domain, "ACME domain removed");
        }
        self.inner.wake.notify_one();
    }

    /// The state of every ACME domain.
    pub fn status(&self) -> Vec<DomainStatus> {
        self.inner
            .lock()
            .iter()
            .map(|(domain, state)| DomainStatus {
                domain: domain.clone(),
                serial: state.cert.as_ref().map(|c| c.serial.clone()),
                not_after: state.cert.as_ref().map(|c| c.not_after),
                renew_at: state.cert.as_ref().map(LeafInfo::renew_at),
                failures: state.failures,
                last_error: state.last_error.clone(),
                ordering: state.ordering,
            })
            .collect()
    }

    /// Counters and gauges (a metrics registry reads these).
    pub fn metrics(&self) -> AcmeMetrics {
        let c = &self.inner.counters;
        let domains = self.inner.lock();
        AcmeMetrics {
            orders_started: c.orders_started.load(Ordering::Relaxed),
            orders_succeeded: c.orders_succeeded.load(Ordering::Relaxed),
            orders_failed: c.orders_failed.load(Ordering::Relaxed),
            certificates_loaded: c.certificates_loaded.load(Ordering::Relaxed),
            domains: domains.len(),
            domains_without_certificate: domains.values().filter(|d| d.cert.is_none()).count(),
            domains_failing: domains.values().filter(|d| d.failures > 0).count(),
        }
    }

    /// Runs until `shutdown` flips: reads the store every `acme.poll_interval` (and when the
    /// domains change), orders what is missing or due for renewal.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let inner = self.inner;
        let mut orders: JoinSet<(String, Outcome)> = JoinSet::new();
        // Domains with an order task (also across a reconcile that removed and re-added one).
        let mut in_flight: HashSet<String> = HashSet::new();
        let mut next_sync = Instant::now();
        loop {
            if Instant::now() >= next_sync {
                inner.sync().await;
                next_sync = Instant::now() + inner.acme.poll_interval;
            }
            let next_order = inner.start_due_orders(&mut orders, &mut in_flight);
            let wake_at = next_order.map_or(next_sync, |t| t.min(next_sync));
            tokio::select! {
                _ = tokio::time::sleep_until(wake_at.into()) => {}
                () = inner.wake.notified() => next_sync = Instant::now(),
                Some(done) = orders.join_next() => match done {
                    Ok((domain, outcome)) => {
                        in_flight.remove(&domain);
                        inner.finish(&domain, outcome);
                    }
                    Err(e) => {
                        // A panic: the domain stays marked in flight, so it is not retried
                        // in a loop; its status shows it.
                        tracing::error!(error = %e, "ACME order task failed");
                    }
                },
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        orders.abort_all();
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, DomainState>> {
        self.domains.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts an order for every domain that needs one; returns when the next one is due.
    fn start_due_orders(
        self: &Arc<Self>,
        orders: &mut JoinSet<(String, Outcome)>,
        in_flight: &mut HashSet<String>,
    ) -> Option<Instant> {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut next: Option<Instant> = None;
        let mut due = Vec::new();
        for (domain, state) in self.lock().iter_mut() {
            if state.ordering || in_flight.contains(domain) {
                continue;
            }
            let wait = state.due_in(now, wall);
            if wait.is_zero() {
                state.ordering = true;
                in_flight.insert(domain.clone());
                due.push(domain.clone());
            } else {
                let at = now + wait;
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        for domain in due {
            let inner = self.clone();
            let span = tracing::info_span!("acme", %domain);
            orders.spawn(
                async move {
                    let outcome = inner.order_domain(&domain).await;
                    (domain, outcome)
                }
                .instrument(span),
            );
        }
        next
    }

    /// Records how an order ended; failures back off exponentially.
    fn finish(&self, domain: &str, outcome: Outcome) {
        let mut domains = self.lock();
        let Some(state) = domains.get_mut(domain) else {
            return;
        };
        state.ordering = false;
        match outcome {
            Outcome::Deployed => {
                state.failures = 0;
                state.last_error = None;
                // Even a certificate already due for renewal waits this long for the next order.
                state.not_before = Some(Instant::now() + self.acme.retry_min);
            }
            Outcome::Busy { holder, expires } => {
                tracing::debug!(%domain, %holder, ?expires, "another PoP is ordering");
                // Its certificate will show up in the store; if that PoP dies, the lease
                // expires and this one takes over.
                let until_expiry = expires
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                state.not_before = Some(Instant::now() + until_expiry.min(self.acme.poll_interval));
            }
            Outcome::Failed(error) => {
                state.failures = state.failures.saturating_add(1);
                let delay = backoff(state.failures, self.acme.retry_min, self.acme.retry_max);
                state.not_before = Some(Instant::now() + delay);
                state.last_error = Some(error.to_string());
                self.counters.orders_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    %domain,
                    failures = state.failures,
                    retry_in = ?delay,
                    serving = state.cert.is_some(),
                    retryable = error.is_retryable(),
                    error = %error,
                    "cannot obtain a certificate"
                );
            }
        }
    }

    /// Loads every certificate of the store that changed since the last look.
    async fn sync(&self) {
        let listed = match self.store.list(keys::CERTS).await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list ACME certificates in the store");
                return;
            }
        };
        for entry in listed {
            let Some(domain) = keys::domain_of_cert(&entry.key) else {
                continue;
            };
            let known = self
                .lock()
                .get(domain)
                .map(|state| state.etag.as_deref() == Some(entry.etag.as_str()));
            if known != Some(false) {
                // Not one of ours, or already served.
                continue;
            }
            match self.store.get(&entry.key).await {
                Ok(Some(stored)) => {
                    let domain = domain.to_owned();
                    if let Err(e) = self.deploy(&domain, &stored.body, &stored.etag) {
                        tracing::warn!(%domain, error = %e, "ignoring an unusable certificate in the store");
                        if let Some(state) = self.lock().get_mut(&domain) {
                            state.etag = Some(stored.etag);
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(key = %entry.key, error = %e, "cannot read a certificate"),
            }
        }
    }

    /// Serves the PEM bundle `pem` for `domain` unless what is served already lasts longer.
    fn deploy(&self, domain: &str, pem: &[u8], etag: &str) -> Result<LeafInfo, AcmeError> {
        let key = parse_pem_bundle(pem).map_err(AcmeError::BadCertificate)?;
        let info = LeafInfo::of(&key).map_err(AcmeError::BadCertificate)?;
        if !info.covers(domain) {
            return Err(AcmeError::BadCertificate(format!(
                "it names {:?}, not {domain}",
                info.dns_names
            )));
        }
        if info.not_after <= SystemTime::now() {
            return Err(AcmeError::BadCertificate("it has expired".to_owned()));
        }
        let mut domains = self.lock();
        let Some(state) = domains.get_mut(domain) else {
            return Ok(info);
        };
        state.etag = Some(etag.to_owned());
        if state
            .cert
            .as_ref()
            .is_some_and(|current| current.not_after > info.not_after)
        {
            return Ok(info);
        }
        if state.cert.as_ref().map(|c| &c.serial) != Some(&info.serial) {
            self.resolver.set_acme(domain, Some(Arc::new(key)));
            self.counters
                .certificates_loaded
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                %domain,
                serial = %info.serial,
                not_after = %httpdate::fmt_http_date(info.not_after),
                "serving ACME certificate"
            );
            state.cert = Some(info.clone());
        }
        Ok(info)
    }

    /// One attempt at a certificate for `domain`, under the fleet-wide lease.
    async fn order_domain(&self, domain: &str) -> Outcome {
        let store = self.store.as_ref();
        let lease = match lease::acquire(
            store,
            domain,
            &self.holder,
            self.acme.lease,
            SystemTime::now(),
        )
        .await
        {
            Ok(Acquire::Acquired(lease)) => lease,
            Ok(Acquire::Busy { holder, expires }) => return Outcome::Busy { holder, expires },
            Err(e) => return Outcome::Failed(e.into()),
        };
        let outcome = self.order_under_lease(domain).await;
        if let Err(e) = lease::release(store, &lease).await {
            tracing::warn!(%domain, error = %e, "cannot release the order lease");
        }
        outcome
    }

    async fn order_under_lease(&self, domain: &str) -> Outcome {
        // Another PoP may have stored a fresh certificate just before we took the lease.
        let key = keys::cert(domain);
        match self.store.get(&key).await {
            Ok(Some(stored)) => {
                if let Ok(info) = self.deploy(domain, &stored.body, &stored.etag)
                    && info.renew_at() > SystemTime::now()
                {
                    return Outcome::Deployed;
                }
            }
            Ok(None) => {}
            Err(e) => return Outcome::Failed(e.into()),
        }

        self.counters.orders_started.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%domain, challenge = ?self.acme.challenge, "ordering a certificate");
        let started = Instant::now();
        // Leave a margin so the lease never expires under a running order.
        let limit = self.acme.lease.mul_f64(0.8);
        let issued = match tokio::time::timeout(limit, async {
            let account = self
                .account
                .get_or_try_init(|| order::account(self.store.as_ref(), &self.acme, &self.http))
                .await?;
            order::obtain(account, domain, self.acme.challenge, &self.challenges).await
        })
        .await
        {
            Ok(Ok(issued)) => issued,
            Ok(Err(e)) => return Outcome::Failed(e),
            Err(_) => return Outcome::Failed(AcmeError::Timeout(limit)),
        };
        let bundle = Bytes::from(issued.pem_bundle);
        let etag = match self.store_cert(&key, bundle.clone()).await {
            Ok(etag) => etag,
            Err(e) => {
                // Serve it here anyway; the other PoPs will order their own.
                tracing::error!(%domain, error = %e, "cannot store the new certificate");
                String::new()
            }
        };
        match self.deploy(domain, &bundle, &etag) {
            Ok(info) => {
                self.counters
                    .orders_succeeded
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(%domain, serial = %info.serial, took = ?started.elapsed(), "certificate obtained");
                Outcome::Deployed
            }
            Err(e) => Outcome::Failed(e),
        }
    }

    /// Writes a new certificate, retrying a few times: losing it would cost another order.
    async fn store_cert(&self, key: &str, bundle: Bytes) -> Result<String, StoreError> {
        let mut attempt = 0;
        loop {
            match self.store.put(key, bundle.clone(), Write::Always).await {
                Ok(etag) => return Ok(etag.unwrap_or_default()),
                Err(e) if attempt < 3 && e.is_retryable() => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The delay before retry number `failures` (1-based): `min` doubled each time, at most `max`.
pub fn backoff(failures: u32, min: Duration, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(32);
    min.saturating_mul(1u32 << doublings.min(31)).min(max)
}

/// Domains of `config` that want an ACME certificate.
pub fn domains_of(config: &crate::config::Config) -> Vec<String> {
    config
        .spaces
        .iter()
        .filter(|s| s.certificate == crate::config::SpaceCert::Acme)
        .filter_map(|s| s.custom_domain.clone())
        .collect()
}

#[cfg(test)]
mod tests;
