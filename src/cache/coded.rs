//! Content-coded variants of stored responses. A variant is made once from its identity
//! entry (off the async threads, a bounded number at a time), stored in both tiers under the
//! identity's key with the coding appended (`space \0 key \0 query \0 br`: every purge of the
//! key drops it too) and with the identity's tags (so does every purge of a tag), and served
//! only while it has its identity's freshness, so it never outlives the response it was made
//! from. A small body's variant is made while its request waits, and concurrent requests
//! for it wait too (the fill registry coalesces them, and a purge detaches it as any fill);
//! a larger one's is made in the background while requests get the identity.

use std::sync::{Arc, LazyLock};
use std::time::SystemTime;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use tokio::sync::Semaphore;

use super::coding::Coding;
use super::fill::{FillPermit, Joined};
use super::key::{CacheKey, KeyText, with_written_key};
use super::{Body, Cache, Entry, Tier, Variants};

/// Bodies up to this size are coded while the request that asked waits (brotli 11 codes
/// about 0.6 MB/s: 32 KiB in ~50 ms); larger ones in the background, their first requests
/// getting the identity (sent sooner than they could be coded at the levels chosen).
pub const INLINE_MAX: usize = 32 << 10;

/// Whether a body of `length` bytes is coded while its request waits (else in the
/// background): the one rule the cache and the miss path both follow.
pub fn coded_inline(length: u64) -> bool {
    usize::try_from(length).is_ok_and(|length| length <= INLINE_MAX)
}

/// Cores of the machine: how many codings run at once while clients wait.
static ENCODERS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(cores()));

/// Codings made in the background at once (half the cores, at least one): they leave the
/// rest of the machine to serving.
static BACKGROUND_ENCODERS: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new((cores() / 2).max(1)));

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Fields that describe the identity bytes and would be false of a coded body.
const IDENTITY_ONLY: &[&str] = &["content-md5", "content-digest", "repr-digest", "digest"];

/// Runs `f` with the key text of `key`'s `coding` variant, without allocating.
fn with_coded_text<R>(key: &CacheKey, coding: Coding, f: impl FnOnce(KeyText<'_>) -> R) -> R {
    with_written_key(
        |text| {
            text.push_str(key.as_str());
            text.push('\0');
            text.push_str(coding.name());
        },
        f,
    )
}

/// The key `key`'s `coding` variant is stored under.
pub fn coded_key(key: &CacheKey, coding: Coding) -> CacheKey {
    with_coded_text(key, coding, |text| {
        CacheKey::from_raw(text.as_str()).expect("a key with a suffix is still a key")
    })
}

/// Whether `variant` was made from `identity` (the same stored response: same freshness).
fn made_from(variant: &Entry, identity: &Entry) -> bool {
    variant.freshness == identity.freshness
}

/// `ETag` of a coded variant: the identity's with `-<coding>` inside the quotes (weak stays
/// weak), so validators of different bodies differ; `None` if the identity's is malformed.
pub fn coded_etag(etag: &HeaderValue, coding: Coding) -> Option<HeaderValue> {
    let text = etag.to_str().ok()?;
    let (weak, opaque) = match text.strip_prefix("W/") {
        Some(rest) => ("W/", rest),
        None => ("", text),
    };
    let inner = opaque.strip_prefix('"')?.strip_suffix('"')?;
    HeaderValue::from_str(&format!("{weak}\"{inner}-{}\"", coding.name())).ok()
}

/// The head of `identity`'s `coding` variant.
fn coded_headers(identity: &Entry, coding: Coding) -> HeaderMap {
    let mut headers = identity.headers();
    let etag = headers.remove(header::ETAG);
    if let Some(etag) = etag.and_then(|e| coded_etag(&e, coding)) {
        headers.insert(header::ETAG, etag);
    }
    for name in IDENTITY_ONLY {
        headers.remove(*name);
    }
    let checksums: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("x-amz-checksum-"))
        .cloned()
        .collect();
    for name in checksums {
        headers.remove(name);
    }
    headers.insert(header::CONTENT_ENCODING, coding.header_value());
    headers
}

impl Cache {
    /// `identity`'s `coding` variant from the memory tier, if made and still its own.
    pub fn coded_in_memory(
        &self,
        identity: &Entry,
        coding: Coding,
        variants: Variants,
        request: &HeaderMap,
        now: SystemTime,
    ) -> Option<Arc<Entry>> {
        with_coded_text(&identity.key, coding, |text| {
            self.memory_entry(text, variants, request, now)
        })
        .filter(|variant| made_from(variant, identity))
    }

