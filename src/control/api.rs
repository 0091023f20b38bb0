//! The control-plane endpoints of the admin API: `/v1/spaces` (list, create, read, edit,
//! delete) and `/v1/control/sync`, the call peers make after a change.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::ControlError;
use super::auth::{self, Denied, Need};
use super::certs::{CertUpload, Uploaded};
use super::fleet;
use super::spaces::{self, Source, SpaceSpec, SpecError};
use super::sync::SYNC_PATH;
use crate::config::{Scope, Space};
use crate::server::Edge;

/// Largest control request body accepted (a certificate chain with its key fits).
const MAX_BODY: usize = 64 << 10;

/// A control-plane answer: a status and a JSON body (none for 204).
pub struct Reply {
    pub status: StatusCode,
    pub body: Option<Value>,
}

impl Reply {
    fn json(status: StatusCode, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
        }
    }

    pub(super) fn error(status: StatusCode, reason: &str) -> Reply {
        Reply::json(status, json!({ "error": reason }))
    }

    fn no_content() -> Reply {
        Reply {
            status: StatusCode::NO_CONTENT,
            body: None,
        }
    }
}

impl From<Denied> for Reply {
    fn from(denied: Denied) -> Reply {
        let status = match denied {
            Denied::Unauthorized => StatusCode::UNAUTHORIZED,
            Denied::Forbidden => StatusCode::FORBIDDEN,
        };
        Reply::error(status, &denied.to_string())
    }
}

impl From<ControlError> for Reply {
    fn from(e: ControlError) -> Reply {
        Reply::error(e.status(), &e.to_string())
    }
}

/// Whether `path` is a control-plane endpoint (besides purges, which `/v1/spaces/{name}/cache`
/// names).
pub fn is_control_path(path: &str) -> bool {
    path == "/v1/spaces"
        || path == SYNC_PATH
        || path == "/v1/stats"
        || path == "/v1/fleet"
        || path == "/v1/certificates"
        || space_name(path).is_some()
        || cert_id(path).is_some()
}

/// The `{id}` of `/v1/certificates/{id}`.
fn cert_id(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/certificates/")
        .filter(|n| !n.is_empty() && !n.contains('/'))
}

/// The `{name}` of `/v1/spaces/{name}`.
fn space_name(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/spaces/")
        .filter(|n| !n.is_empty() && !n.contains('/'))
}

/// Answers one control-plane request.
pub async fn handle(edge: &Arc<Edge>, request: Request<Incoming>) -> Reply {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let scope = if path.starts_with("/v1/certificates") {
        Scope::Certificates
    } else {
        Scope::Spaces
    };
    let need = match (&method, path.as_str()) {
        (&Method::POST, SYNC_PATH) => Need::Peer,
        (&Method::GET, "/v1/stats" | "/v1/fleet") => Need::Read(Scope::Read),
        (&Method::GET, _) => Need::Read(scope),
        _ => Need::Write(scope),
    };
    let who = match authorize(edge, &request, need) {
        Ok(who) => who,
        Err(denied) => return denied,
    };
    let result = match (&method, path.as_str(), space_name(&path)) {
        (&Method::POST, SYNC_PATH, _) => edge.sync_control().await.map(|_| Reply::no_content()),
        (&Method::GET, "/v1/spaces", _) => Ok(list(edge)),
        (&Method::GET, "/v1/stats", _) => match fleet::stats(edge, request.uri().query()) {
            Ok(stats) => Ok(Reply::json(StatusCode::OK, stats)),
            Err(e) => return e.into(),
        },
        (&Method::GET, "/v1/fleet", _) => Ok(Reply::json(StatusCode::OK, fleet::fleet(edge).await)),
        (&Method::POST, "/v1/spaces", _) => match body(request, MAX_BODY).await {
            Ok(body) => create(edge, &body, &who).await,
            Err(reply) => return reply,
        },
        (&Method::GET, _, Some(name)) => Ok(get(edge, name)),
        (&Method::PATCH, _, Some(name)) => match body(request, MAX_BODY).await {
            Ok(body) => update(edge, name, &body, &who).await,
            Err(reply) => return reply,
        },
        (&Method::DELETE, _, Some(name)) => delete(edge, name, &who).await,
        (&Method::GET, "/v1/certificates", _) => Ok(list_certs(edge)),
        (&Method::POST, "/v1/certificates", _) => match body(request, MAX_BODY).await {
            Ok(body) => upload_cert(edge, &body, &who).await,
            Err(reply) => return reply,
        },
        (&Method::DELETE, _, None) if cert_id(&path).is_some() => {
            delete_cert(edge, cert_id(&path).unwrap_or_default(), &who).await
        }
        _ => return Reply::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here"),
    };
    result.unwrap_or_else(Reply::from)
}

/// Who the request's bearer token is, if it may do what `need` says.
pub(super) fn authorize(
    edge: &Edge,
    request: &Request<Incoming>,
    need: Need,
) -> Result<String, Reply> {
    let authorization = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    auth::authorize(authorization, &edge.live.load().config, need).map_err(Reply::from)
}

/// The request body, at most `limit` bytes.
pub(super) async fn body(request: Request<Incoming>, limit: usize) -> Result<Bytes, Reply> {
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(Reply::error(
            StatusCode::BAD_REQUEST,
            &format!("body: larger than {} KiB, or unreadable", limit >> 10),
        )),
    }
}

