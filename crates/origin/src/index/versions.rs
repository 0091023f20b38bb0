//! Object versions in the index.
//!
//! The latest version of a key, when it is an object, stays in `objects` (so GET and the plain
//! listings read one table, as for unversioned buckets). Every other version (noncurrent
//! object versions, and delete markers, current or not) lives in `versions`, keyed by
//! `(bucket, key, rank)` where `rank = u64::MAX - seq`: a range scan of one key yields its
//! versions newest first, as ListObjectVersions answers them. `seq` comes from a counter in
//! the same transaction, so it grows with every version written. `null_versions` points at
//! the archived `null` version of a key, if there is one, so a suspended write finds the
//! version it replaces without a scan. A null version gets its `seq` when it is first made
//! noncurrent: it was the newest then, so order holds.

use std::sync::atomic::{AtomicU64, Ordering};

use redb::{ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};

use super::records::{MarkerRecord, ObjectRecord, VersionEntry};
use super::{decode, encode};
use crate::error::StoreError;
use crate::versioning::{Selector, Versioning, new_id};

/// Every version other than a latest object.
pub(super) const VERSIONS: TableDefinition<(&str, &str, u64), &[u8]> =
    TableDefinition::new("versions");
/// `(bucket, key)` → `seq` of the key's archived null version.
pub(super) const NULLS: TableDefinition<(&str, &str), u64> = TableDefinition::new("null_versions");
/// Counters: the version sequence's high-water mark. Sequence numbers are handed out from
/// memory and reserved [`SEQ_BLOCK`] at a time, so most versioned writes do not touch this
/// table; a number is never reused, since every committed one is below the mark committed
/// with it or before it, and a restarted store starts at the mark.
pub(super) const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
const SEQ: &str = "version_seq";
/// How many sequence numbers one write of the high-water mark reserves.
const SEQ_BLOCK: u64 = 1024;

/// The versions-table rank of sequence number `seq` (newest sorts first).
pub(super) fn rank(seq: u64) -> u64 {
    u64::MAX - seq
}

/// What a delete did to one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteEffect {
    /// The object (unversioned bucket) was removed, or there was none.
    Removed,
    /// A delete marker was written; its version id (`None`: null).
    MarkerCreated(Option<String>),
    /// The version named was removed permanently.
    VersionRemoved {
        /// Its id (`None`: null).
        version_id: Option<String>,
        /// Whether it was a delete marker.
        marker: bool,
    },
    /// The version named does not exist; nothing changed.
    NoSuchVersion,
}

/// A version found by id: the record and whether it is the latest object.
#[derive(Debug, Clone)]
pub struct Found {
    /// The version.
    pub entry: VersionEntry,
    /// It is the key's latest object (in `objects`).
    pub latest: bool,
}

/// What a plain GET of a key finds.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // returned once per GET and matched at once
pub enum Latest {
    /// The latest version is an object.
    Object(ObjectRecord),
    /// The latest version is a delete marker.
    Marker(MarkerRecord),
    /// No version at all.
    Missing,
}

/// The newest archived entry of a key.
pub(super) fn newest<V>(versions: &V, b: &str, k: &str) -> Result<Option<VersionEntry>, StoreError>
where
    V: ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
{
    match versions.range((b, k, 0u64)..=(b, k, u64::MAX))?.next() {
        Some(item) => Ok(Some(decode(item?.1.value())?)),
        None => Ok(None),
    }
}

/// The latest version of a key.
pub(super) fn latest<O, V>(
    objects: &O,
    versions: &V,
    b: &str,
    k: &str,
) -> Result<Latest, StoreError>
where
    O: ReadableTable<(&'static str, &'static str), &'static [u8]>,
    V: ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
{
    if let Some(v) = objects.get((b, k))? {
        return Ok(Latest::Object(decode(v.value())?));
    }
    Ok(match newest(versions, b, k)? {
        Some(VersionEntry::Marker(m)) => Latest::Marker(m),
        // An archived object with no latest object cannot be (it would have been promoted).
        Some(VersionEntry::Object(_)) | None => Latest::Missing,
    })
}

