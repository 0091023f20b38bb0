//! Put/Get/DeleteBucketLifecycle(Configuration): rules are validated as S3 does and stored
//! with the bucket; the background worker (`crate::lifecycle`) applies them.

use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::require_bucket;
use crate::lifecycle::{Rule, RuleError, RuleErrorKind};
use crate::store::State;

fn rule_error(e: RuleError) -> S3Error {
    let code = match e.kind {
        RuleErrorKind::MalformedXml => S3ErrorCode::MalformedXML,
        RuleErrorKind::InvalidArgument => S3ErrorCode::InvalidArgument,
        RuleErrorKind::InvalidRequest => S3ErrorCode::InvalidRequest,
        RuleErrorKind::NotImplemented => S3ErrorCode::NotImplemented,
    };
    S3Error::with_message(code, e.message)
}

pub(super) async fn put_bucket_lifecycle_configuration(
    state: &Arc<State>,
    req: S3Request<PutBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
    let input = &req.input;
    require_bucket(state, &input.bucket)?;
    let Some(config) = &input.lifecycle_configuration else {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    };
    let rules = Rule::from_config(config).map_err(rule_error)?;
    super::config::update(
        state,
        &req,
        &input.bucket,
        "PutBucketLifecycleConfiguration",
        move |b| b.lifecycle = Some(rules),
    )
    .await?;
    Ok(S3Response::new(
        PutBucketLifecycleConfigurationOutput::default(),
    ))
}

pub(super) fn get_bucket_lifecycle_configuration(
    state: &State,
    req: S3Request<GetBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
    let bucket = require_bucket(state, &req.input.bucket)?;
    match bucket.lifecycle {
        Some(rules) => Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(rules.iter().map(Rule::to_dto).collect()),
            transition_default_minimum_object_size: None,
        })),
        None => Err(s3_error!(
            NoSuchLifecycleConfiguration,
            "The lifecycle configuration does not exist"
        )),
    }
}

pub(super) async fn delete_bucket_lifecycle(
    state: &Arc<State>,
    req: S3Request<DeleteBucketLifecycleInput>,
) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
    super::config::update(
        state,
        &req,
        &req.input.bucket,
        "DeleteBucketLifecycle",
        |b| b.lifecycle = None,
    )
    .await?;
    Ok(S3Response::with_status(
        DeleteBucketLifecycleOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}
