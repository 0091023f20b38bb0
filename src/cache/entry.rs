//! A stored response: head, body and freshness, shared by every request it serves.

use std::hash::{BuildHasher, RandomState};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use http::header::{ETAG, LAST_MODIFIED, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

pub use super::body::Body;
use super::freshness::Freshness;
pub use super::head::StoredHead;
use super::key::CacheKey;
use super::tags::Tags;

/// One cached response. Cheap to share: the body is a `Bytes` (or a stored-body handle) and
/// the entry sits in an `Arc`.
///
/// Memory per entry (a 1 KiB object with four header fields): this struct ~250 bytes, its
/// packed head ~200 ([`StoredHead`]), its key ~50, its index slot ~100, and the body.
#[derive(Debug)]
pub struct Entry {
    pub key: CacheKey,
    pub status: StatusCode,
    /// Response header fields as stored (hop-by-hop fields and `Age` removed).
    pub head: StoredHead,
    pub body: Body,
    pub freshness: Freshness,
    /// The request header values this variant was selected by (`Vary`).
    pub vary: VaryValues,
    /// The cache tags the origin gave it (not among the stored fields).
    pub tags: Tags,
    /// Whether the response has an `ETag` or a `Last-Modified` to revalidate with.
    has_validators: bool,
}

impl Entry {
    /// A stored response with `headers` (packed; see [`StoredHead`]).
    pub fn new(
        key: CacheKey,
        status: StatusCode,
        headers: &HeaderMap,
        body: Body,
        freshness: Freshness,
        vary: VaryValues,
    ) -> Entry {
        Entry::with_head(
            key,
            status,
            StoredHead::pack(headers),
            body,
            freshness,
            vary,
        )
    }

    /// A stored response with a head already packed.
    pub fn with_head(
        key: CacheKey,
        status: StatusCode,
        head: StoredHead,
        body: Body,
        freshness: Freshness,
        vary: VaryValues,
    ) -> Entry {
        let has_validators = head.get(&ETAG).is_some() || head.get(&LAST_MODIFIED).is_some();
        Entry {
            key,
            status,
            head,
            body,
            freshness,
            vary,
            tags: Tags::default(),
            has_validators,
        }
    }

    /// The same entry with cache tags.
    pub fn with_tags(mut self, tags: Tags) -> Entry {
        self.tags = tags;
        self
    }

    /// The same response with other freshness.
    pub fn with_freshness(&self, freshness: Freshness) -> Entry {
        Entry {
            key: self.key.clone(),
            status: self.status,
            head: self.head.clone(),
            body: self.body.clone(),
            freshness,
            vary: self.vary.clone(),
            tags: self.tags.clone(),
            has_validators: self.has_validators,
        }
    }

    /// The stored header fields as a map.
    pub fn headers(&self) -> HeaderMap {
        self.head.to_map(0)
    }

    /// `ETag` and `Last-Modified`, read from the stored fields.
    pub fn validators(&self) -> Validators {
        Validators {
            etag: self.head.get(&ETAG),
            last_modified: self
                .head
                .get(&LAST_MODIFIED)
                .and_then(|v| httpdate::parse_http_date(v.to_str().ok()?).ok()),
        }
    }

    /// Whether the origin can answer a conditional request about it with 304.
    pub fn has_validators(&self) -> bool {
        self.has_validators
    }

    /// The same response, stale at once and never servable without a revalidation (not even
    /// when the origin fails): for entries the PoP cannot vouch for.
    pub fn must_revalidate(&self) -> Entry {
        self.with_freshness(Freshness {
            ttl_at_store: Duration::ZERO,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            ..self.freshness
        })
    }

    /// Bytes this entry holds, for the memory tier's weigher.
    pub fn weight(&self) -> u32 {
        let body = usize::try_from(self.body.len()).unwrap_or(usize::MAX);
        let fixed = std::mem::size_of::<Entry>() + self.key.as_str().len() + 128;
        let head = self.head.weight() + self.tags.weight();
        u32::try_from(body.saturating_add(head + fixed)).unwrap_or(u32::MAX)
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

/// The seed of variant ids: random per process, so nobody can aim collisions at a variant
/// (ids live in memory only; disk files are named by their own stable hash).
static VARIANT_SEED: LazyLock<u64> =
    LazyLock::new(|| RandomState::new().hash_one(0xcbf2_9ce4_8422_2325_u64));

/// FNV-1a over a byte stream, seeded, with a final mix. Byte-wise, so the same bytes give the
/// same id however they are split: a request's values one by one, or joined as stored.
struct VariantHasher(u64);

impl VariantHasher {
    fn new() -> VariantHasher {
        VariantHasher(*VARIANT_SEED)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn name(&mut self, name: &HeaderName) {
        self.bytes(name.as_str().as_bytes());
        self.bytes(&[0xff]);
    }

    /// An id for the variant: never 0, which names the primary slot.
    fn finish(self) -> u64 {
        // splitmix64's finalizer.
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (x ^ (x >> 31)).max(1)
    }
}

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
        VaryValues::from_pairs(values)
    }

    /// Rebuilds values from their pairs (as stored on disk).
    pub fn from_pairs(values: Vec<(HeaderName, Option<Vec<u8>>)>) -> VaryValues {
        let id = if values.is_empty() {
            0
        } else {
            let mut hasher = VariantHasher::new();
            for (name, value) in &values {
                hasher.name(name);
                match value {
                    None => hasher.bytes(&[0]),
                    Some(joined) => {
                        hasher.bytes(&[1]);
                        hasher.bytes(joined);
                        hasher.bytes(&[0xff]);
                    }
                }
            }
            hasher.finish()
        };
        VaryValues { values, id }
    }

    /// The variant id `request` selects among responses varying on `names` (the id of
    /// `VaryValues::of(names, request)`), without allocating: 0 (the primary slot) when there
    /// are no names.
    pub fn id_of<'a>(names: impl IntoIterator<Item = &'a HeaderName>, request: &HeaderMap) -> u64 {
        let mut hasher = VariantHasher::new();
        let mut any = false;
        for name in names {
            any = true;
            hasher.name(name);
            let mut values = request.get_all(name).iter();
            match values.next() {
                None => hasher.bytes(&[0]),
                Some(first) => {
                    hasher.bytes(&[1]);
                    hasher.bytes(first.as_bytes().trim_ascii());
                    for value in values {
                        hasher.bytes(b", ");
                        hasher.bytes(value.as_bytes().trim_ascii());
                    }
                    hasher.bytes(&[0xff]);
                }
            }
        }
        if any { hasher.finish() } else { 0 }
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

    /// The (name, joined value) pairs, for serializing.
    pub fn pairs(&self) -> &[(HeaderName, Option<Vec<u8>>)] {
        &self.values
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
    fn pairs_round_trip_with_the_same_id() {
        let names = [http::header::ACCEPT_ENCODING, http::header::ORIGIN];
        let request = request(&[("accept-encoding", "gzip"), ("accept-encoding", "br")]);
        let values = VaryValues::of(&names, &request);
        let back = VaryValues::from_pairs(values.pairs().to_vec());
        assert_eq!(back, values);
        assert_eq!(back.variant_id(), VaryValues::id_of(&names, &request));
        assert!(back.matches(&request));
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
