//! Entry files kept open (like nginx's `open_file_cache`): a hit on an open entry costs no
//! `open`, no meta read and no meta decode, only the body's reads. Each open entry is the
//! stored response as the memory tier would hold it, its body a [`DiskBody`] on the open file.
//!
//! An open entry is valid while the index holds the very [`IndexEntry`] it was opened from:
//! a rewrite, a refresh (meta appended), a purge, an eviction or a bad block replaces or
//! drops that index entry, and the index forgets the open entry with it (so a deleted file's
//! space is not held by an idle descriptor). How many stay open follows the process' file
//! descriptor limit: half of it, as nginx is usually set up (connections need the rest).

use std::fs::File;
use std::sync::Arc;

use super::body::FileStamp;
use super::entry_file::{self, Meta};
use super::index::{IndexEntry, SlotKey};
use super::{DiskBody, DiskError, Inner, nowait};
use crate::cache::body::Body;
use crate::cache::entry::Entry;
use crate::cache::key::CacheKey;

/// Open entries kept at least, and at most (half the descriptor limit in between).
const MIN_OPEN: u64 = 64;
const MAX_OPEN: u64 = 16_384;

/// The open entries of a tier, by the address of the index entry they were opened from (an
/// open entry keeps that index entry alive, so the address is not reused meanwhile).
pub struct OpenEntries {
    cache: quick_cache::sync::Cache<usize, Opened>,
}

#[derive(Clone)]
struct Opened {
    found: Arc<IndexEntry>,
    file: Arc<File>,
    entry: Arc<Entry>,
}

fn id(found: &Arc<IndexEntry>) -> usize {
    Arc::as_ptr(found) as usize
}

impl OpenEntries {
    /// Sized by the process' limit of open files.
    pub fn new() -> OpenEntries {
        OpenEntries::with_capacity(descriptor_limit().map_or(1024, |limit| limit / 2))
    }

    /// Keeps about `capacity` entries open.
    pub fn with_capacity(capacity: u64) -> OpenEntries {
        let capacity = capacity.clamp(MIN_OPEN, MAX_OPEN) as usize;
        OpenEntries {
            cache: quick_cache::sync::Cache::new(capacity),
        }
    }

    /// The open entry of `found`, if it is open; an error if its file was deleted since (by
    /// hand, or with its directory: the entry is gone, as it would be for a lookup that opens
    /// the path). A file changed in place has its blocks verified again as they are read.
    fn get(&self, found: &Arc<IndexEntry>) -> Result<Option<Arc<Entry>>, DiskError> {
        let Some(opened) = self.cache.get(&id(found)) else {
            return Ok(None);
        };
        if !Arc::ptr_eq(&opened.found, found) {
            return Ok(None);
        }
        if !FileStamp::of(&opened.file)?.linked() {
            return Err(DiskError::Io(std::io::ErrorKind::NotFound.into()));
        }
        Ok(Some(opened.entry))
    }

    /// Keeps `entry`, opened from `found` on `file`, open.
    fn put(&self, found: &Arc<IndexEntry>, file: Arc<File>, entry: &Arc<Entry>) {
        self.cache.insert(
            id(found),
            Opened {
                found: found.clone(),
                file,
                entry: entry.clone(),
            },
        );
    }

    /// `found` left the index: its open entry goes (the file closes once no response reads it).
    pub fn forget(&self, found: &Arc<IndexEntry>) {
        self.cache
            .remove_if(&id(found), |opened| Arc::ptr_eq(&opened.found, found));
    }

    /// Entries open.
    pub fn len(&self) -> usize {
        self.cache.len()
    }
}

impl Default for OpenEntries {
    fn default() -> OpenEntries {
        OpenEntries::new()
    }
}

#[cfg(unix)]
fn descriptor_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(not(unix))]
fn descriptor_limit() -> Option<u64> {
    None
}

/// Whether opening may wait for the disk.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Only what the kernel's caches give at once (on an async worker).
    No,
    /// Whatever it takes (on a blocking thread).
    Yes,
}

impl Inner {
    /// The stored response of `found`, from its open entry or by opening its file; `Ok(None)`
    /// when that would wait and `wait` is [`Wait::No`].
    pub(super) fn open_entry(
        self: &Arc<Self>,
        key: &CacheKey,
        found: &Arc<IndexEntry>,
        wait: Wait,
    ) -> Result<Option<Arc<Entry>>, DiskError> {
        if let Some(entry) = self.open.get(found)? {
            return Ok(Some(entry));
        }
        let file = match wait {
            Wait::No => match nowait::open(&found.path)? {
                Some(file) => file,
                None => return Ok(None),
            },
            Wait::Yes => File::open(&found.path)?,
        };
        // No readahead: a page of it in the page cache was read by a reader that verified it
        // (or asked for it), never fetched ahead unchecked (see `body`).
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Random);
        // Stamped before its meta is read: a change from here on is seen.
        let stamp = FileStamp::of(&file)?;
        let meta = match wait {
            Wait::No => {
                let mut read =
                    |buf: &mut [u8], at: u64| Ok(nowait::read_at(&file, buf, at)? == buf.len());
                match entry_file::read_meta_with(&file, &mut read)? {
                    Some(meta) => meta,
                    None => return Ok(None),
                }
            }
            Wait::Yes => entry_file::read_meta(&file)?,
        };
        if meta.key != *key || meta.vary != found.vary {
            return Err(DiskError::Corrupt("the file holds another key".into()));
        }
        let file = Arc::new(file);
        let entry = Arc::new(self.entry_of(file.clone(), stamp, meta, found));
        // Only while the index still holds `found`: a file dropped meanwhile is not kept open.
        let slot = SlotKey::new(key, found.vary.variant_id());
        if self.index.is_current(&slot, found) {
            self.open.put(found, file, &entry);
            if !self.index.is_current(&slot, found) {
                self.open.forget(found);
            }
        }
        Ok(Some(entry))
    }

    /// The stored response of an opened file, with the index's soft purge of `found` (the
    /// index is marked at once, the file's meta follows in the background) and its tags.
    fn entry_of(
        self: &Arc<Self>,
        file: Arc<File>,
        stamp: FileStamp,
        meta: Meta,
        found: &Arc<IndexEntry>,
    ) -> Entry {
        let slot = SlotKey::new(&meta.key, found.vary.variant_id());
        let body = DiskBody::new(
            file,
            stamp,
            &meta,
            slot,
            found.clone(),
            self.buffers.clone(),
            Arc::downgrade(self),
        );
        let mut freshness = meta.freshness;
        if let Some(at) = found.freshness.invalidated_at {
            freshness = freshness.invalidated(at);
        }
        Entry::new(
            meta.key,
            meta.status,
            &meta.headers,
            Body::Stored(Arc::new(body)),
            freshness,
            meta.vary,
        )
        .with_tags(meta.tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sized_by_the_descriptor_limit_within_bounds() {
        assert!(OpenEntries::with_capacity(1).cache.capacity() >= MIN_OPEN);
        assert!(OpenEntries::with_capacity(1 << 40).cache.capacity() <= MAX_OPEN + 64);
        let limit = descriptor_limit().unwrap_or(4096);
        let open = OpenEntries::new();
        assert!(open.cache.capacity() <= (limit / 2).clamp(MIN_OPEN, MAX_OPEN) + 64);
    }
}
