//! Delivering buffered access log records: one object per destination and delivery, named
//! `<prefix>YYYY-MM-DD-HH-MM-SS-<unique>` as S3 names them, owned by the target bucket's owner.
//! A target bucket that is gone, or no longer the source bucket owner's, gets nothing.

use std::sync::Arc;

use tokio::sync::watch;

use super::Destination;
use crate::acl::Acl;
use crate::index::records::{ObjectHeaders, ObjectRecord};
use crate::index::{PutOutcome, WriteCondition};
use crate::store::{State, now_ms};

/// Delivers buffered records every flush interval (or sooner when the buffer fills) until
/// `stop` turns true; then delivers what is left.
pub async fn run(state: Arc<State>, mut stop: watch::Receiver<bool>) {
    let every = state.logs.flush_every;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = state.logs.wake.notified() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        flush(&state).await;
    }
    flush(&state).await;
}

/// Writes every buffered record now.
pub async fn flush(state: &Arc<State>) {
    let (lines, dropped) = state.logs.take();
    if dropped > 0 {
        tracing::warn!(dropped, "access log buffer was full; records were dropped");
    }
    for (to, text) in lines {
        if let Err(e) = deliver(state, &to, text).await {
            tracing::warn!(bucket = %to.bucket, error = %e, "access log delivery failed");
        }
    }
}

/// The key of a log object delivered now.
fn object_key(prefix: &str) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(now_ms().div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let unique = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .to_ascii_uppercase();
    format!(
        "{prefix}{:04}-{:02}-{:02}-{:02}-{:02}-{:02}-{}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        &unique[..16]
    )
}

async fn deliver(state: &Arc<State>, to: &Destination, text: String) -> Result<(), String> {
    let Some(target) = state.index.bucket(&to.bucket).map_err(|e| e.to_string())? else {
        return Err("the target bucket does not exist".into());
    };
    if target.owner != to.owner {
        return Err("the target bucket is no longer the source bucket owner's".into());
    }
    let owner = target.owner;
    let body =
        futures::stream::once(async move { Ok::<_, std::io::Error>(bytes::Bytes::from(text)) });
    let written = state
        .blobs
        .write(Box::pin(body))
        .await
        .map_err(|e| e.to_string())?;
    let record = ObjectRecord {
        blob: written.id.clone(),
        size: written.size,
        etag: hex::encode(written.md5),
        modified_ms: now_ms(),
        owner: owner.clone(),
        acl: Acl::default(),
        headers: ObjectHeaders {
            content_type: Some("text/plain".into()),
            ..ObjectHeaders::default()
        },
        parts: None,
        version_id: None,
        seq: 0,
    };
    let st = state.clone();
    let (bucket, key) = (to.bucket.clone(), object_key(&to.prefix));
    let outcome = tokio::task::spawn_blocking(move || {
        st.index
            .put_object(&bucket, &key, &record, &WriteCondition::default(), |b| {
                b.owner == owner
            })
    })
    .await
    .map_err(|e| e.to_string())?;
    match outcome {
        Ok(PutOutcome::Stored { replaced, .. }) => {
            state.blobs.remove(replaced.into_iter().collect()).await;
            Ok(())
        }
        other => {
            state.blobs.remove(vec![written.id]).await;
            Err(match other {
                Ok(_) => "the target bucket is gone or changed owner".into(),
                Err(e) => e.to_string(),
            })
        }
    }
}
