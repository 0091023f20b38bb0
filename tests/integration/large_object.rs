//! A 2 GiB object streams through an edge process with bounded memory.

use crate::common::origin::{Route, ScriptedOrigin, pattern_byte};
use crate::common::process::{peak_rss_kib, spawn_edge};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gib_object_streams_with_bounded_memory() {
    let origin = ScriptedOrigin::start().await;
    let len: u64 = 2 << 30;
    origin.route("/huge.bin", Route::generated(len));
    let edge = spawn_edge(&format!(
        "[listen]\nhttp = \"127.0.0.1:{{http}}\"\n[cache]\nmemory = \"64MiB\"\n[origin]\nkind = \"http\"\nurl = \"{}\"\n[[space]]\nname = \"big\"\n",
        origin.url()
    ));
    let c = crate::common::client(&["big"], &[]);
    let mut response = c
        .get(format!(
            "http://big.local.cdn.localhost:{}/huge.bin",
            edge.http_port
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut offset: u64 = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        // Spot-check the pattern at each chunk start.
        assert_eq!(chunk[0], pattern_byte(offset), "byte {offset}");
        offset += chunk.len() as u64;
    }
    assert_eq!(offset, len);
    let peak_mib = peak_rss_kib(edge.child.id()) / 1024;
    assert!(peak_mib < 150, "peak RSS {peak_mib} MiB");
    eprintln!("2 GiB through the edge: peak RSS {peak_mib} MiB");
}
