use super::*;
use crate::cache::freshness::FreshnessState;
use http::HeaderValue;

static RULES: std::sync::LazyLock<TtlRules> = std::sync::LazyLock::new(|| TtlRules {
    space_ttl: Some(Duration::from_secs(600)),
    default_ttl: Duration::from_secs(3600),
    negative_ttl: Duration::from_secs(10),
    stale_grace: Duration::ZERO,
    targeted: Arc::from([]),
});

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
    admit(
        &HeaderMap::new(),
        StatusCode::from_u16(status).unwrap(),
        &h,
        Exchange::at(t0()),
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
            ..RULES.clone()
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
        ..RULES.clone()
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
    assert_eq!(admit_with(503, &[], &RULES), Err(NotStored::Status));
    assert_eq!(admit_with(501, &[], &RULES), Err(NotStored::Status));
    assert_eq!(admit_with(302, &[], &RULES), Err(NotStored::Status));
}

/// RFC 9111 section 3: a final response with explicit freshness is stored whatever its
/// status; interim responses, 206 and 304 never are.
#[test]
fn rfc9111_3_any_final_status_with_explicit_freshness_is_stored() {
    for status in [
        200, 203, 204, 299, 302, 303, 307, 400, 403, 404, 410, 500, 503, 599,
    ] {
        let f = admit_with(status, &[("cache-control", "max-age=60")], &RULES)
            .unwrap_or_else(|e| panic!("{status}: {e:?}"));
        assert_eq!(f.ttl_at_store, Duration::from_secs(60), "{status}");
    }
    for status in [100, 103, 206, 304] {
        assert_eq!(
            admit_with(status, &[("cache-control", "max-age=60")], &RULES),
            Err(NotStored::Status),
            "{status}"
        );
    }
}

/// RFC 9111 section 5.2.2.3: `must-understand` lets a cache that knows the status ignore
/// `no-store`; any other status is not stored.
#[test]
fn rfc9111_5_2_2_3_must_understand() {
    let cc = [("cache-control", "max-age=3600, no-store, must-understand")];
    assert!(admit_with(200, &cc, &RULES).is_ok());
    assert_eq!(admit_with(599, &cc, &RULES), Err(NotStored::Forbidden));
}

/// RFC 9111 section 4.2.3: the origin's `Age` counts in the current age, so a response
/// older than its lifetime is stale on arrival (and the TTL of one without explicit
/// freshness is what is left of it).
#[test]
fn rfc9111_4_2_3_age_counts_in_the_current_age() {
    let f = admit_with(
        200,
        &[("cache-control", "max-age=3600"), ("age", "7200")],
        &RULES,
    )
    .unwrap();
    assert_eq!(f.ttl_at_store, Duration::ZERO);
    assert_eq!(f.age(t0()), Duration::from_secs(7200));
    assert_eq!(f.state(t0()), FreshnessState::Stale);
    // The first member of the first line; anything but delta-seconds is ignored.
    for (age, left) in [
        ("7200, 0", 0),
        ("0, 7200", 3600),
        ("abc", 3600),
        ("-7200", 3600),
        ("7200.0", 3600),
        ("2147483648", 0),
        ("99999999999", 0),
        ("7200;foo=bar", 0),
    ] {
        let f = admit_with(
            200,
            &[("cache-control", "max-age=3600"), ("age", age)],
            &RULES,
        )
        .unwrap();
        assert_eq!(f.ttl_at_store, Duration::from_secs(left), "Age: {age}");
    }
    let f = admit_with(200, &[("age", "100")], &RULES).unwrap();
    assert_eq!(f.ttl_at_store, Duration::from_secs(500));
    assert_eq!(
        admit_with(200, &[("age", "600")], &RULES),
        Err(NotStored::ZeroTtl)
    );
}

