//! RFC 9111 / 9110 / 9213 conformance, each test named after the section it checks: a real
//! edge in front of a scripted origin (and, for interim responses, a raw HTTP/1.1 one), with
//! an injected clock where time has to pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use edge::cache::clock::ManualClock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::origin::{Route, ScriptedOrigin};
use crate::common::{
    TestEdge, cache_status, client, edge_url, http_origin_config, space, start_edge,
    start_edge_on_clock,
};

/// What a test reads of a response.
pub(crate) struct Got {
    pub(crate) status: u16,
    pub(crate) cache: String,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: String,
}

impl Got {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
    pub(crate) fn age(&self) -> u64 {
        self.header("age").unwrap().parse().unwrap()
    }
    pub(crate) fn hit(&self) -> bool {
        self.cache.contains("; hit")
    }
}

pub(crate) async fn send(
    c: &reqwest::Client,
    edge: &TestEdge,
    method: reqwest::Method,
    path: &str,
) -> Got {
    let r = c
        .request(method, edge_url(edge, "assets", path))
        .send()
        .await
        .unwrap();
    Got {
        status: r.status().as_u16(),
        cache: cache_status(&r),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    }
}

pub(crate) async fn get(c: &reqwest::Client, edge: &TestEdge, path: &str) -> Got {
    send(c, edge, reqwest::Method::GET, path).await
}

/// How many requests for `path` the origin saw.
pub(crate) fn fetches(origin: &ScriptedOrigin, path: &str) -> usize {
    origin
        .seen()
        .iter()
        .filter(|s| s.path_and_query == path)
        .count()
}

pub(crate) fn http_date(offset_secs: i64) -> String {
    let now = SystemTime::now();
    let at = if offset_secs < 0 {
        now - Duration::from_secs(offset_secs.unsigned_abs())
    } else {
        now + Duration::from_secs(offset_secs.unsigned_abs())
    };
    httpdate::fmt_http_date(at)
}

/// A PoP whose space stores only what the origin gives explicit freshness to.
async fn explicit_only(origin: &ScriptedOrigin, space_extra: &str) -> TestEdge {
    let extra = format!("ttl = \"0s\"\n{space_extra}");
    start_edge(&http_origin_config(&origin.url(), &space("assets", &extra))).await
}

/// Issue 19. The origin's `Age` was dropped before the response's age was computed, so a
/// response older than its `max-age` was served fresh; `Date` behind or ahead of the edge's
/// clock was not weighed against `Age` either.
#[tokio::test]
async fn rfc9111_4_2_3_the_origins_age_and_date_count_in_the_current_age() {
    let origin = ScriptedOrigin::start().await;
    let routes = [
        (
            "/aged",
            vec![
                ("cache-control", "max-age=3600".to_owned()),
                ("age", "7200".to_owned()),
            ],
        ),
        (
            "/young",
            vec![
                ("cache-control", "max-age=3600".to_owned()),
                ("age", "600".to_owned()),
            ],
        ),
        (
            "/slow-date",
            vec![
                ("date", http_date(-10)),
                ("expires", http_date(10)),
                ("age", "25".to_owned()),
            ],
        ),
        (
            "/fast-date",
            vec![
                ("date", http_date(10)),
                ("expires", http_date(20)),
                ("age", "15".to_owned()),
            ],
        ),
        (
            "/two-lines",
            vec![
                ("cache-control", "max-age=3600".to_owned()),
                ("age", "0".to_owned()),
                ("age", "7200".to_owned()),
            ],
        ),
        (
            "/not-stored",
            vec![
                ("cache-control", "no-store".to_owned()),
                ("age", "42".to_owned()),
            ],
        ),
    ];
    for (path, headers) in &routes {
        let mut route = Route::ok(format!("body of {path}"));
        for (name, value) in headers {
            route = route.header(name, value);
        }
        origin.route(path, route);
    }
    let edge = explicit_only(&origin, "").await;
    let c = client(&["assets"], &[]);

    let first = get(&c, &edge, "/aged").await;
    assert!(
        first.age() >= 7200,
        "the origin's Age is passed on: {}",
        first.age()
    );
    let second = get(&c, &edge, "/aged").await;
    assert!(!second.hit(), "{}", second.cache);
    assert_eq!(fetches(&origin, "/aged"), 2);

    get(&c, &edge, "/young").await;
    let hit = get(&c, &edge, "/young").await;
    assert!(hit.hit(), "{}", hit.cache);
    assert!(hit.age() >= 600);

    for path in ["/slow-date", "/fast-date"] {
        get(&c, &edge, path).await;
        let again = get(&c, &edge, path).await;
        assert!(!again.hit(), "{path}: {}", again.cache);
        assert_eq!(fetches(&origin, path), 2, "{path}");
    }

    get(&c, &edge, "/two-lines").await;
    assert!(
        get(&c, &edge, "/two-lines").await.hit(),
        "the first Age line counts"
    );

    let passed = get(&c, &edge, "/not-stored").await;
    assert_eq!(passed.header("age"), Some("42"));
    edge.stop().await;
}

