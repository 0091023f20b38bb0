//! The TLS client config the edge uses towards origins, parents and peers, and the one it
//! uses towards its own embedded origin when that serves HTTPS.

use hyper_rustls::ConfigBuilderExt;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;

use crate::config::{Config, OriginKind};

/// Web PKI roots, rustls' safe defaults, our crypto provider.
pub fn client_config() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(super::provider())
        .with_safe_default_protocol_versions()
        .expect("the default crypto provider supports the default TLS versions")
        .with_webpki_roots()
        .with_no_client_auth()
}

/// Like [`client_config`], also trusting the PEM certificates in `extra_roots` (a private CA
/// for the admin listeners of a fleet). Unreadable files are reported, not fatal.
pub fn client_config_with_roots(extra_roots: Option<&std::path::Path>) -> rustls::ClientConfig {
    let Some(path) = extra_roots else {
        return client_config();
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    use rustls::pki_types::pem::PemObject;
    match rustls::pki_types::CertificateDer::pem_file_iter(path) {
        Ok(certs) => {
            for cert in certs.flatten() {
                if let Err(e) = roots.add(cert) {
                    tracing::warn!(path = %path.display(), error = %e, "purge.ca_roots: certificate skipped");
                }
            }
        }
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "purge.ca_roots: cannot read"),
    }
    rustls::ClientConfig::builder_with_provider(super::provider())
        .with_safe_default_protocol_versions()
        .expect("the default crypto provider supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// How the edge's own clients check the embedded origin when it serves HTTPS
/// (`origin.tls`): the TLS config and the name its certificate must carry (`origin.domain`,
/// else `localhost`). Trusted: the Web PKI roots, the certificates of `[[tls.cert]]` files
/// (every certificate of each chain, so a self-signed or private-CA chain works), and the
/// self-signed certificates this process generated (`tls.self_signed`). None when the
/// origin is not embedded or serves plain HTTP.
pub fn embedded_origin_tls(config: &Config) -> Option<(rustls::ClientConfig, ServerName<'static>)> {
    let OriginKind::Embedded(embedded) = &config.origin.kind else {
        return None;
    };
    if !embedded.tls {
        return None;
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in super::generated_certificates() {
        let _ = roots.add(cert);
    }
    for files in &config.tls.certs {
        match rustls::pki_types::CertificateDer::pem_file_iter(&files.cert) {
            Ok(certs) => {
                for cert in certs.flatten() {
                    let _ = roots.add(cert);
                }
            }
            Err(e) => {
                tracing::warn!(path = %files.cert.display(), error = %e, "cannot read certificate to trust for the embedded origin");
            }
        }
    }
    let name = embedded
        .domain
        .clone()
        .unwrap_or_else(|| "localhost".to_owned());
    let name = ServerName::try_from(name).ok()?;
    let tls = rustls::ClientConfig::builder_with_provider(super::provider())
        .with_safe_default_protocol_versions()
        .expect("the default crypto provider supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Some((tls, name))
}
