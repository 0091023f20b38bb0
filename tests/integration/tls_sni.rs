//! Certificate selection by SNI with uploaded certificates: exact names beat wildcards, an
//! unknown name is refused with `unrecognized_name` unless a default is configured, h2 by
//! ALPN, hot reloads under load without a failed request, ACME HTTP-01 answers on plain HTTP
//! for any host.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use edge::config::Config;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{AlertDescription, DigitallySignedStruct, SignatureScheme};

use crate::common::origin::{Route, ScriptedOrigin};
use crate::common::start_edge;

/// Accepts any certificate: these tests look at which one is served, not at trust.
#[derive(Debug)]
struct AnyCert;

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        edge::tls::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What a handshake got: the leaf's names and serial, and the ALPN protocol.
#[derive(Debug)]
struct Seen {
    names: Vec<String>,
    serial: String,
    alpn: Option<Vec<u8>>,
}

/// Handshakes with `addr`, sending `sni` (an IP literal sends none).
async fn peek(addr: SocketAddr, sni: &str, alpn: &[&[u8]]) -> Result<Seen, std::io::Error> {
    let mut config = rustls::ClientConfig::builder_with_provider(edge::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = connector
        .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp)
        .await?;
    let (_, conn) = tls.get_ref();
    let info = edge::tls::LeafInfo::parse(&conn.peer_certificates().unwrap()[0]).unwrap();
    Ok(Seen {
        names: info.dns_names,
        serial: info.serial,
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
    })
}

/// The TLS alert an error carries, if any.
fn alert(e: &std::io::Error) -> Option<AlertDescription> {
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

/// Writes a self-signed certificate for `names` to `<dir>/<stem>.pem` / `.key`.
fn write_cert(dir: &Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
    let generated =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let (cert, key) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    // Written next to the target and renamed, as deploy tools do.
    let temp = dir.join(format!(".{stem}.tmp"));
    std::fs::write(&temp, generated.signing_key.serialize_pem()).unwrap();
    std::fs::rename(&temp, &key).unwrap();
    std::fs::write(&temp, generated.cert.pem()).unwrap();
    std::fs::rename(&temp, &cert).unwrap();
    (cert, key)
}

fn config(origin: &str, tls: &str, extra: &str) -> String {
    format!(
        r#"
[pop]
name = "sni-pop"
[listen]
http = "127.0.0.1:0"
https = "127.0.0.1:0"
[cdn]
domain = "cdn.test"
{tls}
[origin]
kind = "http"
url = "{origin}"
timeout = "5s"
[[space]]
name = "assets"
region = "local"
[[space]]
name = "other"
region = "local"
{extra}
"#
    )
}

fn cert_entry(names: &[&str], files: &(PathBuf, PathBuf), default: bool) -> String {
    format!(
        "[[tls.cert]]\nnames = {names:?}\ncert = \"{}\"\nkey = \"{}\"\ndefault = {default}\n",
        files.0.display(),
        files.1.display()
    )
}

#[tokio::test]
async fn exact_names_beat_wildcards_and_unknown_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wildcard = write_cert(dir.path(), "wild", &["*.local.cdn.test"]);
    let exact = write_cert(dir.path(), "exact", &["assets.local.cdn.test"]);
    let tls = format!(
        "[tls]\n{}{}",
        cert_entry(&["*.local.cdn.test"], &wildcard, false),
        cert_entry(&["assets.local.cdn.test"], &exact, false)
    );
    let edge = start_edge(&config("http://127.0.0.1:9", &tls, "")).await;
    let addr = edge.https_addr.unwrap();

    let seen = peek(addr, "assets.local.cdn.test", &[]).await.unwrap();
    assert_eq!(seen.names, ["assets.local.cdn.test"]);
    let seen = peek(addr, "other.local.cdn.test", &[]).await.unwrap();
    assert_eq!(seen.names, ["*.local.cdn.test"]);
    // A name the wildcard covers is served even without a space (the Host decides 404).
    let seen = peek(addr, "ASSETS.local.cdn.test", &[]).await.unwrap();
    assert_eq!(seen.names, ["assets.local.cdn.test"]);

    let refused = peek(addr, "unknown.example.com", &[]).await.unwrap_err();
    assert_eq!(
        alert(&refused),
        Some(AlertDescription::UnrecognisedName),
        "{refused}"
    );
    // Two labels down is not covered by the wildcard.
    let refused = peek(addr, "a.b.local.cdn.test", &[]).await.unwrap_err();
    assert_eq!(alert(&refused), Some(AlertDescription::UnrecognisedName));
    // No SNI at all (an IP literal) and no default: refused too.
    let refused = peek(addr, "127.0.0.1", &[]).await.unwrap_err();
    assert_eq!(alert(&refused), Some(AlertDescription::HandshakeFailure));
    edge.stop().await;
}

