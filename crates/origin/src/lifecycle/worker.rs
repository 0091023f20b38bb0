//! The lifecycle worker: every `interval` it walks the buckets that have rules, a bounded
//! batch of keys at a time (one short read transaction to scan, one short write transaction
//! to apply, which also saves how far the pass got), then aborts stale multipart uploads.
//! A store restarted in the middle of a pass resumes it from the last saved batch; applying
//! a batch twice changes nothing, since every expiration is checked again when applied.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tracing::Instrument;

use super::decide::decide;
use super::rules::{Rule, after_days};
use crate::config::LifecycleConfig;
use crate::error::StoreError;
use crate::index::{PassCursor, Progress};
use crate::store::{State, now_ms};

/// Versions read per scan (and so, at most, expirations per write transaction).
const BATCH_VERSIONS: usize = 500;
/// Multipart uploads aborted per write transaction.
const BATCH_UPLOADS: usize = 100;
/// How much one pass does before it saves its place and goes on (or, in tests, stops).
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Versions read per scan.
    batch: usize,
    /// Stop (as a crash would) after this many batches; `None` in production.
    stop_after: Option<usize>,
}

const LIMITS: Limits = Limits {
    batch: BATCH_VERSIONS,
    stop_after: None,
};

/// Pause after a failed pass before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(30);

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// Starts the worker; it stops once the store is dropped.
pub(crate) fn spawn(state: Weak<State>, config: LifecycleConfig) {
    let span = tracing::info_span!("lifecycle");
    tokio::spawn(run(state, config).instrument(span));
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::io("lifecycle task", std::io::Error::other(e)))?
}

async fn run(state: Weak<State>, config: LifecycleConfig) {
    loop {
        let Some(st) = state.upgrade() else { return };
        let progress = {
            let st = st.clone();
            blocking(move || st.index.lifecycle_progress()).await
        };
        let wait = match &progress {
            Ok(p) if p.pass.is_some() => 0,
            Ok(p) => p
                .last_finished_ms
                .saturating_add(millis(config.interval))
                .saturating_sub(now_ms()),
            Err(_) => millis(RETRY_AFTER),
        };
        if wait > 0 {
            drop(st);
            let wait = u64::try_from(wait).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(wait).min(config.interval)).await;
            continue;
        }
        let day_ms = millis(config.day);
        match pass(&st, progress.unwrap_or_default(), day_ms, LIMITS).await {
            Ok(()) => tracing::debug!("lifecycle pass finished"),
            Err(e) => {
                tracing::warn!(error = %e, "lifecycle pass failed; retrying later");
                drop(st);
                tokio::time::sleep(RETRY_AFTER.min(config.interval)).await;
            }
        }
    }
}

/// One pass over every bucket, resuming `progress.pass` when one was under way.
async fn pass(
    st: &Arc<State>,
    progress: Progress,
    day_ms: i64,
    limits: Limits,
) -> Result<(), StoreError> {
    let mut batches = 0usize;
    let last_finished_ms = progress.last_finished_ms;
    let mut cursor = progress.pass.unwrap_or_else(|| PassCursor {
        started_ms: now_ms(),
        bucket: String::new(),
        after_key: None,
        uploads: false,
    });
    loop {
        let buckets = {
            let st = st.clone();
            blocking(move || st.index.buckets()).await?
        };
        let Some((name, record)) = buckets.into_iter().find(|(n, _)| *n >= cursor.bucket) else {
            break;
        };
        if name != cursor.bucket {
            cursor.bucket = name;
            cursor.after_key = None;
            cursor.uploads = false;
        }
        let rules: Vec<Rule> = record
            .lifecycle
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.enabled)
            .collect();
        if !rules.is_empty() {
            let done = bucket_pass(
                st,
                &rules,
                &mut cursor,
                last_finished_ms,
                day_ms,
                limits,
                &mut batches,
            )
            .await?;
            if !done {
                return Ok(());
            }
        }
        // Bucket names have no NUL: this sorts right after the bucket just done.
        cursor.bucket.push('\0');
        cursor.after_key = None;
        cursor.uploads = false;
    }
    let done = Progress {
        pass: None,
        last_finished_ms: now_ms(),
    };
    let st = st.clone();
    blocking(move || st.index.save_lifecycle_progress(&done)).await
}

/// Applies `rules` to the cursor's bucket from where the cursor is; `false` when it stopped
/// early (`limits.stop_after`).
async fn bucket_pass(
    st: &Arc<State>,
    rules: &[Rule],
    cursor: &mut PassCursor,
    last_finished_ms: i64,
    day_ms: i64,
    limits: Limits,
    batches: &mut usize,
) -> Result<bool, StoreError> {
    let bucket = cursor.bucket.clone();
    while !cursor.uploads {
        let (keys, more) = {
            let (st, b, after) = (st.clone(), bucket.clone(), cursor.after_key.clone());
            blocking(move || st.index.scan_versions(&b, after.as_deref(), limits.batch)).await?
        };
        let now = now_ms();
        let mut expire = Vec::new();
        for kv in &keys {
            decide(rules, kv, now, day_ms, &mut expire);
        }
        if let Some(last) = keys.last() {
            cursor.after_key = Some(last.key.clone());
        }
        cursor.uploads = !more;
        let progress = Progress {
            pass: Some(cursor.clone()),
            last_finished_ms,
        };
        let removed = {
            let (st, b) = (st.clone(), bucket.clone());
            blocking(move || st.index.apply_lifecycle(&b, &expire, &[], &progress)).await?
        };
        st.blobs.remove(removed).await;
        *batches = batches.saturating_add(1);
        if limits.stop_after.is_some_and(|n| *batches >= n) {
            return Ok(false);
        }
        tokio::task::yield_now().await;
    }
    let uploads = {
        let (st, b) = (st.clone(), bucket.clone());
        blocking(move || st.index.uploads(&b)).await?
    };
    let now = now_ms();
    let stale: Vec<String> = uploads
        .into_iter()
        .filter(|(_, u)| {
            rules.iter().any(|r| {
                r.abort_after_days.is_some_and(|days| {
                    r.covers_key(&u.key) && now >= after_days(u.initiated_ms, days, day_ms)
                })
            })
        })
        .map(|(id, _)| id)
        .collect();
    for chunk in stale.chunks(BATCH_UPLOADS) {
        let progress = Progress {
            pass: Some(cursor.clone()),
            last_finished_ms,
        };
        let (st2, b, ids) = (st.clone(), bucket.clone(), chunk.to_vec());
        let removed = blocking(move || st2.index.apply_lifecycle(&b, &[], &ids, &progress)).await?;
        st.blobs.remove(removed).await;
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
