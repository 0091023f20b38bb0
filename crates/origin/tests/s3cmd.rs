//! A real S3 client we did not write (s3cmd 2.x: ListObjects V1, `?location`, SigV4 headers,
//! multipart, SigV2 presigned URLs) against the store.

use crate::common::{ALICE, BOB, S3cmd, Server, data, md5_hex};

fn file(dir: &std::path::Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_ls_get_del_and_public_vs_private() {
    let server = Server::start().await;
    let s3 = S3cmd::new(&server, ALICE);
    let tmp = tempfile::tempdir().unwrap();
    s3.ok(&["mb", "s3://site"]).await;

    let page = file(tmp.path(), "index.html", b"<h1>hello</h1>");
    s3.ok(&[
        "put",
        "--acl-public",
        "-m",
        "text/html; charset=utf-8",
        "--add-header",
        "Cache-Control: public, max-age=60",
        &page,
        "s3://site/index.html",
    ])
    .await;
    let secret = file(tmp.path(), "secret.txt", b"top secret");
    s3.ok(&["put", &secret, "s3://site/private/secret.txt"])
        .await;
    s3.ok(&["put", &secret, "s3://site/css/a.css"]).await;

    let ls = s3.ok(&["ls", "s3://site/"]).await;
    assert!(
        ls.contains("DIR") && ls.contains("s3://site/private/"),
        "{ls}"
    );
    assert!(ls.contains("s3://site/css/"), "{ls}");
    assert!(ls.contains("s3://site/index.html"), "{ls}");
    assert!(!ls.contains("secret.txt"), "directories roll up: {ls}");
    let ls = s3.ok(&["ls", "s3://site/private/"]).await;
    assert!(ls.contains("s3://site/private/secret.txt"), "{ls}");
    let buckets = s3.ok(&["ls"]).await;
    assert!(buckets.contains("s3://site"), "{buckets}");

    let got = tmp.path().join("got.html");
    s3.ok(&["get", "s3://site/index.html", got.to_str().unwrap()])
        .await;
    assert_eq!(std::fs::read(&got).unwrap(), b"<h1>hello</h1>");

    // Anonymous reads: public-read succeeds with the stored headers, private is refused.
    let resp = reqwest::get(server.url("/site/index.html")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(resp.headers()["cache-control"], "public, max-age=60");
    assert_eq!(
        resp.headers()["etag"],
        format!("\"{}\"", md5_hex(b"<h1>hello</h1>")).as_str()
    );
    assert!(resp.headers().contains_key("last-modified"));
    assert_eq!(resp.text().await.unwrap(), "<h1>hello</h1>");
    let resp = reqwest::get(server.url("/site/private/secret.txt"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let request_id = resp.headers()["x-amz-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = resp.text().await.unwrap();
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
    assert!(
        body.contains(&format!("<RequestId>{request_id}</RequestId>")),
        "{body}"
    );

    s3.ok(&["del", "s3://site/index.html"]).await;
    let resp = reqwest::get(server.url("/site/index.html")).await.unwrap();
    assert_eq!(
        resp.status(),
        403,
        "anonymous callers cannot learn a private bucket's keys"
    );
    let (ok, out) = s3
        .run(&[
            "get",
            "s3://site/index.html",
            tmp.path().join("x").to_str().unwrap(),
        ])
        .await;
    assert!(!ok && out.contains("does not exist"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload_of_20_mib() {
    let server = Server::start().await;
    let s3 = S3cmd::new(&server, ALICE);
    let tmp = tempfile::tempdir().unwrap();
    s3.ok(&["mb", "s3://big"]).await;
    let bytes = data(20 * 1024 * 1024 + 12345, 7);
    let src = file(tmp.path(), "big.bin", &bytes);
    s3.ok(&[
        "put",
        "--multipart-chunk-size-mb=5",
        &src,
        "s3://big/dir/big.bin",
    ])
    .await;
    let got = tmp.path().join("got.bin");
    s3.ok(&["get", "s3://big/dir/big.bin", got.to_str().unwrap()])
        .await;
    assert!(
        std::fs::read(&got).unwrap() == bytes,
        "multipart object reads back whole"
    );

    let head = server
        .request(Some(ALICE), "HEAD", "/big/dir/big.bin", &[], "")
        .await;
    assert_eq!(head.status, 200);
    let etag = head.header("etag").unwrap().to_owned();
    assert!(etag.ends_with("-5\""), "multipart ETag: {etag}");
    let list = server
        .request(Some(ALICE), "GET", "/big?uploads", &[], "")
        .await;
    assert!(
        !list.text().contains("<Upload>"),
        "no upload left behind: {}",
        list.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signurl_presigned_get() {
    let server = Server::start().await;
    let s3 = S3cmd::new(&server, ALICE);
    let tmp = tempfile::tempdir().unwrap();
    s3.ok(&["mb", "s3://docs"]).await;
    s3.ok(&[
        "put",
        &file(tmp.path(), "a.txt", b"presigned body"),
        "s3://docs/a b.txt",
    ])
    .await;
    let out = s3.ok(&["signurl", "s3://docs/a b.txt", "+300"]).await;
    let url = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("http"))
        .unwrap()
        .to_owned();
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    assert_eq!(resp.text().await.unwrap(), "presigned body");
    let tampered = url.replace("Signature=", "Signature=AA");
    let resp = reqwest::get(&tampered).await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("<Code>SignatureDoesNotMatch</Code>")
    );
    let unsigned = reqwest::get(server.url("/docs/a%20b.txt")).await.unwrap();
    assert_eq!(unsigned.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setacl_and_second_user() {
    let server = Server::start().await;
    let alice = S3cmd::new(&server, ALICE);
    let bob = S3cmd::new(&server, BOB);
    let tmp = tempfile::tempdir().unwrap();
    alice.ok(&["mb", "s3://alice-bucket"]).await;
    alice
        .ok(&[
            "put",
            &file(tmp.path(), "p.txt", b"private data"),
            "s3://alice-bucket/p.txt",
        ])
        .await;

    let out = tmp.path().join("out");
    let (ok, text) = bob
        .run(&[
            "get",
            "--force",
            "s3://alice-bucket/p.txt",
            out.to_str().unwrap(),
        ])
        .await;
    assert!(
        !ok && text.contains("403"),
        "bob must not read alice's private object: {text}"
    );
    let (ok, text) = bob.run(&["ls", "s3://alice-bucket/"]).await;
    assert!(
        !ok && text.contains("403"),
        "bob must not list alice's bucket: {text}"
    );
    let (ok, text) = bob
        .run(&["put", &file(tmp.path(), "x", b"x"), "s3://alice-bucket/x"])
        .await;
    assert!(!ok && text.contains("403"), "bob must not write: {text}");
    let (ok, text) = bob.run(&["mb", "s3://alice-bucket"]).await;
    assert!(!ok && text.contains("409"), "{text}");
    assert!(
        !bob.ok(&["ls"]).await.contains("alice-bucket"),
        "bob lists only his buckets"
    );

    assert_eq!(
        reqwest::get(server.url("/alice-bucket/p.txt"))
            .await
            .unwrap()
            .status(),
        403
    );
    alice
        .ok(&["setacl", "--acl-public", "s3://alice-bucket/p.txt"])
        .await;
    let resp = reqwest::get(server.url("/alice-bucket/p.txt"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "private data");
    bob.ok(&[
        "get",
        "--force",
        "s3://alice-bucket/p.txt",
        out.to_str().unwrap(),
    ])
    .await;
    assert_eq!(std::fs::read(&out).unwrap(), b"private data");

    let info = alice.ok(&["info", "s3://alice-bucket/p.txt"]).await;
    assert!(info.contains("*anon*: READ"), "{info}");
    assert!(info.contains("FULL_CONTROL"), "{info}");

    alice
        .ok(&["setacl", "--acl-private", "s3://alice-bucket/p.txt"])
        .await;
    assert_eq!(
        reqwest::get(server.url("/alice-bucket/p.txt"))
            .await
            .unwrap()
            .status(),
        403
    );

    // A grant to bob by e-mail lets him (and only him) read.
    alice
        .ok(&[
            "setacl",
            "--acl-grant=read:bob@example.com",
            "s3://alice-bucket/p.txt",
        ])
        .await;
    bob.ok(&[
        "get",
        "--force",
        "s3://alice-bucket/p.txt",
        out.to_str().unwrap(),
    ])
    .await;
    assert_eq!(
        reqwest::get(server.url("/alice-bucket/p.txt"))
            .await
            .unwrap()
            .status(),
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setpolicy_grants_public_read_on_a_prefix() {
    let server = Server::start().await;
    let s3 = S3cmd::new(&server, ALICE);
    let tmp = tempfile::tempdir().unwrap();
    s3.ok(&["mb", "s3://media"]).await;
    s3.ok(&[
        "put",
        &file(tmp.path(), "a", b"public a"),
        "s3://media/public/a.txt",
    ])
    .await;
    s3.ok(&[
        "put",
        &file(tmp.path(), "b", b"private b"),
        "s3://media/private/b.txt",
    ])
    .await;
    s3.ok(&[
        "put",
        &file(tmp.path(), "c", b"denied c"),
        "s3://media/public/deny/c.txt",
    ])
    .await;
    assert_eq!(
        reqwest::get(server.url("/media/public/a.txt"))
            .await
            .unwrap()
            .status(),
        403
    );

    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::media/public/*"]},
        {"Sid":"NotThat","Effect":"Deny","Principal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::media/public/deny/*"}]}"#;
    let policy_file = file(tmp.path(), "policy.json", policy.as_bytes());
    s3.ok(&["setpolicy", &policy_file, "s3://media"]).await;

    let resp = reqwest::get(server.url("/media/public/a.txt"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "public a");
    assert_eq!(
        reqwest::get(server.url("/media/private/b.txt"))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        reqwest::get(server.url("/media/public/deny/c.txt"))
            .await
            .unwrap()
            .status(),
        403
    );
    // As S3: without s3:ListBucket a missing key is not revealed (403, not 404).
    assert_eq!(
        reqwest::get(server.url("/media/public/missing.txt"))
            .await
            .unwrap()
            .status(),
        403
    );
    // The policy grants reads only: anonymous writes and listings stay refused.
    assert_eq!(
        reqwest::Client::new()
            .put(server.url("/media/public/new.txt"))
            .body("x")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        reqwest::get(server.url("/media?list-type=2"))
            .await
            .unwrap()
            .status(),
        403
    );
    // Deny beats Allow even for the owner's own reads.
    let (ok, text) = s3
        .run(&[
            "get",
            "--force",
            "s3://media/public/deny/c.txt",
            tmp.path().join("o").to_str().unwrap(),
        ])
        .await;
    assert!(!ok && text.contains("403"), "{text}");

    let info = s3.ok(&["info", "s3://media"]).await;
    assert!(info.contains("PublicRead"), "{info}");
    s3.ok(&["delpolicy", "s3://media"]).await;
    assert_eq!(
        reqwest::get(server.url("/media/public/a.txt"))
            .await
            .unwrap()
            .status(),
        403
    );

    let bad = file(tmp.path(), "bad.json", br#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}]}"#);
    let (ok, text) = s3.run(&["setpolicy", &bad, "s3://media"]).await;
    assert!(!ok && text.contains("MalformedPolicy"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setcors_and_preflight() {
    let server = Server::start().await;
    let s3 = S3cmd::new(&server, ALICE);
    let tmp = tempfile::tempdir().unwrap();
    s3.ok(&["mb", "s3://fonts"]).await;
    s3.ok(&[
        "put",
        "--acl-public",
        &file(tmp.path(), "f", b"font"),
        "s3://fonts/f.woff2",
    ])
    .await;
    let client = reqwest::Client::new();
    let preflight = || {
        client
            .request(reqwest::Method::OPTIONS, server.url("/fonts/f.woff2"))
            .header("Origin", "https://app.example.com")
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "range")
    };
    let resp = preflight().send().await.unwrap();
    assert_eq!(resp.status(), 403, "no CORS configured yet");

    let cors = r#"<CORSConfiguration>
  <CORSRule>
    <AllowedOrigin>https://*.example.com</AllowedOrigin>
    <AllowedMethod>GET</AllowedMethod>
    <AllowedMethod>HEAD</AllowedMethod>
    <AllowedHeader>*</AllowedHeader>
    <ExposeHeader>ETag</ExposeHeader>
    <MaxAgeSeconds>3000</MaxAgeSeconds>
  </CORSRule>
</CORSConfiguration>"#;
    s3.ok(&[
        "setcors",
        &file(tmp.path(), "cors.xml", cors.as_bytes()),
        "s3://fonts",
    ])
    .await;

    let resp = preflight().send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("GET")
    );
    assert_eq!(h["access-control-allow-headers"], "range");
    assert_eq!(h["access-control-max-age"], "3000");
    assert!(h.contains_key("x-amz-request-id"));

    let resp = client
        .request(reqwest::Method::OPTIONS, server.url("/fonts/f.woff2"))
        .header("Origin", "https://evil.test")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("CORSResponse"));

    let resp = client
        .get(server.url("/fonts/f.woff2"))
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(resp.headers()["access-control-expose-headers"], "ETag");
    let resp = client
        .get(server.url("/fonts/f.woff2"))
        .header("Origin", "https://evil.test")
        .send()
        .await
        .unwrap();
    assert!(!resp.headers().contains_key("access-control-allow-origin"));

    let info = s3.ok(&["info", "s3://fonts"]).await;
    assert!(info.contains("AllowedOrigin"), "{info}");
    s3.ok(&["delcors", "s3://fonts"]).await;
    assert_eq!(preflight().send().await.unwrap().status(), 403);
}
