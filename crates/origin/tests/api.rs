//! API behaviour with raw signed requests: listings, copies, metadata, virtual-hosted style,
//! streaming-signed uploads (multipart in `multipart.rs`).

use crate::common::{ALICE, BOB, Server, data, md5_hex, xml_field, xml_fields};

/// PUTs `body` at `path` as alice, expecting a 200.
pub(crate) async fn put(
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
    body: &'static [u8],
) {
    let resp = server
        .request(Some(ALICE), "PUT", path, headers, body)
        .await;
    assert_eq!(resp.status, 200, "PUT {path}: {}", resp.text());
}

#[tokio::test]
async fn listings_paginate_roll_up_and_encode() {
    let server = Server::start().await;
    server.store.ensure_bucket("lst", ALICE.id).unwrap();
    for key in [
        "a.txt",
        "dir/1",
        "dir/2",
        "dir/sub/3",
        "e%20f",
        "sp ace",
        "z/9",
    ] {
        let path = format!("/lst/{}", key.replace('%', "%25").replace(' ', "%20"));
        put(&server, &path, &[], b"x").await;
    }
    let resp = server
        .request(Some(ALICE), "GET", "/lst?list-type=2&delimiter=/", &[], "")
        .await;
    let text = resp.text();
    assert_eq!(xml_fields(&text, "Key"), ["a.txt", "e%20f", "sp ace"]);
    assert_eq!(
        xml_fields(&text, "Prefix")
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>(),
        ["dir/", "z/"]
    );

    // V2 pages of 2 with continuation tokens.
    let mut keys = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let path = if token.is_empty() {
            "/lst?list-type=2&max-keys=2".to_owned()
        } else {
            format!("/lst?list-type=2&max-keys=2&continuation-token={token}")
        };
        let text = server
            .request(Some(ALICE), "GET", &path, &[], "")
            .await
            .text();
        keys.extend(xml_fields(&text, "Key"));
        match xml_field(&text, "NextContinuationToken") {
            Some(t) => token = t,
            None => break,
        }
    }
    assert_eq!(
        keys,
        [
            "a.txt",
            "dir/1",
            "dir/2",
            "dir/sub/3",
            "e%20f",
            "sp ace",
            "z/9"
        ]
    );

    // V1 with marker and a prefix + delimiter.
    let text = server
        .request(
            Some(ALICE),
            "GET",
            "/lst?prefix=dir/&delimiter=/&marker=dir/1",
            &[],
            "",
        )
        .await
        .text();
    assert_eq!(xml_fields(&text, "Key"), ["dir/2"]);
    assert!(text.contains("<Prefix>dir/sub/</Prefix>"), "{text}");
    let text = server
        .request(
            Some(ALICE),
            "GET",
            "/lst?max-keys=1&delimiter=/&prefix=dir/",
            &[],
            "",
        )
        .await
        .text();
    assert_eq!(xml_field(&text, "IsTruncated").as_deref(), Some("true"));
    assert_eq!(xml_field(&text, "NextMarker").as_deref(), Some("dir/1"));

    // start-after and encoding-type=url.
    let text = server
        .request(
            Some(ALICE),
            "GET",
            "/lst?list-type=2&start-after=dir/sub/3&encoding-type=url",
            &[],
            "",
        )
        .await
        .text();
    assert_eq!(xml_fields(&text, "Key"), ["e%2520f", "sp%20ace", "z/9"]);
    assert_eq!(xml_field(&text, "EncodingType").as_deref(), Some("url"));

    // Versions of an unversioned bucket.
    let text = server
        .request(
            Some(ALICE),
            "GET",
            "/lst?versions&prefix=dir/&max-keys=2",
            &[],
            "",
        )
        .await
        .text();
    assert_eq!(xml_fields(&text, "Key"), ["dir/1", "dir/2"]);
    assert!(
        xml_fields(&text, "VersionId").iter().all(|v| v == "null"),
        "{text}"
    );
    assert_eq!(xml_field(&text, "NextKeyMarker").as_deref(), Some("dir/2"));

    let text = server
        .request(Some(ALICE), "GET", "/lst?location", &[], "")
        .await
        .text();
    assert!(text.contains("LocationConstraint"), "{text}");
}

