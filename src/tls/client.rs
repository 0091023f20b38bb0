//! The TLS client config the edge uses towards origins, parents and peers.

use hyper_rustls::ConfigBuilderExt;

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
