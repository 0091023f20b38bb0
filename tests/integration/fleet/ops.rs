//! Operating a PoP: Prometheus metrics, SIGHUP reloads, the example fleet configs.

use std::time::Duration;

use crate::common::origin::{Route, ScriptedOrigin};
use crate::common::process::{free_port, spawn_edge_in};
use crate::common::{cache_status, client, http_origin_config, space, start_edge};

#[tokio::test]
async fn metrics_are_prometheus_text_with_real_values() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/m.txt", Route::ok("metrics"));
    let edge = start_edge(&http_origin_config(&origin.url(), &space("assets", ""))).await;
    let c = client(&["assets"], &[]);
    let url = format!(
        "http://assets.local.cdn.localhost:{}/m.txt",
        edge.http_addr.unwrap().port()
    );
    for _ in 0..3 {
        c.get(&url).send().await.unwrap().bytes().await.unwrap();
    }
    let text = c
        .get(format!("http://{}/metrics", edge.admin_addr.unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(
        value(
            "edge_requests_total",
            &[("cache", "miss"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "edge_requests_total",
            &[("cache", "hit"), ("status", "200")]
        ),
        2.0
    );
    assert_eq!(
        value("edge_origin_fetches_total", &[("result", "response")]),
        1.0
    );
    assert!((value("edge_cache_hit_ratio", &[]) - 2.0 / 3.0).abs() < 1e-9);
    assert!(value("edge_cache_memory_bytes", &[]) > 0.0);
    assert!(value("edge_response_bytes_total", &[]) >= 21.0);
    // The generated certificate for the region wildcard: valid for a while yet.
    let expiry = value(
        "edge_certificate_expiry_seconds",
        &[("name", "*.local.cdn.localhost")],
    );
    assert!(expiry > 3600.0, "certificate expiry gauge: {expiry}");

    // Purge without a valid token changes nothing; errors are JSON.
    let r = c
        .delete(format!(
            "http://{}/v1/spaces/assets/cache",
            edge.admin_addr.unwrap()
        ))
        .bearer_auth("wrong-token")
        .json(&serde_json::json!({ "files": ["*"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].is_string());
    assert!(cache_status(&c.get(&url).send().await.unwrap()).contains("hit"));
    let r = c
        .delete(format!(
            "http://{}/v1/spaces/nope/cache",
            edge.admin_addr.unwrap()
        ))
        .bearer_auth("test-purge-token")
        .json(&serde_json::json!({ "files": ["*"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .delete(format!(
            "http://{}/v1/spaces/assets/cache",
            edge.admin_addr.unwrap()
        ))
        .bearer_auth("test-purge-token")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    for path in ["/healthz", "/readyz"] {
        let r = c
            .get(format!("http://{}{path}", edge.admin_addr.unwrap()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_spaces_without_dropping_connections() {
    let origin = ScriptedOrigin::start().await;
    origin.route("/r.txt", Route::ok("reloaded"));
    let base = format!(
        "[listen]\nhttp = \"127.0.0.1:{{http}}\"\nadmin = \"127.0.0.1:{{admin}}\"\n[origin]\nkind = \"http\"\nurl = \"{}\"\n[[space]]\nname = \"assets\"\n",
        origin.url()
    );
    let dir = tempfile::tempdir().unwrap();
    let pop = spawn_edge_in(dir.path(), &base, free_port(), free_port());
    // One keep-alive connection, used before and after the reload.
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .resolve("assets.local.cdn.localhost", "127.0.0.1:0".parse().unwrap())
        .resolve("added.local.cdn.localhost", "127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap();
    let url = |space: &str| format!("http://{space}.local.cdn.localhost:{}/r.txt", pop.http_port);
    assert_eq!(c.get(url("assets")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(url("added")).send().await.unwrap().status(), 404);

    let config = std::fs::read_to_string(&pop.config).unwrap();
    std::fs::write(
        &pop.config,
        format!("{config}\n[[space]]\nname = \"added\"\n"),
    )
    .unwrap();
    let kill = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &pop.child.id().to_string()])
            .status()
            .unwrap()
    };
    assert!(kill("-HUP").success());
    let mut served = false;
    for _ in 0..50 {
        if c.get(url("added")).send().await.unwrap().status() == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "the new space is served after SIGHUP");
    assert_eq!(c.get(url("assets")).send().await.unwrap().status(), 200);

    // A broken file is refused and the running config stays.
    std::fs::write(&pop.config, "[listen\n").unwrap();
    assert!(kill("-HUP").success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(c.get(url("added")).send().await.unwrap().status(), 200);
}

#[test]
fn example_fleet_configs_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet");
    for name in ["origin", "shield", "edge-a", "edge-b"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge"))
            .args(["check-config", "--config", &format!("{dir}/{name}.toml")])
            .env("FLEET_PURGE_TOKEN", "fleet-purge-token")
            .env("FLEET_ORIGIN_SECRET", "fleet-origin-secret")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("fleet-purge-token"),
            "secrets are masked"
        );
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge"))
        .args(["check-config", "--config", &format!("{dir}/shield.toml")])
        .env_remove("FLEET_PURGE_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("purge.token_env") && stderr.lines().count() == 1,
        "{stderr}"
    );
}
