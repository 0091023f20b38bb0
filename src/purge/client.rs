//! The `edge purge` client of the admin API.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use super::{PurgeReply, PurgeRequest};
use crate::http_client::{ClientBuilder, HttpsClient};

/// How long the CLI waits for a TCP connection to the admin listener.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a purge through the CLI failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad admin URL: {0}")]
    Url(String),
    #[error("cannot reach the admin API: {0}")]
    Transport(String),
    #[error("the PoP refused the purge ({status}): {body}")]
    Refused { status: u16, body: String },
}

/// What the admin API answered.
#[derive(Debug)]
pub struct PurgeOutcome {
    /// The reply body as JSON text.
    pub reply: String,
    /// Whether every PoP reported `done`.
    pub all_done: bool,
}

/// Sends `request` (paths, tags, soft) for `space` to the admin API at `admin`.
pub async fn purge(
    admin: &str,
    token: &str,
    space: &str,
    request: &PurgeRequest,
    ca_roots: Option<&std::path::Path>,
) -> Result<PurgeOutcome, ClientError> {
    let url = format!("{}/v1/spaces/{space}/cache", admin.trim_end_matches('/'));
    let uri: http::Uri = url
        .parse()
        .map_err(|e| ClientError::Url(format!("{url}: {e}")))?;
    let body = serde_json::to_string(request).map_err(|e| ClientError::Url(e.to_string()))?;
    let request = http::Request::delete(uri)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| ClientError::Url(e.to_string()))?;
    let client: HttpsClient<Full<Bytes>> = ClientBuilder::new(
        crate::tls::client_config_with_roots(ca_roots),
        CONNECT_TIMEOUT,
    )
    .build();
    let response = client
        .request(request)
        .await
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| ClientError::Transport(e.to_string()))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    if !status.is_success() {
        return Err(ClientError::Refused {
            status: status.as_u16(),
            body: text,
        });
    }
    let reply: PurgeReply = serde_json::from_str(&text)
        .map_err(|e| ClientError::Transport(format!("bad reply: {e}")))?;
    let all_done = reply.pops.iter().all(|p| p.status == "done");
    Ok(PurgeOutcome {
        reply: text,
        all_done,
    })
}
