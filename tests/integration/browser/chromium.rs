//! Driving headless Chromium: one page load in a fresh profile, its verdict reported back to
//! the test over loopback HTTP, Chromium stopped afterwards.

use std::convert::Infallible;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Debian's Chromium (package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Headless Chromium on a machine without a GPU, a sandbox-capable kernel or background
/// services, and with no traffic but the page's own.
pub const HEADLESS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// How long one page load may take, Chromium's start included (a few seconds on an idle
/// machine; 20 s ran out on a 2-core machine running the rest of the suite beside two
/// builds).
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the page reports, over plain HTTP on loopback (a potentially trustworthy origin, so
/// not mixed content): what it is waiting for (`/stage`) and its verdict (`/verdict`). The
/// test waits for the verdict in real time: Chromium's virtual time (`--virtual-time-budget`
/// with `--dump-dom`) does not wait for the media pipeline.
pub struct Reports {
    pub url: String,
    received: mpsc::UnboundedReceiver<(String, String)>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Reports {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Reports {
    pub async fn start() -> Reports {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (sender, received) = mpsc::unbounded_channel();
        let server = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let sender = sender.clone();
                let service = service_fn(move |request: Request<Incoming>| {
                    let sender = sender.clone();
                    async move {
                        let kind = request.uri().path().trim_start_matches('/').to_owned();
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let _ = sender.send((kind, String::from_utf8_lossy(&body).into_owned()));
                        let response = Response::builder()
                            .status(204)
                            .header("access-control-allow-origin", "*")
                            .body(Empty::<Bytes>::new())
                            .unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Reports {
            url,
            received,
            server,
        }
    }

    /// Waits for the page's verdict; `Err` names what the page was last waiting for.
    async fn verdict(&mut self) -> Result<String, String> {
        let mut stage = "nothing: the page never reported".to_owned();
        let wait = async {
            while let Some((kind, text)) = self.received.recv().await {
                if kind == "verdict" {
                    return Some(text);
                }
                stage = text;
            }
            None
        };
        match tokio::time::timeout(LOAD_TIMEOUT, wait).await {
            Ok(Some(verdict)) => Ok(verdict),
            _ => Err(stage),
        }
    }
}

/// Loads `page` in headless Chromium with a new profile (an empty browser cache) and returns
/// the page's verdict.
pub async fn load(
    page: &str,
    spki_hash: &str,
    dir: &Path,
    name: &str,
    reports: &mut Reports,
) -> String {
    while reports.received.try_recv().is_ok() {}
    let profile = dir.join(format!("profile-{name}"));
    let log_path = dir.join(format!("chromium-{name}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let started = Instant::now();
    let mut chromium = tokio::process::Command::new(CHROMIUM)
        .args(HEADLESS)
        .arg("--disable-quic")
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--ignore-certificate-errors-spki-list={spki_hash}"))
        .arg(page)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("Chromium starts");
    let verdict = reports.verdict().await;
    stop(&mut chromium).await;
    match verdict {
        Ok(verdict) => {
            eprintln!("{name} load ({:?}): {verdict}", started.elapsed());
            verdict
        }
        Err(stage) => panic!(
            "the {name} load gave no verdict within {LOAD_TIMEOUT:?}; the page was waiting for \
             {stage}. Chromium's output:\n{}",
            chromium_log(&log_path)
        ),
    }
}

/// Chromium's output without the noise of a machine with no D-Bus and no sound card.
fn chromium_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !(l.contains("dbus") || l.contains("ALSA") || l.contains("alsa")))
        .collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Ends Chromium: SIGTERM (it shuts its helper processes down), SIGKILL if it lingers.
async fn stop(chromium: &mut tokio::process::Child) {
    if let Some(pid) = chromium.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    if tokio::time::timeout(Duration::from_secs(5), chromium.wait())
        .await
        .is_err()
    {
        let _ = chromium.kill().await;
    }
}