    /// `identity`'s `coding` variant: from the memory tier, the disk tier, or made now (and
    /// stored). `None` when its body is not in memory, its coding is made in the background
    /// (bodies over [`INLINE_MAX`]) or failed: serve the identity.
    pub async fn coded(
        self: &Arc<Self>,
        identity: &Arc<Entry>,
        coding: Coding,
        variants: Variants,
        request: &HeaderMap,
        now: SystemTime,
    ) -> Option<(Arc<Entry>, Tier)> {
        if let Some(variant) = self.coded_in_memory(identity, coding, variants, request, now) {
            return Some((variant, Tier::Memory));
        }
        let Body::Memory(body) = &identity.body else {
            return None;
        };
        let key = coded_key(&identity.key, coding);
        let known_vary = match variants {
            Variants::ByVary => None,
            Variants::Always(names) => Some(names),
        };
        if let Some(variant) = self.lookup_disk(&key, request, known_vary).await
            && made_from(&variant, identity)
        {
            return Some((variant, Tier::Disk));
        }
        let inline = coded_inline(body.len() as u64);
        let fill = match self.fills.join(&key) {
            Joined::Leader(fill) => fill,
            // Being made in the background: this request gets the identity meanwhile.
            Joined::Follower(_) if !inline => return None,
            Joined::Follower(fill) => {
                // Being made for another request: wait for it, then read it from memory.
                if let Some(mut reader) = fill.reader(0) {
                    let _ended = reader.head().await;
                }
                return self
                    .coded_in_memory(identity, coding, variants, request, now)
                    .map(|variant| (variant, Tier::Memory));
            }
        };
        // Dropped before it completes (a cancelled request, a failed coding, no encoder
        // free), the permit frees the key and wakes the waiters.
        let permit = FillPermit::registered(self.clone(), key.clone(), fill.clone(), None);
        if inline {
            let _slot = ENCODERS.acquire().await.ok()?;
            let variant = make_variant(identity, coding, key, body.clone()).await?;
            permit.complete_shared(variant.clone());
            fill.finish(Ok(()));
            return Some((variant, Tier::Memory));
        }
        // Too slow to make while a client waits: made in the background if an encoder is
        // free (else a later request tries again), this request gets the identity.
        let slot = BACKGROUND_ENCODERS.try_acquire().ok()?;
        let identity = identity.clone();
        let body = body.clone();
        tokio::spawn(async move {
            let _slot = slot;
            if let Some(variant) = make_variant(&identity, coding, key, body).await {
                permit.complete_shared(variant);
                fill.finish(Ok(()));
            }
        });
        None
    }
}

/// `identity`'s `coding` variant made from `body` on a blocking thread, stored under `key`;
/// `None` if the coding failed.
async fn make_variant(
    identity: &Arc<Entry>,
    coding: Coding,
    key: CacheKey,
    body: bytes::Bytes,
) -> Option<Arc<Entry>> {
    let coded = tokio::task::spawn_blocking(move || coding.encode(&body))
        .await
        .ok()?;
    let coded = match coded {
        Ok(coded) => coded,
        Err(e) => {
            tracing::warn!(key = %identity.key.object_key(), error = %e, "coding failed");
            return None;
        }
    };
    Some(Arc::new(
        Entry::new(
            key,
            identity.status,
            &coded_headers(identity, coding),
            Body::Memory(coded.into()),
            identity.freshness,
            identity.vary.clone(),
        )
        .with_tags(identity.tags.clone()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coded_etags_differ_from_the_identity() {
        let strong = HeaderValue::from_static("\"abc\"");
        let weak = HeaderValue::from_static("W/\"abc\"");
        assert_eq!(coded_etag(&strong, Coding::Br).unwrap(), "\"abc-br\"");
        assert_eq!(coded_etag(&weak, Coding::Gzip).unwrap(), "W/\"abc-gzip\"");
        assert!(coded_etag(&HeaderValue::from_static("abc"), Coding::Br).is_none());
    }

    #[test]
    fn coded_keys_are_selected_by_the_identity_purges() {
        let key = CacheKey::new("s", "a.js", "v=1");
        let coded = coded_key(&key, Coding::Zstd);
        assert_eq!(coded.as_str(), "s\0a.js\0v=1\0zstd");
        for purge in ["a.js", "*", "a*"] {
            let selector = super::super::PurgeSelector::parse("s", purge).unwrap();
            assert!(selector.matches(&coded, None), "{purge}");
        }
        assert!(
            !super::super::PurgeSelector::parse("s", "a.j")
                .unwrap()
                .matches(&coded, None)
        );
    }
}
