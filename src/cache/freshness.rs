//! Freshness (RFC 9111 section 4.2) of a stored response: for how long it is fresh, how long
//! it may be served stale, and its age. Pure functions of the stored values and `now`; what
//! may be stored, and with what freshness, is decided by [`super::admission`].

use std::time::{Duration, SystemTime};

/// The longest lifetime, age or stale window the cache accounts for: 2^31 seconds, which
/// RFC 9111 section 1.2.2 treats as "infinity". Anything larger from a response (or a disk
/// entry written by an older build) is clamped to it, so no time arithmetic overflows.
pub const MAX_LIFETIME: Duration = Duration::from_secs(1 << 31);

/// `time + span`, without overflow: spans are clamped to [`MAX_LIFETIME`] and a sum past
/// what `SystemTime` holds saturates to a far future.
pub fn later(time: SystemTime, span: Duration) -> SystemTime {
    let span = span.min(MAX_LIFETIME);
    time.checked_add(span)
        .or_else(|| SystemTime::UNIX_EPOCH.checked_add(MAX_LIFETIME.saturating_mul(8)))
        .unwrap_or(time)
}

/// When a stored response is fresh and how long it may be served stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Freshness {
    /// When the response was received.
    pub response_time: SystemTime,
    /// Its age when received (the origin's `Age`).
    pub initial_age: Duration,
    /// Freshness lifetime left when received.
    pub ttl_at_store: Duration,
    /// `stale-while-revalidate` window after expiry.
    pub stale_while_revalidate: Duration,
    /// How long after expiry a failed origin lets it be served (`stale-if-error`, grace).
    pub stale_if_error: Duration,
    /// Never serve after this instant, whatever the state (presigned URL expiry).
    pub hard_expiry: Option<SystemTime>,
    /// Made stale at this instant by a soft purge: revalidated from then on (and served
    /// stale only within the stale windows), kept as long as it would have been.
    pub invalidated_at: Option<SystemTime>,
}

/// Where an entry stands at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreshnessState {
    Fresh,
    /// Stale but may be served while a background revalidation runs.
    StaleWhileRevalidate,
    /// Stale: must be revalidated (may still serve if the origin fails, see `usable_on_error`).
    Stale,
}

impl Freshness {
    /// The same freshness with every span clamped to [`MAX_LIFETIME`] (what `admit` makes;
    /// disk entries are passed through it when read back).
    pub fn clamped(self) -> Freshness {
        Freshness {
            initial_age: self.initial_age.min(MAX_LIFETIME),
            ttl_at_store: self.ttl_at_store.min(MAX_LIFETIME),
            stale_while_revalidate: self.stale_while_revalidate.min(MAX_LIFETIME),
            stale_if_error: self.stale_if_error.min(MAX_LIFETIME),
            ..self
        }
    }

    /// The value of `Age` at `now`.
    pub fn age(&self, now: SystemTime) -> Duration {
        self.initial_age
            .min(MAX_LIFETIME)
            .saturating_add(now.duration_since(self.response_time).unwrap_or_default())
    }

    /// When freshness ends.
    pub fn fresh_until(&self) -> SystemTime {
        let mut until = later(self.response_time, self.ttl_at_store);
        if let Some(hard) = self.hard_expiry {
            until = until.min(hard);
        }
        if let Some(at) = self.invalidated_at {
            until = until.min(at);
        }
        until
    }

    /// The same freshness, stale from `at` on (a soft purge), unless it was already.
    pub fn invalidated(self, at: SystemTime) -> Freshness {
        Freshness {
            invalidated_at: Some(self.invalidated_at.map_or(at, |before| before.min(at))),
            ..self
        }
    }

    /// Seconds of freshness left at `now`; negative when stale (Cache-Status `ttl`).
    pub fn ttl_seconds(&self, now: SystemTime) -> i64 {
        let until = self.fresh_until();
        match until.duration_since(now) {
            Ok(left) => i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            Err(past) => -i64::try_from(past.duration().as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// Fresh, servable stale while revalidating, or stale.
    pub fn state(&self, now: SystemTime) -> FreshnessState {
        if self.hard_expiry.is_some_and(|hard| now >= hard) {
            return FreshnessState::Stale;
        }
        let until = self.fresh_until();
        if now < until {
            FreshnessState::Fresh
        } else if now < later(until, self.stale_while_revalidate) {
            FreshnessState::StaleWhileRevalidate
        } else {
            FreshnessState::Stale
        }
    }

    /// Whether a stale entry may be served because the origin failed.
    pub fn usable_on_error(&self, now: SystemTime) -> bool {
        if self.hard_expiry.is_some_and(|hard| now >= hard) {
            return false;
        }
        now < later(
            self.fresh_until(),
            self.stale_if_error.max(self.stale_while_revalidate),
        )
    }

    /// How long after `response_time` the entry is worth keeping (stale entries with
    /// validators are kept a while longer so they can be revalidated with a 304).
    pub fn keep_for(&self, has_validator: bool) -> Duration {
        let this = self.clamped();
        let stale_window = this.stale_while_revalidate.max(this.stale_if_error);
        let revalidate_window = if has_validator {
            this.ttl_at_store
                .clamp(Duration::from_secs(60), Duration::from_secs(86_400))
        } else {
            Duration::ZERO
        };
        let keep = this
            .ttl_at_store
            .saturating_add(stale_window.max(revalidate_window))
            .min(MAX_LIFETIME);
        match self.hard_expiry {
            Some(hard) => keep.min(hard.duration_since(self.response_time).unwrap_or_default()),
            None => keep,
        }
    }

    /// Freshness after a revalidation with the merged headers (a soft purge is over).
    pub fn refreshed(&self, admission: Freshness) -> Freshness {
        Freshness {
            hard_expiry: self.hard_expiry,
            ..admission
        }
    }
}
