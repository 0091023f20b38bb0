//! The edge in front of the embedded S3 store, driven by a real S3 client (s3cmd).

use std::path::Path;

use crate::common::s3::{ACCESS, S3cmd, SECRET};
use crate::common::{cache_status, client, start_edge};

fn config(data: &Path) -> String {
    format!(
        r#"
[pop]
name = "emb"
[listen]
http = "127.0.0.1:0"
[cache]
default_ttl = "1h"
[origin]
kind = "embedded"
data_dir = "{data}"
[[origin.user]]
id = "admin"
access_key = "{ACCESS}"
secret_key = "{SECRET}"
[[space]]
name = "assets"
[[space]]
name = "private"
origin_auth = "signed"
"#,
        data = data.join("origin").display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_with_s3cmd_are_served_through_the_edge() {
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&config(dir.path())).await;
    let public = dir.path().join("public.txt");
    std::fs::write(&public, "public bytes").unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "secret bytes").unwrap();
    let public_s = public.to_str().unwrap();
    let secret_s = secret.to_str().unwrap();
    let s3 = S3cmd::new(dir.path(), edge.origin_addr.unwrap());
    s3.run(&[
        "put",
        "--acl-public",
        "--add-header=Cache-Control:max-age=120",
        public_s,
        "s3://assets/docs/public.txt",
    ]);
    s3.run(&["put", secret_s, "s3://assets/docs/secret.txt"]);
    s3.run(&["put", secret_s, "s3://private/docs/secret.txt"]);

    let c = client(&["assets", "private"], &[]);
    let port = edge.http_addr.unwrap().port();
    let url = |space: &str, path: &str| format!("http://{space}.local.cdn.localhost:{port}{path}");

    let r = c
        .get(url("assets", "/docs/public.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(cache_status(&r), "emb; fwd=miss; stored");
    assert!(r.headers().contains_key("etag"));
    assert_eq!(r.text().await.unwrap(), "public bytes");
    let r = c
        .get(url("assets", "/docs/public.txt"))
        .send()
        .await
        .unwrap();
    let status = cache_status(&r);
    assert!(
        status.starts_with("emb; hit; ttl=1"),
        "object Cache-Control applies: {status}"
    );

    // A private object is never served to an anonymous edge client of an anonymous space...
    let r = c
        .get(url("assets", "/docs/secret.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .get(url("assets", "/docs/secret.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(!cache_status(&r).contains("hit"));
    // ...but a signed space fetches with the origin credentials.
    let r = c
        .get(url("private", "/docs/secret.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "secret bytes");

    // Subresource queries are not forwarded: `?acl` is just part of the cache key.
    let r = c
        .get(url("assets", "/docs/public.txt?acl"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "public bytes");

    // An empty key is 404; writes are refused on S3 spaces.
    let r = c.get(url("assets", "/")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .put(url("assets", "/docs/public.txt"))
        .body("overwrite")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_open_only_their_object_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&config(dir.path())).await;
    let origin = edge.origin_addr.unwrap();
    let s3 = S3cmd::new(dir.path(), origin);
    let file = dir.path().join("p.txt");
    std::fs::write(&file, "presigned bytes").unwrap();
    s3.run(&["put", file.to_str().unwrap(), "s3://assets/p.txt"]);
    s3.run(&["put", file.to_str().unwrap(), "s3://assets/other.txt"]);
    // s3cmd presigns with SigV2; browsers' SDKs use SigV4 query signing.
    let query = presign_v4(&format!("http://{origin}/assets/p.txt"), 300);

    let c = client(&["assets"], &[]);
    let port = edge.http_addr.unwrap().port();
    let r = c
        .get(format!(
            "http://assets.local.cdn.localhost:{port}/p.txt?{query}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "presign parameters reach the origin");
    assert_eq!(r.text().await.unwrap(), "presigned bytes");
    // The same signature does not open another object, nor the object without it.
    let r = c
        .get(format!(
            "http://assets.local.cdn.localhost:{port}/other.txt?{query}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .get(format!("http://assets.local.cdn.localhost:{port}/p.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "the presigned entry is not served without its signature"
    );
    edge.stop().await;
}

/// A SigV4 presigned GET URL's query string.
fn presign_v4(url: &str, expires_secs: u64) -> String {
    use aws_sigv4::http_request::{
        SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
    };
    let identity =
        aws_credential_types::Credentials::new(ACCESS, SECRET, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(std::time::Duration::from_secs(expires_secs));
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "GET",
        url,
        std::iter::empty(),
        SignableBody::UnsignedPayload,
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::get(url).body(()).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    request.uri().query().unwrap().to_owned()
}
