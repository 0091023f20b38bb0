//! Authorization: decides, before an operation runs (and before its body is read), whether
//! the caller may perform it, from bucket ownership, ACLs and the bucket policy; and decides
//! again ([`Recheck`]) inside the write transaction that applies a change, against the records
//! as they are then, so a bucket created, re-created or re-granted while the body was in
//! flight is judged as it is when the change lands.
//!
//! Order: an explicit policy Deny refuses (except the bucket owner managing the policy
//! itself); the bucket owner may do anything in its bucket; otherwise a policy Allow or an
//! ACL grant is needed. Objects record who wrote them; the writer holds full control too.
//! A missing bucket never passes: every bucket or object request is refused with
//! `NoSuchBucket` before its body is read. A limited access key ([`crate::limited`]) must
//! first be within its grants; then it is judged as the user it acts as.

use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::path::S3Path;
use s3s::{S3Result, s3_error};

use crate::acl::Permission;
use crate::error::StoreError;
use crate::index::Found;
use crate::index::records::{BucketRecord, ObjectRecord, VersionEntry};
use crate::names::validate_key;
use crate::policy::{Decision, Facts, Policy};
use crate::request::{Learned, RequestInfo, current_facts};
use crate::store::State;
use crate::users::User;
use crate::versioning::Selector;

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
    /// An operation on several keys (DeleteObjects): each key is decided on its own as the
    /// single-key operation would be; up front, only whether any key could pass.
    EachKey,
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
    use Need::{Bucket, EachKey, Object, Owner, Signed, Write};
    use Permission::{Read, ReadAcp, WriteAcp};
    let (need, action) = match op {
        "ListBuckets" => (Signed, "s3:ListAllMyBuckets"),
        "CreateBucket" => (Signed, "s3:CreateBucket"),
        "HeadBucket" | "ListObjects" | "ListObjectsV2" => (Bucket(Read), "s3:ListBucket"),
        "ListObjectVersions" => (Bucket(Read), "s3:ListBucketVersions"),
        "ListMultipartUploads" => (Bucket(Read), "s3:ListBucketMultipartUploads"),
        "GetBucketLocation" => (Bucket(Read), "s3:GetBucketLocation"),
        "GetBucketVersioning" => (Bucket(Read), "s3:GetBucketVersioning"),
        "PutBucketVersioning" => (Owner, "s3:PutBucketVersioning"),
        "GetBucketLifecycleConfiguration" => (Owner, "s3:GetLifecycleConfiguration"),
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => {
            (Owner, "s3:PutLifecycleConfiguration")
        }
        "GetBucketAcl" => (Bucket(ReadAcp), "s3:GetBucketAcl"),
        "PutBucketAcl" => (Bucket(WriteAcp), "s3:PutBucketAcl"),
        "GetBucketCors" => (Owner, "s3:GetBucketCORS"),
        "PutBucketCors" | "DeleteBucketCors" => (Owner, "s3:PutBucketCORS"),
        "GetBucketPolicy" => (Owner, "s3:GetBucketPolicy"),
        "PutBucketPolicy" => (Owner, "s3:PutBucketPolicy"),
        "DeleteBucketPolicy" => (Owner, "s3:DeleteBucketPolicy"),
        "DeleteBucket" => (Owner, "s3:DeleteBucket"),
        "GetBucketLogging" => (Owner, "s3:GetBucketLogging"),
        "PutBucketLogging" => (Owner, "s3:PutBucketLogging"),
        "GetObject" | "HeadObject" => (Object(Read), "s3:GetObject"),
        "GetObjectAcl" => (Object(ReadAcp), "s3:GetObjectAcl"),
        "PutObjectAcl" => (Object(WriteAcp), "s3:PutObjectAcl"),
        // Pseudo-operations: the above naming a version (`?versionId=`).
        "GetObjectVersion" => (Object(Read), "s3:GetObjectVersion"),
        "GetObjectVersionAcl" => (Object(ReadAcp), "s3:GetObjectVersionAcl"),
        "PutObjectVersionAcl" => (Object(WriteAcp), "s3:PutObjectVersionAcl"),
        "DeleteObjectVersion" => (Write, "s3:DeleteObjectVersion"),
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => (Write, "s3:PutObject"),
        "AbortMultipartUpload" => (Write, "s3:AbortMultipartUpload"),
        "ListParts" => (Write, "s3:ListMultipartUploadParts"),
        "DeleteObject" => (Write, "s3:DeleteObject"),
        "DeleteObjects" => (EachKey, "s3:DeleteObject"),
        _ => (Owner, "s3:*"),
    };
    Rule { need, action }
}

