//! `Cache-Status` (RFC 9211): the cache's outcome rendered as this PoP's member, appended
//! after the members of caches nearer the origin (a parent PoP's).

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::cache::{BypassReason, CacheOutcome, Tier};

/// `Cache-Status`, a name parsed once at compile time rather than per response.
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// This PoP's member for `outcome`, written without `format!`: the hit path renders one per
/// request.
pub fn render(outcome: &CacheOutcome, pop: &str) -> HeaderValue {
    let mut text = String::with_capacity(pop.len() + 48);
    text.push_str(pop);
    let mut number = itoa::Buffer::new();
    match *outcome {
        CacheOutcome::Hit { ttl, tier } => {
            text.push_str("; hit; ttl=");
            text.push_str(number.format(ttl));
            if tier == Tier::Disk {
                text.push_str("; detail=disk");
            }
        }
        CacheOutcome::Miss {
            collapsed: true, ..
        } => text.push_str("; fwd=miss; collapsed"),
        CacheOutcome::Miss { stored: true, .. } => text.push_str("; fwd=miss; stored"),
        CacheOutcome::Miss { .. } => text.push_str("; fwd=miss"),
        CacheOutcome::Revalidated {
            status,
            stored,
            collapsed,
        } => {
            text.push_str("; fwd=stale; fwd-status=");
            text.push_str(status.as_str());
            if stored {
                text.push_str("; stored");
            }
            if collapsed {
                text.push_str("; collapsed");
            }
        }
        CacheOutcome::StaleOnError { status, ttl } => {
            text.push_str("; fwd=stale; fwd-status=");
            text.push_str(status.as_str());
            text.push_str("; ttl=");
            text.push_str(number.format(ttl));
        }
        CacheOutcome::Bypass(BypassReason::Method | BypassReason::Edge) => {
            text.push_str("; fwd=bypass")
        }
    }
    // The PoP name is checked at config load; keep a valid value if it were not.
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static("edge; fwd=bypass"))
}

/// Appends our member after those of caches nearer the origin.
pub fn append(headers: &mut HeaderMap, ours: &HeaderValue) {
    match headers.get(CACHE_STATUS).and_then(|v| v.to_str().ok()) {
        Some(upstream) if !upstream.is_empty() => {
            let joined = format!("{upstream}, {}", ours.to_str().unwrap_or_default());
            if let Ok(value) = HeaderValue::from_str(&joined) {
                headers.insert(CACHE_STATUS, value);
            }
        }
        _ => {
            headers.insert(CACHE_STATUS, ours.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    #[test]
    fn members() {
        let cases = [
            (
                CacheOutcome::Hit {
                    ttl: 12,
                    tier: Tier::Disk,
                },
                "p; hit; ttl=12; detail=disk",
            ),
            (
                CacheOutcome::Miss {
                    stored: true,
                    collapsed: false,
                },
                "p; fwd=miss; stored",
            ),
            (
                CacheOutcome::Revalidated {
                    status: StatusCode::NOT_MODIFIED,
                    stored: true,
                    collapsed: false,
                },
                "p; fwd=stale; fwd-status=304; stored",
            ),
            (
                CacheOutcome::StaleOnError {
                    status: StatusCode::BAD_GATEWAY,
                    ttl: -3,
                },
                "p; fwd=stale; fwd-status=502; ttl=-3",
            ),
            (CacheOutcome::Bypass(BypassReason::Edge), "p; fwd=bypass"),
        ];
        for (outcome, text) in cases {
            assert_eq!(render(&outcome, "p"), text);
        }
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_STATUS, HeaderValue::from_static("shield; hit"));
        append(&mut headers, &HeaderValue::from_static("p; fwd=miss"));
        assert_eq!(headers[CACHE_STATUS], "shield; hit, p; fwd=miss");
    }
}
