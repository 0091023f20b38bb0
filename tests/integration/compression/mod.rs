//! Compression at the edge: `br`, `zstd` and `gzip` negotiated by `Accept-Encoding`, made once
//! per object from one origin fetch, served from the cache, decoded here with the real
//! decoders to the exact bytes the origin holds.

mod background;

use std::io::Read;

use crate::common::origin::{Route, ScriptedOrigin};
use crate::common::{cache_status, client, edge_url, http_origin_config, space, start_edge};

/// A script-like body of `len` bytes (compressible, not trivially).
pub(super) fn script(len: usize, seed: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i: u32 = 0;
    while out.len() < len {
        let line = format!(
            "function f{i}_{seed}(a, b) {{ return a * {} + b - {}; }} // {}\n",
            i.wrapping_mul(2_654_435_761) % 9973,
            i % 17,
            i % 5
        );
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// Decodes `body` from `coding` with the real decoders.
pub(super) fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "br" => brotli::BrotliDecompress(&mut &body[..], &mut out).unwrap(),
        "zstd" => out = zstd::stream::decode_all(body).unwrap(),
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        "" => out = body.to_vec(),
        other => panic!("unexpected coding {other}"),
    }
    out
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect::<Vec<_>>()
        .join(", ")
}

fn varies_on_accept_encoding(r: &reqwest::Response) -> bool {
    header(r, "vary")
        .split(',')
        .any(|n| n.trim().eq_ignore_ascii_case("accept-encoding"))
}

/// GETs `url` with `Accept-Encoding: accept` (none if empty): (coding, raw body, response
/// fields as a map).
pub(super) async fn get(
    c: &reqwest::Client,
    url: &str,
    accept: &str,
) -> (String, Vec<u8>, reqwest::header::HeaderMap, String) {
    let mut request = c.get(url);
    if !accept.is_empty() {
        request = request.header("accept-encoding", accept);
    }
    let r = request.send().await.unwrap();
    assert_eq!(r.status(), 200, "{url} {accept}");
    assert!(varies_on_accept_encoding(&r) || header(&r, "content-encoding").is_empty());
    let coding = header(&r, "content-encoding");
    let status = cache_status(&r);
    let headers = r.headers().clone();
    let body = r.bytes().await.unwrap().to_vec();
    assert_eq!(
        headers["content-length"].to_str().unwrap(),
        body.len().to_string()
    );
    (coding, body, headers, status)
}

pub(super) fn js_origin(origin: &ScriptedOrigin, path: &str, body: Vec<u8>, etag: &str) {
    origin.route(
        path,
        Route::ok(body)
            .header("content-type", "application/javascript")
            .header("etag", etag)
            .header("cache-control", "max-age=3600"),
    );
}

#[tokio::test]
async fn one_origin_fetch_serves_every_coding_each_decoding_to_the_original() {
    let origin = ScriptedOrigin::start().await;
    let original = script(30 << 10, 1);
    js_origin(&origin, "/app.js", original.clone(), "\"v1\"");
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let c = client(&["assets"], &[]);
    let url = edge_url(&edge, "assets", "/app.js");

    // The first request is a miss asking for brotli: coded from the fill.
    let (coding, body, headers, status) = get(&c, &url, "gzip, deflate, br, zstd").await;
    assert_eq!(coding, "br");
    assert!(status.contains("miss"), "{status}");
    assert_eq!(decode("br", &body), original);
    assert!(body.len() < original.len() / 4, "br: {}", body.len());
    let mut etags = vec![headers["etag"].to_str().unwrap().to_owned()];

    let (coding, body, headers, _) = get(&c, &url, "").await;
    assert_eq!(coding, "");
    assert_eq!(body, original);
    etags.push(headers["etag"].to_str().unwrap().to_owned());
    assert_eq!(etags[1], "\"v1\"");

    for accept in ["zstd", "gzip", "x-gzip"] {
        let (coding, body, headers, status) = get(&c, &url, accept).await;
        let expected = if accept == "x-gzip" { "gzip" } else { accept };
        assert_eq!(coding, expected);
        assert!(status.contains("hit"), "{accept}: {status}");
        assert_eq!(decode(expected, &body), original, "{accept}");
        etags.push(headers["etag"].to_str().unwrap().to_owned());
    }
    // Again, every coding now from the memory tier.
    for accept in ["br", "zstd", "gzip", "identity"] {
        let (coding, body, _, status) = get(&c, &url, accept).await;
        assert!(status.contains("hit"), "{accept}: {status}");
        let coding = if coding.is_empty() { "" } else { &coding };
        assert_eq!(decode(coding, &body), original, "{accept}");
    }
    assert_eq!(
        origin.hits(),
        1,
        "one origin fetch for identity, br, zstd, gzip"
    );
    // Each body has its own validator; gzip and x-gzip are one variant.
    assert_eq!(etags[3], etags[4], "{etags:?}");
    let distinct: std::collections::HashSet<_> = etags.iter().collect();
    assert_eq!(distinct.len(), 4, "{etags:?}");
    edge.stop().await;
}

