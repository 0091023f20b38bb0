//! The site Chromium loads: a page, its stylesheet and checking script, images and audio
//! generated here, and a font and JSON served cross-origin from a second space.

use std::path::Path;

/// Fonts Chromium's Debian dependencies install; the first one present is served.
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Seconds of audio in the WAV (640 KB; the page checks the element's `duration` and seeks
/// near its end).
const AUDIO_SECONDS: u32 = 20;

/// One object of the site: bucket (= space), key, content type, body.
pub struct Object {
    pub bucket: &'static str,
    pub key: &'static str,
    pub mime: &'static str,
    pub body: Vec<u8>,
}

/// The site: a page in space `site`, a font and JSON in space `assets` (cross-origin).
pub fn objects(assets_origin: &str, reports: &str) -> Vec<Object> {
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
  // Text assets come compressed: Chromium accepts br, zstd and gzip and gets br.
  const app = resources.find((r) => r.name === new URL("/js/app.js", location.href).href);
  if (app) {
    check(app.encodedBodySize > 0 && app.encodedBodySize < app.decodedBodySize,
      `app.js sent compressed (${app.encodedBodySize} of ${app.decodedBodySize} bytes)`);
  }
  const again = await fetch("/js/app.js");
  const coding = again.headers.get("content-encoding");
  const text = await again.text();
  check(coding === "br" && text.includes("window.edgeChecks"), `app.js Content-Encoding ${coding}`);
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
