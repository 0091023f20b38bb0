//! Access keys limited to buckets: made over the admin API of either of two PoP processes (one
//! running the embedded origin, one in front of it as `kind = "s3"`), used with s3cmd at the
//! origin within their grants, refused outside them and, after a delete, refused within a
//! second; the CLI; the 409 in front of a foreign S3 origin; bad input.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use reqwest::Method;
use serde_json::{Value, json};

use super::{READ_TOKEN, call, control_sections};
use crate::common::process::{EdgeProcess, free_port, spawn_edge_in};
use crate::common::s3::{ACCESS, S3cmd, SECRET, origin_user};
use crate::common::start_edge;

/// A PoP process: the first runs the embedded origin on `origin_port`, the other reaches it as
/// an S3 origin and says that origin enforces keys.
fn pop_config(name: &str, origin_port: u16, embedded: bool, peers: &[u16], dir: &Path) -> String {
    let config = super::pop_config(name, origin_port, embedded, peers, dir);
    if embedded {
        return config;
    }
    config.replace("[control]\n", "[control]\norigin_enforces_keys = true\n")
}

/// s3cmd signing with an API-made key.
fn s3cmd_as(dir: &Path, origin: SocketAddr, key: &Value) -> std::path::PathBuf {
    let config = dir.join(format!("s3cfg-{}", key["access_key"].as_str().unwrap()));
    std::fs::write(
        &config,
        format!(
            "[default]\naccess_key = {}\nsecret_key = {}\nhost_base = {origin}\nhost_bucket = {origin}\n\
             use_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n",
            key["access_key"].as_str().unwrap(),
            key["secret_key"].as_str().unwrap()
        ),
    )
    .unwrap();
    config
}

