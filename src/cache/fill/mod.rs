//! Request coalescing: one origin fetch (a *fill*) per key, read by any number of requests
//! while the body arrives (`buffer`), driven to its end by one task (`driver`) that the
//! request holding the key's [`FillPermit`] starts.
//!
//! A permit is the only way to end a fill: [`FillPermit::complete`] stores what it fetched
//! (unless a purge detached the fill meanwhile); dropping a permit without completing it
//! marks the fill abandoned and wakes its readers, so no path can leave a key's fill hanging.

mod buffer;
pub mod driver;
mod request;
mod revalidate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use buffer::{Fill, FillError, FillHead, FillKind, FillReader, STREAM_WINDOW};
pub use request::{FillRequest, Origin};

use super::Cache;
use super::entry::Entry;
use super::key::{CacheKey, PurgeSelector};

/// The fills in flight, by key.
#[derive(Default)]
pub(crate) struct Registry {
    fills: Mutex<HashMap<CacheKey, Arc<Fill>>>,
}

/// What joining the registry gave.
pub(crate) enum Joined {
    /// No joinable fill ran: this new one is the caller's to drive.
    Leader(Arc<Fill>),
    /// Another request's fill is in flight.
    Follower(Arc<Fill>),
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<CacheKey, Arc<Fill>>> {
        self.fills.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the fill in flight for `key`, or registers a new one the caller leads.
    pub(crate) fn join(&self, key: &CacheKey) -> Joined {
        match self.join_unless(key, || None::<std::convert::Infallible>) {
            Ok(joined) => joined,
            Err(never) => match never {},
        }
    }

    /// [`Registry::join`], unless `stored` finds the response first: it is asked under
    /// the registry's lock, under which a fill that ended stored its response before
    /// leaving, so a caller whose look into the tiers came before that store cannot start a
    /// second fetch after it.
    pub(crate) fn join_unless<T>(
        &self,
        key: &CacheKey,
        stored: impl FnOnce() -> Option<T>,
    ) -> Result<Joined, T> {
        let mut fills = self.lock();
        if let Some(fill) = fills.get(key)
            && fill.joinable()
        {
            return Ok(Joined::Follower(fill.clone()));
        }
        if let Some(found) = stored() {
            return Err(found);
        }
        let fill = Fill::new();
        fills.insert(key.clone(), fill.clone());
        Ok(Joined::Leader(fill))
    }

    /// Takes `fill` out of the registry and runs `then` under its lock, if `fill` is still
    /// the key's (a purge may have detached it): a purge then either came before, and the
    /// fill is not there, or comes after `then`.
    pub(crate) fn leave(&self, key: &CacheKey, fill: &Arc<Fill>, then: impl FnOnce()) {
        let mut fills = self.lock();
        if fills.get(key).is_some_and(|f| Arc::ptr_eq(f, fill)) {
            fills.remove(key);
            then();
        }
    }

    /// Detaches every fill `selector` names: it runs on for its readers, but stores nothing,
    /// and no new reader joins it.
    pub(crate) fn detach(&self, selector: &PurgeSelector) {
        self.lock().retain(|key, fill| {
            let keep = !selector.matches(key, fill.tags().as_ref());
            if !keep {
                fill.close();
            }
            keep
        });
    }
}

/// The right to drive one key's fill to its end (see the module docs).
pub struct FillPermit {
    cache: Arc<Cache>,
    key: CacheKey,
    fill: Arc<Fill>,
    /// The stored entry this fill revalidates, if any.
    stale: Option<Arc<Entry>>,
    /// Whether the fill is the key's in the registry (else its response is never stored).
    registered: bool,
    done: bool,
}

impl FillPermit {
    pub(crate) fn registered(
        cache: Arc<Cache>,
        key: CacheKey,
        fill: Arc<Fill>,
        stale: Option<Arc<Entry>>,
    ) -> FillPermit {
        FillPermit {
            cache,
            key,
            fill,
            stale,
            registered: true,
            done: false,
        }
    }

    /// A fill of its own for one request that may not share another's (its response is
    /// never stored, and nobody else reads it).
    pub fn detached(cache: Arc<Cache>, key: CacheKey) -> FillPermit {
        FillPermit {
            cache,
            key,
            fill: Fill::new(),
            stale: None,
            registered: false,
            done: false,
        }
    }

    /// The key filled.
    pub fn key(&self) -> &CacheKey {
        &self.key
    }

    /// The fill's buffer.
    pub fn fill(&self) -> &Arc<Fill> {
        &self.fill
    }

    /// The stored entry being revalidated, if any.
    pub fn stale(&self) -> Option<&Arc<Entry>> {
        self.stale.as_ref()
    }

    /// The cache the fill stores into.
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// A reader from the start of the body (`None` once that part is gone).
    pub fn reader(&self) -> Option<FillReader> {
        self.fill.reader(0)
    }

    /// Ends the fill: stores `entry`, if any, unless a purge detached the fill meanwhile.
    pub fn complete(mut self, entry: Option<Entry>) {
        self.done = true;
        if self.registered {
            self.cache
                .complete(&self.key, &self.fill, entry.map(Arc::new));
        }
    }

    /// [`FillPermit::complete`] with an entry already shared.
    pub(crate) fn complete_shared(mut self, entry: Arc<Entry>) {
        self.done = true;
        if self.registered {
            self.cache.complete(&self.key, &self.fill, Some(entry));
        }
    }
}

impl Drop for FillPermit {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Never completed (an early return, a panic, a cancelled task): readers must not
        // wait for a body that will not come, and the key must be free for a new fill.
        self.fill.finish(Err(FillError::Abandoned));
        if self.registered {
            self.cache.complete(&self.key, &self.fill, None);
        }
    }
}
