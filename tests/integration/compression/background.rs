//! Bodies too large to code while a client waits: their misses stream the identity, and the
//! coding is made in the background, once, then served from the cache.

use std::time::{Duration, Instant};

use super::{decode, get, js_origin, script};
use crate::common::origin::ScriptedOrigin;
use crate::common::{client, edge_url, http_origin_config, space, start_edge};

#[tokio::test]
async fn large_bodies_are_sent_as_identity_until_their_coding_is_made_in_the_background() {
    let origin = ScriptedOrigin::start().await;
    // Over `cache::coded::INLINE_MAX` (32 KiB).
    let original = script(160 << 10, 11);
    js_origin(&origin, "/big.js", original.clone(), "\"big\"");
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let c = client(&["assets"], &[]);
    let url = edge_url(&edge, "assets", "/big.js");

    // The miss streams the identity (with `Vary: Accept-Encoding`, checked by `get`).
    let (coding, body, _, status) = get(&c, &url, "br").await;
    assert_eq!(coding, "");
    assert!(status.contains("miss"), "{status}");
    assert_eq!(body, original);

    // Hits start the coding; until it is made they get the identity, then the variant.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (body, status) = loop {
        let (coding, body, _, status) = get(&c, &url, "br").await;
        assert!(status.contains("hit"), "{status}");
        if coding == "br" {
            break (body, status);
        }
        assert_eq!(coding, "", "{status}");
        assert_eq!(body, original);
        assert!(Instant::now() < deadline, "br never made in the background");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(decode("br", &body), original, "{status}");
    assert!(body.len() < original.len() / 4, "br: {}", body.len());
    let (coding, again, _, _) = get(&c, &url, "br").await;
    assert_eq!(
        (coding.as_str(), &again),
        ("br", &body),
        "made once, then kept"
    );
    assert_eq!(origin.hits(), 1);
    edge.stop().await;
}
