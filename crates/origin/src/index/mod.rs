//! The metadata index: buckets, objects, uploads and parts in one redb database.
//!
//! Objects are keyed by `(bucket, key)`, so a listing is a sorted range scan and never touches
//! the body files. Every mutation is one write transaction; a conditional PUT checks its
//! precondition and commits in the same transaction, so concurrent writers cannot both win.
//! All methods block (redb fsyncs on commit): call them from `spawn_blocking` when they write.

mod lifecycle;
mod list;
pub mod logging;
mod outcome;
pub mod records;
mod version_list;
mod versions;

use std::collections::HashSet;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use self::lifecycle::{Expire, KeyVersions, PassCursor, Progress};
pub use self::list::{ListEntry, ListPage, ListQuery};
pub use self::outcome::{
    Applied, CompleteOutcome, DeleteBucketOutcome, Deletion, EtagMatch, PutOutcome, WriteCondition,
};
use self::records::{BucketRecord, ObjectRecord, PartRecord, UploadRecord, VersionEntry};
pub use self::version_list::{VersionListEntry, VersionListQuery, VersionPage};
use self::versions::Versions;
pub use self::versions::{DeleteEffect, Found, Latest};
use crate::error::StoreError;
use crate::versioning::{Selector, Versioning};

const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets");
const OBJECTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("objects");
const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads");
const PARTS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("parts");

/// The redb database.
#[derive(Debug)]
pub struct Index {
    db: Database,
    /// The next version sequence number (see `versions`: reserved in blocks).
    next_seq: std::sync::atomic::AtomicU64,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records are plain data and always serialize")
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Index {
    /// Opens (creating) the database file and its tables.
    pub fn open(path: &Path) -> Result<Index, StoreError> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        {
            txn.open_table(BUCKETS)?;
            txn.open_table(OBJECTS)?;
            txn.open_table(UPLOADS)?;
            txn.open_table(PARTS)?;
            txn.open_table(versions::VERSIONS)?;
            txn.open_table(versions::NULLS)?;
            txn.open_table(versions::COUNTERS)?;
            txn.open_table(lifecycle::LIFECYCLE)?;
            txn.open_table(logging::LOGGING)?;
        }
        txn.commit()?;
        Ok(Index {
            db,
            next_seq: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Every body file id the index references (objects, versions and parts), for crash
    /// recovery.
    pub fn referenced_blobs(&self) -> Result<HashSet<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let mut set = HashSet::new();
        for item in txn.open_table(OBJECTS)?.iter()? {
            let (_, v) = item?;
            set.insert(decode::<ObjectRecord>(v.value())?.blob);
        }
        for item in txn.open_table(PARTS)?.iter()? {
            let (_, v) = item?;
            set.insert(decode::<PartRecord>(v.value())?.blob);
        }
        for item in txn.open_table(versions::VERSIONS)?.iter()? {
            let (_, v) = item?;
            if let VersionEntry::Object(o) = decode::<VersionEntry>(v.value())? {
                set.insert(o.blob);
            }
        }
        Ok(set)
    }

    // ---- buckets ----

    /// The bucket's record.
    pub fn bucket(&self, name: &str) -> Result<Option<BucketRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BUCKETS)?;
        table.get(name)?.map(|v| decode(v.value())).transpose()
    }

