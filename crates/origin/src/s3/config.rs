//! Bucket configuration documents: the bucket policy and the CORS rules.

use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{applied, blocking, caller, require_bucket};
use crate::access::Recheck;
use crate::cors::CorsRule;
use crate::index::records::BucketRecord;
use crate::policy::Policy;
use crate::store::State;

/// Applies `change` to the bucket's record if operation `op` by the caller is still allowed
/// against the record as it is in the write transaction.
pub(super) async fn update<T>(
    state: &Arc<State>,
    req: &S3Request<T>,
    bucket: &str,
    op: &str,
    change: impl FnOnce(&mut BucketRecord) + Send + 'static,
) -> S3Result<()> {
    let st = state.clone();
    let name = bucket.to_owned();
    let check = Recheck::new(caller(state, req).as_deref(), bucket, op);
    applied(
        blocking(move || {
            st.index
                .update_bucket(&name, |rec| check.allows(rec, None, None), change)
        })
        .await?,
    )
}

pub(super) async fn put_bucket_policy(
    state: &Arc<State>,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    let input = &req.input;
    require_bucket(state, &input.bucket)?;
    Policy::parse(&input.policy, &input.bucket).map_err(|e| s3_error!(MalformedPolicy, "{e}"))?;
    let policy = input.policy.clone();
    update(state, &req, &input.bucket, "PutBucketPolicy", move |b| {
        b.policy = Some(policy);
    })
    .await?;
    Ok(S3Response::with_status(
        PutBucketPolicyOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) fn get_bucket_policy(
    state: &State,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    let bucket = require_bucket(state, &req.input.bucket)?;
    match bucket.policy {
        Some(policy) => Ok(S3Response::new(GetBucketPolicyOutput {
            policy: Some(policy),
        })),
        None => Err(s3_error!(
            NoSuchBucketPolicy,
            "The bucket policy does not exist"
        )),
    }
}

pub(super) async fn delete_bucket_policy(
    state: &Arc<State>,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    update(state, &req, &req.input.bucket, "DeleteBucketPolicy", |b| {
        b.policy = None;
    })
    .await?;
    Ok(S3Response::with_status(
        DeleteBucketPolicyOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) async fn put_bucket_cors(
    state: &Arc<State>,
    req: S3Request<PutBucketCorsInput>,
) -> S3Result<S3Response<PutBucketCorsOutput>> {
    let input = &req.input;
    require_bucket(state, &input.bucket)?;
    let rules = input.cors_configuration.cors_rules.clone();
    if rules.is_empty() || rules.len() > 100 {
        return Err(s3_error!(
            MalformedXML,
            "A CORS configuration needs between 1 and 100 CORSRule elements"
        ));
    }
    let rules = rules
        .into_iter()
        .map(CorsRule::from_dto)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| s3_error!(InvalidRequest, "{e}"))?;
    update(state, &req, &input.bucket, "PutBucketCors", move |b| {
        b.cors = Some(rules);
    })
    .await?;
    Ok(S3Response::new(PutBucketCorsOutput::default()))
}

pub(super) fn get_bucket_cors(
    state: &State,
    req: S3Request<GetBucketCorsInput>,
) -> S3Result<S3Response<GetBucketCorsOutput>> {
    let bucket = require_bucket(state, &req.input.bucket)?;
    match bucket.cors {
        Some(rules) => Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(rules.iter().map(CorsRule::to_dto).collect()),
        })),
        None => Err(s3_error!(
            NoSuchCORSConfiguration,
            "The CORS configuration does not exist"
        )),
    }
}

pub(super) async fn delete_bucket_cors(
    state: &Arc<State>,
    req: S3Request<DeleteBucketCorsInput>,
) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
    update(state, &req, &req.input.bucket, "DeleteBucketCors", |b| {
        b.cors = None;
    })
    .await?;
    Ok(S3Response::with_status(
        DeleteBucketCorsOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}
