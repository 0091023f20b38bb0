//! A private pebble ACME server and challtestsrv mock DNS per test (free ports, a fresh temp
//! dir, killed on drop), as /work/shared/docs/acme-testing.md describes; PoPs listening on the
//! ports pebble dials, each on its own loopback address; TLS clients trusting only pebble.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge::config::Config;
use edge::{Listeners, Running};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};

/// A child process killed (and reaped) on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// pebble + pebble-challtestsrv.
pub struct Pebble {
    pub dir: tempfile::TempDir,
    /// The ACME directory URL.
    pub directory: String,
    /// The certificate of pebble's own HTTPS listener (for `acme.ca_roots`).
    pub listener_cert: PathBuf,
    management: u16,
    dns_management: u16,
    log: PathBuf,
    children: Vec<Killed>,
}

/// A port free on 127.0.0.1 right now (pebble binds it itself a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(program: &str, args: &[&str], env: &[(&str, &str)], log: &Path) -> Killed {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let err = out.try_clone().unwrap();
    match Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
    {
        Ok(child) => Killed(child),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{program}` is not installed; the ACME tests need pebble: apt-get install pebble \
             (scripts/test.sh installs it)"
        ),
        Err(e) => panic!("cannot start {program}: {e}"),
    }
}

/// Options of one pebble instance.
pub struct PebbleOptions {
    /// Where pebble connects for HTTP-01 (a PoP's plain HTTP port).
    pub http_port: u16,
    /// Where pebble connects for TLS-ALPN-01 (a PoP's HTTPS port).
    pub tls_port: u16,
    /// `certificateValidityPeriod` in seconds (pebble's default is 5 years).
    pub validity_secs: Option<u64>,
}

impl Pebble {
    /// Starts challtestsrv and pebble and waits until the directory answers.
    pub async fn start(options: PebbleOptions) -> Pebble {
        // The ports are picked free and bound by pebble a moment later: another process may
        // take one in between, so a start whose process exits is tried again.
        for _ in 0..3 {
            if let Some(pebble) = Self::try_start(&options).await {
                return pebble;
            }
        }
        panic!("pebble exited three times at start (see the logs above)");
    }

    async fn try_start(options: &PebbleOptions) -> Option<Pebble> {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("pebble.log");
        let generated =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .unwrap();
        let listener_cert = dir.path().join("pebble-cert.pem");
        let listener_key = dir.path().join("pebble-key.pem");
        std::fs::write(&listener_cert, generated.cert.pem()).unwrap();
        std::fs::write(&listener_key, generated.signing_key.serialize_pem()).unwrap();

        let (acme_port, management, dns, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{acme_port}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": listener_cert,
                "privateKey": listener_key,
                "httpPort": options.http_port,
                "tlsPort": options.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        if let Some(validity) = options.validity_secs {
            config["pebble"]["certificateValidityPeriod"] = validity.into();
        }
        let config_path = dir.path().join("pebble-config.json");
        std::fs::write(&config_path, config.to_string()).unwrap();

        let dns_addr = format!("127.0.0.1:{dns}");
        let dns_management_addr = format!("127.0.0.1:{dns_management}");
        let challtestsrv = spawn(
            "pebble-challtestsrv",
            &[
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-dns01",
                &dns_addr,
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                &dns_management_addr,
            ],
            &[],
            &dir.path().join("challtestsrv.log"),
        );
        let pebble = spawn(
            "pebble",
            &[
                "-config",
                config_path.to_str().unwrap(),
                "-dnsserver",
                &dns_addr,
            ],
            &[
                ("PEBBLE_VA_NOSLEEP", "1"),
                ("PEBBLE_WFE_NONCEREJECT", "0"),
                ("PEBBLE_AUTHZREUSE", "0"),
            ],
            &log,
        );
        let mut pebble = Pebble {
            directory: format!("https://127.0.0.1:{acme_port}/dir"),
            listener_cert,
            management,
            dns_management,
            log,
            children: vec![challtestsrv, pebble],
            dir,
        };
        let client = pebble.https_client();
        // Generous: pebble makes its RSA issuers at start, slow on a loaded machine.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let dir_ok = client
                .get(&pebble.directory)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            let dns_ok = reqwest::Client::new()
                .post(format!(
                    "http://127.0.0.1:{}/clear-request-history",
                    pebble.dns_management
                ))
                .body(r#"{"host":"","type":"DNS"}"#)
                .send()
                .await
                .is_ok();
            if dir_ok && dns_ok {
                return Some(pebble);
            }
            if pebble
                .children
                .iter_mut()
                .any(|c| c.0.try_wait().ok().flatten().is_some())
            {
                eprintln!("pebble or challtestsrv exited:\n{}", pebble.all_logs());
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "pebble did not start:\n{}",
                pebble.all_logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn all_logs(&self) -> String {
        let challtestsrv =
            std::fs::read_to_string(self.dir.path().join("challtestsrv.log")).unwrap_or_default();
        format!("{}\n--- challtestsrv ---\n{challtestsrv}", self.log_text())
    }

    /// A client trusting pebble's listener certificate.
    fn https_client(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.listener_cert).unwrap();
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// Makes the mock DNS answer `host` with `ip` (only).
    pub async fn add_a(&self, host: &str, ip: IpAddr) {
        let cleared = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/clear-a", self.dns_management))
            .body(serde_json::json!({ "host": host }).to_string())
            .send()
            .await
            .unwrap();
        assert!(cleared.status().is_success(), "clear-a {host}");
        let response = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/add-a", self.dns_management))
            .body(serde_json::json!({"host": host, "addresses": [ip.to_string()]}).to_string())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "add-a {host}");
    }

    /// The root pebble issues under (new on every start).
    pub async fn root(&self) -> CertificateDer<'static> {
        let pem = self
            .https_client()
            .get(format!("https://127.0.0.1:{}/roots/0", self.management))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        CertificateDer::from_pem_slice(&pem).unwrap()
    }

    /// What pebble logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many certificates pebble issued so far (from its log).
    pub fn issued(&self) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains("Issued certificate serial"))
            .count()
    }

    /// How many orders pebble created so far (from its log).
    pub fn orders(&self) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains("Added order"))
            .count()
    }
}

/// Listeners on the same port at several loopback addresses (`ips[i]` gets `listeners[i]`).
pub async fn same_port(ips: &[Ipv4Addr]) -> (u16, Vec<TcpListener>) {
    for _ in 0..50 {
        let first = TcpListener::bind((ips[0], 0)).await.unwrap();
        let port = first.local_addr().unwrap().port();
        let mut listeners = vec![first];
        for ip in &ips[1..] {
            match TcpListener::bind((*ip, port)).await {
                Ok(l) => listeners.push(l),
                Err(_) => break,
            }
        }
        if listeners.len() == ips.len() {
            return (port, listeners);
        }
    }
    panic!("no port free on all of {ips:?}");
}

/// Starts a PoP on already-bound plain HTTP and HTTPS listeners (and the embedded origin, if
/// configured, on 127.0.0.1:0).
pub async fn start_pop(config: &str, http: TcpListener, https: TcpListener) -> Running {
    let config = Config::parse(config).expect("test config is valid");
    let origin = match config.origin.kind {
        edge::config::OriginKind::Embedded(_) => {
            Some(TcpListener::bind("127.0.0.1:0").await.unwrap())
        }
        _ => None,
    };
    let listeners = Listeners {
        http: Some(http),
        https: Some(https),
        admin: None,
        origin,
    };
    edge::start(config, listeners).await.expect("edge starts")
}

/// The `[acme]` section for `pebble`.
pub fn acme_section(pebble: &Pebble, challenge: &str, store: &str) -> String {
    format!(
        r#"
[acme]
directory = "{directory}"
ca_roots = "{roots}"
challenge = "{challenge}"
{store}
poll_interval = "1s"
retry_min = "1s"
retry_max = "4s"
lease = "60s"
"#,
        directory = pebble.directory,
        roots = pebble.listener_cert.display(),
    )
}

/// What a handshake saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub serial: String,
    pub dns_names: Vec<String>,
    pub chain_len: usize,
}

/// A TLS handshake with `addr` naming `domain`, verified against `root` only.
pub async fn handshake(
    addr: SocketAddr,
    domain: &str,
    root: &CertificateDer<'static>,
) -> Result<Served, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(edge::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from(domain.to_owned()).unwrap();
    let tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let chain = tls.get_ref().1.peer_certificates().unwrap_or_default();
    let info = edge::tls::LeafInfo::parse(&chain[0]).map_err(|e| e.to_string())?;
    Ok(Served {
        serial: info.serial,
        dns_names: info.dns_names,
        chain_len: chain.len(),
    })
}

/// Waits (up to `limit`) until `check` holds, polling every 100 ms.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A loopback address (127.0.0.0/8 is all local on Linux).
pub fn loopback(a: u8, b: u8, c: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, a, b, c)
}