#[tokio::test]
async fn a_default_certificate_answers_unknown_and_missing_names() {
    let dir = tempfile::tempdir().unwrap();
    let fallback = write_cert(dir.path(), "fallback", &["fallback.cdn.test"]);
    let exact = write_cert(dir.path(), "exact", &["assets.local.cdn.test"]);
    let tls = format!(
        "[tls]\n{}{}",
        cert_entry(&[], &fallback, true),
        cert_entry(&["assets.local.cdn.test"], &exact, false)
    );
    let edge = start_edge(&config("http://127.0.0.1:9", &tls, "")).await;
    let addr = edge.https_addr.unwrap();
    assert_eq!(
        peek(addr, "unknown.example.com", &[]).await.unwrap().names,
        ["fallback.cdn.test"]
    );
    assert_eq!(
        peek(addr, "127.0.0.1", &[]).await.unwrap().names,
        ["fallback.cdn.test"]
    );
    assert_eq!(
        peek(addr, "assets.local.cdn.test", &[])
            .await
            .unwrap()
            .names,
        ["assets.local.cdn.test"]
    );
    edge.stop().await;
}

#[tokio::test]
async fn alpn_negotiates_h2_then_http11_on_uploaded_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let wildcard = write_cert(dir.path(), "wild", &["*.local.cdn.test"]);
    let tls = format!(
        "[tls]\n{}",
        cert_entry(&["*.local.cdn.test"], &wildcard, false)
    );
    let edge = start_edge(&config("http://127.0.0.1:9", &tls, "")).await;
    let addr = edge.https_addr.unwrap();
    let both: &[&[u8]] = &[b"h2", b"http/1.1"];
    let seen = peek(addr, "assets.local.cdn.test", both).await.unwrap();
    assert_eq!(seen.alpn.as_deref(), Some(&b"h2"[..]));
    let seen = peek(addr, "assets.local.cdn.test", &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(seen.alpn.as_deref(), Some(&b"http/1.1"[..]));
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploaded_certificates_reload_under_load_without_a_failed_request() {
    let origin = ScriptedOrigin::start().await;
    origin.route(
        "/ok.txt",
        Route::ok("ok").header("cache-control", "max-age=60"),
    );
    let dir = tempfile::tempdir().unwrap();
    let files = write_cert(dir.path(), "assets", &["assets.local.cdn.test"]);
    let tls = format!(
        "[tls]\nwatch_interval = \"0s\"\n{}",
        cert_entry(&["assets.local.cdn.test"], &files, false)
    );
    let text = config(&origin.url(), &tls, "");
    let config_value = Config::parse(&text).unwrap();
    let edge = Arc::new(start_edge(&text).await);
    let addr = edge.https_addr.unwrap();
    let first = peek(addr, "assets.local.cdn.test", &[])
        .await
        .unwrap()
        .serial;

    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = tokio::task::JoinSet::new();
    for worker in 0..4 {
        let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
        load.spawn(async move {
            // Half the workers reuse one connection, half open a new one per request.
            let keep_alive = worker % 2 == 0;
            let build = || {
                reqwest::Client::builder()
                    .danger_accept_invalid_certs(true)
                    .resolve("assets.local.cdn.test", addr)
                    .no_proxy()
                    .build()
                    .unwrap()
            };
            let mut client = build();
            while !stop.load(Ordering::Relaxed) {
                if !keep_alive {
                    client = build();
                }
                let url = format!("https://assets.local.cdn.test:{}/ok.txt", addr.port());
                let outcome = match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => r.text().await.map_err(|e| e.to_string()),
                    Ok(r) => Err(format!("status {}", r.status())),
                    Err(e) => Err(e.to_string()),
                };
                match outcome {
                    Ok(text) if text == "ok" => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        eprintln!("failed request during reload: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }

    let mut serials = vec![first.clone()];
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        write_cert(dir.path(), "assets", &["assets.local.cdn.test"]);
        let report = edge.reload_certificates(&config_value).unwrap();
        assert_eq!(report.loaded, 1);
        assert!(report.kept.is_empty(), "{:?}", report.kept);
        let now = peek(addr, "assets.local.cdn.test", &[])
            .await
            .unwrap()
            .serial;
        assert!(!serials.contains(&now), "the reload serves the new file");
        serials.push(now);
    }

    // A broken file keeps the previous certificate and says why.
    std::fs::write(&files.0, "-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    let report = edge.reload_certificates(&config_value).unwrap();
    assert_eq!(report.loaded, 0);
    assert_eq!(report.kept.len(), 1);
    assert!(report.kept[0].contains("assets.pem"), "{:?}", report.kept);
    let kept = peek(addr, "assets.local.cdn.test", &[])
        .await
        .unwrap()
        .serial;
    assert_eq!(&kept, serials.last().unwrap());
    tokio::time::sleep(Duration::from_millis(150)).await;

    stop.store(true, Ordering::Relaxed);
    while load.join_next().await.is_some() {}
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(done.load(Ordering::Relaxed) > 20, "too few requests");
    Arc::try_unwrap(edge).ok().unwrap().stop().await;
}

#[tokio::test]
async fn changed_certificate_files_are_picked_up_without_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_cert(dir.path(), "assets", &["assets.local.cdn.test"]);
    let tls = format!(
        "[tls]\nwatch_interval = \"100ms\"\n{}",
        cert_entry(&["assets.local.cdn.test"], &files, false)
    );
    let edge = start_edge(&config("http://127.0.0.1:9", &tls, "")).await;
    let addr = edge.https_addr.unwrap();
    let first = peek(addr, "assets.local.cdn.test", &[])
        .await
        .unwrap()
        .serial;
    // Make sure the modification time moves even on coarse clocks.
    tokio::time::sleep(Duration::from_millis(20)).await;
    write_cert(dir.path(), "assets", &["assets.local.cdn.test"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = peek(addr, "assets.local.cdn.test", &[])
            .await
            .unwrap()
            .serial;
        if now != first {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    edge.stop().await;
}

#[tokio::test]
async fn http01_answers_are_served_on_plain_http_for_any_host() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("acme");
    std::fs::create_dir_all(cache.join("challenges/http-01")).unwrap();
    std::fs::write(
        cache.join("challenges/http-01/tok_EN-123"),
        "tok_EN-123.thumbprint",
    )
    .unwrap();
    let acme = format!(
        "[tls]\nself_signed = true\n[acme]\ndirectory = \"https://127.0.0.1:9/dir\"\ncache_dir = \"{}\"\n",
        cache.display()
    );
    let edge = start_edge(&config(
        "http://127.0.0.1:9",
        &acme,
        "http = \"redirect\"\ncustom_domain = \"other.example.com\"",
    ))
    .await;
    let http = edge.http_addr.unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    for host in ["unknown.example.net", "other.example.com"] {
        let response = client
            .get(format!(
                "http://{}/.well-known/acme-challenge/tok_EN-123",
                http
            ))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{host}");
        assert_eq!(response.text().await.unwrap(), "tok_EN-123.thumbprint");
    }
    // Unknown tokens: 404 for an unknown host, and the redirect space still redirects others.
    let response = client
        .get(format!("http://{http}/.well-known/acme-challenge/nope"))
        .header("host", "unknown.example.net")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = client
        .get(format!("http://{http}/img.png"))
        .header("host", "other.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 308);
    edge.stop().await;
}

/// An `edge serve` child process, killed on drop.
struct EdgeProcess {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for EdgeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `edge serve` with `config` (HTTPS on port 0) and reads the bound address from its
/// start-up log line.
fn spawn_edge(config: &str) -> (EdgeProcess, SocketAddr) {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_edge"))
        .args(["serve", "--config"])
        .arg(&path)
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let addr = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            panic!(
                "edge serve did not log its HTTPS address ({:?}):\n{}",
                child.try_wait(),
                seen.join("\n")
            );
        };
        if let Some(rest) = line.split("https_addr=Some(").nth(1)
            && let Some(addr) = rest.split(')').next().and_then(|a| a.parse().ok())
        {
            break addr;
        }
        seen.push(line);
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in rx {});
    (EdgeProcess { child, _dir: dir }, addr)
}

#[tokio::test]
async fn sighup_reloads_uploaded_certificates_in_edge_serve() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_cert(dir.path(), "assets", &["assets.local.cdn.test"]);
    let (edge, addr) = spawn_edge(&format!(
        "[listen]\nhttps = \"127.0.0.1:0\"\n[cdn]\ndomain = \"cdn.test\"\n[tls]\nwatch_interval = \"0s\"\n{}[origin]\nkind = \"http\"\nurl = \"http://127.0.0.1:9\"\n[[space]]\nname = \"assets\"\n",
        cert_entry(&["assets.local.cdn.test"], &files, false)
    ));
    let first = peek(addr, "assets.local.cdn.test", &[])
        .await
        .unwrap()
        .serial;
    write_cert(dir.path(), "assets", &["assets.local.cdn.test"]);
    // Without the signal (and with the watcher off) nothing changes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        peek(addr, "assets.local.cdn.test", &[])
            .await
            .unwrap()
            .serial,
        first
    );
    let status = std::process::Command::new("kill")
        .args(["-HUP", &edge.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while peek(addr, "assets.local.cdn.test", &[])
        .await
        .unwrap()
        .serial
        == first
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "SIGHUP did not reload"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
