use std::time::Duration;

use super::*;

fn key(n: u32) -> CacheKey {
    CacheKey::new("space", &format!("/object-{n}"), "")
}

const WEIGHT: u64 = 256 << 10;

#[test]
fn copied_up_while_the_memory_tier_has_room_then_only_when_hotter_than_it() {
    let promotion = Promotion::default();
    let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
    // Room for two bodies: the first two disk hits are copied up whatever their heat.
    let full = || (2 * WEIGHT, 10);
    assert!(promotion.disk_hit(&key(1), 0, WEIGHT, t0, full).is_some());
    assert!(promotion.disk_hit(&key(2), 0, WEIGHT, t0, full).is_some());
    // No room left: a key seen once is not.
    assert!(promotion.disk_hit(&key(3), 0, WEIGHT, t0, full).is_none());

    // Next second: the memory tier is full, its 10 entries served 40 hits (4 each, halved
    // to a mean of 2 by the tick): a key needs an estimate of 2 * 2 + 2 = 6.
    for _ in 0..40 {
        promotion.memory_hit();
    }
    let t1 = t0 + Duration::from_secs(1);
    let no_room = || (0, 10);
    let mut copied_at = None;
    for hit in 1..=10 {
        if promotion
            .disk_hit(&key(4), 0, WEIGHT, t1, no_room)
            .is_some()
        {
            copied_at = Some(hit);
            break;
        }
    }
    assert_eq!(copied_at, Some(6), "hot enough on its 6th hit");
    // A key hit as often as memory entries are is left on disk.
    for _ in 0..4 {
        assert!(
            promotion
                .disk_hit(&key(5), 0, WEIGHT, t1, no_room)
                .is_none()
        );
    }
    // Another variant of a hot key counts apart.
    assert!(
        promotion
            .disk_hit(&key(4), 7, WEIGHT, t1, no_room)
            .is_none()
    );
}

#[test]
fn counts_fade_so_old_heat_does_not_promote() {
    let promotion = Promotion::default();
    let no_room = || (0, 10);
    let at = |n: u64| UNIX_EPOCH + Duration::from_secs(2_000_000 + n);
    assert!(
        promotion
            .disk_hit(&key(99), 0, WEIGHT, at(0), no_room)
            .is_none()
    );
    for _ in 0..40 {
        promotion.memory_hit();
    }
    // Halved to 20 hits over 10 entries: the bar is 2 * 2 + 2 = 6.
    for _ in 0..5 {
        assert!(
            promotion
                .disk_hit(&key(1), 0, WEIGHT, at(1), no_room)
                .is_none()
        );
    }
    // A second later the bar is 2 * 1 + 2 = 4 and the key's 5 hits count as 2: its next
    // hit (3) is not enough; the one after is.
    assert!(
        promotion
            .disk_hit(&key(1), 0, WEIGHT, at(2), no_room)
            .is_none()
    );
    assert!(
        promotion
            .disk_hit(&key(1), 0, WEIGHT, at(2), no_room)
            .is_some()
    );
}

#[test]
fn a_few_copies_at_a_time() {
    let promotion = Promotion::default();
    let t0 = UNIX_EPOCH + Duration::from_secs(3_000_000);
    let roomy = || (u64::MAX, 0);
    let copying: Vec<_> = (0..MAX_COPYING as u32)
        .map(|n| {
            promotion
                .disk_hit(&key(n), 0, WEIGHT, t0, roomy)
                .expect("room")
        })
        .collect();
    assert!(
        promotion
            .disk_hit(&key(100), 0, WEIGHT, t0, roomy)
            .is_none()
    );
    drop(copying);
    assert!(
        promotion
            .disk_hit(&key(101), 0, WEIGHT, t0, roomy)
            .is_some()
    );
}
