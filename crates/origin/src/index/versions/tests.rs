//! Unit tests of `versions`.

use crate::index::records::{BucketRecord, ObjectRecord, VersionEntry};
use crate::index::*;
use crate::versioning::{Selector, Versioning};

fn open() -> (tempfile::TempDir, Index) {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("db")).unwrap();
    index
        .create_bucket(
            "b",
            &BucketRecord {
                owner: "alice".into(),
                created_ms: 0,
                acl: Default::default(),
                policy: None,
                cors: None,
                versioning: Versioning::Unversioned,
                lifecycle: None,
            },
        )
        .unwrap();
    (dir, index)
}

fn set(index: &Index, v: Versioning) {
    index
        .update_bucket("b", |_| true, |b| b.versioning = v)
        .unwrap();
}

fn object(blob: &str) -> ObjectRecord {
    ObjectRecord {
        blob: blob.into(),
        size: 1,
        etag: format!("e{blob}"),
        modified_ms: 0,
        owner: "alice".into(),
        acl: Default::default(),
        headers: Default::default(),
        parts: None,
        version_id: None,
        seq: 0,
    }
}

/// Puts and returns (version id, replaced body).
fn put(index: &Index, key: &str, blob: &str) -> (Option<String>, Option<String>) {
    match index
        .put_object("b", key, &object(blob), &WriteCondition::default(), |_| {
            true
        })
        .unwrap()
    {
        PutOutcome::Stored {
            replaced,
            version_id,
        } => (version_id, replaced),
        other => panic!("{other:?}"),
    }
}

fn delete(index: &Index, key: &str, sel: Option<Selector>) -> (DeleteEffect, Vec<String>) {
    let d = index
        .delete_objects("b", &[(key, sel)], "alice", |_| |_: &str, _| true)
        .unwrap()
        .unwrap();
    (d.effects[0].clone().unwrap(), d.blobs)
}

/// (key, version id, is marker, latest) of every version, in listing order.
fn versions(index: &Index) -> Vec<(String, String, bool, bool)> {
    let page = index
        .list_versions(&VersionListQuery {
            bucket: "b",
            prefix: "",
            delimiter: "",
            key_marker: None,
            version_marker: None,
            max: 1000,
        })
        .unwrap();
    page.entries
        .into_iter()
        .map(|e| match e {
            VersionListEntry::Version { key, entry, latest } => (
                key,
                entry.version_id().unwrap_or("null").to_owned(),
                matches!(entry, VersionEntry::Marker(_)),
                latest,
            ),
            VersionListEntry::Prefix(p) => (p, String::new(), false, false),
        })
        .collect()
}

fn sel(id: &str) -> Selector {
    Selector::parse(id).unwrap()
}

#[test]
fn enabled_bucket_keeps_every_version_and_markers_hide_them() {
    let (_dir, index) = open();
    assert_eq!(put(&index, "k", "0"), (None, None));
    set(&index, Versioning::Enabled);
    let (v1, replaced) = put(&index, "k", "1");
    assert_eq!(replaced, None, "the null version stays");
    let v1 = v1.unwrap();
    let (v2, _) = put(&index, "k", "2");
    let v2 = v2.unwrap();
    assert!(v2 > v1);
    let listed = versions(&index);
    assert_eq!(
        listed,
        [
            ("k".into(), v2.clone(), false, true),
            ("k".into(), v1.clone(), false, false),
            ("k".into(), "null".into(), false, false),
        ]
    );
    // DELETE writes a marker; the latest is gone, every version is still readable.
    let (effect, blobs) = delete(&index, "k", None);
    let DeleteEffect::MarkerCreated(Some(marker)) = effect else {
        panic!("{effect:?}")
    };
    assert!(blobs.is_empty());
    assert!(matches!(index.latest("b", "k").unwrap(), Latest::Marker(_)));
    assert!(index.object("b", "k").unwrap().is_none(), "not listed");
    let found = index.version("b", "k", &sel(&v1)).unwrap().unwrap();
    assert!(matches!(found.entry, VersionEntry::Object(ref o) if o.blob == "1"));
    assert!(index.version("b", "k", &Selector::Null).unwrap().is_some());
    // Deleting the marker by id restores the newest version.
    let (effect, _) = delete(&index, "k", Some(sel(&marker)));
    assert_eq!(
        effect,
        DeleteEffect::VersionRemoved {
            version_id: Some(marker),
            marker: true
        }
    );
    assert_eq!(index.object("b", "k").unwrap().unwrap().blob, "2");
    // Deleting the latest by id promotes the next; the body goes.
    let (_, blobs) = delete(&index, "k", Some(sel(&v2)));
    assert_eq!(blobs, ["2"]);
    assert_eq!(index.object("b", "k").unwrap().unwrap().blob, "1");
    let (effect, _) = delete(&index, "k", Some(sel(&v2)));
    assert_eq!(effect, DeleteEffect::NoSuchVersion);
    assert_eq!(
        index.delete_bucket("b", |_| true).unwrap(),
        DeleteBucketOutcome::NotEmpty
    );
    delete(&index, "k", Some(sel(&v1)));
    let (_, blobs) = delete(&index, "k", Some(Selector::Null));
    assert_eq!(blobs, ["0"]);
    assert!(versions(&index).is_empty());
    assert!(index.referenced_blobs().unwrap().is_empty());
    assert_eq!(
        index.delete_bucket("b", |_| true).unwrap(),
        DeleteBucketOutcome::Deleted {
            unreferenced: Vec::new()
        }
    );
}

