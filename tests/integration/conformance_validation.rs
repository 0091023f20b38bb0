//! RFC 9111 section 4.3 conformance (validation), each test named after the section it
//! checks: a real edge in front of a scripted origin, with an injected clock to let entries
//! go stale. Helpers are shared with `conformance.rs`.

use std::time::Duration;

use edge::cache::clock::ManualClock;

use crate::common::origin::{Route, ScriptedOrigin};
use crate::common::{client, http_origin_config, space, start_edge_on_clock};
use crate::conformance::{fetches, get, http_date, send};

/// Issue 19. A 304 replaced the stored fields but its `Age` was dropped, so the refreshed
/// entry's age restarted from nothing.
#[tokio::test]
async fn rfc9111_4_3_4_a_304_updates_the_stored_fields_age_and_date_included() {
    let origin = ScriptedOrigin::start().await;
    let first_date = http_date(-1);
    origin.route(
        "/r",
        Route::ok("stored body")
            .header("etag", "\"v1\"")
            .header("cache-control", "max-age=10")
            .header("date", &first_date)
            .header("x-version", "1"),
    );
    let clock = ManualClock::new();
    let edge = start_edge_on_clock(
        &http_origin_config(&origin.url(), &space("assets", "")),
        clock.clone(),
    )
    .await;
    let c = client(&["assets"], &[]);
    let first = get(&c, &edge, "/r").await;
    assert_eq!(first.header("date"), Some(first_date.as_str()));

    clock.advance(Duration::from_secs(20));
    let second_date = http_date(0);
    origin.route(
        "/r",
        Route::ok("stored body")
            .header("etag", "\"v1\"")
            .header("cache-control", "max-age=100")
            .header("date", &second_date)
            .header("age", "30")
            .header("x-version", "2"),
    );
    let refreshed = get(&c, &edge, "/r").await;
    assert!(
        refreshed.cache.contains("fwd=stale; fwd-status=304"),
        "{}",
        refreshed.cache
    );
    assert_eq!(refreshed.header("x-version"), Some("2"));
    assert_eq!(refreshed.age(), 30);

    clock.advance(Duration::from_secs(5));
    let hit = get(&c, &edge, "/r").await;
    assert!(hit.hit(), "{}", hit.cache);
    assert_eq!(hit.body, "stored body");
    assert_eq!(hit.header("x-version"), Some("2"));
    assert_eq!(hit.header("date"), Some(second_date.as_str()));
    assert_eq!(hit.age(), 35, "the 304's Age, and the 5 s since");
    assert_eq!(fetches(&origin, "/r"), 2);
    edge.stop().await;
}

/// Issue 19. A HEAD for a stale entry was revalidated with a GET (fetching the body for a
/// request that does not want it), and a `410` the origin gave left the entry in place.
#[tokio::test]
async fn rfc9111_4_3_5_a_head_for_a_stale_entry_revalidates_with_a_head() {
    let origin = ScriptedOrigin::start().await;
    let lm = http_date(-86_400);
    origin.route(
        "/etag",
        Route::ok("hello")
            .header("etag", "\"v1\"")
            .header("cache-control", "max-age=10"),
    );
    origin.route(
        "/lm",
        Route::ok("hello")
            .header("last-modified", &lm)
            .header("cache-control", "max-age=10")
            .header("x-a", "1"),
    );
    origin.route(
        "/changed",
        Route::ok("old body")
            .header("etag", "\"v1\"")
            .header("cache-control", "max-age=10"),
    );
    origin.route(
        "/gone",
        Route::ok("here")
            .header("etag", "\"v1\"")
            .header("cache-control", "max-age=10"),
    );
    let clock = ManualClock::new();
    let edge = start_edge_on_clock(
        &http_origin_config(&origin.url(), &space("assets", "")),
        clock.clone(),
    )
    .await;
    let c = client(&["assets"], &[]);
    for path in ["/etag", "/lm", "/changed", "/gone"] {
        get(&c, &edge, path).await;
    }
    clock.advance(Duration::from_secs(20));
    let head = |path: &'static str| {
        let (c, edge) = (&c, &edge);
        async move { send(c, edge, reqwest::Method::HEAD, path).await }
    };
    let methods = |path: &str| -> Vec<String> {
        origin
            .seen()
            .iter()
            .filter(|s| s.path_and_query == path)
            .map(|s| s.method.clone())
            .collect()
    };

    // A 304: the entry is refreshed (with the 304's freshness), its body never fetched
    // again.
    origin.route(
        "/etag",
        Route::ok("hello")
            .header("etag", "\"v1\"")
            .header("cache-control", "max-age=600"),
    );
    let answer = head("/etag").await;
    assert!(
        answer.cache.contains("fwd=stale; fwd-status=304"),
        "{}",
        answer.cache
    );
    assert_eq!(answer.body, "");
    assert!(get(&c, &edge, "/etag").await.hit());
    assert_eq!(methods("/etag"), ["GET", "HEAD"]);
    let sent = origin
        .seen()
        .into_iter()
        .rfind(|s| s.method == "HEAD")
        .unwrap();
    assert!(sent.headers.contains_key("if-none-match"));

    // A 200 for the same representation updates the stored fields (and freshness).
    origin.route(
        "/lm",
        Route::ok("hello")
            .header("last-modified", &lm)
            .header("cache-control", "max-age=600")
            .header("x-a", "2"),
    );
    let answer = head("/lm").await;
    assert!(
        answer.cache.contains("fwd=stale; fwd-status=200"),
        "{}",
        answer.cache
    );
    assert_eq!(answer.header("x-a"), Some("2"));
    let hit = get(&c, &edge, "/lm").await;
    assert!(hit.hit(), "{}", hit.cache);
    assert_eq!((hit.body.as_str(), hit.header("x-a")), ("hello", Some("2")));
    assert_eq!(methods("/lm"), ["GET", "HEAD"]);

    // A 200 for another representation: the client gets it, the entry is not refreshed.
    origin.route(
        "/changed",
        Route::ok("new body")
            .header("etag", "\"v2\"")
            .header("cache-control", "max-age=600"),
    );
    let answer = head("/changed").await;
    assert_eq!(answer.header("etag"), Some("\"v2\""));
    let fetched = get(&c, &edge, "/changed").await;
    assert_eq!(fetched.body, "new body");
    assert!(!fetched.hit());

    // A 410: the entry is gone; the next GET is a plain miss.
    origin.route("/gone", Route::ok("gone").status(410));
    let answer = head("/gone").await;
    assert_eq!(answer.status, 410);
    let after = get(&c, &edge, "/gone").await;
    assert_eq!(after.status, 410);
    assert!(after.cache.contains("fwd=miss"), "{}", after.cache);
    edge.stop().await;
}
