//! File access that never blocks an async worker: it takes what the kernel's dentry and page
//! caches can give at once (`openat2` with `RESOLVE_CACHED`, `preadv2` with `RWF_NOWAIT`) and
//! says how far it got, so that only what needs the disk goes to a blocking thread. A hit on
//! an entry whose file is in the page cache then costs no thread hop at all.

use std::fs::File;
use std::io;
use std::path::Path;

/// Opens `path` read-only if every step of its lookup is in the dentry cache; `Ok(None)` when
/// it is not (or the kernel cannot tell): open it on a blocking thread.
#[cfg(target_os = "linux")]
pub fn open(path: &Path) -> io::Result<Option<File>> {
    use rustix::fs::{CWD, Mode, OFlags, ResolveFlags};
    match rustix::fs::openat2(
        CWD,
        path,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::CACHED,
    ) {
        Ok(fd) => Ok(Some(File::from(fd))),
        Err(rustix::io::Errno::NOENT) => Err(io::ErrorKind::NotFound.into()),
        // Not cached (EAGAIN), or a kernel without openat2 or RESOLVE_CACHED.
        Err(_) => Ok(None),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn open(_path: &Path) -> io::Result<Option<File>> {
    Ok(None)
}

/// Reads into `buf` from `offset` as much as the page cache holds, and returns how many bytes
/// it read: fewer than `buf.len()` when the rest is not cached (or the file ends there).
#[cfg(target_os = "linux")]
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use rustix::io::{Errno, ReadWriteFlags};
    let mut done = 0;
    while done < buf.len() {
        let at = offset.saturating_add(done as u64);
        let mut slices = [io::IoSliceMut::new(&mut buf[done..])];
        match rustix::io::preadv2(file, &mut slices, at, ReadWriteFlags::NOWAIT) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            // EAGAIN: not in the page cache; EOPNOTSUPP: a file system without it.
            Err(Errno::AGAIN | Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

#[cfg(not(target_os = "linux"))]
pub fn read_at(_file: &File, _buf: &mut [u8], _offset: u64) -> io::Result<usize> {
    Ok(0)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    #[test]
    fn reads_what_the_page_cache_holds_and_stops_where_it_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut f = File::create(&path).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        drop(f);

        let file = open(&path)
            .unwrap()
            .expect("a path just written is in the dentry cache");
        let mut buf = vec![0u8; 100_000];
        // Just written: the pages are cached.
        assert_eq!(read_at(&file, &mut buf, 1000).unwrap(), buf.len());
        assert_eq!(buf[..], data[1000..101_000]);
        // Past the end: short.
        assert_eq!(read_at(&file, &mut buf, 250_000).unwrap(), 50_000);

        // Dropped from the page cache: what is not cached is not read without waiting. The
        // advice is only advice (pages still in a CPU's LRU batch, or under writeback, stay
        // cached for a moment), so it is given until the kernel has dropped some.
        let mut got = buf.len();
        for _ in 0..50 {
            file.sync_all().unwrap();
            rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
            got = read_at(&file, &mut buf, 0).unwrap();
            if got < buf.len() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if got == buf.len() {
            // Some file systems (tmpfs, some network and overlay mounts) keep every page.
            eprintln!(
                "the kernel kept the file's pages cached: the short read is not observable here"
            );
        }
        assert_eq!(buf[..got], data[..got], "what was read is the file's bytes");
        file.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf[..], data[..100_000]);

        // A missing name, once looked up (a negative dentry), is known missing at once.
        let missing = dir.path().join("missing");
        assert!(std::fs::metadata(&missing).is_err());
        assert_eq!(open(&missing).unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
