//! Test harness: in-process servers on port 0, users, signed raw requests, s3cmd configs.

#![allow(dead_code)]

pub mod aws;
pub mod child;
pub mod raw;
pub mod sign;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use origin::{Store, StoreConfig, UserConfig};

/// Held by the heavy tests (crash, 1 GiB streaming) so they never run at the same time.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A user of the test stores.
#[derive(Debug, Clone, Copy)]
pub struct User {
    pub id: &'static str,
    pub access_key: &'static str,
    pub secret_key: &'static str,
}

pub const ALICE: User = User {
    id: "alice",
    access_key: "AKIAALICE",
    secret_key: "alice-secret-key",
};
pub const BOB: User = User {
    id: "bob",
    access_key: "AKIABOB",
    secret_key: "bob-secret-key",
};

pub fn users() -> Vec<UserConfig> {
    [ALICE, BOB]
        .iter()
        .map(|u| UserConfig {
            id: u.id.into(),
            display_name: format!("{} display", u.id),
            email: Some(format!("{}@example.com", u.id)),
            access_key: u.access_key.into(),
            secret_key: u.secret_key.into(),
        })
        .collect()
}

pub fn config(dir: &Path, domain: Option<&str>) -> StoreConfig {
    StoreConfig {
        data_dir: dir.to_path_buf(),
        domain: domain.map(str::to_owned),
        region: "us-east-1".into(),
        users: users(),
        lifecycle: origin::LifecycleConfig::default(),
        log_flush: std::time::Duration::from_secs(1),
    }
}

/// A store served in-process until dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub store: Store,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with_domain(None).await
    }

    pub async fn start_with_domain(domain: Option<&str>) -> Server {
        Self::start_full(domain, origin::ServeLimits::default(), Default::default()).await
    }

    pub async fn start_with_limits(limits: origin::ServeLimits) -> Server {
        Self::start_full(None, limits, Default::default()).await
    }

    /// A store whose lifecycle worker runs every `interval` with days of `day`.
    pub async fn start_with_lifecycle(interval: Duration, day: Duration) -> Server {
        let lifecycle = origin::LifecycleConfig { interval, day };
        Self::start_full(None, origin::ServeLimits::default(), lifecycle).await
    }

    async fn start_full(
        domain: Option<&str>,
        limits: origin::ServeLimits,
        lifecycle: origin::LifecycleConfig,
    ) -> Server {
        Self::start_serving(domain, limits, lifecycle, None).await
    }

    /// A store served over HTTPS with a certificate for `localhost` and 127.0.0.1, whose PEM
    /// is at `<dir>/ca.pem` (HTTP/2 and HTTP/1.1 by ALPN).
    pub async fn start_tls() -> (Server, PathBuf) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let server = Self::start_serving(
            None,
            origin::ServeLimits::default(),
            origin::LifecycleConfig::default(),
            Some(std::sync::Arc::new(config)),
        )
        .await;
        let ca = server.dir.path().join("ca.pem");
        std::fs::write(&ca, cert.cert.pem()).unwrap();
        (server, ca)
    }

    async fn start_serving(
        domain: Option<&str>,
        limits: origin::ServeLimits,
        lifecycle: origin::LifecycleConfig,
        tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    ) -> Server {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig {
            lifecycle,
            ..config(dir.path(), domain)
        })
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let s = store.clone();
        tokio::spawn(async move {
            s.serve_full(listener, limits, tls, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Server {
            addr,
            store,
            dir,
            shutdown: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Signed request as `user` (None: anonymous) with a body.
    pub async fn request(
        &self,
        user: Option<User>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Resp {
        let body = body.into();
        let hash = sign::sha256_hex(&body);
        self.request_with_hash(user, method, path, headers, body, &hash)
            .await
    }

    /// Like `request` with an explicit `x-amz-content-sha256`.
    pub async fn request_with_hash(
        &self,
        user: Option<User>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        payload_hash: &str,
    ) -> Resp {
        let mut all: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        if let Some(user) = user {
            all = sign::sign_headers(user, method, &self.url(path), &all, payload_hash);
        }
        send(self.addr, method, path, &all, body).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A response, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `<Code>` of an S3 error body.
    pub fn code(&self) -> String {
        xml_field(&self.text(), "Code").unwrap_or_default()
    }
}

pub fn xml_field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(xml[start..end].to_owned())
}

pub fn xml_fields(xml: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = xml;
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    while let Some(s) = rest.find(&open) {
        let after = &rest[s + open.len()..];
        let Some(e) = after.find(&close) else { break };
        out.push(after[..e].to_owned());
        rest = &after[e + close.len()..];
    }
    out
}

/// One HTTP/1.1 request over a fresh connection; the path is sent exactly as given.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Bytes,
) -> Resp {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        if !k.eq_ignore_ascii_case("host") {
            req = req.header(k.as_str(), v.as_str());
        }
    }
    let req = req.body(Full::new(body)).unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}

/// An s3cmd configured for one user of a server.
pub struct S3cmd {
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl S3cmd {
    pub fn new(server: &Server, user: User) -> S3cmd {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("s3cfg");
        std::fs::write(
            &config,
            format!(
                "[default]\naccess_key = {ak}\nsecret_key = {sk}\nhost_base = {addr}\nhost_bucket = {addr}\n\
                 use_https = False\nsignature_v2 = False\nbucket_location = us-east-1\ncheck_ssl_certificate = False\n\
                 progress_meter = False\n",
                ak = user.access_key,
                sk = user.secret_key,
                addr = server.addr
            ),
        )
        .unwrap();
        S3cmd { config, _dir: dir }
    }

    /// Runs s3cmd; returns (success, stdout + stderr).
    pub async fn run(&self, args: &[&str]) -> (bool, String) {
        let out = tokio::process::Command::new("s3cmd")
            .arg("-c")
            .arg(&self.config)
            .arg("--no-progress")
            .args(
                std::env::var_os("ORIGIN_S3CMD_DEBUG").map(|v| if v == "v" { "-v" } else { "-d" }),
            )
            .args(args)
            .output()
            .await
            .expect("s3cmd is installed (apt-get install s3cmd)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Runs s3cmd and insists it succeeds.
    pub async fn ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args).await;
        assert!(ok, "s3cmd {args:?} failed:\n{text}");
        text
    }
}