/// RFC 9111 section 4.2.3: the apparent age (`Date` behind the receipt time) and the
/// corrected `Age` (plus the response delay), whichever is larger.
#[test]
fn rfc9111_4_2_3_date_skew_and_response_delay() {
    let date = |offset: i64| {
        let t = if offset < 0 {
            t0() - Duration::from_secs(offset.unsigned_abs())
        } else {
            t0() + Duration::from_secs(offset.unsigned_abs())
        };
        httpdate::fmt_http_date(t)
    };
    let admit_at = |headers: &[(&str, &str)], request_time: SystemTime| {
        let mut h = HeaderMap::new();
        for (n, v) in headers {
            h.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let exchange = Exchange {
            request_time,
            response_time: t0(),
        };
        admit(&HeaderMap::new(), StatusCode::OK, &h, exchange, &RULES)
    };
    // A slow origin clock: Date 10 s behind, Expires 10 s ahead, Age 25.
    let f = admit_at(
        &[("date", &date(-10)), ("expires", &date(10)), ("age", "25")],
        t0(),
    )
    .unwrap();
    assert_eq!(f.ttl_at_store, Duration::ZERO);
    // A fast one: Date 10 s ahead, Expires 20 s ahead, Age 15.
    let f = admit_at(
        &[("date", &date(10)), ("expires", &date(20)), ("age", "15")],
        t0(),
    )
    .unwrap();
    assert_eq!(f.ttl_at_store, Duration::ZERO);
    // Date alone makes the apparent age.
    let f = admit_at(
        &[("date", &date(-100)), ("cache-control", "max-age=300")],
        t0(),
    )
    .unwrap();
    assert_eq!(f.initial_age, Duration::from_secs(100));
    // The response delay adds to `Age`.
    let f = admit_at(
        &[
            ("date", &date(0)),
            ("age", "10"),
            ("cache-control", "max-age=300"),
        ],
        t0() - Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(f.initial_age, Duration::from_secs(15));
}

/// RFC 9111 section 5.3: an invalid `Expires` means already expired.
#[test]
fn rfc9111_5_3_invalid_expires_is_already_expired() {
    for expires in [
        "Thu, 18  Aug  2050 02:01:18 GMT",
        "Thu, 18 Aug 2050 02:01:18 UTC",
        "Thu 18 Aug 2050 02:01:18 GMT",
        "0",
    ] {
        let f = admit_with(200, &[("expires", expires)], &RULES).unwrap();
        assert_eq!(f.ttl_at_store, Duration::ZERO, "{expires}");
    }
    let f = admit_with(200, &[("expires", "THU, 18 AUG 2050 02:01:18 GMT")], &RULES).unwrap();
    assert!(f.ttl_at_store > Duration::from_secs(86_400));
    // Cache-Control: max-age wins over any Expires.
    let f = admit_with(
        200,
        &[("expires", "0"), ("cache-control", "max-age=60")],
        &RULES,
    )
    .unwrap();
    assert_eq!(f.ttl_at_store, Duration::from_secs(60));
}

/// RFC 9111 section 5.2: directive names are case-insensitive.
#[test]
fn rfc9111_5_2_directive_names_are_case_insensitive() {
    let f = admit_with(
        200,
        &[("cache-control", "NO-CACHE"), ("etag", "\"x\"")],
        &RULES,
    )
    .unwrap();
    assert_eq!(f.ttl_at_store, Duration::ZERO);
    let f = admit_with(200, &[("cache-control", "Max-Age=60")], &RULES).unwrap();
    assert_eq!(f.ttl_at_store, Duration::from_secs(60));
    assert_eq!(
        admit_with(200, &[("cache-control", "No-Store")], &RULES),
        Err(NotStored::Forbidden)
    );
}

/// RFC 9111 section 4.1: `Vary: *` in any form never matches, so it is not stored.
#[test]
fn rfc9111_4_1_vary_star_in_any_form() {
    for lines in [
        &["*"][..],
        &["*, *"],
        &["*", "*"],
        &[", *"],
        &["", "*"],
        &["*, Foo"],
        &["Foo, *"],
        &["Foo", " * "],
    ] {
        let headers: Vec<(&str, &str)> = std::iter::once(("cache-control", "max-age=60"))
            .chain(lines.iter().map(|v| ("vary", *v)))
            .collect();
        assert_eq!(
            admit_with(200, &headers, &RULES),
            Err(NotStored::Forbidden),
            "{lines:?}"
        );
    }
    assert!(admit_with(200, &[("vary", "Foo, Star*")], &RULES).is_ok());
}

/// RFC 9213: `CDN-Cache-Control` overrides `Cache-Control` and `Expires` at the edge, in
/// both directions; a space's targeted fields come first.
#[test]
fn rfc9213_targeted_fields_override_cache_control() {
    let stored = |headers: &[(&str, &str)], rules: &TtlRules| admit_with(200, headers, rules);
    // Longer and shorter than Cache-Control.
    let f = stored(
        &[
            ("cache-control", "max-age=1"),
            ("cdn-cache-control", "max-age=3600"),
        ],
        &RULES,
    )
    .unwrap();
    assert_eq!(f.ttl_at_store, Duration::from_secs(3600));
    let f = stored(
        &[
            ("cache-control", "max-age=3600"),
            ("cdn-cache-control", "max-age=1"),
        ],
        &RULES,
    )
    .unwrap();
    assert_eq!(f.ttl_at_store, Duration::from_secs(1));
    // Stored for the edge even when Cache-Control forbids it, and the reverse.
    assert!(
        stored(
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60")
            ],
            &RULES
        )
        .is_ok()
    );
    let expires = httpdate::fmt_http_date(t0() + Duration::from_secs(10_000));
    for cdn in ["private", "no-store"] {
        assert_eq!(
            stored(
                &[
                    ("cache-control", "max-age=10000"),
                    ("expires", &expires),
                    ("cdn-cache-control", cdn)
                ],
                &RULES
            ),
            Err(NotStored::Forbidden),
            "{cdn}"
        );
    }
    let f = stored(
        &[
            ("cache-control", "max-age=10000"),
            ("expires", &expires),
            ("cdn-cache-control", "no-cache"),
        ],
        &RULES,
    )
    .unwrap();
    assert_eq!(f.ttl_at_store, Duration::ZERO);
    // Expires is ignored too: max-age=0 with a future Expires is stale.
    let f = stored(
        &[("expires", &expires), ("cdn-cache-control", "max-age=0")],
        &RULES,
    )
    .unwrap();
    assert_eq!(f.ttl_at_store, Duration::ZERO);
    // Age still counts.
    let f = stored(
        &[("cdn-cache-control", "max-age=3600"), ("age", "7200")],
        &RULES,
    )
    .unwrap();
    assert_eq!(f.ttl_at_store, Duration::ZERO);
    // An invalid field is ignored: Cache-Control applies.
    assert_eq!(
        stored(
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=\"10000\"")
            ],
            &RULES
        ),
        Err(NotStored::Forbidden)
    );
    // The space's own field first.
    let rules = TtlRules {
        targeted: Arc::from([http::HeaderName::from_static("edge-cache-control")]),
        ..RULES.clone()
    };
    let headers = [
        ("cache-control", "no-store"),
        ("cdn-cache-control", "max-age=50"),
        ("edge-cache-control", "max-age=5"),
    ];
    assert_eq!(
        stored(&headers, &rules).unwrap().ttl_at_store,
        Duration::from_secs(5)
    );
    assert_eq!(
        stored(&headers, &RULES).unwrap().ttl_at_store,
        Duration::from_secs(50)
    );
}