#[tokio::test]
async fn concurrent_first_requests_share_one_fetch_and_one_coding() {
    let origin = ScriptedOrigin::start().await;
    let original = script(30 << 10, 2);
    js_origin(&origin, "/burst.js", original.clone(), "\"b\"");
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let c = client(&["assets"], &[]);
    let url = edge_url(&edge, "assets", "/burst.js");
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (c, url) = (c.clone(), url.clone());
        let accept = ["br", "zstd", "gzip"][i % 3];
        tasks.push(tokio::spawn(async move {
            let (coding, body, _, _) = get(&c, &url, accept).await;
            (accept, coding, body)
        }));
    }
    for task in tasks {
        let (accept, coding, body) = task.await.unwrap();
        // A request may get the identity while its coding is made by another; never a
        // wrong body.
        assert!(coding == accept || coding.is_empty(), "{accept}: {coding}");
        assert_eq!(decode(&coding, &body), original);
    }
    assert_eq!(origin.hits(), 1);
    edge.stop().await;
}

#[tokio::test]
async fn q_values_choose_the_coding() {
    let origin = ScriptedOrigin::start().await;
    let original = script(8 << 10, 3);
    js_origin(&origin, "/q.js", original.clone(), "\"q\"");
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let c = client(&["assets"], &[]);
    let url = edge_url(&edge, "assets", "/q.js");
    let cases = [
        ("br;q=0.5, gzip;q=0.8", "gzip"),
        ("br;q=0.5, gzip;q=0.8, zstd;q=0.8", "zstd"),
        ("gzip;q=0, *", "br"),
        ("*;q=0.1, br;q=0", "zstd"),
        ("BR;Q=1", "br"),
        ("gzip;q=0.5, identity", ""),
        ("br;q=0, zstd;q=0, gzip;q=0", ""),
        ("deflate, compress", ""),
        ("br;q=7, gzip", "gzip"),
        ("", ""),
    ];
    for (accept, expected) in cases {
        let mut request = c.get(&url).header("accept-encoding", accept);
        if accept.is_empty() {
            request = c.get(&url);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(varies_on_accept_encoding(&r), "{accept}");
        let coding = header(&r, "content-encoding");
        assert_eq!(coding, expected, "Accept-Encoding: {accept}");
        let body = r.bytes().await.unwrap();
        assert_eq!(decode(&coding, &body), original, "{accept}");
    }
    // A client asking for no transformation gets the identity.
    let r = c
        .get(&url)
        .header("accept-encoding", "br")
        .header("cache-control", "no-transform")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "content-encoding"), "");
    assert!(varies_on_accept_encoding(&r));
    assert_eq!(origin.hits(), 1);
    edge.stop().await;
}

#[tokio::test]
async fn images_small_bodies_encoded_and_no_transform_objects_are_sent_as_they_are() {
    let origin = ScriptedOrigin::start().await;
    let text = script(32 << 10, 4);
    origin.route(
        "/photo.png",
        Route::ok(text.clone()).header("content-type", "image/png"),
    );
    origin.route(
        "/font.woff2",
        Route::ok(text.clone()).header("content-type", "font/woff2"),
    );
    origin.route(
        "/small.js",
        Route::ok(script(3000, 4)).header("content-type", "application/javascript"),
    );
    let pre = text.clone();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &pre).unwrap();
    let pre_encoded = gz.finish().unwrap();
    origin.route(
        "/pre.js",
        Route::ok(pre_encoded.clone())
            .header("content-type", "application/javascript")
            .header("content-encoding", "gzip"),
    );
    origin.route(
        "/fixed.css",
        Route::ok(text.clone())
            .header("content-type", "text/css")
            .header("cache-control", "max-age=60, no-transform"),
    );
    origin.route(
        "/styles.css",
        Route::ok(text.clone()).header("content-type", "text/css"),
    );
    // cache.compress_min raised to 4KiB: the 3000-byte script is below it.
    let config = http_origin_config(
        &origin.url(),
        &format!(
            "{}{}",
            space("assets", ""),
            space("plain", "compress = false")
        ),
    )
    .replace("[cache]\n", "[cache]\ncompress_min = \"4KiB\"\n");
    let edge = start_edge(&config).await;
    let c = client(&["assets", "plain"], &[]);
    for path in ["/photo.png", "/font.woff2", "/small.js", "/fixed.css"] {
        for _ in 0..2 {
            let r = c
                .get(edge_url(&edge, "assets", path))
                .header("accept-encoding", "br, zstd, gzip")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(header(&r, "content-encoding"), "", "{path}");
            assert!(!varies_on_accept_encoding(&r), "{path}");
        }
    }
    // The origin's own coding is served as it is, whatever the request accepts.
    for accept in ["br", "gzip", ""] {
        let r = c
            .get(edge_url(&edge, "assets", "/pre.js"))
            .header("accept-encoding", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(header(&r, "content-encoding"), "gzip");
        assert_eq!(r.bytes().await.unwrap().to_vec(), pre_encoded);
    }
    // A space with `compress = false` never codes.
    let r = c
        .get(edge_url(&edge, "plain", "/styles.css"))
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "content-encoding"), "");
    assert!(!varies_on_accept_encoding(&r));
    assert_eq!(r.bytes().await.unwrap().to_vec(), text);
    // The same object in a space that compresses.
    let (coding, body, _, _) = get(&c, &edge_url(&edge, "assets", "/styles.css"), "br").await;
    assert_eq!(coding, "br");
    assert_eq!(decode("br", &body), text);
    edge.stop().await;
}

