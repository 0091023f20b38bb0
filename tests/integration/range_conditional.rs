//! Range and conditional requests answered from the cached copy without touching the origin.

use crate::common::origin::{Route, ScriptedOrigin};
use crate::common::{cache_status, client, edge_url, http_origin_config, space, start_edge};

#[tokio::test]
async fn ranges_and_304_from_cache() {
    let origin = ScriptedOrigin::start().await;
    origin.route(
        "/digits.txt",
        Route::ok("0123456789")
            .header("etag", "\"d1\"")
            .header("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")
            .header("content-type", "text/plain"),
    );
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let c = client(&["assets"], &[]);
    let url = edge_url(&edge, "assets", "/digits.txt");
    c.get(&url).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(origin.hits(), 1);

    let r = c
        .get(&url)
        .header("range", "bytes=2-4")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 2-4/10");
    assert!(cache_status(&r).contains("hit"));
    assert_eq!(r.text().await.unwrap(), "234");

    let r = c
        .get(&url)
        .header("range", "bytes=-3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "789");

    let r = c
        .get(&url)
        .header("range", "bytes=0-1,8-9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("multipart/byteranges")
    );
    let body = r.text().await.unwrap();
    assert!(body.contains("content-range: bytes 0-1/10") && body.contains("89"));

    let r = c
        .get(&url)
        .header("range", "bytes=50-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */10");

    let r = c
        .get(&url)
        .header("if-none-match", "\"d1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], "\"d1\"");

    let r = c
        .get(&url)
        .header("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    let r = c
        .get(&url)
        .header("range", "bytes=0-0")
        .header("if-range", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "If-Range mismatch sends the whole object");

    assert_eq!(origin.hits(), 1, "none of these reached the origin");
    edge.stop().await;
}

#[tokio::test]
async fn range_on_a_miss_is_answered_from_the_fill() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/m.bin", Route::generated(1 << 20));
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let c = client(&["assets"], &[]);
    let r = c
        .get(edge_url(&edge, "assets", "/m.bin"))
        .header("range", "bytes=1000-1009")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 1000-1009/{}", 1 << 20)
    );
    let body = r.bytes().await.unwrap();
    let expected: Vec<u8> = (1000..1010)
        .map(crate::common::origin::pattern_byte)
        .collect();
    assert_eq!(&body[..], &expected[..]);
    assert!(
        origin.seen()[0].headers.get("range").is_none(),
        "the edge fetches the whole object"
    );
    edge.stop().await;
}
