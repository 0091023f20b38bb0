//! Objects uploaded to RGW with s3cmd and served through the edge: public and private
//! (signed) objects with their metadata and CORS, presigned URLs, ranges across multipart
//! part boundaries, revalidation with RGW's ETags, reserved characters in keys, and a purge
//! after an overwrite.

use std::time::Duration;

use super::{config, purge, space, url};
use crate::common::ceph::cluster;
use crate::common::{TestEdge, cache_status, client, start_edge};

const CORS: &str = r#"<CORSConfiguration>
  <CORSRule>
    <AllowedOrigin>https://app.example</AllowedOrigin>
    <AllowedMethod>GET</AllowedMethod>
    <AllowedMethod>HEAD</AllowedMethod>
    <AllowedHeader>*</AllowedHeader>
    <ExposeHeader>ETag</ExposeHeader>
    <MaxAgeSeconds>600</MaxAgeSeconds>
  </CORSRule>
</CORSConfiguration>"#;

/// An edge named `pop` in front of the cluster with one anonymous space `pub` on `bucket`.
async fn public_edge(pop: &str, bucket: &str) -> TestEdge {
    start_edge(&config(
        pop,
        &cluster().endpoint,
        "",
        &space("pub", bucket, ""),
    ))
    .await
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The ETag RGW itself gives `bucket/key` (a signed HEAD straight to the gateway, through
/// a presigned URL so no S3 SDK is needed).
async fn rgw_etag(bucket: &str, key: &str) -> String {
    let ceph = cluster();
    let query = ceph.presign(bucket, key, Duration::from_secs(60));
    let r = reqwest::Client::new()
        .get(format!("{}/{bucket}/{key}?{query}", ceph.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{bucket}/{key} on RGW");
    header(&r, "etag")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_and_signed_private_objects_with_metadata_and_cors() {
    let ceph = cluster();
    let dir = tempfile::tempdir().unwrap();
    let s3 = ceph.s3cmd(dir.path());
    let bucket = ceph.bucket(&s3, "objects");
    s3.put(
        dir.path(),
        b"body { color: teal }",
        &format!("s3://{bucket}/css/site.css"),
        &[
            "--acl-public",
            "--mime-type=text/css",
            "--add-header=Cache-Control:max-age=300",
            "--add-header=Content-Disposition:inline; filename=\"site.css\"",
            "--add-header=x-amz-meta-team:web",
        ],
    );
    s3.put(
        dir.path(),
        b"quarterly numbers",
        &format!("s3://{bucket}/private/report.txt"),
        &[],
    );
    let file = dir.path().join("cors.xml");
    std::fs::write(&file, CORS).unwrap();
    s3.run(&["setcors", file.to_str().unwrap(), &format!("s3://{bucket}")]);

    let edge = start_edge(&config(
        "ceph-objects",
        &ceph.endpoint,
        "",
        &format!(
            "{}{}",
            space("pub", &bucket, ""),
            space("priv", &bucket, "origin_auth = \"signed\"")
        ),
    ))
    .await;
    let c = client(&["pub", "priv"], &[]);
    let at = |space: &str, path: &str| url(edge.http_addr, space, path);

    let r = c.get(at("pub", "/css/site.css")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(cache_status(&r), "ceph-objects; fwd=miss; stored");
    assert_eq!(header(&r, "content-type"), "text/css");
    assert_eq!(header(&r, "cache-control"), "max-age=300");
    assert_eq!(
        header(&r, "content-disposition"),
        "inline; filename=\"site.css\""
    );
    assert_eq!(header(&r, "x-amz-meta-team"), "web");
    let etag = header(&r, "etag");
    assert_eq!(etag, rgw_etag(&bucket, "css/site.css").await);
    assert_eq!(r.text().await.unwrap(), "body { color: teal }");
    let r = c.get(at("pub", "/css/site.css")).send().await.unwrap();
    let status = cache_status(&r);
    assert!(status.starts_with("ceph-objects; hit; ttl="), "{status}");
    let ttl = crate::common::ttl_of(&status).unwrap();
    assert!((1..=300).contains(&ttl), "the object's max-age: {status}");
    let r = c.head(at("pub", "/css/site.css")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), "20");

    // A private object: RGW refuses the anonymous space, every time (nothing stored); the
    // signed space reads it with the user's keys.
    for _ in 0..2 {
        let r = c
            .get(at("pub", "/private/report.txt"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert!(!cache_status(&r).contains("hit"), "{}", cache_status(&r));
        assert!(r.text().await.unwrap().contains("AccessDenied"));
    }
    let r = c
        .get(at("priv", "/private/report.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "quarterly numbers");

    // CORS: RGW answers by the request's Origin; the edge keeps a variant per Origin.
    for _ in 0..2 {
        let r = c
            .get(at("pub", "/css/site.css"))
            .header("origin", "https://app.example")
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(&r, "access-control-allow-origin"),
            "https://app.example"
        );
        assert!(header(&r, "vary").to_ascii_lowercase().contains("origin"));
        let r = c
            .get(at("pub", "/css/site.css"))
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "access-control-allow-origin"), "");
    }
    let preflight = c
        .request(reqwest::Method::OPTIONS, at("pub", "/css/site.css"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    assert_eq!(
        header(&preflight, "access-control-allow-origin"),
        "https://app.example"
    );
    assert!(header(&preflight, "access-control-allow-methods").contains("GET"));
    let refused = c
        .request(reqwest::Method::OPTIONS, at("pub", "/css/site.css"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "RGW refuses an unlisted origin");
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_open_only_their_object_until_they_expire() {
    let ceph = cluster();
    let dir = tempfile::tempdir().unwrap();
    let s3 = ceph.s3cmd(dir.path());
    let bucket = ceph.bucket(&s3, "presign");
    for key in ["p.txt", "other.txt"] {
        s3.put(
            dir.path(),
            key.as_bytes(),
            &format!("s3://{bucket}/{key}"),
            &[],
        );
    }
    let edge = public_edge("ceph-presign", &bucket).await;
    let c = client(&["pub"], &[]);
    let at = |path: &str| url(edge.http_addr, "pub", path);

    let query = ceph.presign(&bucket, "p.txt", Duration::from_secs(300));
    let r = c.get(at(&format!("/p.txt?{query}"))).send().await.unwrap();
    assert_eq!(r.status(), 200, "RGW accepts the presign parameters");
    assert_eq!(r.text().await.unwrap(), "p.txt");
    let r = c
        .get(at(&format!("/other.txt?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "the signature names p.txt only");
    assert!(r.text().await.unwrap().contains("SignatureDoesNotMatch"));
    let r = c.get(at("/p.txt")).send().await.unwrap();
    assert_eq!(r.status(), 403, "not served without its signature");

    // A URL valid for one second: refused once it has expired (by the edge or by RGW).
    let short = ceph.presign(&bucket, "p.txt", Duration::from_secs(1));
    let r = c.get(at(&format!("/p.txt?{short}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = c.get(at(&format!("/p.txt?{short}"))).send().await.unwrap();
    assert_eq!(r.status(), 403);
    edge.stop().await;
}

/// Byte `i` of the multipart test object.
fn byte(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 9)) as u8
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_across_multipart_part_boundaries_and_revalidation_of_its_etag() {
    const PART: usize = 5 << 20;
    const LEN: usize = 2 * PART + (2 << 20);
    let ceph = cluster();
    let dir = tempfile::tempdir().unwrap();
    let s3 = ceph.s3cmd(dir.path());
    let bucket = ceph.bucket(&s3, "multipart");
    let data: Vec<u8> = (0..LEN).map(byte).collect();
    s3.put(
        dir.path(),
        &data,
        &format!("s3://{bucket}/big.bin"),
        &[
            "--acl-public",
            "--multipart-chunk-size-mb=5",
            "--add-header=Cache-Control:max-age=1",
        ],
    );
    let rgw = rgw_etag(&bucket, "big.bin").await;
    assert!(rgw.ends_with("-3\""), "three parts: {rgw}");

    let edge = public_edge("ceph-ranges", &bucket).await;
    let c = client(&["pub"], &[]);
    let big = url(edge.http_addr, "pub", "/big.bin");
    let range = |spec: &'static str| c.get(&big).header("range", spec).send();

    // Cold: the edge fetches the whole object and answers the range from the fill.
    let (a, b) = (PART - 10, PART + 9);
    let r = range("bytes=5242870-5242889").await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(header(&r, "content-range"), format!("bytes {a}-{b}/{LEN}"));
    assert_eq!(header(&r, "etag"), rgw);
    assert_eq!(&r.bytes().await.unwrap()[..], &data[a..=b]);

    // The rest from the stored object, once the fill has streamed in.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cache_status(&range("bytes=0-0").await.unwrap()).contains("hit") {
        assert!(std::time::Instant::now() < deadline, "the fill never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (a, b) = (2 * PART - 3, 2 * PART + 2);
    let r = range("bytes=10485757-10485762").await.unwrap();
    assert_eq!(r.status(), 206);
    assert!(cache_status(&r).contains("hit"), "{}", cache_status(&r));
    assert_eq!(&r.bytes().await.unwrap()[..], &data[a..=b]);

    let r = range("bytes=-7").await.unwrap();
    assert_eq!(&r.bytes().await.unwrap()[..], &data[LEN - 7..]);

    let r = range("bytes=5242879-5242880,10485759-10485760")
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert!(header(&r, "content-type").starts_with("multipart/byteranges"));
    let body = r.bytes().await.unwrap();
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(contains(&data[PART - 1..=PART]) && contains(&data[2 * PART - 1..=2 * PART]));
    assert!(contains(
        format!("content-range: bytes {}-{}/{LEN}", PART - 1, PART).as_bytes()
    ));

    let r = c.get(&big).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), LEN);

    // Stale after a second: revalidated with RGW's multipart ETag, answered 304 by RGW.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = range("bytes=5242870-5242889").await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        cache_status(&r),
        "ceph-ranges; fwd=stale; fwd-status=304; stored"
    );
    assert_eq!(&r.bytes().await.unwrap()[..], &data[PART - 10..PART + 10]);
    let r = c
        .get(&big)
        .header("if-none-match", &rgw)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revalidation_with_rgw_etags_sees_overwrites() {
    let ceph = cluster();
    let dir = tempfile::tempdir().unwrap();
    let s3 = ceph.s3cmd(dir.path());
    let bucket = ceph.bucket(&s3, "revalidate");
    let target = format!("s3://{bucket}/r.txt");
    let options = ["--acl-public", "--add-header=Cache-Control:max-age=1"];
    s3.put(dir.path(), b"version one", &target, &options);
    let edge = public_edge("ceph-reval", &bucket).await;
    let c = client(&["pub"], &[]);
    let r_txt = url(edge.http_addr, "pub", "/r.txt");

    let r = c.get(&r_txt).send().await.unwrap();
    let v1 = header(&r, "etag");
    assert_eq!(v1, rgw_etag(&bucket, "r.txt").await);
    assert_eq!(r.text().await.unwrap(), "version one");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = c.get(&r_txt).send().await.unwrap();
    assert_eq!(
        cache_status(&r),
        "ceph-reval; fwd=stale; fwd-status=304; stored"
    );
    assert_eq!(r.text().await.unwrap(), "version one");

    s3.put(dir.path(), b"version two", &target, &options);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = c.get(&r_txt).send().await.unwrap();
    let status = cache_status(&r);
    assert!(status.contains("fwd-status=200"), "{status}");
    let v2 = header(&r, "etag");
    assert_ne!(v1, v2);
    assert_eq!(r.text().await.unwrap(), "version two");
    // The client's own validator, answered from the cache.
    let r = c
        .get(&r_txt)
        .header("if-none-match", &v2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    edge.stop().await;
}

/// Keys with characters that URLs and SigV4 both reserve, each object's body its own key.
const ODD_KEYS: &[&str] = &[
    "with space/and+plus&amp=eq;semi,comma.txt",
    "colon:at@dollar$bang!quote'paren(star)*tilde~.txt",
    "literal%41percent.txt",
    "question?hash#.txt",
    "ünï/日本語 ファイル.txt",
    "brackets[1]{2}^caret`tick|pipe.txt",
];

/// `key` as an edge URL path: every byte but unreserved ones and `/` percent-encoded.
fn encode(key: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'/');
    format!("/{}", percent_encoding::utf8_percent_encode(key, SET))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_with_reserved_characters_anonymous_and_signed() {
    let ceph = cluster();
    let dir = tempfile::tempdir().unwrap();
    let s3 = ceph.s3cmd(dir.path());
    let bucket = ceph.bucket(&s3, "oddkeys");
    for key in ODD_KEYS {
        s3.put(
            dir.path(),
            key.as_bytes(),
            &format!("s3://{bucket}/{key}"),
            &["--acl-public"],
        );
    }
    let edge = start_edge(&config(
        "ceph-keys",
        &ceph.endpoint,
        "",
        &format!(
            "{}{}",
            space("pub", &bucket, ""),
            space("priv", &bucket, "origin_auth = \"signed\"")
        ),
    ))
    .await;
    let c = client(&["pub", "priv"], &[]);
    for space in ["pub", "priv"] {
        for key in ODD_KEYS {
            let r = c
                .get(url(edge.http_addr, space, &encode(key)))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{space}: {key}");
            assert_eq!(r.text().await.unwrap(), *key, "{space}: {key}");
        }
    }
    // `%41` in a URL is `A`: another key, which does not exist.
    let r = c
        .get(url(edge.http_addr, "pub", "/literal%41percent.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "RGW hides missing keys from anonymous readers"
    );
    let r = c
        .get(url(edge.http_addr, "priv", "/literal%41percent.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("NoSuchKey"));
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_after_an_overwrite_serves_the_new_object() {
    let ceph = cluster();
    let dir = tempfile::tempdir().unwrap();
    let s3 = ceph.s3cmd(dir.path());
    let bucket = ceph.bucket(&s3, "purge");
    let target = format!("s3://{bucket}/app.js");
    let options = ["--acl-public", "--add-header=Cache-Control:max-age=3600"];
    s3.put(dir.path(), b"console.log(1)", &target, &options);
    let edge = public_edge("ceph-purge", &bucket).await;
    let c = client(&["pub"], &[]);
    let app = url(edge.http_addr, "pub", "/app.js");
    c.get(&app).send().await.unwrap().bytes().await.unwrap();

    s3.put(dir.path(), b"console.log(2)", &target, &options);
    let r = c.get(&app).send().await.unwrap();
    assert!(cache_status(&r).contains("hit"));
    assert_eq!(
        r.text().await.unwrap(),
        "console.log(1)",
        "fresh for an hour"
    );

    let reply = purge(&c, edge.admin_addr, "pub", &["/app.js"]).await;
    assert_eq!(reply["pops"][0]["status"], "done", "{reply}");
    assert_eq!(reply["pops"][0]["dropped"], 1, "{reply}");
    let r = c.get(&app).send().await.unwrap();
    assert_eq!(cache_status(&r), "ceph-purge; fwd=miss; stored");
    assert_eq!(r.text().await.unwrap(), "console.log(2)");
    edge.stop().await;
}
