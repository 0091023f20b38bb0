//! The index on its own: variants, purges by prefix, tag and replayed purges, soft purges,
//! expiry, eviction.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::HeaderValue;

use super::*;
use crate::cache::key::PurgeSelector;

#[derive(Debug, Clone)]
struct Value {
    name: &'static str,
    weight: u64,
    received: SystemTime,
    keep_until: SystemTime,
    vary: VaryValues,
    tags: Tags,
    stale_at: Option<SystemTime>,
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
    fn tags(&self) -> &Tags {
        &self.tags
    }
    fn invalidated(&self, at: SystemTime) -> Option<Self> {
        self.stale_at.is_none().then(|| Value {
            stale_at: Some(at),
            ..self.clone()
        })
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
        tags: Tags::default(),
        stale_at: None,
    }
}

fn tagged(name: &'static str, tags: &[&str]) -> Value {
    Value {
        tags: Tags::of(tags),
        ..value(name)
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
    assert!(index.ordered.lock().unwrap().keys.is_empty());
}

fn tag(space: &str, tag: &str) -> PurgeSelector {
    PurgeSelector::Tag {
        space: space.into(),
        tag: tag.into(),
    }
}

#[test]
fn tag_purges_select_by_what_values_carry() {
    let count = Arc::new(Count::default());
    let index = SlotIndex::new(1 << 20, 10, 100, count.clone());
    index.insert(
        &CacheKey::new("s", "p/42.html", ""),
        tagged("a", &["p42", "all"]),
    );
    index.insert(
        &CacheKey::new("s", "p/42.json", "v=2"),
        tagged("b", &["p42"]),
    );
    index.insert(
        &CacheKey::new("s", "p/43.html", ""),
        tagged("c", &["p43", "all"]),
    );
    index.insert(&CacheKey::new("t", "p/42.html", ""), tagged("d", &["p42"]));
    index.insert(&CacheKey::new("s", "plain", ""), value("e"));
    let font = CacheKey::new("s", "f.woff2", "");
    index.insert(
        &font,
        Value {
            tags: Tags::of(&["p42"]),
            ..varied("f", Some("https://x"))
        },
    );
    assert_eq!(index.tag_pairs(), 7);

    assert_eq!(
        index.purge(&tag("s", "p42"), None),
        3,
        "two keys and a variant, in space s"
    );
    assert!(
        index
            .get(font.text(), &request(Some("https://x")), t(1))
            .is_none()
    );
    assert!(
        index
            .get(
                CacheKey::new("t", "p/42.html", "").text(),
                &request(None),
                t(1)
            )
            .is_some()
    );
    // The dropped values' other tags went with them (left: c's two, d's one).
    assert_eq!(index.tag_pairs(), 3);
    assert_eq!(index.purge(&tag("s", "all"), None), 1);
    assert_eq!(index.purge(&tag("s", "nothing"), None), 0);
    assert_eq!(index.tag_pairs(), 1);

    // A replayed tag purge spares newer values, which stay selectable.
    let key = CacheKey::new("s", "new", "");
    index.insert(
        &key,
        Value {
            received: t(50),
            ..tagged("g", &["x"])
        },
    );
    assert_eq!(index.purge(&tag("s", "x"), Some(t(10))), 0);
    assert_eq!(index.purge(&tag("s", "x"), None), 1);
    assert_eq!(count.1.load(Ordering::Relaxed), 5);
}

#[test]
fn tag_pairs_follow_values_that_are_replaced_evicted_or_expire() {
    let index: SlotIndex<Value> = SlotIndex::new(1_000, 100, 100, Ignore);
    let key = CacheKey::new("s", "k", "");
    index.insert(&key, tagged("v1", &["old", "both"]));
    index.insert(&key, tagged("v2", &["new", "both"]));
    assert_eq!(index.tag_pairs(), 2);
    assert_eq!(
        index.purge(&tag("s", "old"), None),
        0,
        "v2 does not carry it"
    );
    assert_eq!(index.purge(&tag("s", "both"), None), 1);
    assert_eq!(index.tag_pairs(), 0);
    // Eviction.
    for i in 0..100 {
        index.insert(
            &CacheKey::new("s", &format!("k{i}"), ""),
            Value {
                weight: 100,
                ..tagged("v", &["t"])
            },
        );
    }
    let (_, slots) = index.usage();
    assert_eq!(index.tag_pairs() as u64, slots);
    // Expiry, on lookup and by sweeps.
    let expiring = CacheKey::new("s", "expiring", "");
    index.insert(
        &expiring,
        Value {
            keep_until: t(5),
            ..tagged("v", &["t"])
        },
    );
    assert!(index.get(expiring.text(), &request(None), t(10)).is_none());
    assert_eq!(index.tag_pairs() as u64, index.usage().1);
    let mut swept = 0;
    while index.usage().1 > 0 && swept < 1000 {
        index.sweep(t(1000), 16);
        swept += 1;
    }
    assert_eq!(index.tag_pairs(), 0);
}

#[test]
fn soft_purges_mark_values_stale_and_keep_them() {
    let index: SlotIndex<Value> = SlotIndex::new(1 << 20, 10, 100, Ignore);
    let a = CacheKey::new("s", "dir/a", "");
    let b = CacheKey::new("s", "dir/b", "");
    index.insert(&a, tagged("a", &["t"]));
    index.insert(&b, value("b"));
    let mut marked = Vec::new();
    let n = index.purge_with(
        &PurgeSelector::parse("s", "dir/*").unwrap(),
        None,
        PurgeAction::MarkStale(t(7)),
        |slot, v| marked.push((slot.key.clone(), v.stale_at)),
    );
    assert_eq!(n, 2);
    assert_eq!(marked.len(), 2);
    assert!(marked.iter().all(|(_, at)| *at == Some(t(7))));
    assert_eq!(
        index.get(a.text(), &request(None), t(8)).unwrap().stale_at,
        Some(t(7))
    );
    // Already marked: nothing more to do; the tag still selects it.
    let again = index.purge_with(
        &tag("s", "t"),
        None,
        PurgeAction::MarkStale(t(9)),
        |_, _| {},
    );
    assert_eq!(again, 0);
    assert_eq!(index.tag_pairs(), 1);
    assert_eq!(index.purge(&tag("s", "t"), None), 1);
}

/// A tag purge leaves the dropped values' keys in the ordered set: the sweep removes those
/// whose slot is empty, and a value stored again under one is still reached by a prefix purge.
#[test]
fn keys_a_tag_purge_leaves_are_swept_and_harmless() {
    let index: SlotIndex<Value> = SlotIndex::new(1 << 20, 10, 100, Ignore);
    let again = CacheKey::new("s", "d/again", "");
    let gone = CacheKey::new("s", "d/gone", "");
    index.insert(&again, tagged("a", &["t"]));
    index.insert(&gone, tagged("b", &["t"]));
    assert_eq!(index.purge(&tag("s", "t"), None), 2);
    assert!(index.get(again.text(), &request(None), t(1)).is_none());
    assert_eq!(index.ordered.lock().unwrap().keys.len(), 2);

    index.insert(&again, value("c"));
    assert_eq!(index.sweep(t(1), 16), 0);
    let keys: Vec<String> = index
        .ordered
        .lock()
        .unwrap()
        .keys
        .iter()
        .map(|slot| slot.key.as_str().to_owned())
        .collect();
    assert_eq!(keys, [again.as_str().to_owned()]);
    assert_eq!(
        index.purge(&PurgeSelector::parse("s", "d/*").unwrap(), None),
        1
    );
    assert!(index.get(again.text(), &request(None), t(1)).is_none());
    assert!(index.ordered.lock().unwrap().keys.is_empty());
}