/// Runs s3cmd with `config`; (success, stdout + stderr).
fn s3cmd(config: &Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("s3cmd")
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .expect("s3cmd is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The status of a GET of `path` at the origin, SigV4-signed with `key`.
async fn signed_get(c: &reqwest::Client, origin: SocketAddr, key: &Value, path: &str) -> u16 {
    let signer = edge::origin::Signer::new(
        key["access_key"].as_str().unwrap(),
        key["secret_key"].as_str().unwrap(),
        "us-east-1",
    );
    let mut request = http::Request::get(format!("http://{origin}{path}"))
        .header(http::header::HOST, origin.to_string())
        .body(())
        .unwrap();
    signer.sign(&mut request, SystemTime::now()).unwrap();
    let mut outgoing = c.get(format!("http://{origin}{path}"));
    for (name, value) in request.headers() {
        outgoing = outgoing.header(name, value);
    }
    outgoing
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Polls until a signed GET answers `want`; how long that took.
async fn until_status(
    c: &reqwest::Client,
    origin: SocketAddr,
    key: &Value,
    path: &str,
    want: u16,
) -> Duration {
    let started = Instant::now();
    loop {
        let status = signed_get(c, origin, key, path).await;
        if status == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "GET {path} still {status}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn key_cli(admin: &str, args: &[&str]) -> (bool, String) {
    super::edge_cli("key", admin, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_on_either_pop_works_within_its_grants_and_stops_within_a_second_of_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let origin_port = free_port();
    let origin: SocketAddr = ([127, 0, 0, 1], origin_port).into();
    let ports: Vec<(u16, u16)> = (0..2).map(|_| (free_port(), free_port())).collect();
    let mut pops: Vec<EdgeProcess> = Vec::new();
    for (i, (http, admin)) in ports.iter().enumerate() {
        let peer = ports[1 - i].1;
        let pop_dir = dir.path().join(format!("pop{i}"));
        let config = pop_config(&format!("pop-{i}"), origin_port, i == 0, &[peer], &pop_dir);
        pops.push(spawn_edge_in(&pop_dir, &config, *http, *admin));
    }
    let (embedded_pop, s3_pop) = (pops[0].admin_url(), pops[1].admin_url());
    let c = reqwest::Client::new();

    // The origin's admin user fills `assets` (the config space's bucket) and `other`.
    let admin_s3 = S3cmd::new(dir.path(), origin);
    let file = dir.path().join("a.txt");
    std::fs::write(&file, "asset").unwrap();
    let file = file.to_str().unwrap();
    admin_s3.run(&["--bucket-location=us-east-1", "mb", "s3://other"]);
    admin_s3.run(&["put", file, "s3://assets/a.txt"]);
    admin_s3.run(&["put", file, "s3://other/a.txt"]);

    // A read key made through the PoP in front of the origin.
    let started = Instant::now();
    let (status, key) = call(
        &c,
        &s3_pop,
        Method::POST,
        "/v1/keys",
        Some(json!({"name": "ci", "grants": [{"bucket": "assets", "access": "read"}]})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let access_key = key["access_key"].as_str().unwrap().to_owned();
    assert_eq!(access_key.len(), 20);
    assert!(
        access_key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    );
    assert_eq!(key["secret_key"].as_str().unwrap().len(), 40);
    assert_eq!(
        key["grants"],
        json!([{"bucket": "assets", "access": "read"}])
    );
    let usable = until_status(&c, origin, &key, "/assets/a.txt", 200).await;
    eprintln!(
        "key made on the s3 PoP usable at the origin {usable:?} after its 201 ({:?} after the request)",
        started.elapsed()
    );

    // With a real client: reads its bucket, nothing else.
    let reader = s3cmd_as(dir.path(), origin, &key);
    let (ok, out) = s3cmd(&reader, &["get", "s3://assets/a.txt", "-"]);
    assert!(ok && out.contains("asset"), "{out}");
    let (ok, out) = s3cmd(&reader, &["ls", "s3://assets"]);
    assert!(ok && out.contains("s3://assets/a.txt"), "{out}");
    for args in [
        &["ls", "s3://other"][..],
        &["get", "s3://other/a.txt", "-"],
        &["put", file, "s3://assets/b.txt"],
        &["del", "s3://assets/a.txt"],
        &["mb", "s3://made-by-key"],
    ] {
        let (ok, out) = s3cmd(&reader, args);
        // A HEAD's 403 has no body to name the code.
        assert!(
            !ok && (out.contains("AccessDenied") || out.contains("403 (Forbidden)")),
            "{args:?}: {out}"
        );
    }

    // Listed on the other PoP, never with a secret.
    let (status, listed) = call(&c, &embedded_pop, Method::GET, "/v1/keys", None).await;
    assert_eq!(status, 200, "{listed}");
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{listed}");
    assert_eq!(keys[0]["access_key"], access_key.as_str());
    assert_eq!(keys[0]["name"], "ci");
    assert!(
        !listed
            .to_string()
            .contains(key["secret_key"].as_str().unwrap())
    );

    // A readwrite key made on the PoP that runs the origin works on the first request.
    let (status, writer) = call(
        &c,
        &embedded_pop,
        Method::POST,
        "/v1/keys",
        Some(json!({"name": "deploy", "grants": [{"bucket": "assets", "access": "readwrite"}]})),
    )
    .await;
    assert_eq!(status, 201, "{writer}");
    let writer_cfg = s3cmd_as(dir.path(), origin, &writer);
    let (ok, out) = s3cmd(&writer_cfg, &["put", file, "s3://assets/b.txt"]);
    assert!(ok, "{out}");
    let (ok, out) = s3cmd(&writer_cfg, &["put", file, "s3://other/b.txt"]);
    assert!(!ok && out.contains("AccessDenied"), "{out}");

    // Deleted on the s3 PoP: the origin refuses the key within a second.
    let started = Instant::now();
    let (status, _) = call(
        &c,
        &s3_pop,
        Method::DELETE,
        &format!("/v1/keys/{access_key}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let refused = until_status(&c, origin, &key, "/assets/a.txt", 403).await;
    let total = started.elapsed();
    eprintln!(
        "key deleted on the s3 PoP refused by the origin {refused:?} after the 204 ({total:?} after the request)"
    );
    assert!(total < Duration::from_secs(1), "{total:?}");
    let (ok, out) = s3cmd(&reader, &["ls", "s3://assets"]);
    assert!(!ok && out.contains("InvalidAccessKeyId"), "{out}");

    // Deleted on the origin's PoP: refused from the next request.
    let writer_key = writer["access_key"].as_str().unwrap();
    let (status, _) = call(
        &c,
        &embedded_pop,
        Method::DELETE,
        &format!("/v1/keys/{writer_key}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(signed_get(&c, origin, &writer, "/assets/a.txt").await, 403);
    let (status, reply) = call(
        &c,
        &s3_pop,
        Method::DELETE,
        &format!("/v1/keys/{writer_key}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "{reply}");
}

/// A PoP in-process with the embedded origin.
fn embedded_pop(dir: &Path) -> String {
    format!(
        "[pop]\nname = \"a\"\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [origin]\nkind = \"embedded\"\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{}{}[[space]]\nname = \"assets\"\n",
        dir.join("origin").display(),
        origin_user(),
        control_sections(&[])
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_api_scopes_bad_input_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&embedded_pop(dir.path())).await;
    let admin = format!("http://{}", edge.admin_addr.unwrap());
    let c = reqwest::Client::new();
    let url = format!("{admin}/v1/keys");
    let good = json!({"name": "ci", "grants": [{"bucket": "assets", "access": "read"}]});

    // Tokens: none 401, read-only may list but not create.
    let r = c.post(&url).json(&good).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(&url)
        .bearer_auth(READ_TOKEN)
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c.get(&url).bearer_auth(READ_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);

    for (body, field) in [
        (
            json!({"name": "ci", "grants": [], "colour": "red"}),
            "colour",
        ),
        (json!({"name": "", "grants": good["grants"]}), "name"),
        (json!({"name": "ci", "grants": []}), "grants"),
        (
            json!({"name": "ci", "grants": [{"bucket": "Bad_Bucket", "access": "read"}]}),
            "grants[0].bucket",
        ),
        (
            json!({"name": "ci", "grants": [{"bucket": "edge-state", "access": "read"}]}),
            "grants[0].bucket",
        ),
        (
            json!({"name": "ci", "grants": [{"bucket": "assets", "access": "admin"}]}),
            "grants[0].access",
        ),
        (
            json!({"name": "ci", "grants": [{"bucket": "assets", "access": "read", "x": 1}]}),
            "grants[0].x",
        ),
    ] {
        let (status, reply) = call(&c, &admin, Method::POST, "/v1/keys", Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {reply}");
        let message = reply["error"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{field}:")),
            "{body}: {message}"
        );
    }
    let (status, reply) = call(&c, &admin, Method::GET, "/v1/keys", None).await;
    assert_eq!((status, reply["keys"].as_array().unwrap().len()), (200, 0));
    let (status, _) = call(
        &c,
        &admin,
        Method::DELETE,
        "/v1/keys/EKNOSUCHKEY000000000",
        None,
    )
    .await;
    assert_eq!(status, 404);

    // The CLI: create (secret printed once), list as a table and as JSON, delete.
    let (ok, out) = key_cli(
        &admin,
        &["create", "ci", "--grant", "assets:read", "--json"],
    );
    assert!(ok, "{out}");
    let made: Value = serde_json::from_str(out.trim()).unwrap();
    let access_key = made["access_key"].as_str().unwrap();
    assert_eq!(made["secret_key"].as_str().unwrap().len(), 40);
    let (ok, table) = key_cli(&admin, &["list"]);
    assert!(
        ok && table.contains("ACCESS_KEY")
            && table.contains(access_key)
            && table.contains("assets:read"),
        "{table}"
    );
    let (ok, out) = key_cli(&admin, &["create", "w", "--grant", "assets:write"]);
    assert!(
        !ok && out.contains("400") && out.contains("access"),
        "{out}"
    );
    let (ok, out) = key_cli(&admin, &["delete", access_key]);
    assert!(ok, "{out}");
    let (ok, out) = key_cli(&admin, &["delete", access_key]);
    assert!(!ok && out.contains("404"), "{out}");
}

#[tokio::test]
async fn the_key_api_answers_409_in_front_of_a_foreign_s3_origin() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[pop]\nname = \"a\"\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [origin]\nkind = \"s3\"\nendpoint = \"http://127.0.0.1:9\"\naccess_key = \"AK\"\nsecret_key = \"SK-0123456789\"\n\
         {}[control]\nstate_dir = \"{}\"\n[[space]]\nname = \"assets\"\n",
        control_sections(&[]).split("[control]").next().unwrap(),
        dir.path().join("state").display()
    );
    let edge = start_edge(&config).await;
    let admin = format!("http://{}", edge.admin_addr.unwrap());
    let c = reqwest::Client::new();
    let good = json!({"name": "ci", "grants": [{"bucket": "assets", "access": "read"}]});
    let (status, reply) = call(&c, &admin, Method::POST, "/v1/keys", Some(good)).await;
    assert_eq!(status, 409, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("own tools"),
        "{reply}"
    );
    let (status, _) = call(&c, &admin, Method::GET, "/v1/keys", None).await;
    assert_eq!(status, 409);
    assert!(!dir.path().join("state").join("keys").exists());
}

/// Without peers to tell, the PoP running the origin learns of keys made or deleted on another
/// PoP by polling: within a poll interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_peers_keys_reach_the_origin_within_a_poll_interval() {
    let dir = tempfile::tempdir().unwrap();
    let poll = "poll_interval = \"200ms\"";
    let first = start_edge(&embedded_pop(dir.path()).replace("poll_interval = \"1s\"", poll)).await;
    let origin = first.origin_addr.unwrap();
    let second = start_edge(&format!(
        "[pop]\nname = \"b\"\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [origin]\nkind = \"s3\"\nendpoint = \"http://{origin}\"\naccess_key = \"{ACCESS}\"\nsecret_key = \"{SECRET}\"\n\
         {}origin_enforces_keys = true\n[[space]]\nname = \"assets\"\n",
        control_sections(&[]).replace("poll_interval = \"1s\"", poll)
    ))
    .await;
    let admin = format!("http://{}", second.admin_addr.unwrap());
    let c = reqwest::Client::new();
    let (status, key) = call(
        &c,
        &admin,
        Method::POST,
        "/v1/keys",
        Some(json!({"name": "ci", "grants": [{"bucket": "assets", "access": "read"}]})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    // `assets` is empty: a listing the key may make answers 200.
    let usable = until_status(&c, origin, &key, "/assets", 200).await;
    eprintln!("key usable at the origin by polling {usable:?} after its 201 (poll every 200ms)");
    assert!(usable < Duration::from_millis(1000), "{usable:?}");
    let access_key = key["access_key"].as_str().unwrap();
    let (status, _) = call(
        &c,
        &admin,
        Method::DELETE,
        &format!("/v1/keys/{access_key}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let refused = until_status(&c, origin, &key, "/assets", 403).await;
    eprintln!("key refused at the origin by polling {refused:?} after its 204 (poll every 200ms)");
    assert!(refused < Duration::from_millis(1000), "{refused:?}");
}
