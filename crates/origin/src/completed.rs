//! Multipart uploads completed lately, so that completing the same upload again answers as
//! the first completion did while the object it made is still in place (S3 does so) instead
//! of `NoSuchUpload`. Kept in memory, the last [`KEPT`] completions, each with the version it
//! made (so a repeat in a versioned bucket names that version and never makes another).

use std::collections::VecDeque;
use std::sync::Mutex;

/// How many completions are remembered.
pub const KEPT: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    upload_id: String,
    bucket: String,
    key: String,
    made: Made,
}

/// What a completion made: its object's ETag and version id (`None`: the null version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    /// The object's ETag, unquoted.
    pub etag: String,
    /// The version id it was answered with.
    pub version_id: Option<String>,
}

/// The recent completions.
#[derive(Debug, Default)]
pub struct Completed {
    recent: Mutex<VecDeque<Entry>>,
}

impl Completed {
    /// Notes that `upload_id` became `bucket`/`key` as `made`.
    pub fn remember(&self, upload_id: &str, bucket: &str, key: &str, made: Made) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() >= KEPT {
            recent.pop_front();
        }
        recent.push_back(Entry {
            upload_id: upload_id.to_owned(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            made,
        });
    }

    /// What `upload_id` made, if it completed lately into `bucket`/`key`.
    #[must_use]
    pub fn made_by(&self, upload_id: &str, bucket: &str, key: &str) -> Option<Made> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .iter()
            .rev()
            .find(|e| e.upload_id == upload_id && e.bucket == bucket && e.key == key)
            .map(|e| e.made.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_last_completions_only() {
        let made = |etag: &str, version: Option<&str>| Made {
            etag: etag.into(),
            version_id: version.map(str::to_owned),
        };
        let c = Completed::default();
        c.remember("u0", "b", "k", made("e0", None));
        for i in 1..=KEPT {
            c.remember(&format!("u{i}"), "b", "k", made("e", Some("v")));
        }
        assert_eq!(c.made_by("u0", "b", "k"), None);
        assert_eq!(c.made_by("u1", "b", "k"), Some(made("e", Some("v"))));
        assert_eq!(c.made_by("u1", "b", "other"), None);
    }
}
