//! Shared helpers: real servers on 127.0.0.1:0 and real clients.

pub mod ceph;
pub mod origin;
pub mod pebble;
pub mod process;
pub mod s3;

use std::net::SocketAddr;
use std::time::Duration;

use edge::config::Config;
use edge::{Listeners, Running};
use tokio::net::TcpListener;

/// The edge config used by most tests, in front of an HTTP origin at `origin`.
pub fn http_origin_config(origin: &str, extra: &str) -> String {
    format!(
        r#"
[pop]
name = "test-pop"
[listen]
http = "127.0.0.1:0"
https = "127.0.0.1:0"
admin = "127.0.0.1:0"
[tls]
self_signed = true
[cache]
memory = "256MiB"
default_ttl = "1h"
stale_grace = "0s"
[origin]
kind = "http"
url = "{origin}"
timeout = "5s"
connect_timeout = "1s"
[purge]
token = "test-purge-token"
{extra}
"#
    )
}

/// A space named `assets` with `ttl` (if any) and extra keys.
pub fn space(name: &str, extra: &str) -> String {
    format!("\n[[space]]\nname = \"{name}\"\nregion = \"local\"\n{extra}\n")
}

/// A PoP started by a test, with the temporary disk-tier directory it owns (if the config
/// named none). Derefs to `Running`.
pub struct TestEdge {
    running: Running,
    dir: Option<tempfile::TempDir>,
}

impl std::ops::Deref for TestEdge {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.running
    }
}

impl TestEdge {
    /// Stops the PoP gracefully (pending disk writes land), then removes its temporary dir.
    pub async fn stop(self) {
        let TestEdge { running, dir } = self;
        running.stop().await;
        drop(dir);
    }
}

/// Starts a PoP on port 0 for every listener the config has. Unless the config names a
/// `disk_path`, the disk tier lives in a temporary directory of its own.
pub async fn start_edge(config_text: &str) -> TestEdge {
    let mut config = Config::parse(config_text).expect("test config is valid");
    let dir = if config_text.contains("disk_path") {
        None
    } else {
        let dir = tempfile::tempdir().expect("temporary dir");
        config.cache.disk_path = dir.path().to_owned();
        Some(dir)
    };
    let running = start_on(config).await;
    TestEdge { running, dir }
}

/// [`start_edge`] on a clock the test moves by hand (freshness, ages and purge times read
/// it), so tests make entries stale without sleeping.
pub async fn start_edge_with_clock(
    config_text: &str,
) -> (TestEdge, std::sync::Arc<edge::cache::clock::ManualClock>) {
    let mut config = Config::parse(config_text).expect("test config is valid");
    let dir = tempfile::tempdir().expect("temporary dir");
    config.cache.disk_path = dir.path().to_owned();
    let clock = edge::cache::clock::ManualClock::new();
    let running = start_on_with_clock(config, clock.clone()).await;
    (
        TestEdge {
            running,
            dir: Some(dir),
        },
        clock,
    )
}

/// Like [`start_edge`], on `clock` (tests move a `ManualClock` instead of sleeping).
pub async fn start_edge_on_clock(config_text: &str, clock: edge::cache::SharedClock) -> TestEdge {
    let mut config = Config::parse(config_text).expect("test config is valid");
    let dir = tempfile::tempdir().expect("temporary dir");
    config.cache.disk_path = dir.path().to_owned();
    let running = start_on_with_clock(config, clock).await;
    TestEdge {
        running,
        dir: Some(dir),
    }
}

/// Starts a PoP from a parsed config on port 0 for every listener it has.
pub async fn start_on(config: Config) -> Running {
    start_on_with_clock(config, edge::cache::clock::system()).await
}

/// [`start_on`], reading the time from `clock`.
pub async fn start_on_with_clock(config: Config, clock: edge::cache::SharedClock) -> Running {
    let bind = |on: bool| async move {
        if on {
            Some(TcpListener::bind("127.0.0.1:0").await.unwrap())
        } else {
            None
        }
    };
    let listeners = Listeners {
        http: bind(config.listen.http.is_some()).await,
        https: bind(config.listen.https.is_some()).await,
        admin: bind(config.listen.admin.is_some()).await,
        origin: bind(matches!(
            config.origin.kind,
            edge::config::OriginKind::Embedded(_)
        ))
        .await,
    };
    edge::start_with_clock(config, listeners, clock)
        .await
        .expect("edge starts")
}

/// A reqwest client that resolves `*.local.cdn.localhost` and the given hosts to `addr`.
pub fn client_for(addrs: &[SocketAddr], hosts: &[&str]) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(60))
        .no_proxy();
    for host in hosts {
        for addr in addrs {
            builder = builder.resolve(host, *addr);
        }
    }
    builder.build().unwrap()
}

/// The edge URL of `space` on `running`'s plain HTTP listener.
pub fn edge_url(running: &Running, space: &str, path: &str) -> String {
    format!(
        "http://{space}.local.cdn.localhost:{}{path}",
        running.http_addr.unwrap().port()
    )
}

/// `Cache-Status` of a response.
pub fn cache_status(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The `ttl=` figure in a Cache-Status value.
pub fn ttl_of(status: &str) -> Option<i64> {
    status
        .split(';')
        .find_map(|p| p.trim().strip_prefix("ttl=")?.parse().ok())
}

/// A client that resolves `<space>.local.cdn.localhost` (and `extra` hosts) to loopback.
pub fn client(spaces: &[&str], extra: &[&str]) -> reqwest::Client {
    let mut hosts: Vec<String> = spaces
        .iter()
        .map(|s| format!("{s}.local.cdn.localhost"))
        .collect();
    hosts.extend(extra.iter().map(|h| h.to_string()));
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    client_for(&["127.0.0.1:0".parse().unwrap()], &hosts)
}

/// Sends raw bytes on a new connection and returns everything read until the server closes
/// or `timeout` passes (for requests a well-behaved client library refuses to send).
pub async fn raw_request(addr: SocketAddr, request: &[u8], timeout: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(timeout, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw HTTP/1.1 response.
pub fn raw_status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
