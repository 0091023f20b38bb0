//! The PoP's listeners and shared state: plain HTTP, HTTPS (h2 + http/1.1 by ALPN) and the
//! admin listener, with request limits and graceful shutdown.

pub mod admin;
mod answer;
pub mod body;
pub mod cache_status;
pub mod conn;
mod encoding;
pub mod file_send;
pub mod handler;
mod head_memo;
pub mod idle;
pub mod listener;
mod pass_through;
pub mod presign;
pub mod respond;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;

use crate::access_log::RequestLine;
use crate::cache::{Cache, SharedClock, TtlRules};
use crate::config::AccessLog;
use crate::config::{Config, Space};
use crate::metrics::Metrics;
use crate::origin::OriginClient;
use crate::purge::fanout::Fanout;
use crate::purge::journal::Journal;
use crate::routing::Router;

pub use conn::ConnInfo;
use upstream::Upstream;

/// The part of the config a reload (SIGHUP) replaces: spaces, TTLs, tokens, log format.
pub struct Live {
    pub config: Arc<Config>,
    pub router: Router,
    /// Counts reloads: connections remember routes made with this generation's table.
    pub generation: u64,
}

/// What every request shares: config, routing, the cache and the origin client. Built once
/// by [`Edge::new`]; what a reload may change lives in `live`.
pub struct Edge {
    /// The config the PoP started with (listeners, origin, limits: these need a restart).
    pub config: Arc<Config>,
    /// The reloadable part, swapped atomically.
    pub live: ArcSwap<Live>,
    /// Reloads so far: each new `Live` takes the next count as its generation.
    reloads: std::sync::atomic::AtomicU64,
    pub cache: Arc<Cache>,
    /// The origin fills fetch from (and forwarded requests go to).
    pub upstream: Arc<Upstream>,
    pub pop_name: Arc<str>,
    /// The port HTTPS is served on, for redirects.
    pub https_port: Option<u16>,
    /// Where the admin listener listens (known once bound), for `/v1/fleet`.
    pub admin_addr: std::sync::OnceLock<SocketAddr>,
    pub metrics: Arc<Metrics>,
    /// Where purges go beyond this PoP.
    pub fanout: Arc<Fanout>,
    /// Purges applied here, for peers catching up.
    pub journal: Journal,
    /// ACME HTTP-01 answers (with `[acme]`), served on plain HTTP for any host.
    pub acme_challenges: Option<Arc<crate::tls::acme::challenge::Challenges>>,
    /// The PoP's TLS state (certificates by SNI, ACME), for metrics.
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// The config file as last loaded (the live config adds the API's spaces to it).
    pub base: ArcSwap<Config>,
    /// Spaces as data the fleet shares.
    pub control: crate::control::ControlPlane,
    /// One application of the shared state at a time.
    pub(crate) applying: std::sync::Mutex<()>,
}

/// What a PoP is built from besides its config.
pub struct EdgeParts {
    /// Where the embedded store listens (it may have been bound to port 0).
    pub embedded_origin: Option<SocketAddr>,
    /// The port HTTPS is served on.
    pub https_port: Option<u16>,
    /// Certificates and ACME, when the PoP has them.
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// Where the time comes from.
    pub clock: SharedClock,
}

impl Edge {
    /// Builds the shared state.
    pub fn new(config: Config, parts: EdgeParts) -> Result<Edge, crate::origin::OriginError> {
        let client = OriginClient::new(&config, parts.embedded_origin)?;
        let metrics = Arc::new(Metrics::new(&config.pop.name));
        metrics.set_spaces(config.spaces.iter().map(|s| s.name.as_str()));
        let purge = &config.purge;
        let fanout = Arc::new(Fanout::new(
            purge.peers.clone(),
            config.parent.as_ref().and_then(|p| p.admin.clone()),
            purge.peer_token.clone(),
            purge.timeout,
            purge.state_dir.clone(),
            purge.ca_roots.clone(),
        ));
        Ok(Edge {
            fanout,
            journal: Journal::open(config.purge.state_dir.clone()),
            reloads: std::sync::atomic::AtomicU64::new(0),
            live: ArcSwap::from_pointee(Live {
                config: Arc::new(config.clone()),
                router: Router::new(&config),
                generation: 0,
            }),
            cache: Arc::new(Cache::new(
                config.cache.memory,
                config.cache.max_memory_object,
                &config.cache.disk_path,
                config.cache.disk,
                parts.clock,
            )),
            upstream: Arc::new(Upstream {
                client,
                metrics: metrics.clone(),
            }),
            pop_name: config.pop.name.as_str().into(),
            metrics,
            https_port: parts.https_port,
            admin_addr: std::sync::OnceLock::new(),
            acme_challenges: parts.tls.as_ref().and_then(|t| t.challenges().cloned()),
            tls: parts.tls,
            base: ArcSwap::from_pointee(config.clone()),
            control: crate::control::ControlPlane::new(&config, parts.embedded_origin),
            applying: std::sync::Mutex::new(()),
            config: Arc::new(config),
        })
    }

