//! The index on its own: variants, purges by prefix and replayed purges, expiry, eviction.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::HeaderValue;

use super::*;

#[derive(Debug, Clone)]
struct Value {
    name: &'static str,
    weight: u64,
    received: SystemTime,
    keep_until: SystemTime,
    vary: VaryValues,
}

impl Indexed for Value {
    fn weight(&self) -> u64 {
        self.weight
    }
    fn keep_until(&self) -> SystemTime {
        self.keep_until
    }
    fn received(&self) -> SystemTime {
        self.received
    }
    fn vary(&self) -> &VaryValues {
        &self.vary
    }
}

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn value(name: &'static str) -> Value {
    Value {
        name,
        weight: 10,
        received: t(0),
        keep_until: t(100),
        vary: VaryValues::default(),
    }
}

fn request(origin: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(origin) = origin {
        headers.insert(http::header::ORIGIN, HeaderValue::from_str(origin).unwrap());
    }
    headers
}

fn varied(name: &'static str, origin: Option<&str>) -> Value {
    Value {
        vary: VaryValues::of(&[http::header::ORIGIN], &request(origin)),
        ..value(name)
    }
}

#[derive(Default)]
struct Count(AtomicUsize, AtomicUsize);

impl OnDrop<Value> for Arc<Count> {
    fn dropped(&self, _slot: &SlotKey, _value: Value, why: Dropped) {
        match why {
            Dropped::Evicted => self.0.fetch_add(1, Ordering::Relaxed),
            _ => self.1.fetch_add(1, Ordering::Relaxed),
        };
    }
}

#[test]
fn plain_and_varied_values_are_found_by_their_request() {
    let index: SlotIndex<Value> = SlotIndex::new(1 << 20, 10, 100, Ignore);
    let plain = CacheKey::new("s", "a.css", "");
    index.insert(&plain, value("a"));
    let found = index.get(plain.text(), &request(None), t(1)).unwrap();
    assert_eq!(found.name, "a");

    let font = CacheKey::new("s", "f.woff2", "");
    for (name, origin) in [
        ("none", None),
        ("x", Some("https://x")),
        ("y", Some("https://y")),
    ] {
        index.insert(&font, varied(name, origin));
    }
    for (name, origin) in [
        ("none", None),
        ("x", Some("https://x")),
        ("y", Some("https://y")),
    ] {
        let by_vary = index.get(font.text(), &request(origin), t(1)).unwrap();
        assert_eq!(by_vary.name, name);
        let direct = index
            .get_variant(font.text(), &[http::header::ORIGIN], &request(origin), t(1))
            .unwrap();
        assert_eq!(direct.name, name);
    }
    assert!(
        index
            .get(font.text(), &request(Some("https://z")), t(1))
            .is_none()
    );
    assert_eq!(
        index.vary_names(font.text()).unwrap().as_ref(),
        [http::header::ORIGIN]
    );
    // A response that starts varying replaces the plain one.
    index.insert(&plain, varied("a-x", Some("https://x")));
    assert!(index.get(plain.text(), &request(None), t(1)).is_none());
    assert_eq!(
        index
            .get(plain.text(), &request(Some("https://x")), t(1))
            .unwrap()
            .name,
        "a-x"
    );
}

#[test]
fn purges_select_paths_prefixes_and_spaces_and_replays_spare_newer_values() {
    let count = Arc::new(Count::default());
    let index = SlotIndex::new(1 << 20, 10, 100, count.clone());
    for key in ["img/a.png", "img/b.png", "img2/c.png", "css/d.css"] {
        index.insert(&CacheKey::new("s", key, ""), value("v"));
        index.insert(&CacheKey::new("s", key, "v=1"), value("v"));
    }
    index.insert(&CacheKey::new("other", "img/a.png", ""), value("v"));
    let newer = Value {
        received: t(50),
        ..varied("newer", Some("https://x"))
    };
    index.insert(&CacheKey::new("s", "fonts/f.woff2", ""), newer);
    index.insert(
        &CacheKey::new("s", "fonts/f.woff2", ""),
        varied("older", None),
    );

    let path = PurgeSelector::parse("s", "img/a.png").unwrap();
    assert_eq!(index.purge(&path, None), 2, "both query variants");
    let prefix = PurgeSelector::parse("s", "img/*").unwrap();
    assert_eq!(index.purge(&prefix, None), 2);
    assert!(
        index
            .get(
                CacheKey::new("s", "img2/c.png", "").text(),
                &request(None),
                t(1)
            )
            .is_some(),
        "`img/*` is not `img2/`"
    );
    // A purge replayed from a peer drops only what was received before it.
    let fonts = PurgeSelector::parse("s", "fonts/*").unwrap();
    assert_eq!(index.purge(&fonts, Some(t(10))), 1);
    let key = CacheKey::new("s", "fonts/f.woff2", "");
    assert_eq!(
        index
            .get(key.text(), &request(Some("https://x")), t(1))
            .unwrap()
            .name,
        "newer"
    );
    let space = PurgeSelector::parse("s", "*").unwrap();
    assert_eq!(index.purge(&space, None), 5);
    assert!(
        index
            .get(
                CacheKey::new("other", "img/a.png", "").text(),
                &request(None),
                t(1)
            )
            .is_some()
    );
    assert_eq!(count.1.load(Ordering::Relaxed), 10);
}

#[test]
fn values_past_their_keep_window_are_dropped_on_lookup_and_by_sweeps() {
    let count = Arc::new(Count::default());
    let index = SlotIndex::new(1 << 20, 10, 100, count.clone());
    let keys: Vec<CacheKey> = (0..100)
        .map(|i| CacheKey::new("s", &format!("k{i:03}"), ""))
        .collect();
    for (i, key) in keys.iter().enumerate() {
        let keep_until = if i % 2 == 0 { t(10) } else { t(1000) };
        index.insert(
            key,
            Value {
                keep_until,
                ..value("v")
            },
        );
    }
    assert!(index.get(keys[0].text(), &request(None), t(20)).is_none());
    assert!(index.get(keys[1].text(), &request(None), t(20)).is_some());
    let mut swept = 0;
    for _ in 0..20 {
        swept += index.sweep(t(20), 16);
    }
    assert_eq!(swept, 49, "the other expired values, a batch at a time");
    assert_eq!(index.usage().1, 50);
    assert_eq!(count.1.load(Ordering::Relaxed), 50);
}

#[test]
fn eviction_keeps_the_weight_bound_and_tells_the_tier() {
    let count = Arc::new(Count::default());
    let index = SlotIndex::new(10_000, 100, 100, count.clone());
    for i in 0..1_000 {
        index.insert(
            &CacheKey::new("s", &format!("k{i}"), ""),
            Value {
                weight: 100,
                ..value("v")
            },
        );
    }
    let (weight, slots) = index.usage();
    assert!(weight <= 10_000, "{weight}");
    assert!(slots <= 100, "{slots}");
    assert_eq!(count.0.load(Ordering::Relaxed) as u64, 1_000 - slots);
    // Evicted slots left the ordered set: a space purge finds only what is there.
    assert_eq!(
        index.purge(&PurgeSelector::parse("s", "*").unwrap(), None) as u64,
        slots
    );
    assert!(index.ordered.lock().unwrap().is_empty());
}