/// The version `sel` of a key.
pub(super) fn find<O, V, N>(
    objects: &O,
    versions: &V,
    nulls: &N,
    b: &str,
    k: &str,
    sel: &Selector,
) -> Result<Option<Found>, StoreError>
where
    O: ReadableTable<(&'static str, &'static str), &'static [u8]>,
    V: ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
    N: ReadableTable<(&'static str, &'static str), u64>,
{
    if let Some(v) = objects.get((b, k))? {
        let rec: ObjectRecord = decode(v.value())?;
        if sel.matches(rec.version_id.as_deref()) {
            return Ok(Some(Found {
                entry: VersionEntry::Object(rec),
                latest: true,
            }));
        }
    }
    let seq = match sel {
        Selector::Null => match nulls.get((b, k))? {
            Some(v) => v.value(),
            None => return Ok(None),
        },
        Selector::Id { seq, .. } => *seq,
    };
    let Some(v) = versions.get((b, k, rank(seq)))? else {
        return Ok(None);
    };
    let entry: VersionEntry = decode(v.value())?;
    Ok(sel.matches(entry.version_id()).then_some(Found {
        entry,
        latest: false,
    }))
}

/// A bucket's objects and versions, open in one write transaction.
pub(super) struct Versions<'t> {
    pub objects: Table<'t, (&'static str, &'static str), &'static [u8]>,
    versions: Table<'t, (&'static str, &'static str, u64), &'static [u8]>,
    nulls: Table<'t, (&'static str, &'static str), u64>,
    counters: Table<'t, &'static str, u64>,
    next_seq: &'t AtomicU64,
}

impl<'t> Versions<'t> {
    pub fn open(txn: &'t WriteTransaction, next_seq: &'t AtomicU64) -> Result<Self, StoreError> {
        Ok(Versions {
            objects: txn.open_table(super::OBJECTS)?,
            versions: txn.open_table(VERSIONS)?,
            nulls: txn.open_table(NULLS)?,
            counters: txn.open_table(COUNTERS)?,
            next_seq,
        })
    }

    /// A fresh sequence number. Write transactions run one at a time, so the in-memory
    /// counter and the mark read here cannot race; an aborted transaction only leaves a gap.
    fn next_seq(&mut self) -> Result<u64, StoreError> {
        let exhausted = || StoreError::Corrupt("version sequence exhausted".into());
        let mark = self.counters.get(SEQ)?.map_or(0, |v| v.value());
        let mut seq = self.next_seq.load(Ordering::Acquire);
        if seq < mark.saturating_sub(SEQ_BLOCK) || seq == 0 {
            // First use since the store opened: start above everything ever reserved.
            seq = mark;
        }
        let seq = seq.checked_add(1).ok_or_else(exhausted)?;
        if seq >= mark {
            let new_mark = seq.checked_add(SEQ_BLOCK).ok_or_else(exhausted)?;
            self.counters.insert(SEQ, new_mark)?;
        }
        self.next_seq.store(seq, Ordering::Release);
        Ok(seq)
    }

    /// The key's latest object.
    pub fn head(&self, b: &str, k: &str) -> Result<Option<ObjectRecord>, StoreError> {
        self.objects
            .get((b, k))?
            .map(|v| decode(v.value()))
            .transpose()
    }

    /// The version `sel` of a key.
    pub fn find(&self, b: &str, k: &str, sel: &Selector) -> Result<Option<Found>, StoreError> {
        find(&self.objects, &self.versions, &self.nulls, b, k, sel)
    }

    /// Stores a version entry in the archive.
    fn put_entry(&mut self, b: &str, k: &str, entry: &VersionEntry) -> Result<(), StoreError> {
        if entry.version_id().is_none() {
            self.nulls.insert((b, k), entry.seq())?;
        }
        self.versions
            .insert((b, k, rank(entry.seq())), encode(entry).as_slice())?;
        Ok(())
    }

    /// Makes the latest object noncurrent: it moves into the archive.
    fn archive(&mut self, b: &str, k: &str, mut rec: ObjectRecord) -> Result<(), StoreError> {
        if rec.seq == 0 {
            rec.seq = self.next_seq()?;
        }
        self.put_entry(b, k, &VersionEntry::Object(rec))
    }

    /// Removes the archived null version; returns its body file.
    fn drop_archived_null(&mut self, b: &str, k: &str) -> Result<Option<String>, StoreError> {
        let Some(seq) = self.nulls.remove((b, k))?.map(|v| v.value()) else {
            return Ok(None);
        };
        let removed = self
            .versions
            .remove((b, k, rank(seq)))?
            .map(|v| decode::<VersionEntry>(v.value()))
            .transpose()?;
        Ok(match removed {
            Some(VersionEntry::Object(o)) => Some(o.blob),
            _ => None,
        })
    }

