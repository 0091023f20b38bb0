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
//! shared with the slot); each distinct tag adds its text and a set, ~80 bytes.

use std::collections::{HashMap, HashSet};

use super::SlotKey;
use crate::cache::tags::Tags;

/// Tag → slots, per space.
#[derive(Default)]
pub(super) struct TagSlots {
    /// `space \0 tag` → slots.
    map: HashMap<Box<str>, HashSet<SlotKey>>,
}

fn name(space: &str, tag: &str) -> String {
    let mut name = String::with_capacity(space.len() + tag.len() + 1);
    name.push_str(space);
    name.push('\0');
    name.push_str(tag);
    name
}

impl TagSlots {
    /// Records that `slot` holds a value with `tags`.
    pub(super) fn add(&mut self, slot: &SlotKey, tags: &Tags) {
        let space = slot.key.space();
        for tag in tags.iter() {
            let name = name(space, tag);
            match self.map.get_mut(name.as_str()) {
                Some(slots) => {
                    slots.insert(slot.clone());
                }
                None => {
                    self.map
                        .insert(name.into_boxed_str(), HashSet::from([slot.clone()]));
                }
            }
        }
    }

    /// Forgets `slot` for each of `tags` that `still` does not say its current value
    /// carries.
    pub(super) fn remove(&mut self, slot: &SlotKey, tags: &Tags, still: impl Fn(&str) -> bool) {
        let space = slot.key.space();
        for tag in tags.iter().filter(|tag| !still(tag)) {
            let name = name(space, tag);
            if let Some(slots) = self.map.get_mut(name.as_str()) {
                slots.remove(slot);
                if slots.is_empty() {
                    self.map.remove(name.as_str());
                }
            }
        }
    }

    /// The slots that held a value tagged `tag` in `space`, taken out of the index (the
    /// purge puts back those it keeps).
    pub(super) fn take(&mut self, space: &str, tag: &str) -> HashSet<SlotKey> {
        self.map
            .remove(name(space, tag).as_str())
            .unwrap_or_default()
    }

    /// Puts back `slot` for `tag` (a value the purge kept).
    pub(super) fn put_back(&mut self, space: &str, tag: &str, slot: SlotKey) {
        self.map
            .entry(name(space, tag).into_boxed_str())
            .or_default()
            .insert(slot);
    }

    /// Number of `(tag, slot)` pairs (tests and figures).
    pub(super) fn pairs(&self) -> usize {
        self.map.values().map(HashSet::len).sum()
    }
}
