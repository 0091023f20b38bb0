//! Which versions of one key a bucket's rules expire at a given moment (pure: the worker
//! passes the time and the length of a lifecycle day).

use super::rules::{Expiration, Rule, after_days};
use crate::index::records::VersionEntry;
use crate::index::{Expire, KeyVersions};
use crate::versioning::Selector;

fn selector(version_id: Option<&str>) -> Option<Selector> {
    match version_id {
        None => Some(Selector::Null),
        Some(id) => Selector::parse(id).ok(),
    }
}

/// The expirations `rules` (the enabled ones of a bucket) call for on `kv` at `now_ms`.
pub(crate) fn decide(
    rules: &[Rule],
    kv: &KeyVersions,
    now_ms: i64,
    day_ms: i64,
    out: &mut Vec<Expire>,
) {
    let key = kv.key.as_str();
    if let Some(head) = &kv.head {
        let due = rules
            .iter()
            .filter(|r| r.covers(key, Some(head.size)))
            .filter_map(|r| match r.expiration {
                Some(Expiration::Days(d)) => Some(after_days(head.modified_ms, d, day_ms)),
                Some(Expiration::Date(secs)) => Some(secs.saturating_mul(1000)),
                _ => None,
            })
            .min();
        if due.is_some_and(|due| now_ms >= due) {
            out.push(Expire::Latest {
                key: key.to_owned(),
                blob: head.blob.clone(),
            });
        }
    }
    if kv.head.is_none()
        && let [VersionEntry::Marker(m)] = kv.archived.as_slice()
        && rules.iter().any(|r| {
            r.covers_key(key) && r.expiration == Some(Expiration::ExpiredObjectDeleteMarker)
        })
        && let Some(sel) = selector(m.version_id.as_deref())
    {
        out.push(Expire::Version {
            key: key.to_owned(),
            sel,
            seq: m.seq,
            blob: None,
        });
    }
    // A version became noncurrent when the next newer one was written.
    let mut newer_ms = kv.head.as_ref().map(|h| h.modified_ms);
    let mut noncurrent = 0u32;
    for entry in &kv.archived {
        let Some(since) = newer_ms.replace(entry.modified_ms()) else {
            continue; // the current delete marker
        };
        let index = noncurrent;
        noncurrent = noncurrent.saturating_add(1);
        let (size, blob) = match entry {
            VersionEntry::Object(o) => (Some(o.size), Some(o.blob.clone())),
            VersionEntry::Marker(_) => (None, None),
        };
        let due = rules
            .iter()
            .filter(|r| match size {
                Some(size) => r.covers(key, Some(size)),
                None => r.covers_key(key),
            })
            .filter_map(|r| r.noncurrent)
            .filter(|n| n.keep.is_none_or(|keep| index >= keep))
            .map(|n| after_days(since, n.days, day_ms))
            .min();
        if due.is_some_and(|due| now_ms >= due)
            && let Some(sel) = selector(entry.version_id())
        {
            out.push(Expire::Version {
                key: key.to_owned(),
                sel,
                seq: entry.seq(),
                blob,
            });
        }
    }
}
