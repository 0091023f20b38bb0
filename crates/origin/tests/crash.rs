//! Crash safety: SIGKILL the store in the middle of many concurrent uploads, restart it on
//! the same data directory, and check that every listed object reads back whole.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::common::child::Child;
use crate::common::{ALICE, config, data, md5_hex, xml_field, xml_fields};

/// The store as a child process: serves the data dir named by `ORIGIN_CHILD_DATA_DIR` and
/// prints its port. Started by the crash and streaming tests; does nothing otherwise.
#[test]
#[ignore = "run as a child process by the crash and streaming tests"]
fn child_server() {
    let Some(dir) = std::env::var_os("ORIGIN_CHILD_DATA_DIR") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = origin::Store::open(config(Path::new(&dir), None)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!(
            "ORIGIN_CHILD_PORT={}",
            listener.local_addr().unwrap().port()
        );
        store.serve(listener, std::future::pending()).await.unwrap();
    });
}

fn size_of(i: usize) -> usize {
    match i % 5 {
        0 => 0,
        1 => 1000 + i,
        2 => 300 * 1024 + i * 7,
        3 => 1024 * 1024 + i * 13,
        _ => 3 * 1024 * 1024 + i,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_uploads_never_lists_a_torn_object() {
    let _heavy = crate::common::HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Child::spawn(dir.path()).await;
    assert_eq!(
        child
            .request(Some(ALICE), "PUT", "/crash", Bytes::new())
            .await
            .status,
        200
    );

    let bodies: Vec<Bytes> = (0..100)
        .map(|i| Bytes::from(data(size_of(i), i as u64)))
        .collect();
    let expected: HashMap<String, String> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| (format!("obj/{i:03}"), md5_hex(b)))
        .collect();

    let addr = child.addr;
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let uploads = {
        let bodies = bodies.clone();
        tokio::spawn(async move {
            futures::stream::iter(bodies.into_iter().enumerate())
                .map(|(i, body)| {
                    let acked = acked_tx.clone();
                    async move {
                        let key = format!("obj/{i:03}");
                        if let Some(resp) = Child::try_request(
                            addr,
                            Some(ALICE),
                            "PUT",
                            &format!("/crash/{key}"),
                            body,
                        )
                        .await
                            && resp.status == 200
                        {
                            let _ = acked.send(key);
                        }
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<()>>()
                .await
        })
    };
    // Let a good share of the uploads finish, then pull the plug mid-flight.
    let mut acked = Vec::new();
    while acked.len() < 30 {
        match tokio::time::timeout(Duration::from_secs(60), acked_rx.recv()).await {
            Ok(Some(key)) => acked.push(key),
            _ => break,
        }
    }
    child.kill().await;
    uploads.await.unwrap();
    while let Ok(key) = acked_rx.try_recv() {
        acked.push(key);
    }
    assert!(
        acked.len() >= 30,
        "only {} uploads acknowledged before the kill",
        acked.len()
    );
    assert!(
        acked.len() < 100,
        "the kill came too late to interrupt anything"
    );

    let child = Child::spawn(dir.path()).await;
    let mut listed = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("/crash?list-type=2&max-keys=17&continuation-token={t}"),
            None => "/crash?list-type=2&max-keys=17".to_owned(),
        };
        let resp = child.request(Some(ALICE), "GET", &path, Bytes::new()).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        let text = resp.text();
        for contents in xml_fields(&text, "Contents") {
            let key = xml_field(&contents, "Key").unwrap();
            let etag = xml_field(&contents, "ETag")
                .unwrap()
                .replace("&quot;", "")
                .replace('"', "");
            listed.push((key, etag));
        }
        match xml_field(&text, "NextContinuationToken") {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let listed_keys: Vec<&str> = listed.iter().map(|(k, _)| k.as_str()).collect();
    for key in &acked {
        assert!(
            listed_keys.contains(&key.as_str()),
            "acknowledged {key} is missing after the crash"
        );
    }
    for (key, etag) in &listed {
        assert_eq!(Some(etag), expected.get(key), "listed ETag of {key}");
        let resp = child
            .request(Some(ALICE), "GET", &format!("/crash/{key}"), Bytes::new())
            .await;
        assert_eq!(resp.status, 200);
        assert_eq!(&md5_hex(&resp.body), etag, "{key} reads back whole");
    }
    let leftovers = std::fs::read_dir(dir.path().join("tmp")).unwrap().count();
    assert_eq!(leftovers, 0, "recovery removes temp files");
    let blobs: usize = std::fs::read_dir(dir.path().join("blobs"))
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(
        blobs,
        listed.len(),
        "recovery removes body files no object references"
    );
    println!(
        "crash test: {} acknowledged, {} listed after restart",
        acked.len(),
        listed.len()
    );
}

/// Every (key, version id) of a versioned listing, paged by key and version markers:
/// (key, version id, ETag or None for a delete marker, is latest).
async fn list_versions(child: &Child, bucket: &str) -> Vec<(String, String, Option<String>, bool)> {
    let mut out = Vec::new();
    let mut markers: Option<(String, String)> = None;
    loop {
        let path = match &markers {
            Some((k, v)) => format!(
                "/{bucket}?versions&max-keys=17&key-marker={}&version-id-marker={v}",
                url::form_urlencoded::byte_serialize(k.as_bytes()).collect::<String>()
            ),
            None => format!("/{bucket}?versions&max-keys=17"),
        };
        let resp = child.request(Some(ALICE), "GET", &path, Bytes::new()).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        let text = resp.text();
        let mut page: Vec<(String, String, Option<String>, bool)> = Vec::new();
        for (tag, is_marker) in [("Version", false), ("DeleteMarker", true)] {
            for entry in xml_fields(&text, tag) {
                page.push((
                    xml_field(&entry, "Key").unwrap(),
                    xml_field(&entry, "VersionId").unwrap(),
                    (!is_marker).then(|| {
                        xml_field(&entry, "ETag")
                            .unwrap()
                            .replace("&quot;", "")
                            .replace('"', "")
                    }),
                    xml_field(&entry, "IsLatest").unwrap() == "true",
                ));
            }
        }
        out.extend(page);
        match (
            xml_field(&text, "NextKeyMarker"),
            xml_field(&text, "NextVersionIdMarker"),
        ) {
            (Some(k), Some(v)) if xml_field(&text, "IsTruncated").as_deref() == Some("true") => {
                markers = Some((k, v));
            }
            _ => break,
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_versioned_writes_never_lists_a_version_without_its_body() {
    let _heavy = crate::common::HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Child::spawn(dir.path()).await;
    assert_eq!(
        child
            .request(Some(ALICE), "PUT", "/crashv", Bytes::new())
            .await
            .status,
        200
    );
    let enable = "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>";
    let resp = child
        .request(
            Some(ALICE),
            "PUT",
            "/crashv?versioning",
            Bytes::from(enable),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());

    // 100 operations on 10 keys: versioned PUTs, and every ninth a DELETE (a marker).
    let bodies: Vec<Bytes> = (0..100)
        .map(|i| Bytes::from(data(size_of(i), 1000 + i as u64)))
        .collect();
    let expected: std::collections::HashSet<String> = bodies.iter().map(|b| md5_hex(b)).collect();
    let addr = child.addr;
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    let ops = {
        let bodies = bodies.clone();
        tokio::spawn(async move {
            futures::stream::iter(bodies.into_iter().enumerate())
                .map(|(i, body)| {
                    let acked = acked_tx.clone();
                    async move {
                        let key = format!("obj/{:02}", i % 10);
                        let (method, body) = if i % 9 == 8 {
                            ("DELETE", Bytes::new())
                        } else {
                            ("PUT", body)
                        };
                        if let Some(resp) = Child::try_request(
                            addr,
                            Some(ALICE),
                            method,
                            &format!("/crashv/{key}"),
                            body,
                        )
                        .await
                            && resp.status / 100 == 2
                            && let Some(v) = resp.header("x-amz-version-id")
                        {
                            let _ = acked.send((key, v.to_owned()));
                        }
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<()>>()
                .await
        })
    };
    let mut acked = Vec::new();
    while acked.len() < 30 {
        match tokio::time::timeout(Duration::from_secs(60), acked_rx.recv()).await {
            Ok(Some(a)) => acked.push(a),
            _ => break,
        }
    }
    child.kill().await;
    ops.await.unwrap();
    while let Ok(a) = acked_rx.try_recv() {
        acked.push(a);
    }
    assert!(acked.len() >= 30, "only {} acknowledged", acked.len());
    assert!(
        acked.len() < 100,
        "the kill came too late to interrupt anything"
    );

    let child = Child::spawn(dir.path()).await;
    let listed = list_versions(&child, "crashv").await;
    for (key, version) in &acked {
        assert!(
            listed.iter().any(|(k, v, _, _)| k == key && v == version),
            "acknowledged version {version} of {key} is missing after the crash"
        );
    }
    let mut objects = 0;
    for (key, version, etag, _) in &listed {
        let resp = child
            .request(
                Some(ALICE),
                "GET",
                &format!("/crashv/{key}?versionId={version}"),
                Bytes::new(),
            )
            .await;
        match etag {
            Some(etag) => {
                objects += 1;
                assert_eq!(resp.status, 200, "{key} {version}");
                assert!(expected.contains(etag), "listed ETag of {key} {version}");
                assert_eq!(
                    &md5_hex(&resp.body),
                    etag,
                    "{key} {version} reads back whole"
                );
            }
            None => assert_eq!(resp.status, 405, "a delete marker by id"),
        }
    }
    for key in (0..10).map(|i| format!("obj/{i:02}")) {
        let latest = listed.iter().filter(|(k, _, _, l)| *k == key && *l).count();
        let any = listed.iter().any(|(k, ..)| *k == key);
        assert_eq!(
            latest,
            usize::from(any),
            "{key} has exactly one latest version"
        );
    }
    let leftovers = std::fs::read_dir(dir.path().join("tmp")).unwrap().count();
    assert_eq!(leftovers, 0, "recovery removes temp files");
    let blobs: usize = std::fs::read_dir(dir.path().join("blobs"))
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(
        blobs, objects,
        "recovery removes body files no version references"
    );
    println!(
        "versioned crash test: {} acknowledged, {} versions and markers listed after restart",
        acked.len(),
        listed.len()
    );
}
