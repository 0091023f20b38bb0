//! Preconditions: `If-Match` / `If-None-Match` / `If-(Un)Modified-Since` on reads (304, 412),
//! on writes (412, checked again inside the commit transaction) and on copy sources.

use http::HeaderMap;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

use super::unix_secs;
use crate::index::records::ObjectRecord;
use crate::index::{EtagMatch, WriteCondition};

pub(super) fn etag_matches(cond: &ETagCondition, current: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(tag) => tag.value() == current,
    }
}

/// The write precondition of `If-Match` / `If-None-Match`.
pub(super) fn write_condition(
    if_match: Option<ETagCondition>,
    if_none_match: Option<ETagCondition>,
) -> WriteCondition {
    let convert = |c: ETagCondition| match c {
        ETagCondition::Any => EtagMatch::Any,
        ETagCondition::ETag(tag) => EtagMatch::Tags(vec![tag.value().to_owned()]),
    };
    WriteCondition {
        if_match: if_match.map(convert),
        if_none_match: if_none_match.map(convert),
    }
}

pub(super) fn precondition_failed() -> S3Error {
    s3_error!(
        PreconditionFailed,
        "At least one of the pre-conditions you specified did not hold"
    )
}

fn http_date(ms: i64) -> String {
    let secs = u64::try_from(ms / 1000).unwrap_or(0);
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// GET/HEAD preconditions (RFC 9110 order, as S3 applies them).
pub(super) struct ReadConditions {
    pub if_match: Option<ETagCondition>,
    pub if_none_match: Option<ETagCondition>,
    pub if_modified_since: Option<Timestamp>,
    pub if_unmodified_since: Option<Timestamp>,
}

impl ReadConditions {
    pub(super) fn check(&self, rec: &ObjectRecord) -> S3Result<()> {
        let modified = rec.modified_ms.div_euclid(1000);
        match &self.if_match {
            Some(cond) if !etag_matches(cond, &rec.etag) => return Err(precondition_failed()),
            Some(_) => {}
            None => {
                if self
                    .if_unmodified_since
                    .as_ref()
                    .is_some_and(|t| modified > unix_secs(t))
                {
                    return Err(precondition_failed());
                }
            }
        }
        let not_modified = match &self.if_none_match {
            Some(cond) => etag_matches(cond, &rec.etag),
            None => self
                .if_modified_since
                .as_ref()
                .is_some_and(|t| modified <= unix_secs(t)),
        };
        if not_modified {
            let mut e = S3Error::new(S3ErrorCode::NotModified);
            let mut headers = HeaderMap::new();
            if let Ok(v) = format!("\"{}\"", rec.etag).parse() {
                headers.insert(http::header::ETAG, v);
            }
            if let Ok(v) = http_date(rec.modified_ms).parse() {
                headers.insert(http::header::LAST_MODIFIED, v);
            }
            e.set_headers(headers);
            return Err(e);
        }
        Ok(())
    }
}

/// Checks the `x-amz-copy-source-if-*` preconditions.
pub(super) fn check_copy_conditions(
    rec: &ObjectRecord,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let modified = rec.modified_ms.div_euclid(1000);
    let ok = if_match.is_none_or(|c| etag_matches(c, &rec.etag))
        && if_none_match.is_none_or(|c| !etag_matches(c, &rec.etag))
        && (if_match.is_some() || if_unmodified_since.is_none_or(|t| modified <= unix_secs(t)))
        && (if_none_match.is_some() || if_modified_since.is_none_or(|t| modified > unix_secs(t)));
    if ok {
        Ok(())
    } else {
        Err(precondition_failed())
    }
}
