//! Access keys limited to buckets (Spaces' limited access keys) as fleet data: each key is one
//! record `keys/<access key>.json` in the fleet's private state store (secret included: SigV4
//! needs it to check signatures, so it is kept as the ACME private keys are), written once
//! with a write-if-absent and never edited. The PoP that runs the embedded store hands every
//! key to it ([`origin_store::Store::set_limited_keys`]) whenever the set changes: on its own
//! write at once, on a peer's when told or when polling.
//!
//! Keys exist only where our store enforces them: a PoP with the embedded origin, or one whose
//! `s3` origin is another PoP's embedded store (`control.origin_enforces_keys`); in front of any
//! other origin the key API answers 409.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::spaces::SpecError;
use super::{ControlError, ControlPlane, STATE_BUCKET};
use crate::config::{Config, OriginKind};
use crate::origin_store;
use crate::tls::acme::store::{StoreError, Write};

/// Where key records are kept in the store.
const KEYS: &str = "keys/";

/// Length of an access key id, as AWS's.
const ACCESS_KEY_LEN: usize = 20;
/// Length of a secret, as AWS's.
const SECRET_LEN: usize = 40;
/// What every access key id starts with (the rest is random base32).
const ACCESS_KEY_PREFIX: &str = "EK";
/// Longest key name accepted.
const MAX_NAME: usize = 128;
/// Most grants one key may carry.
const MAX_GRANTS: usize = 100;

/// What a grant allows on its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    ReadWrite,
}

/// One bucket a key may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub bucket: String,
    pub access: Access,
}

/// A key as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub access_key: String,
    pub secret_key: String,
    pub name: String,
    pub grants: Vec<Grant>,
    pub created_at: String,
}

impl KeyRecord {
    /// Whether the record is one the API could have made: a secret of full length and
    /// grants only on bucket names a key may be given.
    fn is_sound(&self) -> bool {
        self.secret_key.len() == SECRET_LEN
            && !self.grants.is_empty()
            && self.grants.iter().all(|g| is_bucket_name(&g.bucket))
    }
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("access_key", &self.access_key)
            .field("name", &self.name)
            .field("grants", &self.grants)
            .finish_non_exhaustive()
    }
}

impl KeyRecord {
    /// The API's JSON of the key, never with its secret.
    pub fn view(&self) -> Value {
        json!({
            "access_key": self.access_key,
            "name": self.name,
            "grants": self.grants,
            "created_at": self.created_at,
        })
    }

    /// The API's JSON of a key just created: the only time its secret is shown.
    pub fn view_with_secret(&self) -> Value {
        let mut view = self.view();
        view["secret_key"] = json!(self.secret_key);
        view
    }
}

/// Why a key request failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Bad input; the message names the field.
    #[error(transparent)]
    Invalid(#[from] SpecError),
    #[error("no key `{0}`")]
    NotFound(String),
    #[error(
        "this PoP's origin is not the fleet's embedded store: the cluster's own tools manage \
         its keys (set control.origin_enforces_keys when the s3 origin is an edge's embedded \
         origin)"
    )]
    Foreign,
    #[error("no secure random numbers: {0}")]
    Random(String),
    #[error(transparent)]
    Control(#[from] ControlError),
}

impl From<StoreError> for KeyError {
    fn from(e: StoreError) -> KeyError {
        KeyError::Control(ControlError::Store(e))
    }
}

impl KeyError {
    /// The HTTP status the API answers with.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            KeyError::Invalid(_) => StatusCode::BAD_REQUEST,
            KeyError::NotFound(_) => StatusCode::NOT_FOUND,
            KeyError::Foreign => StatusCode::CONFLICT,
            KeyError::Random(_) => StatusCode::INTERNAL_SERVER_ERROR,
            KeyError::Control(e) => e.status(),
        }
    }
}

/// The keys as this PoP knows them, and the embedded store they are enforced by (on the PoP
/// that runs it).
#[derive(Default)]
pub struct KeyRing {
    /// Records by access key, with the version read.
    records: Mutex<BTreeMap<String, (String, KeyRecord)>>,
    /// One change or refresh at a time.
    changing: tokio::sync::Mutex<()>,
    /// The embedded store and the user its keys act as.
    store: OnceLock<(origin_store::Store, String)>,
}

