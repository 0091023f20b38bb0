//! Errors of the store's public API, and the glue that turns internal failures into S3 errors.

use s3s::{S3Error, S3ErrorCode};

/// Why opening or serving the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The configuration is unusable (names the field and the conflict).
    #[error("invalid origin config: {0}")]
    Config(String),
    /// A file system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the store was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The metadata database failed.
    #[error("metadata database: {0}")]
    Db(#[from] redb::Error),
    /// The metadata database holds a record the store cannot read.
    #[error("corrupt metadata record: {0}")]
    Corrupt(String),
    /// `ensure_bucket` named an unknown user.
    #[error("unknown user id {0:?}")]
    UnknownUser(String),
    /// `ensure_bucket` was given a name S3 does not allow.
    #[error("invalid bucket name {0:?}")]
    InvalidBucketName(String),
    /// The bucket exists and belongs to another user.
    #[error("bucket {0:?} is owned by another user")]
    BucketOwnedByOther(String),
}

impl StoreError {
    /// Wraps an I/O error with what the store was doing.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// HTTP status a caller should answer with when this error reaches a request.
    #[must_use]
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::Config(_) | Self::UnknownUser(_) | Self::InvalidBucketName(_) => {
                http::StatusCode::BAD_REQUEST
            }
            Self::BucketOwnedByOther(_) => http::StatusCode::CONFLICT,
            Self::Io { .. } | Self::Db(_) | Self::Corrupt(_) => {
                http::StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// Whether retrying the same call may succeed (transient I/O or database trouble).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Io { .. } | Self::Db(_))
    }
}

macro_rules! impl_from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                Self::Db(e.into())
            }
        }
    )*};
}
impl_from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<StoreError> for S3Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidBucketName(_) => {
                S3Error::with_message(S3ErrorCode::InvalidBucketName, e.to_string())
            }
            other => {
                tracing::error!(error = %other, "store failure");
                S3Error::with_message(
                    S3ErrorCode::InternalError,
                    "We encountered an internal error. Please try again.",
                )
            }
        }
    }
}

/// Logs an internal failure and returns the opaque S3 `InternalError`.
pub(crate) fn internal(context: &str, e: impl std::fmt::Display) -> S3Error {
    tracing::error!(error = %e, "{context}");
    S3Error::with_message(
        S3ErrorCode::InternalError,
        "We encountered an internal error. Please try again.",
    )
}
