//! What the index's writes report (outcomes, guarded changes) and the preconditions they check.

use super::records::ObjectRecord;

/// An ETag precondition of a write (`If-Match` / `If-None-Match`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagMatch {
    /// `*`: any current object.
    Any,
    /// A list of ETags (without quotes).
    Tags(Vec<String>),
}

impl EtagMatch {
    fn matches(&self, current: Option<&ObjectRecord>) -> bool {
        match (self, current) {
            (_, None) => false,
            (Self::Any, Some(_)) => true,
            (Self::Tags(tags), Some(rec)) => tags.contains(&rec.etag),
        }
    }
}

/// Preconditions a write must meet against the object it replaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteCondition {
    /// `If-Match`: the current object must exist and match.
    pub if_match: Option<EtagMatch>,
    /// `If-None-Match`: the current object must not match (with `*`: must not exist).
    pub if_none_match: Option<EtagMatch>,
}

impl WriteCondition {
    /// Whether a write may replace `current`.
    #[must_use]
    pub fn holds(&self, current: Option<&ObjectRecord>) -> bool {
        if let Some(m) = &self.if_match
            && !m.matches(current)
        {
            return false;
        }
        if let Some(m) = &self.if_none_match
            && m.matches(current)
        {
            return false;
        }
        true
    }
}

/// What a write of an object did.
#[derive(Debug)]
pub enum PutOutcome {
    /// Committed; `replaced` is the body file of the object it overwrote.
    Stored {
        /// Body file no version references any more, to delete now.
        replaced: Option<String>,
        /// The new version's id (`None`: null).
        version_id: Option<String>,
    },
    /// The bucket does not exist.
    NoSuchBucket,
    /// The precondition did not hold; nothing changed.
    PreconditionFailed,
    /// The caller may not write into the bucket as it now is; nothing changed.
    Refused,
}

/// What completing a multipart upload did.
#[derive(Debug)]
pub enum CompleteOutcome {
    /// Committed; the listed body files are no longer referenced.
    Stored {
        /// Replaced object body and the part files, to delete now.
        unreferenced: Vec<String>,
        /// The new version's id (`None`: null).
        version_id: Option<String>,
    },
    /// The upload does not exist (completed or aborted meanwhile).
    NoSuchUpload,
    /// The bucket does not exist.
    NoSuchBucket,
    /// The precondition did not hold; nothing changed.
    PreconditionFailed,
    /// The caller may not write into the bucket as it now is; nothing changed.
    Refused,
}

/// What deleting a bucket did.
#[derive(Debug, PartialEq, Eq)]
pub enum DeleteBucketOutcome {
    /// Gone, with the uploads it still had.
    Deleted {
        /// Part body files of those uploads, to delete now.
        unreferenced: Vec<String>,
    },
    /// There was no such bucket.
    NotFound,
    /// It still holds objects.
    NotEmpty,
    /// The caller may not delete the bucket as it now is.
    Refused,
}

/// What a guarded change of a bucket's or an object's record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Changed.
    Done,
    /// The bucket does not exist.
    NoSuchBucket,
    /// The object does not exist.
    NoSuchObject,
    /// The version named does not exist.
    NoSuchVersion,
    /// The version named is a delete marker.
    DeleteMarker,
    /// The guard refused the change against the records as they now are; nothing changed.
    Refused,
}

/// What deleting several objects did.
#[derive(Debug, Default)]
pub struct Deletion {
    /// Per item given, what was done (`None`: the guard refused it and it was left alone).
    pub effects: Vec<Option<super::DeleteEffect>>,
    /// Body files no version references any more, to delete now.
    pub blobs: Vec<String>,
}
