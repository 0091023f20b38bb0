//! PUT and GET throughput of the store over loopback, for 4 KiB and 64 MiB objects, in an
//! unversioned bucket and in a versioning-enabled one (new keys, then a second version of
//! each, against overwrites in the unversioned bucket: the previous version is archived in the
//! same transaction). Rows are interleaved over three rounds and reported as medians.
//!
//! Run with `cargo bench -p origin`. The store runs in-process on a multi-threaded runtime;
//! the client keeps one HTTP/1.1 connection per worker and signs with SigV4
//! (`UNSIGNED-PAYLOAD`, so the figures measure the store, not the client's hashing). Every
//! PUT is durable (body fsync, rename, directory fsync, redb commit) before it is answered.

#![allow(clippy::unwrap_used)] // a benchmark harness, not library code

#[path = "../tests/common/sign.rs"]
#[allow(dead_code)] // shared with the tests, which use more of it
mod sign;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use origin::{Store, StoreConfig, UserConfig};

/// Rounds of every row; each row reports its median.
const ROUNDS: usize = 3;

/// The signing helper's notion of a user.
#[derive(Debug, Clone, Copy)]
pub struct User {
    pub id: &'static str,
    pub access_key: &'static str,
    pub secret_key: &'static str,
}

const USER: User = User {
    id: "bench",
    access_key: "AKIABENCH",
    secret_key: "bench-secret",
};

async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn request(
    sender: &mut SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Bytes,
) -> usize {
    let url = format!("http://{addr}{path}");
    let len = [("content-length".to_owned(), body.len().to_string())];
    let headers = sign::sign_headers(
        USER,
        method,
        &url,
        if method == "PUT" { &len } else { &[] },
        "UNSIGNED-PAYLOAD",
    );
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in &headers {
        req = req.header(k.as_str(), v.as_str());
    }
    sender.ready().await.unwrap();
    let resp = sender
        .send_request(req.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "{method} {path}: {}",
        resp.status()
    );
    let mut body = resp.into_body();
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            n += data.len();
        }
    }
    n
}

/// Runs `ops` requests over `workers` connections; returns the elapsed time.
async fn run(
    addr: SocketAddr,
    method: &'static str,
    size: usize,
    ops: usize,
    workers: usize,
    tag: &str,
) -> Duration {
    let body = Bytes::from(vec![0x5au8; size]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let body = body.clone();
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await;
            let mut i = w;
            while i < ops {
                let path = format!("/{tag}/{i}");
                let payload = if method == "PUT" {
                    body.clone()
                } else {
                    Bytes::new()
                };
                let got = request(&mut sender, addr, method, &path, payload).await;
                if method == "GET" {
                    assert_eq!(got, size);
                }
                i += workers;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

fn row(size: usize, op: &str, ops: usize, workers: usize, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    let label = if size >= 1 << 20 {
        format!("{} MiB", size >> 20)
    } else {
        format!("{} KiB", size >> 10)
    };
    println!(
        "| {label:>7} | {op:<13} | {ops:>5} | {workers:>4} | {:>9.1} | {:>8.1} |",
        ops as f64 / secs,
        (ops * size) as f64 / secs / 1e6
    );
    secs / ops as f64
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig {
            data_dir: dir.path().to_path_buf(),
            domain: None,
            region: "us-east-1".into(),
            users: vec![UserConfig {
                id: USER.id.into(),
                display_name: USER.id.into(),
                email: None,
                access_key: USER.access_key.into(),
                secret_key: USER.secret_key.into(),
            }],
            lifecycle: origin::LifecycleConfig::default(),
            log_flush: origin::DEFAULT_LOG_FLUSH,
        })
        .unwrap();
        store.ensure_bucket("bench", USER.id).unwrap();
        store.ensure_bucket("benchv", USER.id).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .serve(listener, async move {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            })
        };

        println!(
            "origin store throughput over loopback ({} CPUs), medians of {ROUNDS} interleaved rounds",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        let mut sender = connect(addr).await;
        let enable = Bytes::from_static(
            b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>",
        );
        request(&mut sender, addr, "PUT", "/benchv?versioning", enable).await;
        println!("| size    | op            | ops   | conc |   ops/s   |   MB/s   |");
        println!("|---------|---------------|-------|------|-----------|----------|");
        for (size, ops, workers) in [(4 * 1024, 2000, 16), (64 * 1024 * 1024, 8, 2)] {
            // Each round runs every row once, unversioned and versioned side by side, so the
            // page cache's writeback of earlier rows (and whatever else the machine does)
            // falls on both alike; each row's figure is its median over the rounds.
            let mut times: [Vec<Duration>; 6] = Default::default();
            for round in 0..ROUNDS {
                let plain = format!("bench/s{size}r{round}");
                let versioned = format!("benchv/s{size}r{round}");
                times[0].push(run(addr, "PUT", size, ops, workers, &plain).await);
                times[1].push(run(addr, "PUT", size, ops, workers, &versioned).await);
                times[2].push(run(addr, "PUT", size, ops, workers, &plain).await);
                times[3].push(run(addr, "PUT", size, ops, workers, &versioned).await);
                times[4].push(run(addr, "GET", size, ops, workers, &plain).await);
                times[5].push(run(addr, "GET", size, ops, workers, &versioned).await);
            }
            let labels = [
                "PUT",
                "PUT versioned",
                "PUT overwrite",
                "PUT 2nd vers.",
                "GET",
                "GET versioned",
            ];
            let per_op: Vec<f64> = labels
                .iter()
                .zip(times.iter_mut())
                .map(|(label, t)| {
                    t.sort();
                    row(size, label, ops, workers, t[t.len() / 2])
                })
                .collect();
            println!(
                "|         | versioned PUT cost: {:.2}x (new keys), {:.2}x (2nd version vs overwrite) |",
                per_op[1] / per_op[0],
                per_op[3] / per_op[2]
            );
        }
        let _ = tx.send(());
        server.await.unwrap();
    });
}
