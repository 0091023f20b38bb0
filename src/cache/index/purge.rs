//! Purges over a [`SlotIndex`]: by key prefix (a path with its query variants, a `dir/*`
//! prefix, a space) through the ordered set, or by tag through the tag slots; dropping what
//! they select, or (a soft purge) marking it stale. Each runs under the ordered-set lock, so
//! no insert interleaves, in time proportional to the slots it selects. A key left in the
//! ordered set with an empty slot is harmless (a prefix purge finds nothing there) and the
//! sweep removes it.

use std::time::SystemTime;

use super::{Dropped, Indexed, OnDrop, Ordered, Slot, SlotIndex, SlotKey, lock};
use crate::cache::key::{CacheKey, PurgeSelector};

/// What a purge does to the values it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeAction {
    /// Drops them.
    Drop,
    /// Marks them stale at this instant (a soft purge): revalidated before they are served
    /// again, served stale meanwhile only within their stale windows.
    MarkStale(SystemTime),
}

/// What a purge did to one slot.
enum SlotPurge {
    Dropped,
    Marked,
    /// Selected, but kept (received after a replayed purge, or stale already).
    Kept,
    /// Nothing selected there (any more).
    Gone,
}

impl<V: Indexed, D: OnDrop<V>> SlotIndex<V, D> {
    /// Drops every slot `selector` names (with `before`, only values received before then);
    /// returns how many values were dropped.
    pub fn purge(&self, selector: &PurgeSelector, before: Option<SystemTime>) -> usize {
        self.purge_with(selector, before, PurgeAction::Drop, |_, _| {})
    }

    /// Applies `action` to every value `selector` names (with `before`, only those received
    /// before then); `on_marked` is told of each value a soft purge marked stale (its new
    /// value). Returns how many values were dropped or marked.
    pub fn purge_with(
        &self,
        selector: &PurgeSelector,
        before: Option<SystemTime>,
        action: PurgeAction,
        mut on_marked: impl FnMut(&SlotKey, &V),
    ) -> usize {
        let mut ordered = lock(&self.ordered);
        let mut affected = 0;
        let Some(prefix) = selector.key_prefix() else {
            let (space, tag) = selector
                .tag()
                .expect("a selector without a key prefix is a tag");
            let slots = ordered.tags.take(space, tag);
            for slot in slots {
                match self.purge_slot(&mut ordered, &slot, before, action, Some(tag)) {
                    SlotPurge::Dropped => affected += 1,
                    SlotPurge::Marked => {
                        affected += 1;
                        if let Some(value) = self.peek(&slot) {
                            on_marked(&slot, &value);
                        }
                        ordered.tags.put_back(space, tag, slot);
                    }
                    SlotPurge::Kept => ordered.tags.put_back(space, tag, slot),
                    SlotPurge::Gone => {}
                }
            }
            return affected;
        };
        let start = SlotKey::new(&CacheKey::from_raw_prefix(&prefix), 0);
        let selected: Vec<SlotKey> = ordered
            .keys
            .range(start..)
            .take_while(|slot| slot.key.as_str().starts_with(&prefix))
            .cloned()
            .collect();
        for slot in selected {
            match self.purge_slot(&mut ordered, &slot, before, action, None) {
                SlotPurge::Dropped => affected += 1,
                SlotPurge::Marked => {
                    affected += 1;
                    if let Some(value) = self.peek(&slot) {
                        on_marked(&slot, &value);
                    }
                }
                SlotPurge::Kept | SlotPurge::Gone => {}
            }
        }
        affected
    }

    /// Applies a purge to one slot (with `tag`, only to a value carrying it). Called with the
    /// ordered set locked, so no insert runs meanwhile.
    fn purge_slot(
        &self,
        ordered: &mut Ordered,
        slot: &SlotKey,
        before: Option<SystemTime>,
        action: PurgeAction,
        tag: Option<&str>,
    ) -> SlotPurge {
        let selected = |value: &V| {
            tag.is_none_or(|tag| value.tags().contains(tag))
                && before.is_none_or(|before| value.received() < before)
        };
        if let PurgeAction::MarkStale(at) = action {
            let Some(value) = self.peek(slot) else {
                if !self.slots.contains_key(slot) {
                    ordered.keys.remove(slot);
                }
                return SlotPurge::Gone;
            };
            if !selected(&value) {
                return if tag.is_some_and(|tag| value.tags().contains(tag)) {
                    SlotPurge::Kept
                } else {
                    SlotPurge::Gone
                };
            }
            let Some(stale) = value.invalidated(at) else {
                return SlotPurge::Kept;
            };
            return match self
                .slots
                .replace_with_lifecycle(slot.clone(), Slot::Value(stale), true)
            {
                Ok(evicted) => {
                    self.evicted(ordered, evicted);
                    SlotPurge::Marked
                }
                Err(_) => SlotPurge::Gone,
            };
        }
        let removed = self.slots.remove_if(slot, |current| match current {
            Slot::Value(value) => selected(value),
            // Replayed purges leave the variants' names: newer variants may be there. Tags
            // never select them.
            Slot::Vary(_) => before.is_none() && tag.is_none(),
        });
        match removed {
            Some((slot, Slot::Value(value))) => {
                // A tag's slots are spread over the whole ordered set, where each removal
                // costs a walk from the root that misses the CPU cache: the sweep removes keys
                // whose slot is empty (as it does after expiries), so a tag purge leaves them.
                if tag.is_none() {
                    ordered.keys.remove(&slot);
                }
                // The slot is empty now (inserts wait for the ordered set): every tag of the
                // value goes, but the one purged, whose slots were taken out already.
                if !value.tags().is_empty() {
                    ordered
                        .tags
                        .remove(&slot, value.tags(), |t| tag.is_some_and(|tag| tag == t));
                }
                self.on_drop.dropped(&slot, value, Dropped::Removed);
                SlotPurge::Dropped
            }
            Some((slot, Slot::Vary(_))) => {
                ordered.keys.remove(&slot);
                SlotPurge::Gone
            }
            None => match self.slots.peek(slot) {
                None => {
                    ordered.keys.remove(slot);
                    SlotPurge::Gone
                }
                Some(Slot::Value(value)) if tag.is_some_and(|tag| value.tags().contains(tag)) => {
                    SlotPurge::Kept
                }
                Some(_) => SlotPurge::Gone,
            },
        }
    }
}
