//! Authorization: decides, before an operation runs (and before its body is read), whether
//! the caller may perform it, from bucket ownership, ACLs and the bucket policy.
//!
//! Order: an explicit policy Deny refuses (except the bucket owner managing the policy
//! itself); the bucket owner may do anything in its bucket; otherwise a policy Allow or an
//! ACL grant is needed. Objects record who wrote them; the writer holds full control too.

use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::path::S3Path;
use s3s::{S3Result, s3_error};

use crate::acl::Permission;
use crate::names::validate_key;
use crate::policy::{Decision, Policy};
use crate::store::State;
use crate::users::User;

/// What an operation requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any signed request (ListBuckets, CreateBucket).
    Signed,
    /// The bucket owner, or a policy Allow.
    Owner,
    /// A bucket-level permission (list: READ; bucket ACL: READ_ACP / WRITE_ACP).
    Bucket(Permission),
    /// An object-level permission (GET: READ; object ACL: READ_ACP / WRITE_ACP).
    Object(Permission),
    /// Writing objects into the bucket (bucket WRITE).
    Write,
}

/// An operation's requirement and its IAM action name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// What is required.
    pub need: Need,
    /// IAM action checked against the bucket policy.
    pub action: &'static str,
}

/// The rule of an s3s operation name. Unknown operations are owner-only (and then usually
/// answer 501 NotImplemented).
#[must_use]
pub fn rule_for(op: &str) -> Rule {
    use Need::{Bucket, Object, Owner, Signed, Write};
    use Permission::{Read, ReadAcp, WriteAcp};
    let (need, action) = match op {
        "ListBuckets" => (Signed, "s3:ListAllMyBuckets"),
        "CreateBucket" => (Signed, "s3:CreateBucket"),
        "HeadBucket" | "ListObjects" | "ListObjectsV2" => (Bucket(Read), "s3:ListBucket"),
        "ListObjectVersions" => (Bucket(Read), "s3:ListBucketVersions"),
        "ListMultipartUploads" => (Bucket(Read), "s3:ListBucketMultipartUploads"),
        "GetBucketLocation" => (Bucket(Read), "s3:GetBucketLocation"),
        "GetBucketVersioning" => (Bucket(Read), "s3:GetBucketVersioning"),
        "GetBucketAcl" => (Bucket(ReadAcp), "s3:GetBucketAcl"),
        "PutBucketAcl" => (Bucket(WriteAcp), "s3:PutBucketAcl"),
        "GetBucketCors" => (Owner, "s3:GetBucketCORS"),
        "PutBucketCors" | "DeleteBucketCors" => (Owner, "s3:PutBucketCORS"),
        "GetBucketPolicy" => (Owner, "s3:GetBucketPolicy"),
        "PutBucketPolicy" => (Owner, "s3:PutBucketPolicy"),
        "DeleteBucketPolicy" => (Owner, "s3:DeleteBucketPolicy"),
        "DeleteBucket" => (Owner, "s3:DeleteBucket"),
        "GetObject" | "HeadObject" => (Object(Read), "s3:GetObject"),
        "GetObjectAcl" => (Object(ReadAcp), "s3:GetObjectAcl"),
        "PutObjectAcl" => (Object(WriteAcp), "s3:PutObjectAcl"),
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => (Write, "s3:PutObject"),
        "AbortMultipartUpload" => (Write, "s3:AbortMultipartUpload"),
        "ListParts" => (Write, "s3:ListMultipartUploadParts"),
        "DeleteObject" | "DeleteObjects" => (Write, "s3:DeleteObject"),
        _ => (Owner, "s3:*"),
    };
    Rule { need, action }
}

fn denied() -> s3s::S3Error {
    s3_error!(AccessDenied, "Access Denied")
}

/// Decides whether `caller` (None: anonymous) may apply `rule` to `bucket` / `key`.
/// A missing bucket passes (the operation then answers NoSuchBucket).
pub fn authorize(
    state: &State,
    caller: Option<&User>,
    bucket: &str,
    key: Option<&str>,
    rule: Rule,
) -> S3Result<()> {
    let caller_id = caller.map(|u| u.id.as_str());
    if rule.need == Need::Signed {
        return if caller.is_some() {
            Ok(())
        } else {
            Err(denied())
        };
    }
    let Some(record) = state.index.bucket(bucket)? else {
        return Ok(());
    };
    let is_owner = caller_id == Some(record.owner.as_str());

    let resource = match key {
        Some(key) => format!("arn:aws:s3:::{bucket}/{key}"),
        None => format!("arn:aws:s3:::{bucket}"),
    };
    let decision = match &record.policy {
        Some(json) => match Policy::parse(json, bucket) {
            Ok(policy) => policy.evaluate(caller_id, rule.action, &resource),
            Err(e) => {
                tracing::warn!(bucket, error = %e, "stored bucket policy no longer parses; ignoring it");
                Decision::Silent
            }
        },
        None => Decision::Silent,
    };
    let manages_policy = rule.action.ends_with("BucketPolicy");
    if decision == Decision::Deny && !(is_owner && manages_policy) {
        return Err(denied());
    }
    if is_owner || decision == Decision::Allow {
        return Ok(());
    }
    let granted = match rule.need {
        Need::Signed | Need::Owner => false,
        Need::Bucket(perm) => record.acl.allows(caller_id, perm),
        Need::Write => record.acl.allows(caller_id, Permission::Write),
        Need::Object(perm) => match key
            .map(|k| state.index.object(bucket, k))
            .transpose()?
            .flatten()
        {
            Some(object) => {
                caller_id == Some(object.owner.as_str()) || object.acl.allows(caller_id, perm)
            }
            // A missing object: only callers who may list the bucket learn it is missing.
            None => record.acl.allows(caller_id, Permission::Read),
        },
    };
    if granted { Ok(()) } else { Err(denied()) }
}

/// The s3s access hook.
#[derive(Clone)]
pub struct Access(pub Arc<State>);

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let caller = self.0.users.caller(cx.credentials());
        let rule = rule_for(cx.s3_op().name());
        match cx.s3_path() {
            S3Path::Root => {
                if caller.is_some() {
                    Ok(())
                } else {
                    Err(denied())
                }
            }
            S3Path::Bucket { bucket } => authorize(&self.0, caller.as_deref(), bucket, None, rule),
            S3Path::Object { bucket, key } => {
                validate_key(key)?;
                authorize(&self.0, caller.as_deref(), bucket, Some(key), rule)
            }
        }
    }
}
