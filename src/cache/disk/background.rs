//! The disk tier's background threads: the janitor (deletes dropped entries' files, runs the
//! index's housekeeping) and the start-up scan that rebuilds the index from the entry files.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::index::{Commit, Committed, entry_path};
use super::{DiskError, Inner, JANITOR_TICK, MAINTENANCE, entry_file, index_entry};
use crate::cache::entry::Validators;

/// Deletes dropped entries' files and runs the index's housekeeping; ends with the tier.
pub(super) fn janitor(weak: &Weak<Inner>) {
    let mut last = Instant::now();
    loop {
        std::thread::sleep(JANITOR_TICK);
        let Some(inner) = weak.upgrade() else { return };
        if last.elapsed() >= MAINTENANCE {
            inner.index.maintain(inner.clock.now());
            last = Instant::now();
        }
        inner.index.delete_doomed();
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
    }
}

/// Rebuilds the index from the entry files' metas (bodies are verified when read).
pub(super) fn scan(weak: &Weak<Inner>) {
    let started = Instant::now();
    let (mut indexed, mut removed) = (0u64, 0u64);
    let Some(entries) = weak.upgrade().map(|inner| inner.entries.clone()) else {
        return;
    };
    let dirs = std::fs::read_dir(&entries).into_iter().flatten().flatten();
    'outer: for dir in dirs {
        for file in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let Some(inner) = weak.upgrade() else { return };
            if inner.closed.load(Ordering::Acquire) {
                break 'outer;
            }
            // An entry the scan cannot use is dropped; nothing in one file may stop the
            // index from being rebuilt (a panic here would leave the tier scanning forever).
            let path = file.path();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                scan_one(&inner, path.clone())
            }))
            .unwrap_or_else(|_| Err(DiskError::Corrupt("entry could not be read".into())));
            match outcome {
                Ok(true) => indexed += 1,
                Ok(false) => {}
                Err(e) => {
                    removed += 1;
                    let _ = std::fs::remove_file(file.path());
                    tracing::debug!(path = %file.path().display(), error = %e, "disk entry dropped at start");
                }
            }
        }
    }
    if let Some(inner) = weak.upgrade() {
        inner.scanning.store(false, Ordering::Release);
        let (bytes, _) = inner.index.usage();
        tracing::info!(indexed, removed, bytes, elapsed = ?started.elapsed(), "disk tier index rebuilt");
    }
}

/// Indexes one file found at start; an error means the file is to be removed.
fn scan_one(inner: &Inner, path: PathBuf) -> Result<bool, DiskError> {
    // Every purge since the tier opened applies to what the scan finds (a file scanned
    // after a purge of its key, or of one of its tags, is removed).
    let since = 0;
    let file = File::open(&path)?;
    let meta = entry_file::read_meta(&file)?;
    if entry_path(&inner.entries, &meta.key, &meta.vary) != path {
        return Err(DiskError::Corrupt("file is not where its key says".into()));
    }
    let has_validators = Validators::from_headers(&meta.headers).any();
    let keep_until = crate::cache::freshness::later(
        meta.freshness.response_time,
        meta.freshness.keep_for(has_validators),
    );
    if inner.clock.now() >= keep_until {
        return Err(DiskError::Corrupt("expired past its keep window".into()));
    }
    let key = meta.key.clone();
    let entry = index_entry(path, &file, &meta)?;
    match inner.index.commit(&key, entry, since, Commit::Existing)? {
        Committed::Indexed => Ok(true),
        Committed::Present => Ok(false),
        Committed::Purged => Err(DiskError::Corrupt("purged".into())),
    }
}
