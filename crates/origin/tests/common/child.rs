//! The store as a child process (this test binary re-executed on `crash::child_server`).

use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncBufReadExt;

use super::{Resp, User, sign};

pub struct Child {
    process: tokio::process::Child,
    pub addr: SocketAddr,
    pub pid: u32,
}

impl Child {
    pub async fn spawn(data_dir: &Path) -> Child {
        let exe = std::env::current_exe().unwrap();
        let mut process = tokio::process::Command::new(exe)
            .args([
                "--exact",
                "crash::child_server",
                "--nocapture",
                "--ignored",
                "--test-threads=1",
            ])
            .env("ORIGIN_CHILD_DATA_DIR", data_dir)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = process.id().unwrap();
        let mut lines = tokio::io::BufReader::new(process.stdout.take().unwrap()).lines();
        let port: u16 = loop {
            let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
                .await
                .expect("child prints its port")
                .unwrap()
                .expect("child exited before printing its port");
            if let Some((_, port)) = line.split_once("ORIGIN_CHILD_PORT=") {
                break port.trim().parse().unwrap();
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Child {
            process,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            pid,
        }
    }

    /// SIGKILL.
    pub async fn kill(&mut self) {
        self.process.start_kill().unwrap();
        let _ = self.process.wait().await;
    }

    /// Peak resident set size (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    pub async fn request(&self, user: Option<User>, method: &str, path: &str, body: Bytes) -> Resp {
        Self::try_request(self.addr, user, method, path, body)
            .await
            .expect("request to child store")
    }

    /// A signed request that may fail at the transport level (the server was killed).
    pub async fn try_request(
        addr: SocketAddr,
        user: Option<User>,
        method: &str,
        path: &str,
        body: Bytes,
    ) -> Option<Resp> {
        let hash = sign::sha256_hex(&body);
        let url = format!("http://{addr}{path}");
        let headers = match user {
            Some(u) => sign::sign_headers(u, method, &url, &[], &hash),
            None => vec![],
        };
        let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string());
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = sender
            .send_request(req.body(Full::new(body)).ok()?)
            .await
            .ok()?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.ok()?.to_bytes();
        Some(Resp {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
}
