//! Where the ACME state lives: the account, the certificates, the pending challenge answers and
//! the order leases, as small objects under string keys. A directory serves a single PoP; the
//! origin's private `edge-acme` bucket serves a fleet, every PoP reading what any PoP wrote.

mod dir;
mod origin;
mod s3_xml;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

pub use dir::DirStore;
pub use origin::OriginStore;

/// The bucket of the origin that holds the fleet's ACME state.
pub use crate::config::ACME_BUCKET as BUCKET;

/// A boxed future, so the store can be a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub body: Bytes,
    /// An opaque version tag (the S3 ETag without quotes); changes whenever the body does.
    pub etag: String,
}

/// One key of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub etag: String,
}

/// The precondition of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Unconditionally.
    Always,
    /// Only when the key does not exist (`If-None-Match: *`).
    IfAbsent,
    /// Only when the current version is this one (`If-Match`).
    IfMatch(String),
}

/// Why the store could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A key the store will not map to a file or object.
    #[error("invalid store key `{0}`")]
    Key(String),
    /// The local file system failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The origin answered with an unexpected status.
    #[error("{op} {key}: HTTP {status}: {message}")]
    Status {
        op: &'static str,
        key: String,
        status: u16,
        message: String,
    },
    /// The state bucket exists but belongs to another user of the origin: it is never
    /// written to (it would hand the fleet's private keys to that user).
    #[error(
        "bucket `{0}` exists but is not owned by the edge's origin user; refusing to keep ACME state in it"
    )]
    NotOwned(String),
    /// The origin could not be reached or timed out.
    #[error("{op} {key}: {reason}")]
    Transport {
        op: &'static str,
        key: String,
        reason: String,
    },
}

impl StoreError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Key(_) | StoreError::NotOwned(_) => false,
            StoreError::Io { .. } | StoreError::Transport { .. } => true,
            StoreError::Status { status, .. } => *status >= 500 || *status == 429,
        }
    }
}

/// A small key-value store with conditional writes, shared by the PoPs that use it.
pub trait CertStateStore: Send + Sync + fmt::Debug + 'static {
    /// The object under `key`, if any.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Stored>, StoreError>>;

    /// Writes `body` under `key` when `when` holds; `Ok(Some(etag))` when written,
    /// `Ok(None)` when the precondition failed.
    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
        when: Write,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>>;

    /// Removes `key`; a missing key is not an error.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Every key that starts with `prefix` (a "directory" ending in `/`), with its version.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Listed>, StoreError>>;
}

/// Whether `key` is made of path segments of `[A-Za-z0-9._-]` that do not start with a dot.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|segment| {
            !segment.is_empty()
                && !segment.starts_with('.')
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

/// The store keys of the ACME state.
pub mod keys {
    /// Where certificates (key and chain, PEM) are kept.
    pub const CERTS: &str = "certs/";

    /// The ACME account for a directory URL.
    pub fn account(directory: &str) -> String {
        format!("accounts/{}.json", super::short_hash(directory.as_bytes()))
    }

    /// The certificate of `domain`.
    pub fn cert(domain: &str) -> String {
        format!("{CERTS}{}.pem", file_name(domain))
    }

    /// The domain a certificate key names, if it is one.
    pub fn domain_of_cert(key: &str) -> Option<&str> {
        let name = key.strip_prefix(CERTS)?.strip_suffix(".pem")?;
        (!name.contains('/')).then_some(name)
    }

    /// The order lease of `domain`.
    pub fn lease(domain: &str) -> String {
        format!("leases/{}", file_name(domain))
    }

    /// Where pending HTTP-01 answers are kept.
    pub const HTTP01: &str = "challenges/http-01/";
    /// Where pending TLS-ALPN-01 key authorizations are kept.
    pub const TLS_ALPN01: &str = "challenges/tls-alpn-01/";

    /// A pending HTTP-01 answer.
    pub fn http01(token: &str) -> String {
        format!("{HTTP01}{token}")
    }

    /// A pending TLS-ALPN-01 key authorization.
    pub fn tls_alpn01(domain: &str) -> String {
        format!("{TLS_ALPN01}{}", file_name(domain))
    }

    /// A domain as one key segment (`*` of a wildcard becomes `_wildcard_`).
    fn file_name(domain: &str) -> String {
        domain.replace('*', "_wildcard_")
    }
}

/// The first 16 bytes of SHA-256, in hex.
pub fn short_hash(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests;

/// The store `config.acme` names: its `cache_dir`, or the origin's `edge-acme` bucket (with the
/// embedded origin's `edge_user` or the S3 origin's credentials); `embedded_origin` is where
/// the embedded origin actually listens.
pub fn from_config(
    config: &crate::config::Config,
    embedded_origin: Option<std::net::SocketAddr>,
) -> Result<std::sync::Arc<dyn CertStateStore>, StoreError> {
    use crate::config::AcmeStore;
    let Some(acme) = &config.acme else {
        return Err(setup("no [acme] section"));
    };
    if let AcmeStore::Dir(dir) = &acme.store {
        return Ok(std::sync::Arc::new(DirStore::new(dir)));
    }
    Ok(std::sync::Arc::new(origin_bucket(
        config,
        embedded_origin,
        BUCKET,
    )?))
}

fn setup(reason: &str) -> StoreError {
    StoreError::Transport {
        op: "setup",
        key: String::new(),
        reason: reason.to_owned(),
    }
}

/// `bucket` of the origin, reached with the embedded origin's `edge_user` or the S3 origin's
/// credentials (created private on first use); `embedded_origin` is where the embedded
/// origin actually listens. An HTTP origin has no buckets.
pub fn origin_bucket(
    config: &crate::config::Config,
    embedded_origin: Option<std::net::SocketAddr>,
    bucket: &str,
) -> Result<OriginStore, StoreError> {
    use crate::config::OriginKind;
    use crate::origin::Signer;
    let (endpoint, signer, region) = match &config.origin.kind {
        OriginKind::Embedded(embedded) => {
            let addr = embedded_origin.unwrap_or(embedded.listen);
            let user = embedded
                .users
                .iter()
                .find(|u| u.id == embedded.edge_user)
                .ok_or_else(|| setup("origin.edge_user names no user"))?;
            let scheme = if embedded.tls { "https" } else { "http" };
            let endpoint: http::Uri = format!("{scheme}://{addr}")
                .parse()
                .map_err(|_| setup("embedded origin address"))?;
            (
                endpoint,
                Signer::new(&user.access_key, user.secret_key.expose(), "us-east-1"),
                "us-east-1".to_owned(),
            )
        }
        OriginKind::S3(s3) => {
            let credentials = s3
                .credentials
                .as_ref()
                .ok_or_else(|| setup("the origin's bucket needs origin credentials"))?;
            (
                s3.endpoint.clone(),
                Signer::new(
                    &credentials.access_key,
                    credentials.secret_key.expose(),
                    &s3.region,
                ),
                s3.region.clone(),
            )
        }
        OriginKind::Http { .. } => {
            return Err(setup(
                "an HTTP origin has no buckets: an S3 origin is needed",
            ));
        }
    };
    OriginStore::with_tls(
        &endpoint,
        bucket,
        &region,
        signer,
        config.origin.timeout,
        crate::tls::embedded_origin_tls(config),
    )
}
