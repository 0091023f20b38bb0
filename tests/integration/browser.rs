//! A real browser through the edge: headless Chromium loads a small site over HTTPS and
//! HTTP/2 (stylesheet, script, an SVG and a PNG, a font and a `fetch()` from a second space
//! that need CORS, one of them preflighted, and a WAV the media stack reads with `Range`),
//! the page checks every asset itself, writes a verdict into the DOM and reports it to the
//! test. A second load with an empty browser cache must be served from the edge's cache.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::PublicKeyData as _;
use sha2::Digest as _;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::common::s3::{S3cmd, origin_user};
use crate::common::{client_for, start_edge};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Fonts Chromium's Debian dependencies install; the first one present is served.
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Seconds of audio in the WAV (640 KB; the page checks the element's `duration` and seeks
/// near its end).
const AUDIO_SECONDS: u32 = 20;

/// One object of the site: bucket (= space), key, content type, body.
struct Object {
    bucket: &'static str,
    key: &'static str,
    mime: &'static str,
    body: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_loads_a_site_through_the_edge_then_from_its_cache() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "this test drives a real browser: Chromium is missing at {CHROMIUM} \
         (`apt-get install -y chromium`; scripts/test.sh installs it)"
    );
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, spki_hash) = certificate(dir.path());
    let edge = start_edge(&config(dir.path(), &cert, &key)).await;
    let port = edge.https_addr.unwrap().port();
    let site_origin = format!("https://site.local.cdn.localhost:{port}");
    let assets_origin = format!("https://assets.local.cdn.localhost:{port}");

    let s3 = S3cmd::new(dir.path(), edge.origin_addr.unwrap());
    let mut reports = Reports::start().await;
    for object in site(&assets_origin, &reports.url) {
        let file = dir.path().join(object.key.replace('/', "_"));
        std::fs::write(&file, &object.body).unwrap();
        s3.run(&[
            "put",
            "--acl-public",
            "--no-preserve",
            &format!("--mime-type={}", object.mime),
            file.to_str().unwrap(),
            &format!("s3://{}/{}", object.bucket, object.key),
        ]);
    }
    s3.set_cors(dir.path(), "assets", &cors_rules(&site_origin));

    // A client without `Origin` (curl, a no-cors load) fills the cross-origin assets first:
    // the browser must still get its own CORS answer, not this cached one.
    let https = edge.https_addr.unwrap();
    let plain = client_for(&[https], &["assets.local.cdn.localhost"]);
    for path in ["/fonts/edge.ttf", "/data/hello.json"] {
        let r = plain
            .get(format!("{assets_origin}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(!r.headers().contains_key("access-control-allow-origin"));
    }

    let metrics_url = format!("http://{}/metrics", edge.admin_addr.unwrap());
    let page = format!("{site_origin}/index.html");

    // First load: everything is fetched from the origin, the audio with ranges.
    let before = requests(&metrics_url).await;
    let verdict = load(&page, &spki_hash, dir.path(), "first", &mut reports).await;
    assert!(verdict.starts_with("PASS"), "first load: {verdict}");
    let first = requests(&metrics_url).await.since(&before);
    eprintln!("first load, edge requests by (cache, status): {first:?}");
    assert!(
        first.count(None, Some("206")) >= 1,
        "the audio was read with Range requests (206): {first:?}"
    );
    assert_eq!(first.errors(), 0, "no request failed: {first:?}");
    // html, css, js, svg, png, wav, and the font and JSON as their `Origin` variants: the
    // answers cached for the client without `Origin` above are not theirs.
    assert!(
        first.count(Some("miss"), None) >= 8,
        "the first load filled the cache: {first:?}"
    );

    // Second load, new profile (empty browser cache): every read is an edge cache hit.
    let before = requests(&metrics_url).await;
    let verdict = load(&page, &spki_hash, dir.path(), "second", &mut reports).await;
    assert!(verdict.starts_with("PASS"), "second load: {verdict}");
    let second = requests(&metrics_url).await.since(&before);
    eprintln!("second load, edge requests by (cache, status): {second:?}");
    let reads = ["hit", "stale_hit", "miss", "collapsed", "revalidated"]
        .iter()
        .map(|c| second.count(Some(c), None))
        .sum::<u64>();
    assert_eq!(
        second.count(Some("hit"), None),
        reads,
        "the second load is served from the edge cache: {second:?}"
    );
    // html, css, js, svg, png, font, json, wav (the second fetch of the JSON, and the audio
    // seek, may be answered by Chromium's own cache or revalidated: 304 hits).
    assert!(reads >= 8, "every asset was requested again: {second:?}");
    assert_eq!(second.errors(), 0, "no request failed: {second:?}");
    assert!(
        second.count(None, Some("206")) >= 1,
        "ranges are answered from the cache: {second:?}"
    );

    edge.stop().await;
    eprintln!("browser test took {:?}", started.elapsed());
}

fn config(dir: &Path, cert: &Path, key: &Path) -> String {
    format!(
        r#"
[pop]
name = "browser"
[listen]
https = "127.0.0.1:0"
admin = "127.0.0.1:0"
[[tls.cert]]
names = ["*.local.cdn.localhost"]
cert = "{cert}"
key = "{key}"
default = true
[cache]
default_ttl = "1h"
[origin]
kind = "embedded"
data_dir = "{data}"
{user}
[[space]]
name = "site"
[[space]]
name = "assets"
"#,
        cert = cert.display(),
        key = key.display(),
        data = dir.join("origin").display(),
        user = origin_user(),
    )
}

/// A certificate for `*.local.cdn.localhost` as PEM files, and the base64 SHA-256 of its
/// SubjectPublicKeyInfo, which Chromium is told to trust.
fn certificate(dir: &Path) -> (PathBuf, PathBuf, String) {
    let generated =
        rcgen::generate_simple_self_signed(vec!["*.local.cdn.localhost".to_owned()]).unwrap();
    let cert = dir.join("edge.crt.pem");
    let key = dir.join("edge.key.pem");
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let spki = generated.signing_key.subject_public_key_info();
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&spki));
    (cert, key, hash)
}

