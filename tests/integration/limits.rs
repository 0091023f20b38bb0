//! Request limits and graceful shutdown.

use std::time::{Duration, Instant};

use crate::common::origin::{Route, ScriptedOrigin};
use crate::common::process::spawn_edge;
use crate::common::{http_origin_config, raw_request, space, start_edge};

#[tokio::test]
async fn slow_headers_are_cut_off_and_others_are_served() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/ok", Route::ok("ok"));
    let config = format!(
        "{}\n[limits]\nheader_read_timeout = \"1s\"\n",
        http_origin_config(&origin.url(), &space("assets", ""))
    );
    let edge = start_edge(&config).await;
    let addr = edge.http_addr.unwrap();
    let started = Instant::now();
    let slow = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /ok HTTP/1.1\r\nHost: assets.local.cdn.localhost\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
        (
            started.elapsed(),
            String::from_utf8_lossy(&buf).into_owned(),
        )
    });
    let fine = raw_request(
        addr,
        b"GET /ok HTTP/1.1\r\nHost: assets.local.cdn.localhost\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(fine.starts_with("HTTP/1.1 200"), "{fine}");
    let (elapsed, _answer) = slow.await.unwrap();
    assert!(
        elapsed < Duration::from_secs(5),
        "slow client closed after {elapsed:?}"
    );
    edge.stop().await;
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let origin = ScriptedOrigin::start().await;
    let config = format!(
        "{}\n[limits]\nmax_header_size = \"16KiB\"\n",
        http_origin_config(&origin.url(), &space("assets", ""))
    );
    let edge = start_edge(&config).await;
    let big = "a".repeat(64 << 10);
    let request =
        format!("GET /x HTTP/1.1\r\nHost: assets.local.cdn.localhost\r\nX-Big: {big}\r\n\r\n");
    let answer = raw_request(
        edge.http_addr.unwrap(),
        request.as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert!(
        answer.is_empty()
            || answer.starts_with("HTTP/1.1 431")
            || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    assert_eq!(origin.hits(), 0);
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_responses() {
    let origin = ScriptedOrigin::start().await;
    let len: u64 = 256 << 20;
    origin.route("/big.bin", Route::generated(len));
    let edge = spawn_edge(&format!(
        "[listen]\nhttp = \"127.0.0.1:{{http}}\"\n[origin]\nkind = \"http\"\nurl = \"{}\"\n[[space]]\nname = \"big\"\n",
        origin.url()
    ));
    let c = crate::common::client(&["big"], &[]);
    let url = format!("http://big.local.cdn.localhost:{}/big.bin", edge.http_port);
    let mut response = c.get(&url).send().await.unwrap();
    let first = response.chunk().await.unwrap().unwrap();
    // SIGTERM while the body is in flight.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &edge.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut total = first.len() as u64;
    while let Some(chunk) = response.chunk().await.unwrap() {
        total += chunk.len() as u64;
        // Read slowly at first so the shutdown has to wait for us.
        if total < (8 << 20) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    assert_eq!(total, len, "the in-flight response completed");
    // New connections are refused once it has stopped.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(std::net::TcpStream::connect(("127.0.0.1", edge.http_port)).is_err());
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_others_are_served() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/big.bin", Route::generated(64 << 20));
    origin.route("/ok", Route::ok("ok"));
    let config = format!(
        "{}\n[limits]\nidle_timeout = \"1s\"\n",
        http_origin_config(&origin.url(), &space("assets", ""))
    );
    let edge = start_edge(&config).await;
    let addr = edge.http_addr.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Asks for 64 MiB and never reads.
    let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: assets.local.cdn.localhost\r\n\r\n")
        .await
        .unwrap();
    // An idle keep-alive connection.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let fine = raw_request(
        addr,
        b"GET /ok HTTP/1.1\r\nHost: assets.local.cdn.localhost\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(fine.starts_with("HTTP/1.1 200"), "{fine}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Both were closed by the edge: reading drains what was buffered, then hits the end.
    let mut buf = vec![0u8; 1 << 20];
    let mut drained = 0usize;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => drained += n,
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(closed, "the stalled reader was cut off");
    assert!(
        drained < 64 << 20,
        "it did not get the whole body ({drained} bytes)"
    );
    let n = tokio::time::timeout(Duration::from_secs(2), idle.read(&mut buf)).await;
    assert!(
        matches!(n, Ok(Ok(0)) | Ok(Err(_))),
        "the idle connection was closed"
    );
    edge.stop().await;
}
