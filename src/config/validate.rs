//! Validation of the whole file: each section checked, cross-section rules last.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::acme::validate_acme;
use super::admin::{validate_admin, validate_control};
use super::fields::*;
use super::origin::validate_origin;
use super::purge::validate_purge;
use super::space::validate_space;
use super::*;

pub(super) fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let pop = Pop {
        name: raw.pop.name.unwrap_or_else(|| "edge".to_owned()),
    };
    if pop.name.is_empty() || pop.name.contains([';', ',', '"', ' ']) {
        return Err(invalid(
            "pop.name",
            "must be non-empty without spaces, ';', ',' or '\"'",
        ));
    }

    let listen = Listen {
        http: socket_addr("listen.http", raw.listen.http.as_deref())?,
        https: socket_addr("listen.https", raw.listen.https.as_deref())?,
        admin: socket_addr("listen.admin", raw.listen.admin.as_deref())?,
        admin_tls: raw.listen.admin_tls,
    };
    if listen.http.is_none() && listen.https.is_none() {
        return Err(invalid(
            "listen",
            "set at least one of listen.http and listen.https",
        ));
    }
    let bound: Vec<(&str, SocketAddr)> = [
        ("listen.http", listen.http),
        ("listen.https", listen.https),
        ("listen.admin", listen.admin),
    ]
    .into_iter()
    .filter_map(|(k, a)| a.map(|a| (k, a)))
    .collect();
    for (i, (key, addr)) in bound.iter().enumerate() {
        if addr.port() != 0 && bound[..i].iter().any(|(_, other)| other == addr) {
            return Err(invalid(
                *key,
                format!("listening address {addr} is already used"),
            ));
        }
    }

    let domain = raw.cdn.domain.unwrap_or_else(|| "cdn.localhost".to_owned());
    let cdn = Cdn {
        domain: normalize_host(&domain)
            .ok_or_else(|| invalid("cdn.domain", format!("`{domain}` is not a domain name")))?,
    };

    let mut certs = Vec::new();
    for (i, c) in raw.tls.cert.into_iter().enumerate() {
        let key = format!("tls.cert[{i}]");
        let mut names = Vec::new();
        for name in &c.names {
            names.push(normalize_host(name).ok_or_else(|| {
                invalid(
                    format!("{key}.names"),
                    format!("`{name}` is not a host name"),
                )
            })?);
        }
        if names.is_empty() && !c.default {
            return Err(invalid(
                format!("{key}.names"),
                "list at least one name, or set default = true",
            ));
        }
        certs.push(CertFiles {
            names,
            cert: c.cert.into(),
            key: c.key.into(),
            default: c.default,
        });
    }
    if certs.iter().filter(|c| c.default).count() > 1 {
        return Err(invalid(
            "tls.cert",
            "only one certificate may be the default",
        ));
    }
    if listen.admin_tls && !raw.tls.self_signed && !certs.iter().any(|c| c.default) {
        return Err(invalid(
            "listen.admin_tls",
            "needs a default certificate: tls.self_signed = true or a [[tls.cert]] with default = true",
        ));
    }
    let tls = Tls {
        self_signed: raw.tls.self_signed,
        certs,
        watch_interval: duration(
            "tls.watch_interval",
            raw.tls.watch_interval.as_deref(),
            Duration::from_secs(10),
        )?,
    };

    let acme = raw.acme.map(validate_acme).transpose()?;

    let cache = Cache {
        memory: size("cache.memory", raw.cache.memory.as_deref(), 256 << 20)?,
        disk_path: raw
            .cache
            .disk_path
            .unwrap_or_else(|| "data/cache".to_owned())
            .into(),
        disk: size("cache.disk", raw.cache.disk.as_deref(), 10 << 30)?,
        default_ttl: duration(
            "cache.default_ttl",
            raw.cache.default_ttl.as_deref(),
            Duration::from_secs(3600),
        )?,
        negative_ttl: duration(
            "cache.negative_ttl",
            raw.cache.negative_ttl.as_deref(),
            Duration::from_secs(10),
        )?,
        stale_grace: duration(
            "cache.stale_grace",
            raw.cache.stale_grace.as_deref(),
            Duration::from_secs(3600),
        )?,
        max_memory_object: 0,
        compress_min: size(
            "cache.compress_min",
            raw.cache.compress_min.as_deref(),
            1 << 10,
        )?,
    };
    let max_memory_object = size(
        "cache.max_memory_object",
        raw.cache.max_memory_object.as_deref(),
        (cache.memory / 8).min(64 << 20),
    )?;
    if max_memory_object > cache.memory {
        return Err(invalid(
            "cache.max_memory_object",
            "must not exceed cache.memory",
        ));
    }
    let cache = Cache {
        max_memory_object,
        ..cache
    };

    let origin = validate_origin(raw.origin)?;
    if let Some(Acme {
        store: AcmeStore::Origin,
        ..
    }) = &acme
    {
        match &origin.kind {
            OriginKind::Embedded(_) => {}
            OriginKind::S3(s3) if s3.credentials.is_some() => {}
            _ => {
                return Err(invalid(
                    "acme.store",
                    "\"origin\" needs origin.kind = \"embedded\", or \"s3\" with access_key and secret_key",
                ));
            }
        }
    }

    let mut spaces = Vec::new();
    let mut names = HashSet::new();
    let mut domains = HashSet::new();
    for (i, s) in raw.spaces.into_iter().enumerate() {
        let space = validate_space(&format!("space[{i}]"), s, &acme)?;
        if !names.insert(space.name.clone()) {
            return Err(invalid(
                format!("space[{i}].name"),
                format!("space `{}` is defined twice", space.name),
            ));
        }
        if let Some(d) = &space.custom_domain {
            if !domains.insert(d.clone()) {
                return Err(invalid(
                    format!("space[{i}].custom_domain"),
                    format!("`{d}` is used by another space"),
                ));
            }
            if d.ends_with(&format!(".{}", cdn.domain)) {
                return Err(invalid(
                    format!("space[{i}].custom_domain"),
                    format!("`{d}` lies under cdn.domain"),
                ));
            }
        }
        spaces.push(space);
    }

    let purge = validate_purge(raw.purge)?;
    let parent = raw
        .parent
        .map(|p| {
            Ok::<_, ConfigError>(Parent {
                url: uri("parent.url", &p.url)?,
                admin: p
                    .admin
                    .map(|a| uri("parent.admin", &a).map(|_| a.trim_end_matches('/').to_owned()))
                    .transpose()?,
            })
        })
        .transpose()?;

    let log = Log {
        access: match raw.log.access.as_deref() {
            None | Some("off") => AccessLog::Off,
            Some("json") => AccessLog::Json,
            Some("combined") => AccessLog::Combined,
            Some(other) => {
                return Err(invalid(
                    "log.access",
                    format!("`{other}` is not one of json, combined, off"),
                ));
            }
        },
        access_path: raw.log.access_path.map(PathBuf::from),
    };

    let limits = Limits {
        max_header_size: size(
            "limits.max_header_size",
            raw.limits.max_header_size.as_deref(),
            64 << 10,
        )?,
        header_read_timeout: duration(
            "limits.header_read_timeout",
            raw.limits.header_read_timeout.as_deref(),
            Duration::from_secs(10),
        )?,
        idle_timeout: duration(
            "limits.idle_timeout",
            raw.limits.idle_timeout.as_deref(),
            Duration::from_secs(60),
        )?,
        max_concurrent_streams: raw.limits.max_concurrent_streams.unwrap_or(128),
        max_connections: raw.limits.max_connections.unwrap_or(10_000),
        shutdown_grace: duration(
            "limits.shutdown_grace",
            raw.limits.shutdown_grace.as_deref(),
            Duration::from_secs(30),
        )?,
    };
    if limits.max_header_size < 1024 {
        return Err(invalid("limits.max_header_size", "must be at least 1KiB"));
    }
    if limits.header_read_timeout.is_zero() {
        return Err(invalid(
            "limits.header_read_timeout",
            "must be more than 0s",
        ));
    }

    let admin = validate_admin(raw.admin, &purge)?;
    let control = validate_control(raw.control, &origin.kind)?;

    Ok(Config {
        pop,
        listen,
        cdn,
        tls,
        acme,
        cache,
        origin,
        spaces,
        purge,
        parent,
        log,
        limits,
        admin,
        control,
    })
}
