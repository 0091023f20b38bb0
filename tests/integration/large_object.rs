//! A 2 GiB object streams through an edge process with bounded memory.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::origin::{Route, ScriptedOrigin, pattern_byte};

/// An `edge serve` child process, killed on drop.
pub struct EdgeProcess {
    pub child: Child,
    pub http_port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for EdgeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound and released; the child binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `edge serve` with `config` (where `{http}` is replaced by a free port) and waits
/// until it answers.
pub fn spawn_edge(config: &str) -> EdgeProcess {
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, config.replace("{http}", &http_port.to_string())).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_edge"))
        .args(["serve", "--config"])
        .arg(&path)
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || for _ in BufReader::new(stderr).lines() {});
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", http_port)).is_err() {
        assert!(Instant::now() < deadline, "edge did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    EdgeProcess {
        child,
        http_port,
        _dir: dir,
    }
}

/// Peak resident set of a process in KiB (VmHWM).
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gib_object_streams_with_bounded_memory() {
    let origin = ScriptedOrigin::start().await;
    let len: u64 = 2 << 30;
    origin.route("/huge.bin", Route::generated(len));
    let edge = spawn_edge(&format!(
        "[listen]\nhttp = \"127.0.0.1:{{http}}\"\n[cache]\nmemory = \"64MiB\"\n[origin]\nkind = \"http\"\nurl = \"{}\"\n[[space]]\nname = \"big\"\n",
        origin.url()
    ));
    let c = crate::common::client(&["big"], &[]);
    let mut response = c
        .get(format!(
            "http://big.local.cdn.localhost:{}/huge.bin",
            edge.http_port
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut offset: u64 = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        // Spot-check the pattern at each chunk start.
        assert_eq!(chunk[0], pattern_byte(offset), "byte {offset}");
        offset += chunk.len() as u64;
    }
    assert_eq!(offset, len);
    let peak_mib = peak_rss_kib(edge.child.id()) / 1024;
    assert!(peak_mib < 150, "peak RSS {peak_mib} MiB");
    eprintln!("2 GiB through the edge: peak RSS {peak_mib} MiB");
}
