//! The PoP's configuration: loaded from TOML, validated into typed values with errors that
//! name the key and the reason.

mod raw;
mod secret;
mod units;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use serde::Serialize;

pub use raw::RawConfig;
pub use secret::Secret;
pub use units::{format_duration, format_size, parse_duration, parse_size};

/// A config that cannot be used, with the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML or a key has the wrong type or is unknown.
    #[error("{key}: {reason}")]
    Parse { key: String, reason: String },
    /// A key has a value that cannot be used.
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// The validated configuration of one PoP.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    pub pop: Pop,
    pub listen: Listen,
    pub cdn: Cdn,
    pub tls: Tls,
    pub acme: Option<Acme>,
    pub cache: Cache,
    pub origin: Origin,
    #[serde(rename = "space")]
    pub spaces: Vec<Space>,
    pub purge: Purge,
    pub parent: Option<Parent>,
    pub log: Log,
    pub limits: Limits,
}

/// `[pop]`: this PoP's identity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pop {
    /// Appears in Cache-Status, metrics and purge replies.
    pub name: String,
}

/// `[listen]`: the addresses to bind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listen {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub admin_tls: bool,
}

/// `[cdn]`: the domain under which edge URLs live.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cdn {
    /// Lower-case, without a trailing dot, e.g. `cdn.localhost`.
    pub domain: String,
}

/// `[tls]`: certificates chosen by SNI.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tls {
    pub self_signed: bool,
    #[serde(rename = "cert")]
    pub certs: Vec<CertFiles>,
    /// How often uploaded certificate files are checked for changes (zero: only on SIGHUP).
    #[serde(serialize_with = "ser_duration")]
    pub watch_interval: Duration,
}

/// One certificate chain and key on disk, and the names it serves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertFiles {
    pub names: Vec<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub default: bool,
}

/// Where the ACME state is kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AcmeStore {
    /// A directory on this PoP.
    Dir(PathBuf),
    /// The `edge-acme` bucket of the origin, shared by the fleet.
    Origin,
}

/// Which ACME challenge to answer.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AcmeChallenge {
    Http01,
    TlsAlpn01,
}

/// `[acme]`: automatic certificates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Acme {
    pub directory: String,
    pub contact: Vec<String>,
    pub ca_roots: Option<PathBuf>,
    pub store: AcmeStore,
    pub challenge: AcmeChallenge,
    /// How often the store is checked for certificates other PoPs obtained or renewed.
    #[serde(serialize_with = "ser_duration")]
    pub poll_interval: Duration,
    /// The first retry delay after a failed order; doubled on each failure up to `retry_max`.
    #[serde(serialize_with = "ser_duration")]
    pub retry_min: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub retry_max: Duration,
    /// How long an order lease is held before another PoP may take it over.
    #[serde(serialize_with = "ser_duration")]
    pub lease: Duration,
}

/// `[cache]`: the tiers and the default freshness.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cache {
    #[serde(serialize_with = "ser_size")]
    pub memory: u64,
    pub disk_path: PathBuf,
    #[serde(serialize_with = "ser_size")]
    pub disk: u64,
    #[serde(serialize_with = "ser_duration")]
    pub default_ttl: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub negative_ttl: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub stale_grace: Duration,
    /// Largest object kept in the memory tier.
    #[serde(serialize_with = "ser_size")]
    pub max_memory_object: u64,
}

/// `[origin]`: where misses are fetched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Origin {
    #[serde(serialize_with = "ser_duration")]
    pub connect_timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    #[serde(flatten)]
    pub kind: OriginKind,
}

/// The three kinds of origin.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OriginKind {
    /// Our own S3 store, run in-process by `edge serve`.
    Embedded(EmbeddedOrigin),
    /// Any S3-compatible endpoint.
    S3(S3Origin),
    /// A generic HTTP origin: path and query forwarded as they are.
    Http {
        #[serde(serialize_with = "ser_uri")]
        url: Uri,
    },
}

