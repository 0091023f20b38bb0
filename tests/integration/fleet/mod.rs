//! Several PoPs in front of one origin: purge fan-out (with a peer down), the shield tier,
//! metrics and the admin API.

mod ops;
mod shield;

use std::time::Duration;

use crate::common::origin::{Route, ScriptedOrigin};
use crate::common::process::{EdgeProcess, free_port, spawn_edge_in};
use crate::common::{cache_status, client, http_origin_config, space, start_edge};

pub(super) const TOKEN: &str = "fleet-purge-token";

pub(super) fn pop_config(
    name: &str,
    origin: &str,
    peers: &[u16],
    parent: Option<(u16, u16)>,
) -> String {
    let peers: Vec<String> = peers
        .iter()
        .map(|p| format!("\"http://127.0.0.1:{p}\""))
        .collect();
    let parent = parent
        .map(|(http, admin)| format!("[parent]\nurl = \"http://127.0.0.1:{http}\"\nadmin = \"http://127.0.0.1:{admin}\"\n"))
        .unwrap_or_default();
    format!(
        r#"
[pop]
name = "{name}"
[listen]
http = "127.0.0.1:{{http}}"
admin = "127.0.0.1:{{admin}}"
[origin]
kind = "http"
url = "{origin}"
[purge]
token = "{TOKEN}"
peers = [{peers}]
timeout = "5s"
state_dir = "state"
{parent}
[[space]]
name = "assets"
"#,
        peers = peers.join(", ")
    )
}

pub(super) async fn get(c: &reqwest::Client, pop: &EdgeProcess, path: &str) -> (String, String) {
    let r = c
        .get(format!(
            "http://assets.local.cdn.localhost:{}{path}",
            pop.http_port
        ))
        .send()
        .await
        .unwrap();
    let status = cache_status(&r);
    (status, r.text().await.unwrap())
}