/// Issue 19. An `Expires` that is not an HTTP-date (here with extra spaces) gave the
/// response a lifetime; it means "already expired".
#[tokio::test]
async fn rfc9111_5_3_an_invalid_expires_means_already_expired() {
    let origin = ScriptedOrigin::start().await;
    let cases = [
        ("/spaces", "Thu, 18  Aug  2050 02:01:18 GMT", false),
        ("/utc", "Thu, 18 Aug 2050 02:01:18 UTC", false),
        ("/zero", "0", false),
        ("/upper-case", "THU, 18 AUG 2050 02:01:18 GMT", true),
        ("/asctime", "Thu Aug  8 02:01:18 2050", true),
        ("/rfc850", "Thursday, 18-Aug-50 02:01:18 GMT", true),
    ];
    for (path, expires, _) in &cases {
        origin.route(path, Route::ok("x").header("expires", expires));
    }
    let edge = explicit_only(&origin, "").await;
    let c = client(&["assets"], &[]);
    for (path, expires, fresh) in cases {
        get(&c, &edge, path).await;
        let again = get(&c, &edge, path).await;
        assert_eq!(again.hit(), fresh, "Expires: {expires}: {}", again.cache);
    }
    edge.stop().await;
}

/// Issue 19. `NO-CACHE` and `Max-Age` were not recognised.
#[tokio::test]
async fn rfc9111_5_2_cache_directive_names_are_case_insensitive() {
    let origin = ScriptedOrigin::start().await;
    origin.route(
        "/no-cache",
        Route::ok("x").header("cache-control", "NO-CACHE, max-age=600"),
    );
    origin.route(
        "/no-store",
        Route::ok("x").header("cache-control", "No-Store, max-age=600"),
    );
    origin.route(
        "/max-age",
        Route::ok("x").header("cache-control", "Max-Age=600"),
    );
    let edge = explicit_only(&origin, "").await;
    let c = client(&["assets"], &[]);
    for path in ["/no-cache", "/no-store", "/max-age"] {
        get(&c, &edge, path).await;
        get(&c, &edge, path).await;
    }
    assert_eq!(fetches(&origin, "/no-cache"), 2);
    assert_eq!(fetches(&origin, "/no-store"), 2);
    assert_eq!(fetches(&origin, "/max-age"), 1);
    edge.stop().await;
}

/// Issue 19. Only a `Vary` whose first line was exactly `*` was refused; `*, *`, `, *`,
/// `foo, *` or `*` on a second line were stored and served.
#[tokio::test]
async fn rfc9111_4_1_vary_star_in_any_form_never_matches() {
    let origin = ScriptedOrigin::start().await;
    let cases: [&[&str]; 7] = [
        &["*"],
        &["*, *"],
        &["*", "*"],
        &[", *"],
        &["", "*"],
        &["*, Foo"],
        &["Foo, *"],
    ];
    for (i, lines) in cases.iter().enumerate() {
        let mut route = Route::ok("x").header("cache-control", "max-age=600");
        for line in *lines {
            route = route.header("vary", line);
        }
        origin.route(&format!("/star{i}"), route);
    }
    origin.route(
        "/accept-language",
        Route::ok("x")
            .header("cache-control", "max-age=600")
            .header("vary", "Accept-Language"),
    );
    let edge = explicit_only(&origin, "").await;
    let c = client(&["assets"], &[]);
    for (i, lines) in cases.iter().enumerate() {
        let path = format!("/star{i}");
        get(&c, &edge, &path).await;
        let again = get(&c, &edge, &path).await;
        assert!(!again.hit(), "Vary: {lines:?}: {}", again.cache);
        assert_eq!(fetches(&origin, &path), 2, "Vary: {lines:?}");
    }
    get(&c, &edge, "/accept-language").await;
    assert!(get(&c, &edge, "/accept-language").await.hit());
    edge.stop().await;
}

