//! Purge fan-out: the parent first, then every peer in parallel, each answer within the
//! purge timeout; peers that do not answer are reported `pending` and retried with backoff
//! (persisted, so a restart of this PoP does not forget them) until they acknowledge.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};

use super::{PopResult, PurgeReply, PurgeRequest};
use crate::config::Secret;
use crate::http_client::{ClientBuilder, HttpsClient};

/// Marks a purge forwarded by another PoP: applied locally, never forwarded again.
pub const FORWARDED_HEADER: &str = "x-edge-purge-forwarded";

/// A purge a peer has not acknowledged yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    peer: String,
    space: String,
    files: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    soft: bool,
    attempts: u32,
}

impl Pending {
    fn request(&self) -> PurgeRequest {
        PurgeRequest {
            files: self.files.clone(),
            tags: self.tags.clone(),
            soft: self.soft,
        }
    }
}

/// What a PoP that applied a forwarded purge answered.
struct PeerAnswer {
    /// Its `pop.name`.
    name: Option<String>,
    /// Entries it dropped.
    dropped: Option<usize>,
}

/// Sends purges to the parent and peers.
pub struct Fanout {
    peers: Vec<String>,
    parent: Option<String>,
    token: Option<Secret>,
    timeout: Duration,
    client: HttpsClient<Full<Bytes>>,
    pending: Mutex<Vec<Pending>>,
    pending_path: Option<PathBuf>,
    wake: tokio::sync::Notify,
}

impl Fanout {
    /// A fan-out to `peers` (admin URLs) and `parent` (its admin URL), authenticated with
    /// `token`; pending purges live in `state_dir`.
    pub fn new(
        peers: Vec<String>,
        parent: Option<String>,
        token: Option<Secret>,
        timeout: Duration,
        state_dir: Option<PathBuf>,
        ca_roots: Option<PathBuf>,
    ) -> Fanout {
        // Purges are small request/response exchanges: without TCP_NODELAY, Nagle's
        // algorithm and delayed ACKs add tens of milliseconds to each.
        let client = ClientBuilder::new(
            crate::tls::client_config_with_roots(ca_roots.as_deref()),
            timeout,
        )
        .build();
        let pending_path = state_dir.map(|d| d.join("pending.json"));
        let pending = pending_path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Fanout {
            peers,
            parent,
            token,
            timeout,
            client,
            pending: Mutex::new(pending),
            pending_path,
            wake: Default::default(),
        }
    }

    /// The client peers are reached with (admin TLS roots, the purge timeout).
    pub fn client(&self) -> HttpsClient<Full<Bytes>> {
        self.client.clone()
    }

    /// Whether there is anyone to forward to.
    pub fn has_targets(&self) -> bool {
        self.parent.is_some() || !self.peers.is_empty()
    }

    /// Forwards to the parent (awaited first), reporting its result.
    pub async fn to_parent(&self, space: &str, request: &PurgeRequest) -> Option<PopResult> {
        let parent = self.parent.clone()?;
        Some(self.send_or_queue(parent, space, request).await)
    }

    /// Forwards to every peer in parallel (the parent, if it is also listed as a peer, was
    /// already asked first and is not asked twice).
    pub async fn to_peers(&self, space: &str, request: &PurgeRequest) -> Vec<PopResult> {
        let sends = self
            .peers
            .iter()
            .filter(|peer| !self.is_parent(peer))
            .map(|peer| self.send_or_queue(peer.clone(), space, request));
        futures::future::join_all(sends).await
    }

    /// Whether `peer` is the parent's admin URL (compared without a trailing `/`).
    fn is_parent(&self, peer: &str) -> bool {
        self.parent
            .as_deref()
            .is_some_and(|parent| parent.trim_end_matches('/') == peer.trim_end_matches('/'))
    }

