//! Regression tests for the attacks an outside review found against the edge (issue 11), each
//! reproduced against real servers on loopback: cache poisoning through a parent, private
//! responses shared by coalescing, panics from presign and lifetime arithmetic, key and
//! upstream disagreeing, and access-log forgery.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::common::origin::{Route, ScriptedOrigin};
use crate::common::s3::{S3cmd, origin_user};
use crate::common::{
    cache_status, client, edge_url, http_origin_config, raw_request, raw_status, space, start_edge,
    ttl_of,
};

/// A shield PoP with the embedded origin holding two spaces' buckets, `assets` and `evil`,
/// each with its own `app.js`; and a child PoP fetching its misses through the shield.
async fn shield_and_child(
    dir: &std::path::Path,
) -> (crate::common::TestEdge, crate::common::TestEdge) {
    let shield = start_edge(&format!(
        r#"
[pop]
name = "shield"
[listen]
http = "127.0.0.1:0"
[origin]
kind = "embedded"
data_dir = "{data}"
{user}
[[space]]
name = "assets"
region = "local"
[[space]]
name = "evil"
region = "local"
"#,
        data = dir.join("origin").display(),
        user = origin_user()
    ))
    .await;
    let s3 = S3cmd::new(dir, shield.origin_addr.unwrap());
    for (bucket, text) in [
        ("assets", "console.log('assets')"),
        ("evil", "steal(document.cookie)"),
    ] {
        let file = dir.join(format!("{bucket}.js"));
        std::fs::write(&file, text).unwrap();
        s3.run(&[
            "put",
            "--acl-public",
            file.to_str().unwrap(),
            &format!("s3://{bucket}/app.js"),
        ]);
    }
    let child = start_edge(&format!(
        r#"
[pop]
name = "child"
[listen]
http = "127.0.0.1:0"
[origin]
kind = "http"
url = "http://127.0.0.1:9"
[parent]
url = "http://{shield}"
[[space]]
name = "assets"
region = "local"
[[space]]
name = "evil"
region = "local"
"#,
        shield = shield.http_addr.unwrap()
    ))
    .await;
    (shield, child)
}

/// High 1: an absolute-form target naming one space with a `Host` naming another made the
/// child fetch the other space's object from its parent and store it under the first's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_authority_and_host_that_disagree_are_refused_not_routed_apart() {
    let dir = tempfile::tempdir().unwrap();
    let (shield, child) = shield_and_child(dir.path()).await;
    let addr = child.http_addr.unwrap();
    let attack = raw_request(
        addr,
        b"GET http://assets.local.cdn.localhost/app.js HTTP/1.1\r\nHost: evil.local.cdn.localhost\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(raw_status(&attack), 400, "{attack}");

    // HTTP/2 (prior knowledge): `:authority` and a `host` field that disagree.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut send = send.ready().await.unwrap();
    let request = http::Request::get("http://assets.local.cdn.localhost/app.js")
        .header("host", "evil.local.cdn.localhost")
        .body(())
        .unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 400);

    // Whatever was tried, every visitor of `assets` gets assets' script.
    let c = client(&["assets"], &[]);
    let url = edge_url(&child, "assets", "/app.js");
    for _ in 0..2 {
        let body = c.get(&url).send().await.unwrap().text().await.unwrap();
        assert_eq!(body, "console.log('assets')");
    }
    // An agreeing pair (case, port, trailing dot aside) is served.
    let agreeing = raw_request(
        addr,
        b"GET http://assets.local.cdn.localhost/app.js HTTP/1.1\r\nHost: ASSETS.local.cdn.localhost.\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(raw_status(&agreeing), 200, "{agreeing}");
    assert!(agreeing.ends_with("console.log('assets')"), "{agreeing}");
    child.stop().await;
    shield.stop().await;
}