/// RFC 9111 section 3.5: a response to a request with `Authorization` is stored only when
/// the origin allows a shared cache to.
#[test]
fn rfc9111_3_5_authorization() {
    let mut request = HeaderMap::new();
    request.insert(AUTHORIZATION, HeaderValue::from_static("Bearer x"));
    let admit_auth = |cc: &str| {
        let mut h = HeaderMap::new();
        h.insert("cache-control", HeaderValue::from_str(cc).unwrap());
        admit(&request, StatusCode::OK, &h, Exchange::at(t0()), &RULES)
    };
    assert_eq!(admit_auth("max-age=60"), Err(NotStored::Forbidden));
    for cc in [
        "max-age=60, public",
        "s-maxage=60",
        "max-age=60, must-revalidate",
    ] {
        assert!(admit_auth(cc).is_ok(), "{cc}");
    }
}

#[test]
fn a_soft_purge_makes_it_stale_and_keeps_it() {
    let f = admit_with(
        200,
        &[("cache-control", "max-age=100, stale-while-revalidate=30")],
        &RULES,
    )
    .unwrap();
    let purged = f.invalidated(t0() + Duration::from_secs(10));
    assert_eq!(
        purged.state(t0() + Duration::from_secs(11)),
        FreshnessState::StaleWhileRevalidate
    );
    assert_eq!(
        purged.state(t0() + Duration::from_secs(41)),
        FreshnessState::Stale
    );
    assert_eq!(purged.ttl_seconds(t0() + Duration::from_secs(12)), -2);
    assert_eq!(purged.keep_for(true), f.keep_for(true));
    // A later soft purge does not make it fresh for longer.
    assert_eq!(
        purged
            .invalidated(t0() + Duration::from_secs(50))
            .fresh_until(),
        t0() + Duration::from_secs(10)
    );
}

#[test]
fn negative_ttl_for_404() {
    let f = admit_with(404, &[], &RULES).unwrap();
    assert_eq!(f.ttl_at_store, Duration::from_secs(10));
    let rules = TtlRules {
        negative_ttl: Duration::ZERO,
        ..RULES.clone()
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
        ..RULES.clone()
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
