//! A per-thread memo of the response heads last rendered from hot entries.
//!
//! A full response from a stored entry is the entry's header map plus `Age`, `Cache-Status`,
//! `Accept-Ranges` and `Content-Length`, and only `Age` and the ttl in `Cache-Status` change,
//! once a second. Rendering costs a map clone, four inserts and three small allocations; a
//! hot object is rendered thousands of times a second, identically. Each thread keeps the
//! last head rendered for a few entries, in a small table indexed by the entry's address, and
//! hands out clones of it while the entry and its stamp (age, ttl) stay the same.
//!
//! A head is kept only for an entry seen twice in a row in its slot, so a spread of keys
//! (no entry hot) does not pay for copies that are never reused. Memory is bounded: at most
//! `SLOTS` heads per thread. A slot holds a `Weak` to its entry, so while the slot names an
//! address no other entry can be allocated there.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use http::HeaderMap;

use crate::cache::Entry;

const SLOTS: usize = 64;

/// What a full response's head depends on besides its entry, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub age: u64,
    pub ttl: i64,
}

struct Slot {
    entry: Weak<Entry>,
    /// The head rendered at `stamp`, once the entry has been seen twice in a row.
    head: Option<(Stamp, HeaderMap)>,
}

thread_local! {
    static MEMO: RefCell<Vec<Option<Slot>>> = RefCell::new((0..SLOTS).map(|_| None).collect());
}

fn index(entry: &Arc<Entry>) -> usize {
    // Heap addresses are aligned; the low bits carry nothing.
    (Arc::as_ptr(entry) as usize >> 4) % SLOTS
}

fn names(slot: &Slot, entry: &Arc<Entry>) -> bool {
    std::ptr::eq(slot.entry.as_ptr(), Arc::as_ptr(entry))
}

/// The head this thread last rendered from `entry` at `stamp`, if it has it.
pub fn get(entry: &Arc<Entry>, stamp: Stamp) -> Option<HeaderMap> {
    MEMO.with_borrow(|slots| match &slots[index(entry)] {
        Some(slot) if names(slot, entry) => match &slot.head {
            Some((at, head)) if *at == stamp => Some(head.clone()),
            _ => None,
        },
        _ => None,
    })
}

/// Offers `head`, just rendered from `entry` at `stamp`: kept if the entry is the one its
/// slot saw last, else the slot only starts watching the entry.
pub fn offer(entry: &Arc<Entry>, stamp: Stamp, head: &HeaderMap) {
    MEMO.with_borrow_mut(|slots| {
        let slot = &mut slots[index(entry)];
        match slot {
            Some(slot) if names(slot, entry) => slot.head = Some((stamp, head.clone())),
            _ => {
                *slot = Some(Slot {
                    entry: Arc::downgrade(entry),
                    head: None,
                })
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;
    use http::{HeaderValue, StatusCode};

    use super::*;
    use crate::cache::{CacheKey, Freshness, VaryValues};

    fn entry() -> Arc<Entry> {
        let now = SystemTime::now();
        Arc::new(Entry::new(
            CacheKey::new("s", "k", ""),
            StatusCode::OK,
            &HeaderMap::new(),
            Bytes::from_static(b"x").into(),
            Freshness {
                response_time: now,
                initial_age: Duration::ZERO,
                ttl_at_store: Duration::from_secs(60),
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
                hard_expiry: None,
                invalidated_at: None,
            },
            VaryValues::default(),
        ))
    }

    #[test]
    fn kept_for_an_entry_seen_twice_and_only_at_its_stamp() {
        let (a, b) = (entry(), entry());
        let stamp = Stamp { age: 1, ttl: 59 };
        let mut head = HeaderMap::new();
        head.insert("age", HeaderValue::from_static("1"));
        offer(&a, stamp, &head);
        assert!(get(&a, stamp).is_none(), "first sight only watches");
        offer(&a, stamp, &head);
        assert_eq!(get(&a, stamp).unwrap()["age"], "1");
        assert!(get(&a, Stamp { age: 2, ttl: 58 }).is_none());
        assert!(get(&b, stamp).is_none());
    }
}
