//! A stored response: head, body and freshness, shared by every request it serves.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::LazyLock;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{ETAG, LAST_MODIFIED, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::freshness::Freshness;
use super::key::CacheKey;

/// One cached response. Cheap to share: the body is a `Bytes` and the entry sits in an `Arc`.
#[derive(Debug)]
pub struct Entry {
    pub key: CacheKey,
    pub status: StatusCode,
    /// Response headers as stored (hop-by-hop fields and `Age` removed).
    pub headers: HeaderMap,
    pub body: Bytes,
    pub freshness: Freshness,
    pub validators: Validators,
    /// The request header values this variant was selected by (`Vary`).
    pub vary: VaryValues,
}

impl Entry {
    /// Bytes this entry holds, for the memory tier's weigher.
    pub fn weight(&self) -> u32 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        u32::try_from(self.body.len() + headers + self.key.as_str().len() + 256).unwrap_or(u32::MAX)
    }
}

/// `ETag` and `Last-Modified` of a stored response, parsed once.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    pub etag: Option<HeaderValue>,
    pub last_modified: Option<SystemTime>,
}

impl Validators {
    /// Reads the validators from response headers.
    pub fn from_headers(headers: &HeaderMap) -> Validators {
        Validators {
            etag: headers.get(ETAG).cloned(),
            last_modified: headers
                .get(LAST_MODIFIED)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok()),
        }
    }

    /// Whether the origin can answer a conditional request with 304.
    pub fn any(&self) -> bool {
        self.etag.is_some() || self.last_modified.is_some()
    }
}

/// The header names a response varies on.
pub fn vary_names(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
}

/// Appends `name` to the response's `Vary` unless it is listed already (or `*`).
pub fn ensure_vary(headers: &mut HeaderMap, name: &HeaderName) {
    let listed = headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|n| n == "*" || n.eq_ignore_ascii_case(name.as_str()));
    if !listed {
        headers.append(VARY, HeaderValue::from_name(name.clone()));
    }
}

/// Keys of the variant ids: random per process, so nobody can aim collisions at a variant.
static VARIANT_HASH: LazyLock<RandomState> = LazyLock::new(RandomState::new);

/// The values a request has for the `Vary` header names of a response, and the variant id
/// they hash to.
///
/// The id is computed from the request's header values directly ([`VaryValues::id_of`]), so a
/// lookup finds its variant without collecting anything; [`VaryValues::matches`] then compares
/// the stored values, equally without allocating (ids may collide; values decide).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VaryValues {
    /// Each name with the request's values joined by ", " (trimmed), `None` when absent.
    values: Vec<(HeaderName, Option<Vec<u8>>)>,
    id: u64,
}

impl VaryValues {
    /// Collects `request`'s values for `names`, normalized (joined by ", ").
    pub fn of(names: &[HeaderName], request: &HeaderMap) -> VaryValues {
        let values = names
            .iter()
            .map(|name| {
                let mut joined: Option<Vec<u8>> = None;
                for value in request.get_all(name) {
                    let buf = joined.get_or_insert_with(Vec::new);
                    if !buf.is_empty() {
                        buf.extend_from_slice(b", ");
                    }
                    buf.extend_from_slice(value.as_bytes().trim_ascii());
                }
                (name.clone(), joined)
            })
            .collect();
        VaryValues {
            values,
            id: Self::id_of(names.iter(), request),
        }
    }