/// Where the live space `name` comes from.
fn source_of(edge: &Edge, name: &str) -> Source {
    if edge.base.load().space(name).is_some() {
        Source::Config
    } else {
        Source::Api
    }
}

fn list(edge: &Edge) -> Reply {
    let live = edge.live.load();
    let spaces: Vec<Value> = live
        .config
        .spaces
        .iter()
        .map(|s| spaces::view(s, source_of(edge, &s.name)))
        .collect();
    Reply::json(StatusCode::OK, json!({ "spaces": spaces }))
}

fn get(edge: &Edge, name: &str) -> Reply {
    let live = edge.live.load();
    match live.config.space(name) {
        Some(space) => Reply::json(StatusCode::OK, spaces::view(space, source_of(edge, name))),
        None => ControlError::NotFound(name.to_owned()).into(),
    }
}

async fn create(edge: &Arc<Edge>, body: &[u8], who: &str) -> Result<Reply, ControlError> {
    let mut spec = SpaceSpec::from_json(body)?;
    // Checked against the fleet's latest spaces (names, custom domains), not this PoP's
    // view of one poll ago.
    edge.sync_control().await?;
    // Stored with its region: the space keeps its hostname whatever other spaces come and go.
    if spec.region.is_none() {
        spec.region =
            spaces::default_region(&edge.live.load().config).or_else(|| Some("local".to_owned()));
    }
    let check = |spec: &SpaceSpec| -> Result<Space, ControlError> {
        let live = edge.live.load();
        if live.config.space(&spec.name).is_some() {
            return Err(ControlError::Exists(spec.name.clone()));
        }
        Ok(spec.to_space(&live.config, |id| {
            edge.control.cert(id).map(|c| c.leaf.clone())
        })?)
    };
    let space = edge.control.create(spec, check).await?;
    tracing::info!(token = %who, space = %space.name, "space created");
    edge.control_changed().await;
    Ok(Reply::json(
        StatusCode::CREATED,
        spaces::view(&space, Source::Api),
    ))
}

async fn update(
    edge: &Arc<Edge>,
    name: &str,
    body: &[u8],
    who: &str,
) -> Result<Reply, ControlError> {
    if edge.base.load().space(name).is_some() {
        return Err(ControlError::ReadOnly(name.to_owned()));
    }
    if !crate::config::is_dns_label(name) {
        return Err(ControlError::NotFound(name.to_owned()));
    }
    let check = |spec: &SpaceSpec| -> Result<Space, ControlError> {
        let uploaded = |id: &str| edge.control.cert(id).map(|c| c.leaf.clone());
        Ok(spec.to_space(&edge.live.load().config, uploaded)?)
    };
    let space = edge.control.update(name, body, check).await?;
    tracing::info!(token = %who, space = %name, "space updated");
    edge.control_changed().await;
    Ok(Reply::json(
        StatusCode::OK,
        spaces::view(&space, Source::Api),
    ))
}

async fn delete(edge: &Arc<Edge>, name: &str, who: &str) -> Result<Reply, ControlError> {
    if edge.base.load().space(name).is_some() {
        return Err(ControlError::ReadOnly(name.to_owned()));
    }
    if !crate::config::is_dns_label(name) {
        return Err(ControlError::NotFound(name.to_owned()));
    }
    edge.control.delete(name).await?;
    tracing::info!(token = %who, space = %name, "space deleted");
    edge.control_changed().await;
    Ok(Reply::no_content())
}

impl From<SpecError> for Reply {
    fn from(e: SpecError) -> Reply {
        Reply::error(StatusCode::BAD_REQUEST, &e.0)
    }
}

fn list_certs(edge: &Edge) -> Reply {
    let mut certs: Vec<Value> = edge.control.certs().iter().map(|c| c.view("api")).collect();
    // `[[tls.cert]]` files, read-only here.
    for files in &edge.live.load().config.tls.certs {
        let cert = std::fs::read_to_string(&files.cert);
        let key = std::fs::read_to_string(&files.key);
        if let (Ok(cert), Ok(key)) = (cert, key)
            && let Ok(uploaded) = Uploaded::from_pem(CertUpload { cert, key })
        {
            certs.push(uploaded.view("config"));
        }
    }
    Reply::json(StatusCode::OK, json!({ "certificates": certs }))
}

async fn upload_cert(edge: &Arc<Edge>, body: &[u8], who: &str) -> Result<Reply, ControlError> {
    let cert = Uploaded::from_json(body, edge.cache.now())?;
    let cert = edge.control.upload_cert(cert).await?;
    tracing::info!(token = %who, id = %cert.id, names = ?cert.leaf.dns_names, "certificate uploaded");
    edge.control_changed().await;
    let mut view = cert.view("api");
    if let Value::Object(fields) = &mut view {
        fields.remove("source");
    }
    Ok(Reply::json(StatusCode::CREATED, view))
}

async fn delete_cert(edge: &Arc<Edge>, id: &str, who: &str) -> Result<Reply, ControlError> {
    // The fleet's latest spaces, not this PoP's view of one poll ago.
    edge.sync_control().await?;
    let used_by = edge.control.specs().into_iter().find(|spec| {
        matches!(&spec.certificate, Some(spaces::CertificateRef::Uploaded { id: used }) if used == id)
    });
    if let Some(spec) = used_by {
        return Err(ControlError::CertInUse(id.to_owned(), spec.name));
    }
    edge.control.delete_cert(id).await?;
    tracing::info!(token = %who, %id, "certificate deleted");
    edge.control_changed().await;
    Ok(Reply::no_content())
}
