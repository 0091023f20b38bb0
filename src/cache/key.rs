//! Cache keys: the space, the decoded object key and the query string per the space's policy.

use std::borrow::Cow;
use std::sync::Arc;

use percent_encoding::percent_decode_str;

use super::tags::Tags;
use crate::config::QueryPolicy;

/// Longest object key accepted (as S3).
pub const MAX_KEY_LEN: usize = 1024;

/// Why a request path cannot name an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the path is not valid UTF-8 once decoded")]
    NotUtf8,
    #[error("the path contains a NUL or control character")]
    ControlCharacter,
    #[error("the path contains a `..` segment")]
    DotDot,
    #[error("the object key is longer than {MAX_KEY_LEN} bytes")]
    TooLong,
}

/// The object key a request path names: percent-decoded, without the leading `/`.
/// An empty key (the space's root) is allowed here; the origin layer answers it with 404.
pub fn object_key(path: &str) -> Result<String, KeyError> {
    decoded_key(path).map(Cow::into_owned)
}

/// [`object_key`] borrowed from `path` when it has no escapes (the common case: the hit path
/// then builds its key without an allocation).
pub fn decoded_key(path: &str) -> Result<Cow<'_, str>, KeyError> {
    let raw = path.strip_prefix('/').unwrap_or(path);
    let plain = raw
        .bytes()
        .all(|b| b.is_ascii() && !b.is_ascii_control() && b != b'%');
    let decoded = if plain {
        // Nothing to decode and no control character: the common case, in one pass.
        Cow::Borrowed(raw)
    } else {
        let decoded = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| KeyError::NotUtf8)?;
        if decoded.chars().any(char::is_control) {
            return Err(KeyError::ControlCharacter);
        }
        decoded
    };
    // A byte-pair scan first: `str::contains` sets up a substring searcher per call.
    if decoded.as_bytes().windows(2).any(|pair| pair == b"..")
        && decoded.split('/').any(|segment| segment == "..")
    {
        return Err(KeyError::DotDot);
    }
    if decoded.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLong);
    }
    Ok(decoded)
}

/// True for query parameters of an S3 presigned URL (`X-Amz-*`), which always stay in the
/// key so a presigned response is never served to a request without that signature.
pub fn is_presign_param(name: &str) -> bool {
    name.len() > 6 && name.as_bytes()[..6].eq_ignore_ascii_case(b"x-amz-")
}

/// The query string as the cache key sees it under `policy`.
pub fn key_query<'a>(query: Option<&'a str>, policy: &QueryPolicy) -> Cow<'a, str> {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Cow::Borrowed("");
    };
    let keep = |pair: &&str| {
        let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
        match policy {
            QueryPolicy::Full => true,
            QueryPolicy::Ignore => is_presign_param(name),
            QueryPolicy::Allow(names) => {
                is_presign_param(name) || names.iter().any(|allowed| allowed == name)
            }
        }
    };
    match policy {
        QueryPolicy::Full => Cow::Borrowed(query),
        _ => {
            let mut pairs: Vec<&str> = query
                .split('&')
                .filter(|p| !p.is_empty())
                .filter(keep)
                .collect();
            pairs.sort_unstable();
            Cow::Owned(pairs.join("&"))
        }
    }
}

/// The text of a cache key, borrowed: what lookups hash and compare, without an owned
/// [`CacheKey`] (see [`with_key_text`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyText<'a>(&'a str);

impl<'a> KeyText<'a> {
    /// The whole key as one string.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

thread_local! {
    /// Where [`with_written_key`] writes keys; it grows to the longest key seen on the thread.
    static KEY_TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Runs `lookup` with the key text `write` puts into an empty string, written into a
/// per-thread buffer: a lookup by key text that allocates nothing.
pub(crate) fn with_written_key<R>(
    write: impl FnOnce(&mut String),
    lookup: impl FnOnce(KeyText<'_>) -> R,
) -> R {
    KEY_TEXT.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut text) => {
            text.clear();
            write(&mut text);
            lookup(KeyText(&text))
        }
        // Only if `lookup` itself asked for a key text on this thread.
        Err(_) => {
            let mut text = String::new();
            write(&mut text);
            lookup(KeyText(&text))
        }
    })
}

