//! Unit tests of `worker`.

use std::sync::Arc;

use super::{Limits, pass};
use crate::index::records::{BucketRecord, ObjectRecord};
use crate::index::{Index, ListQuery, Progress, WriteCondition};
use crate::lifecycle::Rule;
use crate::storage::BlobStore;
use crate::store::State;
use crate::users::Users;
use crate::versioning::Versioning;

const DAY_MS: i64 = 1000;

fn state(dir: &std::path::Path) -> Arc<State> {
    Arc::new(State {
        index: Index::open(&dir.join("index.redb")).unwrap(),
        blobs: BlobStore::open(dir).unwrap(),
        users: Arc::new(Users::new(&[])),
        region: "us-east-1".into(),
        domain: None,
        logs: crate::access_log::AccessLogs::new(Vec::new(), crate::config::DEFAULT_LOG_FLUSH),
        completed: crate::completed::Completed::default(),
    })
}

fn put_old(state: &State, key: &str) {
    let record = ObjectRecord {
        blob: format!("blob-{key}"),
        size: 1,
        etag: "e".into(),
        modified_ms: 0,
        owner: "alice".into(),
        acl: Default::default(),
        headers: Default::default(),
        parts: None,
        version_id: None,
        seq: 0,
    };
    state
        .index
        .put_object("b", key, &record, &WriteCondition::default(), |_| true)
        .unwrap();
}

fn keys(state: &State) -> Vec<String> {
    let page = state
        .index
        .list(&ListQuery {
            bucket: "b",
            prefix: "",
            delimiter: "",
            after: None,
            max: 1000,
        })
        .unwrap();
    page.entries.iter().map(|e| e.name().to_owned()).collect()
}

#[tokio::test]
async fn a_pass_cut_after_a_batch_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let rule = s3s::dto::LifecycleRule {
        abort_incomplete_multipart_upload: None,
        expiration: Some(s3s::dto::LifecycleExpiration {
            days: Some(1),
            ..Default::default()
        }),
        filter: Some(Default::default()),
        id: None,
        noncurrent_version_expiration: None,
        noncurrent_version_transitions: None,
        prefix: None,
        status: s3s::dto::ExpirationStatus::from_static(s3s::dto::ExpirationStatus::ENABLED),
        transitions: None,
    };
    st.index
        .create_bucket(
            "b",
            &BucketRecord {
                owner: "alice".into(),
                created_ms: 0,
                acl: Default::default(),
                policy: None,
                cors: None,
                versioning: Versioning::Unversioned,
                lifecycle: Some(vec![Rule::from_dto(&rule).unwrap()]),
            },
        )
        .unwrap();
    let all: Vec<String> = (0..25).map(|i| format!("k{i:02}")).collect();
    for key in &all {
        put_old(&st, key);
    }
    // Two batches of ten, then the "crash".
    let cut = Limits {
        batch: 10,
        stop_after: Some(2),
    };
    pass(&st, Progress::default(), DAY_MS, cut).await.unwrap();
    let progress = st.index.lifecycle_progress().unwrap();
    let cursor = progress
        .pass
        .clone()
        .expect("the pass is recorded as under way");
    assert_eq!(cursor.bucket, "b");
    assert_eq!(cursor.after_key.as_deref(), Some("k19"));
    assert_eq!(keys(&st), all[20..]);
    // Restart on the same directory; an expired key written behind the cursor meanwhile is
    // left for the next pass, which shows the pass resumed rather than started over.
    drop(st);
    let st = state(dir.path());
    put_old(&st, "k05");
    let resumed = st.index.lifecycle_progress().unwrap();
    assert_eq!(resumed, progress);
    let whole = Limits {
        batch: 10,
        stop_after: None,
    };
    pass(&st, resumed, DAY_MS, whole).await.unwrap();
    assert_eq!(keys(&st), ["k05"]);
    let done = st.index.lifecycle_progress().unwrap();
    assert!(done.pass.is_none() && done.last_finished_ms > 0);
    pass(&st, done, DAY_MS, whole).await.unwrap();
    assert!(keys(&st).is_empty());
}
