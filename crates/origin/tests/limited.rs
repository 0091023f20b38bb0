//! Limited access keys (`Store::set_limited_keys`): a key acting as alice within its bucket
//! grants, checked with raw SigV4 requests (every operation family) and with s3cmd.

use origin::{BucketGrant, KeyAccess, LimitedKey};

use crate::common::{ALICE, S3cmd, Server, User, md5_hex, xml_field, xml_fields};

/// The limited key of these tests; it acts as alice.
const KEY: User = User {
    id: "alice",
    access_key: "LIMITEDKEY0123456789",
    secret_key: "limited-secret-0123456789abcdefghijklmno",
};

fn limited_key(grants: &[(&str, KeyAccess)]) -> LimitedKey {
    LimitedKey {
        access_key: KEY.access_key.into(),
        secret_key: KEY.secret_key.into(),
        user_id: ALICE.id.into(),
        grants: grants
            .iter()
            .map(|(bucket, access)| BucketGrant {
                bucket: (*bucket).into(),
                access: *access,
            })
            .collect(),
    }
}

/// A store with alice's buckets `rdo`, `rdw` and `other`, each holding `k`, and the limited key
/// granted `read` on `rdo` and `readwrite` on `rdw`.
async fn setup() -> Server {
    let server = Server::start().await;
    for bucket in ["rdo", "rdw", "other"] {
        server.store.ensure_bucket(bucket, ALICE.id).unwrap();
        let resp = server
            .request(Some(ALICE), "PUT", &format!("/{bucket}/k"), &[], "body")
            .await;
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    server
        .store
        .set_limited_keys(&[limited_key(&[
            ("rdo", KeyAccess::Read),
            ("rdw", KeyAccess::ReadWrite),
        ])])
        .unwrap();
    server
}

fn delete_body(keys: &[&str]) -> (String, String) {
    use base64::Engine as _;
    let objects: String = keys
        .iter()
        .map(|k| format!("<Object><Key>{k}</Key></Object>"))
        .collect();
    let body = format!("<Delete>{objects}</Delete>");
    let md5 = base64::engine::general_purpose::STANDARD
        .encode(hex::decode(md5_hex(body.as_bytes())).unwrap());
    (body, md5)
}

#[tokio::test]
async fn a_limited_key_may_do_what_its_grants_say_and_nothing_else() {
    let server = setup().await;
    let call = |method: &'static str, path: &'static str, headers: &'static [(&str, &str)]| {
        let server = &server;
        async move {
            server
                .request(Some(KEY), method, path, headers, "body")
                .await
        }
    };

    // ListBuckets shows the granted buckets only.
    let listed = call("GET", "/", &[]).await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(xml_fields(&listed.text(), "Name"), ["rdo", "rdw"]);

    // `read`: lists and reads.
    for (method, path) in [
        ("GET", "/rdo/k"),
        ("HEAD", "/rdo/k"),
        ("GET", "/rdo/k?versionId=null"),
        ("HEAD", "/rdo"),
        ("GET", "/rdo"),
        ("GET", "/rdo?list-type=2"),
        ("GET", "/rdo?versions"),
        ("GET", "/rdo?location"),
    ] {
        let resp = server.request(Some(KEY), method, path, &[], "").await;
        assert_eq!(resp.status, 200, "{method} {path}: {}", resp.text());
    }
    // `readwrite`: also writes, copies from a readable bucket, multipart, deletes.
    assert_eq!(call("PUT", "/rdw/new", &[]).await.status, 200);
    let acl = server
        .request(Some(ALICE), "GET", "/rdw/new?acl", &[], "")
        .await;
    assert_eq!(
        xml_field(&acl.text(), "ID").as_deref(),
        Some(ALICE.id),
        "written as the user the key acts as"
    );
    let copied = call("PUT", "/rdw/copy", &[("x-amz-copy-source", "/rdo/k")]).await;
    assert_eq!(copied.status, 200, "{}", copied.text());
    let upload = call("POST", "/rdw/mp?uploads", &[]).await;
    assert_eq!(upload.status, 200, "{}", upload.text());
    assert_eq!(call("DELETE", "/rdw/new", &[]).await.status, 204);
    let (body, md5) = delete_body(&["copy"]);
    let deleted = server
        .request(
            Some(KEY),
            "POST",
            "/rdw?delete",
            &[("content-md5", &md5)],
            body,
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(xml_fields(&deleted.text(), "Key"), ["copy"]);

    // Refused: writes with a read grant, other buckets (existing or not), copies out of a
    // bucket it may not read, and bucket administration even where it may write.
    let (body, md5) = delete_body(&["k"]);
    let refused_delete = server
        .request(
            Some(KEY),
            "POST",
            "/rdo?delete",
            &[("content-md5", &md5)],
            body,
        )
        .await;
    let mut refused = vec![("POST /rdo?delete".to_owned(), refused_delete)];
    for (method, path, headers) in [
        ("PUT", "/rdo/new", &[][..]),
        ("DELETE", "/rdo/k", &[]),
        ("POST", "/rdo/mp?uploads", &[]),
        ("PUT", "/rdo/copy", &[("x-amz-copy-source", "/rdo/k")]),
        ("GET", "/other/k", &[]),
        ("HEAD", "/other", &[]),
        ("GET", "/other?list-type=2", &[]),
        ("PUT", "/other/new", &[]),
        ("GET", "/missing", &[]),
        ("PUT", "/rdw/copy", &[("x-amz-copy-source", "/other/k")]),
        ("PUT", "/fresh-bucket", &[]),
        ("DELETE", "/rdw", &[]),
        ("PUT", "/rdw?policy", &[]),
        ("GET", "/rdw?policy", &[]),
        ("GET", "/rdw?acl", &[]),
        ("PUT", "/rdw?acl", &[("x-amz-acl", "public-read")]),
        ("PUT", "/rdw?cors", &[]),
        ("GET", "/rdw?versioning", &[]),
        ("PUT", "/rdw?versioning", &[]),
        ("PUT", "/rdw?lifecycle", &[]),
        ("GET", "/rdw?logging", &[]),
    ] {
        let body = if method == "PUT" { "body" } else { "" };
        let resp = server.request(Some(KEY), method, path, headers, body).await;
        refused.push((format!("{method} {path}"), resp));
    }
    for (what, resp) in &refused {
        assert_eq!(resp.status, 403, "{what}: {}", resp.text());
        if !what.starts_with("HEAD") {
            assert_eq!(resp.code(), "AccessDenied", "{what}: {}", resp.text());
        }
    }
    // Nothing refused took effect.
    let kept = server.request(Some(ALICE), "GET", "/rdo/k", &[], "").await;
    assert_eq!((kept.status, kept.text().as_str()), (200, "body"));
    assert_eq!(
        server
            .request(Some(ALICE), "HEAD", "/fresh-bucket", &[], "")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn limited_keys_are_replaced_at_runtime() {
    let server = setup().await;
    let get = || server.request(Some(KEY), "GET", "/rdo/k", &[], "");
    assert_eq!(get().await.status, 200);

    // A set naming an unknown user, or a configured user's access key, changes nothing.
    let mut stranger = limited_key(&[("rdo", KeyAccess::Read)]);
    stranger.user_id = "nobody".into();
    assert!(server.store.set_limited_keys(&[stranger]).is_err());
    let mut clash = limited_key(&[("rdo", KeyAccess::Read)]);
    clash.access_key = ALICE.access_key.into();
    assert!(server.store.set_limited_keys(&[clash]).is_err());
    assert_eq!(get().await.status, 200);

    // Narrowed: the old grant stops at once.
    server
        .store
        .set_limited_keys(&[limited_key(&[("rdw", KeyAccess::Read)])])
        .unwrap();
    assert_eq!(get().await.code(), "AccessDenied");
    assert_eq!(
        server
            .request(Some(KEY), "GET", "/rdw/k", &[], "")
            .await
            .status,
        200
    );
    // Removed: the key is unknown.
    server.store.set_limited_keys(&[]).unwrap();
    let gone = server.request(Some(KEY), "GET", "/rdw/k", &[], "").await;
    assert_eq!(gone.status, 403);
    assert_eq!(gone.code(), "InvalidAccessKeyId", "{}", gone.text());
}

#[tokio::test]
async fn s3cmd_with_a_limited_key() {
    let server = setup().await;
    let s3 = S3cmd::new(&server, KEY);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("up.txt");
    std::fs::write(&file, "uploaded").unwrap();
    let file = file.to_str().unwrap();

    let buckets = s3.ok(&["ls"]).await;
    assert!(
        buckets.contains("s3://rdo") && buckets.contains("s3://rdw") && !buckets.contains("other"),
        "{buckets}"
    );
    assert!(s3.ok(&["ls", "s3://rdo"]).await.contains("s3://rdo/k"));
    s3.ok(&["put", file, "s3://rdw/up.txt"]).await;
    let got = dir.path().join("got.txt");
    s3.ok(&["get", "s3://rdw/up.txt", got.to_str().unwrap()])
        .await;
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "uploaded");
    s3.ok(&["del", "s3://rdw/up.txt"]).await;

    for args in [
        &["put", file, "s3://rdo/up.txt"][..],
        &["ls", "s3://other"],
        &["get", "s3://other/k", "-"],
        &["mb", "s3://made-by-key"],
        &["rb", "s3://rdw"],
        &["setacl", "--acl-public", "s3://rdw"],
    ] {
        let (ok, out) = s3.run(args).await;
        assert!(!ok, "s3cmd {args:?} succeeded:\n{out}");
        assert!(
            out.contains("AccessDenied") || out.contains("403"),
            "s3cmd {args:?}:\n{out}"
        );
    }
}
