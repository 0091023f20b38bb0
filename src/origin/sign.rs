//! SigV4 signing of origin requests for spaces with `origin_auth = "signed"`.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use super::OriginError;

/// Credentials and region to sign S3 requests with.
#[derive(Debug, Clone)]
pub struct Signer {
    identity: Identity,
    region: String,
}

impl Signer {
    /// A signer for `access_key`/`secret_key` in `region`.
    pub fn new(access_key: &str, secret_key: &str, region: &str) -> Signer {
        let credentials = Credentials::new(access_key, secret_key, None, None, "edge-config");
        Signer {
            identity: credentials.into(),
            region: region.to_owned(),
        }
    }

    /// Adds `Authorization`, `x-amz-date` and `x-amz-content-sha256` to a bodiless request.
    pub fn sign<B>(
        &self,
        request: &mut http::Request<B>,
        now: SystemTime,
    ) -> Result<(), OriginError> {
        self.sign_with_body(request, &[], now)
    }

    /// Like [`Signer::sign`], for a request whose body is `body` (its SHA-256 is signed).
    pub fn sign_with_body<B>(
        &self,
        request: &mut http::Request<B>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), OriginError> {
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("s3")
            .time(now)
            .settings(settings)
            .build()
            .map_err(|e| OriginError::Request(e.to_string()))?
            .into();
        let uri = request.uri().to_string();
        let headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let signable = SignableRequest::new(
            request.method().as_str(),
            uri,
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| OriginError::Request(e.to_string()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| OriginError::Request(e.to_string()))?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}
