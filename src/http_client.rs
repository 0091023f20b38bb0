//! The one way the edge builds an outbound HTTP client: towards the origin, purge peers and
//! parents, the ACME directory and the ACME state bucket. TCP_NODELAY always (small
//! request/response exchanges otherwise wait on Nagle and delayed ACKs), a connect timeout,
//! rustls with our crypto provider, plain `http://` allowed beside `https://`, pooled
//! connections.

use std::time::Duration;

use http_body::Body;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::ServerName;

/// A pooled client over TCP or TLS.
pub type HttpsClient<B> = Client<HttpsConnector<HttpConnector>, B>;

/// Settings of one outbound client; [`ClientBuilder::build`] makes it.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    tls: rustls::ClientConfig,
    server_name: Option<ServerName<'static>>,
    connect_timeout: Duration,
    keepalive: Option<Duration>,
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: usize,
    http2: bool,
}

impl ClientBuilder {
    /// A client trusting what `tls` trusts, giving up on connects after `connect_timeout`.
    pub fn new(tls: rustls::ClientConfig, connect_timeout: Duration) -> ClientBuilder {
        ClientBuilder {
            tls,
            server_name: None,
            connect_timeout,
            keepalive: None,
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: usize::MAX,
            http2: false,
        }
    }

    /// Checks every server's certificate against `name` rather than the host of the URL
    /// (an origin reached by address whose certificate names it).
    pub fn server_name(mut self, name: Option<ServerName<'static>>) -> ClientBuilder {
        self.server_name = name;
        self
    }

    /// TCP keep-alive probes on idle pooled connections.
    pub fn keepalive(mut self, interval: Duration) -> ClientBuilder {
        self.keepalive = Some(interval);
        self
    }

    /// How long an idle connection stays pooled, and how many per host.
    pub fn pool(mut self, idle_timeout: Duration, max_idle_per_host: usize) -> ClientBuilder {
        self.pool_idle_timeout = idle_timeout;
        self.pool_max_idle_per_host = max_idle_per_host;
        self
    }

    /// Offers HTTP/2 by ALPN beside HTTP/1.1.
    pub fn http2(mut self) -> ClientBuilder {
        self.http2 = true;
        self
    }

    /// The client, for request bodies of type `B`.
    pub fn build<B>(self) -> HttpsClient<B>
    where
        B: Body + Send,
        B::Data: Send,
    {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.connect_timeout));
        http.set_keepalive(self.keepalive);
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(self.tls)
            .https_or_http();
        let builder = match self.server_name {
            Some(name) => {
                builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
            }
            None => builder,
        };
        let connector = if self.http2 {
            builder.enable_http1().enable_http2().wrap_connector(http)
        } else {
            builder.enable_http1().wrap_connector(http)
        };
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(self.pool_idle_timeout)
            .pool_max_idle_per_host(self.pool_max_idle_per_host)
            .build(connector)
    }
}
