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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::sign::CertifiedKey;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::tls::{CertStore, SniResolver};

    /// Serves TLS handshakes on port 0 with `key`; returns the address.
    async fn tls_server(key: CertifiedKey) -> std::net::SocketAddr {
        let mut store = CertStore::default();
        store.set_default(Arc::new(key));
        let config = crate::tls::server_config(Arc::new(SniResolver::new(store))).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tls.write_all(b"x").await;
                    let _ = tls.shutdown().await;
                }
            }
        });
        addr
    }

    async fn connects(config: &Config, addr: std::net::SocketAddr) -> bool {
        let (tls, name) = embedded_origin_tls(config).expect("origin.tls is on");
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        match connector.connect(name, tcp).await {
            Ok(mut stream) => {
                let mut buf = [0u8; 1];
                stream.read_exact(&mut buf).await.is_ok()
            }
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn the_embedded_origin_is_trusted_only_with_a_certificate_we_hold() {
        let config = Config::parse(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[origin]\nkind = \"embedded\"\ntls = true\n\
             [[origin.user]]\nid = \"a\"\naccess_key = \"AKID\"\nsecret_key = \"secret-key-1\"\n",
        )
        .unwrap();
        // A self-signed certificate for `localhost` that nothing configured: refused.
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let stranger = CertifiedKey::from_der(
            vec![generated.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(generated.signing_key.serialize_der())
                .unwrap(),
            &crate::tls::provider(),
        )
        .unwrap();
        let stranger = tls_server(stranger).await;
        assert!(
            !connects(&config, stranger).await,
            "a certificate nobody configured is refused"
        );
        // One this process generated (`tls.self_signed`): trusted.
        let ours = tls_server(crate::tls::self_signed(&["localhost".to_owned()]).unwrap()).await;
        assert!(connects(&config, ours).await);
        // Plain HTTP to the origin means no TLS config at all.
        let plain = Config::parse(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[origin]\nkind = \"embedded\"\n\
             [[origin.user]]\nid = \"a\"\naccess_key = \"AKID\"\nsecret_key = \"secret-key-1\"\n",
        )
        .unwrap();
        assert!(embedded_origin_tls(&plain).is_none());
    }
}
