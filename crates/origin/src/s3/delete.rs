//! DeleteObject and DeleteObjects, with and without version ids. Every key is authorized as a
//! single DeleteObject (or, naming a version, DeleteObjectVersion) would be, inside the write
//! transaction that removes it: a per-key Deny leaves that key (and answers `AccessDenied`
//! for it), a per-prefix Allow lets those keys go. In a versioned bucket a delete without a
//! version id writes a delete marker; one with a version id removes that version for good.

use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::conditions::{etag_matches, precondition_failed};
use super::versions::parse_version;
use super::{blocking, caller, no_such_bucket, require_bucket};
use crate::access::Recheck;
use crate::index::DeleteEffect;
use crate::names::validate_key;
use crate::store::State;
use crate::users::User;
use crate::versioning::{Selector, shown};

/// The most keys one DeleteObjects request may name (as S3).
const MAX_KEYS: usize = 1000;

/// The checks of a delete with and without a version id, re-run inside the transaction.
struct Checks {
    latest: Recheck,
    version: Recheck,
}

impl Checks {
    fn new(caller: Option<&User>, bucket: &str) -> Checks {
        Checks {
            latest: Recheck::new(caller, bucket, "DeleteObject"),
            version: Recheck::new(caller, bucket, "DeleteObjectVersion"),
        }
    }
}

/// Deletes `items` of `bucket` in one transaction; `None` for refused items.
async fn delete(
    state: &Arc<State>,
    bucket: &str,
    items: Vec<(String, Option<Selector>)>,
    owner: String,
    checks: Checks,
) -> S3Result<Vec<Option<DeleteEffect>>> {
    let st = state.clone();
    let b = bucket.to_owned();
    let deletion = blocking(move || {
        let refs: Vec<(&str, Option<Selector>)> =
            items.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        st.index.delete_objects(&b, &refs, &owner, |rec| {
            let mut latest = checks.latest.keys(rec);
            let mut version = checks.version.keys(rec);
            move |key: &str, versioned: bool| {
                if versioned { version(key) } else { latest(key) }
            }
        })
    })
    .await?
    .ok_or_else(no_such_bucket)?;
    state.blobs.remove(deletion.blobs).await;
    Ok(deletion.effects)
}

pub(super) async fn delete_object(
    state: &Arc<State>,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let user = caller(state, &req);
    let checks = Checks::new(user.as_deref(), &req.input.bucket);
    let input = req.input;
    let sel = parse_version(input.version_id.as_deref())?;
    let bucket = require_bucket(state, &input.bucket)?;
    if let Some(cond) = &input.if_match {
        match state.index.object(&input.bucket, &input.key)? {
            Some(rec) if etag_matches(cond, &rec.etag) => {}
            Some(_) => return Err(precondition_failed()),
            None => return Err(super::no_such_key()),
        }
    }
    let owner = user.map_or(bucket.owner, |u| u.id.clone());
    let effects = delete(
        state,
        &input.bucket,
        vec![(input.key, sel.clone())],
        owner,
        checks,
    )
    .await?;
    let output = match effects.into_iter().next().flatten() {
        None => return Err(s3_error!(AccessDenied, "Access Denied")),
        Some(DeleteEffect::Removed) => DeleteObjectOutput::default(),
        Some(DeleteEffect::MarkerCreated(v)) => DeleteObjectOutput {
            delete_marker: Some(true),
            version_id: Some(shown(v.as_deref())),
            ..Default::default()
        },
        Some(DeleteEffect::VersionRemoved { version_id, marker }) => DeleteObjectOutput {
            delete_marker: marker.then_some(true),
            version_id: Some(shown(version_id.as_deref())),
            ..Default::default()
        },
        // Deleting a version that is not there changes nothing, as S3 answers it.
        Some(DeleteEffect::NoSuchVersion) => DeleteObjectOutput {
            version_id: sel.map(|s| s.as_str().to_owned()),
            ..Default::default()
        },
    };
    Ok(S3Response::with_status(
        output,
        http::StatusCode::NO_CONTENT,
    ))
}

fn key_error(key: String, version_id: Option<String>, e: &s3s::S3Error) -> Error {
    Error {
        code: Some(e.code().as_str().to_owned()),
        key: Some(key),
        message: e.message().map(str::to_owned),
        version_id,
    }
}

/// The `<Deleted>` entry of one key.
fn deleted(key: String, asked: Option<&Selector>, effect: DeleteEffect) -> DeletedObject {
    let mut out = DeletedObject {
        key: Some(key),
        version_id: asked.map(|s| s.as_str().to_owned()),
        ..Default::default()
    };
    match effect {
        DeleteEffect::MarkerCreated(v) => {
            out.delete_marker = Some(true);
            out.delete_marker_version_id = Some(shown(v.as_deref()));
        }
        DeleteEffect::VersionRemoved {
            version_id,
            marker: true,
        } => {
            out.delete_marker = Some(true);
            out.delete_marker_version_id = Some(shown(version_id.as_deref()));
        }
        DeleteEffect::Removed
        | DeleteEffect::NoSuchVersion
        | DeleteEffect::VersionRemoved { marker: false, .. } => {}
    }
    out
}

pub(super) async fn delete_objects(
    state: &Arc<State>,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let user = caller(state, &req);
    let checks = Checks::new(user.as_deref(), &req.input.bucket);
    let input = req.input;
    let bucket = require_bucket(state, &input.bucket)?;
    if input.delete.objects.len() > MAX_KEYS {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let mut errors = Vec::new();
    let mut items = Vec::new();
    for obj in input.delete.objects {
        let parsed = validate_key(&obj.key).and_then(|()| parse_version(obj.version_id.as_deref()));
        match parsed {
            Ok(sel) => items.push((obj.key, sel)),
            Err(e) => errors.push(key_error(obj.key, obj.version_id, &e)),
        }
    }
    let owner = user.map_or(bucket.owner, |u| u.id.clone());
    let effects = delete(state, &input.bucket, items.clone(), owner, checks).await?;
    let denied = s3_error!(AccessDenied, "Access Denied");
    let mut done = Vec::new();
    for ((key, sel), effect) in items.into_iter().zip(effects) {
        match effect {
            None => errors.push(key_error(key, sel.map(|s| s.as_str().to_owned()), &denied)),
            Some(effect) if !quiet => done.push(deleted(key, sel.as_ref(), effect)),
            Some(_) => {}
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: (!quiet).then_some(done),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}