    /// The variant id `request` selects among responses varying on `names`, without
    /// allocating: 0 (the primary slot) when there are no names, never 0 otherwise.
    pub fn id_of<'a>(names: impl IntoIterator<Item = &'a HeaderName>, request: &HeaderMap) -> u64 {
        let mut hasher = VARIANT_HASH.build_hasher();
        let mut any = false;
        for name in names {
            any = true;
            hasher.write(name.as_str().as_bytes());
            hasher.write_u8(0xff);
            let mut values = request.get_all(name).iter();
            match values.next() {
                None => hasher.write_u8(0),
                Some(first) => {
                    hasher.write_u8(1);
                    hasher.write(first.as_bytes().trim_ascii());
                    for value in values {
                        hasher.write(b", ");
                        hasher.write(value.as_bytes().trim_ascii());
                    }
                    hasher.write_u8(0xff);
                }
            }
        }
        if any { hasher.finish().max(1) } else { 0 }
    }

    /// Whether `request` has exactly these values (compared in place, no allocation).
    pub fn matches(&self, request: &HeaderMap) -> bool {
        self.values.iter().all(|(name, stored)| {
            let mut values = request.get_all(name).iter();
            let Some(stored) = stored else {
                return values.next().is_none();
            };
            let mut rest = stored.as_slice();
            for (i, value) in values.enumerate() {
                if i > 0 {
                    let Some(after) = rest.strip_prefix(b", ") else {
                        return false;
                    };
                    rest = after;
                }
                let Some(after) = rest.strip_prefix(value.as_bytes().trim_ascii()) else {
                    return false;
                };
                rest = after;
            }
            // A stored value came from at least one request value: an absent one never
            // matches it, not even when it is empty.
            rest.is_empty() && request.contains_key(name)
        })
    }

    /// Whether the response varies at all.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// A hash naming this variant under its primary key (never 0, which is the primary).
    pub fn variant_id(&self) -> u64 {
        self.id
    }

    /// The header names.
    pub fn names(&self) -> Vec<HeaderName> {
        self.values.iter().map(|(n, _)| n.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn ids_and_matches_agree_with_collected_values() {
        let names = [http::header::ACCEPT_ENCODING, http::header::ORIGIN];
        let cases = [
            request(&[]),
            request(&[("origin", "https://a.example")]),
            request(&[("origin", " https://a.example ")]),
            request(&[("origin", "https://b.example")]),
            request(&[("origin", "")]),
            request(&[("accept-encoding", "gzip"), ("accept-encoding", "br")]),
            request(&[("accept-encoding", "gzip, br")]),
            request(&[("accept-encoding", "gzip")]),
            request(&[("accept-encoding", "gzip"), ("origin", "https://a.example")]),
        ];
        for (i, a) in cases.iter().enumerate() {
            let stored = VaryValues::of(&names, a);
            assert_ne!(stored.variant_id(), 0);
            assert_eq!(stored.variant_id(), VaryValues::id_of(&names, a));
            for (j, b) in cases.iter().enumerate() {
                let same = stored == VaryValues::of(&names, b);
                assert_eq!(stored.matches(b), same, "case {i} against {j}");
                if same {
                    assert_eq!(stored.variant_id(), VaryValues::id_of(&names, b));
                }
            }
        }
        // Two values and one joined value are the same variant (RFC 9110 5.3).
        assert!(VaryValues::of(&names, &cases[5]).matches(&cases[6]));
        // A missing header and an empty one are different variants.
        assert!(!VaryValues::of(&names, &cases[0]).matches(&cases[4]));
    }

    #[test]
    fn no_names_is_the_primary() {
        let values = VaryValues::of(&[], &request(&[("origin", "https://a.example")]));
        assert!(values.is_empty());
        assert_eq!(values.variant_id(), 0);
        assert!(values.matches(&HeaderMap::new()));
    }

    #[test]
    fn ensure_vary_adds_a_name_once() {
        let mut headers = request(&[("vary", "Accept-Encoding")]);
        ensure_vary(&mut headers, &http::header::ORIGIN);
        ensure_vary(&mut headers, &http::header::ORIGIN);
        assert_eq!(
            vary_names(&headers),
            [http::header::ACCEPT_ENCODING, http::header::ORIGIN]
        );
        let mut headers = request(&[("vary", "origin, Access-Control-Request-Method")]);
        ensure_vary(&mut headers, &http::header::ORIGIN);
        assert_eq!(headers.get_all(VARY).iter().count(), 1);
        let mut headers = HeaderMap::new();
        ensure_vary(&mut headers, &http::header::ORIGIN);
        assert_eq!(headers[VARY], "origin");
    }
}