    /// Sends a purge; an answering PoP is named by its `pop.name`, one that does not answer
    /// by its admin URL (and the purge is queued for it).
    async fn send_or_queue(&self, peer: String, space: &str, request: &PurgeRequest) -> PopResult {
        match self.send(&peer, space, request).await {
            Ok(answer) => PopResult {
                pop: answer.name.unwrap_or(peer),
                status: "done".to_owned(),
                dropped: answer.dropped,
            },
            Err(e) => {
                tracing::warn!(%peer, %space, error = %e, "purge not acknowledged; will retry");
                self.queue(Pending {
                    peer: peer.clone(),
                    space: space.to_owned(),
                    files: request.files.clone(),
                    tags: request.tags.clone(),
                    soft: request.soft,
                    attempts: 1,
                });
                PopResult {
                    pop: peer,
                    status: "pending".to_owned(),
                    dropped: None,
                }
            }
        }
    }

    fn queue(&self, pending: Pending) {
        let mut queue = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        queue.push(pending);
        self.persist(&queue);
        drop(queue);
        self.wake.notify_one();
    }

    fn persist(&self, queue: &[Pending]) {
        let Some(path) = &self.pending_path else {
            return;
        };
        super::save_json(path, queue, "pending purges");
    }

    /// Number of purges waiting for a peer.
    pub fn pending_count(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Runs [`Fanout::retry_loop`] until `shutdown` flips.
    pub async fn retry_loop_until(
        self: Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        tokio::select! {
            _ = self.retry_loop() => {}
            _ = shutdown.changed() => {}
        }
    }

    /// Retries pending purges with exponential backoff (capped) until each is acknowledged.
    pub async fn retry_loop(self: Arc<Self>) {
        let mut delay = Duration::from_millis(250);
        loop {
            let batch: Vec<Pending> =
                std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
            if batch.is_empty() {
                delay = Duration::from_millis(250);
                self.wake.notified().await;
                continue;
            }
            let mut failed = Vec::new();
            for mut item in batch {
                match self.send(&item.peer, &item.space, &item.request()).await {
                    Ok(_) => {
                        tracing::info!(peer = %item.peer, space = %item.space, attempts = item.attempts, "pending purge acknowledged")
                    }
                    Err(_) => {
                        item.attempts += 1;
                        failed.push(item);
                    }
                }
            }
            let any = {
                let mut queue = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                queue.extend(failed);
                self.persist(&queue);
                !queue.is_empty()
            };
            if any {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }

    async fn send(
        &self,
        peer: &str,
        space: &str,
        request: &PurgeRequest,
    ) -> Result<PeerAnswer, String> {
        let uri = format!("{peer}/v1/spaces/{space}/cache");
        let body = serde_json::to_string(request).map_err(|e| e.to_string())?;
        let mut request = http::Request::delete(uri.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(FORWARDED_HEADER, "1");
        if let Some(token) = &self.token {
            request = request.header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.expose()),
            );
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            if !status.is_success() {
                return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
            }
            let reply: PurgeReply = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            // A forwarded purge is not forwarded again: the reply's one entry is the peer's.
            let own = reply.pops.first();
            Ok(PeerAnswer {
                name: own.map(|p| p.pop.clone()),
                dropped: own.and_then(|p| p.dropped),
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| "timed out".to_owned())?
    }

    /// Every PoP whose purge journal this PoP replays after a restart: its peers and its
    /// parent (admin URLs, each once).
    pub fn journal_sources(&self) -> Vec<String> {
        let mut sources = self.peers.clone();
        if let Some(parent) = &self.parent
            && !sources.iter().any(|peer| self.is_parent(peer))
        {
            sources.push(parent.clone());
        }
        sources
    }

    /// The purges `peer` applied since `since` (seconds since the epoch); `None` when it
    /// did not answer.
    pub async fn ask_journal(
        &self,
        peer: &str,
        since: u64,
    ) -> Option<Vec<super::journal::JournalEntry>> {
        let uri = format!("{peer}/v1/purges?since={since}");
        let mut request = http::Request::get(uri.as_str());
        if let Some(token) = &self.token {
            request = request.header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.expose()),
            );
        }
        let request = request.body(Full::new(Bytes::new())).ok()?;
        let fetch = async {
            let response = self.client.request(request).await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            let body = response.into_body().collect().await.ok()?.to_bytes();
            serde_json::from_slice::<Vec<super::journal::JournalEntry>>(&body).ok()
        };
        let answer = tokio::time::timeout(self.timeout, fetch)
            .await
            .ok()
            .flatten();
        if answer.is_none() {
            tracing::warn!(%peer, "cannot catch up on purges from peer");
        }
        answer
    }
}
