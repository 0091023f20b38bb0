//! Multipart uploads: parts are body files of their own; Complete streams them into one new
//! object file (never holding a part in memory) and commits object and cleanup in one
//! transaction.

use std::sync::Arc;

use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};

use super::acl::{GrantHeaders, acl_from_headers};
use super::conditions::{check_copy_conditions, write_condition};
use super::copy_range::copy_range;
use super::object::{HeaderInput, copy_source};
use super::{
    blocking, body_error, caller, content_md5, etag, no_such_bucket, require_bucket, timestamp,
};
use crate::access::Recheck;
use crate::completed::Made;
use crate::index::records::{ObjectRecord, PartRecord, UploadRecord};
use crate::index::{CompleteOutcome, WriteCondition};
use crate::storage::Source;
use crate::store::{State, now_ms};

/// Smallest part S3 accepts except the last one.
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Highest part number.
const MAX_PART_NUMBER: i32 = 10_000;
/// Completions larger than this answer through s3s's keep-alive body (whitespace while the
/// parts are concatenated) so clients do not time out.
const KEEP_ALIVE_THRESHOLD: u64 = 256 * 1024 * 1024;

fn no_such_upload() -> S3Error {
    s3_error!(
        NoSuchUpload,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
    )
}

/// The upload, which must target `bucket`/`key`.
fn require_upload(
    state: &State,
    upload_id: &str,
    bucket: &str,
    key: &str,
) -> S3Result<UploadRecord> {
    match state.index.upload(upload_id)? {
        Some(up) if up.bucket == bucket && up.key == key => Ok(up),
        _ => Err(no_such_upload()),
    }
}

fn part_number(n: i32) -> S3Result<u32> {
    if !(1..=MAX_PART_NUMBER).contains(&n) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ));
    }
    u32::try_from(n).map_err(|_| s3_error!(InvalidArgument, "invalid part number"))
}

pub(super) async fn create(
    state: &Arc<State>,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let user = caller(state, &req);
    let input = req.input;
    let bucket = require_bucket(state, &input.bucket)?;
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
    let record = UploadRecord {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        initiated_ms: now_ms(),
        owner: user.map_or(bucket.owner, |u| u.id.clone()),
        acl,
        headers: HeaderInput {
            content_type: input.content_type,
            cache_control: input.cache_control,
            content_disposition: input.content_disposition,
            content_encoding: input.content_encoding,
            content_language: input.content_language,
            expires: input.expires,
            metadata: input.metadata,
        }
        .into_headers(),
    };
    let upload_id = uuid::Uuid::new_v4().simple().to_string();
    let st = state.clone();
    let id = upload_id.clone();
    blocking(move || st.index.create_upload(&id, &record)).await?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload_id),
        ..Default::default()
    }))
}

/// Records a durable part file, or deletes it when the upload vanished meanwhile.
async fn commit_part(
    state: &Arc<State>,
    upload_id: String,
    number: u32,
    record: PartRecord,
) -> S3Result<()> {
    let st = state.clone();
    let blob = record.blob.clone();
    match blocking(move || st.index.put_part(&upload_id, number, &record)).await {
        Ok(Some(replaced)) => {
            state.blobs.remove(replaced.into_iter().collect()).await;
            Ok(())
        }
        Ok(None) => {
            state.blobs.remove(vec![blob]).await;
            Err(no_such_upload())
        }
        Err(e) => {
            state.blobs.remove(vec![blob]).await;
            Err(e)
        }
    }
}

pub(super) async fn upload_part(
    state: &Arc<State>,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let input = req.input;
    let number = part_number(input.part_number)?;
    require_upload(state, &input.upload_id, &input.bucket, &input.key)?;
    let expected_md5 = content_md5(input.content_md5.as_deref())?;
    let written = match input.body {
        Some(body) => state.blobs.write(body).await,
        None => {
            state
                .blobs
                .write(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>())
                .await
        }
    }
    .map_err(body_error)?;
    if expected_md5.is_some_and(|m| m != written.md5)
        || input
            .content_length
            .is_some_and(|len| u64::try_from(len).ok() != Some(written.size))
    {
        let bad_digest = expected_md5.is_some_and(|m| m != written.md5);
        state.blobs.remove(vec![written.id]).await;
        return Err(if bad_digest {
            s3_error!(
                BadDigest,
                "The Content-MD5 you specified did not match what we received."
            )
        } else {
            s3_error!(
                IncompleteBody,
                "You did not provide the number of bytes specified by the Content-Length HTTP header."
            )
        });
    }
    let md5 = hex::encode(written.md5);
    let record = PartRecord {
        blob: written.id,
        size: written.size,
        etag: md5.clone(),
        modified_ms: now_ms(),
    };
    commit_part(state, input.upload_id, number, record).await?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(etag(&md5)),
        ..Default::default()
    }))
}

