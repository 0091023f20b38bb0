//! The tag side of a [`super::SlotIndex`]: which slots hold a value carrying a tag, per
//! space, so a purge by tag visits only those slots (time proportional to what it drops,
//! whatever the cache's size).
//!
//! Kept under the index's ordered-set lock, which every insert holds: a value's pairs are
//! added before it becomes visible, and removed when it leaves unless the slot's current
//! value carries the tag too. Purges check each slot's value for the tag, so a pair that
//! outlived its value is harmless (and dropped then).
//!
//! Memory: one `(tag, slot)` pair is a slot key in a hash set, ~28 bytes (the key's text is
//! shared with the slot); each distinct tag adds its text and a set, ~80 bytes, and each space
//! with tagged entries a map.

use std::collections::{HashMap, HashSet};

use super::SlotKey;
use crate::cache::tags::Tags;

/// Tag → slots, per space.
#[derive(Default)]
pub(super) struct TagSlots {
    /// space → tag → slots (looked up by `&str`, without building a name).
    map: HashMap<Box<str>, HashMap<Box<str>, HashSet<SlotKey>>>,
}

impl TagSlots {
    /// Records that `slot` holds a value with `tags`.
    pub(super) fn add(&mut self, slot: &SlotKey, tags: &Tags) {
        if tags.is_empty() {
            return;
        }
        let space = slot.key.space();
        let by_tag = match self.map.get_mut(space) {
            Some(by_tag) => by_tag,
            None => self.map.entry(space.into()).or_default(),
        };
        for tag in tags.iter() {
            match by_tag.get_mut(tag) {
                Some(slots) => {
                    slots.insert(slot.clone());
                }
                None => {
                    by_tag.insert(tag.into(), HashSet::from([slot.clone()]));
                }
            }
        }
    }

    /// Forgets `slot` for each of `tags` that `still` does not say its current value
    /// carries.
    pub(super) fn remove(&mut self, slot: &SlotKey, tags: &Tags, still: impl Fn(&str) -> bool) {
        let space = slot.key.space();
        let Some(by_tag) = self.map.get_mut(space) else {
            return;
        };
        for tag in tags.iter().filter(|tag| !still(tag)) {
            if let Some(slots) = by_tag.get_mut(tag) {
                slots.remove(slot);
                if slots.is_empty() {
                    by_tag.remove(tag);
                }
            }
        }
        if by_tag.is_empty() {
            self.map.remove(space);
        }
    }

    /// The slots that held a value tagged `tag` in `space`, taken out of the index (the
    /// purge puts back those it keeps).
    pub(super) fn take(&mut self, space: &str, tag: &str) -> HashSet<SlotKey> {
        let Some(by_tag) = self.map.get_mut(space) else {
            return HashSet::new();
        };
        let slots = by_tag.remove(tag).unwrap_or_default();
        if by_tag.is_empty() {
            self.map.remove(space);
        }
        slots
    }

    /// Puts back `slot` for `tag` (a value the purge kept).
    pub(super) fn put_back(&mut self, space: &str, tag: &str, slot: SlotKey) {
        self.map
            .entry(space.into())
            .or_default()
            .entry(tag.into())
            .or_default()
            .insert(slot);
    }

    /// Number of `(tag, slot)` pairs (tests and figures).
    pub(super) fn pairs(&self) -> usize {
        self.map
            .values()
            .flat_map(HashMap::values)
            .map(HashSet::len)
            .sum()
    }
}