/// High 1, the upstream side: what a parent is asked is built from the route the child chose
/// (the space's own host name), never copied from the client's `Host`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_is_asked_with_the_routed_space_host_not_the_client_host() {
    let parent = ScriptedOrigin::start().await;
    parent.route("/a.css", Route::ok("a"));
    let child = start_edge(&format!(
        r#"
[pop]
name = "child"
[listen]
http = "127.0.0.1:0"
[origin]
kind = "http"
url = "http://127.0.0.1:9"
[parent]
url = "{parent}"
[[space]]
name = "assets"
region = "local"
custom_domain = "static.example.com"
"#,
        parent = parent.url()
    ))
    .await;
    let c = client(&[], &["static.example.com"]);
    let port = child.http_addr.unwrap().port();
    let r = c
        .get(format!("http://static.example.com:{port}/a.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = parent.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].headers.get("host").unwrap(),
        "assets.local.cdn.localhost"
    );
    child.stop().await;
}

/// High 2: a follower joined any fill for its key; a private answer to the victim's request
/// (made with the victim's cookie) reached the attacker who asked a moment later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_response_is_never_handed_to_a_request_that_joined_its_fill() {
    let origin = ScriptedOrigin::start().await;
    origin.route(
        "/account",
        Route::echo("cookie")
            .header("cache-control", "private, no-store")
            .delay(Duration::from_millis(800)),
    );
    origin.route(
        "/inbox",
        Route::echo("authorization").delay(Duration::from_millis(800)),
    );
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let c = client(&["assets"], &[]);
    for (path, header, secret) in [
        ("/account", "cookie", "session=victim"),
        ("/inbox", "authorization", "Bearer victim-token"),
    ] {
        let url = edge_url(&edge, "assets", path);
        let victim = {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move { c.get(url).header(header, secret).send().await.unwrap() })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let attacker = c.get(&url).send().await.unwrap();
        let attacker_status = cache_status(&attacker);
        let attacker_body = attacker.text().await.unwrap();
        assert_eq!(
            attacker_body, "page for nobody",
            "{path}: {attacker_status}"
        );
        assert!(!attacker_status.contains("collapsed"), "{attacker_status}");
        let victim = victim.await.unwrap().text().await.unwrap();
        assert_eq!(victim, format!("page for {secret}"));
    }
    assert_eq!(
        origin.hits(),
        4,
        "every request went to the origin on its own"
    );
    edge.stop().await;
}

/// Medium 6: presign parameters whose arithmetic overflowed panicked the request task
/// (an empty reply on HTTP/1.1, a reset stream on HTTP/2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presign_numbers_out_of_range_are_a_400_not_a_panic() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/x", Route::ok("x"));
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let addr = edge.http_addr.unwrap();
    let path = "/x?X-Amz-Date=20240101T000000Z&X-Amz-Expires=18446744073709551615";
    let reply = raw_request(
        addr,
        format!(
            "GET {path} HTTP/1.1\r\nHost: assets.local.cdn.localhost\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(raw_status(&reply), 400, "{reply}");
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut send = send.ready().await.unwrap();
    let request = http::Request::get(format!("http://assets.local.cdn.localhost{path}"))
        .body(())
        .unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 400);
    assert_eq!(origin.hits(), 0);
    edge.stop().await;
}

/// Medium 7: `max-age=18446744073709551615` panicked the freshness arithmetic: the object
/// could not be served. Lifetimes (and ages) are clamped to 2^31 seconds ("infinity"); an
/// `Age` as large as that makes the response stale on arrival (RFC 9111 section 4.2.3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_max_age_is_clamped_and_served() {
    let origin = ScriptedOrigin::start().await;
    origin.route(
        "/forever.js",
        Route::ok("forever")
            .header(
                "cache-control",
                "max-age=18446744073709551615, stale-while-revalidate=18446744073709551615",
            )
            .header("age", "1"),
    );
    origin.route(
        "/ancient.js",
        Route::ok("ancient")
            .header("cache-control", "max-age=18446744073709551615")
            .header("age", "18446744073709551615"),
    );
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let c = client(&["assets"], &[]);
    let url = edge_url(&edge, "assets", "/forever.js");
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        cache_status(&r).contains("fwd=miss"),
        "{}",
        cache_status(&r)
    );
    assert_eq!(r.text().await.unwrap(), "forever");
    // (A request right after the last byte may still join the fill before it is stored.)
    let mut status = String::new();
    for _ in 0..50 {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        status = cache_status(&r);
        assert_eq!(r.text().await.unwrap(), "forever");
        if status.contains("hit") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ttl = ttl_of(&status).unwrap();
    assert!(ttl > 0 && ttl <= 1 << 31, "{status}");
    assert_eq!(origin.hits(), 1);
    let ancient = edge_url(&edge, "assets", "/ancient.js");
    for _ in 0..2 {
        let r = c.get(&ancient).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(!cache_status(&r).contains("hit"), "{}", cache_status(&r));
        assert_eq!(r.text().await.unwrap(), "ancient");
    }
    assert_eq!(origin.hits(), 3);
    edge.stop().await;
}

