//! Bucket logging configurations, in a table of their own keyed by the source bucket. Each
//! records the creation time of the bucket it was set on: a bucket deleted and created again
//! does not inherit the old bucket's logging.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::records::BucketRecord;
use super::{Applied, Index, decode, encode, finish};
use crate::error::StoreError;

pub(super) const LOGGING: TableDefinition<&str, &[u8]> = TableDefinition::new("logging");

/// Where a bucket's access log goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggingRecord {
    /// `created_ms` of the source bucket when logging was set.
    pub bucket_created_ms: i64,
    /// The bucket the log objects are written to.
    pub target_bucket: String,
    /// The key prefix of the log objects.
    pub target_prefix: String,
}

impl LoggingRecord {
    /// Whether it applies to the bucket `record` describes (not to an earlier namesake).
    #[must_use]
    pub fn applies_to(&self, record: &BucketRecord) -> bool {
        self.bucket_created_ms == record.created_ms
    }
}

impl Index {
    /// The logging configuration of `bucket`, if one is set for the bucket as it now is.
    pub fn logging(&self, bucket: &str) -> Result<Option<LoggingRecord>, StoreError> {
        let Some(record) = self.bucket(bucket)? else {
            return Ok(None);
        };
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LOGGING)?;
        let logging: Option<LoggingRecord> =
            table.get(bucket)?.map(|v| decode(v.value())).transpose()?;
        Ok(logging.filter(|l| l.applies_to(&record)))
    }

    /// Every stored logging configuration (some may be stale: check [`LoggingRecord::applies_to`]).
    pub fn loggings(&self) -> Result<Vec<(String, LoggingRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LOGGING)?;
        let mut out = Vec::new();
        for item in table.iter()? {
            let (k, v) = item?;
            out.push((k.value().to_owned(), decode(v.value())?));
        }
        Ok(out)
    }

    /// Sets (`Some((target bucket, prefix))`) or clears `bucket`'s logging if `allowed`
    /// accepts the source and target buckets' records as they are inside this write
    /// transaction; `Refused` when it does not (or the target is gone).
    pub fn set_logging(
        &self,
        bucket: &str,
        target: Option<(&str, &str)>,
        allowed: impl FnOnce(&BucketRecord, Option<&BucketRecord>) -> bool,
    ) -> Result<Applied, StoreError> {
        let txn = self.db.begin_write()?;
        let applied = 'tx: {
            let buckets = txn.open_table(super::BUCKETS)?;
            let read = |name: &str| -> Result<Option<BucketRecord>, StoreError> {
                buckets.get(name)?.map(|v| decode(v.value())).transpose()
            };
            let Some(source) = read(bucket)? else {
                break 'tx Applied::NoSuchBucket;
            };
            let target_record = match target {
                Some((t, _)) => read(t)?,
                None => None,
            };
            if !allowed(&source, target_record.as_ref()) {
                break 'tx Applied::Refused;
            }
            let mut table = txn.open_table(LOGGING)?;
            match target {
                Some((target_bucket, target_prefix)) => {
                    let record = LoggingRecord {
                        bucket_created_ms: source.created_ms,
                        target_bucket: target_bucket.to_owned(),
                        target_prefix: target_prefix.to_owned(),
                    };
                    table.insert(bucket, encode(&record).as_slice())?;
                }
                None => {
                    table.remove(bucket)?;
                }
            }
            Applied::Done
        };
        finish(txn, applied == Applied::Done)?;
        Ok(applied)
    }
}
