//! The order lease: one PoP at a time orders a certificate for a domain. The lease is an
//! object written with `If-None-Match: *`, carrying its holder and expiry; it is deleted when
//! the order ends, and taken over (with `If-Match` on the expired version) when its holder
//! died. A PoP restarting under the same `pop.name` takes its own lease back at once.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::store::{CertStateStore, StoreError, Write, keys};

/// What a lease object holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct LeaseBody {
    holder: String,
    /// Milliseconds since the Unix epoch.
    expires_ms: u64,
}

/// A lease this PoP holds.
#[derive(Debug, Clone)]
pub struct Lease {
    key: String,
    etag: String,
}

/// The outcome of trying to take a lease.
#[derive(Debug)]
pub enum Acquire {
    Acquired(Lease),
    /// Another PoP holds it until `expires`.
    Busy {
        holder: String,
        expires: SystemTime,
    },
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether the current lease `body` may be taken by `holder` at `now`.
fn can_take(body: &[u8], holder: &str, now: SystemTime) -> Result<(), (String, SystemTime)> {
    match serde_json::from_slice::<LeaseBody>(body) {
        // Unreadable: whoever wrote it is not one of us; treat it as expired.
        Err(_) => Ok(()),
        Ok(lease) if lease.holder == holder || lease.expires_ms <= millis(now) => Ok(()),
        Ok(lease) => Err((
            lease.holder,
            SystemTime::UNIX_EPOCH + Duration::from_millis(lease.expires_ms),
        )),
    }
}

/// Tries to take the lease of `domain` for `holder` until `now + ttl`.
pub async fn acquire(
    store: &dyn CertStateStore,
    domain: &str,
    holder: &str,
    ttl: Duration,
    now: SystemTime,
) -> Result<Acquire, StoreError> {
    let key = keys::lease(domain);
    let body = Bytes::from(
        serde_json::to_vec(&LeaseBody {
            holder: holder.to_owned(),
            expires_ms: millis(now + ttl),
        })
        .expect("a lease serializes"),
    );
    // A few rounds: the lease may be released or taken between our reads and writes.
    for _ in 0..4 {
        if let Some(etag) = store.put(&key, body.clone(), Write::IfAbsent).await? {
            return Ok(Acquire::Acquired(Lease { key, etag }));
        }
        let Some(current) = store.get(&key).await? else {
            continue;
        };
        match can_take(&current.body, holder, now) {
            Ok(()) => {
                if let Some(etag) = store
                    .put(&key, body.clone(), Write::IfMatch(current.etag.clone()))
                    .await?
                {
                    tracing::info!(%domain, "took over an expired order lease");
                    return Ok(Acquire::Acquired(Lease { key, etag }));
                }
            }
            Err((holder, expires)) => return Ok(Acquire::Busy { holder, expires }),
        }
    }
    Err(StoreError::Transport {
        op: "lease",
        key,
        reason: "the lease kept changing under us".to_owned(),
    })
}

/// Gives the lease back, unless someone else has taken it over since.
pub async fn release(store: &dyn CertStateStore, lease: &Lease) -> Result<(), StoreError> {
    match store.get(&lease.key).await? {
        Some(current) if current.etag == lease.etag => store.delete(&lease.key).await,
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::acme::store::DirStore;

    const TTL: Duration = Duration::from_secs(300);

    #[tokio::test]
    async fn one_holder_at_a_time_until_release_or_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);

        let Acquire::Acquired(a) = acquire(&store, "img.example", "pop-a", TTL, t0)
            .await
            .unwrap()
        else {
            panic!("a free lease is acquired");
        };
        match acquire(
            &store,
            "img.example",
            "pop-b",
            TTL,
            t0 + Duration::from_secs(10),
        )
        .await
        .unwrap()
        {
            Acquire::Busy { holder, expires } => {
                assert_eq!(holder, "pop-a");
                assert_eq!(expires, t0 + TTL);
            }
            Acquire::Acquired(_) => panic!("the lease is held"),
        }
        // Another domain is independent.
        assert!(matches!(
            acquire(&store, "other.example", "pop-b", TTL, t0)
                .await
                .unwrap(),
            Acquire::Acquired(_)
        ));

        release(&store, &a).await.unwrap();
        let Acquire::Acquired(b) = acquire(&store, "img.example", "pop-b", TTL, t0)
            .await
            .unwrap()
        else {
            panic!("a released lease is free");
        };

        // pop-b dies; after the expiry pop-a takes over, and pop-b's late release is a no-op.
        let later = t0 + TTL + Duration::from_secs(1);
        let Acquire::Acquired(_a2) = acquire(&store, "img.example", "pop-a", TTL, later)
            .await
            .unwrap()
        else {
            panic!("an expired lease is taken over");
        };
        release(&store, &b).await.unwrap();
        assert!(matches!(
            acquire(&store, "img.example", "pop-c", TTL, later)
                .await
                .unwrap(),
            Acquire::Busy { .. }
        ));
    }

    #[tokio::test]
    async fn a_restarted_pop_takes_its_own_lease_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(matches!(
            acquire(&store, "img.example", "pop-a", TTL, t0)
                .await
                .unwrap(),
            Acquire::Acquired(_)
        ));
        assert!(matches!(
            acquire(
                &store,
                "img.example",
                "pop-a",
                TTL,
                t0 + Duration::from_secs(5)
            )
            .await
            .unwrap(),
            Acquire::Acquired(_)
        ));
    }

    #[tokio::test]
    async fn garbage_in_the_lease_object_does_not_block_forever() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path());
        store
            .put(
                &keys::lease("img.example"),
                Bytes::from_static(b"{not json"),
                Write::Always,
            )
            .await
            .unwrap();
        assert!(matches!(
            acquire(&store, "img.example", "pop-a", TTL, SystemTime::now())
                .await
                .unwrap(),
            Acquire::Acquired(_)
        ));
    }
}
