//! Freshness (RFC 9111 section 4.2): what may be stored, for how long it is fresh, and how
//! long it may be served stale. Pure functions of the response, the rules and `now`.

use std::time::{Duration, SystemTime};

use http::header::{EXPIRES, SET_COOKIE, VARY};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_cache_semantics::{CacheOptions, CachePolicy};

use super::cache_control::CacheControl;

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

/// The TTLs that apply when the object does not say.
#[derive(Debug, Clone, Copy)]
pub struct TtlRules {
    /// The space's `ttl`, if set.
    pub space_ttl: Option<Duration>,
    /// `cache.default_ttl`.
    pub default_ttl: Duration,
    /// `cache.negative_ttl` for 404/410 without explicit freshness.
    pub negative_ttl: Duration,
    /// `cache.stale_grace`: serve stale this long when the origin fails.
    pub stale_grace: Duration,
}

/// Why a response was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// `no-store`, `private`, an uncacheable status or method, `Vary: *`.
    Forbidden,
    /// 403, 5xx and other statuses the edge never stores.
    Status,
    /// `Set-Cookie` without explicit shared freshness.
    SetCookie,
    /// No explicit freshness and the applicable TTL is zero.
    ZeroTtl,
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
        let until = later(self.response_time, self.ttl_at_store);
        match self.hard_expiry {
            Some(hard) => until.min(hard),
            None => until,
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

    /// Freshness after a 304 revalidation at `now` with the merged headers.
    pub fn refreshed(&self, admission: Freshness) -> Freshness {
        Freshness {
            hard_expiry: self.hard_expiry,
            ..admission
        }
    }
}

/// Decides whether a response to a GET may be stored and with what freshness.
///
/// `request_headers` are those sent to the origin (for `Authorization` and `Vary`);
/// `response_time` is when the response head arrived.
pub fn admit(
    uri: &http::Uri,
    request_headers: &HeaderMap,
    status: StatusCode,
    response_headers: &HeaderMap,
    response_time: SystemTime,
    rules: &TtlRules,
) -> Result<Freshness, NotStored> {
    let cc = CacheControl::from_headers(response_headers);
    let explicit = cc.has_explicit_lifetime() || response_headers.contains_key(EXPIRES);

    match status.as_u16() {
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501 => {}
        // Temporary redirects only with explicit freshness.
        302 | 307 if explicit => {}
        _ => return Err(NotStored::Status),
    }
    if response_headers
        .get(VARY)
        .is_some_and(|v| v.as_bytes().trim_ascii() == b"*")
    {
        return Err(NotStored::Forbidden);
    }
    let has_cookie = response_headers.contains_key(SET_COOKIE);
    if has_cookie && !(explicit || cc.public) {
        return Err(NotStored::SetCookie);
    }

    // The crate applies RFC 9111's storage rules; Set-Cookie was decided above, so it is
    // hidden from it (it would otherwise insist on `public`).
    let policy_headers;
    let headers_for_policy = if has_cookie {
        let mut h = response_headers.clone();
        h.remove(SET_COOKIE);
        policy_headers = h;
        &policy_headers
    } else {
        response_headers
    };
    let policy = policy_for(
        uri,
        request_headers,
        status,
        headers_for_policy,
        response_time,
    );
    if !policy.is_storable() {
        return Err(NotStored::Forbidden);
    }
    let initial_age = policy.age(response_time);

    let ttl_at_store = if explicit || cc.no_cache {
        policy.time_to_live(response_time)
    } else if matches!(status.as_u16(), 404 | 410) {
        rules.negative_ttl
    } else {
        let ttl = rules.space_ttl.unwrap_or(rules.default_ttl);
        if ttl.is_zero() {
            return Err(NotStored::ZeroTtl);
        }
        ttl
    };
    if ttl_at_store.is_zero() && !explicit && !cc.no_cache {
        return Err(NotStored::ZeroTtl);
    }
    if has_cookie && ttl_at_store.is_zero() {
        return Err(NotStored::SetCookie);
    }

    let (stale_while_revalidate, stale_if_error) = if cc.forbids_stale() {
        (Duration::ZERO, Duration::ZERO)
    } else {
        let secs = |v: Option<u64>| Duration::from_secs(v.unwrap_or(0));
        (
            secs(cc.stale_while_revalidate),
            secs(cc.stale_if_error).max(rules.stale_grace),
        )
    };
    Ok(Freshness {
        response_time,
        initial_age,
        ttl_at_store,
        stale_while_revalidate,
        stale_if_error,
        hard_expiry: None,
    }
    .clamped())
}

fn policy_for(
    uri: &http::Uri,
    request_headers: &HeaderMap,
    status: StatusCode,
    response_headers: &HeaderMap,
    response_time: SystemTime,
) -> CachePolicy {
    let mut request = Request::new(());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = uri.clone();
    *request.headers_mut() = request_headers.clone();
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.headers_mut() = response_headers.clone();
    let options = CacheOptions {
        shared: true,
        // The space TTL and default TTL replace heuristic freshness.
        cache_heuristic: 0.0,
        immutable_min_time_to_live: Duration::ZERO,
        ignore_cargo_cult: false,
    };
    CachePolicy::new_options(&request, &response, response_time, options)
}

#[cfg(test)]
mod tests;