impl KeyRing {
    fn records(&self) -> MutexGuard<'_, BTreeMap<String, (String, KeyRecord)>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands every key to the embedded store, if this PoP runs it.
    fn enforce(&self) {
        let Some((store, user)) = self.store.get() else {
            return;
        };
        let keys: Vec<origin_store::LimitedKey> = self
            .records()
            .values()
            .map(|(_, record)| origin_store::LimitedKey {
                access_key: record.access_key.clone(),
                secret_key: record.secret_key.clone(),
                user_id: user.clone(),
                grants: record
                    .grants
                    .iter()
                    .map(|g| origin_store::BucketGrant {
                        bucket: g.bucket.clone(),
                        access: match g.access {
                            Access::Read => origin_store::KeyAccess::Read,
                            Access::ReadWrite => origin_store::KeyAccess::ReadWrite,
                        },
                    })
                    .collect(),
            })
            .collect();
        if let Err(e) = store.set_limited_keys(&keys) {
            // Never keep a revoked key working: install the keys the store accepts one by
            // one (a record colliding with a configured user is the one left out).
            tracing::error!(error = %e, "the embedded origin refused the access key set; installing the keys it accepts");
            let mut accepted: Vec<origin_store::LimitedKey> = Vec::new();
            for key in keys {
                accepted.push(key);
                if let Err(e) = store.set_limited_keys(&accepted) {
                    let refused = accepted.pop().map(|k| k.access_key);
                    tracing::error!(access_key = ?refused, error = %e, "access key refused by the embedded origin");
                }
            }
            if let Err(e) = store.set_limited_keys(&accepted) {
                tracing::error!(error = %e, "the embedded origin refused every access key; none is accepted");
                let _ = store.set_limited_keys(&[]);
            }
        }
    }
}

/// Whether this PoP's origin enforces the keys (see the module's doc).
pub fn keys_enforced(config: &Config) -> bool {
    match &config.origin.kind {
        OriginKind::Embedded(_) => true,
        OriginKind::S3 { .. } => config.control.origin_enforces_keys,
        OriginKind::Http { .. } => false,
    }
}

impl ControlPlane {
    /// Makes the embedded store enforce the keys, acting as `edge_user` (the PoP that runs
    /// it calls this once, before its first refresh).
    pub fn attach_key_store(&self, store: origin_store::Store, edge_user: String) {
        if self.keys.store.set((store, edge_user)).is_ok() {
            self.keys.enforce();
        }
    }

    fn keys_check(&self) -> Result<(), KeyError> {
        if keys_enforced(&self.origin.0) {
            Ok(())
        } else {
            Err(KeyError::Foreign)
        }
    }

    /// The keys, by access key.
    pub fn keys(&self) -> Result<Vec<KeyRecord>, KeyError> {
        self.keys_check()?;
        Ok(self
            .keys
            .records()
            .values()
            .map(|(_, r)| r.clone())
            .collect())
    }

    /// Creates a key from an API body; the record, secret included.
    pub async fn create_key(&self, body: &[u8]) -> Result<KeyRecord, KeyError> {
        self.keys_check()?;
        let (name, grants) = parse_create(body)?;
        let store = self.store()?;
        let _one = self.keys.changing.lock().await;
        // A clash of 90 random bits is not expected; a few tries cover a broken generator
        // without looping forever.
        for _ in 0..4 {
            let record = KeyRecord {
                access_key: random_access_key()?,
                secret_key: random_secret()?,
                name: name.clone(),
                grants: grants.clone(),
                created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                    .to_string(),
            };
            let body = serde_json::to_vec_pretty(&record)
                .map(Bytes::from)
                .map_err(|e| SpecError(format!("body: {e}")))?;
            let key = key_of(&record.access_key);
            if let Some(etag) = store.put(&key, body, Write::IfAbsent).await? {
                self.keys
                    .records()
                    .insert(record.access_key.clone(), (etag, record.clone()));
                self.keys.enforce();
                return Ok(record);
            }
        }
        Err(KeyError::Random(
            "generated access keys keep clashing".to_owned(),
        ))
    }

    /// Deletes the key `access_key`.
    pub async fn delete_key(&self, access_key: &str) -> Result<(), KeyError> {
        self.keys_check()?;
        if !is_access_key(access_key) {
            return Err(KeyError::NotFound(access_key.to_owned()));
        }
        let store = self.store()?;
        let _one = self.keys.changing.lock().await;
        let key = key_of(access_key);
        if store.get(&key).await?.is_none() {
            return Err(KeyError::NotFound(access_key.to_owned()));
        }
        store.delete(&key).await?;
        self.keys.records().remove(access_key);
        self.keys.enforce();
        Ok(())
    }

