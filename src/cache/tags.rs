//! Cache tags (surrogate keys): names an origin gives its responses so that one purge drops
//! every entry carrying a name (`{"tags": ["product-42"]}`), whatever their URLs.
//!
//! Read from `Surrogate-Key` (space-separated, as Fastly), `Cache-Tag` (comma-separated, as
//! Cloudflare) or the S3 object metadata `x-amz-meta-surrogate-key` (space-separated), and
//! never passed to clients. Bounded: at most [`MAX_TAGS`] distinct tags of at most
//! [`MAX_TAG_LEN`] bytes each (visible ASCII, no spaces or commas); a response over the
//! bound is not stored, so no entry escapes a purge of a tag it was given. Tags are compared
//! exactly (case-sensitive).
//!
//! Memory per tagged entry: one `Arc<str>` (16 bytes) naming the tags, space-separated.

use std::sync::Arc;

use http::{HeaderMap, HeaderName};

/// Most tags one response may carry.
pub const MAX_TAGS: usize = 64;

/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 256;

/// `Surrogate-Key`.
pub const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");
/// `Cache-Tag`.
pub const CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");
/// The S3 object metadata `surrogate-key`, as an S3 origin returns it.
pub const S3_SURROGATE_KEY: HeaderName = HeaderName::from_static("x-amz-meta-surrogate-key");

/// Sent by a PoP to its parent: the parent's response then carries the entry's tags in
/// `Surrogate-Key`, so entries stored through a shield are tagged too.
pub const WANT_TAGS: HeaderName = HeaderName::from_static("x-edge-tags");

/// The response fields tags are read from (and that clients never get).
pub const TAG_FIELDS: [HeaderName; 3] = [SURROGATE_KEY, CACHE_TAG, S3_SURROGATE_KEY];

/// Why a response's tags were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("more than {MAX_TAGS} tags")]
    TooMany,
    #[error("a tag longer than {MAX_TAG_LEN} bytes")]
    TooLong,
    #[error("a tag with a character other than visible ASCII (no spaces or commas)")]
    BadCharacter,
    #[error("an empty tag")]
    Empty,
}

/// Checks one tag (as a purge request names it).
pub fn check_tag(tag: &str) -> Result<(), TagError> {
    if tag.is_empty() {
        return Err(TagError::Empty);
    }
    if tag.len() > MAX_TAG_LEN {
        return Err(TagError::TooLong);
    }
    if !tag.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
        return Err(TagError::BadCharacter);
    }
    Ok(())
}

/// The tags of one entry (none, usually), packed in one string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(Option<Arc<str>>);

impl Tags {
    /// The tags a response's fields give, deduplicated in order of appearance.
    pub fn from_headers(headers: &HeaderMap) -> Result<Tags, TagError> {
        fn add<'a>(tags: &mut Vec<&'a str>, tag: &'a str) -> Result<(), TagError> {
            if tag.is_empty() || tags.contains(&tag) {
                return Ok(());
            }
            check_tag(tag)?;
            if tags.len() == MAX_TAGS {
                return Err(TagError::TooMany);
            }
            tags.push(tag);
            Ok(())
        }
        let mut tags: Vec<&str> = Vec::new();
        for name in [&SURROGATE_KEY, &S3_SURROGATE_KEY] {
            for value in headers.get_all(name) {
                let text = value.to_str().map_err(|_| TagError::BadCharacter)?;
                for tag in text.split_ascii_whitespace() {
                    add(&mut tags, tag)?;
                }
            }
        }
        for value in headers.get_all(CACHE_TAG) {
            let text = value.to_str().map_err(|_| TagError::BadCharacter)?;
            for tag in text.split(',') {
                add(&mut tags, tag.trim())?;
            }
        }
        Ok(Tags::of(&tags))
    }

    /// Tags from a list already checked (or read back from storage).
    pub fn of(tags: &[&str]) -> Tags {
        if tags.is_empty() {
            Tags(None)
        } else {
            Tags(Some(tags.join(" ").into()))
        }
    }

    /// Rebuilds tags from their packed form (as stored on disk); `None` if it is not one.
    pub fn from_packed(packed: &str) -> Option<Tags> {
        if packed.is_empty() {
            return Some(Tags(None));
        }
        let tags: Vec<&str> = packed.split(' ').collect();
        (tags.len() <= MAX_TAGS && tags.iter().all(|t| check_tag(t).is_ok()))
            .then(|| Tags(Some(packed.into())))
    }

    /// The tags, space-separated (as `Surrogate-Key` carries them).
    pub fn packed(&self) -> &str {
        self.0.as_deref().unwrap_or_default()
    }

    /// Each tag.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.as_deref().into_iter().flat_map(|p| p.split(' '))
    }

    /// Whether `tag` is one of them.
    pub fn contains(&self, tag: &str) -> bool {
        self.iter().any(|t| t == tag)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Bytes held beyond the handle (for weighers).
    pub fn weight(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.len() + 16)
    }
}

/// Removes the tag fields from headers going to a client.
pub fn strip(headers: &mut HeaderMap) {
    for name in &TAG_FIELDS {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn every_field_and_separator() {
        let tags = Tags::from_headers(&headers(&[
            ("surrogate-key", " product-42  all-products "),
            ("cache-tag", "sale, product-42,Blue"),
            ("x-amz-meta-surrogate-key", "s3-tag"),
        ]))
        .unwrap();
        assert_eq!(
            tags.iter().collect::<Vec<_>>(),
            ["product-42", "all-products", "s3-tag", "sale", "Blue"]
        );
        assert!(tags.contains("Blue") && !tags.contains("blue"));
        assert_eq!(Tags::from_packed(tags.packed()), Some(tags));
        assert!(Tags::from_headers(&HeaderMap::new()).unwrap().is_empty());
    }

    #[test]
    fn bounded() {
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        let over = headers(&[("surrogate-key", &many.join(" "))]);
        assert_eq!(Tags::from_headers(&over), Err(TagError::TooMany));
        let at = headers(&[("surrogate-key", &many[..MAX_TAGS].join(" "))]);
        assert_eq!(Tags::from_headers(&at).unwrap().iter().count(), MAX_TAGS);
        let long = headers(&[("cache-tag", &"x".repeat(MAX_TAG_LEN + 1))]);
        assert_eq!(Tags::from_headers(&long), Err(TagError::TooLong));
        let spaced = headers(&[("cache-tag", "two words")]);
        assert_eq!(Tags::from_headers(&spaced), Err(TagError::BadCharacter));
        assert_eq!(check_tag("a,b"), Err(TagError::BadCharacter));
        assert_eq!(Tags::from_packed("a  b"), None);
    }
}