    /// The TTLs that apply to `space`.
    pub fn ttl_rules(&self, space: &Space) -> TtlRules {
        let live = self.live.load();
        let cache = &live.config.cache;
        TtlRules {
            space_ttl: space.ttl,
            default_ttl: cache.default_ttl,
            negative_ttl: cache.negative_ttl,
            stale_grace: cache.stale_grace,
            targeted: space.targeted.clone(),
        }
    }
}

impl Edge {
    /// Answers one request, counting it in the metrics and the access log.
    pub async fn serve_request(
        self: &Arc<Self>,
        request: Request<Incoming>,
        conn: &ConnInfo,
    ) -> Response<body::EdgeBody> {
        let format = self.live.load().config.log.access;
        let line = (format != AccessLog::Off).then(|| {
            let line = RequestLine::capture(
                request.method(),
                request.uri(),
                request.version(),
                request.headers(),
            );
            (line, std::time::Instant::now())
        });
        let ((response, outcome), space) = self.handle(request, conn).await;
        // Body bytes: exact for bodies held whole (no header parsing), else as announced.
        let bytes = http_body::Body::size_hint(response.body())
            .exact()
            .or_else(|| {
                response
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0);
        self.metrics.request(
            space.as_deref().map(|s| s.name.as_str()),
            &outcome,
            response.status().as_u16(),
            bytes,
        );
        if let Some((line, started)) = line {
            // The whole field, with the members of caches nearer the origin.
            let cache_status = response
                .headers()
                .get(cache_status::CACHE_STATUS)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            line.log(
                format,
                self.cache.now(),
                conn.client_addr,
                response.status(),
                bytes,
                cache_status,
                started.elapsed(),
            );
        }
        response
    }

    /// The Prometheus text of this PoP.
    pub fn render_metrics(&self) -> String {
        self.record_certificate_expiry();
        self.metrics.render(&self.cache.figures())
    }
}

impl Edge {
    /// Applies a reloaded config: spaces, TTLs, purge tokens and the log format change at once
    /// for new requests; in-flight requests and open connections are untouched. Settings that
    /// need a restart (listeners, origin, cache sizes, limits) are reported and left as they are.
    pub fn reload(&self, new: Config) -> Vec<&'static str> {
        let mut needs_restart = Vec::new();
        let old = &self.config;
        if old.listen != new.listen {
            needs_restart.push("listen");
        }
        if old.origin != new.origin || old.parent != new.parent {
            needs_restart.push("origin");
        }
        if old.cache.memory != new.cache.memory
            || old.cache.disk != new.cache.disk
            || old.cache.disk_path != new.cache.disk_path
        {
            needs_restart.push("cache size");
        }
        if old.limits != new.limits {
            needs_restart.push("limits");
        }
        if old.purge.peers != new.purge.peers {
            needs_restart.push("purge.peers");
        }
        self.base.store(Arc::new(new));
        self.apply_control();
        needs_restart
    }

    /// Swaps in `config` (spaces, TTLs, tokens, log format) with its routing table.
    pub(crate) fn install(&self, config: Config) {
        self.metrics
            .set_spaces(config.spaces.iter().map(|s| s.name.as_str()));
        let router = Router::new(&config);
        let generation = self
            .reloads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        self.live.store(Arc::new(Live {
            config: Arc::new(config),
            router,
            generation,
        }));
    }
}

impl Edge {
    /// Sets `edge_certificate_expiry_seconds{name}` for every certificate served.
    fn record_certificate_expiry(&self) {
        let Some(tls) = &self.tls else { return };
        let now = self.cache.now();
        let seconds_left = |not_after: std::time::SystemTime| match not_after.duration_since(now) {
            Ok(left) => left.as_secs_f64(),
            Err(past) => -past.duration().as_secs_f64(),
        };
        let mut expiries: Vec<(String, std::time::SystemTime)> = tls
            .resolver()
            .store()
            .names()
            .into_iter()
            .filter_map(|(name, key)| Some((name, crate::tls::LeafInfo::of(&key).ok()?.not_after)))
            .collect();
        if let Some(acme) = tls.acme() {
            expiries.extend(
                acme.status()
                    .into_iter()
                    .filter_map(|d| Some((d.domain, d.not_after?))),
            );
        }
        for (name, not_after) in expiries {
            self.metrics
                .gauge(
                    "edge_certificate_expiry_seconds",
                    vec![metrics::Label::new("name", name)],
                )
                .set(seconds_left(not_after));
        }
    }
}
