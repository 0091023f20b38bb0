//! The store's configuration: where it keeps data, which host names it answers and its users.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::error::StoreError;

/// What [`Store::open`](crate::Store::open) needs to run a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory holding the metadata database and the object bodies; created if missing.
    pub data_dir: PathBuf,
    /// Base domain for virtual-hosted-style requests (`bucket.<domain>`); path-style always works.
    pub domain: Option<String>,
    /// Region reported by `GetBucketLocation` and accepted in signatures (normally `us-east-1`).
    pub region: String,
    /// The users; each one is a distinct S3 owner with its own key pair.
    pub users: Vec<UserConfig>,
    /// When the lifecycle worker runs and how long a lifecycle day is.
    pub lifecycle: LifecycleConfig,
    /// How often buffered access log records are delivered to their target buckets.
    pub log_flush: std::time::Duration,
}

/// The lifecycle worker's timing (`origin.lifecycle_interval`, `origin.lifecycle_day`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifecycleConfig {
    /// Time between two passes over the buckets' rules (default one hour).
    pub interval: std::time::Duration,
    /// How long one lifecycle "day" lasts (default 24 hours; tests shorten it).
    pub day: std::time::Duration,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            interval: std::time::Duration::from_secs(3600),
            day: std::time::Duration::from_secs(86_400),
        }
    }
}

/// Default of [`StoreConfig::log_flush`] (as S3, a few minutes).
pub const DEFAULT_LOG_FLUSH: std::time::Duration = std::time::Duration::from_secs(300);

/// One `[[origin.user]]`: an S3 owner and its credentials.
#[derive(Clone)]
pub struct UserConfig {
    /// Canonical user id, recorded as the owner of buckets and objects.
    pub id: String,
    /// Shown as `DisplayName` in listings and ACLs.
    pub display_name: String,
    /// Lets ACL grants name this user by e-mail address.
    pub email: Option<String>,
    /// SigV4 access key id.
    pub access_key: String,
    /// SigV4 secret key.
    pub secret_key: String,
}

impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("id", &self.id)
            .field("display_name", &self.display_name)
            .field("email", &self.email)
            .field("access_key", &self.access_key)
            .field("secret_key", &"***")
            .finish()
    }
}

impl StoreConfig {
    /// Checks what the store relies on: unique ids and access keys, non-empty secrets.
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        let bad = |msg: String| Err(StoreError::Config(msg));
        if self.region.is_empty() {
            return bad("region must not be empty".into());
        }
        if self.lifecycle.interval.is_zero() {
            return bad("lifecycle_interval must be more than zero".into());
        }
        if self.lifecycle.day.as_millis() == 0 {
            return bad("lifecycle_day must be at least one millisecond".into());
        }
        if self.log_flush.is_zero() {
            return bad("log_flush must be longer than zero".into());
        }
        if let Some(domain) = &self.domain
            && s3s::host::SingleDomain::new(domain).is_err()
        {
            return bad(format!("domain {domain:?} is not a valid host name"));
        }
        let mut ids = HashSet::new();
        let mut keys = HashSet::new();
        for user in &self.users {
            if user.id.is_empty() || user.id.chars().any(char::is_control) {
                return bad(format!(
                    "user id {:?} is empty or has control characters",
                    user.id
                ));
            }
            if user.access_key.is_empty() || user.secret_key.is_empty() {
                return bad(format!(
                    "user {:?} needs an access_key and a secret_key",
                    user.id
                ));
            }
            if !ids.insert(user.id.as_str()) {
                return bad(format!("user id {:?} is used twice", user.id));
            }
            if !keys.insert(user.access_key.as_str()) {
                return bad(format!(
                    "access key of user {:?} is used by another user",
                    user.id
                ));
            }
        }
        Ok(())
    }
}

/// Protection of the store's listener against slow or greedy clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// A client must send its whole request head within this; also ends idle keep-alive.
    pub header_read_timeout: std::time::Duration,
    /// A connection with no byte read or written for this long is closed.
    pub idle_timeout: std::time::Duration,
    /// Connections past this many are closed as soon as they are accepted.
    pub max_connections: u32,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_read_timeout: std::time::Duration::from_secs(10),
            idle_timeout: std::time::Duration::from_secs(60),
            max_connections: 10_000,
        }
    }
}
