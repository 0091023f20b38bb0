//! Driving headless Chromium over the DevTools protocol: a page opened at a URL, scripts
//! evaluated in it (to type into its labelled fields and press its buttons), waits for what
//! it shows, and screenshots.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::chromium::{CHROMIUM, HEADLESS};

/// One Chromium with one page, driven over its DevTools socket.
pub struct Page {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    chromium: tokio::process::Child,
}

impl Page {
    /// Starts Chromium (fresh profile in `dir`) showing `url`.
    pub async fn open(url: &str, dir: &Path) -> Page {
        let mut chromium = tokio::process::Command::new(CHROMIUM)
            .args(HEADLESS)
            .args(["--remote-debugging-port=0", "--window-size=1280,1000"])
            .arg(format!(
                "--user-data-dir={}",
                dir.join("cdp-profile").display()
            ))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("Chromium starts");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/..."
        let mut lines = BufReader::new(chromium.stderr.take().expect("piped")).lines();
        let port = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                    return rest.split('/').next().and_then(|p| p.parse::<u16>().ok());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("Chromium announces its DevTools port");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        // The page target's own socket.
        let deadline = Instant::now() + Duration::from_secs(30);
        let ws_url = loop {
            let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
                .await
                .expect("DevTools answers")
                .json()
                .await
                .expect("target list");
            let page = targets.as_array().and_then(|all| {
                all.iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                    .map(str::to_owned)
            });
            if let Some(url) = page {
                break url;
            }
            assert!(Instant::now() < deadline, "no page target");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (socket, _) = tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .expect("DevTools socket");
        Page {
            socket,
            next_id: 1,
            chromium,
        }
    }

    /// Calls a DevTools method and returns its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        self.socket
            .send(Message::text(message))
            .await
            .expect("DevTools socket open");
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(60), self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("{method}: no answer in 60 s"))
                .expect("DevTools socket open")
                .expect("DevTools frame");
            let Message::Text(text) = frame else { continue };
            let reply: Value = serde_json::from_str(&text).expect("DevTools JSON");
            if reply["id"] == id {
                assert!(reply["error"].is_null(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// Evaluates `script` in the page (awaiting a promise) and returns its value.
    pub async fn eval(&mut self, script: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": format!("{HELPERS}\n{script}"), "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        assert!(
            result["exceptionDetails"].is_null(),
            "{script}: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// Waits until `condition` (a script) is true in the page.
    pub async fn wait_for(&mut self, condition: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.eval(&format!("Boolean({condition})")).await == json!(true) {
                return;
            }
            assert!(Instant::now() < deadline, "the page never showed {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the page to `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("image data"))
            .expect("base64");
        std::fs::write(path, png).expect("screenshot written");
    }

    /// Ends Chromium.
    pub async fn close(mut self) {
        let _ = self.chromium.kill().await;
    }
}

/// Functions the scripts use: `field(label)` is the control a visible `<label>` names,
/// `type(label, text)` types into it, `press(text)` clicks the visible button with that text.
const HELPERS: &str = r#"
var field = (text) => {
  const label = [...document.querySelectorAll("label")]
    .find((l) => l.offsetParent !== null && l.textContent.trim() === text);
  if (!label || !label.control) throw new Error(`no visible field labelled ${text}`);
  return label.control;
};
var type = (text, value) => {
  const input = field(text);
  input.value = value;
  input.dispatchEvent(new Event("input", { bubbles: true }));
  input.dispatchEvent(new Event("change", { bubbles: true }));
};
var press = (text, root = document) => {
  const b = [...root.querySelectorAll("button")]
    .find((b) => b.offsetParent !== null && b.textContent.trim() === text);
  if (!b) throw new Error(`no visible button ${text}`);
  b.click();
};
"#;