    /// Reads the keys again (where they are enforced); `true` when one was added or removed.
    pub async fn refresh_keys(&self) -> Result<bool, ControlError> {
        if self.keys_check().is_err() {
            return Ok(false);
        }
        let store = self.store()?;
        let _one = self.keys.changing.lock().await;
        let known: super::Records<KeyRecord> = self
            .keys
            .records()
            .iter()
            .map(|(k, (etag, record))| {
                let value = record.clone();
                (
                    k.clone(),
                    super::Versioned {
                        etag: etag.clone(),
                        value,
                    },
                )
            })
            .collect();
        // Checked as the API checks what it stores: a record written behind its back never
        // grants the fleet's state buckets or signs with a short secret.
        let (fresh, changed) = super::read_records(store.as_ref(), KEYS, &known, |ak, body| {
            serde_json::from_slice::<KeyRecord>(body)
                .ok()
                .filter(|r| is_access_key(ak) && r.access_key == ak && r.is_sound())
        })
        .await?;
        *self.keys.records() = fresh
            .into_iter()
            .map(|(k, v)| (k, (v.etag, v.value)))
            .collect();
        if changed {
            self.keys.enforce();
        }
        Ok(changed)
    }
}

/// Parses a create body: `{"name", "grants": [{"bucket", "access"}]}`, naming the field that
/// is wrong.
fn parse_create(body: &[u8]) -> Result<(String, Vec<Grant>), SpecError> {
    let bad = |field: &str, reason: &str| SpecError(format!("{field}: {reason}"));
    let value: Value =
        serde_json::from_slice(body).map_err(|e| SpecError(format!("body: not JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(bad("body", "must be a JSON object"));
    };
    only_fields(&fields, "", &["name", "grants"])?;
    let name = match fields.get("name") {
        Some(Value::String(name)) if !name.trim().is_empty() && name.len() <= MAX_NAME => {
            if name.chars().any(char::is_control) {
                return Err(bad("name", "must not hold control characters"));
            }
            name.clone()
        }
        Some(Value::String(_)) => {
            return Err(bad(
                "name",
                &format!("must be 1 to {MAX_NAME} bytes, not blank"),
            ));
        }
        None | Some(Value::Null) => return Err(bad("name", "is required")),
        Some(_) => return Err(bad("name", "must be a string")),
    };
    let grants = match fields.get("grants") {
        Some(Value::Array(grants)) if !grants.is_empty() && grants.len() <= MAX_GRANTS => grants,
        Some(Value::Array(_)) => {
            return Err(bad(
                "grants",
                &format!("must list 1 to {MAX_GRANTS} buckets"),
            ));
        }
        None | Some(Value::Null) => return Err(bad("grants", "is required")),
        Some(_) => return Err(bad("grants", "must be an array")),
    };
    let grants = grants
        .iter()
        .enumerate()
        .map(|(i, grant)| parse_grant(&format!("grants[{i}]"), grant))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((name, grants))
}

fn parse_grant(at: &str, grant: &Value) -> Result<Grant, SpecError> {
    let Value::Object(fields) = grant else {
        return Err(SpecError(format!("{at}: must be an object")));
    };
    only_fields(fields, &format!("{at}."), &["bucket", "access"])?;
    let bucket = match fields.get("bucket") {
        Some(Value::String(b)) if is_bucket_name(b) => b.clone(),
        Some(Value::String(b)) if b == STATE_BUCKET || b == crate::tls::acme::store::BUCKET => {
            return Err(SpecError(format!(
                "{at}.bucket: `{b}` holds the fleet's private state"
            )));
        }
        Some(Value::String(b)) => {
            return Err(SpecError(format!(
                "{at}.bucket: `{b}` is not a valid S3 bucket name (3-63 of a-z 0-9 . -)"
            )));
        }
        None | Some(Value::Null) => return Err(SpecError(format!("{at}.bucket: is required"))),
        Some(_) => return Err(SpecError(format!("{at}.bucket: must be a string"))),
    };
    let access = match fields.get("access").and_then(Value::as_str) {
        Some("read") => Access::Read,
        Some("readwrite") => Access::ReadWrite,
        _ => {
            return Err(SpecError(format!(
                "{at}.access: must be \"read\" or \"readwrite\""
            )));
        }
    };
    Ok(Grant { bucket, access })
}

fn only_fields(fields: &Map<String, Value>, at: &str, known: &[&str]) -> Result<(), SpecError> {
    match fields.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(SpecError(format!("{at}{unknown}: unknown field"))),
        None => Ok(()),
    }
}

/// An S3 bucket name a key may be granted (the fleet's own state buckets never are).
fn is_bucket_name(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.'])
        && !bucket.contains("..")
        && bucket != STATE_BUCKET
        && bucket != crate::tls::acme::store::BUCKET
}

/// Whether `text` has the shape of an access key this PoP makes.
fn is_access_key(text: &str) -> bool {
    text.len() == ACCESS_KEY_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn key_of(access_key: &str) -> String {
    format!("{KEYS}{access_key}.json")
}

/// `len` bytes from the system's CSPRNG (aws-lc's).
fn random_bytes<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut bytes = [0u8; N];
    crate::tls::provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|e| KeyError::Random(format!("{e:?}")))?;
    Ok(bytes)
}