/// Medium 8: the key used the decoded path while the origin got the raw one, so
/// `/img%2Fa.png` was stored as `/img/a.png`. The origin is now asked for what the key names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_is_asked_for_the_resource_the_key_names() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/img/a.png", Route::ok("a.png"));
    origin.route("/img%2Fa.png", Route::ok("not the same object"));
    origin.route("/app.js", Route::ok("app"));
    let edge = start_edge(&http_origin_config(
        &origin.url(),
        &(space("assets", "") + &space("noquery", "query = \"ignore\"")),
    ))
    .await;
    let c = client(&["assets", "noquery"], &[]);
    let encoded = c
        .get(edge_url(&edge, "assets", "/img%2Fa.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(encoded.text().await.unwrap(), "a.png");
    let plain = c
        .get(edge_url(&edge, "assets", "/img/a.png"))
        .send()
        .await
        .unwrap();
    assert!(cache_status(&plain).contains("hit"));
    assert_eq!(plain.text().await.unwrap(), "a.png");
    // A query the key ignores is not sent either: the stored response is the key's resource.
    let r = c
        .get(edge_url(&edge, "noquery", "/app.js?v=evil"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "app");
    let paths: Vec<String> = origin
        .seen()
        .into_iter()
        .map(|s| s.path_and_query)
        .collect();
    assert_eq!(paths, ["/img/a.png", "/app.js"]);
    edge.stop().await;
}

/// Medium 10: the combined log wrote the request line with unescaped `"` (a client could
/// forge fields) and both logs wrote presigned signatures and credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_fields_are_escaped_and_signatures_redacted() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/a", Route::ok("a"));
    let dir = tempfile::tempdir().unwrap();
    for format in ["combined", "json"] {
        let log = dir.path().join(format!("{format}.log"));
        let mut config = crate::common::process::spawn_edge(&format!(
            r#"
[pop]
name = "log-pop"
[listen]
http = "127.0.0.1:{{http}}"
admin = "127.0.0.1:{{admin}}"
[cache]
disk = "0"
[origin]
kind = "http"
url = "{origin}"
[[space]]
name = "assets"
region = "local"
[log]
access = "{format}"
access_path = "{log}"
"#,
            origin = origin.url(),
            log = log.display()
        ));
        let addr = format!("127.0.0.1:{}", config.http_port).parse().unwrap();
        let forged = raw_request(
            addr,
            b"GET /a?forged HTTP/1.1\r\nHost: assets.local.cdn.localhost\r\nReferer: r\" 200 1 \"-\r\nUser-Agent: ua\" host=forged\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(raw_status(&forged), 200, "{forged}");
        let presigned = raw_request(
            addr,
            b"GET /a?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDSECRET%2F20240101&X-Amz-Date=20990101T000000Z&X-Amz-Expires=60&X-Amz-Signature=deadbeefsignature HTTP/1.1\r\nHost: assets.local.cdn.localhost\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(raw_status(&presigned), 200, "{presigned}");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let text = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.lines().count() >= 2 || std::time::Instant::now() > deadline {
                break text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        config.kill();
        assert!(!text.contains("deadbeefsignature"), "{text}");
        assert!(!text.contains("AKIDSECRET"), "{text}");
        assert!(text.contains("X-Amz-Signature=REDACTED"), "{text}");
        if format == "combined" {
            let forged_line = text.lines().find(|l| l.contains("forged")).unwrap();
            // Exactly the quotes the format writes: request, referer, user agent, host, cache.
            assert_eq!(forged_line.matches('"').count(), 10, "{forged_line}");
            assert!(forged_line.contains(r"ua\x22 host=forged"), "{forged_line}");
        } else {
            for line in text.lines() {
                let json = line
                    .find('{')
                    .map(|at| &line[at..])
                    .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok());
                assert!(json.is_some(), "{line}");
            }
        }
    }
}
