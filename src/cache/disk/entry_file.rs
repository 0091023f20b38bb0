//! The on-disk format of one entry, and its checksums.
//!
//! ```text
//! [body: body_len bytes][meta][trailer]   ([meta][trailer] may be appended again by a refresh)
//! trailer = meta_len u32 | meta_crc u32 | body_len u64 | MAGIC (8 bytes), little-endian
//! meta    = version, written_at, key, vary values, status, headers, freshness,
//!           body_len, block_size, one CRC-32C per body block,
//!           (version 2) soft-purge instant, cache tags
//! ```
//!
//! Version 1 metas (no tags, never soft-purged) are still read; version 2 is written.
//!
//! The body comes first so a large body streams to the file as it arrives; its metadata and
//! block checksums, known only at the end, follow. The last trailer names the current meta, so
//! a 304 refresh of a large entry appends a new meta instead of copying the body. The meta is
//! covered by its own CRC-32C and every `BLOCK_SIZE` block of the body by one of its own, so a
//! reader verifies each block before sending a byte of it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::DiskError;
use crate::cache::entry::VaryValues;
use crate::cache::freshness::Freshness;
use crate::cache::key::CacheKey;
use crate::cache::tags::Tags;

/// Body bytes covered by one checksum.
pub const BLOCK_SIZE: u64 = 1 << 20;
/// Ends every entry file.
pub const MAGIC: &[u8; 8] = b"EDGEDSK1";
/// Length of the trailer.
pub const TRAILER_LEN: u64 = 24;
/// The format written.
const VERSION: u8 = 2;
/// The oldest format still read.
const OLDEST_VERSION: u8 = 1;
/// Refuses metas larger than this (a corrupt length must not make us allocate gigabytes).
const MAX_META: u64 = 64 << 20;

/// CRC-32C (Castagnoli), hardware-accelerated.
pub fn crc(data: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(data)
}

/// What an entry file says about its response, checked against its checksum.
#[derive(Debug, Clone)]
pub struct Meta {
    pub written_at: SystemTime,
    pub key: CacheKey,
    pub vary: VaryValues,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub freshness: Freshness,
    pub body_len: u64,
    pub block_size: u64,
    pub block_crcs: Vec<u32>,
    /// The cache tags the origin gave it.
    pub tags: Tags,
}

impl Meta {
    /// Number of blocks a body of `body_len` has.
    pub fn blocks_for(body_len: u64, block_size: u64) -> u64 {
        body_len.div_ceil(block_size)
    }

    /// The byte range `[start, end)` of block `index`.
    pub fn block_range(&self, index: u64) -> (u64, u64) {
        let start = index * self.block_size;
        (start, (start + self.block_size).min(self.body_len))
    }

