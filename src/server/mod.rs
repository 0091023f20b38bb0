//! The PoP's listeners and shared state: plain HTTP, HTTPS (h2 + http/1.1 by ALPN) and the
//! admin listener, with request limits and graceful shutdown.

pub mod admin;
pub mod body;
pub mod fetch;
pub mod handler;
pub mod listener;
pub mod respond;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::cache::{Cache, TtlRules};
use crate::config::{Config, Space};
use crate::origin::OriginClient;
use crate::routing::Router;

pub use handler::ConnInfo;

/// What every request shares: config, routing, the cache and the origin client.
pub struct Edge {
    pub config: Arc<Config>,
    pub router: Router,
    pub cache: Cache,
    pub origin: OriginClient,
    pub pop_name: Arc<str>,
    /// The port HTTPS is served on, for redirects.
    pub https_port: Option<u16>,
    /// ACME HTTP-01 answers (with `[acme]`), served on plain HTTP for any host.
    pub acme_challenges: Option<Arc<crate::tls::acme::challenge::Challenges>>,
}

impl Edge {
    /// Builds the shared state; `embedded_origin` is where the embedded store listens.
    pub fn new(
        config: Config,
        embedded_origin: Option<SocketAddr>,
        https_port: Option<u16>,
    ) -> Result<Edge, crate::origin::OriginError> {
        let origin = OriginClient::new(&config, embedded_origin)?;
        Ok(Edge {
            router: Router::new(&config),
            cache: Cache::new(config.cache.memory, config.cache.max_memory_object),
            origin,
            pop_name: config.pop.name.as_str().into(),
            https_port,
            acme_challenges: None,
            config: Arc::new(config),
        })
    }

    /// The TTLs that apply to `space`.
    pub fn ttl_rules(&self, space: &Space) -> TtlRules {
        TtlRules {
            space_ttl: space.ttl,
            default_ttl: self.config.cache.default_ttl,
            negative_ttl: self.config.cache.negative_ttl,
            stale_grace: self.config.cache.stale_grace,
        }
    }
}
