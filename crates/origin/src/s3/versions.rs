//! Versioning as S3 answers it: Put/GetBucketVersioning, ListObjectVersions, and how object
//! operations name a version (`?versionId=`), find it, and answer for delete markers
//! (404 `NoSuchKey` with `x-amz-delete-marker: true` for the latest, 405 `MethodNotAllowed`
//! when a marker is named by id).

use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};

use super::list::{Encoder, MAX_KEYS, max_keys};
use super::{etag, no_such_bucket, no_such_key, require_bucket, timestamp};
use crate::index::records::{MarkerRecord, ObjectRecord, VersionEntry};
use crate::index::{Found, Latest, VersionListEntry, VersionListQuery};
use crate::store::State;
use crate::versioning::{Selector, Versioning, shown};

/// A `versionId` parameter: absent, or a version this store could have issued.
pub(super) fn parse_version(version: Option<&str>) -> S3Result<Option<Selector>> {
    version
        .map(|v| {
            Selector::parse(v)
                .map_err(|_| s3_error!(InvalidArgument, "Invalid version id specified"))
        })
        .transpose()
}

pub(super) fn no_such_version() -> S3Error {
    s3_error!(NoSuchVersion, "The specified version does not exist.")
}

/// An error carrying S3's delete-marker headers.
fn marker_error(mut e: S3Error, marker: &MarkerRecord) -> S3Error {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    headers.insert("x-amz-delete-marker", HeaderValue::from_static("true"));
    if let Ok(v) = HeaderValue::from_str(&shown(marker.version_id.as_deref())) {
        headers.insert("x-amz-version-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(
        std::time::UNIX_EPOCH
            + std::time::Duration::from_millis(u64::try_from(marker.modified_ms).unwrap_or(0)),
    )) {
        headers.insert(http::header::LAST_MODIFIED, v);
    }
    e.set_headers(headers);
    e
}

/// The object version a read names: the latest object (`sel` None) or version `sel`.
pub(super) fn resolve(
    state: &State,
    bucket: &str,
    key: &str,
    sel: Option<&Selector>,
) -> S3Result<ObjectRecord> {
    let missing = |e: S3Error| -> S3Result<ObjectRecord> {
        match state.index.bucket(bucket)? {
            None => Err(no_such_bucket()),
            Some(_) => Err(e),
        }
    };
    match sel {
        None => match state.index.latest(bucket, key)? {
            Latest::Object(rec) => Ok(rec),
            Latest::Marker(m) => Err(marker_error(no_such_key(), &m)),
            Latest::Missing => missing(no_such_key()),
        },
        Some(sel) => match state.index.version(bucket, key, sel)? {
            Some(Found {
                entry: VersionEntry::Object(rec),
                ..
            }) => Ok(rec),
            Some(Found {
                entry: VersionEntry::Marker(m),
                ..
            }) => Err(marker_error(
                s3_error!(
                    MethodNotAllowed,
                    "The specified method is not allowed against this resource."
                ),
                &m,
            )),
            None => missing(no_such_version()),
        },
    }
}

/// The `x-amz-version-id` of a version: its id, or `null` for the null version of a bucket
/// that has (or had) versioning on; none in a bucket that never had it.
pub(super) fn version_header(
    state: &State,
    bucket: &str,
    version_id: Option<&str>,
) -> S3Result<Option<String>> {
    if let Some(id) = version_id {
        return Ok(Some(id.to_owned()));
    }
    let versioning = state
        .index
        .bucket(bucket)?
        .map_or(Versioning::Unversioned, |b| b.versioning);
    Ok((versioning != Versioning::Unversioned).then(|| shown(None)))
}

