//! The same conformance checks against the directory and the origin (embedded S3) stores.

use super::*;
use crate::origin::Signer;

/// What both stores must do.
async fn conformance(store: &dyn CertStateStore) {
    assert_eq!(store.get("certs/none.pem").await.unwrap(), None);
    let etag = store
        .put(
            "certs/a.example.pem",
            Bytes::from_static(b"one"),
            Write::Always,
        )
        .await
        .unwrap()
        .expect("unconditional write");
    let got = store.get("certs/a.example.pem").await.unwrap().unwrap();
    assert_eq!(got.body, Bytes::from_static(b"one"));
    assert_eq!(got.etag, etag);

    // If-None-Match: * loses against an existing key, wins on a new one.
    assert_eq!(
        store
            .put(
                "certs/a.example.pem",
                Bytes::from_static(b"two"),
                Write::IfAbsent
            )
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .put(
                "leases/a.example",
                Bytes::from_static(b"l1"),
                Write::IfAbsent
            )
            .await
            .unwrap()
            .is_some()
    );

    // If-Match: only against the current version.
    assert_eq!(
        store
            .put(
                "certs/a.example.pem",
                Bytes::from_static(b"three"),
                Write::IfMatch("0000".into())
            )
            .await
            .unwrap(),
        None
    );
    let new_etag = store
        .put(
            "certs/a.example.pem",
            Bytes::from_static(b"three"),
            Write::IfMatch(etag.clone()),
        )
        .await
        .unwrap()
        .expect("matching etag wins");
    assert_ne!(new_etag, etag);
    assert_eq!(
        store
            .put(
                "certs/gone.pem",
                Bytes::from_static(b"x"),
                Write::IfMatch(new_etag.clone())
            )
            .await
            .unwrap(),
        None
    );

    store
        .put(
            "certs/b.example.pem",
            Bytes::from_static(b"b"),
            Write::Always,
        )
        .await
        .unwrap();
    let listed = store.list(keys::CERTS).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(names, ["certs/a.example.pem", "certs/b.example.pem"]);
    assert_eq!(listed[0].etag, new_etag);
    assert!(store.list("nothing/").await.unwrap().is_empty());

    store.delete("certs/b.example.pem").await.unwrap();
    store.delete("certs/b.example.pem").await.unwrap();
    assert_eq!(store.get("certs/b.example.pem").await.unwrap(), None);
    assert!(matches!(
        store.get("../escape").await,
        Err(StoreError::Key(_))
    ));
}

#[tokio::test]
async fn dir_store_conformance() {
    let dir = tempfile::tempdir().unwrap();
    conformance(&DirStore::new(dir.path())).await;
}

#[tokio::test]
async fn origin_store_conformance_against_the_embedded_origin() {
    let dir = tempfile::tempdir().unwrap();
    let store = ::origin::Store::open(::origin::StoreConfig {
        data_dir: dir.path().to_owned(),
        domain: None,
        region: "us-east-1".into(),
        users: vec![::origin::UserConfig {
            id: "admin".into(),
            display_name: "admin".into(),
            email: None,
            access_key: "AKIDSTORETEST".into(),
            secret_key: "store-test-secret".into(),
        }],
        lifecycle: ::origin::LifecycleConfig::default(),
        log_flush: ::origin::DEFAULT_LOG_FLUSH,
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        store
            .serve(listener, async move {
                let _ = stopped.await;
            })
            .await
    });
    let endpoint: http::Uri = format!("http://{addr}").parse().unwrap();
    let origin_store = OriginStore::new(
        &endpoint,
        BUCKET,
        "us-east-1",
        Signer::new("AKIDSTORETEST", "store-test-secret", "us-east-1"),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    conformance(&origin_store).await;

    // The bucket is private: an anonymous read is refused.
    let anonymous = reqwest::get(format!("http://{addr}/{BUCKET}/certs/a.example.pem"))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 403);
    let _ = stop.send(());
    let _ = server.await;
}

/// A bucket named like the state bucket that another user of the origin created first, and
/// opened to everyone, is refused: the fleet's keys would be that user's to read.
#[tokio::test]
async fn a_state_bucket_squatted_by_another_user_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let user = |id: &str, key: &str| ::origin::UserConfig {
        id: id.into(),
        display_name: id.into(),
        email: None,
        access_key: key.into(),
        secret_key: format!("{id}-secret-key"),
    };
    let store = ::origin::Store::open(::origin::StoreConfig {
        data_dir: dir.path().to_owned(),
        domain: None,
        region: "us-east-1".into(),
        users: vec![user("edge", "AKIDEDGE"), user("mallory", "AKIDMALLORY")],
        lifecycle: ::origin::LifecycleConfig::default(),
        log_flush: ::origin::DEFAULT_LOG_FLUSH,
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        store
            .serve(listener, async move {
                let _ = stopped.await;
            })
            .await
    });
    let endpoint: http::Uri = format!("http://{addr}").parse().unwrap();
    let store_of = |id: &str, key: &str| {
        OriginStore::new(
            &endpoint,
            BUCKET,
            "us-east-1",
            Signer::new(key, &format!("{id}-secret-key"), "us-east-1"),
            std::time::Duration::from_secs(5),
        )
        .unwrap()
    };

    // Mallory creates the bucket first and lets everyone do everything in it.
    let mallory = store_of("mallory", "AKIDMALLORY");
    mallory
        .put("bait", Bytes::from_static(b"x"), Write::Always)
        .await
        .unwrap();
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::{BUCKET}","arn:aws:s3:::{BUCKET}/*"]}}]}}"#
    );
    let mut request = http::Request::put(format!("http://{addr}/{BUCKET}?policy"))
        .header(http::header::CONTENT_LENGTH, policy.len())
        .body(())
        .unwrap();
    Signer::new("AKIDMALLORY", "mallory-secret-key", "us-east-1")
        .sign_with_body(
            &mut request,
            policy.as_bytes(),
            std::time::SystemTime::now(),
        )
        .unwrap();
    let (parts, ()) = request.into_parts();
    let mut put_policy = reqwest::Client::new().put(format!("http://{addr}/{BUCKET}?policy"));
    for (name, value) in &parts.headers {
        put_policy = put_policy.header(name.as_str(), value.as_bytes());
    }
    let answer = put_policy.body(policy).send().await.unwrap();
    assert!(answer.status().is_success(), "{:?}", answer.text().await);

    // The edge's user refuses to keep anything there.
    let edge = store_of("edge", "AKIDEDGE");
    let refused = edge
        .put(
            "accounts/key.json",
            Bytes::from_static(b"private key"),
            Write::Always,
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::NotOwned(_))),
        "{refused:?}"
    );
    assert!(!refused.unwrap_err().is_retryable());
    assert_eq!(mallory.get("accounts/key.json").await.unwrap(), None);
    let _ = stop.send(());
    let _ = server.await;
}

#[test]
fn keys_are_valid_store_keys() {
    assert!(valid_key(&keys::cert("img.example.com")));
    assert!(valid_key(&keys::lease("*.example.com")));
    assert!(valid_key(&keys::account("https://acme.example/dir")));
    assert!(valid_key(&keys::http01("abc-DEF_123")));
    assert_eq!(
        keys::domain_of_cert(&keys::cert("img.example.com")),
        Some("img.example.com")
    );
    assert_eq!(keys::domain_of_cert("leases/x"), None);
    assert!(!valid_key("a//b"));
    assert!(!valid_key("a/../b"));
    assert!(!valid_key("a/.tmp"));
    assert!(!valid_key("a b"));
}
