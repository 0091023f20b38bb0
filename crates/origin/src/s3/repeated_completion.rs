//! A CompleteMultipartUpload of an upload that was completed lately, with the same parts,
//! while the object it made still stands: answered as the first completion was (as S3
//! does), rather than `NoSuchUpload`.

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
    let remembered = state
        .completed
        .etag_of(&input.upload_id, &input.bucket, &input.key)?;
    if multipart_etag(requested).as_ref() != Some(&remembered) {
        return None;
    }
    let current = state.index.object(&input.bucket, &input.key).ok()??;
    (current.etag == remembered).then(|| CompleteMultipartUploadOutput {
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        e_tag: Some(etag(&remembered)),
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        ..Default::default()
    })
}
