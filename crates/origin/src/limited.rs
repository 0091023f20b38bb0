//! Limited access keys (as Spaces' bucket-scoped keys): extra SigV4 keys, replaced as a whole
//! at runtime with [`crate::Store::set_limited_keys`], that act as one configured user but only
//! within their grants. `read` lists and reads a granted bucket's objects; `readwrite` also
//! writes and deletes them. Bucket administration (create, delete, ACL, policy, CORS,
//! lifecycle, versioning, logging) is never allowed, and ListBuckets shows only the granted
//! buckets. The grant is checked before the bucket's existence, so a key learns nothing of
//! buckets outside its grants.

use std::collections::HashMap;
use std::sync::Arc;

use s3s::path::S3Path;
use s3s::{S3Result, s3_error};

use crate::users::User;

/// What a grant allows on its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyAccess {
    /// List the bucket, read its objects.
    Read,
    /// Also write and delete its objects.
    ReadWrite,
}

/// One bucket a limited key may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketGrant {
    /// The bucket's name.
    pub bucket: String,
    /// What the key may do in it.
    pub access: KeyAccess,
}

/// A limited access key as the store is given it.
#[derive(Clone, PartialEq, Eq)]
pub struct LimitedKey {
    /// The SigV4 access key id.
    pub access_key: String,
    /// The SigV4 secret.
    pub secret_key: String,
    /// The configured user the key acts as (its writes are owned by that user).
    pub user_id: String,
    /// The buckets it may use.
    pub grants: Vec<BucketGrant>,
}

impl std::fmt::Debug for LimitedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitedKey")
            .field("access_key", &self.access_key)
            .field("user_id", &self.user_id)
            .field("grants", &self.grants)
            .finish_non_exhaustive()
    }
}

/// A limited key as requests are checked against it.
pub(crate) struct Limited {
    pub(crate) secret: String,
    pub(crate) user: Arc<User>,
    grants: HashMap<String, KeyAccess>,
}

impl std::fmt::Debug for Limited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limited")
            .field("user", &self.user.id)
            .field("grants", &self.grants)
            .finish_non_exhaustive()
    }
}

impl Limited {
    /// The checked form of `key`, acting as `user`. A bucket granted twice keeps the wider
    /// access.
    pub(crate) fn new(key: &LimitedKey, user: Arc<User>) -> Limited {
        let mut grants: HashMap<String, KeyAccess> = HashMap::new();
        for grant in &key.grants {
            let access = grants.entry(grant.bucket.clone()).or_insert(grant.access);
            *access = (*access).max(grant.access);
        }
        Limited {
            secret: key.secret_key.clone(),
            user,
            grants,
        }
    }

    /// Whether the key may do what `need` says in `bucket`.
    pub(crate) fn may(&self, bucket: &str, need: KeyAccess) -> bool {
        self.grants.get(bucket).is_some_and(|have| *have >= need)
    }

    /// Whether ListBuckets shows `bucket` to this key.
    pub(crate) fn shows(&self, bucket: &str) -> bool {
        self.grants.contains_key(bucket)
    }

    /// Whether operation `op` (an s3s operation name) on `path` is within the grants; the
    /// owner's and ACL checks still follow for what passes.
    pub(crate) fn check(&self, op: &str, path: &S3Path) -> S3Result<()> {
        let allowed = match (path, need_of(op)) {
            (S3Path::Root, _) => op == "ListBuckets",
            (S3Path::Bucket { bucket } | S3Path::Object { bucket, .. }, Some(need)) => {
                self.may(bucket, need)
            }
            (_, None) => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(s3_error!(AccessDenied, "Access Denied"))
        }
    }
}

/// What operation `op` needs of a limited key's grant; `None` for operations no limited key
/// may perform (bucket administration, and anything not listed).
fn need_of(op: &str) -> Option<KeyAccess> {
    match op {
        "HeadBucket" | "GetBucketLocation" | "ListObjects" | "ListObjectsV2"
        | "ListObjectVersions" | "GetObject" | "HeadObject" | "GetObjectAcl" => {
            Some(KeyAccess::Read)
        }
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "AbortMultipartUpload"
        | "ListParts"
        | "ListMultipartUploads"
        | "DeleteObject"
        | "DeleteObjects"
        | "PutObjectAcl" => Some(KeyAccess::ReadWrite),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(grants: &[(&str, KeyAccess)]) -> Limited {
        let user = Arc::new(User {
            id: "edge".into(),
            display_name: "edge".into(),
            email: None,
            secret_key: String::new(),
        });
        let key = LimitedKey {
            access_key: "AK".into(),
            secret_key: "SK".into(),
            user_id: "edge".into(),
            grants: grants
                .iter()
                .map(|(bucket, access)| BucketGrant {
                    bucket: (*bucket).to_owned(),
                    access: *access,
                })
                .collect(),
        };
        Limited::new(&key, user)
    }

    fn object(bucket: &str) -> S3Path {
        S3Path::Object {
            bucket: bucket.into(),
            key: "k".into(),
        }
    }

    #[test]
    fn grants_decide_by_bucket_and_operation() {
        let k = key(&[("a", KeyAccess::Read), ("b", KeyAccess::ReadWrite)]);
        assert!(k.check("GetObject", &object("a")).is_ok());
        assert!(k.check("PutObject", &object("a")).is_err());
        assert!(k.check("PutObject", &object("b")).is_ok());
        assert!(k.check("GetObject", &object("c")).is_err());
        let bucket = S3Path::Bucket { bucket: "b".into() };
        assert!(k.check("ListObjectsV2", &bucket).is_ok());
        for admin in [
            "DeleteBucket",
            "PutBucketPolicy",
            "PutBucketAcl",
            "CreateBucket",
        ] {
            assert!(k.check(admin, &bucket).is_err(), "{admin}");
        }
        assert!(k.check("ListBuckets", &S3Path::Root).is_ok());
        assert!(k.shows("a") && !k.shows("c"));
    }

    #[test]
    fn a_bucket_granted_twice_keeps_the_wider_access() {
        let k = key(&[("a", KeyAccess::ReadWrite), ("a", KeyAccess::Read)]);
        assert!(k.may("a", KeyAccess::ReadWrite));
    }
}
