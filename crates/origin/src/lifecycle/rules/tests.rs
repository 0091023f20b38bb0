//! Unit tests of `rules`.

use s3s::dto;

use super::*;

fn rule(f: impl FnOnce(&mut dto::LifecycleRule)) -> dto::LifecycleRule {
    let mut r = dto::LifecycleRule {
        abort_incomplete_multipart_upload: None,
        expiration: Some(dto::LifecycleExpiration {
            days: Some(1),
            ..Default::default()
        }),
        filter: Some(dto::LifecycleRuleFilter {
            prefix: Some("logs/".into()),
            ..Default::default()
        }),
        id: Some("r1".into()),
        noncurrent_version_expiration: None,
        noncurrent_version_transitions: None,
        prefix: None,
        status: dto::ExpirationStatus::from_static(dto::ExpirationStatus::ENABLED),
        transitions: None,
    };
    f(&mut r);
    r
}

fn kind(r: dto::LifecycleRule) -> RuleErrorKind {
    Rule::from_dto(&r).unwrap_err().kind
}

#[test]
fn valid_rules_round_trip() {
    let r = Rule::from_dto(&rule(|_| {})).unwrap();
    assert_eq!(r.expiration, Some(Expiration::Days(1)));
    assert_eq!(r.filter.prefix, "logs/");
    assert_eq!(Rule::from_dto(&r.to_dto()).unwrap(), r);
    let legacy = Rule::from_dto(&rule(|r| {
        r.filter = None;
        r.prefix = Some("tmp/".into());
        r.expiration = None;
        r.noncurrent_version_expiration = Some(dto::NoncurrentVersionExpiration {
            noncurrent_days: Some(3),
            newer_noncurrent_versions: Some(2),
        });
        r.abort_incomplete_multipart_upload = Some(dto::AbortIncompleteMultipartUpload {
            days_after_initiation: Some(7),
        });
    }))
    .unwrap();
    assert_eq!(legacy.filter.form, FilterForm::Legacy);
    assert_eq!(
        legacy.noncurrent,
        Some(Noncurrent {
            days: 3,
            keep: Some(2)
        })
    );
    assert_eq!(legacy.abort_after_days, Some(7));
    assert_eq!(Rule::from_dto(&legacy.to_dto()).unwrap(), legacy);
}

#[test]
fn bad_rules_get_s3s_errors() {
    use RuleErrorKind::*;
    let days = |d| {
        rule(move |r| {
            r.expiration = Some(dto::LifecycleExpiration {
                days: Some(d),
                ..Default::default()
            });
        })
    };
    assert_eq!(kind(days(0)), InvalidArgument);
    assert_eq!(kind(days(-3)), InvalidArgument);
    let midnight = time::OffsetDateTime::from_unix_timestamp(1_893_456_000).unwrap();
    assert_eq!(
        kind(rule(|r| {
            r.expiration = Some(dto::LifecycleExpiration {
                days: Some(1),
                date: Some(midnight.into()),
                ..Default::default()
            });
        })),
        MalformedXml
    );
    assert_eq!(
        kind(rule(|r| {
            r.expiration = Some(dto::LifecycleExpiration {
                date: Some((midnight + time::Duration::hours(3)).into()),
                ..Default::default()
            });
        })),
        InvalidArgument
    );
    assert_eq!(
        kind(rule(|r| {
            r.expiration = Some(dto::LifecycleExpiration {
                days: Some(1),
                expired_object_delete_marker: Some(true),
                ..Default::default()
            });
        })),
        InvalidArgument
    );
    assert_eq!(
        kind(rule(|r| r.expiration = Some(Default::default()))),
        MalformedXml
    );
    assert_eq!(kind(rule(|r| r.expiration = None)), InvalidRequest);
    assert_eq!(kind(rule(|r| r.prefix = Some("x".into()))), MalformedXml);
    assert_eq!(kind(rule(|r| r.filter = None)), MalformedXml);
    assert_eq!(
        kind(rule(
            |r| r.status = dto::ExpirationStatus::from("On".to_owned())
        )),
        MalformedXml
    );
    assert_eq!(
        kind(rule(|r| r.id = Some("x".repeat(256)))),
        InvalidArgument
    );
    assert_eq!(
        kind(rule(|r| {
            r.noncurrent_version_expiration = Some(dto::NoncurrentVersionExpiration {
                noncurrent_days: Some(0),
                newer_noncurrent_versions: None,
            });
        })),
        InvalidArgument
    );
    assert_eq!(
        kind(rule(|r| {
            r.filter = Some(dto::LifecycleRuleFilter {
                tag: Some(dto::Tag {
                    key: Some("k".into()),
                    value: Some("v".into()),
                }),
                ..Default::default()
            });
        })),
        NotImplemented
    );
    let twice = dto::BucketLifecycleConfiguration {
        rules: vec![rule(|_| {}), rule(|_| {})],
    };
    assert_eq!(Rule::from_config(&twice).unwrap_err().kind, InvalidArgument);
    let none = dto::BucketLifecycleConfiguration { rules: vec![] };
    assert_eq!(Rule::from_config(&none).unwrap_err().kind, MalformedXml);
}

#[test]
fn days_round_up_to_the_next_day_boundary() {
    let day = 86_400_000;
    // Created at 10:00 on day 0: one day later rounds up to midnight starting day 2.
    assert_eq!(after_days(10 * 3_600_000, 1, day), 2 * day);
    assert_eq!(after_days(0, 1, day), day);
    assert_eq!(after_days(2_500, 1, 2_000), 6_000);
    assert_eq!(after_days(i64::MAX - 5, 3, day), i64::MAX);
}

#[test]
fn filters_cover_by_prefix_and_size() {
    let mut r = Rule::from_dto(&rule(|_| {})).unwrap();
    assert!(r.covers("logs/a", Some(5)));
    assert!(!r.covers("other", Some(5)));
    r.filter.size_greater_than = Some(10);
    assert!(!r.covers("logs/a", Some(5)));
    assert!(r.covers("logs/a", Some(11)));
    assert!(r.covers_key("logs/a"));
    r.enabled = false;
    assert!(!r.covers("logs/a", Some(11)) && !r.covers_key("logs/a"));
}
