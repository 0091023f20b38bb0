//! The disk tier: hits survive restarts (graceful or SIGKILL), damaged entries become misses,
//! a broken cache directory degrades to pass-through, and eviction keeps the size bound.

mod crash;
mod file_pages;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge::cache::disk::index::entry_path;
use edge::cache::{CacheKey, VaryValues};
use sha2::{Digest, Sha256};

use crate::common::origin::{Route, ScriptedOrigin, seeded_bytes};
use crate::common::{cache_status, client, edge_url, start_edge, ttl_of};

/// A config with the disk tier under `dir` and `cache` keys added to `[cache]`.
fn disk_config(origin: &str, dir: &Path, cache: &str) -> String {
    format!(
        r#"
[pop]
name = "test-pop"
[listen]
http = "127.0.0.1:0"
[cache]
disk_path = "{}"
default_ttl = "1h"
stale_grace = "0s"
{cache}
[origin]
kind = "http"
url = "{origin}"
timeout = "10s"
connect_timeout = "1s"
[[space]]
name = "assets"
region = "local"
"#,
        dir.display()
    )
}

fn digest(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// Where the disk tier keeps `object` of space `assets`.
fn file_of(dir: &Path, object: &str) -> PathBuf {
    entry_path(
        &dir.join("entries"),
        &CacheKey::new("assets", object, ""),
        &VaryValues::default(),
    )
}

/// Bytes of all files under `dir`.
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            total += du(&entry.path());
        } else {
            total += meta.len();
        }
    }
    total
}