/// The embedded S3 store's settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmbeddedOrigin {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub domain: Option<String>,
    #[serde(rename = "user")]
    pub users: Vec<OriginUser>,
    /// Whose rights signed spaces read with.
    pub edge_user: String,
    /// Time between two passes of the lifecycle worker.
    #[serde(serialize_with = "ser_duration")]
    pub lifecycle_interval: Duration,
    /// How long one lifecycle "day" lasts.
    #[serde(serialize_with = "ser_duration")]
    pub lifecycle_day: Duration,
}

/// One owner of the embedded store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OriginUser {
    pub id: String,
    pub display_name: String,
    pub email: Option<String>,
    pub access_key: String,
    pub secret_key: Secret,
}

/// An external S3-compatible endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct S3Origin {
    #[serde(serialize_with = "ser_uri")]
    pub endpoint: Uri,
    pub region: String,
    pub credentials: Option<S3Credentials>,
}

/// An access key pair for signing origin requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct S3Credentials {
    pub access_key: String,
    pub secret_key: Secret,
}

/// How a space's certificate is obtained.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SpaceCert {
    /// Covered by `[tls]` (the region wildcard or an uploaded cert listing the name).
    None,
    Acme,
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
}

/// How a space's requests reach the origin.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OriginAuth {
    Anonymous,
    Signed,
}

/// Which part of the query string is in the cache key.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum QueryPolicy {
    Full,
    Ignore,
    Allow(Vec<String>),
}

/// What plain-HTTP requests to a space get.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PlainHttp {
    Serve,
    Redirect,
}

/// `[[space]]`: one space (bucket) served by the CDN.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Space {
    pub name: String,
    pub region: String,
    #[serde(serialize_with = "ser_opt_duration")]
    pub ttl: Option<Duration>,
    pub bucket: String,
    pub custom_domain: Option<String>,
    pub certificate: SpaceCert,
    pub origin_auth: OriginAuth,
    pub query: QueryPolicy,
    pub http: PlainHttp,
    /// Targeted cache-control fields (RFC 9213) the edge obeys before `CDN-Cache-Control`,
    /// first listed first.
    #[serde(serialize_with = "ser_header_names")]
    pub targeted: std::sync::Arc<[http::HeaderName]>,
}

/// Most targeted fields a space may name.
pub const MAX_TARGETED: usize = 8;

/// A space's `targeted`: header names, lower-cased, each once, at most [`MAX_TARGETED`],
/// none that is not a cache-control field of its own (`Cache-Control` and
/// `CDN-Cache-Control` always apply in their places).
fn validate_targeted(
    key: &str,
    names: Option<Vec<String>>,
) -> Result<std::sync::Arc<[http::HeaderName]>, ConfigError> {
    let mut valid: Vec<http::HeaderName> = Vec::new();
    let names = names.unwrap_or_default();
    if names.len() > MAX_TARGETED {
        return Err(invalid(
            key,
            format!("at most {MAX_TARGETED} targeted fields"),
        ));
    }
    for name in names {
        let parsed = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(key, format!("`{name}` is not a header field name")))?;
        if matches!(parsed.as_str(), "cache-control" | "cdn-cache-control") {
            return Err(invalid(
                key,
                format!("`{name}` always applies; list only further fields"),
            ));
        }
        if !valid.contains(&parsed) {
            valid.push(parsed);
        }
    }
    Ok(valid.into())
}

fn ser_header_names<S: serde::Serializer>(
    value: &std::sync::Arc<[http::HeaderName]>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(value.iter().map(http::HeaderName::as_str))
}

/// A named purge token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PurgeToken {
    pub name: String,
    pub token: Secret,
}

/// `[purge]`: who may purge, and which PoPs a purge reaches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Purge {
    pub tokens: Vec<PurgeToken>,
    pub peer_token: Option<Secret>,
    pub peers: Vec<String>,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    /// Where pending purges and the purge journal are kept (memory only when unset).
    pub state_dir: Option<PathBuf>,
    /// Extra roots (PEM) trusted for peers' and the parent's admin TLS.
    pub ca_roots: Option<PathBuf>,
}

/// `[parent]`: a shield PoP that misses are fetched through.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Parent {
    #[serde(serialize_with = "ser_uri")]
    pub url: Uri,
    pub admin: Option<String>,
}

