//! The spaces API against bad input, tokens without the scope, and concurrent edits from two
//! PoPs sharing one origin.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::{ADMIN_TOKEN, READ_TOKEN, call, control_sections};
use crate::common::s3::{ACCESS, SECRET, origin_user};
use crate::common::{TestEdge, start_edge};

pub(super) fn embedded_pop(dir: &std::path::Path) -> String {
    format!(
        "[pop]\nname = \"a\"\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [origin]\nkind = \"embedded\"\ndata_dir = \"{}\"\n{}{}[[space]]\nname = \"assets\"\n",
        dir.join("origin").display(),
        origin_user(),
        control_sections(&[]).replace("poll_interval = \"1s\"", "poll_interval = \"200ms\"")
    )
}

/// [`embedded_pop`] reaching the embedded origin of another PoP at `origin` as an S3 origin.
pub(super) fn s3_pop(dir: &std::path::Path, origin: std::net::SocketAddr) -> String {
    embedded_pop(dir).replace(
        &format!(
            "[origin]\nkind = \"embedded\"\ndata_dir = \"{}\"\n{}",
            dir.join("origin").display(),
            origin_user()
        ),
        &format!(
            "[origin]\nkind = \"s3\"\nendpoint = \"http://{origin}\"\naccess_key = \"{ACCESS}\"\nsecret_key = \"{SECRET}\"\n"
        ),
    )
}

pub(super) fn admin(edge: &TestEdge) -> String {
    format!("http://{}", edge.admin_addr.unwrap())
}

async fn names(c: &reqwest::Client, edge: &TestEdge) -> Vec<String> {
    let (status, listed) = call(c, &admin(edge), Method::GET, "/v1/spaces", None).await;
    assert_eq!(status, 200);
    listed["spaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&embedded_pop(dir.path())).await;
    let c = reqwest::Client::new();
    let url = format!("{}/v1/spaces", admin(&edge));
    let admin_url = admin(&edge);
    let post = |body: Value| call(&c, &admin_url, Method::POST, "/v1/spaces", Some(body));

    for (body, field) in [
        (json!({"name": "pics", "colour": "red"}), "colour"),
        (json!({"name": "pics", "ttl": "soon"}), "ttl"),
        (json!({"name": "pics", "ttl": 60}), "ttl"),
        (json!({"name": "Pics!"}), "name"),
        (json!({"name": "pics", "bucket": "x"}), "bucket"),
        (
            json!({"name": "pics", "custom_domain": "not a host"}),
            "custom_domain",
        ),
        (json!({"name": "pics", "query": "sometimes"}), "query"),
        // The fleet's private state is never served.
        (
            json!({"name": "pics", "bucket": "edge-state", "origin_auth": "signed"}),
            "bucket",
        ),
        (json!({"name": "pics", "bucket": "edge-acme"}), "bucket"),
        (
            json!({"name": "pics", "custom_domain": "127.0.0.1"}),
            "custom_domain",
        ),
        // The same address as a fully qualified name (the router drops the final dot).
        (
            json!({"name": "pics", "custom_domain": "127.0.0.1."}),
            "custom_domain",
        ),
        (
            json!({"name": "pics", "certificate": "acme", "custom_domain": "p.example"}),
            "certificate",
        ),
    ] {
        let (status, reply) = post(body.clone()).await;
        assert_eq!(status, 400, "{body}: {reply}");
        let message = reply["error"].as_str().unwrap();
        assert!(message.starts_with(field), "{body}: {message}");
    }
    let oversized = json!({"name": "pics", "targeted": vec!["x-a"; 20_000]});
    let (status, reply) = post(oversized).await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().starts_with("body"),
        "{reply}"
    );
    let r = c
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(names(&c, &edge).await, ["assets"], "nothing was created");

    // Tokens: none, unknown, and one without the scope.
    let r = c
        .post(&url)
        .json(&json!({"name": "pics"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(&url)
        .bearer_auth("not-a-token-at-all")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(&url)
        .bearer_auth(READ_TOKEN)
        .json(&json!({"name": "pics"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c.get(&url).bearer_auth(READ_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200, "read may list");
    assert_eq!(
        r.headers()["cache-control"],
        "no-store",
        "admin answers are never stored"
    );

    // A good one, then the same name again, and one taking a config space's name.
    let (status, reply) =
        post(json!({"name": "pics", "ttl": "10m", "query": {"allow": ["w"]}})).await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["query"], json!({"allow": ["w"]}));
    assert_eq!(post(json!({"name": "pics"})).await.0, 409);
    assert_eq!(post(json!({"name": "assets"})).await.0, 409);
    let (status, reply) = call(
        &c,
        &admin(&edge),
        Method::PATCH,
        "/v1/spaces/pics",
        Some(json!({"ttl": "later"})),
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    let (_, space) = call(&c, &admin(&edge), Method::GET, "/v1/spaces/pics", None).await;
    assert_eq!(space["ttl"], "10m", "a refused edit changes nothing");
    assert_eq!(
        call(&c, &admin(&edge), Method::GET, "/v1/spaces/nope", None)
            .await
            .0,
        404
    );
    assert_eq!(
        call(&c, &admin(&edge), Method::DELETE, "/v1/spaces/nope", None)
            .await
            .0,
        404
    );
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_from_two_pops_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = start_edge(&embedded_pop(dir.path())).await;
    let b_config = s3_pop(dir.path(), a.origin_addr.unwrap());
    let b = start_edge(&b_config).await;
    let c = reqwest::Client::new();
    let (admin_a, admin_b) = (admin(&a), admin(&b));

    // Two creates of one name race: one wins, the other is told it exists.
    let (first, second) = tokio::join!(
        call(
            &c,
            &admin_a,
            Method::POST,
            "/v1/spaces",
            Some(json!({"name": "race"}))
        ),
        call(
            &c,
            &admin_b,
            Method::POST,
            "/v1/spaces",
            Some(json!({"name": "race"}))
        ),
    );
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{first:?} {second:?}");

    // Edits of different fields from both PoPs at once: every one lands, none is lost.
    let mut edits = Vec::new();
    for i in 1..=4 {
        let (c1, a, b) = (c.clone(), admin_a.clone(), admin_b.clone());
        edits.push(tokio::spawn(async move {
            call(
                &c1,
                &a,
                Method::PATCH,
                "/v1/spaces/race",
                Some(json!({"ttl": format!("{i}m")})),
            )
            .await
        }));
        let c = c.clone();
        edits.push(tokio::spawn(async move {
            let domain = format!("d{i}.example.com");
            call(
                &c,
                &b,
                Method::PATCH,
                "/v1/spaces/race",
                Some(json!({"custom_domain": domain})),
            )
            .await
        }));
    }
    for edit in edits {
        let (status, reply) = edit.await.unwrap();
        assert_eq!(status, 200, "{reply}");
    }
    // Both PoPs end with both fields set (each PoP reads the other's writes by polling).
    let started = Instant::now();
    for admin in [&admin_a, &admin_b] {
        loop {
            let (_, space) = call(&c, admin, Method::GET, "/v1/spaces/race", None).await;
            let ttl_set = space["ttl"].as_str().is_some_and(|t| t.ends_with('m'));
            let domain_set = space["custom_domain"]
                .as_str()
                .is_some_and(|d| d.ends_with(".example.com"));
            if ttl_set && domain_set {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{admin}: {space}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    a.stop().await;
    b.stop().await;
}