#[tokio::test]
async fn metadata_round_trips_and_copy_directives() {
    let server = Server::start().await;
    server.store.ensure_bucket("meta", ALICE.id).unwrap();
    let headers = [
        ("content-type", "image/png"),
        ("cache-control", "max-age=300"),
        ("content-disposition", "attachment; filename=\"a.png\""),
        ("content-encoding", "identity"),
        ("content-language", "en"),
        ("expires", "Wed, 21 Oct 2037 07:28:00 GMT"),
        ("x-amz-meta-color", "blue"),
    ];
    put(&server, "/meta/src.png", &headers, b"png bytes").await;
    let head = server
        .request(Some(ALICE), "HEAD", "/meta/src.png", &[], "")
        .await;
    for (name, value) in headers {
        assert_eq!(head.header(name), Some(value), "{name}");
    }
    assert_eq!(head.header("content-length"), Some("9"));

    // COPY keeps the metadata; REPLACE takes the request's.
    let resp = server
        .request(
            Some(ALICE),
            "PUT",
            "/meta/copy.png",
            &[("x-amz-copy-source", "/meta/src.png")],
            "",
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        xml_field(&resp.text(), "ETag").map(|e| e.replace("&quot;", "\"")),
        Some(format!("\"{}\"", md5_hex(b"png bytes")))
    );
    let head = server
        .request(Some(ALICE), "HEAD", "/meta/copy.png", &[], "")
        .await;
    assert_eq!(head.header("x-amz-meta-color"), Some("blue"));
    assert_eq!(head.header("content-type"), Some("image/png"));
    let resp = server
        .request(
            Some(ALICE),
            "PUT",
            "/meta/copy.png",
            &[
                ("x-amz-copy-source", "meta/src.png"),
                ("x-amz-metadata-directive", "REPLACE"),
                ("content-type", "text/plain"),
                ("x-amz-meta-size", "big"),
            ],
            "",
        )
        .await;
    assert_eq!(resp.status, 200);
    let head = server
        .request(Some(ALICE), "HEAD", "/meta/copy.png", &[], "")
        .await;
    assert_eq!(head.header("content-type"), Some("text/plain"));
    assert_eq!(head.header("x-amz-meta-size"), Some("big"));
    assert_eq!(head.header("x-amz-meta-color"), None);
    assert_eq!(
        &server
            .request(Some(ALICE), "GET", "/meta/copy.png", &[], "")
            .await
            .body[..],
        b"png bytes"
    );
    // Copy onto itself needs REPLACE.
    let resp = server
        .request(
            Some(ALICE),
            "PUT",
            "/meta/src.png",
            &[("x-amz-copy-source", "/meta/src.png")],
            "",
        )
        .await;
    assert_eq!(resp.status, 400);
    let resp = server
        .request(
            Some(ALICE),
            "PUT",
            "/meta/src.png",
            &[
                ("x-amz-copy-source", "/meta/src.png"),
                ("x-amz-metadata-directive", "REPLACE"),
            ],
            "",
        )
        .await;
    assert_eq!(resp.status, 200);
    let head = server
        .request(Some(ALICE), "HEAD", "/meta/src.png", &[], "")
        .await;
    assert_eq!(head.header("x-amz-meta-color"), None);
    assert_eq!(head.header("content-type"), Some("binary/octet-stream"));

    // Bob cannot copy alice's private object into his bucket.
    server.store.ensure_bucket("bobs", BOB.id).unwrap();
    let resp = server
        .request(
            Some(BOB),
            "PUT",
            "/bobs/stolen",
            &[("x-amz-copy-source", "/meta/src.png")],
            "",
        )
        .await;
    assert_eq!(resp.status, 403);

    // Multi-delete.
    let body = "<Delete><Object><Key>src.png</Key></Object><Object><Key>copy.png</Key></Object><Object><Key>never</Key></Object></Delete>";
    let md5 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(hex::decode(md5_hex(body.as_bytes())).unwrap())
    };
    let resp = server
        .request(
            Some(ALICE),
            "POST",
            "/meta?delete",
            &[("content-md5", &md5)],
            body,
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(xml_fields(&resp.text(), "Deleted").len(), 3);
    let text = server
        .request(Some(ALICE), "GET", "/meta?list-type=2", &[], "")
        .await
        .text();
    assert_eq!(xml_field(&text, "KeyCount").as_deref(), Some("0"));
}