/// Access-log format.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AccessLog {
    Json,
    Combined,
    Off,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Log {
    pub access: AccessLog,
    pub access_path: Option<PathBuf>,
}

/// `[limits]`: protection against slow or greedy clients.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limits {
    #[serde(serialize_with = "ser_size")]
    pub max_header_size: u64,
    #[serde(serialize_with = "ser_duration")]
    pub header_read_timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub idle_timeout: Duration,
    pub max_concurrent_streams: u32,
    pub max_connections: u32,
    #[serde(serialize_with = "ser_duration")]
    pub shutdown_grace: Duration,
}

fn ser_duration<S: serde::Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*value))
}

fn ser_opt_duration<S: serde::Serializer>(
    value: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}

fn ser_size<S: serde::Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_size(*value))
}

fn ser_uri<S: serde::Serializer>(value: &Uri, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

impl Config {
    /// Reads and validates the config file at `path`; relative paths in it are taken from the
    /// directory the process runs in.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw = parse_raw(text)?;
        validate(raw)
    }

    /// The effective config as TOML, secrets masked.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print config: {e}\n"))
    }

    /// The space with this name.
    pub fn space(&self, name: &str) -> Option<&Space> {
        self.spaces.iter().find(|s| s.name == name)
    }
}

fn parse_raw(text: &str) -> Result<RawConfig, ConfigError> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| ConfigError::Parse {
        key: line_of(text, e.span()),
        reason: e.message().trim().to_owned(),
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let key = if path == "." || path.is_empty() {
            line_of(text, inner.span())
        } else {
            path
        };
        ConfigError::Parse {
            key,
            reason: inner.message().trim().to_owned(),
        }
    })
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}")
        }
        None => "config".to_owned(),
    }
}

fn size(key: &str, value: Option<&str>, default: u64) -> Result<u64, ConfigError> {
    match value {
        Some(text) => parse_size(text).map_err(|reason| invalid(key, reason)),
        None => Ok(default),
    }
}

fn duration(key: &str, value: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    match value {
        Some(text) => parse_duration(text).map_err(|reason| invalid(key, reason)),
        None => Ok(default),
    }
}

fn socket_addr(key: &str, value: Option<&str>) -> Result<Option<SocketAddr>, ConfigError> {
    value
        .map(|text| {
            text.parse().map_err(|_| {
                invalid(
                    key,
                    format!("`{text}` is not an address like 127.0.0.1:8080"),
                )
            })
        })
        .transpose()
}

/// Resolves `<name>` / `<name>_env` into a secret.
fn secret(
    key: &str,
    inline: Option<&str>,
    env: Option<&str>,
) -> Result<Option<Secret>, ConfigError> {
    match (inline, env) {
        (Some(_), Some(_)) => Err(invalid(
            key,
            format!("give either {key} or {key}_env, not both"),
        )),
        (Some(""), None) => Err(invalid(key, "is empty")),
        (Some(value), None) => Ok(Some(Secret::new(value))),
        (None, Some(var)) => match std::env::var(var) {
            Ok(value) if !value.is_empty() => Ok(Some(Secret::new(value))),
            Ok(_) => Err(invalid(
                format!("{key}_env"),
                format!("environment variable {var} is empty"),
            )),
            Err(_) => Err(invalid(
                format!("{key}_env"),
                format!("environment variable {var} is not set"),
            )),
        },
        (None, None) => Ok(None),
    }
}

/// Lower-cases a host name and strips a trailing dot; rejects what cannot be a host.
pub fn normalize_host(name: &str) -> Option<String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*')
        });
    let ip = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok();
    (valid || ip).then_some(name)
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn uri(key: &str, text: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = text
        .parse()
        .map_err(|_| invalid(key, format!("`{text}` is not a URL")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") if uri.host().is_some() => Ok(uri),
        _ => Err(invalid(
            key,
            format!("`{text}` must be an http:// or https:// URL"),
        )),
    }
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
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
        let space = validate_space(i, s, &acme)?;
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
    })
}

