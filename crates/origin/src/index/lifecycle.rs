//! What the lifecycle worker needs from the index: a bounded scan of a bucket's versions, a
//! batch of expirations applied in one short write transaction that checks each one again
//! against the records as they are then, and the worker's progress, saved in that same
//! transaction so that a restart resumes the pass where the last commit left it.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::records::{BucketRecord, ObjectRecord, UploadRecord, VersionEntry};
use super::versions::{VERSIONS, Versions};
use super::{decode, encode};
use crate::error::StoreError;
use crate::versioning::Selector;

/// The worker's progress.
pub(super) const LIFECYCLE: TableDefinition<&str, &[u8]> = TableDefinition::new("lifecycle");
const PROGRESS: &str = "progress";

/// Where the lifecycle worker is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The pass under way, if one is.
    pub pass: Option<PassCursor>,
    /// When the last pass finished, Unix milliseconds.
    pub last_finished_ms: i64,
}

/// How far a pass got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassCursor {
    /// When the pass started (its notion of "now"), Unix milliseconds.
    pub started_ms: i64,
    /// The bucket being worked on.
    pub bucket: String,
    /// The last key done in that bucket (`None`: none yet).
    pub after_key: Option<String>,
    /// The bucket's keys are done; its multipart uploads are next.
    pub uploads: bool,
}

/// One key's versions, newest first.
#[derive(Debug, Clone)]
pub struct KeyVersions {
    /// The key.
    pub key: String,
    /// Its latest object, if the latest version is one.
    pub head: Option<ObjectRecord>,
    /// Every other version (delete markers included), newest first.
    pub archived: Vec<VersionEntry>,
}

/// One expiration to apply, with what identifies the version it was decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expire {
    /// Delete the latest object as a DELETE without version id would (a delete marker in a
    /// versioned bucket), if it is still the one whose body is `blob`.
    Latest {
        /// The key.
        key: String,
        /// Its body file when decided.
        blob: String,
    },
    /// Remove a version for good, if it is still the one decided on.
    Version {
        /// The key.
        key: String,
        /// Which version.
        sel: Selector,
        /// Its sort position when decided.
        seq: u64,
        /// Its body file (`None`: a delete marker).
        blob: Option<String>,
    },
}

impl super::Index {
    /// The lifecycle worker's progress.
    pub fn lifecycle_progress(&self) -> Result<Progress, StoreError> {
        let txn = self.db.begin_read()?;
        txn.open_table(LIFECYCLE)?
            .get(PROGRESS)?
            .map(|v| decode(v.value()))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// Saves the worker's progress on its own (between buckets, at the end of a pass).
    pub fn save_lifecycle_progress(&self, progress: &Progress) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(LIFECYCLE)?
            .insert(PROGRESS, encode(progress).as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Keys of `bucket` after `after`, with their versions, until about `max_entries` versions
    /// were read (a key's versions are never split). The flag says whether keys remain.
    pub fn scan_versions(
        &self,
        bucket: &str,
        after: Option<&str>,
        max_entries: usize,
    ) -> Result<(Vec<KeyVersions>, bool), StoreError> {
        let txn = self.db.begin_read()?;
        let objects = txn.open_table(super::OBJECTS)?;
        let versions = txn.open_table(VERSIONS)?;
        let mut out = Vec::new();
        let mut entries = 0usize;
        let mut cursor = after.map_or_else(String::new, |a| format!("{a}\0"));
        while let Some(key) = super::version_list::next_key(&objects, &versions, bucket, &cursor)? {
            if entries >= max_entries {
                return Ok((out, true));
            }
            let head: Option<ObjectRecord> = objects
                .get((bucket, key.as_str()))?
                .map(|v| decode(v.value()))
                .transpose()?;
            let mut archived = Vec::new();
            for item in
                versions.range((bucket, key.as_str(), 0u64)..=(bucket, key.as_str(), u64::MAX))?
            {
                archived.push(decode::<VersionEntry>(item?.1.value())?);
            }
            entries = entries
                .saturating_add(archived.len())
                .saturating_add(usize::from(head.is_some()));
            cursor = format!("{key}\0");
            out.push(KeyVersions {
                key,
                head,
                archived,
            });
        }
        Ok((out, false))
    }

    /// Applies a batch of expirations and multipart aborts to `bucket` and saves `progress`,
    /// in one write transaction. Each expiration is checked again against the version as it
    /// now is and skipped when that changed. Returns the body files to delete.
    pub fn apply_lifecycle(
        &self,
        bucket: &str,
        expire: &[Expire],
        abort_uploads: &[String],
        progress: &Progress,
    ) -> Result<Vec<String>, StoreError> {
        let now = crate::store::now_ms();
        let txn = self.db.begin_write()?;
        let mut blobs = Vec::new();
        let target = txn
            .open_table(super::BUCKETS)?
            .get(bucket)?
            .map(|v| decode::<BucketRecord>(v.value()))
            .transpose()?;
        if let Some(target) = target {
            let mut versions = Versions::open(&txn, &self.next_seq)?;
            for action in expire {
                match action {
                    Expire::Latest { key, blob } => {
                        if versions.head(bucket, key)?.is_some_and(|h| h.blob == *blob) {
                            versions.delete_latest(
                                bucket,
                                key,
                                target.versioning,
                                &target.owner,
                                now,
                                &mut blobs,
                            )?;
                        }
                    }
                    Expire::Version {
                        key,
                        sel,
                        seq,
                        blob,
                    } => {
                        let same = versions.find(bucket, key, sel)?.is_some_and(|f| {
                            f.entry.seq() == *seq
                                && match &f.entry {
                                    VersionEntry::Object(o) => blob.as_ref() == Some(&o.blob),
                                    VersionEntry::Marker(_) => blob.is_none(),
                                }
                        });
                        if same {
                            versions.delete_version(bucket, key, sel, &mut blobs)?;
                        }
                    }
                }
            }
        }
        {
            let mut uploads = txn.open_table(super::UPLOADS)?;
            for id in abort_uploads {
                let removed = uploads
                    .remove(id.as_str())?
                    .map(|v| decode::<UploadRecord>(v.value()))
                    .transpose()?;
                if removed.is_some() {
                    blobs.extend(super::remove_parts(&txn, id)?);
                }
            }
        }
        txn.open_table(LIFECYCLE)?
            .insert(PROGRESS, encode(progress).as_slice())?;
        txn.commit()?;
        Ok(blobs)
    }
}
