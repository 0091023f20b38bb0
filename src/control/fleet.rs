//! What the dashboard reads: this PoP's last hour in 10-second buckets (`/v1/stats`), and
//! the fleet's PoPs, up or down (`/v1/fleet`: this one and every peer, asked now).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};

use super::spaces::SpecError;
use crate::metrics::series::{BUCKET_SECONDS, BUCKETS, period_of};
use crate::server::Edge;

/// How long a peer has to answer `/healthz` for `/v1/fleet`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The header `/healthz` names its PoP in.
pub const POP_HEADER: &str = "x-edge-pop";

/// When each peer (by admin URL) last answered, and its name.
#[derive(Default)]
pub struct PeerSightings {
    seen: Mutex<HashMap<String, (Option<String>, SystemTime)>>,
}

/// `/v1/stats?window=...&space=...` (window: default and longest `1h`): totals and by space,
/// oldest first.
pub fn stats(edge: &Edge, query: Option<&str>) -> Result<Value, SpecError> {
    let window = query
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("window=")))
        .map(|w| crate::config::parse_duration(w).map_err(|e| SpecError(format!("window: {e}"))))
        .transpose()?
        .unwrap_or(Duration::from_secs(3600));
    let buckets = usize::try_from(window.as_secs().div_ceil(BUCKET_SECONDS)).unwrap_or(BUCKETS);
    if buckets == 0 || buckets > BUCKETS {
        return Err(SpecError("window: between 10s and 1h".to_owned()));
    }
    // `space=NAME`: that space's series only; `space=` (empty): none; absent: every space's.
    let only = query.and_then(|q| q.split('&').find_map(|p| p.strip_prefix("space=")));
    let now = period_of(SystemTime::now());
    let spaces: serde_json::Map<String, Value> = edge
        .metrics
        .spaces
        .all()
        .into_iter()
        .filter(|(name, _)| only.is_none_or(|only| only == name))
        .map(|(name, meter)| (name, json!(meter.series.window(now, buckets))))
        .collect();
    Ok(json!({
        "pop": edge.pop_name.as_ref(),
        "bucket_seconds": BUCKET_SECONDS,
        "window_seconds": buckets as u64 * BUCKET_SECONDS,
        "total": edge.metrics.series.window(now, buckets),
        "spaces": spaces,
    }))
}

/// `/v1/fleet`: this PoP and every peer, each asked for `/healthz` now.
pub async fn fleet(edge: &Edge) -> Value {
    let live = edge.live.load_full();
    let client = edge.fanout.client();
    let probes = live.config.purge.peers.iter().map(|peer| {
        let client = client.clone();
        async move {
            let request =
                http::Request::get(format!("{peer}/healthz")).body(Full::new(Bytes::new()));
            let Ok(request) = request else {
                return (peer.clone(), None);
            };
            let answer = tokio::time::timeout(PROBE_TIMEOUT, client.request(request)).await;
            match answer {
                Ok(Ok(r)) if r.status().is_success() => {
                    let name = r
                        .headers()
                        .get(POP_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    (peer.clone(), Some(name))
                }
                _ => (peer.clone(), None),
            }
        }
    });
    let answers = futures::future::join_all(probes).await;
    let now = SystemTime::now();
    let mut seen = edge
        .control
        .peers
        .seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let bound = edge.admin_addr.get().copied();
    let admin = bound.or(live.config.listen.admin).map(|addr| {
        let scheme = if live.config.listen.admin_tls {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{addr}")
    });
    let mut pops = vec![json!({
        "name": edge.pop_name.as_ref(),
        "admin": admin,
        "status": "up",
        "last_seen": httpdate::fmt_http_date(now),
    })];
    for (peer, answer) in answers {
        let up = answer.is_some();
        if let Some(name) = answer {
            seen.insert(peer.clone(), (name, now));
        }
        let known = seen.get(&peer);
        pops.push(json!({
            "name": known.and_then(|(name, _)| name.clone()),
            "admin": peer,
            "status": if up { "up" } else { "down" },
            "last_seen": known.map(|(_, at)| httpdate::fmt_http_date(*at)),
        }));
    }
    json!({ "pops": pops })
}