fn validate_acme(raw: raw::RawAcme) -> Result<Acme, ConfigError> {
    let directory = raw
        .directory
        .unwrap_or_else(|| "https://acme-staging-v02.api.letsencrypt.org/directory".to_owned());
    uri("acme.directory", &directory)?;
    let store = match (raw.store.as_deref(), raw.cache_dir) {
        (Some("origin"), None) => AcmeStore::Origin,
        (Some("origin"), Some(_)) => {
            return Err(invalid(
                "acme.store",
                "give either store = \"origin\" or cache_dir, not both",
            ));
        }
        (Some(other), _) => {
            return Err(invalid(
                "acme.store",
                format!("`{other}` is not a store (only \"origin\")"),
            ));
        }
        (None, dir) => AcmeStore::Dir(dir.unwrap_or_else(|| "data/acme".to_owned()).into()),
    };
    let challenge = match raw.challenge.as_deref() {
        None | Some("http-01") => AcmeChallenge::Http01,
        Some("tls-alpn-01") => AcmeChallenge::TlsAlpn01,
        Some(other) => {
            return Err(invalid(
                "acme.challenge",
                format!("`{other}` is not http-01 or tls-alpn-01"),
            ));
        }
    };
    let poll_interval = duration(
        "acme.poll_interval",
        raw.poll_interval.as_deref(),
        Duration::from_secs(10),
    )?;
    if poll_interval.is_zero() {
        return Err(invalid("acme.poll_interval", "must be more than 0s"));
    }
    let retry_min = duration(
        "acme.retry_min",
        raw.retry_min.as_deref(),
        Duration::from_secs(10),
    )?;
    let retry_max = duration(
        "acme.retry_max",
        raw.retry_max.as_deref(),
        Duration::from_secs(6 * 3600),
    )?;
    if retry_min.is_zero() || retry_max < retry_min {
        return Err(invalid(
            "acme.retry_max",
            "retry_min must be more than 0s and at most retry_max",
        ));
    }
    let lease = duration("acme.lease", raw.lease.as_deref(), Duration::from_secs(300))?;
    if lease < Duration::from_secs(10) {
        return Err(invalid("acme.lease", "must be at least 10s"));
    }
    Ok(Acme {
        directory,
        contact: raw.contact,
        ca_roots: raw.ca_roots.map(PathBuf::from),
        store,
        challenge,
        poll_interval,
        retry_min,
        retry_max,
        lease,
    })
}