pub(super) async fn upload_part_copy(
    state: &Arc<State>,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let user = caller(state, &req);
    let limited = state.users.limited_caller(req.credentials.as_ref());
    let input = req.input;
    let number = part_number(input.part_number)?;
    require_upload(state, &input.upload_id, &input.bucket, &input.key)?;
    let (_, _, src) = copy_source(
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
    let (offset, len) = copy_range(input.copy_source_range.as_deref(), src.size)?;
    let written = state
        .blobs
        .copy(
            vec![Source {
                id: src.blob.clone(),
                offset,
                len,
            }],
            true,
        )
        .await
        .map_err(|e| crate::error::internal("copying part", e))?;
    let md5 = hex::encode(written.md5);
    let modified_ms = now_ms();
    let record = PartRecord {
        blob: written.id,
        size: written.size,
        etag: md5.clone(),
        modified_ms,
    };
    commit_part(state, input.upload_id, number, record).await?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(etag(&md5)),
            last_modified: Some(timestamp(modified_ms)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// Checks the client's part list against the stored parts; returns the sources to
/// concatenate and the multipart ETag.
fn plan_completion(
    requested: &[CompletedPart],
    stored: &[(u32, PartRecord)],
) -> S3Result<(Vec<Source>, String)> {
    if requested.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "You must specify at least one part"
        ));
    }
    let invalid_part = || {
        s3_error!(
            InvalidPart,
            "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
        )
    };
    let mut numbers = Vec::with_capacity(requested.len());
    for part in requested {
        let number = part
            .part_number
            .ok_or_else(invalid_part)
            .and_then(|n| u32::try_from(n).map_err(|_| invalid_part()))?;
        if numbers.last().is_some_and(|&previous| number <= previous) {
            return Err(s3_error!(
                InvalidPartOrder,
                "The list of parts was not in ascending order. The parts list must be specified in order by part number."
            ));
        }
        numbers.push(number);
    }
    let mut sources = Vec::with_capacity(requested.len());
    let mut md5s = Md5::new();
    for (i, (part, number)) in requested.iter().zip(numbers).enumerate() {
        let Some((_, rec)) = stored.iter().find(|(n, _)| *n == number) else {
            return Err(invalid_part());
        };
        if let Some(tag) = &part.e_tag
            && tag.value().trim_matches('"') != rec.etag
        {
            return Err(invalid_part());
        }
        if i + 1 < requested.len() && rec.size < MIN_PART_SIZE {
            return Err(s3_error!(
                EntityTooSmall,
                "Your proposed upload is smaller than the minimum allowed object size."
            ));
        }
        let raw =
            hex::decode(&rec.etag).map_err(|e| crate::error::internal("stored part etag", e))?;
        md5s.update(&raw);
        sources.push(Source {
            id: rec.blob.clone(),
            offset: 0,
            len: rec.size,
        });
    }
    Ok((
        sources,
        format!("{}-{}", hex::encode(md5s.finalize()), requested.len()),
    ))
}

