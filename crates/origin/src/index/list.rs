//! Listing: a sorted range scan over `(bucket, key)` that rolls keys up into common prefixes
//! and jumps over each rolled-up prefix instead of reading every key below it.

use redb::ReadableTable;

use super::decode;
use super::records::ObjectRecord;
use crate::error::StoreError;

/// What to list.
#[derive(Debug, Clone)]
pub struct ListQuery<'a> {
    /// The bucket.
    pub bucket: &'a str,
    /// Only keys starting with this.
    pub prefix: &'a str,
    /// Roll keys up at the first occurrence of this after the prefix (empty = none).
    pub delimiter: &'a str,
    /// Only entries sorting after this (marker, start-after or continuation point).
    pub after: Option<&'a str>,
    /// At most this many entries (objects plus prefixes).
    pub max: usize,
}

/// One listed entry.
#[derive(Debug, Clone)]
pub enum ListEntry {
    /// An object.
    Object(String, Box<ObjectRecord>),
    /// A common prefix (ends with the delimiter).
    Prefix(String),
}

impl ListEntry {
    /// The key or the prefix: where the next page starts after.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::Object(k, _) | Self::Prefix(k) => k,
        }
    }
}

/// One page.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// Entries in key order.
    pub entries: Vec<ListEntry>,
    /// More entries follow.
    pub truncated: bool,
}

/// The smallest string greater than every string starting with `prefix`, if any.
pub(super) fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

pub(super) fn list<T>(table: &T, q: &ListQuery<'_>) -> Result<ListPage, StoreError>
where
    T: ReadableTable<(&'static str, &'static str), &'static [u8]>,
{
    let mut page = ListPage::default();
    let mut start: String = match q.after {
        Some(after) if after > q.prefix => after.to_owned(),
        _ => q.prefix.to_owned(),
    };
    if q.max == 0 {
        return Ok(page);
    }
    'scan: loop {
        for item in table.range((q.bucket, start.as_str())..)? {
            let (k, v) = item?;
            let (bucket, key) = k.value();
            if bucket != q.bucket || !key.starts_with(q.prefix) {
                break 'scan;
            }
            if q.after.is_some_and(|a| key <= a) {
                continue;
            }
            let rest = &key[q.prefix.len()..];
            if !q.delimiter.is_empty()
                && let Some(pos) = rest.find(q.delimiter)
            {
                let common = &key[..q.prefix.len() + pos + q.delimiter.len()];
                let seen = q.after.is_some_and(|a| a.starts_with(common));
                if !seen {
                    if page.entries.len() == q.max {
                        page.truncated = true;
                        break 'scan;
                    }
                    page.entries.push(ListEntry::Prefix(common.to_owned()));
                }
                match successor(common) {
                    Some(next) => {
                        start = next;
                        continue 'scan;
                    }
                    None => break 'scan,
                }
            }
            if page.entries.len() == q.max {
                page.truncated = true;
                break 'scan;
            }
            page.entries.push(ListEntry::Object(
                key.to_owned(),
                Box::new(decode(v.value())?),
            ));
        }
        break;
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::successor;

    #[test]
    fn successor_skips_everything_under_the_prefix() {
        assert_eq!(successor("a/").as_deref(), Some("a0"));
        assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(successor("\u{10FFFF}"), None);
    }
}
