//! Unit tests of `freshness`.

use super::*;
use http::HeaderValue;

const RULES: TtlRules = TtlRules {
    space_ttl: Some(Duration::from_secs(600)),
    default_ttl: Duration::from_secs(3600),
    negative_ttl: Duration::from_secs(10),
    stale_grace: Duration::ZERO,
};

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn admit_with(
    status: u16,
    headers: &[(&str, &str)],
    rules: &TtlRules,
) -> Result<Freshness, NotStored> {
    let mut h = HeaderMap::new();
    h.insert(
        "date",
        HeaderValue::from_str(&httpdate::fmt_http_date(t0())).unwrap(),
    );
    for (n, v) in headers {
        h.append(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let uri: http::Uri = "http://origin/b/k".parse().unwrap();
    admit(
        &uri,
        &HeaderMap::new(),
        StatusCode::from_u16(status).unwrap(),
        &h,
        t0(),
        rules,
    )
}

#[test]
fn object_cache_control_beats_space_ttl_which_beats_default() {
    let f = admit_with(200, &[("cache-control", "max-age=60")], &RULES).unwrap();
    assert_eq!(f.ttl_at_store, Duration::from_secs(60));
    let f = admit_with(200, &[], &RULES).unwrap();
    assert_eq!(f.ttl_at_store, Duration::from_secs(600));
    let f = admit_with(
        200,
        &[],
        &TtlRules {
            space_ttl: None,
            ..RULES
        },
    )
    .unwrap();
    assert_eq!(f.ttl_at_store, Duration::from_secs(3600));
}

#[test]
fn s_maxage_beats_max_age_and_age_counts() {
    let f = admit_with(
        200,
        &[("cache-control", "max-age=60, s-maxage=120"), ("age", "20")],
        &RULES,
    )
    .unwrap();
    assert_eq!(f.ttl_at_store, Duration::from_secs(100));
    assert_eq!(
        f.age(t0() + Duration::from_secs(5)),
        Duration::from_secs(25)
    );
    assert_eq!(f.ttl_seconds(t0() + Duration::from_secs(130)), -30);
}

#[test]
fn expires_is_relative_to_date() {
    let expires = httpdate::fmt_http_date(t0() + Duration::from_secs(300));
    let f = admit_with(200, &[("expires", &expires)], &RULES).unwrap();
    assert_eq!(f.ttl_at_store, Duration::from_secs(300));
    let f = admit_with(200, &[("expires", "0")], &RULES).unwrap();
    assert_eq!(f.ttl_at_store, Duration::ZERO);
}

#[test]
fn no_heuristic_from_last_modified() {
    let lm = httpdate::fmt_http_date(t0() - Duration::from_secs(86400 * 100));
    let rules = TtlRules {
        space_ttl: Some(Duration::ZERO),
        default_ttl: Duration::ZERO,
        ..RULES
    };
    assert_eq!(
        admit_with(200, &[("last-modified", &lm)], &rules),
        Err(NotStored::ZeroTtl)
    );
    let f = admit_with(200, &[("cache-control", "max-age=5")], &rules).unwrap();
    assert_eq!(f.ttl_at_store, Duration::from_secs(5));
}

#[test]
fn forbidden_responses() {
    assert_eq!(
        admit_with(200, &[("cache-control", "no-store")], &RULES),
        Err(NotStored::Forbidden)
    );
    assert_eq!(
        admit_with(200, &[("cache-control", "private, max-age=60")], &RULES),
        Err(NotStored::Forbidden)
    );
    assert_eq!(
        admit_with(200, &[("vary", "*")], &RULES),
        Err(NotStored::Forbidden)
    );
    assert_eq!(admit_with(403, &[], &RULES), Err(NotStored::Status));
    assert_eq!(
        admit_with(503, &[("cache-control", "max-age=60")], &RULES),
        Err(NotStored::Status)
    );
}

#[test]
fn negative_ttl_for_404() {
    let f = admit_with(404, &[], &RULES).unwrap();
    assert_eq!(f.ttl_at_store, Duration::from_secs(10));
    let rules = TtlRules {
        negative_ttl: Duration::ZERO,
        ..RULES
    };
    assert_eq!(admit_with(404, &[], &rules), Err(NotStored::ZeroTtl));
}

#[test]
fn set_cookie_only_with_explicit_freshness() {
    assert_eq!(
        admit_with(200, &[("set-cookie", "a=b")], &RULES),
        Err(NotStored::SetCookie)
    );
    let f = admit_with(
        200,
        &[("set-cookie", "a=b"), ("cache-control", "max-age=30")],
        &RULES,
    )
    .unwrap();
    assert_eq!(f.ttl_at_store, Duration::from_secs(30));
}

#[test]
fn no_cache_is_stored_but_always_stale() {
    let f = admit_with(
        200,
        &[("cache-control", "no-cache"), ("etag", "\"x\"")],
        &RULES,
    )
    .unwrap();
    assert_eq!(f.state(t0()), FreshnessState::Stale);
    assert!(!f.usable_on_error(t0()));
}

#[test]
fn stale_windows() {
    let rules = TtlRules {
        stale_grace: Duration::from_secs(5),
        ..RULES
    };
    let f = admit_with(
        200,
        &[(
            "cache-control",
            "max-age=10, stale-while-revalidate=20, stale-if-error=100",
        )],
        &rules,
    )
    .unwrap();
    assert_eq!(
        f.state(t0() + Duration::from_secs(9)),
        FreshnessState::Fresh
    );
    assert_eq!(
        f.state(t0() + Duration::from_secs(15)),
        FreshnessState::StaleWhileRevalidate
    );
    assert_eq!(
        f.state(t0() + Duration::from_secs(31)),
        FreshnessState::Stale
    );
    assert!(f.usable_on_error(t0() + Duration::from_secs(100)));
    assert!(!f.usable_on_error(t0() + Duration::from_secs(111)));
    let f = admit_with(
        200,
        &[(
            "cache-control",
            "max-age=10, must-revalidate, stale-if-error=100",
        )],
        &rules,
    )
    .unwrap();
    assert!(!f.usable_on_error(t0() + Duration::from_secs(11)));
    let f = admit_with(200, &[("cache-control", "max-age=10")], &rules).unwrap();
    assert!(f.usable_on_error(t0() + Duration::from_secs(14)));
}

#[test]
fn hard_expiry_caps_everything() {
    let mut f = admit_with(
        200,
        &[("cache-control", "max-age=100, stale-if-error=100")],
        &RULES,
    )
    .unwrap();
    f.hard_expiry = Some(t0() + Duration::from_secs(50));
    assert_eq!(
        f.state(t0() + Duration::from_secs(60)),
        FreshnessState::Stale
    );
    assert!(!f.usable_on_error(t0() + Duration::from_secs(60)));
    assert_eq!(f.keep_for(true), Duration::from_secs(50));
}
