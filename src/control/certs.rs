//! Certificates uploaded through the admin API: checked on upload (a PEM chain and the key
//! that matches its leaf, valid now, naming DNS names), kept in the fleet's state store (the
//! private state bucket, as the ACME certificates are) and served by every PoP for the names
//! they list, from the next handshake on.

use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::spaces::SpecError;
use crate::tls::LeafInfo;
use crate::tls::acme::store::short_hash;

/// A certificate as stored (`certs/<id>.json`) and as uploaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertUpload {
    /// The PEM chain, leaf first.
    pub cert: String,
    /// The PEM private key of the leaf.
    pub key: String,
}

/// A usable uploaded certificate.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// The first 16 bytes of the leaf's SHA-256, in hex.
    pub id: String,
    pub leaf: LeafInfo,
    pub key: Arc<CertifiedKey>,
    /// What was uploaded (kept to be stored).
    pub pem: CertUpload,
}

impl Uploaded {
    /// Parses and checks an upload body at `now`; errors name the field.
    pub fn from_json(body: &[u8], now: SystemTime) -> Result<Uploaded, SpecError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| SpecError(format!("body: not JSON: {e}")))?;
        let Value::Object(fields) = value else {
            return Err(SpecError("body: must be a JSON object".to_owned()));
        };
        if let Some(unknown) = fields
            .keys()
            .find(|k| !matches!(k.as_str(), "cert" | "key"))
        {
            return Err(SpecError(format!("{unknown}: unknown field")));
        }
        let text = |name: &str| match fields.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(SpecError(format!("{name}: must be a string of PEM"))),
            None => Err(SpecError(format!("{name}: is required"))),
        };
        let pem = CertUpload {
            cert: text("cert")?,
            key: text("key")?,
        };
        let uploaded = Uploaded::from_pem(pem)?;
        if uploaded.leaf.not_after <= now {
            return Err(SpecError(format!(
                "cert: expired on {}",
                httpdate::fmt_http_date(uploaded.leaf.not_after)
            )));
        }
        if uploaded.leaf.not_before > now {
            return Err(SpecError(format!(
                "cert: not valid before {}",
                httpdate::fmt_http_date(uploaded.leaf.not_before)
            )));
        }
        Ok(uploaded)
    }

    /// The certificate `pem` holds, if its key matches its leaf and the leaf names DNS names.
    pub fn from_pem(pem: CertUpload) -> Result<Uploaded, SpecError> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(pem.cert.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| SpecError(format!("cert: not a PEM chain: {e}")))?;
        let Some(leaf) = chain.first() else {
            return Err(SpecError("cert: no PEM certificate".to_owned()));
        };
        let leaf_info =
            LeafInfo::parse(leaf).map_err(|e| SpecError(format!("cert: unreadable: {e}")))?;
        if leaf_info.dns_names.is_empty() {
            return Err(SpecError("cert: the leaf names no DNS names".to_owned()));
        }
        let id = short_hash(leaf.as_ref());
        let private = PrivateKeyDer::from_pem_slice(pem.key.as_bytes())
            .map_err(|e| SpecError(format!("key: not a PEM private key: {e}")))?;
        let key = CertifiedKey::from_der(chain, private, &crate::tls::provider())
            .map_err(|e| SpecError(format!("key: {e}")))?;
        key.keys_match()
            .map_err(|_| SpecError("key: does not match the certificate".to_owned()))?;
        Ok(Uploaded {
            id,
            leaf: leaf_info,
            key: Arc::new(key),
            pem,
        })
    }

    /// The API's JSON of this certificate (never the key).
    pub fn view(&self, source: &str) -> Value {
        json!({
            "id": self.id,
            "names": self.leaf.dns_names,
            "not_after": httpdate::fmt_http_date(self.leaf.not_after),
            "source": source,
        })
    }
}
