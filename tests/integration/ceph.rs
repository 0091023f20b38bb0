//! The edge in front of a real Ceph cluster (RADOS Gateway 16.2, started once per run by
//! `scripts/ceph-dev.sh` and shared): objects of every kind, availability when the gateway
//! stops or the keys are wrong, a fleet behind a shield, and the fleet's ACME state on RGW.

mod acme;
mod availability;
mod control;
mod fleet;
mod objects;

use std::net::SocketAddr;

use crate::common::ceph::cluster;

/// The purge token of every PoP here.
const TOKEN: &str = "ceph-purge-token";

/// An edge config in front of the gateway at `endpoint`, with `cache` keys and `spaces`
/// (and any sections after them).
fn config(pop: &str, endpoint: &str, cache: &str, spaces: &str) -> String {
    format!(
        r#"
[pop]
name = "{pop}"
[listen]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"
[cache]
memory = "128MiB"
default_ttl = "1h"
{cache}
{origin}
[purge]
token = "{TOKEN}"
timeout = "5s"
{spaces}
"#,
        origin = cluster().origin_section(endpoint)
    )
}

/// A `[[space]]` named `name` over `bucket`.
fn space(name: &str, bucket: &str, extra: &str) -> String {
    format!("\n[[space]]\nname = \"{name}\"\nbucket = \"{bucket}\"\n{extra}\n")
}

/// The edge URL of `path` (already percent-encoded) in `space` on the PoP listening at `http`.
fn url(http: Option<SocketAddr>, space: &str, path: &str) -> String {
    format!(
        "http://{space}.local.cdn.localhost:{}{path}",
        http.unwrap().port()
    )
}

/// Purges `files` of `space` through the admin API of the PoP at `admin`.
async fn purge(
    c: &reqwest::Client,
    admin: Option<SocketAddr>,
    space: &str,
    files: &[&str],
) -> serde_json::Value {
    let r = c
        .delete(format!("http://{}/v1/spaces/{space}/cache", admin.unwrap()))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "files": files }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}