/// The operation an object operation becomes when it names a version (`?versionId=`).
#[must_use]
pub fn versioned_op(op: &str) -> &str {
    match op {
        "GetObject" | "HeadObject" => "GetObjectVersion",
        "GetObjectAcl" => "GetObjectVersionAcl",
        "PutObjectAcl" => "PutObjectVersionAcl",
        "DeleteObject" => "DeleteObjectVersion",
        other => other,
    }
}

/// The `versionId` query parameter of a request, parsed.
fn version_param(uri: &http::Uri) -> S3Result<Option<Selector>> {
    let Some(query) = uri.query() else {
        return Ok(None);
    };
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "versionId")
        .map(|(_, value)| {
            Selector::parse(&value)
                .map_err(|_| s3_error!(InvalidArgument, "Invalid version id specified"))
        })
        .transpose()
}

fn denied() -> s3s::S3Error {
    s3_error!(AccessDenied, "Access Denied")
}

fn no_such_bucket() -> s3s::S3Error {
    s3_error!(NoSuchBucket, "The specified bucket does not exist")
}

/// A bucket as authorization sees it: its record and its policy, parsed once.
pub struct Subject<'a> {
    record: BucketRecord,
    bucket: &'a str,
    policy: Option<Policy>,
    /// What the policy's conditions look at (the current request's).
    facts: Arc<Facts>,
}

impl<'a> Subject<'a> {
    /// The bucket `bucket` whose record is `record`.
    #[must_use]
    pub fn new(record: BucketRecord, bucket: &'a str) -> Subject<'a> {
        let policy = match record
            .policy
            .as_deref()
            .map(|json| Policy::parse(json, bucket))
        {
            Some(Ok(policy)) => Some(policy),
            Some(Err(e)) => {
                tracing::warn!(bucket, error = %e, "stored bucket policy no longer parses; ignoring it");
                None
            }
            None => None,
        };
        Subject {
            record,
            bucket,
            policy,
            facts: current_facts(),
        }
    }

    /// Judges with `facts` instead of the current request's.
    #[must_use]
    pub fn with_facts(mut self, facts: Arc<Facts>) -> Subject<'a> {
        self.facts = facts;
        self
    }

    /// Whether the policy lets `caller` list the bucket, with `key` as the listing's
    /// `s3:prefix` (as S3 decides whether a missing key may be reported missing).
    fn policy_allows_listing(&self, caller: Option<&str>, key: Option<&str>) -> bool {
        self.policy.as_ref().is_some_and(|p| {
            let mut facts = (*self.facts).clone();
            facts.query = key
                .map(|k| {
                    form_urlencoded::Serializer::new(String::new())
                        .append_pair("prefix", k)
                        .finish()
                })
                .unwrap_or_default();
            p.evaluate(
                caller,
                "s3:ListBucket",
                &format!("arn:aws:s3:::{}", self.bucket),
                &facts,
            ) == Decision::Allow
        })
    }

