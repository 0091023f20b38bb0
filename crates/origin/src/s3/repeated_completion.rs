//! A CompleteMultipartUpload of an upload that was completed lately, with the same parts,
//! while the object it made is still the key's current version: answered as the first
//! completion was (as S3 does), with the same version id, rather than `NoSuchUpload`. It never
//! writes, so a repeat in a versioned bucket makes no second version.

use md5::{Digest, Md5};
use s3s::dto::*;

use super::etag;
use crate::store::State;

/// The ETag a completion with `parts` (as the client lists them) makes.
fn multipart_etag(parts: &[CompletedPart]) -> Option<String> {
    let mut md5s = Md5::new();
    for part in parts {
        let tag = part.e_tag.as_ref()?;
        md5s.update(hex::decode(tag.value().trim_matches('"')).ok()?);
    }
    Some(format!("{}-{}", hex::encode(md5s.finalize()), parts.len()))
}

/// The answer to a repeated completion, if `input` is one.
pub(super) fn answer(
    state: &State,
    input: &CompleteMultipartUploadInput,
) -> Option<CompleteMultipartUploadOutput> {
    let requested = input
        .multipart_upload
        .as_ref()
        .and_then(|m| m.parts.as_deref())
        .unwrap_or_default();
    answer_for(
        state,
        &input.upload_id,
        &input.bucket,
        &input.key,
        &multipart_etag(requested)?,
    )
}

/// The answer to a completion of `upload_id` into `bucket`/`key` whose parts make ETag
/// `etag`, if that upload completed lately with those parts and what it made is still the
/// key's current version.
pub(super) fn answer_for(
    state: &State,
    upload_id: &str,
    bucket: &str,
    key: &str,
    etag_value: &str,
) -> Option<CompleteMultipartUploadOutput> {
    let made = state.completed.made_by(upload_id, bucket, key)?;
    if made.etag != etag_value {
        return None;
    }
    let current = state.index.object(bucket, key).ok()??;
    (current.etag == made.etag && current.version_id == made.version_id).then(|| {
        CompleteMultipartUploadOutput {
            location: Some(format!("/{bucket}/{key}")),
            e_tag: Some(etag(&made.etag)),
            bucket: Some(bucket.to_owned()),
            key: Some(key.to_owned()),
            version_id: made.version_id,
            ..Default::default()
        }
    })
}