/// Runs `lookup` with the key [`CacheKey::new`] would build from the same parts, written into
/// a per-thread buffer: the hit path looks up without allocating a key.
pub fn with_key_text<R>(
    space: &str,
    object_key: &str,
    query: &str,
    lookup: impl FnOnce(KeyText<'_>) -> R,
) -> R {
    with_written_key(|text| push_key(text, space, object_key, query), lookup)
}

fn push_key(text: &mut String, space: &str, object_key: &str, query: &str) {
    text.push_str(space);
    text.push('\0');
    text.push_str(object_key);
    text.push('\0');
    text.push_str(query);
}

/// The primary cache key of a request: `space \0 object key \0 query`.
///
/// Purges select keys by their prefix: a whole space, a path with all its query variants,
/// or a `dir/*` prefix, so the layout is part of the key's contract.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(Arc<str>);

impl CacheKey {
    /// Builds the key of `object_key` with `query` (already filtered by policy) in `space`.
    pub fn new(space: &str, object_key: &str, query: &str) -> CacheKey {
        // Written in the per-thread buffer, then copied once into its shared allocation.
        with_key_text(space, object_key, query, |text| {
            CacheKey(text.as_str().into())
        })
    }

    /// The key's text, borrowed, for lookups.
    pub fn text(&self) -> KeyText<'_> {
        KeyText(&self.0)
    }

    /// Rebuilds a key from its string form (as stored on disk).
    pub fn from_raw(raw: &str) -> Option<CacheKey> {
        (raw.matches('\0').count() >= 2).then(|| CacheKey(raw.into()))
    }

    /// The whole key as one string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The space part.
    pub fn space(&self) -> &str {
        self.0.split('\0').next().unwrap_or_default()
    }

    /// A key-shaped value used only as the start of an ordered range scan.
    pub(crate) fn from_raw_prefix(prefix: &str) -> CacheKey {
        CacheKey(prefix.into())
    }

    /// The object key part.
    pub fn object_key(&self) -> &str {
        self.0.split('\0').nth(1).unwrap_or_default()
    }

    /// The query part (as the space's policy keeps it).
    pub fn query(&self) -> &str {
        self.0.splitn(3, '\0').nth(2).unwrap_or_default()
    }
}

/// Which cached entries a purge selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeSelector {
    /// One object key with every query-string variant.
    Path { space: String, key: String },
    /// Every object key starting with the prefix.
    Prefix { space: String, prefix: String },
    /// The whole space.
    Space { space: String },
    /// Every entry of the space whose response carried the cache tag.
    Tag { space: String, tag: String },
}

impl PurgeSelector {
    /// Parses one purge path from the API: `img/a.png`, `/css/*` or `*`.
    pub fn parse(space: &str, file: &str) -> Result<PurgeSelector, KeyError> {
        let file = file.strip_prefix('/').unwrap_or(file);
        if file == "*" {
            return Ok(PurgeSelector::Space {
                space: space.to_owned(),
            });
        }
        if let Some(prefix) = file.strip_suffix('*') {
            let prefix = object_key(prefix)?;
            if prefix.is_empty() {
                return Ok(PurgeSelector::Space {
                    space: space.to_owned(),
                });
            }
            return Ok(PurgeSelector::Prefix {
                space: space.to_owned(),
                prefix,
            });
        }
        Ok(PurgeSelector::Path {
            space: space.to_owned(),
            key: object_key(file)?,
        })
    }

    /// The space it purges in.
    pub fn space(&self) -> &str {
        match self {
            PurgeSelector::Path { space, .. }
            | PurgeSelector::Prefix { space, .. }
            | PurgeSelector::Space { space }
            | PurgeSelector::Tag { space, .. } => space,
        }
    }

    /// The key prefix every selected key starts with (keys are `space\0key\0query`); `None`
    /// for a tag, which selects by what the responses carried.
    pub fn key_prefix(&self) -> Option<String> {
        match self {
            PurgeSelector::Path { space, key } => Some(format!("{space}\0{key}\0")),
            PurgeSelector::Prefix { space, prefix } => Some(format!("{space}\0{prefix}")),
            PurgeSelector::Space { space } => Some(format!("{space}\0")),
            PurgeSelector::Tag { .. } => None,
        }
    }

    /// The space and tag of a tag purge.
    pub fn tag(&self) -> Option<(&str, &str)> {
        match self {
            PurgeSelector::Tag { space, tag } => Some((space, tag)),
            _ => None,
        }
    }

