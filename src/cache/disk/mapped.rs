//! Entry files mapped into memory, so that a block verified once can go to a plain socket as
//! the file's own pages (`sendfile`, see `server::file_send`) instead of being copied into a
//! buffer and out again.
//!
//! A mapped block is only handed out when this process verified its checksum on the unchanged
//! file and the page cache holds its pages ([`Mapping::resident`], see `body` for how often
//! that is asked). Nothing reads the mapping in the normal course: every live mapping is
//! registered by address, and [`file_piece`] tells the socket writer which file and offset a
//! slice's bytes are, so it sends them from the file without touching them; should the pages
//! have gone meanwhile, [`FilePiece::load_verified`] reads and verifies them again first.
//! Should anything read the mapping all the same, its bytes are the file's.
//!
//! This is the one module of the edge with `unsafe` code (`mmap` and `mincore`).
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;

use super::DiskError;
use super::entry_file::{self, Meta};

/// A read-only map of an entry file's body.
pub struct Mapping {
    map: memmap2::Mmap,
}

/// Live mappings by start address.
static REGISTRY: RwLock<BTreeMap<usize, Region>> = RwLock::new(BTreeMap::new());
/// How many mappings are live (read without the registry's lock).
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Live mappings at most; past it, blocks are copied. Each mapping is one of the process'
/// memory areas, which the kernel bounds (`vm.max_map_count`, 65,530 by default).
const MAX_LIVE: usize = 16_384;

/// A live mapping: where it ends, its file, and what its pieces are checked against.
struct Region {
    end: usize,
    file: Arc<File>,
    checks: Arc<Checks>,
}

/// What the pieces of a body are checked against when they must be read again.
pub struct Checks {
    /// The body's block size and block checksums.
    pub layout: Arc<Meta>,
    /// Set when a check failed: the body's blocks are no longer trusted.
    pub broken: AtomicBool,
}

