//! Parsing `Cache-Control` directives (RFC 9111 section 5.2) from response or request headers.

use http::HeaderMap;
use http::header::CACHE_CONTROL;

/// The directives the edge acts on; unknown ones are ignored as the RFC asks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheControl {
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    pub only_if_cached: bool,
    /// `must-understand` (RFC 9111 section 5.2.2.3).
    pub must_understand: bool,
    /// `no-transform` (RFC 9111 section 5.2.2.6, 5.2.1.6): no content coding by the edge.
    pub no_transform: bool,
}

impl CacheControl {
    /// Parses every `Cache-Control` field of `headers`.
    pub fn from_headers(headers: &HeaderMap) -> CacheControl {
        let mut cc = CacheControl::default();
        for value in headers.get_all(CACHE_CONTROL) {
            if let Ok(text) = value.to_str() {
                cc.parse_into(text);
            }
        }
        cc
    }

    /// Parses one field value.
    pub fn parse(text: &str) -> CacheControl {
        let mut cc = CacheControl::default();
        cc.parse_into(text);
        cc
    }

    fn parse_into(&mut self, text: &str) {
        for directive in split_directives(text) {
            // `token [ "=" ( token / quoted-string ) ]`: no space around the `=` (a name
            // with one is no directive this parser knows, a value with one is invalid).
            let (name, value) = match directive.split_once('=') {
                Some((n, v)) => (n, Some(unquote(v))),
                None => (directive, None),
            };
            let seconds = || value.and_then(parse_delta_seconds);
            // Directive names are case-insensitive (RFC 9111 section 5.2); the longest we know
            // is 22 bytes, so a name is lower-cased on the stack.
            let mut lower = [0u8; 24];
            let Some(folded) = lower.get_mut(..name.len()) else {
                continue;
            };
            folded.copy_from_slice(name.as_bytes());
            folded.make_ascii_lowercase();
            match &*folded {
                // A duplicated or invalid delta makes the response stale (RFC 9111 4.2.1).
                b"max-age" => self.max_age = Some(merge_min(self.max_age, seconds())),
                b"s-maxage" => self.s_maxage = Some(merge_min(self.s_maxage, seconds())),
                b"no-store" => self.no_store = true,
                // `no-cache="field"` restricts only fields; treating it as plain no-cache is safe.
                b"no-cache" => self.no_cache = true,
                b"private" => self.private = true,
                b"public" => self.public = true,
                b"must-revalidate" => self.must_revalidate = true,
                b"proxy-revalidate" => self.proxy_revalidate = true,
                b"stale-while-revalidate" => self.stale_while_revalidate = seconds(),
                b"stale-if-error" => self.stale_if_error = seconds(),
                b"only-if-cached" => self.only_if_cached = true,
                b"must-understand" => self.must_understand = true,
                b"no-transform" => self.no_transform = true,
                _ => {}
            }
        }
    }

    /// Whether the response has explicit shared-cache freshness (`s-maxage` or `max-age`).
    pub fn has_explicit_lifetime(&self) -> bool {
        self.s_maxage.is_some() || self.max_age.is_some()
    }

    /// Whether a shared cache may serve this response stale at all (RFC 9111 4.2.4).
    pub fn forbids_stale(&self) -> bool {
        self.must_revalidate || self.proxy_revalidate || self.s_maxage.is_some() || self.no_cache
    }
}

/// An invalid or repeated value counts as 0 (stale), the safe reading.
fn merge_min(previous: Option<u64>, new: Option<u64>) -> u64 {
    match (previous, new) {
        (_, None) => 0,
        (None, Some(v)) => v,
        (Some(p), Some(v)) => p.min(v),
    }
}

/// A directive's value: a quoted-string's content, or the token as it is.
fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// The largest delta-seconds the cache accounts for (RFC 9111 section 1.2.2).
pub const DELTA_MAX: u64 = 1 << 31;

/// `delta-seconds` (1*DIGIT); values too large to represent are taken as 2^31.
pub fn parse_delta_seconds(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u64>().unwrap_or(DELTA_MAX).min(DELTA_MAX))
}

/// Splits on commas outside quoted strings.
fn split_directives(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        let mut in_quotes = false;
        let end = text.bytes().position(|b| match b {
            b'"' => {
                in_quotes = !in_quotes;
                false
            }
            b',' => !in_quotes,
            _ => false,
        });
        match end {
            Some(i) => {
                rest = Some(&text[i + 1..]);
                Some(&text[..i])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
    .map(str::trim)
    .filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_transform_and_quoted_commas() {
        assert!(CacheControl::parse("public, No-Transform").no_transform);
        assert!(!CacheControl::parse("private=\"a, no-transform\", max-age=5").no_transform);
        let cc = CacheControl::parse("private=\"a, no-transform\", max-age=5");
        assert_eq!((cc.private, cc.max_age), (true, Some(5)));
        assert!(!CacheControl::parse("a-directive-name-longer-than-the-buffer=1").no_transform);
    }

    #[test]
    fn directives() {
        let cc =
            CacheControl::parse("public, max-age=60, s-maxage=\"30\", stale-while-revalidate=10");
        assert_eq!(cc.max_age, Some(60));
        assert_eq!(cc.s_maxage, Some(30));
        assert!(cc.public);
        assert_eq!(cc.stale_while_revalidate, Some(10));
        assert!(cc.forbids_stale());
    }

    #[test]
    fn invalid_and_duplicate_values_are_stale() {
        assert_eq!(CacheControl::parse("max-age=abc").max_age, Some(0));
        assert_eq!(
            CacheControl::parse("max-age=60, max-age=10").max_age,
            Some(10)
        );
        assert_eq!(CacheControl::parse("max-age=-1").max_age, Some(0));
        assert_eq!(
            CacheControl::parse("max-age=99999999999999999999").max_age,
            Some(2147483648)
        );
        assert_eq!(CacheControl::parse("max-age=3600.0").max_age, Some(0));
        assert_eq!(CacheControl::parse("max-age='3600'").max_age, Some(0));
        assert_eq!(CacheControl::parse("max-age= 3600").max_age, Some(0));
        assert_eq!(CacheControl::parse("max-age =3600").max_age, None);
        assert_eq!(CacheControl::parse("max-age=003600").max_age, Some(3600));
    }

    #[test]
    fn names_are_case_insensitive() {
        let cc = CacheControl::parse("NO-CACHE, Max-Age=60, Must-Understand");
        assert!(cc.no_cache && cc.must_understand);
        assert_eq!(cc.max_age, Some(60));
    }

    #[test]
    fn quoted_commas() {
        let cc = CacheControl::parse("no-cache=\"set-cookie, x\", max-age=5");
        assert!(cc.no_cache);
        assert_eq!(cc.max_age, Some(5));
    }
}
