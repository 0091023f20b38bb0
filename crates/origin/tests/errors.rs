//! Error answers: S3 codes, statuses and request ids; bad input changes nothing.

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::common::{ALICE, BOB, Server, User, md5_hex, sign};

async fn server_with_bucket() -> Server {
    let server = Server::start().await;
    assert!(server.store.ensure_bucket("bkt", ALICE.id).unwrap());
    server
}

async fn head_status(server: &Server, path: &str) -> u16 {
    server
        .request(Some(ALICE), "HEAD", path, &[], "")
        .await
        .status
}

#[tokio::test]
async fn error_bodies_carry_the_request_id() {
    let server = server_with_bucket().await;
    let resp = server
        .request(Some(ALICE), "GET", "/bkt/missing", &[], "")
        .await;
    assert_eq!(resp.status, 404);
    assert_eq!(resp.code(), "NoSuchKey");
    let id = resp.header("x-amz-request-id").unwrap();
    assert!(
        resp.text()
            .contains(&format!("<RequestId>{id}</RequestId>")),
        "{}",
        resp.text()
    );
    assert!(resp.text().contains("<Message>"), "{}", resp.text());
    let resp = server
        .request(Some(ALICE), "GET", "/nope/key", &[], "")
        .await;
    assert_eq!((resp.status, resp.code().as_str()), (404, "NoSuchBucket"));
}

#[tokio::test]
async fn invalid_bucket_names() {
    let server = Server::start().await;
    for name in ["Upper", "a_b", "ab", "-ab", "a..b", "192.168.1.1"] {
        let resp = server
            .request(Some(ALICE), "PUT", &format!("/{name}"), &[], "")
            .await;
        assert_eq!(
            (resp.status, resp.code().as_str()),
            (400, "InvalidBucketName"),
            "{name}"
        );
    }
    assert!(server.store.ensure_bucket("Bad_Name", ALICE.id).is_err());
    assert!(server.store.ensure_bucket("fine", "nobody").is_err());
    let resp = server.request(Some(ALICE), "GET", "/", &[], "").await;
    assert!(
        !resp.text().contains("<Bucket>"),
        "nothing was created: {}",
        resp.text()
    );
}

#[tokio::test]
async fn bad_keys_are_refused_and_store_nothing() {
    let server = server_with_bucket().await;
    let long = "k".repeat(1025);
    let cases = [
        (format!("/bkt/{long}"), "KeyTooLongError"),
        ("/bkt/a%00b".to_owned(), "InvalidArgument"),
        ("/bkt/a/../etc/passwd".to_owned(), "InvalidArgument"),
        ("/bkt/..".to_owned(), "InvalidArgument"),
    ];
    for (path, code) in &cases {
        let resp = server.request(Some(ALICE), "PUT", path, &[], "data").await;
        assert_eq!(
            (resp.status, resp.code().as_str()),
            (400, *code),
            "{path}: {}",
            resp.text()
        );
    }
    let ok_long = format!("/bkt/{}", "k".repeat(1024));
    assert_eq!(
        server
            .request(Some(ALICE), "PUT", &ok_long, &[], "data")
            .await
            .status,
        200
    );
    let list = server
        .request(Some(ALICE), "GET", "/bkt?list-type=2", &[], "")
        .await;
    assert_eq!(
        crate::common::xml_field(&list.text(), "KeyCount").as_deref(),
        Some("1"),
        "{}",
        list.text()
    );
}

#[tokio::test]
async fn signature_failures() {
    let server = server_with_bucket().await;
    let wrong_secret = User {
        secret_key: "not-the-secret",
        ..ALICE
    };
    let resp = server
        .request(Some(wrong_secret), "GET", "/bkt?list-type=2", &[], "")
        .await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (403, "SignatureDoesNotMatch")
    );
    let unknown = User {
        access_key: "AKIAUNKNOWN",
        ..ALICE
    };
    let resp = server
        .request(Some(unknown), "GET", "/bkt?list-type=2", &[], "")
        .await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (403, "InvalidAccessKeyId")
    );

    assert_eq!(
        server
            .request(Some(ALICE), "PUT", "/bkt/k", &[], "v")
            .await
            .status,
        200
    );
    let expired = sign::presign(
        ALICE,
        &server.url("/bkt/k"),
        SystemTime::now() - Duration::from_secs(120),
        Duration::from_secs(60),
    );
    let resp = reqwest::get(&expired).await.unwrap();
    assert_eq!(resp.status(), 403);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("<Code>AccessDenied</Code>") && text.contains("Request has expired"),
        "{text}"
    );
    let fresh = sign::presign(
        ALICE,
        &server.url("/bkt/k"),
        SystemTime::now(),
        Duration::from_secs(60),
    );
    let resp = reqwest::get(&fresh).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "v");
    let resp = reqwest::get(server.url("/")).await.unwrap();
    assert_eq!(resp.status(), 403, "anonymous ListBuckets");
}

