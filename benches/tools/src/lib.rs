//! Shared bits of the benchmark programs: argument parsing and the accept loop.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// The address given as `--listen ADDR` (the only argument these programs take).
pub fn listen_arg() -> SocketAddr {
    let args: Vec<String> = std::env::args().collect();
    match args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1))
    {
        Some(addr) => addr
            .parse()
            .unwrap_or_else(|e| die(&format!("--listen {addr}: {e}"))),
        None => die("usage: --listen 127.0.0.1:PORT"),
    }
}

/// Prints `reason` and exits with status 2.
pub fn die(reason: &str) -> ! {
    eprintln!("{reason}");
    std::process::exit(2)
}

/// Serves `handle` on `addr` with hyper's HTTP/1.1 + HTTP/2 builder, one task per connection,
/// configured as the edge configures its own (timer, keep-alive), so the ceiling differs from
/// the edge only by what the edge does per request.
pub fn serve<F, Fut>(addr: SocketAddr, handle: F) -> !
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(&format!("runtime: {e}")));
    runtime.block_on(async move {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| die(&format!("bind {addr}: {e}")));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).keep_alive(true);
        builder.http2().timer(TokioTimer::new());
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let builder = builder.clone();
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let response = handle(request);
                    async move { Ok::<_, Infallible>(response.await) }
                });
                let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
            });
        }
    })
}

/// The fields every bench object carries (the origin sends them; the ceiling answers as if
/// it were a hit of one): type, a one-hour public lifetime and a fixed `Last-Modified`.
pub fn insert_object_headers(headers: &mut http::HeaderMap) {
    use http::HeaderValue;
    use http::header::{CACHE_CONTROL, CONTENT_TYPE, LAST_MODIFIED};
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    headers.insert(
        LAST_MODIFIED,
        HeaderValue::from_static("Mon, 01 Jan 2024 00:00:00 GMT"),
    );
}
