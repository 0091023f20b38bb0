//! Unit tests of `entry_file`.

use std::io::Write;
use std::time::Duration;

use super::*;

/// A meta for `body` (other test modules use it too).
pub(crate) fn meta_for(body: &[u8]) -> Meta {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("text/plain"));
    headers.append("x-multi", HeaderValue::from_static("a"));
    headers.append("x-multi", HeaderValue::from_static("b"));
    headers.insert("x-binary", HeaderValue::from_bytes(b"caf\xe9").unwrap());
    Meta {
        written_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        key: CacheKey::new("space", "dir/a.bin", "v=1"),
        vary: VaryValues::from_pairs(vec![
            (
                HeaderName::from_static("accept-encoding"),
                Some(b"gzip".to_vec()),
            ),
            (HeaderName::from_static("accept-language"), None),
        ]),
        status: StatusCode::OK,
        headers,
        freshness: Freshness {
            response_time: UNIX_EPOCH + Duration::new(1_700_000_000, 123),
            initial_age: Duration::from_secs(3),
            ttl_at_store: Duration::from_secs(3600),
            stale_while_revalidate: Duration::from_secs(60),
            stale_if_error: Duration::ZERO,
            hard_expiry: Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            invalidated_at: None,
        },
        body_len: body.len() as u64,
        block_size: BLOCK_SIZE,
        block_crcs: block_sums(body),
        tags: Tags::default(),
    }
}

fn write_entry(body: &[u8], meta: &Meta) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(body).unwrap();
    file.write_all(&meta.encode()).unwrap();
    file.flush().unwrap();
    file
}

fn body_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn round_trip() {
    let body = body_of(2 * BLOCK_SIZE as usize + 17);
    let meta = meta_for(&body);
    let file = write_entry(&body, &meta);
    let read = read_meta(file.as_file()).unwrap();
    assert_eq!(read.key, meta.key);
    assert_eq!(read.vary, meta.vary);
    assert_eq!(read.status, meta.status);
    assert_eq!(read.headers, meta.headers);
    assert_eq!(read.freshness, meta.freshness);
    assert_eq!(read.written_at, meta.written_at);
    assert_eq!(read.block_crcs.len(), 3);
    assert_eq!(&read_body(file.as_file(), &read).unwrap()[..], &body[..]);
    assert_eq!(read_block(file.as_file(), &read, 2).unwrap().len(), 17);
    assert!(read_block(file.as_file(), &read, 3).is_err());
}

#[test]
fn tags_and_a_soft_purge_round_trip() {
    let body = body_of(100);
    let mut meta = meta_for(&body);
    meta.tags = Tags::of(&["product-42", "sale"]);
    meta.freshness.invalidated_at = Some(UNIX_EPOCH + Duration::new(1_700_000_100, 5));
    let file = write_entry(&body, &meta);
    let read = read_meta(file.as_file()).unwrap();
    assert_eq!(read.tags, meta.tags);
    assert_eq!(read.freshness, meta.freshness);
}

/// Entries written by builds before tags (format version 1) still load, untagged.
#[test]
fn version_1_entries_still_load() {
    let body = body_of(100);
    let meta = meta_for(&body);
    let encoded = meta.encode();
    let v2_len = encoded.len() - TRAILER_LEN as usize;
    // Version 1 is version 2 without its last fields: no soft purge (1 byte), no tags (4).
    let mut v1 = encoded[..v2_len - 5].to_vec();
    v1[0] = 1;
    let crc = crc(&v1);
    let len = v1.len() as u32;
    v1.extend_from_slice(&len.to_le_bytes());
    v1.extend_from_slice(&crc.to_le_bytes());
    v1.extend_from_slice(&meta.body_len.to_le_bytes());
    v1.extend_from_slice(MAGIC);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&body).unwrap();
    file.write_all(&v1).unwrap();
    file.flush().unwrap();
    let read = read_meta(file.as_file()).unwrap();
    assert_eq!(read.key, meta.key);
    assert_eq!(read.freshness, meta.freshness);
    assert!(read.tags.is_empty());
    assert_eq!(&read_body(file.as_file(), &read).unwrap()[..], &body[..]);
    // A version from the future is refused.
    let mut v9 = encoded[..v2_len].to_vec();
    v9[0] = 9;
    assert!(Meta::decode(&v9).is_err());
}

#[test]
fn empty_body() {
    let meta = meta_for(b"");
    let file = write_entry(b"", &meta);
    let read = read_meta(file.as_file()).unwrap();
    assert_eq!(read.body_len, 0);
    assert!(read_body(file.as_file(), &read).unwrap().is_empty());
}

#[test]
fn a_flipped_bit_anywhere_is_caught() {
    let body = body_of(3000);
    let meta = meta_for(&body);
    let clean = write_entry(&body, &meta);
    let bytes = std::fs::read(clean.path()).unwrap();
    for position in (0..bytes.len()).step_by(97).chain([bytes.len() - 1]) {
        let mut damaged = bytes.clone();
        damaged[position] ^= 0x10;
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&damaged).unwrap();
        let verdict = read_meta(file.as_file()).and_then(|m| read_body(file.as_file(), &m));
        assert!(
            verdict.is_err(),
            "flip at {position} of {} went unnoticed",
            bytes.len()
        );
    }
}

#[test]
fn truncation_is_caught() {
    let body = body_of(5000);
    let meta = meta_for(&body);
    let clean = write_entry(&body, &meta);
    let bytes = std::fs::read(clean.path()).unwrap();
    for len in [0, 10, 4999, 5000, bytes.len() - 30, bytes.len() - 1] {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&bytes[..len]).unwrap();
        assert!(read_meta(file.as_file()).is_err(), "truncated to {len}");
    }
}

#[test]
fn an_appended_meta_takes_over_and_a_torn_append_is_caught() {
    let body = body_of(100);
    let meta = meta_for(&body);
    let mut file = write_entry(&body, &meta);
    let mut refreshed = meta.clone();
    refreshed.status = StatusCode::NOT_FOUND;
    let encoded = refreshed.encode();
    file.write_all(&encoded).unwrap();
    file.flush().unwrap();
    assert_eq!(
        read_meta(file.as_file()).unwrap().status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(&read_body(file.as_file(), &meta).unwrap()[..], &body[..]);

    let mut torn = write_entry(&body, &meta);
    torn.write_all(&encoded[..encoded.len() / 2]).unwrap();
    torn.flush().unwrap();
    assert!(read_meta(torn.as_file()).is_err());
}

#[test]
fn streaming_sums_match_whole_sums() {
    let body = body_of(BLOCK_SIZE as usize * 2 + 5);
    let mut sums = BlockSums::default();
    for piece in body.chunks(65_537) {
        sums.update(piece);
    }
    assert_eq!(sums.total(), body.len() as u64);
    assert_eq!(sums.finish(), block_sums(&body));
}