/// Concatenates the parts and commits; used directly or inside the keep-alive future.
async fn finish_completion(
    state: Arc<State>,
    upload_id: String,
    upload: UploadRecord,
    sources: Vec<Source>,
    etag_value: String,
    condition: WriteCondition,
    check: Recheck,
) -> S3Result<CompleteMultipartUploadOutput> {
    let parts = u32::try_from(sources.len()).unwrap_or(u32::MAX);
    let written = state
        .blobs
        .copy(sources, false)
        .await
        .map_err(|e| crate::error::internal("concatenating parts", e))?;
    let record = ObjectRecord {
        blob: written.id.clone(),
        size: written.size,
        etag: etag_value.clone(),
        modified_ms: now_ms(),
        owner: upload.owner.clone(),
        acl: upload.acl.clone(),
        headers: upload.headers.clone(),
        parts: Some(parts),
        version_id: None,
        seq: 0,
    };
    let st = state.clone();
    let key = upload.key.clone();
    let upload_id_copy = upload_id.clone();
    let outcome = blocking(move || {
        st.index
            .complete_upload(&upload_id, &record, &condition, |rec| {
                check.allows(rec, Some(&key), None)
            })
    })
    .await;
    match outcome {
        Ok(CompleteOutcome::Stored {
            unreferenced,
            version_id,
        }) => {
            state.blobs.remove(unreferenced).await;
            state.completed.remember(
                &upload_id_copy,
                &upload.bucket,
                &upload.key,
                Made {
                    etag: etag_value.clone(),
                    version_id: version_id.clone(),
                },
            );
            Ok(CompleteMultipartUploadOutput {
                version_id,
                bucket: Some(upload.bucket.clone()),
                key: Some(upload.key.clone()),
                e_tag: Some(etag(&etag_value)),
                location: Some(format!("/{}/{}", upload.bucket, upload.key)),
                ..Default::default()
            })
        }
        other => {
            state.blobs.remove(vec![written.id]).await;
            if let Ok(CompleteOutcome::NoSuchUpload) = other
                && let Some(output) = super::repeated_completion::answer_for(
                    &state,
                    &upload_id_copy,
                    &upload.bucket,
                    &upload.key,
                    &etag_value,
                )
            {
                // A concurrent completion of the same upload with the same parts won.
                return Ok(output);
            }
            Err(match other {
                Ok(CompleteOutcome::NoSuchUpload) => no_such_upload(),
                Ok(CompleteOutcome::NoSuchBucket) => no_such_bucket(),
                Ok(CompleteOutcome::Refused) => s3_error!(AccessDenied, "Access Denied"),
                Ok(_) => s3_error!(
                    PreconditionFailed,
                    "At least one of the pre-conditions you specified did not hold"
                ),
                Err(e) => e,
            })
        }
    }
}

pub(super) async fn complete(
    state: &Arc<State>,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let check = Recheck::new(
        caller(state, &req).as_deref(),
        &req.input.bucket,
        "CompleteMultipartUpload",
    );
    let input = req.input;
    let upload = match require_upload(state, &input.upload_id, &input.bucket, &input.key) {
        Ok(upload) => upload,
        Err(e) => {
            let output = super::repeated_completion::answer(state, &input).ok_or(e)?;
            return Ok(S3Response::new(output));
        }
    };
    let condition = write_condition(input.if_match, input.if_none_match);
    let current = state.index.object(&input.bucket, &input.key)?;
    if condition.if_match.is_some() && current.is_none() {
        return Err(super::no_such_key());
    }
    if !condition.holds(current.as_ref()) {
        return Err(s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        ));
    }
    let stored = state.index.parts(&input.upload_id)?;
    let requested = input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default();
    let (sources, etag_value) = plan_completion(&requested, &stored)?;
    let total: u64 = sources.iter().map(|s| s.len).sum();
    let fut = finish_completion(
        state.clone(),
        input.upload_id,
        upload,
        sources,
        etag_value,
        condition,
        check,
    );
    if total > KEEP_ALIVE_THRESHOLD {
        let output = CompleteMultipartUploadOutput {
            future: Some(Box::pin(fut)),
            ..Default::default()
        };
        return Ok(S3Response::new(output));
    }
    Ok(S3Response::new(fut.await?))
}

pub(super) async fn abort(
    state: &Arc<State>,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = req.input;
    require_upload(state, &input.upload_id, &input.bucket, &input.key)?;
    let st = state.clone();
    let id = input.upload_id.clone();
    match blocking(move || st.index.abort_upload(&id)).await? {
        Some(blobs) => {
            state.blobs.remove(blobs).await;
            Ok(S3Response::with_status(
                AbortMultipartUploadOutput::default(),
                http::StatusCode::NO_CONTENT,
            ))
        }
        None => Err(no_such_upload()),
    }
}

