//! ListObjects (V1) and ListObjectsV2 over the index's sorted scan (ListObjectVersions is in
//! `versions`, which shares the encoding helpers here).

use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{etag, require_bucket, timestamp};
use crate::index::{ListEntry, ListPage, ListQuery};
use crate::store::State;
use crate::users::Users;

/// What `encoding-type=url` leaves alone (as S3 does: unreserved characters and `/`).
const KEY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

pub(super) const MAX_KEYS: i32 = 1000;

/// Applies `encoding-type`.
pub(super) struct Encoder {
    url: bool,
}

impl Encoder {
    pub(super) fn new(encoding: Option<&EncodingType>) -> S3Result<Encoder> {
        match encoding.map(EncodingType::as_str) {
            None => Ok(Encoder { url: false }),
            Some("url") => Ok(Encoder { url: true }),
            Some(other) => Err(s3_error!(
                InvalidArgument,
                "Invalid Encoding Method specified in Request: {other}"
            )),
        }
    }

    pub(super) fn apply(&self, s: &str) -> String {
        if self.url {
            utf8_percent_encode(s, KEY_ENCODE).to_string()
        } else {
            s.to_owned()
        }
    }

    pub(super) fn opt(&self, s: Option<&str>) -> Option<String> {
        s.map(|s| self.apply(s))
    }

    pub(super) fn encoding_type(&self) -> Option<EncodingType> {
        self.url
            .then(|| EncodingType::from_static(EncodingType::URL))
    }
}

pub(super) fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must be non-negative")),
        Some(n) => Ok(usize::try_from(n.min(MAX_KEYS)).unwrap_or(0)),
        None => Ok(usize::try_from(MAX_KEYS).unwrap_or(1000)),
    }
}

fn objects(
    page: &ListPage,
    enc: &Encoder,
    users: &Users,
    with_owner: bool,
) -> (Vec<Object>, Vec<CommonPrefix>) {
    let mut contents = Vec::new();
    let mut prefixes = Vec::new();
    for entry in &page.entries {
        match entry {
            ListEntry::Object(key, rec) => contents.push(Object {
                key: Some(enc.apply(key)),
                e_tag: Some(etag(&rec.etag)),
                last_modified: Some(timestamp(rec.modified_ms)),
                size: i64::try_from(rec.size).ok(),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
                owner: with_owner.then(|| users.owner(&rec.owner)),
                ..Default::default()
            }),
            ListEntry::Prefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(enc.apply(p)),
            }),
        }
    }
    (contents, prefixes)
}

fn last_name(page: &ListPage) -> Option<String> {
    page.entries.last().map(|e| e.name().to_owned())
}

pub(super) fn list_objects(
    state: &State,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = req.input;
    require_bucket(state, &input.bucket)?;
    let enc = Encoder::new(input.encoding_type.as_ref())?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone().unwrap_or_default();
    let page = state.index.list(&ListQuery {
        bucket: &input.bucket,
        prefix: &prefix,
        delimiter: &delimiter,
        after: input.marker.as_deref().filter(|m| !m.is_empty()),
        max: max_keys(input.max_keys)?,
    })?;
    let (contents, prefixes) = objects(&page, &enc, &state.users, true);
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        // As S3 (and what SDKs decode): V1 leaves its own `Prefix` element unencoded.
        prefix: Some(prefix),
        marker: Some(enc.apply(input.marker.as_deref().unwrap_or(""))),
        max_keys: Some(input.max_keys.unwrap_or(MAX_KEYS).min(MAX_KEYS)),
        is_truncated: Some(page.truncated),
        next_marker: if page.truncated {
            enc.opt(last_name(&page).as_deref())
        } else {
            None
        },
        contents: Some(contents),
        common_prefixes: Some(prefixes),
        delimiter: enc.opt(input.delimiter.as_deref().filter(|d| !d.is_empty())),
        encoding_type: enc.encoding_type(),
        ..Default::default()
    }))
}

fn encode_token(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn decode_token(token: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

pub(super) fn list_objects_v2(
    state: &State,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = req.input;
    require_bucket(state, &input.bucket)?;
    let enc = Encoder::new(input.encoding_type.as_ref())?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone().unwrap_or_default();
    let token = input
        .continuation_token
        .as_deref()
        .map(decode_token)
        .transpose()?;
    let after = match (
        token.as_deref(),
        input.start_after.as_deref().filter(|s| !s.is_empty()),
    ) {
        (Some(t), Some(s)) => Some(if t > s { t } else { s }),
        (t, s) => t.or(s),
    };
    let page = state.index.list(&ListQuery {
        bucket: &input.bucket,
        prefix: &prefix,
        delimiter: &delimiter,
        after,
        max: max_keys(input.max_keys)?,
    })?;
    let (contents, prefixes) = objects(
        &page,
        &enc,
        &state.users,
        input.fetch_owner.unwrap_or(false),
    );
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(enc.apply(&prefix)),
        max_keys: Some(input.max_keys.unwrap_or(MAX_KEYS).min(MAX_KEYS)),
        key_count: i32::try_from(page.entries.len()).ok(),
        continuation_token: input.continuation_token,
        is_truncated: Some(page.truncated),
        next_continuation_token: if page.truncated {
            last_name(&page).map(|k| encode_token(&k))
        } else {
            None
        },
        contents: Some(contents),
        common_prefixes: Some(prefixes),
        delimiter: enc.opt(input.delimiter.as_deref().filter(|d| !d.is_empty())),
        encoding_type: enc.encoding_type(),
        start_after: enc.opt(input.start_after.as_deref()),
        ..Default::default()
    }))
}
