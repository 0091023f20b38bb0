//! Multipart uploads completed lately, so that completing the same upload again answers as
//! the first completion did while the object it made is still in place (S3 does so) instead
//! of `NoSuchUpload`. Kept in memory, the last [`KEPT`] completions.

use std::collections::VecDeque;
use std::sync::Mutex;

/// How many completions are remembered.
pub const KEPT: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    upload_id: String,
    bucket: String,
    key: String,
    etag: String,
}

/// The recent completions.
#[derive(Debug, Default)]
pub struct Completed {
    recent: Mutex<VecDeque<Entry>>,
}

impl Completed {
    /// Notes that `upload_id` became `bucket`/`key` with ETag `etag`.
    pub fn remember(&self, upload_id: &str, bucket: &str, key: &str, etag: &str) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() >= KEPT {
            recent.pop_front();
        }
        recent.push_back(Entry {
            upload_id: upload_id.to_owned(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            etag: etag.to_owned(),
        });
    }

    /// The ETag `upload_id` completed with, if it completed lately into `bucket`/`key`.
    #[must_use]
    pub fn etag_of(&self, upload_id: &str, bucket: &str, key: &str) -> Option<String> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .iter()
            .rev()
            .find(|e| e.upload_id == upload_id && e.bucket == bucket && e.key == key)
            .map(|e| e.etag.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_last_completions_only() {
        let c = Completed::default();
        c.remember("u0", "b", "k", "e0");
        for i in 1..=KEPT {
            c.remember(&format!("u{i}"), "b", "k", "e");
        }
        assert_eq!(c.etag_of("u0", "b", "k"), None);
        assert_eq!(c.etag_of("u1", "b", "k").as_deref(), Some("e"));
        assert_eq!(c.etag_of("u1", "b", "other"), None);
    }
}