pub(super) fn list_parts(
    state: &State,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let input = req.input;
    let upload = require_upload(state, &input.upload_id, &input.bucket, &input.key)?;
    let max = usize::try_from(input.max_parts.unwrap_or(1000).clamp(0, 1000)).unwrap_or(1000);
    let marker = input.part_number_marker.unwrap_or(0);
    let stored = state.index.parts(&input.upload_id)?;
    let after: Vec<_> = stored
        .into_iter()
        .filter(|(n, _)| i64::from(*n) > i64::from(marker))
        .collect();
    let truncated = after.len() > max;
    let parts: Vec<Part> = after
        .into_iter()
        .take(max)
        .map(|(n, p)| Part {
            e_tag: Some(etag(&p.etag)),
            last_modified: Some(timestamp(p.modified_ms)),
            part_number: i32::try_from(n).ok(),
            size: i64::try_from(p.size).ok(),
            ..Default::default()
        })
        .collect();
    let owner = state.users.owner(&upload.owner);
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        initiator: Some(Initiator {
            id: owner.id.clone(),
            display_name: owner.display_name.clone(),
        }),
        owner: Some(owner),
        is_truncated: Some(truncated),
        max_parts: Some(i32::try_from(max).unwrap_or(1000)),
        next_part_number_marker: if truncated {
            parts.last().and_then(|p| p.part_number)
        } else {
            None
        },
        part_number_marker: input.part_number_marker,
        parts: Some(parts),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        ..Default::default()
    }))
}

pub(super) fn list_uploads(
    state: &State,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = req.input;
    require_bucket(state, &input.bucket)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone().unwrap_or_default();
    let max = usize::try_from(input.max_uploads.unwrap_or(1000).clamp(0, 1000)).unwrap_or(1000);
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let id_marker = input.upload_id_marker.clone().unwrap_or_default();
    let mut all = state.index.uploads(&input.bucket)?;
    all.retain(|(id, u)| {
        u.key.starts_with(&prefix)
            && (key_marker.is_empty()
                || u.key.as_str() > key_marker.as_str()
                || (u.key == key_marker
                    && !id_marker.is_empty()
                    && id.as_str() > id_marker.as_str()))
    });
    all.sort_by(|(a_id, a), (b_id, b)| {
        (a.key.as_str(), a_id.as_str()).cmp(&(b.key.as_str(), b_id.as_str()))
    });
    let mut uploads = Vec::new();
    let mut prefixes: Vec<CommonPrefix> = Vec::new();
    let mut truncated = false;
    let mut last: Option<(String, String)> = None;
    for (id, u) in all {
        if !delimiter.is_empty()
            && let Some(pos) = u.key[prefix.len()..].find(&delimiter)
        {
            let common = u.key[..prefix.len() + pos + delimiter.len()].to_owned();
            if prefixes.last().and_then(|p| p.prefix.as_deref()) == Some(common.as_str()) {
                continue;
            }
            if uploads.len() + prefixes.len() == max {
                truncated = true;
                break;
            }
            last = Some((common.clone(), String::new()));
            prefixes.push(CommonPrefix {
                prefix: Some(common),
            });
            continue;
        }
        if uploads.len() + prefixes.len() == max {
            truncated = true;
            break;
        }
        let owner = state.users.owner(&u.owner);
        last = Some((u.key.clone(), id.clone()));
        uploads.push(MultipartUpload {
            initiated: Some(timestamp(u.initiated_ms)),
            initiator: Some(Initiator {
                id: owner.id.clone(),
                display_name: owner.display_name.clone(),
            }),
            key: Some(u.key),
            owner: Some(owner),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            upload_id: Some(id),
            ..Default::default()
        });
    }
    let (next_key, next_id) = match (truncated, last) {
        (true, Some((k, id))) => (Some(k), Some(id)),
        _ => (None, None),
    };
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        common_prefixes: Some(prefixes),
        delimiter: input.delimiter,
        encoding_type: input.encoding_type,
        is_truncated: Some(truncated),
        key_marker: input.key_marker,
        max_uploads: Some(i32::try_from(max).unwrap_or(1000)),
        next_key_marker: next_key,
        next_upload_id_marker: next_id,
        prefix: input.prefix,
        upload_id_marker: input.upload_id_marker,
        uploads: Some(uploads),
        ..Default::default()
    }))
}
