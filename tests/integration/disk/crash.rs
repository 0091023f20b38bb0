//! A PoP killed (SIGKILL) in the middle of a fill never serves a torn entry after restart.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::origin::{Route, ScriptedOrigin, seeded_bytes};
use crate::common::{cache_status, client};

use super::*;

/// An `edge serve` child process, killed (SIGKILL) on drop.
struct EdgeChild {
    child: Child,
    port: u16,
    _config_dir: tempfile::TempDir,
}

impl Drop for EdgeChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the server on `port` is the edge PoP named `pop` (another test may have bound the
/// port we picked): its 404 for an unknown host names the PoP in `Cache-Status`.
fn is_our_edge(port: u16, pop: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    if tcp
        .write_all(b"GET / HTTP/1.1\r\nHost: nobody.invalid\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = tcp.read_to_string(&mut reply);
    reply
        .to_ascii_lowercase()
        .contains(&format!("cache-status: {pop};"))
}

/// Starts `edge serve` with `config` (`{http}` replaced by a free port, `{pop}` by a name
/// unique to this child), retrying on another port if the one picked was taken meanwhile.
/// Returns once the PoP answers (so its disk tier is open).
fn spawn_edge_child(config: &str) -> EdgeChild {
    for attempt in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pop = format!("disk-{}-{attempt}-{port}", std::process::id());
        let config_dir = tempfile::tempdir().unwrap();
        let path = config_dir.path().join("edge.toml");
        std::fs::write(
            &path,
            config
                .replace("{http}", &port.to_string())
                .replace("{pop}", &pop),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_edge"))
            .args(["serve", "--config"])
            .arg(&path)
            .current_dir(config_dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("edge: {line}");
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait().unwrap().is_some() {
                break; // Exited: most likely the port was taken; try another.
            }
            if is_our_edge(port, &pop) {
                return EdgeChild {
                    child,
                    port,
                    _config_dir: config_dir,
                };
            }
            assert!(Instant::now() < deadline, "edge did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("edge did not start on any port");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_fill_never_serves_a_torn_entry() {
    let origin = ScriptedOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[pop]\nname = \"{{pop}}\"\n[listen]\nhttp = \"127.0.0.1:{{http}}\"\n[cache]\nmemory = \"64MiB\"\nmax_memory_object = \"256KiB\"\ndisk_path = \"{}\"\ndisk = \"1GiB\"\n[origin]\nkind = \"http\"\nurl = \"{}\"\n[[space]]\nname = \"assets\"\n",
        dir.path().display(),
        origin.url()
    );
    // 200 objects, each distinct; every fifth is large (spooled to disk) and slow.
    let objects: Vec<(String, u64, u64)> = (0..200u64)
        .map(|i| {
            let len = if i % 5 == 0 {
                (2 << 20) + i * 1000
            } else {
                1_000 + (i * 7_919) % 300_000
            };
            (format!("/o{i}.bin"), len, i)
        })
        .collect();
    for (path, len, seed) in &objects {
        let mut route = Route::seeded(*len, *seed);
        if *len > 1 << 20 {
            route = route.pace(Duration::from_millis(3));
        }
        origin.route(path, route);
    }
    let expected: Vec<Vec<u8>> = objects
        .iter()
        .map(|(_, len, seed)| digest(&seeded_bytes(*seed, 0, *len)))
        .collect();
    let c = client(&["assets"], &[]);
    let url = |port: u16, path: &str| format!("http://assets.local.cdn.localhost:{port}{path}");

    let mut edge = spawn_edge_child(&config);
    let done = Arc::new(AtomicUsize::new(0));
    let permits = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for (path, _, _) in &objects {
        let (c, done, permits, url) = (
            c.clone(),
            done.clone(),
            permits.clone(),
            url(edge.port, path),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.unwrap();
            if let Ok(r) = c.get(&url).send().await
                && r.bytes().await.is_ok()
            {
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.load(Ordering::SeqCst) < 80 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Entries are committed by writer threads after the responses: on a loaded machine wait
    // until some are, so that the kill tests surviving entries as well as torn ones.
    while count_files(&dir.path().join("entries")) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    edge.child.kill().unwrap(); // SIGKILL, mid-fill
    edge.child.wait().unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    let completed_before_kill = done.load(Ordering::SeqCst);
    assert!(
        completed_before_kill < objects.len(),
        "the kill landed mid-fill"
    );
    drop(edge);

    let edge = spawn_edge_child(&config);
    let leftovers = std::fs::read_dir(dir.path().join("tmp")).map(|d| d.count());
    assert!(
        matches!(leftovers, Ok(0)),
        "half-written files are cleared at start: {leftovers:?} in {:?}",
        std::fs::read_dir(dir.path())
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
    let hits_before = origin.hits();
    let mut from_disk = 0;
    for ((path, _, _), expected) in objects.iter().zip(&expected) {
        let r = c.get(url(edge.port, path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        if cache_status(&r).contains("detail=disk") {
            from_disk += 1;
        }
        let body = r.bytes().await.unwrap();
        assert_eq!(&digest(&body), expected, "{path} differs from the origin's");
    }
    eprintln!(
        "{completed_before_kill} completed before SIGKILL; {from_disk} served from disk after restart"
    );
    assert!(
        from_disk > 0,
        "entries completed before the kill survive it"
    );
    assert_eq!(origin.hits() - hits_before, objects.len() - from_disk);
}
