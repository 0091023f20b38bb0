//! The config file as written: serde structs that reject unknown keys, before validation.

use serde::Deserialize;

/// The whole file, as parsed from TOML.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub pop: RawPop,
    #[serde(default)]
    pub listen: RawListen,
    #[serde(default)]
    pub cdn: RawCdn,
    #[serde(default)]
    pub tls: RawTls,
    pub acme: Option<RawAcme>,
    #[serde(default)]
    pub cache: RawCache,
    #[serde(default)]
    pub origin: RawOrigin,
    #[serde(default, rename = "space")]
    pub spaces: Vec<RawSpace>,
    #[serde(default)]
    pub purge: RawPurge,
    pub parent: Option<RawParent>,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub control: RawControl,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPop {
    pub name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    pub http: Option<String>,
    pub https: Option<String>,
    pub admin: Option<String>,
    #[serde(default)]
    pub admin_tls: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCdn {
    pub domain: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    #[serde(default)]
    pub self_signed: bool,
    #[serde(default)]
    pub cert: Vec<RawCert>,
    pub watch_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCert {
    pub names: Vec<String>,
    pub cert: String,
    pub key: String,
    #[serde(default)]
    pub default: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAcme {
    pub directory: Option<String>,
    #[serde(default)]
    pub contact: Vec<String>,
    pub ca_roots: Option<String>,
    pub cache_dir: Option<String>,
    pub store: Option<String>,
    pub challenge: Option<String>,
    pub poll_interval: Option<String>,
    pub retry_min: Option<String>,
    pub retry_max: Option<String>,
    pub lease: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub memory: Option<String>,
    pub disk_path: Option<String>,
    pub disk: Option<String>,
    pub default_ttl: Option<String>,
    pub negative_ttl: Option<String>,
    pub stale_grace: Option<String>,
    pub max_memory_object: Option<String>,
    pub compress_min: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrigin {
    pub kind: Option<String>,
    pub connect_timeout: Option<String>,
    pub timeout: Option<String>,
    // embedded
    pub listen: Option<String>,
    pub data_dir: Option<String>,
    pub domain: Option<String>,
    #[serde(default, rename = "user")]
    pub users: Vec<RawUser>,
    pub edge_user: Option<String>,
    pub lifecycle_interval: Option<String>,
    pub lifecycle_day: Option<String>,
    pub log_flush: Option<String>,
    pub tls: Option<bool>,
    // s3
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub secret_key_env: Option<String>,
    // http
    pub url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub id: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub access_key: String,
    pub secret_key: Option<String>,
    pub secret_key_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpace {
    pub name: String,
    pub region: Option<String>,
    pub ttl: Option<String>,
    pub bucket: Option<String>,
    pub custom_domain: Option<String>,
    pub certificate: Option<RawSpaceCert>,
    pub origin_auth: Option<String>,
    pub query: Option<RawQuery>,
    pub http: Option<String>,
    pub compress: Option<bool>,
    /// Targeted cache-control fields (RFC 9213) read before `CDN-Cache-Control`.
    pub targeted: Option<Vec<String>>,
}

/// `certificate = "acme"` or `certificate = { cert = "...", key = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawSpaceCert {
    Named(String),
    Files { cert: String, key: String },
}

/// `query = "full" | "ignore"` or `query = { allow = [...] }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawQuery {
    Named(String),
    Allow { allow: Vec<String> },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPurge {
    pub token: Option<String>,
    pub token_env: Option<String>,
    #[serde(default)]
    pub tokens: Vec<RawToken>,
    pub peer_token: Option<String>,
    pub peer_token_env: Option<String>,
    #[serde(default)]
    pub peers: Vec<String>,
    pub timeout: Option<String>,
    pub state_dir: Option<String>,
    pub ca_roots: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    pub name: String,
    pub token: Option<String>,
    pub token_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParent {
    pub url: String,
    pub admin: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub access: Option<String>,
    pub access_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_header_size: Option<String>,
    pub header_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_concurrent_streams: Option<u32>,
    pub max_connections: Option<u32>,
    pub shutdown_grace: Option<String>,
}

/// `[admin]`: tokens of the control-plane API.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    #[serde(default)]
    pub tokens: Vec<RawAdminToken>,
}

/// One `[[admin.tokens]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdminToken {
    pub name: String,
    pub token: Option<String>,
    pub token_env: Option<String>,
    pub scopes: Option<Vec<String>>,
}

/// `[control]`: where the fleet's shared state lives and how often it is read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawControl {
    pub state_dir: Option<String>,
    pub poll_interval: Option<String>,
    pub origin_enforces_keys: Option<bool>,
}
