//! Versioning driven by the AWS CLI: round trips, delete markers, null versions, copies,
//! DeleteObjects with versions, ListObjectVersions pages (`versioning_raw` checks the exact
//! headers and error codes with raw signed requests).

use serde_json::Value;

use crate::common::aws::Aws;
use crate::common::{ALICE, Server};

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
