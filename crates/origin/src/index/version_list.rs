//! ListObjectVersions: keys in order, each key's versions newest first (its latest object
//! from `objects`, then the archive), rolled up into common prefixes as the plain listings
//! are, and resumable after any (key, version).

use redb::ReadableTable;

use super::decode;
use super::list::successor;
use super::records::{ObjectRecord, VersionEntry};
use super::versions::rank;
use crate::error::StoreError;
use crate::versioning::Selector;

/// What to list.
#[derive(Debug, Clone)]
pub struct VersionListQuery<'a> {
    /// The bucket.
    pub bucket: &'a str,
    /// Only keys starting with this.
    pub prefix: &'a str,
    /// Roll keys up at the first occurrence of this after the prefix (empty = none).
    pub delimiter: &'a str,
    /// Resume after this key (`key-marker`)...
    pub key_marker: Option<&'a str>,
    /// ...or, within it, after this version (`version-id-marker`).
    pub version_marker: Option<&'a Selector>,
    /// At most this many entries (versions, delete markers and prefixes).
    pub max: usize,
}

/// One listed entry.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // a page holds at most 1000; most entries are versions
pub enum VersionListEntry {
    /// An object version or a delete marker.
    Version {
        /// The key.
        key: String,
        /// The version.
        entry: VersionEntry,
        /// It is the key's latest version.
        latest: bool,
    },
    /// A common prefix (ends with the delimiter).
    Prefix(String),
}

/// One page.
#[derive(Debug, Clone, Default)]
pub struct VersionPage {
    /// Entries in S3's order.
    pub entries: Vec<VersionListEntry>,
    /// More entries follow.
    pub truncated: bool,
}

type Objects = (&'static str, &'static str);
type Versions = (&'static str, &'static str, u64);

/// The smallest key of the bucket at or after `from` in either table.
pub(super) fn next_key<O, V>(
    objects: &O,
    versions: &V,
    b: &str,
    from: &str,
) -> Result<Option<String>, StoreError>
where
    O: ReadableTable<Objects, &'static [u8]>,
    V: ReadableTable<Versions, &'static [u8]>,
{
    let mut best: Option<String> = None;
    if let Some(item) = objects.range((b, from)..)?.next() {
        let item = item?;
        let (bucket, key) = item.0.value();
        if bucket == b {
            best = Some(key.to_owned());
        }
    }
    if let Some(item) = versions.range((b, from, 0u64)..)?.next() {
        let item = item?;
        let (bucket, key, _) = item.0.value();
        if bucket == b && best.as_deref().is_none_or(|k| key < k) {
            best = Some(key.to_owned());
        }
    }
    Ok(best)
}

/// Where a listing resumes inside the marker key: whether to skip its latest object, and
/// the first archive rank to list (`None`: nothing more of this key).
fn resume_point<N>(
    nulls: &N,
    b: &str,
    key: &str,
    head: Option<&ObjectRecord>,
    sel: &Selector,
) -> Result<Option<u64>, StoreError>
where
    N: ReadableTable<Objects, u64>,
{
    if head.is_some_and(|h| sel.matches(h.version_id.as_deref())) {
        return Ok(Some(0));
    }
    // The latest object sorts before every archived version: it is skipped either way.
    let seq = match sel {
        Selector::Id { seq, .. } => *seq,
        Selector::Null => match nulls.get((b, key))? {
            Some(v) => v.value(),
            None => return Ok(None),
        },
    };
    Ok(rank(seq).checked_add(1))
}

pub(super) fn list<O, V, N>(
    objects: &O,
    versions: &V,
    nulls: &N,
    q: &VersionListQuery<'_>,
) -> Result<VersionPage, StoreError>
where
    O: ReadableTable<Objects, &'static [u8]>,
    V: ReadableTable<Versions, &'static [u8]>,
    N: ReadableTable<Objects, u64>,
{
    let mut page = VersionPage::default();
    if q.max == 0 {
        return Ok(page);
    }
    let b = q.bucket;
    let mut cursor: String = match q.key_marker {
        Some(m) if m > q.prefix => m.to_owned(),
        _ => q.prefix.to_owned(),
    };
    'scan: while let Some(key) = next_key(objects, versions, b, &cursor)? {
        if !key.starts_with(q.prefix) {
            break;
        }
        let resume_inside = q.version_marker.is_some() && q.key_marker == Some(key.as_str());
        if !resume_inside && q.key_marker.is_some_and(|m| key.as_str() <= m) {
            cursor = format!("{key}\0");
            continue;
        }
        let rest = &key[q.prefix.len()..];
        if !q.delimiter.is_empty()
            && let Some(pos) = rest.find(q.delimiter)
        {
            let common = &key[..q.prefix.len() + pos + q.delimiter.len()];
            let seen = q.key_marker.is_some_and(|m| m.starts_with(common));
            if !seen {
                if page.entries.len() == q.max {
                    page.truncated = true;
                    break;
                }
                page.entries
                    .push(VersionListEntry::Prefix(common.to_owned()));
            }
            match successor(common) {
                Some(next) => {
                    cursor = next;
                    continue;
                }
                None => break,
            }
        }
        let head: Option<ObjectRecord> = objects
            .get((b, key.as_str()))?
            .map(|v| decode(v.value()))
            .transpose()?;
        let first_rank = match (resume_inside, q.version_marker) {
            (true, Some(sel)) => resume_point(nulls, b, &key, head.as_ref(), sel)?,
            _ => None,
        };
        let (list_head, from_rank) = match (resume_inside, first_rank) {
            (false, _) => (true, Some(0)),
            (true, start) => (false, start),
        };
        let newest_archived = if head.is_none() {
            match versions
                .range((b, key.as_str(), 0u64)..=(b, key.as_str(), u64::MAX))?
                .next()
            {
                Some(item) => Some(item?.0.value().2),
                None => None,
            }
        } else {
            None
        };
        if list_head && let Some(head) = head {
            if page.entries.len() == q.max {
                page.truncated = true;
                break;
            }
            page.entries.push(VersionListEntry::Version {
                key: key.clone(),
                entry: VersionEntry::Object(head),
                latest: true,
            });
        }
        if let Some(from) = from_rank {
            for item in versions.range((b, key.as_str(), from)..=(b, key.as_str(), u64::MAX))? {
                let (k, v) = item?;
                if page.entries.len() == q.max {
                    page.truncated = true;
                    break 'scan;
                }
                page.entries.push(VersionListEntry::Version {
                    key: key.clone(),
                    entry: decode(v.value())?,
                    latest: newest_archived == Some(k.value().2),
                });
            }
        }
        cursor = format!("{key}\0");
    }
    Ok(page)
}
