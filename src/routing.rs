//! Host routing: which space a request's `Host` / `:authority` (or TLS SNI) names.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{Config, Space};

/// Maps host names to spaces: `<space>.<region>.<cdn domain>` and each custom domain.
#[derive(Debug, Clone)]
pub struct Router {
    /// FNV hashing: the table's names come from the config, never from requests, so no
    /// client can fill it with colliding names, and every request hashes its host with it
    /// (SipHash costs several times more on a short name).
    by_host: HashMap<String, Arc<Space>, fnv::FnvBuildHasher>,
}

impl Router {
    /// Builds the routing table from the config's spaces.
    pub fn new(config: &Config) -> Router {
        let mut by_host = HashMap::default();
        for space in &config.spaces {
            let space = Arc::new(space.clone());
            by_host.insert(
                format!("{}.{}.{}", space.name, space.region, config.cdn.domain),
                space.clone(),
            );
            if let Some(domain) = &space.custom_domain {
                by_host.insert(domain.clone(), space.clone());
            }
        }
        Router { by_host }
    }

    /// The space a `Host` header value names; case, port and a trailing dot are ignored.
    pub fn route(&self, host: &str) -> Option<&Arc<Space>> {
        let name = host_name(host)?;
        if name.bytes().any(|b| b.is_ascii_uppercase()) || name.ends_with('.') {
            let normalized = name.trim_end_matches('.').to_ascii_lowercase();
            self.by_host.get(&normalized)
        } else {
            self.by_host.get(name)
        }
    }

    /// All host names served, e.g. for certificates.
    pub fn hosts(&self) -> impl Iterator<Item = (&str, &Arc<Space>)> {
        self.by_host.iter().map(|(h, s)| (h.as_str(), s))
    }
}

/// The host part of a `Host` value: strips the port, keeps IPv6 literals in brackets.
pub fn host_name(host: &str) -> Option<&str> {
    let host = host.trim();
    if host.is_empty() {
        return None;
    }
    if let Some(rest) = host.strip_prefix('[') {
        let end = rest.find(']')?;
        let after = &rest[end + 1..];
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        return Some(&host[..end + 2]);
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => host,
    };
    if name.is_empty() || name.bytes().any(|b| matches!(b, b'/' | b'@' | b' ' | b':')) {
        return None;
    }
    Some(name)
}

/// Whether two authorities (`Host` values) name the same host and port: host names compare
/// without case or a trailing dot, and ports only when both state one (a default port may be
/// left out of either).
pub fn same_authority(a: &str, b: &str) -> bool {
    let (Some(name_a), Some(name_b)) = (host_name(a), host_name(b)) else {
        return false;
    };
    let same_name = name_a
        .trim_end_matches('.')
        .eq_ignore_ascii_case(name_b.trim_end_matches('.'));
    let port = |text: &str, name: &str| {
        let rest = text.trim()[name.len()..].trim_start_matches(']');
        rest.strip_prefix(':').map(str::to_owned)
    };
    let same_port = match (port(a, name_a), port(b, name_b)) {
        (Some(pa), Some(pb)) => pa == pb,
        _ => true,
    };
    same_name && same_port
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let config = Config::parse(
            r#"
            [listen]
            http = "127.0.0.1:0"
            [cdn]
            domain = "cdn.example.com"
            [[origin.user]]
            id = "a"
            access_key = "AKID1"
            secret_key = "secret-secret"
            [[space]]
            name = "assets"
            region = "nyc3"
            custom_domain = "images.example.com"
            [[space]]
            name = "ipspace"
            custom_domain = "127.0.0.1"
            "#,
        )
        .unwrap();
        Router::new(&config)
    }

    #[test]
    fn edge_url_and_custom_domain() {
        let r = router();
        assert_eq!(
            r.route("assets.nyc3.cdn.example.com").unwrap().name,
            "assets"
        );
        assert_eq!(
            r.route("ASSETS.nyc3.CDN.example.com.:443").unwrap().name,
            "assets"
        );
        assert_eq!(r.route("images.example.com:8443").unwrap().name, "assets");
        assert_eq!(r.route("127.0.0.1:8080").unwrap().name, "ipspace");
        assert!(r.route("other.nyc3.cdn.example.com").is_none());
        assert!(r.route("assets.ams3.cdn.example.com").is_none());
        assert!(r.route("").is_none());
        assert!(r.route("images.example.com:bad").is_none());
        assert!(r.route("user@images.example.com").is_none());
    }

    #[test]
    fn host_names() {
        assert_eq!(host_name("[::1]:8080"), Some("[::1]"));
        assert_eq!(host_name("a.b:1"), Some("a.b"));
        assert_eq!(host_name("[::1"), None);
    }

    #[test]
    fn authorities_agree_only_on_the_same_host_and_port() {
        assert!(same_authority("a.example.com", "A.EXAMPLE.com."));
        assert!(same_authority("a.example.com:443", "a.example.com"));
        assert!(same_authority("[::1]:8080", "[::1]:8080"));
        assert!(!same_authority("a.example.com", "b.example.com"));
        assert!(!same_authority("a.example.com:8080", "a.example.com:8081"));
        assert!(!same_authority("[::1]:1", "[::1]:2"));
        assert!(!same_authority("a.example.com", ""));
    }
}
