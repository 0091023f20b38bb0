//! Reading certificate chains and keys from PEM files, and making self-signed ones.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::{TlsError, provider};

/// Loads a PEM chain (leaf first) and its private key.
pub fn load_pem(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let load_err = |path: &Path, reason: String| TlsError::Load {
        path: path.display().to_string(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| load_err(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| load_err(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(load_err(cert, "no certificate in the file".to_owned()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| load_err(key, e.to_string()))?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| load_err(key, e.to_string()))
}

/// Parses a private key and a chain (leaf first) from PEM text holding both, in any order.
pub fn parse_pem_bundle(pem: &[u8]) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if chain.is_empty() {
        return Err("no certificate in the PEM text".to_owned());
    }
    let private = PrivateKeyDer::from_pem_slice(pem).map_err(|e| e.to_string())?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| e.to_string())
}

/// The self-signed certificates this process generated (the newest last, at most
/// [`MAX_GENERATED`]): the edge trusts them when it talks to its own embedded origin.
static GENERATED: std::sync::Mutex<Vec<CertificateDer<'static>>> =
    std::sync::Mutex::new(Vec::new());
const MAX_GENERATED: usize = 64;

/// The self-signed certificates this process generated.
pub fn generated_certificates() -> Vec<CertificateDer<'static>> {
    GENERATED.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// A self-signed certificate for `names` (development and tests); IP addresses among them
/// become IP address names.
pub fn self_signed(names: &[String]) -> Result<CertifiedKey, TlsError> {
    let generated = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    let der = generated.cert.der().clone();
    {
        let mut all = GENERATED.lock().unwrap_or_else(|p| p.into_inner());
        if all.len() >= MAX_GENERATED {
            all.remove(0);
        }
        all.push(der.clone());
    }
    CertifiedKey::from_der(vec![der], key, &provider())
        .map_err(|e| TlsError::SelfSigned(e.to_string()))
}

/// What the edge needs to know about a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafInfo {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// Lower-case hex, without separators.
    pub serial: String,
    /// DNS names of the subject alternative name extension, lower-case.
    pub dns_names: Vec<String>,
}

impl LeafInfo {
    /// Reads the leaf (first) certificate of `key`.
    pub fn of(key: &CertifiedKey) -> Result<LeafInfo, String> {
        let leaf = key.end_entity_cert().map_err(|e| e.to_string())?;
        LeafInfo::parse(leaf)
    }

    /// Reads one DER certificate.
    pub fn parse(der: &[u8]) -> Result<LeafInfo, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
        let time = |t: x509_parser::time::ASN1Time| {
            let secs = t.timestamp();
            if secs >= 0 {
                SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
            } else {
                SystemTime::UNIX_EPOCH
            }
        };
        let validity = cert.validity();
        let dns_names = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => {
                        Some(dns.to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(LeafInfo {
            not_before: time(validity.not_before),
            not_after: time(validity.not_after),
            serial: cert
                .raw_serial()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            dns_names,
        })
    }

    /// When to renew: after two thirds of the lifetime.
    pub fn renew_at(&self) -> SystemTime {
        let lifetime = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        self.not_before + lifetime.mul_f64(2.0 / 3.0)
    }

    /// Whether the certificate names `domain` (exactly or by a wildcard one label up).
    pub fn covers(&self, domain: &str) -> bool {
        let domain = domain.to_ascii_lowercase();
        self.dns_names.iter().any(|name| {
            name == &domain
                || name.strip_prefix("*.").is_some_and(|suffix| {
                    domain
                        .split_once('.')
                        .is_some_and(|(_, parent)| parent == suffix)
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_info_of_a_generated_certificate() {
        let key = self_signed(&["a.example.test".into(), "*.b.example.test".into()]).unwrap();
        let info = LeafInfo::of(&key).unwrap();
        assert!(info.covers("a.example.test"));
        assert!(info.covers("x.b.example.test"));
        assert!(!info.covers("b.example.test"));
        assert!(!info.covers("y.a.example.test"));
        assert!(info.not_before < info.renew_at() && info.renew_at() < info.not_after);
        assert!(!info.serial.is_empty());
    }

    #[test]
    fn bundle_round_trip_and_garbage() {
        let generated = rcgen::generate_simple_self_signed(vec!["c.example.test".into()]).unwrap();
        let pem = format!(
            "{}{}",
            generated.signing_key.serialize_pem(),
            generated.cert.pem()
        );
        let key = parse_pem_bundle(pem.as_bytes()).unwrap();
        assert!(LeafInfo::of(&key).unwrap().covers("c.example.test"));
        assert!(parse_pem_bundle(b"not pem").is_err());
        assert!(parse_pem_bundle(generated.cert.pem().as_bytes()).is_err());
    }
}
