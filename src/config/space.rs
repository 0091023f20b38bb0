//! Validation of one `[[space]]`.

use super::fields::*;
use super::*;

/// Validates one space; errors name `{prefix}.{field}` (just the field when `prefix` is
/// empty, as the admin API reports them).
pub fn validate_space(
    prefix: &str,
    s: raw::RawSpace,
    acme: &Option<Acme>,
) -> Result<Space, ConfigError> {
    let key = |field: &str| match prefix {
        "" => field.to_owned(),
        _ => format!("{prefix}.{field}"),
    };
    if !is_dns_label(&s.name) {
        return Err(invalid(
            key("name"),
            format!(
                "`{}` must be one lower-case DNS label (a-z, 0-9, -)",
                s.name
            ),
        ));
    }
    let region = s.region.unwrap_or_else(|| "local".to_owned());
    if !is_dns_label(&region) {
        return Err(invalid(
            key("region"),
            format!("`{region}` must be one lower-case DNS label"),
        ));
    }
    let ttl = s
        .ttl
        .map(|t| parse_duration(&t).map_err(|r| invalid(key("ttl"), r)))
        .transpose()?;
    let bucket = s.bucket.unwrap_or_else(|| s.name.clone());
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.']);
    if !bucket_ok {
        return Err(invalid(
            key("bucket"),
            format!("`{bucket}` is not a valid S3 bucket name (3-63 of a-z 0-9 . -)"),
        ));
    }
    if RESERVED_BUCKETS.contains(&bucket.as_str()) {
        return Err(invalid(
            key("bucket"),
            format!(
                "`{bucket}` holds the fleet's private state (keys, certificates) and is never served"
            ),
        ));
    }
    let custom_domain = s
        .custom_domain
        .map(|d| {
            normalize_host(&d)
                .ok_or_else(|| invalid(key("custom_domain"), format!("`{d}` is not a host name")))
        })
        .transpose()?;
    let certificate = match s.certificate {
        None => SpaceCert::None,
        Some(raw::RawSpaceCert::Named(n)) if n == "acme" => {
            if acme.is_none() {
                return Err(invalid(
                    key("certificate"),
                    "is \"acme\" but there is no [acme] section",
                ));
            }
            if custom_domain.is_none() {
                return Err(invalid(
                    key("certificate"),
                    "\"acme\" needs a custom_domain",
                ));
            }
            SpaceCert::Acme
        }
        Some(raw::RawSpaceCert::Named(n)) => {
            return Err(invalid(
                key("certificate"),
                format!("`{n}` is not \"acme\" or {{ cert = ..., key = ... }}"),
            ));
        }
        Some(raw::RawSpaceCert::Files { cert, key: k }) => SpaceCert::Files {
            cert: cert.into(),
            key: k.into(),
        },
    };
    let origin_auth = match s.origin_auth.as_deref() {
        None | Some("anonymous") => OriginAuth::Anonymous,
        Some("signed") => OriginAuth::Signed,
        Some(other) => {
            return Err(invalid(
                key("origin_auth"),
                format!("`{other}` is not anonymous or signed"),
            ));
        }
    };
    let query = match s.query {
        None => QueryPolicy::Full,
        Some(raw::RawQuery::Named(n)) if n == "full" => QueryPolicy::Full,
        Some(raw::RawQuery::Named(n)) if n == "ignore" => QueryPolicy::Ignore,
        Some(raw::RawQuery::Named(n)) => {
            return Err(invalid(
                key("query"),
                format!("`{n}` is not \"full\", \"ignore\" or {{ allow = [...] }}"),
            ));
        }
        Some(raw::RawQuery::Allow { mut allow }) => {
            allow.sort();
            allow.dedup();
            QueryPolicy::Allow(allow)
        }
    };
    let http = match s.http.as_deref() {
        None | Some("serve") => PlainHttp::Serve,
        Some("redirect") => PlainHttp::Redirect,
        Some(other) => {
            return Err(invalid(
                key("http"),
                format!("`{other}` is not serve or redirect"),
            ));
        }
    };
    let targeted = validate_targeted(&key("targeted"), s.targeted)?;
    Ok(Space {
        name: s.name,
        region,
        ttl,
        bucket,
        custom_domain,
        certificate,
        origin_auth,
        query,
        http,
        compress: s.compress.unwrap_or(true),
        targeted,
    })
}

/// Buckets of the fleet's own state: the ACME account and certificates, and the control
/// plane's records (private keys among them). A space over one would publish them.
pub const RESERVED_BUCKETS: &[&str] = &[ACME_BUCKET, STATE_BUCKET];
/// The bucket of the fleet's ACME state (`acme.store = "origin"`).
pub const ACME_BUCKET: &str = "edge-acme";
/// The bucket of the fleet's control-plane records.
pub const STATE_BUCKET: &str = "edge-state";

/// Most targeted fields a space may name.
const MAX_TARGETED: usize = 8;

/// A space's `targeted`: header names, lower-cased, each once, at most [`MAX_TARGETED`],
/// none that is not a cache-control field of its own (`Cache-Control` and
/// `CDN-Cache-Control` always apply in their places).
fn validate_targeted(
    key: &str,
    names: Option<Vec<String>>,
) -> Result<std::sync::Arc<[http::HeaderName]>, ConfigError> {
    let mut valid: Vec<http::HeaderName> = Vec::new();
    let names = names.unwrap_or_default();
    if names.len() > MAX_TARGETED {
        return Err(invalid(
            key,
            format!("at most {MAX_TARGETED} targeted fields"),
        ));
    }
    for name in names {
        let parsed = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(key, format!("`{name}` is not a header field name")))?;
        if matches!(parsed.as_str(), "cache-control" | "cdn-cache-control") {
            return Err(invalid(
                key,
                format!("`{name}` always applies; list only further fields"),
            ));
        }
        if !valid.contains(&parsed) {
            valid.push(parsed);
        }
    }
    Ok(valid.into())
}
