//! Admission (RFC 9111 sections 3 and 4.2): whether a response may be stored, and its
//! freshness lifetime and current age when it arrives. A pure function of the exchange, the
//! space's rules and the two instants that bound it.
//!
//! - **Directives.** A space's targeted fields, then `CDN-Cache-Control` (RFC 9213, see
//!   [`super::targeted`]), else `Cache-Control` and `Expires`.
//! - **Statuses.** Any final status with explicit freshness is stored (section 3); without
//!   it, only the heuristically cacheable ones get the space's TTLs (403 and 5xx never), and
//!   404/410 the negative TTL. Interim (1xx), 206 and 304 responses are never stored.
//! - **Age.** `current_age` of section 4.2.3: the larger of the apparent age (`Date` against
//!   the receipt time) and the origin's `Age` corrected by the response delay. The freshness
//!   lifetime (`s-maxage`, `max-age`, `Expires` − `Date`, or the TTL) minus that age is what
//!   is left of it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::{AGE, AUTHORIZATION, DATE, EXPIRES, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderName, StatusCode};

use super::cache_control::{CacheControl, DELTA_MAX, parse_delta_seconds};
use super::freshness::Freshness;
use super::{http_date, targeted};

/// The rules that apply when the object does not say, and the space's targeted fields.
#[derive(Debug, Clone)]
pub struct TtlRules {
    /// The space's `ttl`, if set.
    pub space_ttl: Option<Duration>,
    /// `cache.default_ttl`.
    pub default_ttl: Duration,
    /// `cache.negative_ttl` for 404/410 without explicit freshness.
    pub negative_ttl: Duration,
    /// `cache.stale_grace`: serve stale this long when the origin fails.
    pub stale_grace: Duration,
    /// The space's `targeted` fields, read before `CDN-Cache-Control` (RFC 9213).
    pub targeted: Arc<[HeaderName]>,
}

/// Why a response was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// `no-store`, `private`, `Vary: *`, `Authorization` without shared permission, or
    /// `must-understand` on a status the edge does not know.
    Forbidden,
    /// A status never stored (1xx, 206, 304), or one stored only with explicit freshness
    /// (403, 5xx, anything not heuristically cacheable).
    Status,
    /// `Set-Cookie` without explicit shared freshness.
    SetCookie,
    /// No explicit freshness and the applicable TTL is zero (or used up by the age).
    ZeroTtl,
    /// More cache tags than an entry keeps (see [`super::tags`]).
    Tags,
}

/// When the exchange happened: the request sent and the response head received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    pub request_time: SystemTime,
    pub response_time: SystemTime,
}

impl Exchange {
    /// An exchange that took no time (tests, stored responses replayed).
    pub fn at(time: SystemTime) -> Exchange {
        Exchange {
            request_time: time,
            response_time: time,
        }
    }
}

