//! How a response came about, decided once by the cache and carried as a value: rendered as
//! `Cache-Status` (RFC 9211), counted by the metrics and written by the access log, never
//! parsed back from header text.

use http::StatusCode;

/// Which tier served a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Memory,
    Disk,
}

/// Why a response did not involve the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BypassReason {
    /// A method the cache does not store (forwarded as it is).
    Method,
    /// A response the edge made itself (an error, a redirect, an ACME answer).
    Edge,
}

/// The cache's part in one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Served from a stored entry: fresh (`ttl` > 0), or stale while a revalidation runs.
    Hit { ttl: i64, tier: Tier },
    /// Fetched from the origin (`collapsed`: by another request this one joined).
    Miss { stored: bool, collapsed: bool },
    /// A stored entry was revalidated; the origin answered `status` (304: it is unchanged).
    Revalidated {
        status: StatusCode,
        stored: bool,
        collapsed: bool,
    },
    /// The origin failed with `status` (or could not be reached); a stale entry was served.
    StaleOnError { status: StatusCode, ttl: i64 },
    /// The cache was not involved.
    Bypass(BypassReason),
}

impl CacheOutcome {
    /// Whether a stored response answered (fresh, stale while revalidating, or on error).
    pub fn from_storage(&self) -> bool {
        matches!(
            self,
            CacheOutcome::Hit { .. } | CacheOutcome::StaleOnError { .. }
        )
    }
}
