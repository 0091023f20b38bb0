//! What moving from the embedded store to a Ceph cluster costs an edge miss: the same objects
//! (1 KiB and 8 MiB) in the embedded store and in RGW, each fetched once through an edge in
//! front of each (every request a cold key, so a miss the edge fetches from its origin):
//! one at a time for latency (time to the response head and to the last byte, p50/p99) and
//! from several clients at once for throughput; and the origin itself asked directly, for
//! what the edge adds.
//!
//! `cargo run --release --example ceph_bench [-- --small 400 --large 24 --concurrency 8]`
//!
//! It starts its own cluster with `scripts/ceph-dev.sh` (stopped when it exits), or uses a
//! running gateway: `-- --endpoint http://127.0.0.1:PORT --access-key K --secret-key S`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use edge::config::Config;
use edge::origin::Signer;
use edge::{Listeners, Running};
use tokio::net::TcpListener;

const ACCESS: &str = "BENCHEMBEDDEDKEY";
const SECRET: &str = "bench-embedded-secret";
const SMALL: usize = 1 << 10;
const LARGE: usize = 8 << 20;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn number(name: &str, default: usize) -> usize {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// An S3 endpoint with credentials.
#[derive(Clone)]
struct Origin {
    endpoint: String,
    signer: Signer,
}

impl Origin {
    async fn send(
        &self,
        client: &reqwest::Client,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.endpoint))
            .body(())?;
        self.signer
            .sign_with_body(&mut request, &body, SystemTime::now())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let (parts, ()) = request.into_parts();
        let response = client
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await?;
        Ok(response)
    }
}

/// Deterministic bytes that no layer could compress.
fn body(len: usize, seed: usize) -> Vec<u8> {
    let mut x = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn key(size: usize, set: &str, i: usize) -> String {
    format!("/bench/{size}/{set}/{i}")
}

/// Uploads `count` objects of `size` bytes under `set`, eight at a time.
async fn upload(
    origin: &Origin,
    bucket: &str,
    size: usize,
    set: &str,
    count: usize,
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (origin, client, next) = (origin.clone(), client.clone(), next.clone());
        let bucket = bucket.to_owned();
        let set = set.to_owned();
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(());
                }
                let path = format!("/{bucket}{}", key(size, &set, i));
                let r = origin
                    .send(&client, http::Method::PUT, &path, body(size, i))
                    .await?;
                if !r.status().is_success() {
                    bail!("PUT {path}: {}", r.status());
                }
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    Ok(())
}

async fn start_edge(config: &str) -> anyhow::Result<Running> {
    let config = Config::parse(config)?;
    let origin = match config.origin.kind {
        edge::config::OriginKind::Embedded(_) => Some(TcpListener::bind("127.0.0.1:0").await?),
        _ => None,
    };
    let listeners = Listeners {
        http: Some(TcpListener::bind("127.0.0.1:0").await?),
        https: None,
        admin: None,
        origin,
    };
    Ok(edge::start(config, listeners).await?)
}

fn edge_config(name: &str, origin: &str, bucket: &str) -> String {
    format!(
        r#"
[pop]
name = "{name}"
[listen]
http = "127.0.0.1:0"
[cache]
memory = "256MiB"
disk = "0"
default_ttl = "1h"
{origin}
[[space]]
name = "bench"
bucket = "{bucket}"
origin_auth = "signed"
"#
    )
}

/// p50 and p99 of `samples`, in milliseconds.
fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1000.0
    };
    (at(0.5), at(0.99))
}

/// Sequential GETs of `urls`: (time to the head, time to the last byte) of each.
async fn sequential(
    client: &reqwest::Client,
    urls: impl Iterator<Item = String>,
    size: usize,
    edge_miss: bool,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let (mut heads, mut totals) = (Vec::new(), Vec::new());
    for url in urls {
        let start = Instant::now();
        let r = client.get(&url).send().await?;
        let head = start.elapsed();
        let status = r.status();
        let cache = r
            .headers()
            .get("cache-status")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let len = r.bytes().await?.len();
        totals.push(start.elapsed());
        heads.push(head);
        if status != 200 || len != size {
            bail!("GET {url}: {status}, {len} bytes");
        }
        if edge_miss && !cache.as_deref().unwrap_or_default().contains("fwd=miss") {
            bail!("GET {url} was not a miss: {cache:?}");
        }
    }
    Ok((heads, totals))
}