    /// With no latest object left, the newest archived object version (unless a delete
    /// marker is newer) becomes the latest.
    fn promote(&mut self, b: &str, k: &str) -> Result<(), StoreError> {
        if self.objects.get((b, k))?.is_some() {
            return Ok(());
        }
        let Some(VersionEntry::Object(rec)) = newest(&self.versions, b, k)? else {
            return Ok(());
        };
        self.versions.remove((b, k, rank(rec.seq)))?;
        if rec.version_id.is_none() {
            self.nulls.remove((b, k))?;
        }
        self.objects.insert((b, k), encode(&rec).as_slice())?;
        Ok(())
    }

    /// Stores `record` as the key's new latest version in a versioned bucket; `current` is the
    /// latest object it supersedes. Returns the new version id and the body file no version
    /// references any more.
    pub fn place(
        &mut self,
        b: &str,
        k: &str,
        mut record: ObjectRecord,
        current: Option<ObjectRecord>,
        versioning: Versioning,
    ) -> Result<(Option<String>, Option<String>), StoreError> {
        let mut unreferenced = None;
        match versioning {
            Versioning::Unversioned => {
                unreferenced = current.map(|c| c.blob);
                record.version_id = None;
                record.seq = 0;
            }
            Versioning::Enabled => {
                if let Some(c) = current {
                    self.archive(b, k, c)?;
                }
                let seq = self.next_seq()?;
                record.seq = seq;
                record.version_id = Some(new_id(seq));
            }
            Versioning::Suspended => {
                match current {
                    Some(c) if c.version_id.is_none() => unreferenced = Some(c.blob),
                    Some(c) => self.archive(b, k, c)?,
                    None => {}
                }
                if let Some(blob) = self.drop_archived_null(b, k)? {
                    unreferenced = Some(blob);
                }
                record.version_id = None;
                record.seq = 0;
            }
        }
        self.objects.insert((b, k), encode(&record).as_slice())?;
        Ok((
            record.version_id,
            unreferenced.filter(|blob| *blob != record.blob),
        ))
    }

    /// A DELETE without a version id: removes the object (unversioned) or writes a delete
    /// marker owned by `owner`. Body files no longer referenced are added to `blobs`.
    pub fn delete_latest(
        &mut self,
        b: &str,
        k: &str,
        versioning: Versioning,
        owner: &str,
        now_ms: i64,
        blobs: &mut Vec<String>,
    ) -> Result<DeleteEffect, StoreError> {
        let current = self
            .objects
            .remove((b, k))?
            .map(|v| decode::<ObjectRecord>(v.value()))
            .transpose()?;
        let null_marker = match versioning {
            Versioning::Unversioned => {
                blobs.extend(current.map(|c| c.blob));
                return Ok(DeleteEffect::Removed);
            }
            Versioning::Enabled => {
                if let Some(c) = current {
                    self.archive(b, k, c)?;
                }
                false
            }
            Versioning::Suspended => {
                match current {
                    Some(c) if c.version_id.is_none() => blobs.push(c.blob),
                    Some(c) => self.archive(b, k, c)?,
                    None => {}
                }
                blobs.extend(self.drop_archived_null(b, k)?);
                true
            }
        };
        let seq = self.next_seq()?;
        let version_id = (!null_marker).then(|| new_id(seq));
        let marker = MarkerRecord {
            version_id: version_id.clone(),
            seq,
            owner: owner.to_owned(),
            modified_ms: now_ms,
        };
        self.put_entry(b, k, &VersionEntry::Marker(marker))?;
        Ok(DeleteEffect::MarkerCreated(version_id))
    }

    /// Removes version `sel` of a key for good; the next newest object version becomes the
    /// latest when the latest goes.
    pub fn delete_version(
        &mut self,
        b: &str,
        k: &str,
        sel: &Selector,
        blobs: &mut Vec<String>,
    ) -> Result<DeleteEffect, StoreError> {
        let Some(found) = self.find(b, k, sel)? else {
            return Ok(DeleteEffect::NoSuchVersion);
        };
        if found.latest {
            self.objects.remove((b, k))?;
        } else {
            self.versions.remove((b, k, rank(found.entry.seq())))?;
            if found.entry.version_id().is_none() {
                self.nulls.remove((b, k))?;
            }
        }
        self.promote(b, k)?;
        let version_id = found.entry.version_id().map(str::to_owned);
        Ok(match found.entry {
            VersionEntry::Object(o) => {
                blobs.push(o.blob);
                DeleteEffect::VersionRemoved {
                    version_id,
                    marker: false,
                }
            }
            VersionEntry::Marker(_) => DeleteEffect::VersionRemoved {
                version_id,
                marker: true,
            },
        })
    }

