//! One ACME order with instant-acme: the account (kept in the store, shared by the fleet),
//! the challenges (published to the store so any PoP answers), finalization with our own key,
//! and the certificate chain.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::AcmeError;
use super::challenge::{Challenges, Pending};
use super::store::{CertStateStore, Write, keys};
use crate::config::{Acme, AcmeChallenge};
use crate::http_client::{ClientBuilder, HttpsClient};

/// How long one request to the ACME server may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How the order and the certificate are polled: quickly at first (a CA like pebble answers
/// within a second), backing off, for at most a minute and a half.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(200))
    .backoff(1.5)
    .timeout(Duration::from_secs(90));

/// The HTTP client instant-acme talks through: hyper with our rustls provider, trusting the
/// web PKI and `acme.ca_roots`.
#[derive(Clone)]
pub struct AcmeHttp {
    client: HttpsClient<BodyWrapper<Bytes>>,
}

impl AcmeHttp {
    /// A client for `acme`'s directory.
    pub fn new(acme: &Acme) -> Result<AcmeHttp, AcmeError> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &acme.ca_roots {
            let setup = |reason: String| AcmeError::Setup(format!("acme.ca_roots: {reason}"));
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| setup(format!("{}: {e}", path.display())))?
            {
                let cert = cert.map_err(|e| setup(format!("{}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| setup(format!("{}: {e}", path.display())))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| AcmeError::Setup(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(AcmeHttp {
            client: ClientBuilder::new(tls, Duration::from_secs(10))
                .http2()
                .build(),
        })
    }
}

impl instant_acme::HttpClient for AcmeHttp {
    fn request(
        &self,
        request: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let sent = self.client.request(request);
        Box::pin(async move {
            let response = tokio::time::timeout(REQUEST_TIMEOUT, sent)
                .await
                .map_err(|_| instant_acme::Error::Str("the ACME server did not answer in time"))?
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            // Read the body here, within the timeout, so instant-acme never waits on a socket.
            let (parts, body) = response.into_parts();
            let body = tokio::time::timeout(REQUEST_TIMEOUT, body.collect())
                .await
                .map_err(|_| instant_acme::Error::Str("the ACME server did not answer in time"))?
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?
                .to_bytes();
            Ok(BytesResponse::from(http::Response::from_parts(
                parts,
                http_body_util::Full::new(body),
            )))
        })
    }
}

/// The fleet's ACME account for `acme.directory`: read from the store, or registered and
/// stored (if two PoPs register at once, both use the one stored first).
pub async fn account(
    store: &dyn CertStateStore,
    acme: &Acme,
    http: &AcmeHttp,
) -> Result<Account, AcmeError> {
    let key = keys::account(&acme.directory);
    if let Some(stored) = store.get(&key).await? {
        return restore(&stored.body, http).await;
    }
    let contact: Vec<&str> = acme.contact.iter().map(String::as_str).collect();
    let (account, credentials) = Account::builder_with_http(Box::new(http.clone()))
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            acme.directory.clone(),
            None,
        )
        .await?;
    let body = serde_json::to_vec(&credentials)
        .map_err(|e| AcmeError::Setup(format!("account credentials: {e}")))?;
    if store
        .put(&key, Bytes::from(body), Write::IfAbsent)
        .await?
        .is_some()
    {
        tracing::info!(directory = %acme.directory, "registered the ACME account");
        return Ok(account);
    }
    match store.get(&key).await? {
        Some(stored) => restore(&stored.body, http).await,
        None => Ok(account),
    }
}

async fn restore(body: &[u8], http: &AcmeHttp) -> Result<Account, AcmeError> {
    let credentials: AccountCredentials = serde_json::from_slice(body)
        .map_err(|e| AcmeError::Setup(format!("stored ACME account is unreadable: {e}")))?;
    Ok(Account::builder_with_http(Box::new(http.clone()))
        .from_credentials(credentials)
        .await?)
}

/// A certificate as the CA issued it.
#[derive(Debug)]
pub struct Issued {
    /// The private key (PKCS#8) followed by the chain, PEM: what the store keeps.
    pub pem_bundle: String,
}

/// Orders a certificate for `domain`, answering with `kind`; the published challenge answers
/// are withdrawn whatever the outcome.
pub async fn obtain(
    account: &Account,
    domain: &str,
    kind: AcmeChallenge,
    challenges: &Arc<Challenges>,
) -> Result<Issued, AcmeError> {
    let mut published = Vec::new();
    let result = order(account, domain, kind, challenges, &mut published).await;
    for pending in &published {
        challenges.withdraw(pending).await;
    }
    result
}

async fn order(
    account: &Account,
    domain: &str,
    kind: AcmeChallenge,
    challenges: &Arc<Challenges>,
    published: &mut Vec<Pending>,
) -> Result<Issued, AcmeError> {
    let identifiers = [Identifier::Dns(domain.to_owned())];
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let challenge_type = match kind {
        AcmeChallenge::Http01 => ChallengeType::Http01,
        AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
    };

    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization?;
        match authorization.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            status => {
                return Err(AcmeError::Rejected(format!(
                    "authorization is {status:?} before any challenge"
                )));
            }
        }
        let mut challenge = authorization
            .challenge(challenge_type.clone())
            .ok_or_else(|| {
                AcmeError::Rejected(format!("the CA offers no {challenge_type:?} challenge"))
            })?;
        let key_auth = challenge.key_authorization().as_str().to_owned();
        let pending = match kind {
            AcmeChallenge::Http01 => Pending::Http01 {
                token: challenge.token.clone(),
                key_auth,
            },
            AcmeChallenge::TlsAlpn01 => Pending::TlsAlpn01 {
                domain: domain.to_owned(),
                key_auth,
            },
        };
        challenges.publish(&pending).await?;
        published.push(pending);
        challenge.set_ready().await?;
    }

    match order.poll_ready(&POLL).await? {
        OrderStatus::Ready => {}
        status => return Err(AcmeError::Rejected(why_invalid(&mut order, status).await)),
    }

    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()])
        .map_err(|e| AcmeError::Setup(format!("CSR: {e}")))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let key = rcgen::KeyPair::generate().map_err(|e| AcmeError::Setup(format!("key: {e}")))?;
    let csr = params
        .serialize_request(&key)
        .map_err(|e| AcmeError::Setup(format!("CSR: {e}")))?;
    order.finalize_csr(csr.der()).await?;
    let chain = order.poll_certificate(&POLL).await?;
    Ok(Issued {
        pem_bundle: format!("{}{chain}", key.serialize_pem()),
    })
}

/// The CA's reasons an order did not become ready, for the log.
async fn why_invalid(order: &mut instant_acme::Order, status: OrderStatus) -> String {
    let mut reasons = Vec::new();
    if let Some(problem) = &order.state().error {
        reasons.push(problem.to_string());
    }
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        if let Ok(state) = authorization.refresh().await {
            for challenge in &state.challenges {
                if let Some(problem) = &challenge.error {
                    reasons.push(problem.to_string());
                }
            }
        }
    }
    if reasons.is_empty() {
        format!("order is {status:?}")
    } else {
        format!("order is {status:?}: {}", reasons.join("; "))
    }
}