fn validate_origin(raw: raw::RawOrigin) -> Result<Origin, ConfigError> {
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
            })
        }
        "s3" => {
            reject(raw.listen.is_some(), "listen")?;
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

fn validate_space(i: usize, s: raw::RawSpace, acme: &Option<Acme>) -> Result<Space, ConfigError> {
    let key = |field: &str| format!("space[{i}].{field}");
    if !is_dns_label(&s.name) {
        return Err(invalid(
            key("name"),
            format!(
                "`{}` must be one lower-case DNS label (a-z, 0-9, -)",
                s.name
            ),
        ));
    }
    let region = s.region.unwrap_or_else(|| "local".to_owned());
    if !is_dns_label(&region) {
        return Err(invalid(
            key("region"),
            format!("`{region}` must be one lower-case DNS label"),
        ));
    }
    let ttl = s
        .ttl
        .map(|t| parse_duration(&t).map_err(|r| invalid(key("ttl"), r)))
        .transpose()?;
    let bucket = s.bucket.unwrap_or_else(|| s.name.clone());
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.']);
    if !bucket_ok {
        return Err(invalid(
            key("bucket"),
            format!("`{bucket}` is not a valid S3 bucket name (3-63 of a-z 0-9 . -)"),
        ));
    }
    let custom_domain = s
        .custom_domain
        .map(|d| {
            normalize_host(&d)
                .ok_or_else(|| invalid(key("custom_domain"), format!("`{d}` is not a host name")))
        })
        .transpose()?;
    let certificate = match s.certificate {
        None => SpaceCert::None,
        Some(raw::RawSpaceCert::Named(n)) if n == "acme" => {
            if acme.is_none() {
                return Err(invalid(
                    key("certificate"),
                    "is \"acme\" but there is no [acme] section",
                ));
            }
            if custom_domain.is_none() {
                return Err(invalid(
                    key("certificate"),
                    "\"acme\" needs a custom_domain",
                ));
            }
            SpaceCert::Acme
        }
        Some(raw::RawSpaceCert::Named(n)) => {
            return Err(invalid(
                key("certificate"),
                format!("`{n}` is not \"acme\" or {{ cert = ..., key = ... }}"),
            ));
        }
        Some(raw::RawSpaceCert::Files { cert, key: k }) => SpaceCert::Files {
            cert: cert.into(),
            key: k.into(),
        },
    };
    let origin_auth = match s.origin_auth.as_deref() {
        None | Some("anonymous") => OriginAuth::Anonymous,
        Some("signed") => OriginAuth::Signed,
        Some(other) => {
            return Err(invalid(
                key("origin_auth"),
                format!("`{other}` is not anonymous or signed"),
            ));
        }
    };
    let query = match s.query {
        None => QueryPolicy::Full,
        Some(raw::RawQuery::Named(n)) if n == "full" => QueryPolicy::Full,
        Some(raw::RawQuery::Named(n)) if n == "ignore" => QueryPolicy::Ignore,
        Some(raw::RawQuery::Named(n)) => {
            return Err(invalid(
                key("query"),
                format!("`{n}` is not \"full\", \"ignore\" or {{ allow = [...] }}"),
            ));
        }
        Some(raw::RawQuery::Allow { mut allow }) => {
            allow.sort();
            allow.dedup();
            QueryPolicy::Allow(allow)
        }
    };
    let http = match s.http.as_deref() {
        None | Some("serve") => PlainHttp::Serve,
        Some("redirect") => PlainHttp::Redirect,
        Some(other) => {
            return Err(invalid(
                key("http"),
                format!("`{other}` is not serve or redirect"),
            ));
        }
    };
    let targeted = validate_targeted(&key("targeted"), s.targeted)?;
    Ok(Space {
        name: s.name,
        region,
        ttl,
        bucket,
        custom_domain,
        certificate,
        origin_auth,
        query,
        http,
        targeted,
    })
}

fn validate_purge(raw: raw::RawPurge) -> Result<Purge, ConfigError> {
    let mut tokens = Vec::new();
    if let Some(token) = secret(
        "purge.token",
        raw.token.as_deref(),
        raw.token_env.as_deref(),
    )? {
        tokens.push(PurgeToken {
            name: "default".to_owned(),
            token,
        });
    }
    for (i, t) in raw.tokens.into_iter().enumerate() {
        let key = format!("purge.tokens[{i}]");
        if t.name.is_empty() || tokens.iter().any(|o| o.name == t.name) {
            return Err(invalid(
                format!("{key}.name"),
                "must be non-empty and unique",
            ));
        }
        let token = secret(
            &format!("{key}.token"),
            t.token.as_deref(),
            t.token_env.as_deref(),
        )?
        .ok_or_else(|| invalid(format!("{key}.token"), "is required (inline or token_env)"))?;
        tokens.push(PurgeToken {
            name: t.name,
            token,
        });
    }
    for t in &tokens {
        if t.token.expose().len() < 8 {
            return Err(invalid(
                "purge.token",
                format!("token `{}` must be at least 8 characters", t.name),
            ));
        }
    }
    let peer_token = secret(
        "purge.peer_token",
        raw.peer_token.as_deref(),
        raw.peer_token_env.as_deref(),
    )?
    .or_else(|| tokens.first().map(|t| t.token.clone()));
    let mut peers = Vec::new();
    for (i, p) in raw.peers.into_iter().enumerate() {
        uri(&format!("purge.peers[{i}]"), &p)?;
        peers.push(p.trim_end_matches('/').to_owned());
    }
    if !peers.is_empty() && peer_token.is_none() {
        return Err(invalid(
            "purge.peers",
            "peers need a token to send (purge.token or purge.peer_token_env)",
        ));
    }
    Ok(Purge {
        tokens,
        peer_token,
        peers,
        timeout: duration(
            "purge.timeout",
            raw.timeout.as_deref(),
            Duration::from_secs(2),
        )?,
        state_dir: raw.state_dir.map(PathBuf::from),
        ca_roots: raw.ca_roots.map(PathBuf::from),
    })
}

#[cfg(test)]
mod tests;
