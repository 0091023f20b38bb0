//! TLS handshake rate of an edge: opens `-n` new connections, `-c` at a time, each a full
//! handshake (no resumption), and reports handshakes per second.
//!
//! Against a running edge (the figure to quote; give its pid to also get server CPU per
//! handshake):
//!
//!     cargo run --release --example tls_handshakes -- --connect 127.0.0.1:8443 \
//!         --sni assets.local.cdn.localhost --server-pid "$(pgrep -n edge)" -n 20000 -c 8
//!
//! Without `--connect` it starts an edge in this process (a self-signed ECDSA P-256
//! certificate), so client and server share the CPU. `--serve ADDR` only runs that edge, to
//! measure it from a second process:
//!
//!     tls_handshakes --serve 127.0.0.1:18443 &
//!     tls_handshakes --connect 127.0.0.1:18443 --server-pid $! -n 20000 -c 8

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::AsyncWriteExt;

#[derive(Parser)]
struct Args {
    /// The edge's HTTPS address; without it an edge is started in-process.
    #[arg(long)]
    connect: Option<SocketAddr>,
    /// The server name sent.
    #[arg(long, default_value = "assets.local.cdn.localhost")]
    sni: String,
    /// Handshakes in all.
    #[arg(short, default_value_t = 5000)]
    n: usize,
    /// Handshakes in flight.
    #[arg(short, default_value_t = 4)]
    c: usize,
    /// Offer only TLS 1.2.
    #[arg(long)]
    tls12: bool,
    /// The edge's process id, to report its CPU time per handshake (Linux).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Only run an edge with a self-signed certificate on this address, until interrupted.
    #[arg(long)]
    serve: Option<SocketAddr>,
}

/// The benchmark measures the server; the client does not verify the chain.
#[derive(Debug)]
struct NoVerify;

impl ServerCertVerifier for NoVerify {
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

/// User + system CPU time of `pid` (Linux, USER_HZ = 100).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

async fn start_in_process(on: SocketAddr) -> anyhow::Result<(edge::Running, SocketAddr)> {
    let config = edge::config::Config::parse(
        r#"
[listen]
https = "127.0.0.1:0"
[tls]
self_signed = true
[origin]
kind = "http"
url = "http://127.0.0.1:9"
[[space]]
name = "assets"
"#,
    )?;
    let listeners = edge::Listeners {
        https: Some(tokio::net::TcpListener::bind(on).await?),
        ..Default::default()
    };
    let running = edge::start(config, listeners).await?;
    let addr = running.https_addr.context("no HTTPS address")?;
    Ok((running, addr))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(on) = args.serve {
        let (running, addr) = start_in_process(on).await?;
        println!("serving TLS on {addr}, pid {}", std::process::id());
        tokio::signal::ctrl_c().await?;
        running.stop().await;
        return Ok(());
    }
    let (running, addr) = match args.connect {
        Some(addr) => (None, addr),
        None => {
            let (running, addr) = start_in_process(([127, 0, 0, 1], 0).into()).await?;
            (Some(running), addr)
        }
    };
    let versions: &[&rustls::SupportedProtocolVersion] = if args.tls12 {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let mut config = rustls::ClientConfig::builder_with_provider(edge::tls::provider())
        .with_protocol_versions(versions)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify))
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(args.sni.clone())?;

    // Warm up (and check that the handshake works at all).
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = connector
        .connect(name.clone(), tcp)
        .await
        .context("first handshake")?;
    let version = tls.get_ref().1.protocol_version();
    let suite = tls.get_ref().1.negotiated_cipher_suite();
    let group = tls.get_ref().1.negotiated_key_exchange_group();
    drop(tls);

    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let cpu_before = args.server_pid.and_then(cpu_time);
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.c.max(1) {
        let (connector, name) = (connector.clone(), name.clone());
        let (next, failures, total) = (next.clone(), failures.clone(), args.n);
        workers.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let done = async {
                    let tcp = tokio::net::TcpStream::connect(addr).await?;
                    tcp.set_nodelay(true)?;
                    let mut tls = connector.connect(name.clone(), tcp).await?;
                    tls.shutdown().await
                };
                if done.await.is_err() {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let failed = failures.load(Ordering::Relaxed);
    let ok = args.n - failed;
    println!(
        "{ok} full handshakes ({version:?}, {:?}, {:?}) in {:.2}s, {} in flight: {:.0} handshakes/s, {failed} failed",
        suite.map(|s| s.suite()),
        group.map(|g| g.name()),
        elapsed.as_secs_f64(),
        args.c,
        ok as f64 / elapsed.as_secs_f64()
    );
    if let (Some(pid), Some(before)) = (args.server_pid, cpu_before)
        && let Some(after) = cpu_time(pid)
    {
        let cpu = after.saturating_sub(before);
        println!(
            "server CPU {:.2}s: {:.0} µs per handshake, {:.0} handshakes per server CPU-second",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / ok.max(1) as f64,
            ok as f64 / cpu.as_secs_f64().max(1e-9)
        );
    }
    if let Some(running) = running {
        running.stop().await;
    }
    Ok(())
}
