//! Lifecycle rules: S3's checks of a PutBucketLifecycleConfiguration, the stored form, and
//! when a rule expires a version (pure functions of the times involved and the length of a
//! lifecycle "day").

use s3s::dto;
use serde::{Deserialize, Serialize};

/// The most rules a configuration may hold (as S3).
const MAX_RULES: usize = 1000;
/// The longest rule id (as S3).
const MAX_ID_LEN: usize = 255;
/// The most noncurrent versions a rule may keep (as S3's `NewerNoncurrentVersions`).
const MAX_NEWER_NONCURRENT: i32 = 100;

/// Which S3 error a refused configuration answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleErrorKind {
    /// `MalformedXML`.
    MalformedXml,
    /// `InvalidArgument`.
    InvalidArgument,
    /// `InvalidRequest`.
    InvalidRequest,
    /// `NotImplemented` (tag filters, transitions).
    NotImplemented,
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuleError {
    /// The S3 error.
    pub kind: RuleErrorKind,
    /// S3's message.
    pub message: String,
}

fn refuse<T>(kind: RuleErrorKind, message: impl Into<String>) -> Result<T, RuleError> {
    Err(RuleError {
        kind,
        message: message.into(),
    })
}

fn malformed<T>() -> Result<T, RuleError> {
    refuse(
        RuleErrorKind::MalformedXml,
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

/// How the rule named its objects (kept so GET answers what was PUT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FilterForm {
    /// The deprecated top-level `<Prefix>`.
    Legacy,
    /// `<Filter>` with one condition.
    Filter,
    /// `<Filter><And>`.
    And,
}

/// Which objects a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Key prefix (empty: every key).
    pub prefix: String,
    /// Only objects larger than this many bytes.
    pub size_greater_than: Option<u64>,
    /// Only objects smaller than this many bytes.
    pub size_less_than: Option<u64>,
    /// How it was written.
    pub form: FilterForm,
}

/// When current versions expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expiration {
    /// This many days after creation (rounded up to the next day boundary, as S3 does).
    Days(u32),
    /// From this moment (Unix seconds, midnight UTC) on.
    Date(i64),
    /// Remove delete markers that are a key's only version.
    ExpiredObjectDeleteMarker,
}

/// When noncurrent versions are removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Noncurrent {
    /// Days after the version became noncurrent.
    pub days: u32,
    /// The newest this many noncurrent versions are kept whatever their age.
    pub keep: Option<u32>,
}

/// One validated rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// `ID`.
    pub id: String,
    /// `Status` is `Enabled`.
    pub enabled: bool,
    /// Which objects.
    pub filter: Filter,
    /// `Expiration`.
    pub expiration: Option<Expiration>,
    /// `NoncurrentVersionExpiration`.
    pub noncurrent: Option<Noncurrent>,
    /// `AbortIncompleteMultipartUpload` `DaysAfterInitiation`.
    pub abort_after_days: Option<u32>,
}

fn positive(value: Option<i32>, what: &str) -> Result<u32, RuleError> {
    match value.and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0) {
        Some(v) => Ok(v),
        None => refuse(
            RuleErrorKind::InvalidArgument,
            format!("'{what} must be a positive integer"),
        ),
    }
}

fn size(value: Option<i64>) -> Result<Option<u64>, RuleError> {
    value
        .map(|v| {
            u64::try_from(v).or_else(|_| {
                refuse(
                    RuleErrorKind::InvalidArgument,
                    "Object size filters must be non-negative",
                )
            })
        })
        .transpose()
}

fn tags_unsupported<T>() -> Result<T, RuleError> {
    refuse(
        RuleErrorKind::NotImplemented,
        "Lifecycle filters on object tags are not supported by this store",
    )
}

fn filter_from_dto(rule: &dto::LifecycleRule) -> Result<Filter, RuleError> {
    match (&rule.prefix, &rule.filter) {
        (Some(_), Some(_)) | (None, None) => malformed(),
        (Some(prefix), None) => Ok(Filter {
            prefix: prefix.clone(),
            size_greater_than: None,
            size_less_than: None,
            form: FilterForm::Legacy,
        }),
        (None, Some(f)) => {
            let set = usize::from(f.and.is_some())
                + usize::from(f.prefix.is_some())
                + usize::from(f.tag.is_some())
                + usize::from(f.object_size_greater_than.is_some())
                + usize::from(f.object_size_less_than.is_some());
            if set > 1 {
                return malformed();
            }
            if f.tag.is_some() {
                return tags_unsupported();
            }
            if let Some(and) = &f.and {
                if and.tags.as_ref().is_some_and(|t| !t.is_empty()) {
                    return tags_unsupported();
                }
                return Ok(Filter {
                    prefix: and.prefix.clone().unwrap_or_default(),
                    size_greater_than: size(and.object_size_greater_than)?,
                    size_less_than: size(and.object_size_less_than)?,
                    form: FilterForm::And,
                });
            }
            Ok(Filter {
                prefix: f.prefix.clone().unwrap_or_default(),
                size_greater_than: size(f.object_size_greater_than)?,
                size_less_than: size(f.object_size_less_than)?,
                form: FilterForm::Filter,
            })
        }
    }
}