    /// Serializes the meta followed by its trailer.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(512 + self.block_crcs.len() * 4));
        w.u8(VERSION);
        w.time(self.written_at);
        w.bytes(self.key.as_str().as_bytes());
        w.u32(self.vary.pairs().len() as u32);
        for (name, value) in self.vary.pairs() {
            w.bytes(name.as_str().as_bytes());
            match value {
                Some(v) => {
                    w.u8(1);
                    w.bytes(v);
                }
                None => w.u8(0),
            }
        }
        w.u16(self.status.as_u16());
        w.u32(self.headers.len() as u32);
        for (name, value) in &self.headers {
            w.bytes(name.as_str().as_bytes());
            w.bytes(value.as_bytes());
        }
        let f = &self.freshness;
        w.time(f.response_time);
        w.duration(f.initial_age);
        w.duration(f.ttl_at_store);
        w.duration(f.stale_while_revalidate);
        w.duration(f.stale_if_error);
        match f.hard_expiry {
            Some(t) => {
                w.u8(1);
                w.time(t);
            }
            None => w.u8(0),
        }
        w.u64(self.body_len);
        w.u64(self.block_size);
        w.u32(self.block_crcs.len() as u32);
        for c in &self.block_crcs {
            w.u32(*c);
        }
        match f.invalidated_at {
            Some(t) => {
                w.u8(1);
                w.time(t);
            }
            None => w.u8(0),
        }
        w.bytes(self.tags.packed().as_bytes());
        let meta_len = w.0.len() as u32;
        let meta_crc = crc(&w.0);
        w.u32(meta_len);
        w.u32(meta_crc);
        w.u64(self.body_len);
        w.0.extend_from_slice(MAGIC);
        w.0
    }

    /// Parses a meta whose checksum was verified.
    fn decode(data: &[u8]) -> Result<Meta, DiskError> {
        let mut r = Reader(data);
        let version = r.u8()?;
        if !(OLDEST_VERSION..=VERSION).contains(&version) {
            return Err(corrupt("unknown format version"));
        }
        let written_at = r.time()?;
        let key = std::str::from_utf8(r.bytes()?)
            .ok()
            .and_then(CacheKey::from_raw)
            .ok_or_else(|| corrupt("bad key"))?;
        let pairs = r.u32()?;
        let mut vary = Vec::new();
        for _ in 0..pairs {
            let name = HeaderName::from_bytes(r.bytes()?).map_err(|_| corrupt("bad vary name"))?;
            let value = match r.u8()? {
                0 => None,
                _ => Some(r.bytes()?.to_vec()),
            };
            vary.push((name, value));
        }
        let status = StatusCode::from_u16(r.u16()?).map_err(|_| corrupt("bad status"))?;
        let count = r.u32()?;
        let mut headers = HeaderMap::new();
        for _ in 0..count {
            let name =
                HeaderName::from_bytes(r.bytes()?).map_err(|_| corrupt("bad header name"))?;
            let value =
                HeaderValue::from_bytes(r.bytes()?).map_err(|_| corrupt("bad header value"))?;
            headers.append(name, value);
        }
        let response_time = r.time()?;
        let initial_age = r.duration()?;
        let ttl_at_store = r.duration()?;
        let stale_while_revalidate = r.duration()?;
        let stale_if_error = r.duration()?;
        let hard_expiry = match r.u8()? {
            0 => None,
            _ => Some(r.time()?),
        };
        let body_len = r.u64()?;
        let block_size = r.u64()?;
        if block_size == 0 || block_size > 64 << 20 {
            return Err(corrupt("bad block size"));
        }
        let blocks = r.u32()?;
        if u64::from(blocks) != Meta::blocks_for(body_len, block_size) {
            return Err(corrupt("block count does not match the body length"));
        }
        let mut block_crcs = Vec::with_capacity(blocks as usize);
        for _ in 0..blocks {
            block_crcs.push(r.u32()?);
        }
        let (invalidated_at, tags) = if version >= 2 {
            let invalidated_at = match r.u8()? {
                0 => None,
                _ => Some(r.time()?),
            };
            let tags = std::str::from_utf8(r.bytes()?)
                .ok()
                .and_then(Tags::from_packed)
                .ok_or_else(|| corrupt("bad tags"))?;
            (invalidated_at, tags)
        } else {
            (None, Tags::default())
        };
        if !r.0.is_empty() {
            return Err(corrupt("trailing bytes in meta"));
        }
        Ok(Meta {
            written_at,
            key,
            vary: VaryValues::from_pairs(vary),
            status,
            headers,
            freshness: Freshness {
                response_time,
                initial_age,
                ttl_at_store,
                stale_while_revalidate,
                stale_if_error,
                hard_expiry,
                invalidated_at,
            }
            // Entries written before lifetimes were clamped may hold any span.
            .clamped(),
            body_len,
            block_size,
            block_crcs,
            tags,
        })
    }
}

fn corrupt(what: &'static str) -> DiskError {
    DiskError::Corrupt(what.into())
}

/// Bytes read at once from a file's end to find its trailer and meta (most metas fit).
const TAIL: u64 = 4096;

/// Reads and verifies the current meta of an open entry file (not its body).
pub fn read_meta(file: &File) -> Result<Meta, DiskError> {
    let mut read = |buf: &mut [u8], at: u64| file.read_exact_at(buf, at).map(|()| true);
    read_meta_with(file, &mut read)?.ok_or_else(|| corrupt("meta unreadable"))
}

/// [`read_meta`], reading through `read`, which says `false` when the bytes are not at hand
/// without waiting (then `Ok(None)`: read it again where waiting is allowed). The trailer and
/// a meta of usual size come in one read of the file's end.
pub fn read_meta_with(
    file: &File,
    read: &mut dyn FnMut(&mut [u8], u64) -> std::io::Result<bool>,
) -> Result<Option<Meta>, DiskError> {
    let file_len = file.metadata()?.len();
    if file_len < TRAILER_LEN {
        return Err(corrupt("shorter than a trailer"));
    }
    let tail_len = file_len.min(TAIL);
    let mut tail = vec![0u8; tail_len as usize];
    if !read(&mut tail, file_len - tail_len)? {
        return Ok(None);
    }
    let mut r = Reader(&tail[(tail_len - TRAILER_LEN) as usize..]);
    let meta_len = u64::from(r.u32()?);
    let meta_crc = r.u32()?;
    let body_len = r.u64()?;
    if r.0 != MAGIC {
        return Err(corrupt("no trailer magic (torn write?)"));
    }
    if meta_len > MAX_META
        || body_len
            .checked_add(meta_len + TRAILER_LEN)
            .is_none_or(|min| min > file_len)
    {
        return Err(corrupt("lengths do not fit the file"));
    }
    let meta = if meta_len + TRAILER_LEN <= tail_len {
        let start = (tail_len - TRAILER_LEN - meta_len) as usize;
        tail.truncate((tail_len - TRAILER_LEN) as usize);
        tail.drain(..start);
        tail
    } else {
        let mut meta = vec![0u8; meta_len as usize];
        if !read(&mut meta, file_len - TRAILER_LEN - meta_len)? {
            return Ok(None);
        }
        meta
    };
    if crc(&meta) != meta_crc {
        return Err(corrupt("meta checksum mismatch"));
    }
    let meta = Meta::decode(&meta)?;
    if meta.body_len != body_len {
        return Err(corrupt("trailer and meta disagree on the body length"));
    }
    Ok(Some(meta))
}

