//! The records the metadata index stores, serialized as JSON values in redb tables.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::acl::Acl;
use crate::cors::CorsRule;
use crate::lifecycle::Rule as LifecycleRule;
use crate::versioning::Versioning;

/// A bucket: its owner, ACL, policy and CORS rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BucketRecord {
    /// Owner's user id.
    pub owner: String,
    /// Creation time, Unix milliseconds.
    pub created_ms: i64,
    /// Grants beyond the owner.
    #[serde(default)]
    pub acl: Acl,
    /// The bucket policy JSON as the owner sent it (validated when stored).
    #[serde(default)]
    pub policy: Option<String>,
    /// CORS rules.
    #[serde(default)]
    pub cors: Option<Vec<CorsRule>>,
    /// Versioning state.
    #[serde(default)]
    pub versioning: Versioning,
    /// Lifecycle rules (validated when stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Vec<LifecycleRule>>,
}

/// HTTP headers stored with an object and returned on GET/HEAD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectHeaders {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Cache-Control`.
    pub cache_control: Option<String>,
    /// `Content-Disposition`.
    pub content_disposition: Option<String>,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// `Content-Language`.
    pub content_language: Option<String>,
    /// `Expires`, Unix seconds.
    pub expires: Option<i64>,
    /// `x-amz-meta-*`, names lower-cased without the prefix.
    pub metadata: BTreeMap<String, String>,
}

/// One object: where its body is and what to answer about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectRecord {
    /// Body file id (see `storage`); never derived from the key.
    pub blob: String,
    /// Body length.
    pub size: u64,
    /// ETag without quotes: hex MD5, or `<hex>-<parts>` for multipart objects.
    pub etag: String,
    /// Last-Modified, Unix milliseconds.
    pub modified_ms: i64,
    /// Owner's user id (who wrote it).
    pub owner: String,
    /// Grants beyond the owner.
    #[serde(default)]
    pub acl: Acl,
    /// Stored response headers.
    #[serde(default)]
    pub headers: ObjectHeaders,
    /// Number of parts for a multipart object.
    #[serde(default)]
    pub parts: Option<u32>,
    /// Version id; `None` is the `null` version (written unversioned or while suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Where the version sorts among its key's versions (`index::versions`); 0 for a null
    /// version that was never made noncurrent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seq: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A delete marker: a version that says the key is deleted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MarkerRecord {
    /// Version id; `None` is the `null` version.
    #[serde(default)]
    pub version_id: Option<String>,
    /// Sort position among the key's versions.
    pub seq: u64,
    /// Who deleted (the marker's owner).
    pub owner: String,
    /// When, Unix milliseconds.
    pub modified_ms: i64,
}

/// A version other than the latest object: a noncurrent object version or a delete marker
/// (current or not).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)] // short-lived values read from the index; a box would cost an allocation per version
pub enum VersionEntry {
    /// An object version.
    Object(ObjectRecord),
    /// A delete marker.
    Marker(MarkerRecord),
}

impl VersionEntry {
    /// The version id (`None`: null).
    #[must_use]
    pub fn version_id(&self) -> Option<&str> {
        match self {
            Self::Object(o) => o.version_id.as_deref(),
            Self::Marker(m) => m.version_id.as_deref(),
        }
    }

    /// When the version was written, Unix milliseconds.
    #[must_use]
    pub fn modified_ms(&self) -> i64 {
        match self {
            Self::Object(o) => o.modified_ms,
            Self::Marker(m) => m.modified_ms,
        }
    }

    /// Its sort position.
    #[must_use]
    pub fn seq(&self) -> u64 {
        match self {
            Self::Object(o) => o.seq,
            Self::Marker(m) => m.seq,
        }
    }
}

/// An in-progress multipart upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadRecord {
    /// Target bucket.
    pub bucket: String,
    /// Target key.
    pub key: String,
    /// Initiation time, Unix milliseconds.
    pub initiated_ms: i64,
    /// Initiator's user id, the owner of the object it becomes.
    pub owner: String,
    /// ACL for the object.
    pub acl: Acl,
    /// Headers for the object.
    pub headers: ObjectHeaders,
}

/// An uploaded part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartRecord {
    /// Body file id.
    pub blob: String,
    /// Part length.
    pub size: u64,
    /// Hex MD5 of the part.
    pub etag: String,
    /// Upload time, Unix milliseconds.
    pub modified_ms: i64,
}
