//! `edge serve` as a child process, for tests that kill, restart or measure it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An `edge serve` child process, killed on drop.
pub struct EdgeProcess {
    pub child: Child,
    pub http_port: u16,
    pub admin_port: u16,
    pub config: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for EdgeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl EdgeProcess {
    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the same config again (same ports, same data).
    pub fn restart(&mut self) {
        self.kill();
        self.child = launch(&self.config, self.http_port);
    }

    /// The admin URL.
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
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

fn launch(config: &Path, http_port: u16) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edge"))
        .args(["serve", "--config"])
        .arg(config)
        .current_dir(config.parent().unwrap())
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
    child
}

/// Starts `edge serve` with `config`, where `{http}` and `{admin}` are replaced by free
/// ports, and waits until it answers.
pub fn spawn_edge(config: &str) -> EdgeProcess {
    let dir = tempfile::tempdir().unwrap();
    let mut process = spawn_edge_in(dir.path(), config, free_port(), free_port());
    process._dir = Some(dir);
    process
}

/// Like [`spawn_edge`] with chosen ports, keeping its files in `dir`.
pub fn spawn_edge_in(dir: &Path, config: &str, http_port: u16, admin_port: u16) -> EdgeProcess {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("edge.toml");
    let text = config
        .replace("{http}", &http_port.to_string())
        .replace("{admin}", &admin_port.to_string());
    std::fs::write(&path, text).unwrap();
    let child = launch(&path, http_port);
    EdgeProcess {
        child,
        http_port,
        admin_port,
        config: path,
        _dir: None,
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
