//! Object operations: PUT (conditional, atomic), GET/HEAD (ranges, conditionals, streaming)
//! and CopyObject.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::stream;
use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::acl::{GrantHeaders, acl_from_headers};
use super::conditions::{
    ReadConditions, check_copy_conditions, precondition_failed, write_condition,
};
use super::versions::{parse_version, resolve, version_header};
use super::{
    applied, blocking, body_error, caller, content_md5, etag, no_such_bucket, require_bucket,
    timestamp, unix_secs,
};
use crate::access::{Need, Recheck, Rule};
use crate::acl::Permission;
use crate::index::records::{ObjectHeaders, ObjectRecord};
use crate::index::{PutOutcome, WriteCondition};
use crate::storage::Source;
use crate::store::{State, now_ms};
use crate::versioning::{Selector, Versioning};

/// Default `Content-Type` S3 reports for objects stored without one.
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// Read buffer of object bodies streamed out.
const READ_CHUNK: usize = 256 * 1024;

/// The stored headers of a write.
pub(super) struct HeaderInput {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<Timestamp>,
    pub metadata: Option<Metadata>,
}

impl HeaderInput {
    pub(super) fn into_headers(self) -> ObjectHeaders {
        ObjectHeaders {
            content_type: self.content_type,
            cache_control: self.cache_control,
            content_disposition: self.content_disposition,
            content_encoding: self.content_encoding.as_deref().and_then(strip_aws_chunked),
            content_language: self.content_language,
            expires: self.expires.as_ref().map(unix_secs),
            metadata: self
                .metadata
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect::<BTreeMap<_, _>>(),
        }
    }
}

