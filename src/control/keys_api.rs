//! The key endpoints of the admin API: `GET /v1/keys` (no secrets), `POST /v1/keys` (the
//! secret shown once) and `DELETE /v1/keys/{access_key}`; writes need the scope `keys`, reads
//! `keys` or `read`.

use std::sync::Arc;

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::api::{self, Reply};
use super::auth::Need;
use super::keys::KeyError;
use crate::config::Scope;
use crate::server::Edge;

/// Largest key request body accepted.
const MAX_BODY: usize = 16 << 10;

/// Whether `path` is a key endpoint.
pub fn is_keys_path(path: &str) -> bool {
    path == "/v1/keys" || access_key(path).is_some()
}

/// The `{access_key}` of `/v1/keys/{access_key}`.
fn access_key(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/keys/")
        .filter(|k| !k.is_empty() && !k.contains('/'))
}

impl From<KeyError> for Reply {
    fn from(e: KeyError) -> Reply {
        Reply::error(e.status(), &e.to_string())
    }
}

/// Answers one key request.
pub async fn handle(edge: &Arc<Edge>, request: Request<Incoming>) -> Reply {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let need = if method == Method::GET {
        Need::Read(Scope::Keys)
    } else {
        Need::Write(Scope::Keys)
    };
    let who = match api::authorize(edge, &request, need) {
        Ok(who) => who,
        Err(denied) => return denied,
    };
    let result = match (&method, access_key(&path)) {
        (&Method::GET, None) => edge.control.keys().map(|keys| Reply {
            status: StatusCode::OK,
            body: Some(json!({ "keys": keys.iter().map(|k| k.view()).collect::<Vec<Value>>() })),
        }),
        (&Method::POST, None) => match api::body(request, MAX_BODY).await {
            Ok(body) => create(edge, &body, &who).await,
            Err(reply) => return reply,
        },
        (&Method::DELETE, Some(access_key)) => delete(edge, access_key, &who).await,
        _ => return Reply::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here"),
    };
    result.unwrap_or_else(Reply::from)
}

async fn create(edge: &Arc<Edge>, body: &[u8], who: &str) -> Result<Reply, KeyError> {
    let record = edge.control.create_key(body).await?;
    tracing::info!(token = %who, access_key = %record.access_key, name = %record.name, "access key created");
    edge.control_changed().await;
    Ok(Reply {
        status: StatusCode::CREATED,
        body: Some(record.view_with_secret()),
    })
}

async fn delete(edge: &Arc<Edge>, access_key: &str, who: &str) -> Result<Reply, KeyError> {
    edge.control.delete_key(access_key).await?;
    tracing::info!(token = %who, %access_key, "access key deleted");
    edge.control_changed().await;
    Ok(Reply {
        status: StatusCode::NO_CONTENT,
        body: None,
    })
}
