//! The manager's scheduling rules: backoff and when a domain is due.

use super::*;

#[test]
fn backoff_doubles_up_to_the_cap() {
    let min = Duration::from_secs(10);
    let max = Duration::from_secs(3600);
    assert_eq!(backoff(1, min, max), Duration::from_secs(10));
    assert_eq!(backoff(2, min, max), Duration::from_secs(20));
    assert_eq!(backoff(5, min, max), Duration::from_secs(160));
    assert_eq!(backoff(12, min, max), max);
    assert_eq!(backoff(u32::MAX, min, max), max);
}

#[test]
fn a_domain_is_due_without_a_certificate_or_after_two_thirds() {
    let now = Instant::now();
    let wall = SystemTime::now();
    let mut state = DomainState::default();
    assert_eq!(state.due_in(now, wall), Duration::ZERO);
    state.cert = Some(LeafInfo {
        not_before: wall - Duration::from_secs(10),
        not_after: wall + Duration::from_secs(20),
        serial: "01".into(),
        dns_names: vec!["a.example".into()],
    });
    assert_eq!(state.due_in(now, wall), Duration::from_secs(10));
    state.not_before = Some(now + Duration::from_secs(15));
    assert_eq!(state.due_in(now, wall), Duration::from_secs(15));
    let later = wall + Duration::from_secs(11);
    state.not_before = None;
    assert_eq!(state.due_in(now, later), Duration::ZERO);
}
