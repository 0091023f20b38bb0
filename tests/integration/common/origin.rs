//! A scripted HTTP origin on 127.0.0.1:0: fixed responses per path, conditional requests,
//! generated large bodies, request counting and a switch to take it down.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// A body the origin sends.
#[derive(Clone)]
pub enum Body {
    Fixed(Bytes),
    /// `page for <value>` of the named request header (a response personal to its client).
    Echo(&'static str),
    /// `len` bytes of a repeating pattern, generated in 64 KiB chunks.
    Generated(u64),
    /// `len` bytes that differ per `seed` (see `seeded_bytes`), in 64 KiB chunks sent `pace`
    /// apart (a slow origin).
    Seeded {
        len: u64,
        seed: u64,
        pace: Duration,
    },
}

/// One path's scripted response.
#[derive(Clone)]
pub struct Route {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    pub delay: Duration,
}

impl Route {
    pub fn ok(body: impl Into<Bytes>) -> Route {
        Route {
            status: 200,
            headers: Vec::new(),
            body: Body::Fixed(body.into()),
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, name: &str, value: &str) -> Route {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    pub fn status(mut self, status: u16) -> Route {
        self.status = status;
        self
    }
    pub fn delay(mut self, delay: Duration) -> Route {
        self.delay = delay;
        self
    }
    /// A page made for the request: its body names the value of request header `name`.
    pub fn echo(name: &'static str) -> Route {
        Route {
            status: 200,
            headers: Vec::new(),
            body: Body::Echo(name),
            delay: Duration::ZERO,
        }
    }
    pub fn generated(len: u64) -> Route {
        Route {
            status: 200,
            headers: Vec::new(),
            body: Body::Generated(len),
            delay: Duration::ZERO,
        }
    }
}

impl Route {
    /// A body of `len` bytes unique to `seed`.
    pub fn seeded(len: u64, seed: u64) -> Route {
        Route {
            status: 200,
            headers: Vec::new(),
            body: Body::Seeded {
                len,
                seed,
                pace: Duration::ZERO,
            },
            delay: Duration::ZERO,
        }
    }

    /// Sends a seeded body's 64 KiB chunks `pace` apart.
    pub fn pace(mut self, pace: Duration) -> Route {
        if let Body::Seeded { pace: p, .. } = &mut self.body {
            *p = pace;
        }
        self
    }
}

/// Bytes `[from, to)` of the body `Route::seeded(_, seed)` sends.
pub fn seeded_bytes(seed: u64, from: u64, to: u64) -> Vec<u8> {
    (from..to)
        .map(|offset| {
            let x = (offset ^ (seed << 40)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (x >> 56) as u8
        })
        .collect()
}

/// The pattern byte at `offset` of a generated body.
pub fn pattern_byte(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// What the origin saw of a request.
#[derive(Clone, Debug)]
pub struct Seen {
    #[allow(dead_code)]
    pub method: String,
    pub path_and_query: String,
    pub headers: HeaderMap,
}

#[derive(Default)]
struct State {
    /// When set, every response's `Date` is read from it (else hyper writes the real time).
    clock: Mutex<Option<edge::cache::SharedClock>>,
    routes: Mutex<HashMap<String, Route>>,
    seen: Mutex<Vec<Seen>>,
    hits: AtomicUsize,
}

/// The running origin.
pub struct ScriptedOrigin {
    pub addr: SocketAddr,
    state: Arc<State>,
    tasks: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl ScriptedOrigin {
    pub async fn start() -> ScriptedOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener).await
    }

    pub async fn start_on(listener: TcpListener) -> ScriptedOrigin {
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let task_state = state.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let state = task_state.clone();
                conns.spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(&state, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        ScriptedOrigin {
            addr,
            state,
            tasks: Mutex::new(Some(task)),
        }
    }

    /// Sets the response for `path` (path and query, e.g. `/a.png?v=1`, or a path to match any query).
    pub fn route(&self, path: &str, route: Route) {
        self.state
            .routes
            .lock()
            .unwrap()
            .insert(path.to_owned(), route);
    }

    /// Dates every response from `clock`, as an origin whose clock agrees with the edge's
    /// (a test that moves the edge's clock would otherwise make the origin's `Date` lag by as
    /// much, which RFC 9111 counts in the response's age).
    pub fn follow_clock(&self, clock: edge::cache::SharedClock) {
        *self.state.clock.lock().unwrap() = Some(clock);
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// Requests received, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Takes the origin down: the listener and every connection close.
    pub fn stop(&self) {
        if let Some(task) = self.tasks.lock().unwrap().take() {
            task.abort();
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for ScriptedOrigin {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn answer(state: &State, request: Request<Incoming>) -> Response<BoxBody<Bytes, Infallible>> {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let pq = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    state.seen.lock().unwrap().push(Seen {
        method: request.method().to_string(),
        path_and_query: pq.clone(),
        headers: request.headers().clone(),
    });
    let route = {
        let routes = state.routes.lock().unwrap();
        routes
            .get(&pq)
            .or_else(|| routes.get(request.uri().path()))
            .cloned()
    };
    let Some(route) = route else {
        return Response::builder()
            .status(404)
            .body(Full::new(Bytes::from_static(b"not found")).boxed())
            .unwrap();
    };
    if !route.delay.is_zero() {
        tokio::time::sleep(route.delay).await;
    }
    let mut route = route;
    if let Some(clock) = state.clock.lock().unwrap().as_ref()
        && !route
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("date"))
    {
        route
            .headers
            .push(("date".to_owned(), httpdate::fmt_http_date(clock.now())));
    }
    let etag = route
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("etag"))
        .map(|(_, v)| v.clone());
    if let (Some(etag), Some(inm)) = (etag, request.headers().get("if-none-match"))
        && inm.to_str().unwrap_or_default().contains(etag.as_str())
    {
        {
            let mut builder = Response::builder().status(StatusCode::NOT_MODIFIED);
            for (n, v) in &route.headers {
                builder = builder.header(n, v);
            }
            return builder.body(Full::new(Bytes::new()).boxed()).unwrap();
        }
    }
    let mut builder = Response::builder().status(route.status);
    for (n, v) in &route.headers {
        builder = builder.header(n, v);
    }
    let body = match route.body {
        Body::Fixed(bytes) => Full::new(bytes).boxed(),
        Body::Echo(name) => {
            let value = request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("nobody");
            Full::new(Bytes::from(format!("page for {value}"))).boxed()
        }
        Body::Generated(len) => {
            builder = builder.header("content-length", len.to_string());
            // One precomputed buffer; each chunk is a zero-copy slice of it.
            let pattern = Bytes::from(
                (0..(64u64 << 10) + 251)
                    .map(pattern_byte)
                    .collect::<Vec<u8>>(),
            );
            let stream = futures::stream::unfold(0u64, move |offset| {
                let pattern = pattern.clone();
                async move {
                    if offset >= len {
                        return None;
                    }
                    let n = (len - offset).min(64 << 10);
                    let start = (offset % 251) as usize;
                    let chunk = pattern.slice(start..start + n as usize);
                    Some((Ok::<_, Infallible>(Frame::data(chunk)), offset + n))
                }
            });
            StreamBody::new(stream).boxed()
        }
        Body::Seeded { len, seed, pace } => {
            builder = builder.header("content-length", len.to_string());
            let stream = futures::stream::unfold(0u64, move |offset| async move {
                if offset >= len {
                    return None;
                }
                if !pace.is_zero() && offset > 0 {
                    tokio::time::sleep(pace).await;
                }
                let n = (len - offset).min(64 << 10);
                let chunk = Bytes::from(seeded_bytes(seed, offset, offset + n));
                Some((Ok::<_, Infallible>(Frame::data(chunk)), offset + n))
            });
            StreamBody::new(stream).boxed()
        }
    };
    builder.body(body).unwrap()
}