    /// Decides whether `caller` (None: anonymous) may apply `rule` to the bucket or `key` in
    /// it. `object` fetches the object's record when the decision needs it (object reads and
    /// object ACLs of callers who are neither owner nor allowed).
    pub fn decide(
        &self,
        caller: Option<&str>,
        key: Option<&str>,
        rule: Rule,
        object: impl FnOnce() -> Result<Option<ObjectRecord>, StoreError>,
    ) -> S3Result<()> {
        let (record, bucket) = (&self.record, self.bucket);
        let is_owner = caller == Some(record.owner.as_str());
        if rule.need == Need::Signed {
            return if caller.is_some() {
                Ok(())
            } else {
                Err(denied())
            };
        }
        if rule.need == Need::EachKey {
            // Whether any key could pass; each one is decided when the operation applies.
            let may = is_owner
                || record.acl.allows(caller, Permission::Write)
                || self.policy.as_ref().is_some_and(|p| {
                    p.may_allow_on_objects(caller, rule.action, bucket)
                        || p.may_allow_on_objects(caller, "s3:DeleteObjectVersion", bucket)
                });
            return if may { Ok(()) } else { Err(denied()) };
        }
        let resource = match key {
            Some(key) => format!("arn:aws:s3:::{bucket}/{key}"),
            None => format!("arn:aws:s3:::{bucket}"),
        };
        let decision = self.policy.as_ref().map_or(Decision::Silent, |p| {
            p.evaluate(caller, rule.action, &resource, &self.facts)
        });
        let manages_policy = rule.action.ends_with("BucketPolicy");
        if decision == Decision::Deny && !(is_owner && manages_policy) {
            return Err(denied());
        }
        if is_owner {
            return Ok(());
        }
        if decision == Decision::Allow {
            // As S3: a read the policy allows still learns that a key is missing only if
            // the caller may list the bucket.
            if let (Need::Object(Permission::Read), Some(_)) = (rule.need, key)
                && object()?.is_none()
                && !record.acl.allows(caller, Permission::Read)
                && !self.policy_allows_listing(caller, key)
            {
                return Err(denied());
            }
            return Ok(());
        }
        let granted = match rule.need {
            Need::Signed | Need::Owner | Need::EachKey => false,
            Need::Bucket(perm) => record.acl.allows(caller, perm),
            Need::Write => record.acl.allows(caller, Permission::Write),
            Need::Object(perm) => match key.map(|_| object()).transpose()?.flatten() {
                Some(object) => {
                    caller == Some(object.owner.as_str()) || object.acl.allows(caller, perm)
                }
                // A missing object: only callers who may list the bucket learn it is missing.
                None => {
                    record.acl.allows(caller, Permission::Read)
                        || self.policy_allows_listing(caller, key)
                }
            },
        };
        if granted { Ok(()) } else { Err(denied()) }
    }
}

/// Decides whether `caller` (None: anonymous) may apply `rule` to `bucket` / `key` as the
/// bucket is now. A missing bucket is refused with `NoSuchBucket`.
pub fn authorize(
    state: &State,
    caller: Option<&User>,
    bucket: &str,
    key: Option<&str>,
    rule: Rule,
) -> S3Result<()> {
    let caller = caller.map(|u| u.id.as_str());
    if rule.need == Need::Signed {
        return if caller.is_some() {
            Ok(())
        } else {
            Err(denied())
        };
    }
    let record = state.index.bucket(bucket)?.ok_or_else(no_such_bucket)?;
    Subject::new(record, bucket).decide(caller, key, rule, || match key {
        Some(k) => state.index.object(bucket, k),
        None => Ok(None),
    })
}

/// Like [`authorize`] for an object, judged against version `sel` of it (its owner and ACL)
/// when one is named.
pub fn authorize_version(
    state: &State,
    caller: Option<&User>,
    bucket: &str,
    key: &str,
    sel: Option<&Selector>,
    rule: Rule,
) -> S3Result<()> {
    let Some(sel) = sel else {
        return authorize(state, caller, bucket, Some(key), rule);
    };
    let record = state.index.bucket(bucket)?.ok_or_else(no_such_bucket)?;
    Subject::new(record, bucket).decide(caller.map(|u| u.id.as_str()), Some(key), rule, || {
        Ok(match state.index.version(bucket, key, sel)? {
            Some(Found {
                entry: VersionEntry::Object(o),
                ..
            }) => Some(o),
            _ => None,
        })
    })
}