/// Decides whether a response to a GET may be stored and with what freshness.
///
/// `request_headers` are those sent to the origin (for `Authorization`); `response_headers`
/// are the origin's, `Age` included.
pub fn admit(
    request_headers: &HeaderMap,
    status: StatusCode,
    response_headers: &HeaderMap,
    exchange: Exchange,
    rules: &TtlRules,
) -> Result<Freshness, NotStored> {
    let code = status.as_u16();
    if status.is_informational() || matches!(code, 206 | 304) {
        return Err(NotStored::Status);
    }
    let (cc, targeted) = match targeted::select(response_headers, &rules.targeted) {
        Some(cc) => (cc, true),
        None => (CacheControl::from_headers(response_headers), false),
    };
    if cc.must_understand {
        // Only a cache that implements the status's caching rules may store it; one that
        // does ignores `no-store` (RFC 9111 section 5.2.2.3).
        if !understood(code) {
            return Err(NotStored::Forbidden);
        }
    } else if cc.no_store {
        return Err(NotStored::Forbidden);
    }
    if cc.private || vary_star(response_headers) {
        return Err(NotStored::Forbidden);
    }
    if request_headers.contains_key(AUTHORIZATION)
        && !(cc.public || cc.must_revalidate || cc.s_maxage.is_some())
    {
        return Err(NotStored::Forbidden);
    }

    let now = exchange.response_time;
    let date = response_headers
        .get(DATE)
        .and_then(|v| http_date::parse(v.as_bytes(), now))
        .unwrap_or(now);
    let expires = (!targeted)
        .then(|| response_headers.get(EXPIRES))
        .flatten()
        // An invalid `Expires` is a time in the past (RFC 9111 section 5.3).
        .map(|v| http_date::parse(v.as_bytes(), now).unwrap_or(SystemTime::UNIX_EPOCH));
    let explicit = cc
        .s_maxage
        .or(cc.max_age)
        .map(Duration::from_secs)
        .or_else(|| expires.map(|expires| expires.duration_since(date).unwrap_or_default()));

    let has_cookie = response_headers.contains_key(SET_COOKIE);
    if has_cookie && !(explicit.is_some() || cc.public) {
        return Err(NotStored::SetCookie);
    }
    let lifetime = match explicit {
        Some(lifetime) => lifetime,
        // `no-cache`: stored, and revalidated before every use.
        None if cc.no_cache => Duration::ZERO,
        None if matches!(code, 404 | 410) => rules.negative_ttl,
        None if matches!(code, 200 | 203 | 204 | 300 | 301 | 308 | 405 | 414) => {
            rules.space_ttl.unwrap_or(rules.default_ttl)
        }
        None => return Err(NotStored::Status),
    };
    let lifetime = if cc.no_cache {
        Duration::ZERO
    } else {
        lifetime.min(MAX_SPAN)
    };
    let initial_age = current_age(response_headers, date, exchange);
    let ttl_at_store = lifetime.saturating_sub(initial_age);
    if ttl_at_store.is_zero() && explicit.is_none() && !cc.no_cache {
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
        response_time: exchange.response_time,
        initial_age,
        ttl_at_store,
        stale_while_revalidate,
        stale_if_error,
        hard_expiry: None,
        invalidated_at: None,
    }
    .clamped())
}

/// The longest lifetime or age accounted for (2^31 s, RFC 9111 section 1.2.2).
const MAX_SPAN: Duration = Duration::from_secs(DELTA_MAX);

/// `corrected_initial_age` of RFC 9111 section 4.2.3: what the response's age was when it
/// arrived.
fn current_age(headers: &HeaderMap, date: SystemTime, exchange: Exchange) -> Duration {
    let apparent_age = exchange
        .response_time
        .duration_since(date)
        .unwrap_or_default();
    let response_delay = exchange
        .response_time
        .duration_since(exchange.request_time)
        .unwrap_or_default();
    let corrected_age_value = age_value(headers).saturating_add(response_delay);
    apparent_age.max(corrected_age_value).min(MAX_SPAN)
}

/// The origin's `Age` (RFC 9111 section 5.1): the first member of the first line, in
/// delta-seconds; anything else (negative, fractional, not a number) is ignored.
fn age_value(headers: &HeaderMap) -> Duration {
    let Some(line) = headers.get(AGE).and_then(|v| v.to_str().ok()) else {
        return Duration::ZERO;
    };
    let first = line.split(',').next().unwrap_or_default();
    let number = first.split(';').next().unwrap_or_default().trim();
    Duration::from_secs(parse_delta_seconds(number).unwrap_or(0))
}

/// Whether `Vary` lists `*` anywhere (alone, in a list, on any of several lines): such a
/// response never matches a later request (RFC 9111 section 4.1), so it is not stored.
fn vary_star(headers: &HeaderMap) -> bool {
    headers
        .get_all(VARY)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|member| member.trim_ascii() == b"*")
}

/// Final statuses whose caching rules the edge implements (those RFC 9110 defines): what
/// `must-understand` asks of a cache.
fn understood(code: u16) -> bool {
    matches!(
        code,
        200..=206 | 300..=305 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505
    )
}

#[cfg(test)]
mod tests;
