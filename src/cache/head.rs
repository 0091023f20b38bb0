//! A stored response's header fields, packed: the values (and any uncommon names) back to
//! back in one shared buffer, and a table of 16-byte fields pointing into it. A `HeaderMap`
//! holds ~100 bytes per field plus an allocation per value; this holds 16 bytes per field
//! plus its text, so a small object's head costs a fraction of its body.
//!
//! Responses are rendered from it: each value is a zero-copy slice of the buffer, and names
//! come from a table of the fields responses usually carry (no allocation); only uncommon
//! names are parsed from their text on each render.

use std::sync::LazyLock;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Field names stored as an index into this table (at most 255).
static KNOWN: LazyLock<Vec<HeaderName>> = LazyLock::new(|| {
    let mut names = vec![
        header::CONTENT_TYPE,
        header::CACHE_CONTROL,
        header::LAST_MODIFIED,
        header::ETAG,
        header::DATE,
        header::EXPIRES,
        header::CONTENT_ENCODING,
        header::CONTENT_LANGUAGE,
        header::CONTENT_DISPOSITION,
        header::CONTENT_LOCATION,
        header::VARY,
        header::ACCEPT_RANGES,
        header::SERVER,
        header::LINK,
        header::LOCATION,
        header::SET_COOKIE,
        header::STRICT_TRANSPORT_SECURITY,
        header::X_CONTENT_TYPE_OPTIONS,
        header::CONTENT_SECURITY_POLICY,
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        header::ACCESS_CONTROL_ALLOW_METHODS,
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        header::ACCESS_CONTROL_MAX_AGE,
        header::REFERRER_POLICY,
        header::X_FRAME_OPTIONS,
    ];
    names.extend(
        [
            "cache-status",
            "timing-allow-origin",
            "cdn-cache-control",
            "surrogate-key",
            "cache-tag",
            "x-amz-request-id",
            "x-amz-id-2",
            "x-amz-version-id",
            "x-amz-delete-marker",
            "x-amz-storage-class",
            "x-amz-server-side-encryption",
            "x-amz-expiration",
            "x-amz-restore",
            "x-amz-tagging-count",
            "x-amz-mp-parts-count",
            "x-amz-website-redirect-location",
            "x-amz-replication-status",
            "x-amz-checksum-crc32",
            "x-amz-checksum-crc32c",
            "x-amz-checksum-sha1",
            "x-amz-checksum-sha256",
            "x-rgw-object-type",
        ]
        .into_iter()
        .map(HeaderName::from_static),
    );
    names
});

fn known_index(name: &HeaderName) -> Option<u8> {
    KNOWN
        .iter()
        .position(|known| known == name)
        .and_then(|i| u8::try_from(i).ok())
}

/// Where a field's name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    /// In [`KNOWN`].
    Known(u8),
    /// In the buffer (lowercase, as `HeaderName` keeps it).
    Text { start: u32, len: u16 },
}

/// One field: its name and where its value is in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    name: Name,
    start: u32,
    len: u32,
}

/// A stored response's header fields (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct StoredHead {
    text: Bytes,
    fields: Box<[Field]>,
}

impl StoredHead {
    /// Packs `headers` (values copied out of whatever buffer they were parsed in, so a
    /// stored head keeps nothing else alive).
    pub fn pack(headers: &HeaderMap) -> StoredHead {
        let size: usize = headers
            .iter()
            .map(|(name, value)| value.len() + name.as_str().len())
            .sum();
        let mut text = BytesMut::with_capacity(size);
        let mut fields = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let name = match known_index(name) {
                Some(index) => Name::Known(index),
                None => {
                    let start = text.len();
                    text.extend_from_slice(name.as_str().as_bytes());
                    Name::Text {
                        start: u32::try_from(start).unwrap_or(u32::MAX),
                        len: u16::try_from(name.as_str().len()).unwrap_or(u16::MAX),
                    }
                }
            };
            let start = text.len();
            text.extend_from_slice(value.as_bytes());
            fields.push(Field {
                name,
                start: u32::try_from(start).unwrap_or(u32::MAX),
                len: u32::try_from(value.len()).unwrap_or(u32::MAX),
            });
        }
        StoredHead {
            text: text.freeze(),
            fields: fields.into_boxed_slice(),
        }
    }

    /// Bytes this head holds (for the memory tier's weigher).
    pub fn weight(&self) -> usize {
        self.text.len() + self.fields.len() * std::mem::size_of::<Field>()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn slice(&self, start: u32, len: u64) -> Option<Bytes> {
        let start = usize::try_from(start).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        (end <= self.text.len()).then(|| self.text.slice(start..end))
    }

    fn name_of(&self, field: &Field) -> Option<HeaderName> {
        match field.name {
            Name::Known(index) => KNOWN.get(usize::from(index)).cloned(),
            Name::Text { start, len } => {
                HeaderName::from_bytes(&self.slice(start, u64::from(len))?).ok()
            }
        }
    }

    fn name_is(&self, field: &Field, name: &HeaderName) -> bool {
        match field.name {
            Name::Known(index) => KNOWN.get(usize::from(index)) == Some(name),
            Name::Text { start, len } => self
                .slice(start, u64::from(len))
                .is_some_and(|text| text == name.as_str().as_bytes()),
        }
    }

    fn value_of(&self, field: &Field) -> Option<HeaderValue> {
        HeaderValue::from_maybe_shared(self.slice(field.start, u64::from(field.len))?).ok()
    }

    /// The fields in order, as name and value.
    pub fn iter(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        self.fields
            .iter()
            .filter_map(|field| Some((self.name_of(field)?, self.value_of(field)?)))
    }

    /// The first value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<HeaderValue> {
        let field = self.fields.iter().find(|f| self.name_is(f, name))?;
        self.value_of(field)
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = HeaderValue> + 'a {
        self.fields
            .iter()
            .filter(move |f| self.name_is(f, name))
            .filter_map(|f| self.value_of(f))
    }

    /// The fields as a header map with room for `spare` more (a response adds its own).
    pub fn to_map(&self, spare: usize) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.fields.len() + spare);
        for (name, value) in self.iter() {
            map.append(name, value);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_renders_every_field_in_order() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css"));
        headers.append("x-amz-meta-owner", HeaderValue::from_static("ops team"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));
        headers.insert("x-amz-request-id", HeaderValue::from_static("REQ1"));
        let head = StoredHead::pack(&headers);
        assert_eq!(head.len(), 5);
        let map = head.to_map(4);
        assert_eq!(map, headers);
        assert_eq!(head.get(&header::CONTENT_TYPE).unwrap(), "text/css");
        assert_eq!(
            head.get(&HeaderName::from_static("x-amz-meta-owner"))
                .unwrap(),
            "ops team"
        );
        let cookies: Vec<HeaderValue> = head.get_all(&header::SET_COOKIE).collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert!(head.get(&header::ETAG).is_none());
        // 16 bytes a field and the text: a `HeaderMap` would hold ~100 bytes a field.
        assert!(head.weight() < 5 * 32, "{}", head.weight());
    }
}
