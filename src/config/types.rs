//! The validated configuration's types: one per section, what the rest of the edge reads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use serde::Serialize;

use super::{Secret, format_duration, format_size};

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
    pub admin: Admin,
    pub control: Control,
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
    /// Smallest body a space with `compress` serves content-coded.
    #[serde(serialize_with = "ser_size")]
    pub compress_min: u64,
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
    /// How often access log records are delivered to their target buckets.
    #[serde(serialize_with = "ser_duration")]
    pub log_flush: Duration,
    /// Serve the store over HTTPS with the `[tls]` certificates.
    pub tls: bool,
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
    /// A certificate uploaded through the admin API (a space created there).
    Uploaded {
        id: String,
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
    /// Whether compressible objects are served `br`, `zstd` or `gzip` as the client accepts.
    pub compress: bool,
    /// Targeted cache-control fields (RFC 9213) the edge obeys before `CDN-Cache-Control`,
    /// first listed first.
    #[serde(serialize_with = "ser_header_names")]
    pub targeted: std::sync::Arc<[http::HeaderName]>,
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

fn ser_header_names<S: serde::Serializer>(
    value: &std::sync::Arc<[http::HeaderName]>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(value.iter().map(http::HeaderName::as_str))
}

/// What an admin token may do (`[[admin.tokens]] scopes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Purges.
    Purge,
    /// Writes (and reads) of spaces.
    Spaces,
    /// Writes (and reads) of certificates.
    Certificates,
    /// Writes (and reads) of access keys.
    Keys,
    /// Every `GET` under `/v1/`.
    Read,
}

impl Scope {
    /// Every scope: what a token without `scopes` gets.
    pub const ALL: [Scope; 5] = [
        Scope::Purge,
        Scope::Spaces,
        Scope::Certificates,
        Scope::Keys,
        Scope::Read,
    ];
}

/// A named admin token and its scopes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdminToken {
    pub name: String,
    pub token: Secret,
    pub scopes: Vec<Scope>,
}

/// `[admin]`: the control-plane API's tokens.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Admin {
    pub tokens: Vec<AdminToken>,
}

/// `[control]`: the fleet's shared state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Control {
    /// A directory for the state (a PoP without a shared origin); else the origin's
    /// `edge-state` bucket.
    pub state_dir: Option<PathBuf>,
    /// How often the state is read again.
    #[serde(serialize_with = "ser_duration")]
    pub poll_interval: Duration,
    /// The `s3` origin is another PoP's embedded store, which enforces the access keys this
    /// PoP writes to the shared state (the key API answers 409 in front of other S3 origins).
    pub origin_enforces_keys: bool,
}
