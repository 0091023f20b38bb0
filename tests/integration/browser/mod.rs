//! A real browser through the edge: headless Chromium loads a small site over HTTPS and
//! HTTP/2 (stylesheet, script, an SVG and a PNG, a font and a `fetch()` from a second space
//! that need CORS, one of them preflighted, and a WAV the media stack reads with `Range`),
//! the page checks every asset itself, writes a verdict into the DOM and reports it to the
//! test. A second load with an empty browser cache must be served from the edge's cache.

mod cdp;
mod chromium;
mod dashboard;
mod site;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use base64::Engine as _;
use rcgen::PublicKeyData as _;
use sha2::Digest as _;

use crate::common::s3::{S3cmd, origin_user};
use crate::common::{client_for, start_edge};
use chromium::{CHROMIUM, Reports, load};

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
    for object in site::objects(&assets_origin, &reports.url) {
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
