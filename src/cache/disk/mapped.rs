//! Entry files mapped into memory, so that a block verified once can go to a plain socket as
//! the file's own pages (`sendfile`, see `server::file_send`) instead of being copied into a
//! buffer and out again.
//!
//! A mapped block is only handed out when this process verified its checksum on the unchanged
//! file and the page cache holds all its pages ([`Mapping::resident`]): sending it then never
//! waits for the disk, and bytes the kernel had to read again from the disk are verified
//! again first. Nothing reads the mapping in the normal course: every live mapping is
//! registered by address, and [`file_region`] tells the socket writer which file and offset a
//! slice's bytes are, so it sends them from the file without touching them. Should anything
//! read them all the same, they are the file's bytes.
//!
//! This is the one module of the edge with `unsafe` code (`mmap` and `mincore`).
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;

/// A read-only map of an entry file's body.
pub struct Mapping {
    map: memmap2::Mmap,
}

/// Live mappings by start address: their end and their file.
static REGISTRY: RwLock<BTreeMap<usize, Region>> = RwLock::new(BTreeMap::new());
/// How many mappings are live (read without the registry's lock).
static LIVE: AtomicUsize = AtomicUsize::new(0);

struct Region {
    end: usize,
    file: Arc<File>,
}

impl Mapping {
    /// Maps the first `len` bytes of `file` (the body of an entry file), read-only.
    pub fn new(file: &Arc<File>, len: u64) -> io::Result<Arc<Mapping>> {
        let len = usize::try_from(len).map_err(|_| io::Error::other("body too large to map"))?;
        if len == 0 {
            return Err(io::Error::other("an empty body is not mapped"));
        }
        // SAFETY: a shared read-only mapping of a file the cache never changes in place once
        // it is committed (entry files are written under tmp/ and renamed; a refresh only
        // appends past the body). The bytes are read only through `file_region` (by the
        // kernel, from the file) or, as a fallback, by a socket write; a file truncated under
        // us by another program is the hazard every file mapping has.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(&**file)? };
        let start = map.as_ptr() as usize;
        REGISTRY
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                start,
                Region {
                    end: start + len,
                    file: file.clone(),
                },
            );
        LIVE.fetch_add(1, Ordering::Release);
        Ok(Arc::new(Mapping { map }))
    }

    /// Whether the page cache holds every page of `range` (so reading or sending it does not
    /// wait for the disk).
    pub fn resident(&self, range: Range<usize>) -> bool {
        let page = page_size();
        if range.start >= range.end || range.end > self.map.len() {
            return false;
        }
        // Asked in pieces of up to 512 pages (2 MiB of 4 KiB pages), on the stack.
        let mut status = [0u8; 512];
        let mut at = range.start / page * page;
        while at < range.end {
            let len = (range.end - at).min(status.len() * page);
            let pages = len.div_ceil(page);
            // SAFETY: `at` is page-aligned and `[at, at + len)` lies within the mapping;
            // `status` holds one byte for each of its pages.
            let ok = unsafe {
                libc::mincore(
                    self.map.as_ptr().add(at) as *mut libc::c_void,
                    len,
                    status.as_mut_ptr(),
                )
            } == 0;
            if !ok || status[..pages].iter().any(|s| s & 1 == 0) {
                return false;
            }
            at += len;
        }
        true
    }

    /// The bytes of `range`, as a piece that keeps the mapping alive.
    pub fn bytes(self: &Arc<Self>, range: Range<usize>) -> Bytes {
        Bytes::from_owner(Piece {
            mapping: self.clone(),
            range,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        REGISTRY
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(self.map.as_ptr() as usize));
        LIVE.fetch_sub(1, Ordering::Release);
    }
}

/// A range of a mapping, owned by the `Bytes` made of it.
struct Piece {
    mapping: Arc<Mapping>,
    range: Range<usize>,
}

impl AsRef<[u8]> for Piece {
    fn as_ref(&self) -> &[u8] {
        &self.mapping.map[self.range.clone()]
    }
}

/// The file and offset whose bytes `slice` is, when it lies within one live mapping.
pub fn file_region(slice: &[u8]) -> Option<(Arc<File>, u64)> {
    region_at(slice.as_ptr() as usize, slice.len())
}

fn region_at(start: usize, len: usize) -> Option<(Arc<File>, u64)> {
    let registry = REGISTRY.read().unwrap_or_else(PoisonError::into_inner);
    let (&base, region) = registry.range(..=start).next_back()?;
    if start + len > region.end {
        return None;
    }
    Some((region.file.clone(), (start - base) as u64))
}

/// Whether any mapping is live (a socket writer skips the lookup when none is).
pub fn any() -> bool {
    LIVE.load(Ordering::Acquire) > 0
}

fn page_size() -> usize {
    rustix::param::page_size()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_mapped_piece_names_its_file_and_offset_and_holds_the_files_bytes() {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&data).unwrap();
        let file = Arc::new(file);
        let mapping = Mapping::new(&file, data.len() as u64).unwrap();
        assert!(
            mapping.resident(0..data.len()),
            "just written: in the page cache"
        );
        assert!(!mapping.resident(0..data.len() + 1), "past the mapping");

        let piece = mapping.bytes(70_000..140_000);
        assert_eq!(piece[..], data[70_000..140_000]);
        let (found, offset) = file_region(&piece).expect("a live mapping is registered");
        assert!(Arc::ptr_eq(&found, &file));
        assert_eq!(offset, 70_000);
        assert!(file_region(&piece.slice(100..200)).is_some_and(|(_, at)| at == 70_100));

        let elsewhere = vec![0u8; 100];
        assert!(file_region(&elsewhere).is_none());

        // The piece keeps the mapping (and its registration) alive; then both go.
        let start = piece.as_ptr() as usize;
        drop(mapping);
        assert!(file_region(&piece).is_some());
        drop(piece);
        // (Another test's mapping may have taken the address since.)
        assert!(region_at(start, 1).is_none_or(|(other, _)| !Arc::ptr_eq(&other, &file)));
    }
}
