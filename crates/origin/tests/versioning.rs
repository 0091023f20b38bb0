//! Versioning driven by the AWS CLI (round trips, delete markers, null versions, copies and
//! multipart in versioned buckets, DeleteObjects with versions, ListObjectVersions pages)
//! and by raw signed requests for the exact headers and error codes.

use serde_json::Value;

use crate::common::aws::Aws;
use crate::common::{ALICE, BOB, Server, md5_hex};

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// (key, version id, is latest) of every version and marker, in the order S3 lists them
/// (Versions and DeleteMarkers interleaved back by key, then newest first).
type Entries = Vec<(String, String, bool)>;

fn listing(v: &Value) -> (Entries, Entries) {
    let get = |field: &str| -> Entries {
        v[field]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            s(&e["Key"]).to_owned(),
                            s(&e["VersionId"]).to_owned(),
                            e["IsLatest"].as_bool().unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    (get("Versions"), get("DeleteMarkers"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_versioning_round_trip_and_delete_markers() {
    let server = Server::start().await;
    let aws = Aws::new(&server, ALICE);
    aws.json(&["s3api", "create-bucket", "--bucket", "ver"])
        .await;
    let v0 = aws.file("v0", b"written before versioning");
    aws.json(&[
        "s3api",
        "put-object",
        "--bucket",
        "ver",
        "--key",
        "doc",
        "--body",
        &v0,
    ])
    .await;
    let st = aws
        .json(&["s3api", "get-bucket-versioning", "--bucket", "ver"])
        .await;
    assert!(st.get("Status").is_none(), "never enabled: {st}");
    aws.json(&[
        "s3api",
        "put-bucket-versioning",
        "--bucket",
        "ver",
        "--versioning-configuration",
        "Status=Enabled",
    ])
    .await;
    let st = aws
        .json(&["s3api", "get-bucket-versioning", "--bucket", "ver"])
        .await;
    assert_eq!(st["Status"], "Enabled");

    let v1 = aws.file("v1", b"version one");
    let v2 = aws.file("v2", b"version two!");
    let put1 = aws
        .json(&[
            "s3api",
            "put-object",
            "--bucket",
            "ver",
            "--key",
            "doc",
            "--body",
            &v1,
        ])
        .await;
    let put2 = aws
        .json(&[
            "s3api",
            "put-object",
            "--bucket",
            "ver",
            "--key",
            "doc",
            "--body",
            &v2,
        ])
        .await;
    let (id1, id2) = (
        s(&put1["VersionId"]).to_owned(),
        s(&put2["VersionId"]).to_owned(),
    );
    assert_ne!(id1, id2);

    let list = aws
        .json(&["s3api", "list-object-versions", "--bucket", "ver"])
        .await;
    let (versions, markers) = listing(&list);
    assert_eq!(
        versions,
        [
            ("doc".to_owned(), id2.clone(), true),
            ("doc".to_owned(), id1.clone(), false),
            ("doc".to_owned(), "null".to_owned(), false),
        ]
    );
    assert!(markers.is_empty());

    // Each version reads back by id, the pre-versioning one as `null`.
    for (id, body) in [
        (id1.as_str(), &b"version one"[..]),
        ("null", &b"written before versioning"[..]),
        (id2.as_str(), &b"version two!"[..]),
    ] {
        let out = aws.dir().join("out");
        let got = aws
            .json(&[
                "s3api",
                "get-object",
                "--bucket",
                "ver",
                "--key",
                "doc",
                "--version-id",
                id,
                out.to_str().unwrap(),
            ])
            .await;
        assert_eq!(got["VersionId"], id);
        assert_eq!(std::fs::read(&out).unwrap(), body);
    }

    // DELETE without a version writes a marker; the object is gone, its versions are not.
    let del = aws
        .json(&["s3api", "delete-object", "--bucket", "ver", "--key", "doc"])
        .await;
    assert_eq!(del["DeleteMarker"], true);
    let marker = s(&del["VersionId"]).to_owned();
    let err = aws
        .fails(&["s3api", "head-object", "--bucket", "ver", "--key", "doc"])
        .await;
    assert!(err.contains("404"), "{err}");
    let ls = aws
        .json(&["s3api", "list-objects-v2", "--bucket", "ver"])
        .await;
    assert!(
        ls.get("Contents").is_none(),
        "a deleted key is not listed: {ls}"
    );
    let (versions, markers) = listing(
        &aws.json(&["s3api", "list-object-versions", "--bucket", "ver"])
            .await,
    );
    assert_eq!(markers, [("doc".to_owned(), marker.clone(), true)]);
    assert_eq!(versions.len(), 3);
    assert!(versions.iter().all(|v| !v.2));
    let got = aws
        .json(&[
            "s3api",
            "head-object",
            "--bucket",
            "ver",
            "--key",
            "doc",
            "--version-id",
            &id2,
        ])
        .await;
    assert_eq!(got["ContentLength"], 12);

    // Deleting the marker by id restores the object.
    let del = aws
        .json(&[
            "s3api",
            "delete-object",
            "--bucket",
            "ver",
            "--key",
            "doc",
            "--version-id",
            &marker,
        ])
        .await;
    assert_eq!(del["DeleteMarker"], true);
    assert_eq!(del["VersionId"], marker.as_str());
    let got = aws
        .json(&["s3api", "head-object", "--bucket", "ver", "--key", "doc"])
        .await;
    assert_eq!(got["VersionId"], id2.as_str());

    // CopyObject from an old version makes a new version of the target.
    let copy = aws
        .json(&[
            "s3api",
            "copy-object",
            "--bucket",
            "ver",
            "--key",
            "copy",
            "--copy-source",
            &format!("ver/doc?versionId={id1}"),
        ])
        .await;
    assert_eq!(copy["CopySourceVersionId"], id1.as_str());
    assert!(copy["VersionId"].is_string());
    let out = aws.dir().join("copy");
    aws.json(&[
        "s3api",
        "get-object",
        "--bucket",
        "ver",
        "--key",
        "copy",
        out.to_str().unwrap(),
    ])
    .await;
    assert_eq!(std::fs::read(&out).unwrap(), b"version one");

    // DeleteObjects with and without versions.
    let del = aws
        .json(&[
            "s3api",
            "delete-objects",
            "--bucket",
            "ver",
            "--delete",
            &format!(
                r#"{{"Objects":[{{"Key":"doc","VersionId":"{id1}"}},{{"Key":"copy"}},{{"Key":"doc","VersionId":"null"}}]}}"#
            ),
        ])
        .await;
    let deleted = del["Deleted"].as_array().unwrap();
    assert_eq!(deleted.len(), 3, "{del}");
    assert_eq!(deleted[0]["VersionId"], id1.as_str());
    assert!(deleted[0].get("DeleteMarker").is_none());
    assert_eq!(deleted[1]["Key"], "copy");
    assert_eq!(deleted[1]["DeleteMarker"], true);
    assert!(deleted[1]["DeleteMarkerVersionId"].is_string());
    assert_eq!(deleted[2]["VersionId"], "null");
    let (versions, markers) = listing(
        &aws.json(&["s3api", "list-object-versions", "--bucket", "ver"])
            .await,
    );
    let keys: Vec<(&str, bool)> = versions.iter().map(|v| (v.0.as_str(), v.2)).collect();
    assert_eq!(keys, [("copy", false), ("doc", true)]);
    assert_eq!(markers.len(), 1);
    assert_eq!(markers[0].0, "copy");

    // A versioned bucket is not empty while versions remain.
    let err = aws
        .fails(&["s3api", "delete-bucket", "--bucket", "ver"])
        .await;
    assert!(err.contains("BucketNotEmpty"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_versioning_overwrites_the_null_version() {
    let server = Server::start().await;
    let aws = Aws::new(&server, ALICE);
    aws.json(&["s3api", "create-bucket", "--bucket", "sus"])
        .await;
    let enable = |status: &'static str| {
        let aws = &aws;
        async move {
            aws.json(&[
                "s3api",
                "put-bucket-versioning",
                "--bucket",
                "sus",
                "--versioning-configuration",
                &format!("Status={status}"),
            ])
            .await;
        }
    };
    enable("Enabled").await;
    let a = aws.file("a", b"aaa");
    let b = aws.file("b", b"bbbb");
    let c = aws.file("c", b"ccccc");
    let put = aws
        .json(&[
            "s3api",
            "put-object",
            "--bucket",
            "sus",
            "--key",
            "k",
            "--body",
            &a,
        ])
        .await;
    let id_a = s(&put["VersionId"]).to_owned();
    enable("Suspended").await;
    let st = aws
        .json(&["s3api", "get-bucket-versioning", "--bucket", "sus"])
        .await;
    assert_eq!(st["Status"], "Suspended");
    let put = aws
        .json(&[
            "s3api",
            "put-object",
            "--bucket",
            "sus",
            "--key",
            "k",
            "--body",
            &b,
        ])
        .await;
    assert!(put.get("VersionId").is_none_or(|v| v == "null"), "{put}");
    aws.json(&[
        "s3api",
        "put-object",
        "--bucket",
        "sus",
        "--key",
        "k",
        "--body",
        &c,
    ])
    .await;
    let (versions, _) = listing(
        &aws.json(&["s3api", "list-object-versions", "--bucket", "sus"])
            .await,
    );
    assert_eq!(
        versions,
        [
            ("k".to_owned(), "null".to_owned(), true),
            ("k".to_owned(), id_a.clone(), false),
        ],
        "the second suspended write replaced the first null version"
    );
    let blobs = blob_count(&server);
    assert_eq!(blobs, 2, "the overwritten null version's body is gone");
    // A suspended DELETE leaves a null marker in place of the null version.
    let del = aws
        .json(&["s3api", "delete-object", "--bucket", "sus", "--key", "k"])
        .await;
    assert_eq!(del["DeleteMarker"], true);
    assert_eq!(del["VersionId"], "null");
    let (versions, markers) = listing(
        &aws.json(&["s3api", "list-object-versions", "--bucket", "sus"])
            .await,
    );
    assert_eq!(versions, [("k".to_owned(), id_a, false)]);
    assert_eq!(markers, [("k".to_owned(), "null".to_owned(), true)]);
    assert_eq!(blob_count(&server), 1);
}

fn blob_count(server: &Server) -> usize {
    std::fs::read_dir(server.dir.path().join("blobs"))
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_object_versions_pages_by_key_and_version_marker() {
    let server = Server::start().await;
    let aws = Aws::new(&server, ALICE);
    aws.json(&["s3api", "create-bucket", "--bucket", "pages"])
        .await;
    aws.json(&[
        "s3api",
        "put-bucket-versioning",
        "--bucket",
        "pages",
        "--versioning-configuration",
        "Status=Enabled",
    ])
    .await;
    let body = aws.file("x", b"x");
    for (key, n) in [("a", 3), ("dir/b", 2), ("dir/c", 1), ("z", 4)] {
        for _ in 0..n {
            aws.json(&[
                "s3api",
                "put-object",
                "--bucket",
                "pages",
                "--key",
                key,
                "--body",
                &body,
            ])
            .await;
        }
    }
    aws.json(&["s3api", "delete-object", "--bucket", "pages", "--key", "a"])
        .await;
    let whole = aws
        .json(&["s3api", "list-object-versions", "--bucket", "pages"])
        .await;
    let (versions, markers) = listing(&whole);
    assert_eq!((versions.len(), markers.len()), (10, 1));
    // The CLI follows NextKeyMarker / NextVersionIdMarker two entries at a time.
    let paged = aws
        .json(&[
            "s3api",
            "list-object-versions",
            "--bucket",
            "pages",
            "--page-size",
            "2",
        ])
        .await;
    assert_eq!(listing(&paged), (versions.clone(), markers));
    // By hand: one page of three ends inside key `a`.
    let page = aws
        .json(&[
            "s3api",
            "list-object-versions",
            "--bucket",
            "pages",
            "--max-keys",
            "3",
            "--no-paginate",
        ])
        .await;
    assert_eq!(page["IsTruncated"], true);
    assert_eq!(page["NextKeyMarker"], "a");
    let next = s(&page["NextVersionIdMarker"]).to_owned();
    let rest = aws
        .json(&[
            "s3api",
            "list-object-versions",
            "--bucket",
            "pages",
            "--key-marker",
            "a",
            "--version-id-marker",
            &next,
            "--max-keys",
            "2",
            "--no-paginate",
        ])
        .await;
    let (v, _) = listing(&rest);
    assert_eq!(v[0], versions[2], "resumes right after the marker version");
    // Prefix and delimiter.
    let rolled = aws
        .json(&[
            "s3api",
            "list-object-versions",
            "--bucket",
            "pages",
            "--delimiter",
            "/",
        ])
        .await;
    assert_eq!(rolled["CommonPrefixes"][0]["Prefix"], "dir/");
    let (v, _) = listing(&rolled);
    assert!(v.iter().all(|e| !e.0.starts_with("dir/")));
    let only = aws
        .json(&[
            "s3api",
            "list-object-versions",
            "--bucket",
            "pages",
            "--prefix",
            "dir/",
        ])
        .await;
    let (v, _) = listing(&only);
    assert_eq!(v.len(), 3);
}

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
    let unknown = format!("{}0", &v1[..31]);
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