pub(super) async fn put_bucket_versioning(
    state: &Arc<State>,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let input = &req.input;
    require_bucket(state, &input.bucket)?;
    let config = &input.versioning_configuration;
    if config
        .mfa_delete
        .as_ref()
        .is_some_and(|m| m.as_str() == MFADelete::ENABLED)
    {
        return Err(s3_error!(
            NotImplemented,
            "MFA Delete is not supported by this store"
        ));
    }
    let versioning = match config.status.as_ref().map(BucketVersioningStatus::as_str) {
        Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            ));
        }
    };
    // Once versioned, a bucket never returns to unversioned: only to suspended.
    super::config::update(
        state,
        &req,
        &input.bucket,
        "PutBucketVersioning",
        move |b| {
            b.versioning = versioning;
        },
    )
    .await?;
    Ok(S3Response::new(PutBucketVersioningOutput::default()))
}

pub(super) fn get_bucket_versioning(
    state: &State,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let bucket = require_bucket(state, &req.input.bucket)?;
    Ok(S3Response::new(GetBucketVersioningOutput {
        status: bucket
            .versioning
            .status()
            .map(BucketVersioningStatus::from_static),
        mfa_delete: None,
    }))
}

pub(super) fn list_object_versions(
    state: &State,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let input = req.input;
    require_bucket(state, &input.bucket)?;
    let enc = Encoder::new(input.encoding_type.as_ref())?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone().unwrap_or_default();
    let key_marker = input.key_marker.as_deref().filter(|m| !m.is_empty());
    let version_marker =
        parse_version(input.version_id_marker.as_deref().filter(|m| !m.is_empty()))?;
    if version_marker.is_some() && key_marker.is_none() {
        return Err(s3_error!(
            InvalidArgument,
            "A version-id marker cannot be specified without a key marker."
        ));
    }
    let page = state.index.list_versions(&VersionListQuery {
        bucket: &input.bucket,
        prefix: &prefix,
        delimiter: &delimiter,
        key_marker,
        version_marker: version_marker.as_ref(),
        max: max_keys(input.max_keys)?,
    })?;
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    let mut prefixes = Vec::new();
    for entry in &page.entries {
        match entry {
            VersionListEntry::Version {
                key,
                entry: VersionEntry::Object(rec),
                latest,
            } => versions.push(ObjectVersion {
                key: Some(enc.apply(key)),
                e_tag: Some(etag(&rec.etag)),
                is_latest: Some(*latest),
                last_modified: Some(timestamp(rec.modified_ms)),
                owner: Some(state.users.owner(&rec.owner)),
                size: i64::try_from(rec.size).ok(),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                version_id: Some(shown(rec.version_id.as_deref())),
                ..Default::default()
            }),
            VersionListEntry::Version {
                key,
                entry: VersionEntry::Marker(m),
                latest,
            } => markers.push(DeleteMarkerEntry {
                is_latest: Some(*latest),
                key: Some(enc.apply(key)),
                last_modified: Some(timestamp(m.modified_ms)),
                owner: Some(state.users.owner(&m.owner)),
                version_id: Some(shown(m.version_id.as_deref())),
            }),
            VersionListEntry::Prefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(enc.apply(p)),
            }),
        }
    }
    let (next_key, next_version) = match (page.truncated, page.entries.last()) {
        (true, Some(VersionListEntry::Version { key, entry, .. })) => {
            (Some(enc.apply(key)), Some(shown(entry.version_id())))
        }
        (true, Some(VersionListEntry::Prefix(p))) => (Some(enc.apply(p)), None),
        _ => (None, None),
    };
    Ok(S3Response::new(ListObjectVersionsOutput {
        common_prefixes: Some(prefixes),
        delete_markers: Some(markers),
        delimiter: enc.opt(input.delimiter.as_deref().filter(|d| !d.is_empty())),
        encoding_type: enc.encoding_type(),
        is_truncated: Some(page.truncated),
        key_marker: Some(enc.apply(key_marker.unwrap_or(""))),
        max_keys: Some(input.max_keys.unwrap_or(MAX_KEYS).min(MAX_KEYS)),
        name: Some(input.bucket),
        next_key_marker: next_key,
        next_version_id_marker: next_version,
        prefix: Some(enc.apply(&prefix)),
        version_id_marker: input.version_id_marker,
        versions: Some(versions),
        ..Default::default()
    }))
}