#[tokio::test]
async fn wrong_digests_store_nothing() {
    let server = server_with_bucket().await;
    use base64::Engine as _;
    let wrong_md5 = base64::engine::general_purpose::STANDARD.encode(raw_md5(b"other"));
    let resp = server
        .request(
            Some(ALICE),
            "PUT",
            "/bkt/md5",
            &[("content-md5", &wrong_md5)],
            "payload",
        )
        .await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (400, "BadDigest"),
        "{}",
        resp.text()
    );
    assert_eq!(head_status(&server, "/bkt/md5").await, 404);
    let right_md5 = base64::engine::general_purpose::STANDARD.encode(raw_md5(b"payload"));
    let resp = server
        .request(
            Some(ALICE),
            "PUT",
            "/bkt/md5",
            &[("content-md5", &right_md5)],
            "payload",
        )
        .await;
    assert_eq!(resp.status, 200);
    let resp = server
        .request(
            Some(ALICE),
            "PUT",
            "/bkt/md5",
            &[("content-md5", "!!notbase64")],
            "payload",
        )
        .await;
    assert_eq!((resp.status, resp.code().as_str()), (400, "InvalidDigest"));

    let resp = server
        .request_with_hash(
            Some(ALICE),
            "PUT",
            "/bkt/sha",
            &[],
            Bytes::from_static(b"actual"),
            &sign::sha256_hex(b"claimed"),
        )
        .await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (400, "XAmzContentSHA256Mismatch"),
        "{}",
        resp.text()
    );
    assert_eq!(head_status(&server, "/bkt/sha").await, 404);
    assert_eq!(
        std::fs::read_dir(server.dir.path().join("tmp"))
            .unwrap()
            .count(),
        0,
        "no temp file left"
    );
}

fn raw_md5(data: &[u8]) -> Vec<u8> {
    hex::decode(md5_hex(data)).unwrap()
}