impl Mapping {
    /// Maps the body of an entry file (`checks.layout.body_len` bytes from its start),
    /// read-only; an error past `MAX_LIVE` mappings.
    pub fn new(file: &Arc<File>, checks: &Arc<Checks>) -> io::Result<Arc<Mapping>> {
        let len = usize::try_from(checks.layout.body_len)
            .map_err(|_| io::Error::other("body too large to map"))?;
        if len == 0 {
            return Err(io::Error::other("an empty body is not mapped"));
        }
        // A place among the live mappings is taken before mapping (given back if it fails).
        if LIVE
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live < MAX_LIVE).then_some(live + 1)
            })
            .is_err()
        {
            return Err(io::Error::other("too many entry files mapped"));
        }
        // SAFETY: a shared read-only mapping of a file the cache never changes in place once
        // it is committed (entry files are written under tmp/ and renamed; a refresh only
        // appends past the body). Its bytes are not read in the normal course: the socket
        // writer sends them from the file (`file_piece`). Were they read, and the file cut
        // short meanwhile by another program, the read would fault: the hazard every file
        // mapping has, which nothing here takes.
        let map = match unsafe { memmap2::MmapOptions::new().len(len).map(&**file) } {
            Ok(map) => map,
            Err(e) => {
                LIVE.fetch_sub(1, Ordering::Release);
                return Err(e);
            }
        };
        let start = map.as_ptr() as usize;
        REGISTRY
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                start,
                Region {
                    end: start + len,
                    file: file.clone(),
                    checks: checks.clone(),
                },
            );
        Ok(Arc::new(Mapping { map }))
    }

    /// Whether the page cache holds every page of `range` (so sending it does not wait for
    /// the disk).
    pub fn resident(&self, range: Range<usize>) -> bool {
        range.end <= self.map.len()
            && resident(
                self.map.as_ptr() as usize + range.start,
                range.end.saturating_sub(range.start),
            )
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

/// Where the bytes of a slice of a live mapping are in its file.
#[derive(Clone)]
pub struct FilePiece {
    /// The entry file.
    pub file: Arc<File>,
    /// The slice's offset in the file.
    pub offset: u64,
    /// The slice's length.
    pub len: usize,
    start: usize,
    checks: Arc<Checks>,
}

impl FilePiece {
    /// Whether the page cache holds every page of the piece, so sending it from the file
    /// does not wait for the disk.
    pub fn resident(&self) -> bool {
        resident(self.start, self.len)
    }

    /// Where the piece starts in memory (the socket writer tells a piece it is part way
    /// through from a new one by it).
    pub fn address(&self) -> usize {
        self.start
    }

    /// Reads the blocks the piece lies in from the file and verifies their checksums (on a
    /// blocking thread: it may wait for the disk); their pages are in the page cache then.
    /// A failed check marks the body's blocks untrusted.
    pub fn load_verified(&self) -> Result<(), DiskError> {
        let layout = &self.checks.layout;
        let first = self.offset / layout.block_size;
        let last = (self.offset + self.len.saturating_sub(1) as u64) / layout.block_size;
        for index in first..=last {
            if let Err(e) = entry_file::read_block(&self.file, layout, index) {
                if matches!(e, DiskError::Corrupt(_)) {
                    self.checks.broken.store(true, Ordering::Release);
                }
                return Err(e);
            }
        }
        Ok(())
    }
}

/// The file piece whose bytes `slice` is, when it lies within one live mapping.
pub fn file_piece(slice: &[u8]) -> Option<FilePiece> {
    piece_at(slice.as_ptr() as usize, slice.len())
}

fn piece_at(start: usize, len: usize) -> Option<FilePiece> {
    let registry = REGISTRY.read().unwrap_or_else(PoisonError::into_inner);
    let (&base, region) = registry.range(..=start).next_back()?;
    if start + len > region.end {
        return None;
    }
    Some(FilePiece {
        file: region.file.clone(),
        offset: (start - base) as u64,
        len,
        start,
        checks: region.checks.clone(),
    })
}

/// Whether any mapping is live (a socket writer skips the lookup when none is).
pub fn any() -> bool {
    LIVE.load(Ordering::Acquire) > 0
}

/// Whether the page cache holds every page of `[start, start + len)`, an address range of a
/// live mapping (`mincore`; a range outside any mapping is simply not resident).
fn resident(start: usize, len: usize) -> bool {
    let page = page_size();
    if len == 0 {
        return false;
    }
    let end = start.saturating_add(len);
    // Asked in pieces of up to 512 pages (2 MiB of 4 KiB pages), on the stack.
    let mut status = [0u8; 512];
    let mut at = start / page * page;
    while at < end {
        let len = (end - at).min(status.len() * page);
        let pages = len.div_ceil(page);
        // SAFETY: `mincore` only reads the page tables of `[at, at + len)` (`at` is
        // page-aligned) and writes one byte per page into `status`, which has room for
        // `pages` <= 512 of them; an address range that is not mapped is an error, not a
        // fault.
        let ok = unsafe { libc::mincore(at as *mut libc::c_void, len, status.as_mut_ptr()) } == 0;
        if !ok || status[..pages].iter().any(|s| s & 1 == 0) {
            return false;
        }
        at += len;
    }
    true
}

fn page_size() -> usize {
    rustix::param::page_size()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    fn checks(body: &[u8]) -> Arc<Checks> {
        Arc::new(Checks {
            layout: Arc::new(entry_file::tests::meta_for(body)),
            broken: AtomicBool::new(false),
        })
    }

    #[test]
    fn a_mapped_piece_names_its_file_and_offset_and_holds_the_files_bytes() {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&data).unwrap();
        let file = Arc::new(file);
        let checks = checks(&data);
        let mapping = Mapping::new(&file, &checks).unwrap();

        let piece = mapping.bytes(70_000..140_000);
        assert_eq!(piece[..], data[70_000..140_000]);
        let found = file_piece(&piece).expect("a live mapping is registered");
        assert!(Arc::ptr_eq(&found.file, &file));
        assert_eq!((found.offset, found.len), (70_000, 70_000));
        assert!(found.resident(), "just written: in the page cache");
        found.load_verified().unwrap();
        assert!(file_piece(&piece.slice(100..200)).is_some_and(|p| p.offset == 70_100));
        assert!(file_piece(&[0u8; 100]).is_none());

        // A changed byte fails the check of the blocks a piece lies in, and marks the body.
        file.write_all_at(&[data[100_000] ^ 1], 100_000).unwrap();
        assert!(found.load_verified().is_err());
        assert!(checks.broken.load(Ordering::Acquire));

        // The piece keeps the mapping (and its registration) alive; then both go.
        let start = piece.as_ptr() as usize;
        drop(mapping);
        assert!(file_piece(&piece).is_some());
        drop(piece);
        // (Another test's mapping may have taken the address since.)
        assert!(piece_at(start, 1).is_none_or(|other| !Arc::ptr_eq(&other.file, &file)));
    }
}