fn cors_rules(site_origin: &str) -> String {
    format!(
        "<CORSConfiguration><CORSRule>\
         <AllowedOrigin>{site_origin}</AllowedOrigin>\
         <AllowedMethod>GET</AllowedMethod><AllowedMethod>HEAD</AllowedMethod>\
         <AllowedHeader>x-requested-with</AllowedHeader>\
         <MaxAgeSeconds>600</MaxAgeSeconds>\
         </CORSRule></CORSConfiguration>"
    )
}

/// How long one page load may take, Chromium's start included.
const LOAD_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the page reports, over plain HTTP on loopback (a potentially trustworthy origin, so
/// not mixed content): what it is waiting for (`/stage`) and its verdict (`/verdict`). The
/// test waits for the verdict in real time: Chromium's virtual time (`--virtual-time-budget`
/// with `--dump-dom`) does not wait for the media pipeline.
struct Reports {
    url: String,
    received: mpsc::UnboundedReceiver<(String, String)>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Reports {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Reports {
    async fn start() -> Reports {
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
async fn load(
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
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--disable-dev-shm-usage",
        ])
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

/// `edge_requests_total` by (cache, status).
#[derive(Debug, Default)]
struct Requests(HashMap<(String, String), u64>);

impl Requests {
    fn since(&self, before: &Requests) -> Requests {
        Requests(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v - before.0.get(k).copied().unwrap_or(0)))
                .filter(|(_, v)| *v > 0)
                .collect(),
        )
    }

    fn count(&self, cache: Option<&str>, status: Option<&str>) -> u64 {
        self.0
            .iter()
            .filter(|((c, s), _)| cache.is_none_or(|x| x == c) && status.is_none_or(|x| x == s))
            .map(|(_, v)| v)
            .sum()
    }

    /// Responses with a 4xx or 5xx status.
    fn errors(&self) -> u64 {
        self.0
            .iter()
            .filter(|((_, s), _)| s.starts_with('4') || s.starts_with('5') || s == "other")
            .map(|(_, v)| v)
            .sum()
    }
}

async fn requests(metrics_url: &str) -> Requests {
    let text = reqwest::get(metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut out = Requests::default();
    for line in text
        .lines()
        .filter(|l| l.starts_with("edge_requests_total{"))
    {
        let label = |name: &str| {
            let start = line.find(&format!("{name}=\""))? + name.len() + 2;
            Some(line[start..start + line[start..].find('"')?].to_owned())
        };
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        *out.0
            .entry((label("cache").unwrap(), label("status").unwrap()))
            .or_default() += value as u64;
    }
    out
}

/// The site: a page in space `site`, a font and JSON in space `assets` (cross-origin).
fn site(assets_origin: &str, reports: &str) -> Vec<Object> {
    let font_path = FONTS
        .iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| panic!("no TrueType font found (looked for {FONTS:?})"));
    let object = |bucket, key, mime, body: Vec<u8>| Object {
        bucket,
        key,
        mime,
        body,
    };
    vec![
        object(
            "site",
            "index.html",
            "text/html; charset=utf-8",
            INDEX.replace("{reports}", reports).into(),
        ),
        object(
            "site",
            "css/style.css",
            "text/css",
            STYLE.replace("{assets}", assets_origin).into(),
        ),
        object(
            "site",
            "js/app.js",
            "text/javascript",
            APP.replace("{assets}", assets_origin)
                .replace("{seconds}", &AUDIO_SECONDS.to_string())
                .replace("{seek}", &(AUDIO_SECONDS - 2).to_string())
                .into(),
        ),
        object("site", "img/logo.svg", "image/svg+xml", LOGO.into()),
        object("site", "img/dot.png", "image/png", png(4, 3)),
        object("site", "media/tone.wav", "audio/wav", wav(AUDIO_SECONDS)),
        object(
            "assets",
            "fonts/edge.ttf",
            "font/ttf",
            std::fs::read(font_path).unwrap(),
        ),
        object(
            "assets",
            "data/hello.json",
            "application/json",
            br#"{"hello": "edge"}"#.to_vec(),
        ),
    ]
}

const INDEX: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>edge end to end</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/css/style.css">
</head>
<body>
<h1 id="title">Served by the edge</h1>
<img id="svg" src="/img/logo.svg" alt="logo">
<img id="png" src="/img/dot.png" alt="dot">
<audio id="media" preload="metadata" src="/media/tone.wav"></audio>
<div id="verdict">pending</div>
<script>
  // Reports even when the checking script itself fails to load or run.
  window.report = (kind, text) => fetch(`{reports}/${kind}`, { method: "POST", mode: "no-cors", body: text });
  window.addEventListener("load", () => {
    if (!window.edgeChecks) window.report("verdict", "FAIL: /js/app.js did not run");
  });
</script>
<script src="/js/app.js"></script>
</body>
</html>
"#;

const STYLE: &str = r#"@font-face {
  font-family: "EdgeFont";
  src: url("{assets}/fonts/edge.ttf") format("truetype");
}
#title { color: rgb(1, 2, 3); font-family: "EdgeFont", monospace; }
"#;

const LOGO: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20" viewBox="0 0 40 20"><rect width="40" height="20" fill="teal"/></svg>"#;

/// The page's own checks; the verdict says PASS only when every one of them held.
const APP: &str = r#"
const ASSETS = "{assets}";
const problems = [];
const passed = [];
const check = (ok, what) => (ok ? passed : problems).push(what);
// Until the verdict, the page says what it is waiting for.
const waiting = (what) => {
  document.getElementById("verdict").textContent = `pending: ${what}`;
  report("stage", what);
};
const once = (target, ok, bad) => new Promise((resolve, reject) => {
  target.addEventListener(ok, resolve, { once: true });
  if (bad) target.addEventListener(bad, () => reject(new Error(bad)), { once: true });
});

async function run() {
  waiting("the load event");
  if (document.readyState !== "complete") await once(window, "load");

  for (const [id, width] of [["svg", 40], ["png", 4]]) {
    const img = document.getElementById(id);
    check(img.complete && img.naturalWidth === width, `${id} image (naturalWidth ${img.naturalWidth})`);
  }
  const color = getComputedStyle(document.getElementById("title")).color;
  check(color === "rgb(1, 2, 3)", `stylesheet (color ${color})`);

  waiting("the cross-origin font");
  try {
    const faces = await document.fonts.load('16px "EdgeFont"');
    check(faces.length === 1 && faces[0].status === "loaded" && document.fonts.check('16px "EdgeFont"'),
      `cross-origin font (${faces.map((f) => f.status).join(",") || "no face"})`);
  } catch (e) {
    check(false, `cross-origin font: ${e}`);
  }

  const requests = [["simple", {}], ["preflighted", { headers: { "X-Requested-With": "edge-e2e" } }]];
  for (const [label, init] of requests) {
    waiting(`the ${label} cross-origin fetch`);
    try {
      const response = await fetch(`${ASSETS}/data/hello.json`, init);
      const body = await response.json();
      check(response.ok && body.hello === "edge", `${label} cross-origin fetch (${response.status})`);
    } catch (e) {
      check(false, `${label} cross-origin fetch: ${e}`);
    }
  }

  const media = document.getElementById("media");
  waiting("the audio metadata");
  try {
    if (media.readyState < HTMLMediaElement.HAVE_METADATA) await once(media, "loadedmetadata", "error");
    check(media.readyState >= HTMLMediaElement.HAVE_METADATA && Math.abs(media.duration - {seconds}) < 0.05,
      `audio metadata (readyState ${media.readyState}, duration ${media.duration})`);
    // Near the end: the media stack reads from there with another range request.
    waiting("the audio seek");
    media.currentTime = {seek};
    await once(media, "seeked", "error");
    check(Math.abs(media.currentTime - {seek}) < 0.1 && media.readyState >= HTMLMediaElement.HAVE_CURRENT_DATA,
      `audio seek (currentTime ${media.currentTime}, readyState ${media.readyState})`);
  } catch (e) {
    check(false, `audio: ${e} ${media.error ? media.error.message : ""}`);
  }

  const page = performance.getEntriesByType("navigation")[0];
  check(page.nextHopProtocol === "h2", `page over ${page.nextHopProtocol}`);
  const resources = performance.getEntriesByType("resource");
  const wanted = ["/css/style.css", "/js/app.js", "/img/logo.svg", "/img/dot.png",
    `${ASSETS}/fonts/edge.ttf`, `${ASSETS}/data/hello.json`];
  for (const path of wanted) {
    const url = new URL(path, location.href).href;
    const entry = resources.find((r) => r.name === url);
    if (!entry) {
      check(false, `no resource timing for ${path}`);
      continue;
    }
    // Cross-origin entries without Timing-Allow-Origin may hide the protocol.
    const sameOrigin = url.startsWith(location.origin);
    const protocol = entry.nextHopProtocol;
    check(protocol === "h2" || (!sameOrigin && protocol === ""), `${path} over ${protocol || "(hidden)"}`);
    if (entry.responseStatus) check(entry.responseStatus === 200, `${path} status ${entry.responseStatus}`);
  }
}

window.edgeChecks = run()
  .catch((e) => problems.push(`exception: ${e}`))
  .finally(() => {
    const verdict = problems.length ? `FAIL: ${problems.join("; ")}` : `PASS: ${passed.join("; ")}`;
    document.getElementById("verdict").textContent = verdict;
    report("verdict", verdict);
  });
"#;

/// A `width` x `height` RGB PNG (stored, uncompressed deflate).
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0); // filter: none
        for x in 0..width {
            raw.extend_from_slice(&[(x * 60) as u8, (y * 80) as u8, 200]);
        }
    }
    // zlib: header, one stored block, Adler-32.
    let mut zlib = vec![0x78, 0x01, 0x01];
    let len = raw.len() as u16;
    zlib.extend_from_slice(&len.to_le_bytes());
    zlib.extend_from_slice(&(!len).to_le_bytes());
    zlib.extend_from_slice(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for byte in &raw {
        a = (a + u32::from(*byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());

    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", ihdr), (b"IDAT", zlib), (b"IEND", Vec::new())] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = png.len();
        png.extend_from_slice(kind);
        png.extend_from_slice(&data);
        let crc = crc32(&png[start..]);
        png.extend_from_slice(&crc.to_be_bytes());
    }
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `seconds` of a 440 Hz tone: 16 kHz mono 16-bit PCM in a RIFF/WAVE file.
fn wav(seconds: u32) -> Vec<u8> {
    const RATE: u32 = 16_000;
    let samples = RATE * seconds;
    let data_len = samples * 2;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&RATE.to_le_bytes());
    wav.extend_from_slice(&(RATE * 2).to_le_bytes()); // bytes per second
    wav.extend_from_slice(&2u16.to_le_bytes()); // block align
    wav.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let t = f64::from(i) / f64::from(RATE);
        let sample = (f64::sin(t * 440.0 * std::f64::consts::TAU) * 8_000.0) as i16;
        wav.extend_from_slice(&sample.to_le_bytes());
    }
    wav
}