#[test]
fn suspended_writes_replace_the_null_version_only() {
    let (_dir, index) = open();
    set(&index, Versioning::Enabled);
    let (v1, _) = put(&index, "k", "1");
    set(&index, Versioning::Suspended);
    assert_eq!(put(&index, "k", "n1"), (None, None), "v1 is kept");
    assert_eq!(put(&index, "k", "n2"), (None, Some("n1".into())));
    // A suspended DELETE drops the null version and leaves a null marker.
    let (effect, blobs) = delete(&index, "k", None);
    assert_eq!(effect, DeleteEffect::MarkerCreated(None));
    assert_eq!(blobs, ["n2"]);
    let listed = versions(&index);
    assert_eq!(
        listed,
        [
            ("k".into(), "null".into(), true, true),
            ("k".into(), v1.clone().unwrap(), false, false),
        ]
    );
    // A new suspended write replaces the null marker.
    assert_eq!(put(&index, "k", "n3"), (None, None));
    assert_eq!(versions(&index).len(), 2);
    let refs = index.referenced_blobs().unwrap();
    assert!(refs.contains("1") && refs.contains("n3") && refs.len() == 2);
}

#[test]
fn version_listing_paginates_inside_a_key() {
    let (_dir, index) = open();
    set(&index, Versioning::Enabled);
    for (key, n) in [("a", 3), ("b/x", 2), ("c", 2)] {
        for i in 0..n {
            put(&index, key, &format!("{key}{i}"));
        }
    }
    delete(&index, "c", None);
    let all = versions(&index);
    assert_eq!(all.len(), 8);
    let mut seen = Vec::new();
    let (mut key_marker, mut version_marker): (Option<String>, Option<Selector>) = (None, None);
    loop {
        let page = index
            .list_versions(&VersionListQuery {
                bucket: "b",
                prefix: "",
                delimiter: "",
                key_marker: key_marker.as_deref(),
                version_marker: version_marker.as_ref(),
                max: 3,
            })
            .unwrap();
        for e in &page.entries {
            if let VersionListEntry::Version { key, entry, .. } = e {
                seen.push((key.clone(), entry.version_id().unwrap().to_owned()));
            }
        }
        if !page.truncated {
            break;
        }
        let Some(VersionListEntry::Version { key, entry, .. }) = page.entries.last() else {
            panic!()
        };
        key_marker = Some(key.clone());
        version_marker = Some(sel(entry.version_id().unwrap()));
    }
    let expected: Vec<(String, String)> = all
        .iter()
        .map(|(k, v, _, _)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(seen, expected);
    // With a delimiter, b/ rolls up into one prefix; the marker is c's latest.
    let page = index
        .list_versions(&VersionListQuery {
            bucket: "b",
            prefix: "",
            delimiter: "/",
            key_marker: None,
            version_marker: None,
            max: 1000,
        })
        .unwrap();
    assert_eq!(page.entries.len(), 3 + 1 + 3);
    assert!(matches!(&page.entries[3], VersionListEntry::Prefix(p) if p == "b/"));
    assert!(matches!(
        &page.entries[4],
        VersionListEntry::Version {
            entry: VersionEntry::Marker(_),
            latest: true,
            ..
        }
    ));
}

#[test]
fn version_ids_keep_growing_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut last = String::new();
    for round in 0..3 {
        let index = Index::open(&path).unwrap();
        if round == 0 {
            index
                .create_bucket(
                    "b",
                    &BucketRecord {
                        owner: "alice".into(),
                        created_ms: 0,
                        acl: Default::default(),
                        policy: None,
                        cors: None,
                        versioning: Versioning::Enabled,
                        lifecycle: None,
                    },
                )
                .unwrap();
        }
        for i in 0..3 {
            let id = put(&index, "k", &format!("{round}{i}")).0.unwrap();
            assert!(id > last, "{id} after {last}");
            last = id;
        }
    }
    let index = Index::open(&path).unwrap();
    assert_eq!(versions(&index).len(), 9);
}
