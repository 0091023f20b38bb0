//! Put/GetBucketLogging: where a bucket's access log goes. Only the bucket's owner may read or
//! change it, and the target bucket must exist and belong to that owner
//! (`InvalidTargetBucketForLogging` otherwise, as S3 answers).

use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};

use super::{applied, blocking, caller, require_bucket};
use crate::index::Applied;
use crate::store::State;

/// Longest target prefix accepted (S3 keys are at most 1024 bytes; the date and unique id
/// take 37 of them).
const MAX_PREFIX: usize = 512;

fn not_owner() -> S3Error {
    s3_error!(AccessDenied, "Access Denied")
}

fn invalid_target(msg: &str) -> S3Error {
    let mut e = S3Error::with_message(
        s3s::S3ErrorCode::Custom("InvalidTargetBucketForLogging".into()),
        msg.to_owned(),
    );
    e.set_status_code(http::StatusCode::BAD_REQUEST);
    e
}

pub(super) async fn put_bucket_logging(
    state: &Arc<State>,
    req: S3Request<PutBucketLoggingInput>,
) -> S3Result<S3Response<PutBucketLoggingOutput>> {
    let user = caller(state, &req).ok_or_else(not_owner)?;
    let input = req.input;
    let source = require_bucket(state, &input.bucket)?;
    if source.owner != user.id {
        return Err(not_owner());
    }
    let target = input
        .bucket_logging_status
        .logging_enabled
        .map(|l| (l.target_bucket, l.target_prefix));
    if let Some((bucket, prefix)) = &target {
        if prefix.len() > MAX_PREFIX {
            return Err(s3_error!(
                InvalidArgument,
                "The target prefix must be at most {MAX_PREFIX} bytes long"
            ));
        }
        match state.index.bucket(bucket)? {
            None => {
                return Err(invalid_target(
                    "The target bucket for logging does not exist",
                ));
            }
            Some(t) if t.owner != user.id => {
                return Err(invalid_target(
                    "The owner for the bucket to be logged and the target bucket must be the same.",
                ));
            }
            Some(_) => {}
        }
    }
    let st = state.clone();
    let name = input.bucket.clone();
    let owner = user.id.clone();
    let target2 = target.clone();
    let outcome = blocking(move || {
        st.index.set_logging(
            &name,
            target2.as_ref().map(|(b, p)| (b.as_str(), p.as_str())),
            |src, tgt| {
                src.owner == owner && (target2.is_none() || tgt.is_some_and(|t| t.owner == owner))
            },
        )
    })
    .await?;
    if outcome == Applied::Refused && target.is_some() {
        return Err(invalid_target(
            "The target bucket for logging does not exist or is not yours",
        ));
    }
    applied(outcome)?;
    state
        .logs
        .configure(&input.bucket, state.index.logging(&input.bucket)?);
    Ok(S3Response::new(PutBucketLoggingOutput::default()))
}

pub(super) fn get_bucket_logging(
    state: &State,
    req: S3Request<GetBucketLoggingInput>,
) -> S3Result<S3Response<GetBucketLoggingOutput>> {
    let user = caller(state, &req).ok_or_else(not_owner)?;
    let source = require_bucket(state, &req.input.bucket)?;
    if source.owner != user.id {
        return Err(not_owner());
    }
    let logging_enabled = state
        .index
        .logging(&req.input.bucket)?
        .map(|l| LoggingEnabled {
            target_bucket: l.target_bucket,
            target_prefix: l.target_prefix,
            target_grants: None,
            target_object_key_format: None,
        });
    Ok(S3Response::new(GetBucketLoggingOutput { logging_enabled }))
}
