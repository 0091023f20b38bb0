//! DeleteObject and DeleteObjects. Every key is authorized as a single DeleteObject would
//! be, inside the write transaction that removes it: a per-key Deny leaves that key (and
//! answers `AccessDenied` for it), a per-prefix Allow lets those keys go.

use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::conditions::{etag_matches, precondition_failed};
use super::{blocking, caller, no_such_bucket, require_bucket, version_is_null};
use crate::access::Recheck;
use crate::names::validate_key;
use crate::store::State;

/// The most keys one DeleteObjects request may name (as S3).
const MAX_KEYS: usize = 1000;

pub(super) async fn delete_object(
    state: &Arc<State>,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let check = Recheck::new(
        caller(state, &req).as_deref(),
        &req.input.bucket,
        "DeleteObject",
    );
    let input = req.input;
    version_is_null(input.version_id.as_deref())?;
    require_bucket(state, &input.bucket)?;
    if let Some(cond) = &input.if_match {
        match state.index.object(&input.bucket, &input.key)? {
            Some(rec) if etag_matches(cond, &rec.etag) => {}
            Some(_) => return Err(precondition_failed()),
            None => return Err(super::no_such_key()),
        }
    }
    let st = state.clone();
    let (b, k) = (input.bucket.clone(), input.key.clone());
    let deletion = blocking(move || {
        st.index
            .delete_objects(&b, &[k.as_str()], |rec| check.keys(rec))
    })
    .await?
    .ok_or_else(no_such_bucket)?;
    if deletion.refused.first() == Some(&true) {
        return Err(s3_error!(AccessDenied, "Access Denied"));
    }
    state.blobs.remove(deletion.blobs).await;
    Ok(S3Response::with_status(
        DeleteObjectOutput::default(),
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

pub(super) async fn delete_objects(
    state: &Arc<State>,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let check = Recheck::new(
        caller(state, &req).as_deref(),
        &req.input.bucket,
        "DeleteObject",
    );
    let input = req.input;
    require_bucket(state, &input.bucket)?;
    if input.delete.objects.len() > MAX_KEYS {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let mut errors = Vec::new();
    let mut keys = Vec::new();
    for obj in input.delete.objects {
        let refused = validate_key(&obj.key)
            .err()
            .or_else(|| version_is_null(obj.version_id.as_deref()).err());
        match refused {
            Some(e) => errors.push(key_error(obj.key, obj.version_id, &e)),
            None => keys.push(obj.key),
        }
    }
    let st = state.clone();
    let b = input.bucket.clone();
    let to_delete = keys.clone();
    let deletion = blocking(move || {
        let refs: Vec<&str> = to_delete.iter().map(String::as_str).collect();
        st.index.delete_objects(&b, &refs, |rec| check.keys(rec))
    })
    .await?
    .ok_or_else(no_such_bucket)?;
    state.blobs.remove(deletion.blobs).await;
    let denied = s3_error!(AccessDenied, "Access Denied");
    let mut deleted = Vec::new();
    for (key, refused) in keys.into_iter().zip(deletion.refused) {
        if refused {
            errors.push(key_error(key, None, &denied));
        } else if !quiet {
            deleted.push(DeletedObject {
                key: Some(key),
                ..Default::default()
            });
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: (!quiet).then_some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}