#[tokio::test]
async fn ranges_and_conditional_gets() {
    let server = server_with_bucket().await;
    let body = b"0123456789";
    assert_eq!(
        server
            .request(Some(ALICE), "PUT", "/bkt/r", &[], &body[..])
            .await
            .status,
        200
    );
    let etag = format!("\"{}\"", md5_hex(body));

    let resp = server
        .request(Some(ALICE), "GET", "/bkt/r", &[("range", "bytes=2-5")], "")
        .await;
    assert_eq!(resp.status, 206);
    assert_eq!(&resp.body[..], b"2345");
    assert_eq!(resp.header("content-range"), Some("bytes 2-5/10"));
    let resp = server
        .request(Some(ALICE), "GET", "/bkt/r", &[("range", "bytes=-3")], "")
        .await;
    assert_eq!(&resp.body[..], b"789");
    let resp = server
        .request(
            Some(ALICE),
            "GET",
            "/bkt/r",
            &[("range", "bytes=8-100")],
            "",
        )
        .await;
    assert_eq!((resp.status, &resp.body[..]), (206, &b"89"[..]));
    let resp = server
        .request(Some(ALICE), "GET", "/bkt/r", &[("range", "bytes=10-")], "")
        .await;
    assert_eq!((resp.status, resp.code().as_str()), (416, "InvalidRange"));

    let resp = server
        .request(
            Some(ALICE),
            "GET",
            "/bkt/r",
            &[("if-none-match", &etag)],
            "",
        )
        .await;
    assert_eq!(resp.status, 304);
    assert_eq!(resp.header("etag"), Some(etag.as_str()));
    assert!(resp.body.is_empty());
    let resp = server
        .request(
            Some(ALICE),
            "HEAD",
            "/bkt/r",
            &[("if-none-match", &etag)],
            "",
        )
        .await;
    assert_eq!(resp.status, 304);
    let resp = server
        .request(
            Some(ALICE),
            "GET",
            "/bkt/r",
            &[("if-none-match", "\"other\"")],
            "",
        )
        .await;
    assert_eq!(resp.status, 200);
    let resp = server
        .request(
            Some(ALICE),
            "GET",
            "/bkt/r",
            &[("if-match", "\"other\"")],
            "",
        )
        .await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (412, "PreconditionFailed")
    );
    let resp = server
        .request(Some(ALICE), "GET", "/bkt/r", &[("if-match", &etag)], "")
        .await;
    assert_eq!(resp.status, 200);
    let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
    let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(3600));
    let resp = server
        .request(
            Some(ALICE),
            "GET",
            "/bkt/r",
            &[("if-modified-since", &future)],
            "",
        )
        .await;
    assert_eq!(resp.status, 304);
    let resp = server
        .request(
            Some(ALICE),
            "GET",
            "/bkt/r",
            &[("if-modified-since", &past)],
            "",
        )
        .await;
    assert_eq!(resp.status, 200);
    let resp = server
        .request(
            Some(ALICE),
            "GET",
            "/bkt/r",
            &[("if-unmodified-since", &past)],
            "",
        )
        .await;
    assert_eq!(resp.status, 412);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_puts_are_atomic_leases() {
    let server = server_with_bucket().await;
    let resp = server
        .request(
            Some(ALICE),
            "PUT",
            "/bkt/lease",
            &[("if-none-match", "*")],
            "first",
        )
        .await;
    assert_eq!(resp.status, 200);
    let etag = resp.header("etag").unwrap().to_owned();
    let resp = server
        .request(
            Some(ALICE),
            "PUT",
            "/bkt/lease",
            &[("if-none-match", "*")],
            "second",
        )
        .await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (412, "PreconditionFailed")
    );
    let resp = server
        .request(
            Some(ALICE),
            "PUT",
            "/bkt/lease",
            &[("if-match", "\"nope\"")],
            "third",
        )
        .await;
    assert_eq!(resp.status, 412);
    let resp = server
        .request(Some(ALICE), "PUT", "/bkt/fresh", &[("if-match", "*")], "x")
        .await;
    // As S3 (and ceph's s3-tests `test_put_object_if_match`): If-Match on a missing key is 404.
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (404, "NoSuchKey"),
        "If-Match needs an existing object"
    );
    let resp = server
        .request(
            Some(ALICE),
            "PUT",
            "/bkt/lease",
            &[("if-match", &etag)],
            "renewed",
        )
        .await;
    assert_eq!(resp.status, 200);
    let got = server
        .request(Some(ALICE), "GET", "/bkt/lease", &[], "")
        .await;
    assert_eq!(&got.body[..], b"renewed");

    // Many racers, one winner.
    let server = std::sync::Arc::new(server);
    let racers: Vec<_> = (0..12)
        .map(|i| {
            let server = server.clone();
            tokio::spawn(async move {
                server
                    .request(
                        Some(ALICE),
                        "PUT",
                        "/bkt/race",
                        &[("if-none-match", "*")],
                        format!("racer {i}"),
                    )
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for r in racers {
        statuses.push(r.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        11,
        "{statuses:?}"
    );
    let blobs: usize = std::fs::read_dir(server.dir.path().join("blobs"))
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(
        blobs, 2,
        "losers' bodies are deleted (lease and race remain, nothing else)"
    );
}

#[tokio::test]
async fn unsupported_and_refused_operations() {
    let server = server_with_bucket().await;
    let resp = server
        .request(Some(ALICE), "GET", "/bkt?tagging", &[], "")
        .await;
    assert_eq!((resp.status, resp.code().as_str()), (501, "NotImplemented"));
    let resp = server.request(Some(ALICE), "PUT", "/bkt/k", &[], "v").await;
    assert_eq!(resp.status, 200);
    let resp = server.request(Some(ALICE), "DELETE", "/bkt", &[], "").await;
    assert_eq!((resp.status, resp.code().as_str()), (409, "BucketNotEmpty"));
    let resp = server.request(Some(BOB), "DELETE", "/bkt/k", &[], "").await;
    assert_eq!((resp.status, resp.code().as_str()), (403, "AccessDenied"));
    let resp = server.request(Some(BOB), "DELETE", "/bkt", &[], "").await;
    assert_eq!(resp.status, 403);
    let resp = server.request(None, "PUT", "/bkt/anon", &[], "x").await;
    assert_eq!(resp.status, 403);
    assert_eq!(
        server
            .request(Some(ALICE), "DELETE", "/bkt/k", &[], "")
            .await
            .status,
        204
    );
    assert_eq!(
        server
            .request(Some(ALICE), "DELETE", "/bkt", &[], "")
            .await
            .status,
        204
    );
    assert_eq!(
        server
            .request(Some(ALICE), "HEAD", "/bkt", &[], "")
            .await
            .status,
        404
    );
}