    /// All buckets, sorted by name.
    pub fn buckets(&self) -> Result<Vec<(String, BucketRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BUCKETS)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (k, v) = item?;
            out.push((k.value().to_owned(), decode(v.value())?));
        }
        Ok(out)
    }

    /// Creates the bucket unless it exists; returns the record now in place and whether it
    /// was created.
    pub fn create_bucket(
        &self,
        name: &str,
        record: &BucketRecord,
    ) -> Result<(BucketRecord, bool), StoreError> {
        let txn = self.db.begin_write()?;
        let result = {
            let mut table = txn.open_table(BUCKETS)?;
            let existing = table
                .get(name)?
                .map(|v| decode::<BucketRecord>(v.value()))
                .transpose()?;
            match existing {
                Some(existing) => (existing, false),
                None => {
                    table.insert(name, encode(record).as_slice())?;
                    (record.clone(), true)
                }
            }
        };
        txn.commit()?;
        Ok(result)
    }

    /// Changes a bucket's record in place if `allowed` accepts the record as it is inside
    /// this write transaction.
    pub fn update_bucket(
        &self,
        name: &str,
        allowed: impl FnOnce(&BucketRecord) -> bool,
        change: impl FnOnce(&mut BucketRecord),
    ) -> Result<Applied, StoreError> {
        let txn = self.db.begin_write()?;
        let applied = {
            let mut table = txn.open_table(BUCKETS)?;
            let existing = table
                .get(name)?
                .map(|v| decode::<BucketRecord>(v.value()))
                .transpose()?;
            match existing {
                Some(record) if !allowed(&record) => Applied::Refused,
                Some(mut record) => {
                    change(&mut record);
                    table.insert(name, encode(&record).as_slice())?;
                    Applied::Done
                }
                None => Applied::NoSuchBucket,
            }
        };
        finish(txn, applied == Applied::Done)?;
        Ok(applied)
    }

    /// Deletes an empty bucket if `allowed` accepts its record as it is inside this write
    /// transaction.
    pub fn delete_bucket(
        &self,
        name: &str,
        allowed: impl FnOnce(&BucketRecord) -> bool,
    ) -> Result<DeleteBucketOutcome, StoreError> {
        let txn = self.db.begin_write()?;
        let outcome = 'tx: {
            let mut buckets = txn.open_table(BUCKETS)?;
            let Some(record) = buckets
                .get(name)?
                .map(|v| decode::<BucketRecord>(v.value()))
                .transpose()?
            else {
                break 'tx DeleteBucketOutcome::NotFound;
            };
            if !allowed(&record) {
                DeleteBucketOutcome::Refused
            } else {
                let has_object = {
                    let versions = Versions::open(&txn, &self.next_seq)?;
                    let first = match versions.objects.range((name, "")..)?.next() {
                        Some(item) => item?.0.value().0 == name,
                        None => false,
                    };
                    first || versions.any_in_bucket(name)?
                };
                if has_object {
                    DeleteBucketOutcome::NotEmpty
                } else {
                    // As S3: uploads in progress do not keep a bucket; they go with it.
                    let unreferenced = remove_uploads_of(&txn, name)?;
                    buckets.remove(name)?;
                    DeleteBucketOutcome::Deleted { unreferenced }
                }
            }
        };
        finish(txn, matches!(outcome, DeleteBucketOutcome::Deleted { .. }))?;
        Ok(outcome)
    }

    // ---- objects ----

    /// The object's record.
    pub fn object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OBJECTS)?;
        table
            .get((bucket, key))?
            .map(|v| decode(v.value()))
            .transpose()
    }

    /// Stores an object record whose body file is already durable, if the bucket exists,
    /// `allowed` accepts its record and `condition` holds against the current object; the
    /// checks and the commit are one transaction.
    pub fn put_object(
        &self,
        bucket: &str,
        key: &str,
        record: &ObjectRecord,
        condition: &WriteCondition,
        allowed: impl FnOnce(&BucketRecord) -> bool,
    ) -> Result<PutOutcome, StoreError> {
        let txn = self.db.begin_write()?;
        let outcome = {
            let target = txn
                .open_table(BUCKETS)?
                .get(bucket)?
                .map(|v| decode::<BucketRecord>(v.value()))
                .transpose()?;
            let versioning = target
                .as_ref()
                .map_or(Versioning::Unversioned, |t| t.versioning);
            if target.is_none() {
                PutOutcome::NoSuchBucket
            } else if target.as_ref().is_some_and(|t| !allowed(t)) {
                PutOutcome::Refused
            } else if versioning != Versioning::Unversioned {
                let mut versions = Versions::open(&txn, &self.next_seq)?;
                let current = versions.head(bucket, key)?;
                if condition.holds(current.as_ref()) {
                    let (version_id, replaced) =
                        versions.place(bucket, key, record.clone(), current, versioning)?;
                    PutOutcome::Stored {
                        replaced,
                        version_id,
                    }
                } else {
                    PutOutcome::PreconditionFailed
                }
            } else {
                let mut objects = txn.open_table(OBJECTS)?;
                let current = objects
                    .get((bucket, key))?
                    .map(|v| decode::<ObjectRecord>(v.value()))
                    .transpose()?;
                if condition.holds(current.as_ref()) {
                    objects.insert((bucket, key), encode(record).as_slice())?;
                    PutOutcome::Stored {
                        replaced: current.map(|c| c.blob).filter(|b| *b != record.blob),
                        version_id: None,
                    }
                } else {
                    PutOutcome::PreconditionFailed
                }
            }
        };
        match outcome {
            PutOutcome::Stored { .. } => txn.commit()?,
            _ => txn.abort()?,
        }
        Ok(outcome)
    }

    /// Changes an object's record in place (ACL, metadata) if `allowed` accepts the bucket's
    /// and the object's records as they are inside this write transaction.
    pub fn update_object(
        &self,
        bucket: &str,
        key: &str,
        allowed: impl FnOnce(&BucketRecord, &ObjectRecord) -> bool,
        change: impl FnOnce(&mut ObjectRecord),
    ) -> Result<Applied, StoreError> {
        let txn = self.db.begin_write()?;
        let applied = 'tx: {
            let Some(target) = txn
                .open_table(BUCKETS)?
                .get(bucket)?
                .map(|v| decode::<BucketRecord>(v.value()))
                .transpose()?
            else {
                break 'tx Applied::NoSuchBucket;
            };
            let mut objects = txn.open_table(OBJECTS)?;
            let current = objects
                .get((bucket, key))?
                .map(|v| decode::<ObjectRecord>(v.value()))
                .transpose()?;
            match current {
                Some(record) if !allowed(&target, &record) => Applied::Refused,
                Some(mut record) => {
                    change(&mut record);
                    objects.insert((bucket, key), encode(&record).as_slice())?;
                    Applied::Done
                }
                None => Applied::NoSuchObject,
            }
        };
        finish(txn, applied == Applied::Done)?;
        Ok(applied)
    }

    /// Deletes what each item names, as S3's DeleteObject would: without a version, removes
    /// the object (unversioned bucket) or writes a delete marker owned by `owner`; with one,
    /// removes that version for good. `guard` is given the bucket's record as it is inside this
    /// write transaction and returns the per-item check (key, whether a version is named);
    /// refused items are left alone. `None` when the bucket does not exist.
    pub fn delete_objects<F: FnMut(&str, bool) -> bool>(
        &self,
        bucket: &str,
        items: &[(&str, Option<Selector>)],
        owner: &str,
        guard: impl FnOnce(&BucketRecord) -> F,
    ) -> Result<Option<Deletion>, StoreError> {
        let now = crate::store::now_ms();
        let txn = self.db.begin_write()?;
        let Some(target) = txn
            .open_table(BUCKETS)?
            .get(bucket)?
            .map(|v| decode::<BucketRecord>(v.value()))
            .transpose()?
        else {
            txn.abort()?;
            return Ok(None);
        };
        let mut allowed = guard(&target);
        let mut deletion = Deletion::default();
        {
            let mut versions = Versions::open(&txn, &self.next_seq)?;
            for (key, version) in items {
                if !allowed(key, version.is_some()) {
                    deletion.effects.push(None);
                    continue;
                }
                let effect = match version {
                    Some(sel) => versions.delete_version(bucket, key, sel, &mut deletion.blobs)?,
                    None => versions.delete_latest(
                        bucket,
                        key,
                        target.versioning,
                        owner,
                        now,
                        &mut deletion.blobs,
                    )?,
                };
                deletion.effects.push(Some(effect));
            }
        }
        drop(allowed);
        txn.commit()?;
        Ok(Some(deletion))
    }

    // ---- multipart uploads ----

    /// Records a new upload.
    pub fn create_upload(&self, upload_id: &str, record: &UploadRecord) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(UPLOADS)?
            .insert(upload_id, encode(record).as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// The upload's record.
    pub fn upload(&self, upload_id: &str) -> Result<Option<UploadRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(UPLOADS)?;
        table.get(upload_id)?.map(|v| decode(v.value())).transpose()
    }

    /// The uploads of a bucket (unsorted), with their ids.
    pub fn uploads(&self, bucket: &str) -> Result<Vec<(String, UploadRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(UPLOADS)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (k, v) = item?;
            let record: UploadRecord = decode(v.value())?;
            if record.bucket == bucket {
                out.push((k.value().to_owned(), record));
            }
        }
        Ok(out)
    }

    /// The parts of an upload, by part number.
    pub fn parts(&self, upload_id: &str) -> Result<Vec<(u32, PartRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PARTS)?;
        let mut out = Vec::new();
        for item in table.range((upload_id, 0u32)..=(upload_id, u32::MAX))? {
            let (k, v) = item?;
            out.push((k.value().1, decode(v.value())?));
        }
        Ok(out)
    }

    /// Records a part whose body file is durable; returns `Ok(None)` when the upload is gone,
    /// else `Ok(Some(replaced part body))`.
    pub fn put_part(
        &self,
        upload_id: &str,
        number: u32,
        record: &PartRecord,
    ) -> Result<Option<Option<String>>, StoreError> {
        let txn = self.db.begin_write()?;
        let outcome = {
            if txn.open_table(UPLOADS)?.get(upload_id)?.is_none() {
                None
            } else {
                let mut parts = txn.open_table(PARTS)?;
                let old = parts
                    .insert((upload_id, number), encode(record).as_slice())?
                    .map(|v| decode::<PartRecord>(v.value()))
                    .transpose()?;
                Some(old.map(|o| o.blob))
            }
        };
        match outcome {
            Some(_) => txn.commit()?,
            None => txn.abort()?,
        }
        Ok(outcome)
    }

    /// Removes an upload and its parts; returns the part body files, or None when unknown.
    pub fn abort_upload(&self, upload_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        let txn = self.db.begin_write()?;
        let blobs = {
            let mut uploads = txn.open_table(UPLOADS)?;
            if uploads.remove(upload_id)?.is_none() {
                None
            } else {
                Some(remove_parts(&txn, upload_id)?)
            }
        };
        txn.commit()?;
        Ok(blobs)
    }

    /// Turns an upload into the object `record` (whose body file is durable) in one
    /// transaction: checks the upload still exists, its bucket does and `allowed` accepts it,
    /// and `condition` holds; stores the object, drops the upload and its parts.
    pub fn complete_upload(
        &self,
        upload_id: &str,
        record: &ObjectRecord,
        condition: &WriteCondition,
        allowed: impl FnOnce(&BucketRecord) -> bool,
    ) -> Result<CompleteOutcome, StoreError> {
        let txn = self.db.begin_write()?;
        let outcome = 'tx: {
            let mut uploads = txn.open_table(UPLOADS)?;
            let upload = match uploads
                .get(upload_id)?
                .map(|v| decode::<UploadRecord>(v.value()))
                .transpose()?
            {
                Some(u) => u,
                None => break 'tx CompleteOutcome::NoSuchUpload,
            };
            let Some(target) = txn
                .open_table(BUCKETS)?
                .get(upload.bucket.as_str())?
                .map(|v| decode::<BucketRecord>(v.value()))
                .transpose()?
            else {
                break 'tx CompleteOutcome::NoSuchBucket;
            };
            if !allowed(&target) {
                break 'tx CompleteOutcome::Refused;
            }
            let (b, k) = (upload.bucket.as_str(), upload.key.as_str());
            let (version_id, replaced) = {
                let mut versions = Versions::open(&txn, &self.next_seq)?;
                let current = versions.head(b, k)?;
                if !condition.holds(current.as_ref()) {
                    break 'tx CompleteOutcome::PreconditionFailed;
                }
                versions.place(b, k, record.clone(), current, target.versioning)?
            };
            uploads.remove(upload_id)?;
            let mut unreferenced = remove_parts(&txn, upload_id)?;
            unreferenced.extend(replaced);
            CompleteOutcome::Stored {
                unreferenced,
                version_id,
            }
        };
        match outcome {
            CompleteOutcome::Stored { .. } => txn.commit()?,
            _ => txn.abort()?,
        }
        Ok(outcome)
    }

    /// A page of a listing (see [`ListQuery`]).
    pub fn list(&self, query: &ListQuery<'_>) -> Result<ListPage, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OBJECTS)?;
        list::list(&table, query)
    }
}

