//! Validation of `[origin]`: the embedded store, an S3 endpoint or plain HTTP.

use std::time::Duration;

use super::fields::*;
use super::*;

pub(super) fn validate_origin(raw: raw::RawOrigin) -> Result<Origin, ConfigError> {
    let connect_timeout = duration(
        "origin.connect_timeout",
        raw.connect_timeout.as_deref(),
        Duration::from_secs(3),
    )?;
    let timeout = duration(
        "origin.timeout",
        raw.timeout.as_deref(),
        Duration::from_secs(30),
    )?;
    let kind_name = raw.kind.as_deref().unwrap_or("embedded");
    let reject = |present: bool, key: &str| -> Result<(), ConfigError> {
        if present {
            Err(invalid(
                format!("origin.{key}"),
                format!("does not apply to kind = \"{kind_name}\""),
            ))
        } else {
            Ok(())
        }
    };
    if kind_name != "embedded" {
        reject(raw.lifecycle_interval.is_some(), "lifecycle_interval")?;
        reject(raw.lifecycle_day.is_some(), "lifecycle_day")?;
    }
    let kind = match kind_name {
        "embedded" => {
            reject(raw.endpoint.is_some(), "endpoint")?;
            reject(raw.url.is_some(), "url")?;
            reject(raw.access_key.is_some(), "access_key")?;
            reject(
                raw.secret_key.is_some() || raw.secret_key_env.is_some(),
                "secret_key",
            )?;
            let listen = socket_addr(
                "origin.listen",
                Some(raw.listen.as_deref().unwrap_or("127.0.0.1:9000")),
            )?
            .expect("an address was given");
            let mut users = Vec::new();
            for (i, u) in raw.users.into_iter().enumerate() {
                let key = format!("origin.user[{i}]");
                if u.id.is_empty() || users.iter().any(|o: &OriginUser| o.id == u.id) {
                    return Err(invalid(format!("{key}.id"), "must be non-empty and unique"));
                }
                if u.access_key.len() < 3
                    || users
                        .iter()
                        .any(|o: &OriginUser| o.access_key == u.access_key)
                {
                    return Err(invalid(
                        format!("{key}.access_key"),
                        "must be at least 3 characters and unique",
                    ));
                }
                let secret_key = secret(
                    &format!("{key}.secret_key"),
                    u.secret_key.as_deref(),
                    u.secret_key_env.as_deref(),
                )?
                .ok_or_else(|| {
                    invalid(
                        format!("{key}.secret_key"),
                        "is required (inline or secret_key_env)",
                    )
                })?;
                if secret_key.expose().len() < 8 {
                    return Err(invalid(
                        format!("{key}.secret_key"),
                        "must be at least 8 characters",
                    ));
                }
                users.push(OriginUser {
                    display_name: u.display_name.unwrap_or_else(|| u.id.clone()),
                    id: u.id,
                    email: u.email,
                    access_key: u.access_key,
                    secret_key,
                });
            }
            if users.is_empty() {
                return Err(invalid(
                    "origin.user",
                    "the embedded origin needs at least one [[origin.user]]",
                ));
            }
            let edge_user = match raw.edge_user {
                Some(id) if users.iter().any(|u| u.id == id) => id,
                Some(id) => {
                    return Err(invalid(
                        "origin.edge_user",
                        format!("no [[origin.user]] has id `{id}`"),
                    ));
                }
                None => users[0].id.clone(),
            };
            let domain = raw
                .domain
                .map(|d| {
                    normalize_host(&d).ok_or_else(|| {
                        invalid("origin.domain", format!("`{d}` is not a domain name"))
                    })
                })
                .transpose()?;
            let positive = |key: &str, value: Option<&str>, default: Duration| {
                let d = duration(key, value, default)?;
                if d.as_millis() == 0 {
                    return Err(invalid(key, "must be at least 1ms"));
                }
                Ok(d)
            };
            let lifecycle_interval = positive(
                "origin.lifecycle_interval",
                raw.lifecycle_interval.as_deref(),
                Duration::from_secs(3600),
            )?;
            let lifecycle_day = positive(
                "origin.lifecycle_day",
                raw.lifecycle_day.as_deref(),
                Duration::from_secs(86_400),
            )?;
            let log_flush = duration(
                "origin.log_flush",
                raw.log_flush.as_deref(),
                ::origin::DEFAULT_LOG_FLUSH,
            )?;
            if log_flush.is_zero() {
                return Err(invalid("origin.log_flush", "must be longer than zero"));
            }
            OriginKind::Embedded(EmbeddedOrigin {
                listen,
                data_dir: raw
                    .data_dir
                    .unwrap_or_else(|| "data/origin".to_owned())
                    .into(),
                domain,
                users,
                edge_user,
                lifecycle_interval,
                lifecycle_day,
                log_flush,
                tls: raw.tls.unwrap_or(false),
            })
        }
        "s3" => {
            reject(raw.listen.is_some(), "listen")?;
            reject(raw.log_flush.is_some(), "log_flush")?;
            reject(raw.tls.is_some(), "tls")?;
            reject(raw.data_dir.is_some(), "data_dir")?;
            reject(!raw.users.is_empty(), "user")?;
            reject(raw.url.is_some(), "url")?;
            let endpoint = raw
                .endpoint
                .ok_or_else(|| invalid("origin.endpoint", "is required for kind = \"s3\""))?;
            let endpoint = uri("origin.endpoint", &endpoint)?;
            let secret_key = secret(
                "origin.secret_key",
                raw.secret_key.as_deref(),
                raw.secret_key_env.as_deref(),
            )?;
            let credentials = match (raw.access_key, secret_key) {
                (Some(access_key), Some(secret_key)) => Some(S3Credentials {
                    access_key,
                    secret_key,
                }),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(invalid(
                        "origin.secret_key",
                        "access_key is set without secret_key",
                    ));
                }
                (None, Some(_)) => {
                    return Err(invalid(
                        "origin.access_key",
                        "secret_key is set without access_key",
                    ));
                }
            };
            OriginKind::S3(S3Origin {
                endpoint,
                region: raw.region.unwrap_or_else(|| "us-east-1".to_owned()),
                credentials,
            })
        }
        "http" => {
            reject(raw.endpoint.is_some(), "endpoint")?;
            reject(raw.listen.is_some(), "listen")?;
            reject(raw.log_flush.is_some(), "log_flush")?;
            reject(raw.tls.is_some(), "tls")?;
            reject(!raw.users.is_empty(), "user")?;
            let url = raw
                .url
                .ok_or_else(|| invalid("origin.url", "is required for kind = \"http\""))?;
            OriginKind::Http {
                url: uri("origin.url", &url)?,
            }
        }
        other => {
            return Err(invalid(
                "origin.kind",
                format!("`{other}` is not one of embedded, s3, http"),
            ));
        }
    };
    Ok(Origin {
        connect_timeout,
        timeout,
        kind,
    })
}
