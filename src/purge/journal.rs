//! The purge journal: every purge this PoP applied, with its time, kept for a day and on
//! disk, so a peer that was down can ask what it missed and apply it to what it stored
//! before (`stored-before` semantics make replays harmless).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::PurgeRequest;

/// How long purges are kept for peers to catch up.
pub const KEEP: Duration = Duration::from_secs(86_400);

/// One applied purge.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JournalEntry {
    /// Seconds since the Unix epoch when it was applied.
    pub at: u64,
    pub space: String,
    /// What it named (files, tags) and how (`soft`).
    #[serde(flatten)]
    pub request: PurgeRequest,
}

/// The journal, in memory and mirrored to `state_dir/journal.json`.
pub struct Journal {
    entries: Mutex<VecDeque<JournalEntry>>,
    path: Option<PathBuf>,
}

fn secs(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl Journal {
    /// Opens the journal under `state_dir` (or a memory-only one if it cannot be used).
    pub fn open(state_dir: Option<PathBuf>) -> Journal {
        let path = state_dir.and_then(|dir| match std::fs::create_dir_all(&dir) {
            Ok(()) => Some(dir.join("journal.json")),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "purge state dir unusable; journal kept in memory");
                None
            }
        });
        let entries = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice::<VecDeque<JournalEntry>>(&bytes).ok())
            .unwrap_or_default();
        Journal {
            entries: Mutex::new(entries),
            path,
        }
    }

    /// Records a purge applied at `at`.
    pub fn record(&self, space: &str, request: &PurgeRequest, at: SystemTime) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = secs(at);
        entries.push_back(JournalEntry {
            at: now,
            space: space.to_owned(),
            request: request.clone(),
        });
        while entries.front().is_some_and(|e| e.at + KEEP.as_secs() < now)
            || entries.len() > 100_000
        {
            entries.pop_front();
        }
        self.persist(&entries);
    }

    /// Purges applied at or after `since` (seconds since the epoch).
    pub fn since(&self, since: u64) -> Vec<JournalEntry> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.iter().filter(|e| e.at >= since).cloned().collect()
    }

    fn persist(&self, entries: &VecDeque<JournalEntry>) {
        let Some(path) = &self.path else { return };
        super::save_json(path, entries, "the purge journal");
    }
}