fn expiration_from_dto(e: &dto::LifecycleExpiration) -> Result<Expiration, RuleError> {
    let marker = e.expired_object_delete_marker == Some(true);
    if e.days.is_some() && e.date.is_some() {
        return malformed();
    }
    if marker && (e.days.is_some() || e.date.is_some()) {
        return refuse(
            RuleErrorKind::InvalidArgument,
            "ExpiredObjectDeleteMarker cannot be specified with Days or Date in a Lifecycle Expiration Policy",
        );
    }
    if let Some(days) = e.days {
        return Ok(Expiration::Days(positive(
            Some(days),
            "Days' for Expiration action",
        )?));
    }
    if let Some(date) = &e.date {
        let t = time::OffsetDateTime::from(date.clone());
        if t.time() != time::Time::MIDNIGHT || t.offset() != time::UtcOffset::UTC {
            return refuse(
                RuleErrorKind::InvalidArgument,
                "'Date' must be at midnight GMT",
            );
        }
        return Ok(Expiration::Date(t.unix_timestamp()));
    }
    if marker {
        Ok(Expiration::ExpiredObjectDeleteMarker)
    } else {
        malformed()
    }
}

impl Rule {
    /// Validates one rule as S3 does.
    pub fn from_dto(rule: &dto::LifecycleRule) -> Result<Rule, RuleError> {
        let id = match &rule.id {
            Some(id) if id.len() > MAX_ID_LEN => {
                return refuse(
                    RuleErrorKind::InvalidArgument,
                    "ID length should not exceed allowed limit of 255",
                );
            }
            Some(id) if !id.is_empty() => id.clone(),
            _ => uuid::Uuid::new_v4().simple().to_string(),
        };
        let enabled = match rule.status.as_str() {
            dto::ExpirationStatus::ENABLED => true,
            dto::ExpirationStatus::DISABLED => false,
            _ => return malformed(),
        };
        if rule.transitions.as_ref().is_some_and(|t| !t.is_empty())
            || rule
                .noncurrent_version_transitions
                .as_ref()
                .is_some_and(|t| !t.is_empty())
        {
            return refuse(
                RuleErrorKind::NotImplemented,
                "Transition actions are not supported: this store has a single storage class",
            );
        }
        let filter = filter_from_dto(rule)?;
        let expiration = rule
            .expiration
            .as_ref()
            .map(expiration_from_dto)
            .transpose()?;
        let noncurrent = rule
            .noncurrent_version_expiration
            .as_ref()
            .map(|n| {
                let days = positive(
                    n.noncurrent_days,
                    "NoncurrentDays' for NoncurrentVersionExpiration action",
                )?;
                let keep = match n.newer_noncurrent_versions {
                    None => None,
                    Some(k) if (1..=MAX_NEWER_NONCURRENT).contains(&k) => u32::try_from(k).ok(),
                    Some(_) => {
                        return refuse(
                            RuleErrorKind::InvalidArgument,
                            "NewerNoncurrentVersions must be between 1 and 100",
                        );
                    }
                };
                Ok(Noncurrent { days, keep })
            })
            .transpose()?;
        let abort_after_days = rule
            .abort_incomplete_multipart_upload
            .as_ref()
            .map(|a| {
                positive(
                    a.days_after_initiation,
                    "DaysAfterInitiation' for AbortIncompleteMultipartUpload action",
                )
            })
            .transpose()?;
        if expiration.is_none() && noncurrent.is_none() && abort_after_days.is_none() {
            return refuse(
                RuleErrorKind::InvalidRequest,
                "At least one action needs to be specified in a rule",
            );
        }
        Ok(Rule {
            id,
            enabled,
            filter,
            expiration,
            noncurrent,
            abort_after_days,
        })
    }