async fn purge(c: &reqwest::Client, pop: &EdgeProcess, files: &[&str]) -> serde_json::Value {
    let r = c
        .delete(format!("{}/v1/spaces/assets/cache", pop.admin_url()))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "files": files }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_reaches_every_pop_even_one_that_was_down() {
    let origin = ScriptedOrigin::start().await;
    origin.route(
        "/obj.txt",
        Route::ok("version 1").header("cache-control", "max-age=600"),
    );
    let dir = tempfile::tempdir().unwrap();
    let (a_http, a_admin, b_http, b_admin, c_http, c_admin) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let mut pops = vec![
        spawn_edge_in(
            &dir.path().join("a"),
            &pop_config("pop-a", &origin.url(), &[b_admin, c_admin], None),
            a_http,
            a_admin,
        ),
        spawn_edge_in(
            &dir.path().join("b"),
            &pop_config("pop-b", &origin.url(), &[a_admin, c_admin], None),
            b_http,
            b_admin,
        ),
        spawn_edge_in(
            &dir.path().join("c"),
            &pop_config("pop-c", &origin.url(), &[a_admin, b_admin], None),
            c_http,
            c_admin,
        ),
    ];
    let c = client(&["assets"], &[]);
    for pop in &pops {
        get(&c, pop, "/obj.txt").await;
        assert!(get(&c, pop, "/obj.txt").await.0.contains("hit"));
    }
    origin.route(
        "/obj.txt",
        Route::ok("version 2").header("cache-control", "max-age=600"),
    );

    let reply = purge(&c, &pops[0], &["/obj.txt"]).await;
    let statuses: Vec<&str> = reply["pops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["done", "done", "done"], "{reply}");
    for pop in &pops {
        let (status, body) = get(&c, pop, "/obj.txt").await;
        assert!(status.contains("fwd=miss"), "{status}");
        assert_eq!(body, "version 2");
    }

    // One peer is down during the purge and comes back afterwards.
    origin.route(
        "/obj.txt",
        Route::ok("version 3").header("cache-control", "max-age=600"),
    );
    pops[2].kill();
    let reply = purge(&c, &pops[0], &["obj.txt"]).await;
    let pending: Vec<&serde_json::Value> = reply["pops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "pending")
        .collect();
    assert_eq!(pending.len(), 1, "{reply}");
    assert_eq!(pending[0]["pop"], format!("http://127.0.0.1:{c_admin}"));
    pops[2].restart();
    for pop in &pops {
        let (_, body) = get(&c, pop, "/obj.txt").await;
        assert_eq!(body, "version 3", "no PoP serves the purged object");
    }
}

/// The value of an unlabelled metric of `pop`.
pub(super) async fn metric(c: &reqwest::Client, pop: &EdgeProcess, name: &str) -> u64 {
    let text = c
        .get(format!("{}/metrics", pop.admin_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix(name))
        .find_map(|rest| rest.rsplit(' ').next()?.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

/// Issue 11, purge reliability 12 and 13. With the default config (a disk tier, no
/// `purge.state_dir`), a PoP that was down during a purge served the purged object from its
/// disk after it restarted. Now it catches up from its peers' journals before serving, and
/// revalidates disk entries while a peer it could not ask is down. Purge replies name each
/// PoP once, by its `pop.name` when it answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pop_down_during_a_purge_never_serves_it_from_disk_after_restart() {
    let origin = ScriptedOrigin::start().await;
    for path in ["/obj.txt", "/other.txt", "/third.txt"] {
        origin.route(
            path,
            Route::ok("version 1")
                .header("cache-control", "max-age=600")
                .header("etag", "\"v1\""),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let config = |i: usize| {
        let peers: Vec<u16> = (0..3).filter(|&j| j != i).map(|j| ports[j].1).collect();
        pop_config(
            &format!("pop-{}", ["a", "b", "c"][i]),
            &origin.url(),
            &peers,
            None,
        )
        .replace("state_dir = \"state\"\n", "")
    };
    let mut pops: Vec<EdgeProcess> = (0..3)
        .map(|i| {
            spawn_edge_in(
                &dir.path().join(["a", "b", "c"][i]),
                &config(i),
                ports[i].0,
                ports[i].1,
            )
        })
        .collect();
    let c = client(&["assets"], &[]);
    for path in ["/obj.txt", "/other.txt", "/third.txt"] {
        get(&c, &pops[2], path).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while metric(&c, &pops[2], "edge_cache_disk_entries").await < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "pop-c stored its disk entries"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // pop-c is down during a purge taken by pop-b; pop-b then dies too (its retries for
    // pop-c lived in its memory only).
    pops[2].kill();
    origin.route(
        "/obj.txt",
        Route::ok("version 2").header("cache-control", "max-age=600"),
    );
    let reply = purge(&c, &pops[1], &["/obj.txt"]).await;
    let named: Vec<(&str, &str)> = reply["pops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["pop"].as_str().unwrap(), p["status"].as_str().unwrap()))
        .collect();
    let c_admin = format!("http://127.0.0.1:{}", ports[2].1);
    assert_eq!(
        named,
        [
            ("pop-b", "done"),
            ("pop-a", "done"),
            (c_admin.as_str(), "pending")
        ],
        "{reply}"
    );
    pops[1].kill();

    // pop-c comes back: pop-a's journal tells it about the purge before it serves.
    pops[2].restart();
    // (Replayed from pop-a's journal, or revalidated if asked before the replay.)
    let (status, body) = get(&c, &pops[2], "/obj.txt").await;
    assert_eq!(body, "version 2", "{status}");
    assert!(!status.contains("hit"), "{status}");
    // pop-b cannot be asked: what pop-c kept on disk is revalidated, not served as it is.
    let (status, body) = get(&c, &pops[2], "/other.txt").await;
    assert_eq!(body, "version 1");
    assert!(status.contains("fwd=stale; fwd-status=304"), "{status}");

    assert_eq!(
        metric(&c, &pops[2], "edge_cache_disk_revalidating").await,
        1
    );

    // Once pop-b answers, pop-c's disk entries are served as they are again.
    pops[1].restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while metric(&c, &pops[2], "edge_cache_disk_revalidating").await != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "pop-c caught up with pop-b"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = get(&c, &pops[2], "/third.txt").await;
    assert_eq!(body, "version 1");
    assert!(
        status.contains("hit; ttl=") && status.contains("detail=disk"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_cli_reports_every_pop() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/cli.txt", Route::ok("cli"));
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let admin = format!("http://{}", edge.admin_addr.unwrap());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_edge"))
        .args([
            "purge",
            "--admin",
            &admin,
            "--token",
            "test-purge-token",
            "assets",
            "cli.txt",
            "dir/*",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["pops"][0]["status"], "done");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_edge"))
        .args([
            "purge",
            "--admin",
            &admin,
            "--token",
            "bad-token-123",
            "assets",
            "x",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_cross_an_untrusted_network_over_admin_tls() {
    // A private CA for the fleet's admin listeners; the leaf names the loopback address.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let ca_pem = write("ca.pem", ca.pem());
    let cert_pem = write("admin.pem", format!("{}{}", leaf.pem(), ca.pem()));
    let key_pem = write("admin.key", leaf_key.serialize_pem());

    let origin = ScriptedOrigin::start().await;
    origin.route(
        "/t.txt",
        Route::ok("tls purge").header("cache-control", "max-age=600"),
    );
    let admins = [
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    ];
    let ports: Vec<u16> = admins
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    let mut pops = Vec::new();
    for (i, admin) in admins.into_iter().enumerate() {
        let peer = ports[1 - i];
        let config = format!(
            "[pop]\nname = \"tls-{i}\"\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nadmin_tls = true\n\
             [[tls.cert]]\nnames = []\ncert = \"{cert_pem}\"\nkey = \"{key_pem}\"\ndefault = true\n\
             [cache]\ndisk = \"0\"\n[origin]\nkind = \"http\"\nurl = \"{}\"\n\
             [purge]\ntoken = \"{TOKEN}\"\npeers = [\"https://127.0.0.1:{peer}\"]\nca_roots = \"{ca_pem}\"\n\
             [[space]]\nname = \"assets\"\n",
            origin.url()
        );
        let config = edge::config::Config::parse(&config).unwrap();
        let listeners = edge::Listeners {
            http: Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
            admin: Some(admin),
            ..edge::Listeners::default()
        };
        pops.push(edge::start(config, listeners).await.unwrap());
    }
    let c = client(&["assets"], &[]);
    for pop in &pops {
        let url = format!(
            "http://assets.local.cdn.localhost:{}/t.txt",
            pop.http_addr.unwrap().port()
        );
        c.get(&url).send().await.unwrap().bytes().await.unwrap();
        // The client can have the whole body a moment before the fill is stored: a request
        // in that moment joins the finished fill ("collapsed") instead of hitting.
        let mut status = String::new();
        for _ in 0..40 {
            status = cache_status(&c.get(&url).send().await.unwrap());
            if status.contains("hit") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(status.contains("hit"), "{status}");
    }
    let admin_client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let reply: serde_json::Value = admin_client
        .delete(format!(
            "https://127.0.0.1:{}/v1/spaces/assets/cache",
            ports[0]
        ))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "files": ["t.txt"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<&str> = reply["pops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["done", "done"], "{reply}");
    for pop in &pops {
        let url = format!(
            "http://assets.local.cdn.localhost:{}/t.txt",
            pop.http_addr.unwrap().port()
        );
        assert!(cache_status(&c.get(&url).send().await.unwrap()).contains("fwd=miss"));
    }
    // Plain HTTP is not spoken on a TLS admin listener.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{}/healthz", ports[0]))
            .await
            .is_err()
    );
    for pop in pops {
        pop.stop().await;
    }
}
