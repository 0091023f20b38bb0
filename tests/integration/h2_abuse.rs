//! HTTP/2 abuse: rapid reset, stream limits and huge header lists, with hyper's limits set.

use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;

use crate::common::origin::{Route, ScriptedOrigin};
use crate::common::{http_origin_config, space, start_edge};

async fn h2_connect(
    addr: std::net::SocketAddr,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(connection);
    (send, driver)
}

fn get(path: &str) -> http::Request<()> {
    http::Request::get(format!("http://assets.local.cdn.localhost{path}"))
        .body(())
        .unwrap()
}

async fn healthy(addr: std::net::SocketAddr) {
    let (mut send, _driver) = h2_connect(addr).await;
    let mut send_ready = send.clone().ready().await.unwrap();
    let (response, _) = send_ready.send_request(get("/ok"), true).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    let _ = &mut send;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_gets_a_goaway_and_others_are_served() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/ok", Route::ok("ok"));
    origin.route("/slow", Route::ok("slow").delay(Duration::from_secs(2)));
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let addr = edge.http_addr.unwrap();
    let (send, driver) = h2_connect(addr).await;
    let mut send = send;
    let mut opened = 0;
    for _ in 0..5000 {
        let Ok(ready) = send.clone().ready().await else {
            break;
        };
        send = ready;
        match send.send_request(get("/slow"), true) {
            Ok((response, mut stream)) => {
                stream.send_reset(h2::Reason::CANCEL);
                drop(response);
                opened += 1;
            }
            Err(_) => break,
        }
    }
    // The server ends the connection long before 5000 reset streams.
    let ended = tokio::time::timeout(Duration::from_secs(10), driver).await;
    assert!(
        ended.is_ok(),
        "the abusive connection was closed (opened {opened} streams)"
    );
    healthy(addr).await;
    edge.stop().await;
}

#[tokio::test]
async fn stream_limit_is_advertised() {
    let origin = ScriptedOrigin::start().await;
    let config = format!(
        "{}\n[limits]\nmax_concurrent_streams = 16\n",
        http_origin_config(&origin.url(), &space("assets", ""))
    );
    let edge = start_edge(&config).await;
    let tcp = TcpStream::connect(edge.http_addr.unwrap()).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(async move {
        let mut connection = connection;
        // Poll until the server's SETTINGS are in.
        let _ = tokio::time::timeout(Duration::from_millis(300), &mut connection).await;
        connection.max_concurrent_send_streams()
    });
    let _send = send.ready().await.unwrap();
    assert_eq!(connection.await.unwrap(), 16);
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_header_lists_are_refused() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/ok", Route::ok("ok"));
    let config = format!(
        "{}\n[limits]\nmax_header_size = \"16KiB\"\n",
        http_origin_config(&origin.url(), &space("assets", ""))
    );
    let edge = start_edge(&config).await;
    let addr = edge.http_addr.unwrap();
    let (send, _driver) = h2_connect(addr).await;
    let mut send = send.ready().await.unwrap();
    let mut request = get("/ok");
    for i in 0..64 {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(format!("x-big-{i}").as_bytes()).unwrap(),
            "v".repeat(1024).parse().unwrap(),
        );
    }
    let refused = match send.send_request(request, true) {
        Err(_) => true,
        Ok((response, _)) => match tokio::time::timeout(Duration::from_secs(5), response)
            .await
            .unwrap()
        {
            Err(_) => true,
            Ok(response) => response.status() == 431,
        },
    };
    assert!(
        refused,
        "a 64 KiB header list over a 16 KiB limit is refused"
    );
    assert_eq!(origin.hits(), 0);
    healthy(addr).await;
    edge.stop().await;
}

#[tokio::test]
async fn uploads_of_unknown_length_are_refused_and_stated_lengths_forwarded() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/up", Route::ok("stored"));
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let (send, _driver) = h2_connect(edge.http_addr.unwrap()).await;
    let upload = |length: Option<usize>| {
        let mut request = http::Request::post("http://assets.local.cdn.localhost/up")
            .body(())
            .unwrap();
        if let Some(length) = length {
            request
                .headers_mut()
                .insert(http::header::CONTENT_LENGTH, length.into());
        }
        request
    };

    // A body with no stated length: 411, and nothing reaches the origin.
    let mut ready = send.clone().ready().await.unwrap();
    let (response, mut body) = ready.send_request(upload(None), false).unwrap();
    body.send_data(Bytes::from_static(b"abc"), true).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 411);
    assert_eq!(origin.hits(), 0);

    // With Content-Length the same upload is forwarded, on the same connection.
    let mut ready = send.clone().ready().await.unwrap();
    let (response, mut body) = ready.send_request(upload(Some(3)), false).unwrap();
    body.send_data(Bytes::from_static(b"abc"), true).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(origin.hits(), 1);
    edge.stop().await;
}