    /// Rewrites a version in place (its ACL).
    pub fn update(&mut self, b: &str, k: &str, found: &Found) -> Result<(), StoreError> {
        match (&found.entry, found.latest) {
            (VersionEntry::Object(o), true) => {
                self.objects.insert((b, k), encode(o).as_slice())?;
            }
            (entry, false) => {
                self.versions
                    .insert((b, k, rank(entry.seq())), encode(entry).as_slice())?;
            }
            (VersionEntry::Marker(_), true) => {
                return Err(StoreError::Corrupt(
                    "a delete marker cannot be a latest object".into(),
                ));
            }
        }
        Ok(())
    }

    /// Whether the bucket holds any archived version.
    pub fn any_in_bucket(&self, b: &str) -> Result<bool, StoreError> {
        match self.versions.range((b, "", 0u64)..)?.next() {
            Some(item) => Ok(item?.0.value().0 == b),
            None => Ok(false),
        }
    }
}

impl super::Index {
    /// The latest version of a key (an object, a delete marker or nothing).
    pub fn latest(&self, bucket: &str, key: &str) -> Result<Latest, StoreError> {
        let txn = self.db.begin_read()?;
        let objects = txn.open_table(super::OBJECTS)?;
        // The common case, a latest object, reads one table.
        if let Some(v) = objects.get((bucket, key))? {
            return Ok(Latest::Object(decode(v.value())?));
        }
        let versions = txn.open_table(VERSIONS)?;
        latest(&objects, &versions, bucket, key)
    }

    /// Version `sel` of a key.
    pub fn version(
        &self,
        bucket: &str,
        key: &str,
        sel: &Selector,
    ) -> Result<Option<Found>, StoreError> {
        let txn = self.db.begin_read()?;
        let objects = txn.open_table(super::OBJECTS)?;
        let versions = txn.open_table(VERSIONS)?;
        let nulls = txn.open_table(NULLS)?;
        find(&objects, &versions, &nulls, bucket, key, sel)
    }

    /// Changes version `sel` of a key in place (its ACL) if `allowed` accepts the bucket's and
    /// the version's records as they are inside this write transaction.
    pub fn update_version(
        &self,
        bucket: &str,
        key: &str,
        sel: &Selector,
        allowed: impl FnOnce(&super::records::BucketRecord, &ObjectRecord) -> bool,
        change: impl FnOnce(&mut ObjectRecord),
    ) -> Result<super::Applied, StoreError> {
        use super::Applied;
        let txn = self.db.begin_write()?;
        let applied = 'tx: {
            let Some(target) = txn
                .open_table(super::BUCKETS)?
                .get(bucket)?
                .map(|v| decode::<super::records::BucketRecord>(v.value()))
                .transpose()?
            else {
                break 'tx Applied::NoSuchBucket;
            };
            let mut versions = Versions::open(&txn, &self.next_seq)?;
            let Some(mut found) = versions.find(bucket, key, sel)? else {
                break 'tx Applied::NoSuchVersion;
            };
            let VersionEntry::Object(rec) = &mut found.entry else {
                break 'tx Applied::DeleteMarker;
            };
            if !allowed(&target, rec) {
                break 'tx Applied::Refused;
            }
            change(rec);
            versions.update(bucket, key, &found)?;
            Applied::Done
        };
        super::finish(txn, applied == Applied::Done)?;
        Ok(applied)
    }

    /// A page of ListObjectVersions (see [`VersionListQuery`](super::VersionListQuery)).
    pub fn list_versions(
        &self,
        query: &super::VersionListQuery<'_>,
    ) -> Result<super::VersionPage, StoreError> {
        let txn = self.db.begin_read()?;
        let objects = txn.open_table(super::OBJECTS)?;
        let versions = txn.open_table(VERSIONS)?;
        let nulls = txn.open_table(NULLS)?;
        super::version_list::list(&objects, &versions, &nulls, query)
    }
}

#[cfg(test)]
mod tests;
