//! Disk hits on plain HTTP/1 connections: a block verified once goes out as the page cache's
//! pages (`sendfile`), whole or in ranges, and a file changed on disk after its blocks were
//! verified is verified again (a changed byte is never sent).

use std::os::unix::fs::FileExt;
use std::time::Duration;

use super::{digest, disk_config, file_of, wait_for_disk_entries};
use crate::common::origin::{Route, ScriptedOrigin, seeded_bytes};
use crate::common::{TestEdge, cache_status, client, edge_url, start_edge};

/// Three full blocks and a short one.
const LEN: u64 = (3 << 20) + 123_457;

fn file_page_bytes(edge: &edge::Running) -> u64 {
    edge.edge.cache.figures().disk_file_page_bytes
}

/// An edge with a disk tier, in front of an origin serving `objects` (name, length, seed).
struct Setup {
    origin: ScriptedOrigin,
    dir: tempfile::TempDir,
    c: reqwest::Client,
    edge: TestEdge,
}

impl Setup {
    /// Each object fetched (a miss, stored on disk), then read once from disk, which
    /// verifies its blocks.
    async fn verified_on_disk(objects: &[(&str, u64, u64)]) -> Setup {
        let origin = ScriptedOrigin::start().await;
        let dir = tempfile::tempdir().unwrap();
        let config = disk_config(
            &origin.url(),
            dir.path(),
            "memory = \"64MiB\"\nmax_memory_object = \"1MiB\"",
        );
        for (name, len, seed) in objects {
            let route = Route::seeded(*len, *seed).header("etag", "\"v1\"");
            origin.route(&format!("/{name}"), route);
        }
        let c = client(&["assets"], &[]);
        let edge = start_edge(&config).await;
        let setup = Setup {
            origin,
            dir,
            c,
            edge,
        };
        for (name, ..) in objects {
            let r = setup.get(name).await;
            assert_eq!(cache_status(&r), "test-pop; fwd=miss; stored");
            r.bytes().await.unwrap();
        }
        wait_for_disk_entries(&setup.edge, objects.len() as u64).await;
        for (name, ..) in objects {
            let r = setup.get(name).await;
            assert!(cache_status(&r).ends_with("detail=disk"));
            r.bytes().await.unwrap();
        }
        assert_eq!(file_page_bytes(&setup.edge), 0, "verified, not yet trusted");
        setup
    }

    fn url(&self, name: &str) -> String {
        edge_url(&self.edge, "assets", &format!("/{name}"))
    }

    async fn get(&self, name: &str) -> reqwest::Response {
        self.c.get(self.url(name)).send().await.unwrap()
    }
}

#[tokio::test]
async fn verified_blocks_go_to_plain_sockets_as_file_pages_whole_and_in_ranges() {
    let Setup {
        origin,
        dir: _dir,
        c,
        edge,
    } = Setup::verified_on_disk(&[("video.bin", LEN, 7)]).await;
    let expected = seeded_bytes(7, 0, LEN);
    let url = edge_url(&edge, "assets", "/video.bin");

    // Verified blocks go as pages, every one of them.
    for sent in [LEN, 2 * LEN] {
        let r = c.get(&url).send().await.unwrap();
        assert!(
            cache_status(&r).ends_with("detail=disk"),
            "{}",
            cache_status(&r)
        );
        assert_eq!(digest(&r.bytes().await.unwrap()), digest(&expected));
        assert_eq!(file_page_bytes(&edge), sent);
    }

    // Ranges within a block, across block boundaries, and to the end.
    for (from, to) in [
        (10u64, 99u64),
        ((1 << 20) - 10, (2 << 20) + 9),
        (LEN - 1_000, LEN - 1),
        (0, LEN - 1),
    ] {
        let r = c
            .get(&url)
            .header("range", format!("bytes={from}-{to}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes {from}-{to}/{LEN}")
        );
        let body = r.bytes().await.unwrap();
        assert_eq!(
            digest(&body),
            digest(&expected[from as usize..=to as usize]),
            "bytes {from}-{to}"
        );
    }
    assert!(file_page_bytes(&edge) > 2 * LEN);

    // HEAD and a conditional request on the same keep-alive connection stay framed.
    let r = c.head(&url).send().await.unwrap();
    assert_eq!(r.headers()["content-length"], LEN.to_string());
    let etag = r.headers()["etag"].clone();
    let r = c
        .get(&url)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(origin.hits(), 1);
    edge.stop().await;
}

