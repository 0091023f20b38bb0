//! Bucket CORS: stored rules, matching a request's `Origin` against them, and the
//! `Access-Control-*` headers of preflight and actual responses.

use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

/// One CORS rule as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    /// Optional rule id.
    pub id: Option<String>,
    /// Origins, each with at most one `*`.
    pub allowed_origins: Vec<String>,
    /// Methods (GET, PUT, POST, DELETE, HEAD).
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight may ask for (`*` wildcards).
    pub allowed_headers: Vec<String>,
    /// Response headers browsers may read.
    pub expose_headers: Vec<String>,
    /// Preflight cache time.
    pub max_age_seconds: Option<i32>,
}

/// Why a CORS configuration was refused (`MalformedXML`/`InvalidRequest`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct CorsError(pub String);

const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

impl CorsRule {
    /// Converts and checks a rule from the XML body.
    pub fn from_dto(rule: s3s::dto::CORSRule) -> Result<CorsRule, CorsError> {
        if rule.allowed_origins.is_empty() || rule.allowed_methods.is_empty() {
            return Err(CorsError(
                "each CORSRule needs AllowedOrigin and AllowedMethod".into(),
            ));
        }
        for m in &rule.allowed_methods {
            if !METHODS.contains(&m.as_str()) {
                return Err(CorsError(format!(
                    "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
                )));
            }
        }
        for o in &rule.allowed_origins {
            if o.matches('*').count() > 1 {
                return Err(CorsError(format!(
                    "AllowedOrigin {o:?} can not have more than one wildcard."
                )));
            }
        }
        Ok(CorsRule {
            id: rule.id,
            allowed_origins: rule.allowed_origins,
            allowed_methods: rule.allowed_methods,
            allowed_headers: rule.allowed_headers.unwrap_or_default(),
            expose_headers: rule.expose_headers.unwrap_or_default(),
            max_age_seconds: rule.max_age_seconds,
        })
    }

    /// The XML form.
    #[must_use]
    pub fn to_dto(&self) -> s3s::dto::CORSRule {
        s3s::dto::CORSRule {
            id: self.id.clone(),
            allowed_origins: self.allowed_origins.clone(),
            allowed_methods: self.allowed_methods.clone(),
            allowed_headers: (!self.allowed_headers.is_empty())
                .then(|| self.allowed_headers.clone()),
            expose_headers: (!self.expose_headers.is_empty()).then(|| self.expose_headers.clone()),
            max_age_seconds: self.max_age_seconds,
        }
    }

    fn origin_matches(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|pattern| match pattern.split_once('*') {
                None => pattern == origin,
                Some((head, tail)) => {
                    origin.len() >= head.len() + tail.len()
                        && origin.starts_with(head)
                        && origin.ends_with(tail)
                }
            })
    }

    fn header_allowed(&self, header: &str) -> bool {
        self.allowed_headers.iter().any(|pattern| {
            let pattern = pattern.to_ascii_lowercase();
            match pattern.split_once('*') {
                None => pattern == header,
                Some((head, tail)) => {
                    header.len() >= head.len() + tail.len()
                        && header.starts_with(head)
                        && header.ends_with(tail)
                }
            }
        })
    }

    fn wildcard_origin(&self) -> bool {
        self.allowed_origins.iter().any(|o| o == "*")
    }
}

/// The first rule allowing `origin` to use `method` with `request_headers` (lower-case).
#[must_use]
pub fn find_rule<'a>(
    rules: &'a [CorsRule],
    origin: &str,
    method: &str,
    request_headers: &[String],
) -> Option<&'a CorsRule> {
    rules.iter().find(|r| {
        r.origin_matches(origin)
            && r.allowed_methods.iter().any(|m| m == method)
            && request_headers.iter().all(|h| r.header_allowed(h))
    })
}

fn value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

fn insert(map: &mut HeaderMap, name: &'static str, v: Option<HeaderValue>) {
    if let Some(v) = v {
        map.insert(name, v);
    }
}

/// Headers of a successful preflight answer.
#[must_use]
pub fn preflight_headers(rule: &CorsRule, origin: &str, request_headers: &[String]) -> HeaderMap {
    let mut map = actual_headers(rule, origin);
    if !request_headers.is_empty() {
        insert(
            &mut map,
            "access-control-allow-headers",
            value(&request_headers.join(", ")),
        );
    }
    if let Some(age) = rule.max_age_seconds {
        insert(&mut map, "access-control-max-age", value(&age.to_string()));
    }
    map.insert(
        http::header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
        ),
    );
    map
}

/// Headers added to an actual (non-preflight) response the rule allows.
#[must_use]
pub fn actual_headers(rule: &CorsRule, origin: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    if rule.wildcard_origin() {
        map.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    } else {
        insert(&mut map, "access-control-allow-origin", value(origin));
        map.insert(
            "access-control-allow-credentials",
            HeaderValue::from_static("true"),
        );
    }
    insert(
        &mut map,
        "access-control-allow-methods",
        value(&rule.allowed_methods.join(", ")),
    );
    if !rule.expose_headers.is_empty() {
        insert(
            &mut map,
            "access-control-expose-headers",
            value(&rule.expose_headers.join(", ")),
        );
    }
    map.insert(
        http::header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
        ),
    );
    map
}

/// Splits `Access-Control-Request-Headers` into lower-case names.
#[must_use]
pub fn parse_request_headers(value: Option<&str>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        let v = |xs: &[&str]| xs.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        CorsRule {
            id: None,
            allowed_origins: v(origins),
            allowed_methods: v(methods),
            allowed_headers: v(headers),
            expose_headers: vec!["ETag".into()],
            max_age_seconds: Some(600),
        }
    }

    #[test]
    fn matching_origin_method_and_headers() {
        let rules = [
            rule(
                &["https://*.example.com"],
                &["GET"],
                &["x-amz-*", "Content-Type"],
            ),
            rule(&["*"], &["HEAD"], &[]),
        ];
        let hs = parse_request_headers(Some("X-Amz-Date, content-type"));
        assert!(find_rule(&rules, "https://a.example.com", "GET", &hs).is_some());
        assert!(find_rule(&rules, "https://a.example.org", "GET", &hs).is_none());
        assert!(find_rule(&rules, "https://a.example.com", "PUT", &[]).is_none());
        assert!(
            find_rule(
                &rules,
                "https://a.example.com",
                "GET",
                &["authorization".into()]
            )
            .is_none()
        );
        let any = find_rule(&rules, "http://x", "HEAD", &[]).unwrap();
        let actual = actual_headers(any, "http://x");
        assert_eq!(actual["access-control-allow-origin"], "*");
        assert_eq!(actual["access-control-allow-methods"], "HEAD");
        assert!(!actual.contains_key("access-control-allow-credentials"));
        let h = preflight_headers(&rules[0], "https://a.example.com", &hs);
        assert_eq!(h["access-control-allow-origin"], "https://a.example.com");
        assert_eq!(h["access-control-max-age"], "600");
        assert_eq!(
            h["access-control-allow-headers"],
            "x-amz-date, content-type"
        );
    }
}
