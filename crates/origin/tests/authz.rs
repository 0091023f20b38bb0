//! Authorization holes an outside review found (issue #11): decisions taken against a bucket
//! that changed while the request body was in flight, and DeleteObjects deciding per bucket
//! instead of per key.

use std::time::Duration;

use crate::common::raw::RawConn;
use crate::common::{ALICE, BOB, Server, md5_hex, sign, xml_field, xml_fields};

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

fn policy_body(bucket: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::{bucket}","arn:aws:s3:::{bucket}/*"]}}]}}"#
    )
}

fn public_acl_body() -> String {
    format!(
        r#"<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>alice</ID></Owner><AccessControlList><Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group"><URI>{ALL_USERS}</URI></Grantee><Permission>FULL_CONTROL</Permission></Grant></AccessControlList></AccessControlPolicy>"#
    )
}

const CORS_BODY: &str = "<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>";

/// What the bucket says about anonymous access, seen by its owner.
async fn anonymous_grants(server: &Server, bucket: &str) -> (u16, bool, u16) {
    let policy = server
        .request(Some(ALICE), "GET", &format!("/{bucket}?policy"), &[], "")
        .await;
    let acl = server
        .request(Some(ALICE), "GET", &format!("/{bucket}?acl"), &[], "")
        .await;
    let cors = server
        .request(Some(ALICE), "GET", &format!("/{bucket}?cors"), &[], "")
        .await;
    (policy.status, acl.text().contains(ALL_USERS), cors.status)
}

/// Issue #11, item 3: an anonymous `PUT /victim?policy` (or `?acl`, `?cors`) against a bucket
/// that does not exist yet was authorized at once ("a missing bucket passes"); if the bucket
/// was created while the body was in flight, the anonymous document was stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_subresource_put_on_bucket_created_in_flight_is_refused() {
    let server = Server::start().await;
    for (sub, body) in [
        ("policy", policy_body("victim-policy")),
        ("acl", public_acl_body()),
        ("cors", CORS_BODY.to_owned()),
    ] {
        let bucket = format!("victim-{sub}");
        let body = body.into_bytes();
        let (first, rest) = body.split_at(body.len() / 2);
        let mut conn = RawConn::connect(server.addr).await;
        conn.head(
            "PUT",
            &format!("/{bucket}?{sub}"),
            &[("content-length".into(), body.len().to_string())],
        )
        .await;
        conn.write(first).await;
        // Refused before the body is read: the answer comes while half of it is unsent.
        let early = conn.response_within(Duration::from_millis(700)).await;
        if let Some(resp) = &early {
            assert_eq!(
                (resp.status, resp.code().as_str()),
                (404, "NoSuchBucket"),
                "anonymous PUT ?{sub}: {}",
                resp.text()
            );
        }
        let resp = match early {
            Some(resp) => resp,
            None => {
                let created = server
                    .request(Some(ALICE), "PUT", &format!("/{bucket}"), &[], "")
                    .await;
                assert_eq!(created.status, 200, "{}", created.text());
                conn.write(rest).await;
                conn.response_within(Duration::from_secs(10))
                    .await
                    .expect("an answer once the body is complete")
            }
        };
        // Late (a loaded machine): refused all the same, whether the store saw the bucket
        // missing or, once created, not the anonymous caller's.
        assert!(
            matches!(
                (resp.status, resp.code().as_str()),
                (404, "NoSuchBucket") | (403, "AccessDenied")
            ),
            "anonymous PUT ?{sub}: {} {}",
            resp.status,
            resp.text()
        );
        let _ = server
            .request(Some(ALICE), "PUT", &format!("/{bucket}"), &[], "")
            .await;
        assert_eq!(
            anonymous_grants(&server, &bucket).await,
            (404, false, 404),
            "?{sub}: nothing anonymous stored"
        );
    }
}

/// The decision is taken against the bucket as it is when the change is applied: a grant
/// revoked while the body was in flight refuses the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_revoked_while_body_in_flight_refuses_the_change() {
    let server = Server::start().await;
    let resp = server
        .request(
            Some(ALICE),
            "PUT",
            "/shared",
            &[("x-amz-grant-write-acp", "id=bob")],
            "",
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = public_acl_body().into_bytes();
    let headers = sign::sign_headers(
        BOB,
        "PUT",
        &server.url("/shared?acl"),
        &[("content-length".into(), body.len().to_string())],
        &sign::sha256_hex(&body),
    );
    let mut conn = RawConn::connect(server.addr).await;
    conn.head("PUT", "/shared?acl", &headers).await;
    let (first, rest) = body.split_at(body.len() / 2);
    conn.write(first).await;
    assert!(
        conn.response_within(Duration::from_millis(300))
            .await
            .is_none(),
        "bob may change the ACL: the store waits for his body"
    );
    // Alice revokes bob's WRITE_ACP while his body is in flight.
    let resp = server
        .request(
            Some(ALICE),
            "PUT",
            "/shared?acl",
            &[("x-amz-acl", "private")],
            "",
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    conn.write(rest).await;
    let resp = conn
        .response_within(Duration::from_secs(10))
        .await
        .expect("an answer");
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (403, "AccessDenied"),
        "{}",
        resp.text()
    );
    assert!(
        !anonymous_grants(&server, "shared").await.1,
        "ACL unchanged"
    );
}

fn delete_body(keys: &[&str]) -> String {
    let objects: String = keys
        .iter()
        .map(|k| format!("<Object><Key>{k}</Key></Object>"))
        .collect();
    format!("<Delete>{objects}</Delete>")
}

async fn delete_objects(server: &Server, user: crate::common::User, keys: &[&str]) -> String {
    use base64::Engine as _;
    let body = delete_body(keys);
    let md5 = base64::engine::general_purpose::STANDARD
        .encode(hex::decode(md5_hex(body.as_bytes())).unwrap());
    let resp = server
        .request(
            Some(user),
            "POST",
            "/keys?delete",
            &[("content-md5", &md5)],
            body,
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.text()
}

async fn exists(server: &Server, key: &str) -> bool {
    let status = server
        .request(Some(ALICE), "HEAD", &format!("/keys/{key}"), &[], "")
        .await
        .status;
    assert!(status == 200 || status == 404, "HEAD {key}: {status}");
    status == 200
}

/// The per-key `<Error>` codes of a DeleteObjects reply, by key.
fn errors(reply: &str) -> Vec<(String, String)> {
    xml_fields(reply, "Error")
        .iter()
        .map(|e| {
            (
                xml_field(e, "Key").unwrap_or_default(),
                xml_field(e, "Code").unwrap_or_default(),
            )
        })
        .collect()
}

fn deleted(reply: &str) -> Vec<String> {
    xml_fields(reply, "Deleted")
        .iter()
        .filter_map(|d| xml_field(d, "Key"))
        .collect()
}

async fn bucket_with_keys(policy: &str, grant_write: bool) -> Server {
    let server = Server::start().await;
    let headers: &[(&str, &str)] = if grant_write {
        &[("x-amz-grant-write", "id=bob")]
    } else {
        &[]
    };
    assert_eq!(
        server
            .request(Some(ALICE), "PUT", "/keys", headers, "")
            .await
            .status,
        200
    );
    for key in ["protected/b.txt", "open/a.txt", "public/x", "private/y"] {
        let resp = server
            .request(Some(ALICE), "PUT", &format!("/keys/{key}"), &[], "v")
            .await;
        assert_eq!(resp.status, 200);
    }
    let resp = server
        .request(Some(ALICE), "PUT", "/keys?policy", &[], policy.to_owned())
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    server
}

/// Issue #11, item 4: bob, denied `s3:DeleteObject` on `protected/*`, deleted
/// `protected/b.txt` through DeleteObjects, which was authorized on the bucket only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_objects_honours_a_per_key_deny() {
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":["bob"]},"Action":"s3:DeleteObject","Resource":"arn:aws:s3:::keys/protected/*"}]}"#;
    let server = bucket_with_keys(policy, true).await;
    let single = server
        .request(Some(BOB), "DELETE", "/keys/protected/b.txt", &[], "")
        .await;
    assert_eq!(single.status, 403, "a single DeleteObject is refused");

    let reply = delete_objects(&server, BOB, &["protected/b.txt", "open/a.txt"]).await;
    assert_eq!(
        errors(&reply),
        [("protected/b.txt".to_owned(), "AccessDenied".to_owned())],
        "{reply}"
    );
    assert_eq!(deleted(&reply), ["open/a.txt"], "{reply}");
    assert!(exists(&server, "protected/b.txt").await);
    assert!(!exists(&server, "open/a.txt").await);

    // The owner is not bound by a Deny naming bob.
    let reply = delete_objects(&server, ALICE, &["protected/b.txt"]).await;
    assert!(errors(&reply).is_empty(), "{reply}");
    assert!(!exists(&server, "protected/b.txt").await);
}

/// The reverse: a per-prefix Allow lets bob delete those keys (and only those), where the
/// bucket-level check refused the whole request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_objects_honours_a_per_prefix_allow() {
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["bob"]},"Action":"s3:DeleteObject","Resource":"arn:aws:s3:::keys/public/*"}]}"#;
    let server = bucket_with_keys(policy, false).await;
    let reply = delete_objects(&server, BOB, &["public/x", "private/y"]).await;
    assert_eq!(
        errors(&reply),
        [("private/y".to_owned(), "AccessDenied".to_owned())],
        "{reply}"
    );
    assert_eq!(deleted(&reply), ["public/x"], "{reply}");
    assert!(!exists(&server, "public/x").await);
    assert!(exists(&server, "private/y").await);

    // A caller no statement or grant could allow is refused before the body is read.
    let mut conn = RawConn::connect(server.addr).await;
    conn.head(
        "POST",
        "/keys?delete",
        &[("content-length".into(), "100000".into())],
    )
    .await;
    let resp = conn
        .response_within(Duration::from_secs(5))
        .await
        .expect("anonymous multi-delete answered before its body");
    assert_eq!((resp.status, resp.code().as_str()), (403, "AccessDenied"));
    assert!(exists(&server, "private/y").await);
}