#[tokio::test]
async fn a_file_changed_after_its_blocks_were_verified_is_verified_again() {
    let Setup {
        origin,
        dir,
        c,
        edge,
    } = Setup::verified_on_disk(&[("first.bin", LEN, 1), ("later.bin", LEN, 2)]).await;
    for name in ["first.bin", "later.bin"] {
        let r = c
            .get(edge_url(&edge, "assets", &format!("/{name}")))
            .send()
            .await
            .unwrap();
        assert!(cache_status(&r).ends_with("detail=disk"));
        r.bytes().await.unwrap();
    }
    let sent = file_page_bytes(&edge);
    assert_eq!(
        sent,
        2 * LEN,
        "both files' blocks verified and sent as pages"
    );

    // Another program changes one byte of each body in place, the page cache with it: in
    // block 0 of one, in the last block of the other. (Time stamps move in clock ticks.)
    tokio::time::sleep(Duration::from_millis(50)).await;
    for (name, offset) in [("first.bin", 1_000u64), ("later.bin", LEN - 7)] {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(file_of(dir.path(), name))
            .unwrap();
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, offset).unwrap();
        file.write_all_at(&[byte[0] ^ 0x01], offset).unwrap();
    }

    // Found before a byte is sent: a clean miss with the origin's bytes.
    let r = c
        .get(edge_url(&edge, "assets", "/first.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(cache_status(&r), "test-pop; fwd=miss; stored");
    assert_eq!(
        digest(&r.bytes().await.unwrap()),
        digest(&seeded_bytes(1, 0, LEN))
    );
    // Found at the last block: the response is cut, never wrong; the next one is a miss.
    let r = c
        .get(edge_url(&edge, "assets", "/later.bin"))
        .send()
        .await
        .unwrap();
    assert!(cache_status(&r).ends_with("detail=disk"));
    assert!(
        r.bytes().await.is_err(),
        "a changed block must cut the response"
    );
    let r = c
        .get(edge_url(&edge, "assets", "/later.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(cache_status(&r), "test-pop; fwd=miss; stored");
    assert_eq!(
        digest(&r.bytes().await.unwrap()),
        digest(&seeded_bytes(2, 0, LEN))
    );
    assert_eq!(edge.edge.cache.disk().corrupt_entries(), 2);
    assert_eq!(origin.hits(), 4);
    edge.stop().await;
}

#[tokio::test]
async fn a_response_under_way_keeps_streaming_when_its_file_is_deleted() {
    const BIG: u64 = 12 << 20;
    let Setup {
        origin: _origin,
        dir,
        c,
        edge,
    } = Setup::verified_on_disk(&[("big.bin", BIG, 5)]).await;
    let url = edge_url(&edge, "assets", "/big.bin");

    // A slow reader: the edge reads later blocks only as the socket drains, after the file
    // is gone (deleted by hand, as an eviction or a replacement would drop it).
    let mut r = c.get(&url).send().await.unwrap();
    assert!(cache_status(&r).ends_with("detail=disk"));
    let mut body = r.chunk().await.unwrap().unwrap().to_vec();
    std::fs::remove_file(file_of(dir.path(), "big.bin")).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    while let Some(chunk) = r.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    assert_eq!(digest(&body), digest(&seeded_bytes(5, 0, BIG)));

    // The next request finds the file gone: a miss.
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(cache_status(&r), "test-pop; fwd=miss; stored");
    assert_eq!(
        digest(&r.bytes().await.unwrap()),
        digest(&seeded_bytes(5, 0, BIG))
    );
    edge.stop().await;
}

#[tokio::test]
async fn pages_the_kernel_let_go_are_verified_again_when_read_again() {
    let Setup {
        origin: _origin,
        dir,
        c,
        edge,
    } = Setup::verified_on_disk(&[("clip.bin", LEN, 9)]).await;
    let url = edge_url(&edge, "assets", "/clip.bin");

    // Later (a block read or found in the page cache within the second is taken to be there
    // still), the kernel drops the file's pages (the advice is only advice: given until it
    // is taken).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let file = std::fs::File::open(file_of(dir.path(), "clip.bin")).unwrap();
    let mut probe = vec![0u8; 1 << 20];
    let mut dropped = false;
    for _ in 0..50 {
        file.sync_all().unwrap();
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        let mut slices = [std::io::IoSliceMut::new(&mut probe)];
        let cached = rustix::io::preadv2(&file, &mut slices, 0, rustix::io::ReadWriteFlags::NOWAIT);
        if cached.map_or(true, |n| n < probe.len()) {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !dropped {
        eprintln!("the kernel kept the file's pages cached: the reload is not observable here");
    }

    // What the disk gave again (block 0 at least) is verified and copied, never sent as
    // pages read unchecked; once verified again, every block goes as pages.
    let r = c.get(&url).send().await.unwrap();
    assert!(cache_status(&r).ends_with("detail=disk"));
    assert_eq!(
        digest(&r.bytes().await.unwrap()),
        digest(&seeded_bytes(9, 0, LEN))
    );
    let after_reload = file_page_bytes(&edge);
    if dropped {
        assert!(
            after_reload <= LEN - (1 << 20),
            "block 0 was read again from the disk: {after_reload}"
        );
    }
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(
        digest(&r.bytes().await.unwrap()),
        digest(&seeded_bytes(9, 0, LEN))
    );
    assert_eq!(file_page_bytes(&edge), after_reload + LEN);
    assert_eq!(edge.edge.cache.disk().corrupt_entries(), 0);
    edge.stop().await;
}