    /// Whether the entry of `key` with `tags` is selected (`None`: its tags are not known
    /// yet, and a tag purge of its space selects it).
    pub fn matches(&self, key: &CacheKey, tags: Option<&Tags>) -> bool {
        match self {
            PurgeSelector::Tag { space, tag } => {
                key.space() == space && tags.is_none_or(|tags| tags.contains(tag))
            }
            _ => self
                .key_prefix()
                .is_some_and(|prefix| key.as_str().starts_with(&prefix)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_text_is_the_text_of_the_owned_key() {
        let owned = CacheKey::new("assets", "a/b.css", "v=1");
        with_key_text("assets", "a/b.css", "v=1", |text| {
            assert_eq!(text, owned.text());
            // A nested call (not made by the edge) still gets the right text.
            with_key_text("x", "y", "", |inner| assert_eq!(inner.as_str(), "x\0y\0"));
        });
        with_key_text("s", "k", "", |text| assert_eq!(text.as_str(), "s\0k\0"));
    }

    #[test]
    fn decoding_makes_one_key() {
        assert_eq!(object_key("/img/%61.png"), Ok("img/a.png".to_owned()));
        assert_eq!(object_key("/img/a.png"), Ok("img/a.png".to_owned()));
        assert_eq!(object_key("/a%20b"), Ok("a b".to_owned()));
        assert_eq!(object_key("/"), Ok(String::new()));
        assert_eq!(object_key("/a//b"), Ok("a//b".to_owned()));
    }

    #[test]
    fn tricks_are_refused() {
        assert_eq!(object_key("/a/../b"), Err(KeyError::DotDot));
        assert_eq!(object_key("/a/%2e%2e/b"), Err(KeyError::DotDot));
        assert_eq!(object_key("/a%00b"), Err(KeyError::ControlCharacter));
        assert_eq!(object_key("/a%ffb"), Err(KeyError::NotUtf8));
        assert_eq!(
            object_key(&format!("/{}", "a".repeat(1025))),
            Err(KeyError::TooLong)
        );
        assert_eq!(object_key("/a/..b"), Ok("a/..b".to_owned()));
    }

    #[test]
    fn query_policies() {
        let allow = QueryPolicy::Allow(vec!["v".into()]);
        assert_eq!(key_query(Some("b=2&a=1"), &QueryPolicy::Full), "b=2&a=1");
        assert_eq!(key_query(Some("b=2&a=1"), &QueryPolicy::Ignore), "");
        assert_eq!(key_query(Some("w=1&v=3"), &allow), "v=3");
        assert_eq!(
            key_query(Some("X-Amz-Signature=ab&x=1"), &QueryPolicy::Ignore),
            "X-Amz-Signature=ab"
        );
        assert_eq!(key_query(None, &QueryPolicy::Full), "");
        // Found by fuzzing: a multi-byte character across the prefix boundary.
        assert_eq!(key_query(Some("a+?\u{25a}.X=1"), &QueryPolicy::Ignore), "");
    }

    #[test]
    fn purge_selectors() {
        let key = CacheKey::new("s", "dir/a.png", "v=1");
        assert!(
            PurgeSelector::parse("s", "/dir/a.png")
                .unwrap()
                .matches(&key, None)
        );
        assert!(
            PurgeSelector::parse("s", "dir/*")
                .unwrap()
                .matches(&key, None)
        );
        assert!(PurgeSelector::parse("s", "*").unwrap().matches(&key, None));
        assert!(
            !PurgeSelector::parse("s", "dir/a")
                .unwrap()
                .matches(&key, None)
        );
        assert!(!PurgeSelector::parse("t", "*").unwrap().matches(&key, None));
        let tag = PurgeSelector::Tag {
            space: "s".into(),
            tag: "t1".into(),
        };
        assert!(tag.matches(&key, Some(&Tags::of(&["t0", "t1"]))));
        assert!(!tag.matches(&key, Some(&Tags::of(&["t0"]))));
        assert!(tag.matches(&key, None), "tags not known yet");
        assert!(!tag.matches(&CacheKey::new("other", "a", ""), None));
        assert_eq!(key.space(), "s");
        assert_eq!(key.object_key(), "dir/a.png");
    }
}
