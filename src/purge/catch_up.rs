//! Catching up after a restart: purges the fleet applied while this PoP was down must reach
//! what its disk tier kept. The disk tier holds a mark of the last time the PoP was in sync
//! with its peers; at start the PoP asks every peer (and its parent) for the purges since
//! then and replays them. Until every one of them has answered, disk entries stored before
//! the start are revalidated instead of served as they are, so a purged object is never
//! served from disk, whichever PoPs are down.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::cache::Cache;
use crate::purge::fanout::Fanout;

/// The file, in the disk tier's directory, holding when the PoP was last in sync (seconds
/// since the epoch).
pub const MARK_FILE: &str = "in-sync";

/// How often the mark is renewed while the PoP is in sync.
const MARK_EVERY: Duration = Duration::from_secs(5);

/// Slack subtracted from the mark: a purge applied by a peer just before this PoP wrote its
/// last mark (clocks of the fleet may also differ a little) is replayed too.
const MARK_SLACK: u64 = 60;

/// Longest wait between two attempts to reach the peers that did not answer.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// What a restarted PoP does to catch up with purges.
pub struct CatchUp {
    cache: Arc<Cache>,
    fanout: Arc<Fanout>,
    /// The mark file, when the disk tier keeps entries across restarts.
    mark: Option<PathBuf>,
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl CatchUp {
    /// Catch-up for `cache`'s disk tier under `disk_path` (`None`: no disk tier, nothing
    /// outlives a restart), from the PoPs `fanout` reaches.
    pub fn new(cache: Arc<Cache>, fanout: Arc<Fanout>, disk_path: Option<&Path>) -> CatchUp {
        CatchUp {
            cache,
            fanout,
            mark: disk_path.map(|dir| dir.join(MARK_FILE)),
        }
    }

    /// Runs as the PoP starts, before it serves: disk entries received before now are
    /// revalidated (never served as they are) until every peer has told what it purged since
    /// the mark, which is asked in the background (so PoPs restarting together never wait for
    /// each other); the mark is renewed while in sync. Ends its tasks at `shutdown`.
    pub fn start(self, shutdown: watch::Receiver<bool>) {
        let Some(mark) = self.mark.clone() else {
            return;
        };
        let sources = self.fanout.journal_sources();
        if !sources.is_empty() {
            // No mark (first start, or a tier from an older build): ask for everything peers
            // keep.
            let since = std::fs::read_to_string(&mark)
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .map_or(0, |at| at.saturating_sub(MARK_SLACK));
            self.cache.distrust_disk_before(self.cache.now());
            tokio::spawn(renew_mark(self.cache.clone(), mark, shutdown.clone()));
            tokio::spawn(self.follow(sources, since, shutdown));
        } else {
            // Purges reach this PoP only through itself: nothing to catch up on.
            tokio::spawn(renew_mark(self.cache.clone(), mark, shutdown));
        }
    }

    /// Asks `peers` for their journals since `since`, replays what they answer, and returns
    /// those that did not answer.
    async fn ask(&self, peers: &[String], since: u64) -> Vec<String> {
        let answers = futures::future::join_all(
            peers
                .iter()
                .map(|peer| async move { (peer, self.fanout.ask_journal(peer, since).await) }),
        )
        .await;
        let mut missing = Vec::new();
        let mut replayed = 0;
        for (peer, answer) in answers {
            let Some(entries) = answer else {
                missing.push(peer.clone());
                continue;
            };
            for entry in entries {
                // Acts on what was received up to the end of the second the purge was applied
                // in (a soft purge marks it stale from the start of that second).
                let applied = SystemTime::UNIX_EPOCH + Duration::from_secs(entry.at);
                let before = applied + Duration::from_secs(1);
                let action = entry.request.action(applied);
                for selector in entry.request.selectors(&entry.space) {
                    replayed += self.cache.purge_stored_before(&selector, before, action);
                }
            }
        }
        tracing::info!(
            since,
            replayed,
            answered = peers.len() - missing.len(),
            "caught up on purges from peers"
        );
        missing
    }

    /// Asks every peer, then retries those that did not answer, with backoff, until all
    /// have; then disk entries are trusted again.
    async fn follow(
        self,
        mut missing: Vec<String>,
        since: u64,
        mut shutdown: watch::Receiver<bool>,
    ) {
        // Replays reach the index: wait until the start-up scan has indexed every entry file
        // (disk entries are revalidated meanwhile).
        while self.cache.disk().scanning() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = shutdown.changed() => return,
            }
        }
        let mut delay = Duration::from_millis(500);
        loop {
            missing = self.ask(&missing, since).await;
            if missing.is_empty() {
                break;
            }
            tracing::warn!(
                ?missing,
                "peers did not answer; disk entries are revalidated until they do"
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
            delay = (delay * 2).min(RETRY_MAX);
        }
        self.cache.trust_disk();
        tracing::info!("caught up with every peer; disk entries are served as they are");
    }
}

/// Writes the mark every few seconds while the PoP is in sync, and once more at shutdown.
async fn renew_mark(cache: Arc<Cache>, mark: PathBuf, mut shutdown: watch::Receiver<bool>) {
    loop {
        if cache.disk_trusted()
            && let Err(e) = write_mark(&mark, cache.now())
        {
            tracing::debug!(path = %mark.display(), error = %e, "cannot write the in-sync mark");
        }
        tokio::select! {
            _ = tokio::time::sleep(MARK_EVERY) => {}
            _ = shutdown.changed() => {
                if cache.disk_trusted() {
                    let _ = write_mark(&mark, cache.now());
                }
                return;
            }
        }
    }
}

/// Writes the mark through a temporary file and a rename.
fn write_mark(mark: &Path, now: SystemTime) -> std::io::Result<()> {
    let tmp = mark.with_extension("tmp");
    std::fs::write(&tmp, unix_secs(now).to_string())?;
    std::fs::rename(&tmp, mark)
}