    /// Validates a whole configuration: 1 to 1000 rules with distinct ids.
    pub fn from_config(config: &dto::BucketLifecycleConfiguration) -> Result<Vec<Rule>, RuleError> {
        if config.rules.is_empty() || config.rules.len() > MAX_RULES {
            return malformed();
        }
        let rules = config
            .rules
            .iter()
            .map(Rule::from_dto)
            .collect::<Result<Vec<_>, _>>()?;
        let mut ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return refuse(
                RuleErrorKind::InvalidArgument,
                "Rule ID must be unique. Found same ID for more than one rule",
            );
        }
        Ok(rules)
    }

    /// The rule as GetBucketLifecycleConfiguration shows it.
    #[must_use]
    pub fn to_dto(&self) -> dto::LifecycleRule {
        let f = &self.filter;
        let sizes = |v: Option<u64>| v.and_then(|v| i64::try_from(v).ok());
        let (prefix, filter) = match f.form {
            FilterForm::Legacy => (Some(f.prefix.clone()), None),
            FilterForm::Filter => (
                None,
                Some(dto::LifecycleRuleFilter {
                    prefix: (f.size_greater_than.is_none() && f.size_less_than.is_none())
                        .then(|| f.prefix.clone()),
                    object_size_greater_than: sizes(f.size_greater_than),
                    object_size_less_than: sizes(f.size_less_than),
                    ..Default::default()
                }),
            ),
            FilterForm::And => (
                None,
                Some(dto::LifecycleRuleFilter {
                    and: Some(dto::LifecycleRuleAndOperator {
                        prefix: Some(f.prefix.clone()),
                        object_size_greater_than: sizes(f.size_greater_than),
                        object_size_less_than: sizes(f.size_less_than),
                        tags: None,
                    }),
                    ..Default::default()
                }),
            ),
        };
        let days = |d: u32| i32::try_from(d).ok();
        dto::LifecycleRule {
            abort_incomplete_multipart_upload: self.abort_after_days.map(|d| {
                dto::AbortIncompleteMultipartUpload {
                    days_after_initiation: days(d),
                }
            }),
            expiration: self.expiration.map(|e| match e {
                Expiration::Days(d) => dto::LifecycleExpiration {
                    days: days(d),
                    ..Default::default()
                },
                Expiration::Date(secs) => dto::LifecycleExpiration {
                    date: time::OffsetDateTime::from_unix_timestamp(secs)
                        .ok()
                        .map(dto::Timestamp::from),
                    ..Default::default()
                },
                Expiration::ExpiredObjectDeleteMarker => dto::LifecycleExpiration {
                    expired_object_delete_marker: Some(true),
                    ..Default::default()
                },
            }),
            filter,
            id: Some(self.id.clone()),
            noncurrent_version_expiration: self.noncurrent.map(|n| {
                dto::NoncurrentVersionExpiration {
                    noncurrent_days: days(n.days),
                    newer_noncurrent_versions: n.keep.and_then(|k| i32::try_from(k).ok()),
                }
            }),
            noncurrent_version_transitions: None,
            prefix,
            status: dto::ExpirationStatus::from_static(if self.enabled {
                dto::ExpirationStatus::ENABLED
            } else {
                dto::ExpirationStatus::DISABLED
            }),
            transitions: None,
        }
    }

    /// Whether the rule is enabled and covers `key` whatever the size (delete markers,
    /// multipart uploads).
    #[must_use]
    pub fn covers_key(&self, key: &str) -> bool {
        self.enabled && key.starts_with(&self.filter.prefix)
    }

    /// Whether the rule is enabled and covers `key` (of `size` bytes, for object versions).
    #[must_use]
    pub fn covers(&self, key: &str, size: Option<u64>) -> bool {
        let f = &self.filter;
        self.enabled
            && key.starts_with(&f.prefix)
            && f.size_greater_than
                .is_none_or(|min| size.is_some_and(|s| s > min))
            && f.size_less_than
                .is_none_or(|max| size.is_some_and(|s| s < max))
    }
}

/// `days` lifecycle days after `from_ms`, rounded up to the next day boundary (S3 rounds to
/// the next midnight UTC; a "day" of `day_ms` counts from the Unix epoch the same way).
#[must_use]
pub fn after_days(from_ms: i64, days: u32, day_ms: i64) -> i64 {
    let day_ms = day_ms.max(1);
    let due = from_ms.saturating_add(i64::from(days).saturating_mul(day_ms));
    match due.rem_euclid(day_ms) {
        0 => due,
        rem => due.saturating_add(day_ms - rem),
    }
}

#[cfg(test)]
mod tests;
