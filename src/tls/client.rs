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