/// Issue 19. `CDN-Cache-Control` was ignored: the edge followed `Cache-Control` even where
/// the origin told CDNs otherwise, in either direction. A space's `targeted` fields come
/// first.
#[tokio::test]
async fn rfc9213_cdn_cache_control_and_a_spaces_targeted_fields_decide_at_the_edge() {
    let origin = ScriptedOrigin::start().await;
    let future = http_date(10_000);
    let past = http_date(-10_000);
    let routes: [(&str, &[(&str, &str)]); 7] = [
        (
            "/longer",
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=600"),
            ],
        ),
        (
            "/shorter",
            &[
                ("cache-control", "max-age=600"),
                ("cdn-cache-control", "max-age=0"),
            ],
        ),
        (
            "/private",
            &[
                ("cache-control", "max-age=600"),
                ("expires", &future),
                ("cdn-cache-control", "private"),
            ],
        ),
        (
            "/no-store",
            &[
                ("cache-control", "max-age=600"),
                ("expires", &future),
                ("cdn-cache-control", "no-store"),
            ],
        ),
        (
            "/targeted",
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "no-store"),
                ("edge-control", "max-age=600"),
            ],
        ),
        (
            "/invalid",
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=\"600\""),
            ],
        ),
        (
            "/past-expires",
            &[("expires", &past), ("cdn-cache-control", "max-age=600")],
        ),
    ];
    for (path, headers) in &routes {
        let mut route = Route::ok("x");
        for (name, value) in *headers {
            route = route.header(name, value);
        }
        origin.route(path, route);
    }
    let edge = explicit_only(&origin, "targeted = [\"Edge-Control\"]").await;
    let c = client(&["assets"], &[]);
    for (path, cached) in [
        ("/longer", true),
        ("/shorter", false),
        ("/private", false),
        ("/no-store", false),
        ("/targeted", true),
        ("/invalid", false),
        ("/past-expires", true),
    ] {
        let first = get(&c, &edge, path).await;
        let again = get(&c, &edge, path).await;
        assert_eq!(again.hit(), cached, "{path}: {}", again.cache);
        assert_eq!(fetches(&origin, path), if cached { 1 } else { 2 }, "{path}");
        // Clients get the fields as the origin sent them.
        assert_eq!(first.header("cache-control"), again.header("cache-control"));
    }
    let longer = get(&c, &edge, "/longer").await;
    assert_eq!(longer.header("cache-control"), Some("no-store"));
    assert_eq!(longer.header("cdn-cache-control"), Some("max-age=600"));
    edge.stop().await;
}

/// Issue 19. Responses with explicit freshness were stored only for a few statuses: a fresh
/// `500 max-age=60` was fetched again every time. (Without explicit freshness, 403 and 5xx
/// are still never stored.)
#[tokio::test]
async fn rfc9111_3_final_responses_with_explicit_freshness_are_stored_whatever_the_status() {
    let origin = ScriptedOrigin::start().await;
    let codes = [203u16, 299, 303, 400, 403, 410, 500, 503, 599];
    for code in codes {
        origin.route(
            &format!("/s{code}"),
            Route::ok(format!("status {code}"))
                .status(code)
                .header("cache-control", "max-age=60"),
        );
    }
    origin.route("/bare403", Route::ok("no").status(403));
    origin.route("/bare503", Route::ok("no").status(503));
    let clock = ManualClock::new();
    let edge = start_edge_on_clock(
        &http_origin_config(&origin.url(), &space("assets", "ttl = \"1h\"")),
        clock.clone(),
    )
    .await;
    let c = client(&["assets"], &[]);
    for code in codes {
        let path = format!("/s{code}");
        get(&c, &edge, &path).await;
        let hit = get(&c, &edge, &path).await;
        assert!(hit.hit(), "{code}: {}", hit.cache);
        assert_eq!(
            (hit.status, hit.body.as_str()),
            (code, format!("status {code}").as_str())
        );
    }
    // Stale, and never served so (no stale window): fetched again.
    clock.advance(Duration::from_secs(120));
    for code in codes {
        let path = format!("/s{code}");
        let again = get(&c, &edge, &path).await;
        assert!(!again.hit(), "{code}: {}", again.cache);
        assert_eq!(fetches(&origin, &path), 2, "{code}");
    }
    for path in ["/bare403", "/bare503"] {
        get(&c, &edge, path).await;
        get(&c, &edge, path).await;
        assert_eq!(fetches(&origin, path), 2, "{path}");
    }
    edge.stop().await;
}

/// A raw HTTP/1.1 origin that answers every request with a `103 Early Hints` before a
/// cacheable `200` (the scripted hyper origin cannot send interim responses).
async fn early_hints_origin() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                continue;
            };
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = tcp.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        buffer.drain(..end + 4);
                        counted.fetch_add(1, Ordering::SeqCst);
                        let answer = "HTTP/1.1 103 Early Hints\r\n\
                                      link: </s.css>; rel=preload; as=style\r\n\
                                      x-interim: yes\r\n\r\n\
                                      HTTP/1.1 200 OK\r\n\
                                      cache-control: max-age=600\r\n\
                                      content-length: 5\r\n\r\nfinal";
                        if tcp.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, requests)
}

/// Interim (1xx) responses are never stored, and their fields never reach the final
/// response. (hyper's server cannot send a 1xx, so `103 Early Hints` is not passed on.)
#[tokio::test]
async fn rfc9111_3_interim_responses_are_never_stored() {
    let (url, requests) = early_hints_origin().await;
    let edge = start_edge(&http_origin_config(&url, &space("assets", "ttl = \"0s\""))).await;
    let c = client(&["assets"], &[]);
    let first = get(&c, &edge, "/hinted").await;
    assert_eq!((first.status, first.body.as_str()), (200, "final"));
    assert!(first.cache.contains("fwd=miss; stored"), "{}", first.cache);
    assert_eq!(first.header("x-interim"), None);
    let hit = get(&c, &edge, "/hinted").await;
    assert!(hit.hit(), "{}", hit.cache);
    assert_eq!((hit.status, hit.body.as_str()), (200, "final"));
    assert_eq!(hit.header("x-interim"), None);
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    edge.stop().await;
}
