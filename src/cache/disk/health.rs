//! Disk trouble degrades, never crashes: after an I/O error the tier is pass-through for a
//! while (one warning per episode), then tries again. Errors are counted for metrics.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::DiskError;

/// How long the tier stays pass-through after an error before trying the disk again.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct Health {
    errors: AtomicU64,
    corrupt: AtomicU64,
    file_pages: AtomicU64,
    degraded: AtomicBool,
    retry_at: Mutex<Option<Instant>>,
}

impl Health {
    /// Whether the disk may be used now.
    pub fn usable(&self) -> bool {
        if !self.degraded.load(Ordering::Acquire) {
            return true;
        }
        let mut retry_at = self.retry_at.lock().unwrap_or_else(PoisonError::into_inner);
        if retry_at.is_some_and(|at| Instant::now() >= at) {
            *retry_at = None;
            self.degraded.store(false, Ordering::Release);
            tracing::info!("disk tier: trying the disk again");
            return true;
        }
        false
    }

    /// Records a failure and turns the tier pass-through for `RETRY_AFTER`.
    pub fn failed(&self, what: &'static str, error: &DiskError, root: &Path) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut retry_at = self.retry_at.lock().unwrap_or_else(PoisonError::into_inner);
        *retry_at = Some(Instant::now() + RETRY_AFTER);
        if !self.degraded.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                path = %root.display(),
                %error,
                while_ = what,
                retry_in = ?RETRY_AFTER,
                "disk tier failing: pass-through (memory and origin only) until it recovers"
            );
        }
    }

    /// Records a corrupt entry (removed, served as a miss).
    pub fn corrupt_found(&self) {
        self.corrupt.fetch_add(1, Ordering::Relaxed);
    }

    /// Records `bytes` of a body handed to a socket as file pages.
    pub fn file_pages_sent(&self, bytes: u64) {
        self.file_pages.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn file_pages(&self) -> u64 {
        self.file_pages.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn corrupt(&self) -> u64 {
        self.corrupt.load(Ordering::Relaxed)
    }
}