#[tokio::test]
async fn virtual_hosted_style_and_acl_xml() {
    let server = Server::start_with_domain(Some("origin.localhost")).await;
    server.store.ensure_bucket("vhost", ALICE.id).unwrap();
    put(
        &server,
        "/vhost/p.txt",
        &[("x-amz-acl", "public-read")],
        b"public",
    )
    .await;
    let client = reqwest::Client::builder()
        .resolve("vhost.origin.localhost", server.addr)
        .build()
        .unwrap();
    let resp = client
        .get(format!(
            "http://vhost.origin.localhost:{}/p.txt",
            server.addr.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "public");

    let text = server
        .request(Some(ALICE), "GET", "/vhost/p.txt?acl", &[], "")
        .await
        .text();
    assert!(
        text.contains("<ID>alice</ID>") && text.contains("FULL_CONTROL"),
        "{text}"
    );
    assert!(
        text.contains("http://acs.amazonaws.com/groups/global/AllUsers")
            && text.contains("<Permission>READ</Permission>"),
        "{text}"
    );
    let text = server
        .request(Some(ALICE), "GET", "/vhost?acl", &[], "")
        .await
        .text();
    assert!(
        text.contains("<DisplayName>alice display</DisplayName>"),
        "{text}"
    );
    // Bob may not read the ACL of alice's object even though he may read the object.
    assert_eq!(
        server
            .request(Some(BOB), "GET", "/vhost/p.txt?acl", &[], "")
            .await
            .status,
        403
    );
    assert_eq!(
        server
            .request(Some(BOB), "GET", "/vhost/p.txt", &[], "")
            .await
            .status,
        200
    );
    // A public-read bucket lets anyone list it.
    assert_eq!(
        reqwest::get(server.url("/vhost?list-type=2"))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        server
            .request(
                Some(ALICE),
                "PUT",
                "/vhost?acl",
                &[("x-amz-acl", "public-read")],
                ""
            )
            .await
            .status,
        200
    );
    assert_eq!(
        reqwest::get(server.url("/vhost?list-type=2"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        reqwest::get(server.url("/vhost/missing"))
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn streaming_chunked_sigv4_uploads() {
    let server = Server::start().await;
    server.store.ensure_bucket("chunky", ALICE.id).unwrap();
    let a = data(64 * 1024, 3);
    let b = data(1000, 4);
    let (headers, body) =
        crate::common::sign::chunked_upload(ALICE, &server.url("/chunky/obj"), &[&a, &b], false);
    let resp = crate::common::send(server.addr, "PUT", "/chunky/obj", &headers, body.into()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let mut whole = a.clone();
    whole.extend_from_slice(&b);
    let got = server
        .request(Some(ALICE), "GET", "/chunky/obj", &[], "")
        .await;
    assert!(got.body[..] == whole[..]);
    assert_eq!(
        got.header("etag"),
        Some(format!("\"{}\"", md5_hex(&whole)).as_str())
    );
    assert_eq!(
        got.header("content-encoding"),
        None,
        "aws-chunked is a transfer detail, not stored"
    );

    let (headers, body) =
        crate::common::sign::chunked_upload(ALICE, &server.url("/chunky/bad"), &[&a, &b], true);
    let resp = crate::common::send(server.addr, "PUT", "/chunky/bad", &headers, body.into()).await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (403, "SignatureDoesNotMatch"),
        "{}",
        resp.text()
    );
    assert_eq!(
        server
            .request(Some(ALICE), "HEAD", "/chunky/bad", &[], "")
            .await
            .status,
        404
    );
}
