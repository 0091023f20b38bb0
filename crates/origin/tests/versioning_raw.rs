//! Versioning with raw signed requests: the exact headers (`x-amz-version-id`,
//! `x-amz-delete-marker`) and error codes, per-version ACLs, multipart completions in versioned
//! buckets (a repeated completion makes no second version), and S3's IAM action names and
//! policy conditions for versioned operations.

use crate::common::{ALICE, BOB, Server, md5_hex};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_requests_answer_s3s_headers_and_errors() {
    let server = Server::start().await;
    let req = |method: &'static str, path: String| {
        let server = &server;
        async move { server.request(Some(ALICE), method, &path, &[], "").await }
    };
    assert_eq!(req("PUT", "/hdr".into()).await.status, 200);
    let put = server
        .request(Some(ALICE), "PUT", "/hdr/old", &[], "before")
        .await;
    assert!(put.header("x-amz-version-id").is_none(), "unversioned");
    let body = "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>";
    let r = server
        .request(Some(ALICE), "PUT", "/hdr?versioning", &[], body)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let bad = server
        .request(
            Some(ALICE),
            "PUT",
            "/hdr?versioning",
            &[],
            "<VersioningConfiguration><Status>On</Status></VersioningConfiguration>",
        )
        .await;
    assert_eq!((bad.status, bad.code().as_str()), (400, "MalformedXML"));
    // The pre-versioning object is the null version, and says so.
    let got = req("GET", "/hdr/old".into()).await;
    assert_eq!(got.header("x-amz-version-id"), Some("null"));
    let put = server
        .request(Some(ALICE), "PUT", "/hdr/k", &[], "one")
        .await;
    let v1 = put.header("x-amz-version-id").unwrap().to_owned();
    let del = req("DELETE", "/hdr/k".into()).await;
    assert_eq!(del.status, 204);
    assert_eq!(del.header("x-amz-delete-marker"), Some("true"));
    let marker = del.header("x-amz-version-id").unwrap().to_owned();
    // GET of a key whose latest is a marker: 404 with the marker's headers.
    let got = req("GET", "/hdr/k".into()).await;
    assert_eq!((got.status, got.code().as_str()), (404, "NoSuchKey"));
    assert_eq!(got.header("x-amz-delete-marker"), Some("true"));
    assert_eq!(got.header("x-amz-version-id"), Some(marker.as_str()));
    let head = req("HEAD", "/hdr/k".into()).await;
    assert_eq!(head.status, 404);
    assert_eq!(head.header("x-amz-delete-marker"), Some("true"));
    // Naming the marker itself: 405.
    let got = req("GET", format!("/hdr/k?versionId={marker}")).await;
    assert_eq!((got.status, got.code().as_str()), (405, "MethodNotAllowed"));
    assert_eq!(got.header("x-amz-delete-marker"), Some("true"));
    // The old version reads by id, with its id.
    let got = req("GET", format!("/hdr/k?versionId={v1}")).await;
    assert_eq!((got.status, got.text().as_str()), (200, "one"));
    assert_eq!(got.header("x-amz-version-id"), Some(v1.as_str()));
    // Unknown and malformed ids.
    // v1's sequence with another random part: well-formed, never issued.
    let unknown = format!("{}{}", &v1[..16], "0".repeat(16));
    assert_ne!(unknown, v1);
    let got = req("GET", format!("/hdr/k?versionId={unknown}")).await;
    assert_eq!((got.status, got.code().as_str()), (404, "NoSuchVersion"));
    for bad in ["abc", "null%00", "ZZZZ"] {
        let got = req("GET", format!("/hdr/k?versionId={bad}")).await;
        assert_eq!(
            (got.status, got.code().as_str()),
            (400, "InvalidArgument"),
            "{bad}"
        );
    }
    let got = req("GET", "/hdr?versions&version-id-marker=null".into()).await;
    assert_eq!((got.status, got.code().as_str()), (400, "InvalidArgument"));
    let got = req("GET", "/hdr?versions".into()).await;
    assert!(got.text().contains("<DeleteMarker>"), "{}", got.text());

    // Per-version ACLs: the old version made public, the new one private.
    let put = server
        .request(Some(ALICE), "PUT", "/hdr/k", &[], "two")
        .await;
    let v2 = put.header("x-amz-version-id").unwrap().to_owned();
    let acl = server
        .request(
            Some(ALICE),
            "PUT",
            &format!("/hdr/k?acl&versionId={v1}"),
            &[("x-amz-acl", "public-read")],
            "",
        )
        .await;
    assert_eq!(acl.status, 200, "{}", acl.text());
    let anon = server
        .request(None, "GET", &format!("/hdr/k?versionId={v1}"), &[], "")
        .await;
    assert_eq!((anon.status, anon.text().as_str()), (200, "one"));
    let anon = server
        .request(None, "GET", &format!("/hdr/k?versionId={v2}"), &[], "")
        .await;
    assert_eq!(anon.status, 403);
    let anon = server.request(None, "GET", "/hdr/k", &[], "").await;
    assert_eq!(anon.status, 403);
    let acl = req("GET", format!("/hdr/k?acl&versionId={v1}")).await;
    assert!(acl.text().contains("AllUsers"), "{}", acl.text());
    let acl = req("GET", format!("/hdr/k?acl&versionId={v2}")).await;
    assert!(!acl.text().contains("AllUsers"), "{}", acl.text());
    let acl = req("GET", format!("/hdr/k?acl&versionId={marker}")).await;
    assert_eq!(acl.status, 405);

    // Multipart completion in a versioned bucket makes a version.
    let init = req("POST", "/hdr/mp?uploads".into()).await;
    let upload = crate::common::xml_field(&init.text(), "UploadId").unwrap();
    let part = server
        .request(
            Some(ALICE),
            "PUT",
            &format!("/hdr/mp?partNumber=1&uploadId={upload}"),
            &[],
            "part",
        )
        .await;
    let etag = part.header("etag").unwrap().to_owned();
    let done = server
        .request(
            Some(ALICE),
            "POST",
            &format!("/hdr/mp?uploadId={upload}"),
            &[],
            format!(
                "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
            ),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text());
    let id = done.header("x-amz-version-id").unwrap();
    let got = req("GET", format!("/hdr/mp?versionId={id}")).await;
    assert_eq!(md5_hex(&got.body), md5_hex(b"part"));

    // Completing it again answers as the first time, naming the same version, and makes none.
    let complete = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    );
    let path = format!("/hdr/mp?uploadId={upload}");
    let again = server
        .request(Some(ALICE), "POST", &path, &[], complete.clone())
        .await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.header("x-amz-version-id"), Some(id));
    assert_eq!(
        crate::common::xml_field(&again.text(), "ETag"),
        crate::common::xml_field(&done.text(), "ETag")
    );
    let listed = req("GET", "/hdr?versions&prefix=mp".into()).await;
    assert_eq!(
        crate::common::xml_fields(&listed.text(), "VersionId"),
        [id],
        "{}",
        listed.text()
    );
    // Once another version is current, the upload is gone as S3 says.
    let put = server
        .request(Some(ALICE), "PUT", "/hdr/mp", &[], "newer")
        .await;
    assert_eq!(put.status, 200);
    let late = server
        .request(Some(ALICE), "POST", &path, &[], complete)
        .await;
    assert_eq!((late.status, late.code().as_str()), (404, "NoSuchUpload"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioned_operations_use_their_own_iam_actions() {
    let server = Server::start().await;
    assert_eq!(
        server
            .request(Some(ALICE), "PUT", "/iam", &[], "")
            .await
            .status,
        200
    );
    let body = "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>";
    server
        .request(Some(ALICE), "PUT", "/iam?versioning", &[], body)
        .await;
    let v1 = server
        .request(Some(ALICE), "PUT", "/iam/k", &[], "one")
        .await
        .header("x-amz-version-id")
        .unwrap()
        .to_owned();
    server
        .request(Some(ALICE), "PUT", "/iam/k", &[], "two")
        .await;
    // Bob may read the latest object but no older version; nobody may destroy versions.
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Principal":{"AWS":["bob"]},"Action":"s3:GetObject","Resource":"arn:aws:s3:::iam/*"},
        {"Effect":"Deny","Principal":"*","Action":"s3:DeleteObjectVersion","Resource":"arn:aws:s3:::iam/*"}]}"#;
    let r = server
        .request(Some(ALICE), "PUT", "/iam?policy", &[], policy)
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let bob = |path: String| {
        let server = &server;
        async move { server.request(Some(BOB), "GET", &path, &[], "").await }
    };
    assert_eq!(bob("/iam/k".into()).await.text(), "two");
    assert_eq!(bob(format!("/iam/k?versionId={v1}")).await.status, 403);
    // Bob may not change versioning (owner only).
    let r = server
        .request(Some(BOB), "PUT", "/iam?versioning", &[], body)
        .await;
    assert_eq!(r.status, 403);
    // The owner too is refused s3:DeleteObjectVersion by the Deny; a marker is still fine.
    let r = server
        .request(
            Some(ALICE),
            "DELETE",
            &format!("/iam/k?versionId={v1}"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 403);
    let multi = format!(
        "<Delete><Object><Key>k</Key><VersionId>{v1}</VersionId></Object><Object><Key>k</Key></Object></Delete>"
    );
    let md5 = {
        use base64::Engine as _;
        use md5::Digest as _;
        base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(multi.as_bytes()))
    };
    let r = server
        .request(
            Some(ALICE),
            "POST",
            "/iam?delete",
            &[("content-md5", md5.as_str())],
            multi,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(text.contains("<Code>AccessDenied</Code>"), "{text}");
    assert!(text.contains("<DeleteMarker>true</DeleteMarker>"), "{text}");
    assert_eq!(
        server
            .request(
                Some(ALICE),
                "GET",
                &format!("/iam/k?versionId={v1}"),
                &[],
                ""
            )
            .await
            .text(),
        "one",
        "the denied version is still there"
    );
}

/// Bucket policy conditions are judged with the request's own facts on versioned requests too,
/// before the request (`s3:GetObjectVersion`, `s3:DeleteObjectVersion`) and inside the write
/// transaction (each DeleteObjects entry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_conditions_apply_to_versioned_requests() {
    let server = Server::start().await;
    assert_eq!(
        server
            .request(Some(ALICE), "PUT", "/cond", &[], "")
            .await
            .status,
        200
    );
    let body = "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>";
    server
        .request(Some(ALICE), "PUT", "/cond?versioning", &[], body)
        .await;
    let v1 = server
        .request(Some(ALICE), "PUT", "/cond/k", &[], "one")
        .await
        .header("x-amz-version-id")
        .unwrap()
        .to_owned();
    server
        .request(Some(ALICE), "PUT", "/cond/k", &[], "two")
        .await;
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Principal":{"AWS":["bob"]},"Action":"s3:GetObjectVersion","Resource":"arn:aws:s3:::cond/*",
         "Condition":{"StringEquals":{"aws:Referer":"https://ok.example/"}}},
        {"Effect":"Deny","Principal":"*","Action":"s3:DeleteObjectVersion","Resource":"arn:aws:s3:::cond/*",
         "Condition":{"IpAddress":{"aws:SourceIp":"127.0.0.0/8"}}}]}"#;
    let r = server
        .request(Some(ALICE), "PUT", "/cond?policy", &[], policy)
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let old = format!("/cond/k?versionId={v1}");
    let with_referer = server
        .request(
            Some(BOB),
            "GET",
            &old,
            &[("referer", "https://ok.example/")],
            "",
        )
        .await;
    assert_eq!(
        (with_referer.status, with_referer.text().as_str()),
        (200, "one")
    );
    let other_referer = server
        .request(
            Some(BOB),
            "GET",
            &old,
            &[("referer", "https://evil.example/")],
            "",
        )
        .await;
    assert_eq!(other_referer.status, 403);
    // The Deny holds for requests from loopback, the owner's included.
    let r = server.request(Some(ALICE), "DELETE", &old, &[], "").await;
    assert_eq!((r.status, r.code().as_str()), (403, "AccessDenied"));
    let multi =
        format!("<Delete><Object><Key>k</Key><VersionId>{v1}</VersionId></Object></Delete>");
    let md5 = {
        use base64::Engine as _;
        use md5::Digest as _;
        base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(multi.as_bytes()))
    };
    let r = server
        .request(
            Some(ALICE),
            "POST",
            "/cond?delete",
            &[("content-md5", md5.as_str())],
            multi,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("<Code>AccessDenied</Code>"),
        "{}",
        r.text()
    );
    let still = server.request(Some(ALICE), "GET", &old, &[], "").await;
    assert_eq!((still.status, still.text().as_str()), (200, "one"));
}
