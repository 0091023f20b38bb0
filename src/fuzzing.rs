//! Entry points for the fuzz targets in `fuzz/` (one line each there) and for replaying their
//! corpus as ordinary tests. Each takes arbitrary bytes and must never panic.

use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::cache::Validators;
use crate::cache::cache_control::CacheControl;
use crate::cache::key::{CacheKey, PurgeSelector, key_query, object_key};
use crate::config::{Config, QueryPolicy};
use crate::routing::{Router, host_name};

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let config = Config::parse(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[[origin.user]]\nid = \"a\"\naccess_key = \"AKID1\"\nsecret_key = \"secret-secret\"\n\
             [[space]]\nname = \"assets\"\ncustom_domain = \"images.example.com\"\n[[space]]\nname = \"ipspace\"\ncustom_domain = \"127.0.0.1\"\n",
        )
        .expect("the fuzzing config is valid");
        Router::new(&config)
    })
}

/// Host routing: any `Host` value.
pub fn routing(data: &[u8]) {
    if let Ok(host) = std::str::from_utf8(data) {
        let _ = host_name(host);
        if let Some(space) = router().route(host) {
            assert!(space.name == "assets" || space.name == "ipspace");
        }
    }
}

/// Range (and conditional) evaluation against a 1000-byte representation.
pub fn range(data: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(http::header::RANGE, value);
    let validators = Validators::default;
    if let crate::server::respond::Decision::Partial(ranges) = crate::server::respond::decide(
        &Method::GET,
        &headers,
        StatusCode::OK,
        &validators,
        Some(1000),
    ) {
        for range in ranges {
            assert!(range.start() <= range.end() && *range.end() < 1000);
        }
    }
}

/// Cache-Control parsing.
pub fn cache_control(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let cc = CacheControl::parse(text);
        if let Some(max_age) = cc.max_age {
            assert!(max_age <= u64::from(u32::MAX));
        }
    }
    // The same bytes as every field admission reads: targeted fields (RFC 9213), dates,
    // `Age`, `Vary`, tags. Whatever they hold, lifetimes stay within 2^31 s.
    let Ok(value) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    let now = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let mut headers = http::HeaderMap::new();
    for name in [
        "cache-control",
        "cdn-cache-control",
        "edge-cache-control",
        "expires",
        "date",
        "age",
        "vary",
        "surrogate-key",
        "cache-tag",
    ] {
        headers.insert(name, value.clone());
    }
    let _ = crate::cache::http_date::parse(data, now);
    let _ = crate::cache::Tags::from_headers(&headers);
    let rules = crate::cache::TtlRules {
        space_ttl: None,
        default_ttl: std::time::Duration::from_secs(3600),
        negative_ttl: std::time::Duration::from_secs(10),
        stale_grace: std::time::Duration::ZERO,
        targeted: std::sync::Arc::from([http::HeaderName::from_static("edge-cache-control")]),
    };
    if let Ok(freshness) = crate::cache::admission::admit(
        &http::HeaderMap::new(),
        http::StatusCode::OK,
        &headers,
        crate::cache::Exchange::at(now),
        &rules,
    ) {
        assert!(freshness.ttl_at_store <= crate::cache::freshness::MAX_LIFETIME);
        assert!(freshness.initial_age <= crate::cache::freshness::MAX_LIFETIME);
        let _ = freshness.state(now);
    }
}

/// Cache keys and purge selectors from a request target `path?query`.
pub fn cache_key(data: &[u8]) {
    let Ok(target) = std::str::from_utf8(data) else {
        return;
    };
    let (path, query) = target
        .split_once('?')
        .map_or((target, None), |(p, q)| (p, Some(q)));
    for policy in [
        QueryPolicy::Full,
        QueryPolicy::Ignore,
        QueryPolicy::Allow(vec!["v".to_owned()]),
    ] {
        let query = key_query(query, &policy);
        if let Ok(key) = object_key(path) {
            assert!(!key.contains('\0') && key.split('/').all(|s| s != ".."));
            let cache_key = CacheKey::new("space", &key, &query);
            assert_eq!(cache_key.space(), "space");
            assert_eq!(cache_key.object_key(), key);
            if let Ok(selector) = PurgeSelector::parse("space", path) {
                let _ = selector.matches(&cache_key, None);
            }
        }
    }
}

/// Config parsing and validation.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(config) = Config::parse(text)
    {
        let _ = config.to_toml();
    }
}

/// Purge request bodies.
pub fn purge_body(data: &[u8]) {
    if let Ok((selectors, request)) = crate::purge::parse_request("space", data) {
        assert_eq!(selectors.len(), request.files.len() + request.tags.len());
    }
}

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// Every target by name, for corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("routing", routing),
    ("range", range),
    ("cache_control", cache_control),
    ("cache_key", cache_key),
    ("config", config),
    ("purge_body", purge_body),
];