/// Checks that `data` is block `index` of the body, as the meta's checksum says.
pub fn verify_block(meta: &Meta, index: u64, data: &[u8]) -> Result<(), DiskError> {
    let expected = *meta
        .block_crcs
        .get(usize::try_from(index).unwrap_or(usize::MAX))
        .ok_or_else(|| corrupt("block out of range"))?;
    let (start, end) = meta.block_range(index);
    if data.len() as u64 != end.saturating_sub(start) || crc(data) != expected {
        return Err(corrupt("body block checksum mismatch"));
    }
    Ok(())
}

/// Reads block `index` of the body and verifies it.
pub fn read_block(file: &File, meta: &Meta, index: u64) -> Result<Bytes, DiskError> {
    if index >= meta.block_crcs.len() as u64 {
        return Err(corrupt("block out of range"));
    }
    let (start, end) = meta.block_range(index);
    let mut buf = BytesMut::zeroed(usize::try_from(end - start).unwrap_or(0));
    file.read_exact_at(&mut buf, start)?;
    verify_block(meta, index, &buf)?;
    Ok(buf.freeze())
}

/// Reads the whole body (small entries) and verifies every block.
pub fn read_body(file: &File, meta: &Meta) -> Result<Bytes, DiskError> {
    let len = usize::try_from(meta.body_len).map_err(|_| corrupt("body too large"))?;
    let mut buf = BytesMut::zeroed(len);
    file.read_exact_at(&mut buf, 0)?;
    for (index, expected) in meta.block_crcs.iter().enumerate() {
        let (start, end) = meta.block_range(index as u64);
        if crc(&buf[start as usize..end as usize]) != *expected {
            return Err(corrupt("body block checksum mismatch"));
        }
    }
    Ok(buf.freeze())
}

/// Checksums a body as it is written, one CRC per block.
#[derive(Debug, Default)]
pub struct BlockSums {
    crcs: Vec<u32>,
    current: Option<crc_fast::Digest>,
    in_block: u64,
    total: u64,
}

impl BlockSums {
    /// Feeds the next bytes of the body.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = (BLOCK_SIZE - self.in_block) as usize;
            let take = room.min(data.len());
            self.current
                .get_or_insert_with(|| crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi))
                .update(&data[..take]);
            self.in_block += take as u64;
            self.total += take as u64;
            data = &data[take..];
            if self.in_block == BLOCK_SIZE {
                self.close_block();
            }
        }
    }

    fn close_block(&mut self) {
        if let Some(digest) = self.current.take() {
            self.crcs.push(digest.finalize() as u32);
        }
        self.in_block = 0;
    }

    /// Bytes fed so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The checksums of every block, the last one partial.
    pub fn finish(mut self) -> Vec<u32> {
        if self.in_block > 0 {
            self.close_block();
        }
        self.crcs
    }
}

/// The checksums of a body held whole.
pub fn block_sums(body: &[u8]) -> Vec<u32> {
    body.chunks(BLOCK_SIZE as usize).map(crc).collect()
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
    fn duration(&mut self, d: Duration) {
        self.u64(d.as_secs());
        self.u32(d.subsec_nanos());
    }
    fn time(&mut self, t: SystemTime) {
        self.duration(t.duration_since(UNIX_EPOCH).unwrap_or_default());
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DiskError> {
        if self.0.len() < n {
            return Err(corrupt("meta ends early"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DiskError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, DiskError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DiskError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, DiskError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, DiskError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], DiskError> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    fn duration(&mut self) -> Result<Duration, DiskError> {
        let secs = self.u64()?;
        let nanos = self.u32()?;
        if nanos >= 1_000_000_000 {
            return Err(corrupt("bad duration"));
        }
        Ok(Duration::new(secs, nanos))
    }
    fn time(&mut self) -> Result<SystemTime, DiskError> {
        UNIX_EPOCH
            .checked_add(self.duration()?)
            .ok_or_else(|| corrupt("bad time"))
    }
}

#[cfg(test)]
pub(crate) mod tests;
