//! Bucket operations: Create/Head/Delete/List, GetBucketLocation.

use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::acl::{GrantHeaders, acl_from_headers};
use super::{blocking, caller, no_such_bucket, require_bucket, timestamp};
use crate::access::Recheck;
use crate::index::DeleteBucketOutcome;
use crate::index::records::BucketRecord;
use crate::store::{State, now_ms};

pub(super) fn list_buckets(
    state: &State,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let user = caller(state, &req).ok_or_else(|| s3_error!(AccessDenied, "Access Denied"))?;
    // A limited key sees only the buckets it was granted.
    let limited = state.users.limited_caller(req.credentials.as_ref());
    let input = req.input;
    let prefix = input.prefix.unwrap_or_default();
    // The continuation token is the last bucket name of the previous page.
    let after = input.continuation_token.unwrap_or_default();
    let max = match input.max_buckets {
        Some(n) if !(1..=10_000).contains(&n) => {
            return Err(s3_error!(
                InvalidArgument,
                "max-buckets must be between 1 and 10000"
            ));
        }
        Some(n) => usize::try_from(n).unwrap_or(10_000),
        None => usize::MAX,
    };
    let mut buckets: Vec<Bucket> = state
        .index
        .buckets()?
        .into_iter()
        .filter(|(name, rec)| {
            rec.owner == user.id
                && limited.as_ref().is_none_or(|l| l.shows(name))
                && name.starts_with(&prefix)
                && name.as_str() > after.as_str()
        })
        .take(max.saturating_add(1))
        .map(|(name, rec)| Bucket {
            bucket_region: Some(state.region.clone()),
            creation_date: Some(timestamp(rec.created_ms)),
            name: Some(name),
        })
        .collect();
    let continuation_token = if buckets.len() > max {
        buckets.truncate(max);
        buckets.last().and_then(|b| b.name.clone())
    } else {
        None
    };
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        continuation_token,
        owner: Some(state.users.owner(&user.id)),
        prefix: (!prefix.is_empty()).then_some(prefix),
    }))
}

pub(super) async fn create_bucket(
    state: &Arc<State>,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let user = caller(state, &req).ok_or_else(|| s3_error!(AccessDenied, "Access Denied"))?;
    let input = req.input;
    if let Some(constraint) = input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
    {
        let c = constraint.as_str();
        if !(c.is_empty() || c == state.region || (c == "US" && state.region == "us-east-1")) {
            return Err(s3_error!(
                IllegalLocationConstraintException,
                "The {c} location constraint is incompatible for the region specific endpoint this request was sent to."
            ));
        }
    }
    let acl = acl_from_headers(
        &state.users,
        input.acl.as_ref().map(BucketCannedACL::as_str),
        &GrantHeaders {
            full_control: input.grant_full_control.as_deref(),
            read: input.grant_read.as_deref(),
            read_acp: input.grant_read_acp.as_deref(),
            write: input.grant_write.as_deref(),
            write_acp: input.grant_write_acp.as_deref(),
        },
    )?;
    let acl_requested = acl.clone();
    let record = BucketRecord {
        owner: user.id.clone(),
        created_ms: now_ms(),
        acl,
        policy: None,
        cors: None,
        versioning: crate::versioning::Versioning::Unversioned,
        lifecycle: None,
    };
    let st = state.clone();
    let name = input.bucket.clone();
    let (current, created) = blocking(move || st.index.create_bucket(&name, &record)).await?;
    // Re-creating a bucket one already owns succeeds, as in S3's us-east-1, and changes
    // nothing: its objects, ACL and configuration stay as they are. Asking for another ACL
    // than the bucket has is refused rather than silently ignored (as Ceph RGW does).
    if !created && (current.owner != user.id || current.acl != acl_requested) {
        return Err(s3_error!(
            BucketAlreadyExists,
            "The requested bucket name is not available."
        ));
    }
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{}", input.bucket)),
    }))
}

pub(super) fn head_bucket(
    state: &State,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    require_bucket(state, &req.input.bucket)?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(state.region.clone()),
        ..Default::default()
    }))
}

pub(super) async fn delete_bucket(
    state: &Arc<State>,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let st = state.clone();
    let name = req.input.bucket.clone();
    let check = Recheck::new(caller(state, &req).as_deref(), &name, "DeleteBucket");
    match blocking(move || {
        st.index
            .delete_bucket(&name, |b| check.allows(b, None, None))
    })
    .await?
    {
        DeleteBucketOutcome::Deleted { unreferenced } => {
            state.blobs.remove(unreferenced).await;
            Ok(S3Response::new(DeleteBucketOutput {}))
        }
        DeleteBucketOutcome::NotFound => Err(no_such_bucket()),
        DeleteBucketOutcome::Refused => Err(s3_error!(AccessDenied, "Access Denied")),
        DeleteBucketOutcome::NotEmpty => Err(s3_error!(
            BucketNotEmpty,
            "The bucket you tried to delete is not empty"
        )),
    }
}

pub(super) fn get_bucket_location(
    state: &State,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    require_bucket(state, &req.input.bucket)?;
    // S3 answers an empty LocationConstraint for us-east-1.
    let location_constraint =
        (state.region != "us-east-1").then(|| BucketLocationConstraint::from(state.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint,
    }))
}