/// `count` GETs from `concurrency` clients at once: objects per second.
async fn concurrent(
    client: &reqwest::Client,
    url: impl Fn(usize) -> String + Send + Sync + 'static,
    count: usize,
    concurrency: usize,
    size: usize,
) -> anyhow::Result<f64> {
    let next = Arc::new(AtomicUsize::new(0));
    let url = Arc::new(url);
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, next, url) = (client.clone(), next.clone(), url.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(());
                }
                let r = client.get(url(i)).send().await?;
                let len = r.bytes().await?.len();
                if len != size {
                    bail!("object {i}: {len} bytes");
                }
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

struct Row {
    origin: &'static str,
    size: usize,
    direct: (f64, f64),
    head: (f64, f64),
    total: (f64, f64),
    per_second: f64,
}

/// Uploads the objects of every size (one set read one at a time, one read at once) and makes
/// their rows.
async fn prepare(
    label: &'static str,
    origin: &Origin,
    bucket: &str,
    counts: &[(usize, usize)],
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &(size, count) in counts {
        eprintln!("{label}: uploading {} objects of {size} bytes", 2 * count);
        upload(origin, bucket, size, "seq", count).await?;
        upload(origin, bucket, size, "conc", count).await?;
        rows.push(Row {
            origin: label,
            size,
            direct: (0.0, 0.0),
            head: (0.0, 0.0),
            total: (0.0, 0.0),
            per_second: 0.0,
        });
    }
    Ok(rows)
}

async fn run_edge(
    rows: &mut [Row],
    origin: &Origin,
    bucket: &str,
    running: &Running,
    counts: &[(usize, usize)],
    concurrency: usize,
) -> anyhow::Result<()> {
    let port = running.http_addr.context("edge http")?.port();
    let host = "bench.local.cdn.localhost";
    let client = reqwest::Client::builder()
        .resolve(host, ([127, 0, 0, 1], port).into())
        .no_proxy()
        .pool_max_idle_per_host(64)
        .build()?;
    let direct = reqwest::Client::builder().no_proxy().build()?;
    for (row, &(size, count)) in rows.iter_mut().zip(counts) {
        eprintln!(
            "{}: {count} misses of {size} bytes, one at a time",
            row.origin
        );
        let (mut heads, mut totals) = sequential(
            &client,
            (0..count).map(|i| format!("http://{host}:{port}{}", key(size, "seq", i))),
            size,
            true,
        )
        .await?;
        row.head = percentiles(&mut heads);
        row.total = percentiles(&mut totals);
        eprintln!(
            "{}: {count} misses of {size} bytes, {concurrency} at once",
            row.origin
        );
        row.per_second = concurrent(
            &client,
            move |i| format!("http://{host}:{port}{}", key(size, "conc", i)),
            count,
            concurrency,
            size,
        )
        .await?;
        // The origin asked directly (signed GETs of the objects just fetched).
        let mut direct_totals = Vec::new();
        for i in 0..count {
            let path = format!("/{bucket}{}", key(size, "seq", i));
            let start = Instant::now();
            let r = origin
                .send(&direct, http::Method::GET, &path, Vec::new())
                .await?;
            let len = r.bytes().await?.len();
            direct_totals.push(start.elapsed());
            if len != size {
                bail!("direct GET {path}: {len} bytes");
            }
        }
        row.direct = percentiles(&mut direct_totals);
    }
    Ok(())
}

