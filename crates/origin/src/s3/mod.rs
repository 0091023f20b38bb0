//! The S3 operations, one module per family; this file wires them into the s3s trait and
//! holds the helpers they share. Operations not implemented here answer 501 NotImplemented
//! (s3s's default).

mod acl;
mod bucket;
mod conditions;
mod config;
mod copy_range;
mod delete;
mod lifecycle;
mod list;
mod logging;
mod multipart;
mod object;
mod repeated_completion;
mod versions;

use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3, S3Error, S3Request, S3Response, S3Result, s3_error};

use crate::error::StoreError;
use crate::storage::WriteError;
use crate::store::State;
use crate::users::User;

/// The s3s trait implementation.
pub struct Backend {
    state: Arc<State>,
}

impl Backend {
    pub(crate) fn new(state: Arc<State>) -> Backend {
        Backend { state }
    }
}

/// The signed-in user of a request (None: anonymous).
fn caller<T>(state: &State, req: &S3Request<T>) -> Option<Arc<User>> {
    state.users.caller(req.credentials.as_ref())
}

/// Runs blocking index work (writes fsync) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> S3Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(S3Error::from),
        Err(e) => Err(crate::error::internal("blocking task failed", e)),
    }
}

fn timestamp(ms: i64) -> Timestamp {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

fn unix_secs(ts: &Timestamp) -> i64 {
    time::OffsetDateTime::from(ts.clone()).unix_timestamp()
}

fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

fn no_such_bucket() -> S3Error {
    s3_error!(NoSuchBucket, "The specified bucket does not exist")
}

fn no_such_key() -> S3Error {
    s3_error!(NoSuchKey, "The specified key does not exist.")
}

/// The bucket must exist.
fn require_bucket(state: &State, bucket: &str) -> S3Result<crate::index::records::BucketRecord> {
    state.index.bucket(bucket)?.ok_or_else(no_such_bucket)
}

/// The S3 answer to a guarded change of a record.
fn applied(outcome: crate::index::Applied) -> S3Result<()> {
    use crate::index::Applied;
    match outcome {
        Applied::Done => Ok(()),
        Applied::NoSuchBucket => Err(no_such_bucket()),
        Applied::NoSuchObject => Err(no_such_key()),
        Applied::NoSuchVersion => Err(versions::no_such_version()),
        Applied::DeleteMarker => Err(s3_error!(
            MethodNotAllowed,
            "The specified method is not allowed against this resource."
        )),
        Applied::Refused => Err(s3_error!(AccessDenied, "Access Denied")),
    }
}

/// Maps a failed body write to the S3 error the client caused (or an internal one).
fn body_error(e: WriteError) -> S3Error {
    match e {
        WriteError::Io(e) => crate::error::internal("writing body", e),
        WriteError::Body(e) => {
            let msg = e.to_string();
            if msg.contains("Sha256Mismatch") {
                let mut e = S3Error::with_message(
                    s3s::S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                );
                e.set_status_code(http::StatusCode::BAD_REQUEST);
                e
            } else if msg.contains("SignatureMismatch") {
                s3_error!(
                    SignatureDoesNotMatch,
                    "The chunk signature does not match the signature we calculated."
                )
            } else {
                s3_error!(
                    IncompleteBody,
                    "You did not provide the number of bytes specified by the Content-Length HTTP header."
                )
            }
        }
    }
}

/// Decodes a `Content-MD5` header.
fn content_md5(value: Option<&str>) -> S3Result<Option<[u8; 16]>> {
    use base64::Engine as _;
    let Some(value) = value else { return Ok(None) };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid."))?;
    let digest: [u8; 16] = bytes
        .try_into()
        .map_err(|_| s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid."))?;
    Ok(Some(digest))
}

#[async_trait::async_trait]
impl S3 for Backend {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        bucket::list_buckets(&self.state, req)
    }
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        bucket::create_bucket(&self.state, req).await
    }
    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        bucket::head_bucket(&self.state, req)
    }
    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        bucket::delete_bucket(&self.state, req).await
    }
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        bucket::get_bucket_location(&self.state, req)
    }
    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        versions::get_bucket_versioning(&self.state, req)
    }
    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        versions::put_bucket_versioning(&self.state, req).await
    }
    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        lifecycle::put_bucket_lifecycle_configuration(&self.state, req).await
    }
    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        lifecycle::get_bucket_lifecycle_configuration(&self.state, req)
    }
    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        lifecycle::delete_bucket_lifecycle(&self.state, req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        object::put_object(&self.state, req).await
    }
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        object::get_object(&self.state, req).await
    }
    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        object::head_object(&self.state, req)
    }
    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        delete::delete_object(&self.state, req).await
    }
    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        delete::delete_objects(&self.state, req).await
    }
    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        object::copy_object(&self.state, req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        list::list_objects(&self.state, req)
    }
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        list::list_objects_v2(&self.state, req)
    }
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        versions::list_object_versions(&self.state, req)
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create(&self.state, req).await
    }
    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(&self.state, req).await
    }
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        multipart::upload_part_copy(&self.state, req).await
    }
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete(&self.state, req).await
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort(&self.state, req).await
    }
    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(&self.state, req)
    }
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_uploads(&self.state, req)
    }

    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        acl::get_object_acl(&self.state, req)
    }
    async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        acl::put_object_acl(&self.state, req).await
    }
    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        acl::get_bucket_acl(&self.state, req)
    }
    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        acl::put_bucket_acl(&self.state, req).await
    }

    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        config::put_bucket_policy(&self.state, req).await
    }
    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        config::get_bucket_policy(&self.state, req)
    }
    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        config::delete_bucket_policy(&self.state, req).await
    }
    async fn put_bucket_logging(
        &self,
        req: S3Request<PutBucketLoggingInput>,
    ) -> S3Result<S3Response<PutBucketLoggingOutput>> {
        logging::put_bucket_logging(&self.state, req).await
    }
    async fn get_bucket_logging(
        &self,
        req: S3Request<GetBucketLoggingInput>,
    ) -> S3Result<S3Response<GetBucketLoggingOutput>> {
        logging::get_bucket_logging(&self.state, req)
    }
    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        config::put_bucket_cors(&self.state, req).await
    }
    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        config::get_bucket_cors(&self.state, req)
    }
    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        config::delete_bucket_cors(&self.state, req).await
    }
}