/// Waits until the disk tier indexes `n` entries (large bodies are committed to disk just
/// after their last byte is served; small ones are written in the background).
async fn wait_for_disk_entries(edge: &edge::Running, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while edge.edge.cache.disk_usage().1 < n {
        assert!(
            Instant::now() < deadline,
            "disk tier holds {:?}, not {n} entries",
            edge.edge.cache.disk_usage()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn restart_keeps_hits_with_their_age() {
    let origin = ScriptedOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = disk_config(
        &origin.url(),
        dir.path(),
        "memory = \"64MiB\"\nmax_memory_object = \"1MiB\"",
    );
    let objects: Vec<(String, u64, u64)> = (0..20)
        .map(|i| (format!("/s{i}.bin"), 10_000 + i * 1_000, i))
        .chain([("/large.bin".to_owned(), 3 << 20, 99)])
        .collect();
    for (path, len, seed) in &objects {
        origin.route(
            path,
            Route::seeded(*len, *seed).header("cache-control", "max-age=600"),
        );
    }
    let c = client(&["assets"], &[]);

    let edge = start_edge(&config).await;
    for (path, len, _) in &objects {
        let r = c.get(edge_url(&edge, "assets", path)).send().await.unwrap();
        assert_eq!(cache_status(&r), "test-pop; fwd=miss; stored", "{path}");
        assert_eq!(r.bytes().await.unwrap().len() as u64, *len);
    }
    wait_for_disk_entries(&edge, objects.len() as u64).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    edge.stop().await;
    let fetched = origin.hits();
    assert_eq!(fetched, objects.len());

    let edge = start_edge(&config).await;
    for (path, len, seed) in &objects {
        let r = c.get(edge_url(&edge, "assets", path)).send().await.unwrap();
        let status = cache_status(&r);
        assert!(
            status.starts_with("test-pop; hit; ttl=") && status.ends_with("; detail=disk"),
            "{path}: {status}"
        );
        let ttl = ttl_of(&status).unwrap();
        assert!(
            (1..=599).contains(&ttl),
            "freshness kept counting: {status}"
        );
        let age: u64 = r.headers()["age"].to_str().unwrap().parse().unwrap();
        assert!(age >= 1, "Age keeps counting across the restart");
        let body = r.bytes().await.unwrap();
        assert_eq!(
            digest(&body),
            digest(&seeded_bytes(*seed, 0, *len)),
            "{path}"
        );
    }
    assert_eq!(
        origin.hits(),
        fetched,
        "no origin request after the restart"
    );

    // Small entries were promoted to memory; the large one streams from disk each time.
    let r = c
        .get(edge_url(&edge, "assets", "/s3.bin"))
        .send()
        .await
        .unwrap();
    assert!(
        !cache_status(&r).contains("detail=disk"),
        "{}",
        cache_status(&r)
    );
    let r = c
        .get(edge_url(&edge, "assets", "/large.bin"))
        .send()
        .await
        .unwrap();
    assert!(
        cache_status(&r).ends_with("detail=disk"),
        "{}",
        cache_status(&r)
    );
    r.bytes().await.unwrap();

    // A range across a block boundary of the disk file.
    let (from, to) = ((1u64 << 20) - 10, (1u64 << 20) + 9);
    let r = c
        .get(edge_url(&edge, "assets", "/large.bin"))
        .header("range", format!("bytes={from}-{to}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes {from}-{to}/{}", 3u64 << 20)
    );
    assert_eq!(
        &r.bytes().await.unwrap()[..],
        &seeded_bytes(99, from, to + 1)[..]
    );
    assert_eq!(origin.hits(), fetched);
    edge.stop().await;
}

#[tokio::test]
async fn a_flipped_byte_makes_a_miss_with_correct_content() {
    let origin = ScriptedOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = disk_config(
        &origin.url(),
        dir.path(),
        "memory = \"64MiB\"\nmax_memory_object = \"1MiB\"",
    );
    let objects = [
        ("small.bin", 100_000u64, 1u64),
        ("first-block.bin", 3 << 20, 2),
        ("last-block.bin", 3 << 20, 3),
    ];
    for (name, len, seed) in objects {
        origin.route(&format!("/{name}"), Route::seeded(len, seed));
    }
    let c = client(&["assets"], &[]);
    let edge = start_edge(&config).await;
    for (name, _, _) in objects {
        c.get(edge_url(&edge, "assets", &format!("/{name}")))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    wait_for_disk_entries(&edge, 3).await;
    edge.stop().await;
    assert_eq!(origin.hits(), 3);

    // One bit flipped in each body: the middle, block 0, and the last block.
    for (name, offset) in [
        ("small.bin", 50_000u64),
        ("first-block.bin", 1_000),
        ("last-block.bin", (5 << 19) + 7),
    ] {
        let path = file_of(dir.path(), name);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offset as usize] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
    }

    let edge = start_edge(&config).await;
    for (name, len, seed) in [objects[0], objects[1]] {
        // Detected before a byte is sent: a clean miss.
        let r = c
            .get(edge_url(&edge, "assets", &format!("/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(cache_status(&r), "test-pop; fwd=miss; stored", "{name}");
        assert_eq!(
            digest(&r.bytes().await.unwrap()),
            digest(&seeded_bytes(seed, 0, len)),
            "{name}"
        );
    }
    assert_eq!(origin.hits(), 5);

    // Damage past the first block is found mid-stream: the response is cut, never wrong.
    let r = c
        .get(edge_url(&edge, "assets", "/last-block.bin"))
        .send()
        .await
        .unwrap();
    assert!(cache_status(&r).ends_with("detail=disk"));
    let cut = r.bytes().await;
    assert!(cut.is_err(), "a corrupt block must cut the response");
    let r = c
        .get(edge_url(&edge, "assets", "/last-block.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(cache_status(&r), "test-pop; fwd=miss; stored");
    assert_eq!(
        digest(&r.bytes().await.unwrap()),
        digest(&seeded_bytes(3, 0, 3 << 20))
    );
    assert_eq!(edge.edge.cache.disk().corrupt_entries(), 3);

    // The refetched copies are sound.
    wait_for_disk_entries(&edge, 3).await;
    edge.stop().await;
    let edge = start_edge(&config).await;
    for (name, len, seed) in objects {
        let r = c
            .get(edge_url(&edge, "assets", &format!("/{name}")))
            .send()
            .await
            .unwrap();
        assert!(
            cache_status(&r).ends_with("detail=disk"),
            "{name}: {}",
            cache_status(&r)
        );
        assert_eq!(
            digest(&r.bytes().await.unwrap()),
            digest(&seeded_bytes(seed, 0, len))
        );
    }
    assert_eq!(origin.hits(), 6);
    edge.stop().await;
}

#[tokio::test]
async fn a_broken_cache_directory_degrades_to_pass_through() {
    let origin = ScriptedOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    // Objects larger than max_memory_object: every hit needs the disk.
    let config = disk_config(
        &origin.url(),
        &cache_dir,
        "memory = \"1MiB\"\nmax_memory_object = \"16KiB\"",
    );
    for i in 0..10u64 {
        origin.route(&format!("/d{i}.bin"), Route::seeded(100_000 + i, i));
    }
    let c = client(&["assets"], &[]);
    let edge = start_edge(&config).await;
    let get = |i: u64| {
        let c = c.clone();
        let url = edge_url(&edge, "assets", &format!("/d{i}.bin"));
        async move {
            let r = c.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let status = cache_status(&r);
            let body = r.bytes().await.unwrap();
            assert_eq!(
                digest(&body),
                digest(&seeded_bytes(i, 0, 100_000 + i)),
                "/d{i}.bin"
            );
            status
        }
    };
    for i in 0..5 {
        get(i).await;
    }
    wait_for_disk_entries(&edge, 5).await;
    let status = get(0).await;
    assert!(status.ends_with("detail=disk"), "{status}");
    assert_eq!(edge.edge.cache.figures().disk_errors, 0);

    // The directory disappears and a regular file takes its place.
    std::fs::remove_dir_all(&cache_dir).unwrap();
    std::fs::write(&cache_dir, b"not a directory").unwrap();

    for round in 0..2 {
        for i in 0..10 {
            let status = get(i).await;
            assert!(
                status.contains("fwd=miss"),
                "round {round}, /d{i}.bin: {status}"
            );
        }
    }
    assert!(
        edge.edge.cache.figures().disk_errors >= 1,
        "disk errors are counted"
    );
    assert!(
        !edge.edge.cache.disk().enabled(),
        "the tier is pass-through"
    );
    edge.stop().await;
}

#[tokio::test]
async fn eviction_keeps_the_size_bound_and_the_working_set() {
    let origin = ScriptedOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let capacity: u64 = 8 << 20;
    // Nothing fits the memory tier: every hit below is a disk hit.
    let config = disk_config(
        &origin.url(),
        dir.path(),
        "memory = \"1MiB\"\nmax_memory_object = \"16KiB\"\ndisk = \"8MiB\"",
    );
    let len: u64 = 256 << 10;
    for i in 0..120u64 {
        origin.route(&format!("/e{i}.bin"), Route::seeded(len, i));
    }
    let c = client(&["assets"], &[]);
    let edge = start_edge(&config).await;
    let get = |i: u64| {
        let c = c.clone();
        let url = edge_url(&edge, "assets", &format!("/e{i}.bin"));
        async move {
            let r = c.get(url).send().await.unwrap();
            let status = cache_status(&r);
            assert_eq!(
                digest(&r.bytes().await.unwrap()),
                digest(&seeded_bytes(i, 0, len))
            );
            status
        }
    };

    // Filler, seen once each: the tier is half full, so access frequencies count from here.
    for i in 104..120 {
        get(i).await;
    }
    // A working set of 8 objects, requested often.
    for _ in 0..6 {
        for i in 0..8 {
            get(i).await;
        }
    }
    // A scan of 3x the disk tier's size, each object once.
    let mut peak = 0;
    for i in 8..104 {
        get(i).await;
        // Entry files; bodies still being written (in tmp/, before their fsync and rename)
        // come on top of the bound until they land.
        peak = peak.max(du(&dir.path().join("entries")));
    }
    // Bodies still being committed land, and what they displace is unlinked, shortly after
    // their last byte was served: wait for that (seconds on a loaded machine), not longer.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut settled = du(dir.path());
    while settled > capacity && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        settled = du(dir.path());
    }
    let (indexed, _) = edge.edge.cache.disk_usage();
    eprintln!(
        "disk tier: peak {peak} B, settled {settled} B, indexed {indexed} B, capacity {capacity} B"
    );
    assert!(
        settled <= capacity,
        "settled at {settled} B over {capacity} B"
    );
    // Beyond the bound for a moment: entries just renamed in before the index's eviction
    // (moka's maintenance, asynchronous) unlinked older ones; a few entries on a loaded
    // machine, never more than an eighth of the tier.
    assert!(peak <= capacity + capacity / 8, "peaked at {peak} B");
    assert!(indexed <= capacity);

    // The working set survived the scan (frequency-aware admission).
    let mut kept = 0;
    for i in 0..8 {
        if get(i).await.ends_with("detail=disk") {
            kept += 1;
        }
    }
    eprintln!("{kept} of 8 hot objects survived the scan");
    assert!(kept >= 6, "only {kept} of 8 hot objects survived a scan");
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_fill_streams_to_disk_and_readers_go_at_their_own_pace() {
    let origin = ScriptedOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = disk_config(
        &origin.url(),
        dir.path(),
        "memory = \"64MiB\"\nmax_memory_object = \"1MiB\"",
    );
    let len: u64 = 8 << 20;
    origin.route(
        "/big.bin",
        Route::seeded(len, 7).pace(Duration::from_millis(2)),
    );
    let edge = start_edge(&config).await;
    let c = client(&["assets"], &[]);
    let url = edge_url(&edge, "assets", "/big.bin");

    // A slow reader takes the first bytes, then stops reading for a while.
    let mut slow = c.get(&url).send().await.unwrap();
    assert_eq!(cache_status(&slow), "test-pop; fwd=miss; stored");
    let first = slow.chunk().await.unwrap().unwrap();

    // A range near the end, asked while the body is still arriving: answered from the fill
    // once those bytes arrive (no second origin request).
    let (from, to) = (len - 100, len - 1);
    let r = c
        .get(&url)
        .header("range", format!("bytes={from}-{to}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert!(
        cache_status(&r).contains("collapsed"),
        "{}",
        cache_status(&r)
    );
    assert_eq!(
        &r.bytes().await.unwrap()[..],
        &seeded_bytes(7, from, to + 1)[..]
    );

    // The fetch did not wait for the slow reader: the whole body is on disk already.
    wait_for_disk_entries(&edge, 1).await;

    // A late joiner starts at byte 0 (from the disk file) and gets it all.
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(
        digest(&r.bytes().await.unwrap()),
        digest(&seeded_bytes(7, 0, len))
    );

    // The slow reader resumes and gets every byte.
    let mut body = first.to_vec();
    while let Some(chunk) = slow.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    assert_eq!(digest(&body), digest(&seeded_bytes(7, 0, len)));
    assert_eq!(origin.hits(), 1);
    edge.stop().await;
}

/// Regular files below `dir`, at any depth.
fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => count_files(&e.path()),
                Ok(t) if t.is_file() => 1,
                _ => 0,
            })
            .sum()
    })
}

/// Issue 11, medium 7: an entry whose lifetime overflowed the time arithmetic (written as it
/// came, `max-age=18446744073709551615`) killed the start-up scan at every restart, so the
/// index never finished rebuilding. Read back, it is clamped and served.
#[tokio::test]
async fn an_entry_with_a_huge_lifetime_never_stops_the_disk_scan() {
    use edge::cache::disk::DiskTier;
    use edge::cache::{Body, Entry, Freshness};
    let dir = tempfile::tempdir().unwrap();
    let key = CacheKey::new("assets", "forever.js", "");
    let huge = Duration::from_secs(u64::MAX);
    let other = CacheKey::new("assets", "plain.js", "");
    {
        let tier = DiskTier::open(dir.path(), 64 << 20, edge::cache::clock::system());
        wait_for_scan(&tier).await;
        for (key, ttl) in [(&key, huge), (&other, Duration::from_secs(600))] {
            let entry = Entry::new(
                key.clone(),
                http::StatusCode::OK,
                &http::HeaderMap::new(),
                Body::Memory(bytes::Bytes::from_static(b"forever")),
                Freshness {
                    response_time: std::time::SystemTime::now(),
                    initial_age: huge,
                    ttl_at_store: ttl,
                    stale_while_revalidate: huge,
                    stale_if_error: huge,
                    hard_expiry: None,
                    invalidated_at: None,
                },
                VaryValues::default(),
            );
            tier.store(Arc::new(entry), tier.generation());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while tier.usage().1 < 2 {
            assert!(Instant::now() < deadline, "entries stored");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tier.shutdown().await;
    }
    let tier = DiskTier::open(dir.path(), 64 << 20, edge::cache::clock::system());
    wait_for_scan(&tier).await;
    assert_eq!(tier.usage().1, 2, "both entries indexed");
    let entry = tier
        .lookup(&key, &http::HeaderMap::new(), None, 1 << 20)
        .await
        .expect("the entry is served");
    assert!(entry.freshness.ttl_at_store <= Duration::from_secs(1 << 31));
    assert!(entry.freshness.ttl_seconds(std::time::SystemTime::now()) > 0);
    tier.shutdown().await;
}

/// Waits until the tier's start-up scan has finished.
async fn wait_for_scan(tier: &edge::cache::disk::DiskTier) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tier.scanning() {
        assert!(
            Instant::now() < deadline,
            "the start-up scan never finished"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