/// Starts a cluster with the script, stopped (and its directory removed) when we exit.
fn start_cluster() -> anyhow::Result<(String, String, String)> {
    let dir = tempfile::Builder::new()
        .prefix("ceph-bench-")
        .tempdir()?
        .keep();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ceph-dev.sh");
    eprintln!("starting a Ceph cluster under {}", dir.display());
    let out = std::process::Command::new(script)
        .arg("start")
        .arg(&dir)
        .args(["--watch", &std::process::id().to_string(), "--clean"])
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !out.status.success() {
        bail!("scripts/ceph-dev.sh start failed");
    }
    let text = String::from_utf8(out.stdout)?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
            .with_context(|| format!("no {name}= from scripts/ceph-dev.sh"))
    };
    Ok((
        field("endpoint")?,
        field("access_key")?,
        field("secret_key")?,
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let counts = [
        (SMALL, number("--small", 400)),
        (LARGE, number("--large", 24)),
    ];
    let concurrency = number("--concurrency", 8);
    let (endpoint, access, secret) = match arg("--endpoint") {
        Some(endpoint) => (
            endpoint,
            arg("--access-key").context("--access-key")?,
            arg("--secret-key").context("--secret-key")?,
        ),
        None => start_cluster()?,
    };

    // RGW: a bucket of its own.
    let rgw = Origin {
        endpoint: endpoint.clone(),
        signer: Signer::new(&access, &secret, "us-east-1"),
    };
    let bucket = format!("edge-bench-{}", std::process::id());
    let created = rgw
        .send(
            &reqwest::Client::new(),
            http::Method::PUT,
            &format!("/{bucket}"),
            Vec::new(),
        )
        .await?;
    if !created.status().is_success() {
        bail!("CreateBucket {bucket} on {endpoint}: {}", created.status());
    }
    let rgw_edge = start_edge(&edge_config(
        "bench-rgw",
        &format!(
            "[origin]\nkind = \"s3\"\nendpoint = \"{endpoint}\"\naccess_key = \"{access}\"\nsecret_key = \"{secret}\"\n"
        ),
        &bucket,
    ))
    .await?;

    // The embedded store, in the edge's process as `edge serve` runs it.
    let data = tempfile::tempdir()?;
    let embedded_edge = start_edge(&edge_config(
        "bench-embedded",
        &format!(
            "[origin]\nkind = \"embedded\"\ndata_dir = \"{}\"\n[[origin.user]]\nid = \"bench\"\naccess_key = \"{ACCESS}\"\nsecret_key = \"{SECRET}\"\n",
            data.path().display()
        ),
        &bucket,
    ))
    .await?;
    let embedded = Origin {
        endpoint: format!(
            "http://{}",
            embedded_edge.origin_addr.context("embedded origin")?
        ),
        signer: Signer::new(ACCESS, SECRET, "us-east-1"),
    };

    let mut rows = prepare("embedded", &embedded, &bucket, &counts).await?;
    run_edge(
        &mut rows,
        &embedded,
        &bucket,
        &embedded_edge,
        &counts,
        concurrency,
    )
    .await?;
    let mut rgw_rows = prepare("ceph-rgw", &rgw, &bucket, &counts).await?;
    run_edge(
        &mut rgw_rows,
        &rgw,
        &bucket,
        &rgw_edge,
        &counts,
        concurrency,
    )
    .await?;
    rows.extend(rgw_rows);

    println!(
        "| origin | object | origin direct p50 / p99 | edge miss, head p50 / p99 | edge miss, last byte p50 / p99 | misses/s ({concurrency} clients) | MiB/s |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in &rows {
        let size = if row.size == SMALL { "1 KiB" } else { "8 MiB" };
        println!(
            "| {} | {size} | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.0} | {:.0} |",
            row.origin,
            row.direct.0,
            row.direct.1,
            row.head.0,
            row.head.1,
            row.total.0,
            row.total.1,
            row.per_second,
            row.per_second * row.size as f64 / (1 << 20) as f64,
        );
    }
    rgw_edge.stop().await;
    embedded_edge.stop().await;
    Ok(())
}