/// One request's authorization, carried into the write transaction that applies it and
/// decided again there against the records as they are at that moment.
#[derive(Debug, Clone)]
pub struct Recheck {
    caller: Option<String>,
    bucket: String,
    rule: Rule,
    facts: Arc<Facts>,
}

impl Recheck {
    /// The check of operation `op` (an s3s operation name) by `caller` on `bucket`.
    #[must_use]
    pub fn new(caller: Option<&User>, bucket: &str, op: &str) -> Recheck {
        Recheck {
            caller: caller.map(|u| u.id.clone()),
            bucket: bucket.to_owned(),
            rule: rule_for(op),
            facts: current_facts(),
        }
    }

    /// Whether the operation may apply to the bucket (or `key` in it, whose current record
    /// is `object`) as `record` now stands.
    #[must_use]
    pub fn allows(
        &self,
        record: &BucketRecord,
        key: Option<&str>,
        object: Option<&ObjectRecord>,
    ) -> bool {
        Subject::new(record.clone(), &self.bucket)
            .with_facts(self.facts.clone())
            .decide(self.caller.as_deref(), key, self.rule, || {
                Ok(object.cloned())
            })
            .is_ok()
    }

    /// A check of many keys of the bucket as `record` now stands (its policy parsed once).
    pub fn keys<'s>(&'s self, record: &BucketRecord) -> impl FnMut(&str) -> bool + use<'s> {
        let subject = Subject::new(record.clone(), &self.bucket).with_facts(self.facts.clone());
        move |key| {
            subject
                .decide(self.caller.as_deref(), Some(key), self.rule, || Ok(None))
                .is_ok()
        }
    }
}

/// `x-amz-expected-bucket-owner`: a request naming another owner than the bucket's is
/// refused (`AccessDenied`), as S3 does.
fn expected_owner(state: &State, headers: &http::HeaderMap, bucket: &str) -> S3Result<()> {
    let Some(expected) = headers.get("x-amz-expected-bucket-owner") else {
        return Ok(());
    };
    match state.index.bucket(bucket)? {
        Some(record) if record.owner.as_bytes() != expected.as_bytes() => Err(denied()),
        _ => Ok(()),
    }
}

/// The s3s access hook.
#[derive(Clone)]
pub struct Access(pub Arc<State>);

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let caller = self.0.users.caller(cx.credentials());
        let rule = rule_for(cx.s3_op().name());
        let limited = self.0.users.limited_caller(cx.credentials());
        if let Some(info) = RequestInfo::current() {
            let facts = Facts {
                source_ip: Some(info.conn.peer.ip()),
                secure: info.conn.tls.is_some(),
                headers: cx.headers().clone(),
                query: cx.uri().query().unwrap_or_default().to_owned(),
            };
            info.learn(Learned {
                op: cx.s3_op().name().to_owned(),
                requester: caller.as_ref().map(|u| u.id.clone()),
                facts: Arc::new(facts),
            });
        }
        if let Some(limited) = &limited {
            // Within its grants before anything else: a key learns nothing of other buckets.
            limited.check(cx.s3_op().name(), cx.s3_path())?;
        }
        match cx.s3_path() {
            S3Path::Root => {
                if caller.is_some() {
                    Ok(())
                } else {
                    Err(denied())
                }
            }
            S3Path::Bucket { bucket } => {
                expected_owner(&self.0, cx.headers(), bucket)?;
                authorize(&self.0, caller.as_deref(), bucket, None, rule)
            }
            S3Path::Object { bucket, key } => {
                validate_key(key)?;
                expected_owner(&self.0, cx.headers(), bucket)?;
                let sel = version_param(cx.uri())?;
                let rule = match sel {
                    Some(_) => rule_for(versioned_op(cx.s3_op().name())),
                    None => rule,
                };
                authorize_version(&self.0, caller.as_deref(), bucket, key, sel.as_ref(), rule)
            }
        }
    }
}
