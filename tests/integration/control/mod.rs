//! The control plane: spaces created, edited and deleted over the admin API on one PoP and
//! served by every PoP of the fleet (three PoP processes in front of one embedded origin),
//! one that was down included; the CLI; bad input; concurrent edits.

mod certs;
mod figures;
mod input;
mod keys;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::client;
use crate::common::process::{EdgeProcess, free_port, spawn_edge_in};
use crate::common::s3::{ACCESS, S3cmd, SECRET, origin_user};

/// The admin token every PoP of these tests accepts (all scopes).
pub(crate) const ADMIN_TOKEN: &str = "control-admin-token-0123";
/// A token that may only read.
pub(super) const READ_TOKEN: &str = "control-read-token-01234";
const PEER_TOKEN: &str = "control-peer-token-0123";

/// `[admin]`, `[purge]` and `[control]` of a PoP whose peers listen on `peers`.
pub(super) fn control_sections(peers: &[u16]) -> String {
    let peers: Vec<String> = peers
        .iter()
        .map(|p| format!("\"http://127.0.0.1:{p}\""))
        .collect();
    format!(
        "[[admin.tokens]]\nname = \"ops\"\ntoken = \"{ADMIN_TOKEN}\"\n\
         [[admin.tokens]]\nname = \"viewer\"\ntoken = \"{READ_TOKEN}\"\nscopes = [\"read\"]\n\
         [purge]\npeer_token = \"{PEER_TOKEN}\"\npeers = [{}]\ntimeout = \"2s\"\n\
         [control]\npoll_interval = \"1s\"\n",
        peers.join(", ")
    )
}

/// A PoP process: the first one runs the embedded origin on `origin_port`, the others reach
/// it as an S3 origin with the edge user's keys.
pub(super) fn pop_config(
    name: &str,
    origin_port: u16,
    embedded: bool,
    peers: &[u16],
    dir: &Path,
) -> String {
    let origin = if embedded {
        format!(
            "[origin]\nkind = \"embedded\"\nlisten = \"127.0.0.1:{origin_port}\"\ndata_dir = \"{}\"\n{}",
            dir.join("origin").display(),
            origin_user()
        )
    } else {
        format!(
            "[origin]\nkind = \"s3\"\nendpoint = \"http://127.0.0.1:{origin_port}\"\naccess_key = \"{ACCESS}\"\nsecret_key = \"{SECRET}\"\n"
        )
    };
    format!(
        "[pop]\nname = \"{name}\"\n[listen]\nhttp = \"127.0.0.1:{{http}}\"\nadmin = \"127.0.0.1:{{admin}}\"\n\
         [cache]\ndefault_ttl = \"1h\"\n{origin}{}\n[[space]]\nname = \"assets\"\n",
        control_sections(peers)
    )
}

