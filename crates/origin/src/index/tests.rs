//! Unit tests of `index`.

use super::records::{BucketRecord, ObjectRecord};
use super::*;

fn index() -> (tempfile::TempDir, Index) {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("db")).unwrap();
    (dir, index)
}

fn bucket() -> BucketRecord {
    BucketRecord {
        owner: "alice".into(),
        created_ms: 0,
        acl: Default::default(),
        policy: None,
        cors: None,
        versioning: crate::versioning::Versioning::Unversioned,
        lifecycle: None,
    }
}

fn object(blob: &str, etag: &str) -> ObjectRecord {
    ObjectRecord {
        blob: blob.into(),
        size: 1,
        etag: etag.into(),
        modified_ms: 0,
        owner: "alice".into(),
        acl: Default::default(),
        headers: Default::default(),
        parts: None,
        version_id: None,
        seq: 0,
    }
}

fn names(page: &ListPage) -> Vec<&str> {
    page.entries.iter().map(ListEntry::name).collect()
}

#[test]
fn conditional_put_checks_and_commits_atomically() {
    let (_dir, index) = index();
    assert!(matches!(
        index
            .put_object(
                "b",
                "k",
                &object("1", "e1"),
                &WriteCondition::default(),
                |_| true
            )
            .unwrap(),
        PutOutcome::NoSuchBucket
    ));
    index.create_bucket("b", &bucket()).unwrap();
    let create_only = WriteCondition {
        if_none_match: Some(EtagMatch::Any),
        ..Default::default()
    };
    assert!(matches!(
        index
            .put_object("b", "k", &object("1", "e1"), &create_only, |_| true)
            .unwrap(),
        PutOutcome::Stored { replaced: None, .. }
    ));
    assert!(matches!(
        index
            .put_object("b", "k", &object("2", "e2"), &create_only, |_| true)
            .unwrap(),
        PutOutcome::PreconditionFailed
    ));
    let if_match = WriteCondition {
        if_match: Some(EtagMatch::Tags(vec!["nope".into()])),
        ..Default::default()
    };
    assert!(matches!(
        index
            .put_object("b", "k", &object("2", "e2"), &if_match, |_| true)
            .unwrap(),
        PutOutcome::PreconditionFailed
    ));
    let if_match = WriteCondition {
        if_match: Some(EtagMatch::Tags(vec!["e1".into()])),
        ..Default::default()
    };
    match index
        .put_object("b", "k", &object("2", "e2"), &if_match, |_| true)
        .unwrap()
    {
        PutOutcome::Stored { replaced, .. } => assert_eq!(replaced.as_deref(), Some("1")),
        other => panic!("{other:?}"),
    }
    assert_eq!(index.object("b", "k").unwrap().unwrap().etag, "e2");
}

#[test]
fn delete_bucket_only_when_empty_and_uploads_go_with_it() {
    let (_dir, index) = index();
    index.create_bucket("b", &bucket()).unwrap();
    index.create_bucket("c", &bucket()).unwrap();
    index
        .put_object(
            "c",
            "x",
            &object("1", "e"),
            &WriteCondition::default(),
            |_| true,
        )
        .unwrap();
    index
        .put_object(
            "b",
            "x",
            &object("2", "e"),
            &WriteCondition::default(),
            |_| true,
        )
        .unwrap();
    assert_eq!(
        index.delete_bucket("b", |_| true).unwrap(),
        DeleteBucketOutcome::NotEmpty
    );
    let deletion = index
        .delete_objects("b", &[("x", None)], "alice", |_| |_: &str, _| true)
        .unwrap()
        .unwrap();
    assert_eq!(deletion.blobs, ["2"]);
    assert_eq!(deletion.effects, [Some(DeleteEffect::Removed)]);
    // A guard that refuses leaves the bucket (and every key) as it was.
    assert_eq!(
        index.delete_bucket("c", |_| false).unwrap(),
        DeleteBucketOutcome::Refused
    );
    let deletion = index
        .delete_objects("c", &[("x", None)], "alice", |_| |_: &str, _| false)
        .unwrap()
        .unwrap();
    assert!(deletion.blobs.is_empty() && deletion.effects == [None]);
    assert!(index.object("c", "x").unwrap().is_some());
    let upload = records::UploadRecord {
        bucket: "b".into(),
        key: "u".into(),
        initiated_ms: 0,
        owner: "alice".into(),
        acl: crate::acl::Acl::default(),
        headers: records::ObjectHeaders::default(),
    };
    index.create_upload("up1", &upload).unwrap();
    let part = records::PartRecord {
        blob: "p1".into(),
        size: 1,
        etag: "e".into(),
        modified_ms: 0,
    };
    index.put_part("up1", 1, &part).unwrap();
    assert_eq!(
        index.delete_bucket("b", |_| true).unwrap(),
        DeleteBucketOutcome::Deleted {
            unreferenced: vec!["p1".into()]
        }
    );
    assert!(index.upload("up1").unwrap().is_none());
    assert!(index.parts("up1").unwrap().is_empty());
    assert_eq!(
        index.delete_bucket("b", |_| true).unwrap(),
        DeleteBucketOutcome::NotFound
    );
}

#[test]
fn listing_rolls_up_prefixes_and_paginates() {
    let (_dir, index) = index();
    index.create_bucket("b", &bucket()).unwrap();
    index.create_bucket("bb", &bucket()).unwrap();
    for key in ["a", "d/1", "d/2", "d/sub/3", "e/1", "f", "g/1"] {
        index
            .put_object(
                "b",
                key,
                &object(key, "e"),
                &WriteCondition::default(),
                |_| true,
            )
            .unwrap();
    }
    index
        .put_object(
            "bb",
            "a",
            &object("x", "e"),
            &WriteCondition::default(),
            |_| true,
        )
        .unwrap();
    let q = |prefix, delimiter, after, max| ListQuery {
        bucket: "b",
        prefix,
        delimiter,
        after,
        max,
    };

    let all = index.list(&q("", "", None, 1000)).unwrap();
    assert_eq!(
        names(&all),
        ["a", "d/1", "d/2", "d/sub/3", "e/1", "f", "g/1"]
    );
    assert!(!all.truncated);

    let top = index.list(&q("", "/", None, 1000)).unwrap();
    assert_eq!(names(&top), ["a", "d/", "e/", "f", "g/"]);

    let p1 = index.list(&q("", "/", None, 2)).unwrap();
    assert_eq!(names(&p1), ["a", "d/"]);
    assert!(p1.truncated);
    let p2 = index.list(&q("", "/", Some("d/"), 2)).unwrap();
    assert_eq!(names(&p2), ["e/", "f"]);
    let p3 = index.list(&q("", "/", Some("f"), 2)).unwrap();
    assert_eq!(names(&p3), ["g/"]);
    assert!(!p3.truncated);

    let sub = index.list(&q("d/", "/", None, 1000)).unwrap();
    assert_eq!(names(&sub), ["d/1", "d/2", "d/sub/"]);
    let none = index.list(&q("zz", "", None, 1000)).unwrap();
    assert!(none.entries.is_empty());
}