/// `aws-chunked` describes the upload framing, not the object: S3 does not store it.
fn strip_aws_chunked(encoding: &str) -> Option<String> {
    let kept: Vec<&str> = encoding
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

fn invalid_range(size: u64) -> S3Error {
    s3_error!(
        InvalidRange,
        "The requested range is not satisfiable (object size {size})"
    )
}

/// Everything GET and HEAD answer about an object except the body.
struct ObjectView {
    rec: ObjectRecord,
    range: Option<std::ops::Range<u64>>,
}

impl ObjectView {
    fn content_length(&self) -> i64 {
        let len = self
            .range
            .as_ref()
            .map_or(self.rec.size, |r| r.end - r.start);
        i64::try_from(len).unwrap_or(i64::MAX)
    }

    fn content_range(&self) -> Option<String> {
        self.range
            .as_ref()
            .map(|r| format!("bytes {}-{}/{}", r.start, r.end - 1, self.rec.size))
    }

    fn metadata(&self) -> Option<Metadata> {
        let m = &self.rec.headers.metadata;
        (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

fn resolve_range(
    range: Option<&Range>,
    part_number: Option<i32>,
    rec: &ObjectRecord,
) -> S3Result<Option<std::ops::Range<u64>>> {
    if let Some(n) = part_number {
        // Part 1 of an object of one part is the whole object; a part it does not have is
        // 400 InvalidPart (as S3). Part boundaries of objects of several parts are not kept.
        let count = rec.parts.unwrap_or(1);
        if !u32::try_from(n).is_ok_and(|n| (1..=count).contains(&n)) {
            return Err(s3_error!(
                InvalidPart,
                "The requested partnumber is not satisfiable"
            ));
        }
        if count > 1 {
            return Err(s3_error!(
                NotImplemented,
                "partNumber is only supported for objects of one part"
            ));
        }
    }
    match range {
        None => Ok(None),
        Some(r) => r
            .check(rec.size)
            .map(Some)
            .map_err(|_| invalid_range(rec.size)),
    }
}

pub(super) async fn put_object(
    state: &Arc<State>,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let user = caller(state, &req);
    let input = req.input;
    let bucket = require_bucket(state, &input.bucket)?;
    let owner = user.as_ref().map_or(bucket.owner.clone(), |u| u.id.clone());
    let acl = acl_from_headers(
        &state.users,
        input.acl.as_ref().map(ObjectCannedACL::as_str),
        &GrantHeaders {
            full_control: input.grant_full_control.as_deref(),
            read: input.grant_read.as_deref(),
            read_acp: input.grant_read_acp.as_deref(),
            write: None,
            write_acp: input.grant_write_acp.as_deref(),
        },
    )?;
    let condition = write_condition(input.if_match, input.if_none_match);
    // Fail fast before reading the body; the commit re-checks atomically.
    let current = state.index.object(&input.bucket, &input.key)?;
    if condition.if_match.is_some() && current.is_none() {
        // As S3: `If-Match` on a key that does not exist is a 404.
        return Err(super::no_such_key());
    }
    if !condition.holds(current.as_ref()) {
        return Err(precondition_failed());
    }
    let expected_md5 = content_md5(input.content_md5.as_deref())?;
    let headers = HeaderInput {
        content_type: input.content_type,
        cache_control: input.cache_control,
        content_disposition: input.content_disposition,
        content_encoding: input.content_encoding,
        content_language: input.content_language,
        expires: input.expires,
        metadata: input.metadata,
    }
    .into_headers();

    let written = match input.body {
        Some(body) => state.blobs.write(body).await,
        None => {
            state
                .blobs
                .write(stream::empty::<Result<bytes::Bytes, std::io::Error>>())
                .await
        }
    }
    .map_err(body_error)?;
    let reject = |e: S3Error| {
        let st = state.clone();
        let id = written.id.clone();
        async move {
            st.blobs.remove(vec![id]).await;
            Err(e)
        }
    };
    if expected_md5.is_some_and(|m| m != written.md5) {
        return reject(s3_error!(
            BadDigest,
            "The Content-MD5 you specified did not match what we received."
        ))
        .await;
    }
    if input
        .content_length
        .is_some_and(|len| u64::try_from(len).ok() != Some(written.size))
    {
        return reject(s3_error!(
            IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header."
        ))
        .await;
    }
    let record = ObjectRecord {
        blob: written.id.clone(),
        size: written.size,
        etag: hex::encode(written.md5),
        modified_ms: now_ms(),
        owner,
        acl,
        headers,
        parts: None,
        version_id: None,
        seq: 0,
    };
    let etag_value = record.etag.clone();
    let st = state.clone();
    let (b, k) = (input.bucket.clone(), input.key.clone());
    let check = Recheck::new(user.as_deref(), &b, "PutObject");
    let outcome = blocking(move || {
        st.index.put_object(&b, &k, &record, &condition, |rec| {
            check.allows(rec, Some(&k), None)
        })
    })
    .await;
    match outcome {
        Ok(PutOutcome::Stored {
            replaced,
            version_id,
        }) => {
            state.blobs.remove(replaced.into_iter().collect()).await;
            Ok(S3Response::new(PutObjectOutput {
                e_tag: Some(etag(&etag_value)),
                size: i64::try_from(written.size).ok(),
                version_id,
                ..Default::default()
            }))
        }
        Ok(PutOutcome::PreconditionFailed) => reject(precondition_failed()).await,
        Ok(PutOutcome::NoSuchBucket) => reject(no_such_bucket()).await,
        Ok(PutOutcome::Refused) => reject(s3_error!(AccessDenied, "Access Denied")).await,
        Err(e) => reject(e).await,
    }
}

/// Looks the object up, applies the preconditions and the range, and opens its body. Retries
/// when an overwrite removed the body between the lookup and the open.
async fn open_object(
    state: &State,
    bucket: &str,
    key: &str,
    sel: Option<&Selector>,
    conditions: &ReadConditions,
    range: Option<&Range>,
    part_number: Option<i32>,
) -> S3Result<(ObjectView, tokio::fs::File)> {
    for _ in 0..5 {
        let rec = resolve(state, bucket, key, sel)?;
        conditions.check(&rec)?;
        let range = resolve_range(range, part_number, &rec)?;
        match state.blobs.open_read(&rec.blob).await {
            Ok(file) => return Ok((ObjectView { rec, range }, file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(crate::error::internal("opening body file", e)),
        }
    }
    Err(crate::error::internal(
        "opening body file",
        "body file kept disappearing",
    ))
}

pub(super) async fn get_object(
    state: &Arc<State>,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let input = req.input;
    let sel = parse_version(input.version_id.as_deref())?;
    let conditions = ReadConditions {
        if_match: input.if_match,
        if_none_match: input.if_none_match,
        if_modified_since: input.if_modified_since,
        if_unmodified_since: input.if_unmodified_since,
    };
    let (view, mut file) = open_object(
        state,
        &input.bucket,
        &input.key,
        sel.as_ref(),
        &conditions,
        input.range.as_ref(),
        input.part_number,
    )
    .await?;
    let start = view.range.as_ref().map_or(0, |r| r.start);
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| crate::error::internal("seeking body file", e))?;
    }
    let version_id = version_header(state, &input.bucket, view.rec.version_id.as_deref())?;
    let len = u64::try_from(view.content_length()).unwrap_or(0);
    let body = tokio_util::io::ReaderStream::with_capacity(file.take(len), READ_CHUNK);
    let h = &view.rec.headers;
    let output = GetObjectOutput {
        body: Some(StreamingBlob::wrap(body)),
        accept_ranges: Some("bytes".to_owned()),
        content_length: Some(view.content_length()),
        content_range: view.content_range(),
        content_type: Some(
            h.content_type
                .clone()
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
        ),
        cache_control: h.cache_control.clone(),
        content_disposition: h.content_disposition.clone(),
        content_encoding: h.content_encoding.clone(),
        content_language: h.content_language.clone(),
        expires: h.expires.map(|s| timestamp(s.saturating_mul(1000))),
        e_tag: Some(etag(&view.rec.etag)),
        last_modified: Some(timestamp(view.rec.modified_ms)),
        metadata: view.metadata(),
        parts_count: input.part_number.and(Some(
            i32::try_from(view.rec.parts.unwrap_or(1)).unwrap_or(1),
        )),
        version_id,
        ..Default::default()
    };
    Ok(S3Response::new(output))
}

pub(super) fn head_object(
    state: &State,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = req.input;
    let sel = parse_version(input.version_id.as_deref())?;
    let conditions = ReadConditions {
        if_match: input.if_match,
        if_none_match: input.if_none_match,
        if_modified_since: input.if_modified_since,
        if_unmodified_since: input.if_unmodified_since,
    };
    let rec = resolve(state, &input.bucket, &input.key, sel.as_ref())?;
    let version_id = version_header(state, &input.bucket, rec.version_id.as_deref())?;
    conditions.check(&rec)?;
    let range = resolve_range(input.range.as_ref(), input.part_number, &rec)?;
    let view = ObjectView { rec, range };
    let h = &view.rec.headers;
    let output = HeadObjectOutput {
        accept_ranges: Some("bytes".to_owned()),
        content_length: Some(view.content_length()),
        content_range: view.content_range(),
        content_type: Some(
            h.content_type
                .clone()
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
        ),
        cache_control: h.cache_control.clone(),
        content_disposition: h.content_disposition.clone(),
        content_encoding: h.content_encoding.clone(),
        content_language: h.content_language.clone(),
        expires: h.expires.map(|s| timestamp(s.saturating_mul(1000))),
        e_tag: Some(etag(&view.rec.etag)),
        last_modified: Some(timestamp(view.rec.modified_ms)),
        metadata: view.metadata(),
        parts_count: input.part_number.and(Some(
            i32::try_from(view.rec.parts.unwrap_or(1)).unwrap_or(1),
        )),
        version_id,
        ..Default::default()
    };
    let mut resp = S3Response::new(output);
    if view.range.is_some() {
        resp.status = Some(http::StatusCode::PARTIAL_CONTENT);
    }
    Ok(resp)
}

/// The source object of a copy, after checking the caller may read it.
/// A limited key (`limited`) must have a grant to read the source bucket.
pub(super) fn copy_source(
    state: &State,
    caller: Option<&crate::users::User>,
    limited: Option<&crate::limited::Limited>,
    source: &CopySource,
) -> S3Result<(String, String, ObjectRecord)> {
    let CopySource::Bucket {
        bucket,
        key,
        version_id,
    } = source
    else {
        return Err(s3_error!(
            NotImplemented,
            "Only bucket/key copy sources are supported"
        ));
    };
    if limited.is_some_and(|l| !l.may(bucket, crate::limited::KeyAccess::Read)) {
        return Err(s3_error!(AccessDenied, "Access Denied"));
    }
    let sel = parse_version(version_id.as_deref())?;
    crate::access::authorize_version(
        state,
        caller,
        bucket,
        key,
        sel.as_ref(),
        Rule {
            need: Need::Object(Permission::Read),
            action: if sel.is_some() {
                "s3:GetObjectVersion"
            } else {
                "s3:GetObject"
            },
        },
    )?;
    let rec = resolve(state, bucket, key, sel.as_ref())?;
    Ok((bucket.to_string(), key.to_string(), rec))
}

pub(super) async fn copy_object(
    state: &Arc<State>,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let user = caller(state, &req);
    let limited = state.users.limited_caller(req.credentials.as_ref());
    let input = req.input;
    let bucket = require_bucket(state, &input.bucket)?;
    let owner = user.as_ref().map_or(bucket.owner.clone(), |u| u.id.clone());
    let (src_bucket, src_key, src) = copy_source(
        state,
        user.as_deref(),
        limited.as_deref(),
        &input.copy_source,
    )?;
    check_copy_conditions(
        &src,
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
    )?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    // In a versioned bucket a copy onto itself makes a new version: only unversioned ones
    // change the object's record in place.
    let same = src_bucket == input.bucket
        && src_key == input.key
        && src.version_id.is_none()
        && bucket.versioning == Versioning::Unversioned;
    if src_bucket == input.bucket && src_key == input.key && !replace {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    let headers = if replace {
        HeaderInput {
            content_type: input.content_type,
            cache_control: input.cache_control,
            content_disposition: input.content_disposition,
            content_encoding: input.content_encoding,
            content_language: input.content_language,
            expires: input.expires,
            metadata: input.metadata,
        }
        .into_headers()
    } else {
        src.headers.clone()
    };
    let acl = acl_from_headers(
        &state.users,
        input.acl.as_ref().map(ObjectCannedACL::as_str),
        &GrantHeaders {
            full_control: input.grant_full_control.as_deref(),
            read: input.grant_read.as_deref(),
            read_acp: input.grant_read_acp.as_deref(),
            write: None,
            write_acp: input.grant_write_acp.as_deref(),
        },
    )?;
    let modified_ms = now_ms();

    if same {
        // Metadata-only change: the body stays where it is.
        let st = state.clone();
        let (b, k) = (input.bucket.clone(), input.key.clone());
        let etag_value = src.etag.clone();
        let check = Recheck::new(user.as_deref(), &b, "CopyObject");
        applied(
            blocking(move || {
                st.index.update_object(
                    &b,
                    &k,
                    |rec, _| check.allows(rec, Some(&k), None),
                    |rec| {
                        rec.headers = headers;
                        rec.acl = acl;
                        rec.owner = owner;
                        rec.modified_ms = modified_ms;
                    },
                )
            })
            .await?,
        )?;
        return Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&etag_value)),
                last_modified: Some(timestamp(modified_ms)),
                ..Default::default()
            }),
            ..Default::default()
        }));
    }

    // A copy of a multipart object becomes a single-part object whose ETag is its MD5.
    let rehash = src.parts.is_some();
    let written = state
        .blobs
        .copy(
            vec![Source {
                id: src.blob.clone(),
                offset: 0,
                len: src.size,
            }],
            rehash,
        )
        .await
        .map_err(|e| crate::error::internal("copying body", e))?;
    let record = ObjectRecord {
        blob: written.id.clone(),
        size: written.size,
        etag: if rehash {
            hex::encode(written.md5)
        } else {
            src.etag.clone()
        },
        modified_ms,
        owner,
        acl,
        headers,
        parts: None,
        version_id: None,
        seq: 0,
    };
    let copy_source_version_id = src.version_id.clone();
    let etag_value = record.etag.clone();
    let st = state.clone();
    let (b, k) = (input.bucket.clone(), input.key.clone());
    let check = Recheck::new(user.as_deref(), &b, "CopyObject");
    match blocking(move || {
        st.index
            .put_object(&b, &k, &record, &WriteCondition::default(), |rec| {
                check.allows(rec, Some(&k), None)
            })
    })
    .await
    {
        Ok(PutOutcome::Stored {
            replaced,
            version_id,
        }) => {
            state.blobs.remove(replaced.into_iter().collect()).await;
            Ok(S3Response::new(CopyObjectOutput {
                copy_object_result: Some(CopyObjectResult {
                    e_tag: Some(etag(&etag_value)),
                    last_modified: Some(timestamp(modified_ms)),
                    ..Default::default()
                }),
                copy_source_version_id,
                version_id,
                ..Default::default()
            }))
        }
        other => {
            state.blobs.remove(vec![written.id]).await;
            match other {
                Ok(PutOutcome::NoSuchBucket) => Err(no_such_bucket()),
                Ok(PutOutcome::Refused) => Err(s3_error!(AccessDenied, "Access Denied")),
                Ok(_) => Err(precondition_failed()),
                Err(e) => Err(e),
            }
        }
    }
}