#[tokio::test]
async fn ranges_and_validators_apply_to_the_coded_variant() {
    let origin = ScriptedOrigin::start().await;
    let original = script(24 << 10, 5);
    js_origin(&origin, "/r.js", original.clone(), "\"r1\"");
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let c = client(&["assets"], &[]);
    let url = edge_url(&edge, "assets", "/r.js");
    // A range asked on a miss: the range of the coded body.
    let r = c
        .get(&url)
        .header("accept-encoding", "gzip")
        .header("range", "bytes=10-99")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(header(&r, "content-encoding"), "gzip");
    let first_range = r.bytes().await.unwrap().to_vec();
    let (_, gzip, headers, _) = get(&c, &url, "gzip").await;
    assert_eq!(first_range, gzip[10..100]);
    let gzip_etag = headers["etag"].to_str().unwrap().to_owned();
    assert_ne!(gzip_etag, "\"r1\"");

    let (_, br, headers, _) = get(&c, &url, "br").await;
    let br_etag = headers["etag"].to_str().unwrap().to_owned();
    let r = c
        .get(&url)
        .header("accept-encoding", "br")
        .header("range", "bytes=100-")
        .header("if-range", &br_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(header(&r, "content-encoding"), "br");
    assert_eq!(
        header(&r, "content-range"),
        format!("bytes 100-{}/{}", br.len() - 1, br.len())
    );
    assert!(varies_on_accept_encoding(&r));
    assert_eq!(r.bytes().await.unwrap().to_vec(), br[100..]);
    // If-Range with another variant's validator: the whole coded body.
    let r = c
        .get(&url)
        .header("accept-encoding", "br")
        .header("range", "bytes=100-")
        .header("if-range", &gzip_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), br);

    // If-None-Match matches the variant the response would declare, only.
    let r = c
        .get(&url)
        .header("accept-encoding", "br")
        .header("if-none-match", &br_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(header(&r, "etag"), br_etag);
    assert!(varies_on_accept_encoding(&r));
    let r = c
        .get(&url)
        .header("accept-encoding", "br")
        .header("if-none-match", "\"r1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(&url)
        .header("if-none-match", "\"r1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(origin.hits(), 1);
    edge.stop().await;
}

#[tokio::test]
async fn a_purge_drops_every_coded_variant() {
    let origin = ScriptedOrigin::start().await;
    let before = script(20 << 10, 6);
    js_origin(&origin, "/p.js", before.clone(), "\"p1\"");
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let c = client(&["assets"], &[]);
    let url = edge_url(&edge, "assets", "/p.js");
    for accept in ["br", "zstd", "gzip", ""] {
        let (coding, body, _, _) = get(&c, &url, accept).await;
        assert_eq!(decode(&coding, &body), before);
    }
    let (memory_bytes, memory_entries) = edge.edge.cache.memory_usage();
    assert_eq!(
        memory_entries, 4,
        "identity and three variants ({memory_bytes} B)"
    );

    let after = script(20 << 10, 7);
    js_origin(&origin, "/p.js", after.clone(), "\"p2\"");
    let r = c
        .delete(format!(
            "http://{}/v1/spaces/assets/cache",
            edge.admin_addr.unwrap()
        ))
        .bearer_auth("test-purge-token")
        .json(&serde_json::json!({ "files": ["p.js"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(edge.edge.cache.memory_usage().1, 0);
    for accept in ["gzip", "zstd", "br", ""] {
        let (coding, body, _, _) = get(&c, &url, accept).await;
        assert_eq!(decode(&coding, &body), after, "{accept}");
    }
    assert_eq!(origin.hits(), 2);

    // A tag purge drops the variants with their identity; a soft purge makes them stale
    // with it, and the revalidated identity gets new ones.
    let tagged = script(20 << 10, 10);
    origin.route(
        "/t.js",
        Route::ok(tagged.clone())
            .header("content-type", "application/javascript")
            .header("etag", "\"t\"")
            .header("cache-control", "max-age=3600")
            .header("surrogate-key", "bundle"),
    );
    let url = edge_url(&edge, "assets", "/t.js");
    for accept in ["br", "gzip", ""] {
        let (coding, body, headers, _) = get(&c, &url, accept).await;
        assert_eq!(decode(&coding, &body), tagged);
        assert!(!headers.contains_key("surrogate-key"));
    }
    let entries = edge.edge.cache.memory_usage().1;
    let r = c
        .delete(format!(
            "http://{}/v1/spaces/assets/cache",
            edge.admin_addr.unwrap()
        ))
        .bearer_auth("test-purge-token")
        .json(&serde_json::json!({ "tags": ["bundle"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(edge.edge.cache.memory_usage().1, entries - 3);
    let hits = origin.hits();
    let (coding, body, _, status) = get(&c, &url, "br").await;
    assert_eq!(coding, "br");
    assert!(status.contains("miss"), "{status}");
    assert_eq!(decode("br", &body), tagged);
    assert_eq!(origin.hits(), hits + 1);
    edge.stop().await;
}

#[tokio::test]
async fn coded_variants_are_stored_on_disk_and_served_after_a_restart() {
    let origin = ScriptedOrigin::start().await;
    let original = script(30 << 10, 8);
    js_origin(&origin, "/d.js", original.clone(), "\"d\"");
    let dir = tempfile::tempdir().unwrap();
    let config = http_origin_config(&origin.url(), &space("assets", "")).replace(
        "[cache]\n",
        &format!("[cache]\ndisk_path = \"{}\"\n", dir.path().display()),
    );
    let c = client(&["assets"], &[]);
    let edge = start_edge(&config).await;
    let url = edge_url(&edge, "assets", "/d.js");
    for accept in ["", "br", "gzip"] {
        let (coding, body, _, _) = get(&c, &url, accept).await;
        assert_eq!(decode(&coding, &body), original);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while edge.edge.cache.disk_usage().1 < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "identity and two variants on disk"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    edge.stop().await;

    let edge = start_edge(&config).await;
    let url = edge_url(&edge, "assets", "/d.js");
    for accept in ["gzip", "br", ""] {
        let (coding, body, _, status) = get(&c, &url, accept).await;
        assert!(status.contains("hit"), "{accept}: {status}");
        assert_eq!(coding, accept);
        assert_eq!(decode(&coding, &body), original);
    }
    assert_eq!(edge.edge.cache.disk_usage().1, 3);
    assert_eq!(origin.hits(), 1);
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_objects_are_coded_per_origin_variant() {
    use crate::common::s3::{S3cmd, origin_user};
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[pop]\nname = \"z\"\n[listen]\nhttp = \"127.0.0.1:0\"\n[cache]\ndefault_ttl = \"1h\"\n\
         [origin]\nkind = \"embedded\"\ndata_dir = \"{}\"\n{}\n[[space]]\nname = \"site\"\n",
        dir.path().join("origin").display(),
        origin_user()
    );
    let edge = start_edge(&config).await;
    let s3 = S3cmd::new(dir.path(), edge.origin_addr.unwrap());
    let original = script(24 << 10, 9);
    let file = dir.path().join("app.js");
    std::fs::write(&file, &original).unwrap();
    s3.run(&[
        "put",
        "--acl-public",
        "--no-preserve",
        "--mime-type=application/javascript",
        file.to_str().unwrap(),
        "s3://site/app.js",
    ]);
    let c = client(&["site"], &[]);
    let port = edge.http_addr.unwrap().port();
    let url = format!("http://site.local.cdn.localhost:{port}/app.js");
    for round in 0..2 {
        for (from, accept) in [
            (None, "br"),
            (Some("https://a.example"), "gzip"),
            (Some("https://b.example"), "zstd, gzip"),
            (None, ""),
        ] {
            let mut request = c.get(&url);
            if let Some(from) = from {
                request = request.header("origin", from);
            }
            if !accept.is_empty() {
                request = request.header("accept-encoding", accept);
            }
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 200);
            if round == 1 {
                assert!(cache_status(&r).contains("hit"), "{}", cache_status(&r));
            }
            let vary = header(&r, "vary").to_ascii_lowercase();
            assert!(vary.contains("origin") && vary.contains("accept-encoding"));
            let coding = header(&r, "content-encoding");
            assert_eq!(coding, accept.split(',').next().unwrap());
            let body = r.bytes().await.unwrap();
            assert_eq!(decode(&coding, &body), original, "{from:?} {accept}");
        }
    }
    edge.stop().await;
}