/// `EK` and 18 random base32 characters (90 bits).
fn random_access_key() -> Result<String, KeyError> {
    const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bytes = random_bytes::<{ ACCESS_KEY_LEN - 2 }>()?;
    let mut key = String::with_capacity(ACCESS_KEY_LEN);
    key.push_str(ACCESS_KEY_PREFIX);
    // 256 is a multiple of 32: every character equally likely.
    key.extend(
        bytes
            .iter()
            .map(|b| char::from(BASE32[usize::from(b % 32)])),
    );
    Ok(key)
}

/// 40 random characters of `A-Z a-z 0-9 + /` (240 bits), as AWS secrets look.
fn random_secret() -> Result<String, KeyError> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = random_bytes::<SECRET_LEN>()?;
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b % 64)]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_written_behind_the_apis_back_are_checked() {
        let record = |bucket: &str, secret: &str| KeyRecord {
            access_key: "EKAAAAAAAAAAAAAAAAAA".to_owned(),
            secret_key: secret.to_owned(),
            name: "x".to_owned(),
            grants: vec![Grant {
                bucket: bucket.to_owned(),
                access: Access::Read,
            }],
            created_at: String::new(),
        };
        let full = "s".repeat(SECRET_LEN);
        assert!(record("assets", &full).is_sound());
        assert!(!record("edge-state", &full).is_sound());
        assert!(!record("edge-acme", &full).is_sound());
        assert!(!record("Not_A_Bucket", &full).is_sound());
        assert!(!record("assets", "").is_sound());
    }

    #[test]
    fn keys_have_aws_shapes_and_differ() {
        let a = random_access_key().unwrap();
        let b = random_access_key().unwrap();
        assert!(is_access_key(&a) && a.starts_with("EK"), "{a}");
        assert_ne!(a, b);
        let s = random_secret().unwrap();
        assert_eq!(s.len(), SECRET_LEN);
        assert_ne!(s, random_secret().unwrap());
    }

    #[test]
    fn keys_are_open_where_our_store_enforces_them() {
        let s3 = "[listen]\nhttp = \"127.0.0.1:0\"\n[origin]\nkind = \"s3\"\n\
                  endpoint = \"http://127.0.0.1:9\"\n[[space]]\nname = \"assets\"\n";
        let parse = |extra: &str| Config::parse(&format!("{s3}{extra}"));
        assert!(!keys_enforced(&parse("").unwrap()));
        let ours = parse("[control]\norigin_enforces_keys = true\n").unwrap();
        assert!(keys_enforced(&ours));
        let e = parse("[control]\norigin_enforces_keys = true\nstate_dir = \"/tmp/x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("control.origin_enforces_keys"), "{e}");
    }

    #[test]
    fn bad_bodies_name_the_field() {
        for (body, field) in [
            (r#"{"name": "ci", "grants": [], "x": 1}"#, "x"),
            (
                r#"{"grants": [{"bucket": "assets", "access": "read"}]}"#,
                "name",
            ),
            (
                r#"{"name": " ", "grants": [{"bucket": "assets", "access": "read"}]}"#,
                "name",
            ),
            (r#"{"name": "ci", "grants": []}"#, "grants"),
            (r#"{"name": "ci"}"#, "grants"),
            (
                r#"{"name": "ci", "grants": [{"bucket": "A!", "access": "read"}]}"#,
                "grants[0].bucket",
            ),
            (
                r#"{"name": "ci", "grants": [{"bucket": "edge-state", "access": "read"}]}"#,
                "grants[0].bucket",
            ),
            (
                r#"{"name": "ci", "grants": [{"bucket": "assets", "access": "all"}]}"#,
                "grants[0].access",
            ),
            (
                r#"{"name": "ci", "grants": [{"bucket": "assets", "access": "read", "y": 1}]}"#,
                "grants[0].y",
            ),
            ("[]", "body"),
        ] {
            let e = parse_create(body.as_bytes()).unwrap_err();
            assert!(e.0.starts_with(&format!("{field}:")), "{body}: {e}");
        }
        let (name, grants) = parse_create(
            br#"{"name": "ci", "grants": [{"bucket": "assets", "access": "readwrite"}]}"#,
        )
        .unwrap();
        assert_eq!(name, "ci");
        assert_eq!(grants[0].access, Access::ReadWrite);
    }
}