/// Commits a write transaction that changed something, aborts one that did not.
fn finish(txn: redb::WriteTransaction, changed: bool) -> Result<(), StoreError> {
    if changed {
        txn.commit()?;
    } else {
        txn.abort()?;
    }
    Ok(())
}

/// Removes every upload of `bucket` and their parts; returns the part body files.
fn remove_uploads_of(
    txn: &redb::WriteTransaction,
    bucket: &str,
) -> Result<Vec<String>, StoreError> {
    let mut uploads = txn.open_table(UPLOADS)?;
    let mut ids = Vec::new();
    for item in uploads.iter()? {
        let (k, v) = item?;
        if decode::<UploadRecord>(v.value())?.bucket == bucket {
            ids.push(k.value().to_owned());
        }
    }
    let mut blobs = Vec::new();
    for id in ids {
        uploads.remove(id.as_str())?;
        blobs.extend(remove_parts(txn, &id)?);
    }
    Ok(blobs)
}

fn remove_parts(txn: &redb::WriteTransaction, upload_id: &str) -> Result<Vec<String>, StoreError> {
    let mut parts = txn.open_table(PARTS)?;
    let mut blobs = Vec::new();
    for item in parts.extract_from_if((upload_id, 0u32)..=(upload_id, u32::MAX), |_, _| true)? {
        let (_, v) = item?;
        blobs.push(decode::<PartRecord>(v.value())?.blob);
    }
    Ok(blobs)
}

#[cfg(test)]
mod tests;