pub(crate) async fn call(
    c: &reqwest::Client,
    admin: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = c
        .request(method, format!("{admin}{path}"))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The status of `GET /a.txt` of space `photos` on `pop`.
async fn photo_status(c: &reqwest::Client, pop: &EdgeProcess) -> u16 {
    c.get(format!(
        "http://photos.local.cdn.localhost:{}/a.txt",
        pop.http_port
    ))
    .send()
    .await
    .map(|r| r.status().as_u16())
    .unwrap_or(0)
}

/// Polls until `pop` answers `want` for the photo; how long that took.
async fn until_photo(
    c: &reqwest::Client,
    pop: &EdgeProcess,
    want: u16,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let status = photo_status(c, pop).await;
        if status == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "PoP on {} still answers {status}, not {want}, after {within:?}",
            pop.http_port
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn cli(admin: &str, args: &[&str]) -> (bool, String) {
    edge_cli("space", admin, args)
}

/// Runs `edge <command> args...` against the admin API at `admin`: (success, output).
pub(super) fn edge_cli(command: &str, admin: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge"))
        .arg(command)
        .args(args)
        .env("EDGE_ADMIN_URL", admin)
        .env("EDGE_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_space_created_on_one_pop_is_served_by_every_pop_even_one_that_was_down() {
    let dir = tempfile::tempdir().unwrap();
    let origin_port = free_port();
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let admins: Vec<u16> = ports.iter().map(|p| p.1).collect();
    let mut pops: Vec<EdgeProcess> = Vec::new();
    for (i, (http, admin)) in ports.iter().enumerate() {
        let peers: Vec<u16> = admins.iter().copied().filter(|p| p != admin).collect();
        let pop_dir = dir.path().join(format!("pop{i}"));
        let config = pop_config(&format!("pop-{i}"), origin_port, i == 0, &peers, &pop_dir);
        pops.push(spawn_edge_in(&pop_dir, &config, *http, *admin));
    }
    let c = client(&["photos", "assets"], &[]);
    let admins_url: Vec<String> = pops.iter().map(EdgeProcess::admin_url).collect();
    let admin = |i: usize| admins_url[i].clone();
    assert_eq!(photo_status(&c, &pops[1]).await, 404, "no such space yet");

    // A PoP down while the space is made.
    pops[2].kill();
    let started = Instant::now();
    let (status, created) = call(
        &c,
        &admin(0),
        reqwest::Method::POST,
        "/v1/spaces",
        Some(json!({"name": "photos", "ttl": "1h", "origin_auth": "signed"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["source"], "api");
    assert_eq!(created["bucket"], "photos");
    loop {
        let (status, _) = call(
            &c,
            &admin(1),
            reqwest::Method::GET,
            "/v1/spaces/photos",
            None,
        )
        .await;
        if status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "pop-1 never got the space"
        );
    }
    eprintln!(
        "space created on pop-0 and served by pop-1 {:?} after the request was sent",
        started.elapsed()
    );
    // Its bucket was made on the origin: an object goes in, private.
    let s3 = S3cmd::new(dir.path(), ([127, 0, 0, 1], origin_port).into());
    let file = dir.path().join("a.txt");
    std::fs::write(&file, "a photo").unwrap();
    s3.run(&["put", file.to_str().unwrap(), "s3://photos/a.txt"]);
    until_photo(&c, &pops[1], 200, Duration::from_secs(5)).await;

    // The PoP that was down serves it from its first request after the restart.
    pops[2].restart();
    assert_eq!(
        photo_status(&c, &pops[2]).await,
        200,
        "caught up before serving"
    );

    // Listed on every PoP, config spaces read-only.
    let (status, listed) = call(&c, &admin(2), reqwest::Method::GET, "/v1/spaces", None).await;
    assert_eq!(status, 200);
    let names: Vec<(&str, &str)> = listed["spaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["source"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("assets", "config"), ("photos", "api")]);
    for method in [reqwest::Method::PATCH, reqwest::Method::DELETE] {
        let (status, reply) = call(
            &c,
            &admin(1),
            method,
            "/v1/spaces/assets",
            Some(json!({"ttl": "5m"})),
        )
        .await;
        assert_eq!(status, 409, "{reply}");
    }

    // An edit on one PoP, read back on another.
    let (status, edited) = call(
        &c,
        &admin(1),
        reqwest::Method::PATCH,
        "/v1/spaces/photos",
        Some(json!({"ttl": "5m"})),
    )
    .await;
    assert_eq!(
        (status, edited["ttl"].as_str()),
        (200, Some("5m")),
        "{edited}"
    );
    let started = Instant::now();
    loop {
        let (_, space) = call(
            &c,
            &admin(0),
            reqwest::Method::GET,
            "/v1/spaces/photos",
            None,
        )
        .await;
        if space["ttl"] == "5m" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{space}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The CLI lists and deletes; every PoP stops serving the space and drops its entries.
    let (ok, table) = cli(&admin(2), &["list"]);
    assert!(
        ok && table.contains("photos") && table.contains("NAME"),
        "{table}"
    );
    let (ok, json_out) = cli(&admin(2), &["list", "--json"]);
    assert!(ok, "{json_out}");
    let listed: Value = serde_json::from_str(json_out.trim()).unwrap();
    assert_eq!(listed["spaces"].as_array().unwrap().len(), 2);
    let (ok, out) = cli(&admin(1), &["delete", "photos"]);
    assert!(ok, "{out}");
    for pop in &pops {
        until_photo(&c, pop, 404, Duration::from_secs(5)).await;
    }
    let (ok, out) = cli(&admin(1), &["delete", "photos"]);
    assert!(!ok && out.contains("404"), "a second delete fails: {out}");
}
