//! Purge fan-out latency: three PoPs (in one process, each with its own listeners) hold
//! 100,000 cached entries each; a purge of 1,000 of them is sent to one PoP, which forwards
//! it to the two others. Prints the time from request to the reply that all three are done,
//! for a `dir/*` prefix purge and for a cache-tag purge (`{"tags": [...]}`) whose 1,000
//! entries are spread over the whole key space.
//!
//! `cargo run --release --example purge_bench [-- --entries 100000 --prefix 1000 --rounds 20]`
//! (`--prefix` is how many entries each purge reaches, by prefix and then by tag).

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use edge::cache::{Body, CacheKey, Entry, Freshness, Tags, VaryValues};
use edge::config::Config;
use edge::{Listeners, Running};
use http::{HeaderMap, StatusCode};
use tokio::net::TcpListener;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What a round purges: `prefix` entries under `dir{round}/`, or as many tagged
/// `tag{round}` and spread among the others.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Prefix,
    Tag,
}

fn fill(running: &Running, entries: usize, selected: usize, round: usize, kind: Kind) {
    let cache = &running.edge.cache;
    let now = SystemTime::now();
    let tag = format!("tag{round}");
    let stride = (entries / selected.max(1)).max(1);
    for i in 0..entries {
        let chosen = match kind {
            Kind::Prefix => i < selected,
            Kind::Tag => i % stride == 0 && i / stride < selected,
        };
        let dir = if chosen && kind == Kind::Prefix {
            format!("dir{round}")
        } else {
            format!("other{}", i % 97)
        };
        let key = CacheKey::new("assets", &format!("{dir}/object-{i}.png"), "");
        let entry = Entry::new(
            key.clone(),
            StatusCode::OK,
            &HeaderMap::new(),
            Body::Memory(Bytes::from_static(b"x")),
            Freshness {
                response_time: now,
                initial_age: Duration::ZERO,
                ttl_at_store: Duration::from_secs(3600),
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
                hard_expiry: None,
                invalidated_at: None,
            },
            VaryValues::default(),
        );
        let tags = if chosen && kind == Kind::Tag {
            Tags::of(&[tag.as_str(), "product"])
        } else {
            Tags::default()
        };
        cache.insert(entry.with_tags(tags));
    }
    // Let the memory tier finish the housekeeping of 100,000 inserts made in the last
    // instant, as it has long done in a PoP that filled its cache over time: otherwise the
    // purge's first operations pay for it, and the figure measures the fill, not the purge.
    cache.memory_usage();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!(
            "purge_bench [--entries N (100000 per PoP)] [--prefix N (1000 entries purged, \
             by prefix and by tag)] [--rounds N (20 of each)]"
        );
        return Ok(());
    }
    let entries = arg("--entries", 100_000);
    let prefix = arg("--prefix", 1_000);
    let rounds = arg("--rounds", 20);
    let mut admins = Vec::new();
    for _ in 0..3 {
        admins.push(TcpListener::bind("127.0.0.1:0").await?);
    }
    let ports: Vec<u16> = admins
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()?;
    let mut pops = Vec::new();
    for (i, admin) in admins.into_iter().enumerate() {
        let peers: Vec<String> = ports
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| format!("\"http://127.0.0.1:{p}\""))
            .collect();
        let config = Config::parse(&format!(
            "[pop]\nname = \"pop-{i}\"\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
             [cache]\nmemory = \"2GiB\"\ndisk = \"0\"\n[origin]\nkind = \"http\"\nurl = \"http://127.0.0.1:9\"\n\
             [purge]\ntoken = \"bench-purge-token\"\npeers = [{}]\n[[space]]\nname = \"assets\"\n",
            peers.join(", ")
        ))
        .context("bench config")?;
        let listeners = Listeners {
            http: Some(TcpListener::bind("127.0.0.1:0").await?),
            admin: Some(admin),
            ..Listeners::default()
        };
        pops.push(edge::start(config, listeners).await?);
    }
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/v1/spaces/assets/cache", ports[0]);
    for kind in [Kind::Prefix, Kind::Tag] {
        let mut times = Vec::new();
        for round in 0..rounds {
            for pop in &pops {
                fill(pop, entries, prefix, round, kind);
            }
            let body = match kind {
                Kind::Prefix => serde_json::json!({ "files": [format!("dir{round}/*")] }),
                Kind::Tag => serde_json::json!({ "tags": [format!("tag{round}")] }),
            };
            let started = Instant::now();
            let reply: serde_json::Value = client
                .delete(&url)
                .bearer_auth("bench-purge-token")
                .json(&body)
                .send()
                .await?
                .json()
                .await?;
            let elapsed = started.elapsed();
            let pops_done = reply["pops"]
                .as_array()
                .map_or(0, |p| p.iter().filter(|p| p["status"] == "done").count());
            let dropped: u64 = reply["pops"]
                .as_array()
                .map_or(0, |p| p.iter().filter_map(|p| p["dropped"].as_u64()).sum());
            anyhow::ensure!(
                pops_done == 3 && dropped == 3 * prefix as u64,
                "unexpected reply: {reply}"
            );
            times.push(elapsed);
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let what = match kind {
            Kind::Prefix => format!("a {prefix}-entry prefix"),
            Kind::Tag => format!("a tag on {prefix} entries spread over the keys"),
        };
        println!(
            "3 PoPs x {entries} entries, purge of {what} through one PoP, {rounds} rounds: \
             p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms",
            ms(times[times.len() / 2]),
            ms(times[times.len() * 9 / 10]),
            ms(times[times.len() - 1])
        );
    }
    for pop in pops {
        pop.stop().await;
    }
    Ok(())
}
