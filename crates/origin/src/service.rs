//! The hyper layer around s3s: request ids on every answer (header and `<RequestId>` in error
//! bodies), the refusals decided before s3s sees a request (`gate`), CORS preflight
//! (`OPTIONS`, which s3s does not route), CORS headers on actual responses, the request's
//! context (`request`) and its access log record (`access_log`).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use s3s::service::S3Service;
use s3s::{Body, S3Error, S3ErrorCode};
use tracing::Instrument;

use crate::access_log::Pending;
use crate::cors;
use crate::error::StoreError;
use crate::gate;
use crate::request::{Connection, RequestInfo};
use crate::store::State;

/// One request's view of the store.
#[derive(Clone)]
pub(crate) struct OriginService {
    state: Arc<State>,
    s3: S3Service,
}

type HttpResponse = Response<Body>;

fn request_id() -> String {
    let id = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .to_ascii_uppercase();
    id[..16].to_owned()
}

pub(crate) fn error_response(code: S3ErrorCode, message: &str) -> HttpResponse {
    S3Error::with_message(code, message.to_owned())
        .to_http_response()
        .unwrap_or_else(|_| {
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            resp
        })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Adds the request id headers, puts it in error bodies, and empties 304 bodies.
fn finish(mut resp: HttpResponse, id: &str) -> HttpResponse {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert("x-amz-id-2", v.clone());
        resp.headers_mut().insert("x-amz-request-id", v);
    }
    let status = resp.status();
    if status == StatusCode::NOT_MODIFIED {
        *resp.body_mut() = Body::empty();
        resp.headers_mut().remove(header::CONTENT_LENGTH);
        resp.headers_mut().remove(header::CONTENT_TYPE);
    } else if (status.is_client_error() || status.is_server_error())
        && let Some(body) = resp.body().bytes()
        && find(&body, b"<RequestId>").is_none()
        && let Some(pos) = find(&body, b"</Error>")
    {
        let mut out = BytesMut::with_capacity(body.len() + 48);
        out.extend_from_slice(&body[..pos]);
        out.extend_from_slice(b"<RequestId>");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b"</RequestId>");
        out.extend_from_slice(&body[pos..]);
        let out: Bytes = out.freeze();
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
        *resp.body_mut() = Body::from(out);
    }
    resp
}

impl OriginService {
    pub(crate) fn new(state: Arc<State>, s3: S3Service) -> Self {
        OriginService { state, s3 }
    }

    /// The bucket a request addresses (virtual-hosted or path-style), if any.
    fn bucket_of<B>(&self, req: &Request<B>) -> Option<String> {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        if let (Some(domain), Some(host)) = (&self.state.domain, host)
            && let Some(bucket) = domain.bucket_of(host)
        {
            return Some(bucket);
        }
        let path = req.uri().path().trim_start_matches('/');
        let first = path.split('/').next().filter(|s| !s.is_empty())?;
        percent_encoding::percent_decode_str(first)
            .decode_utf8()
            .ok()
            .map(|s| s.into_owned())
    }

    fn cors_rules(&self, bucket: &str) -> Result<Option<Vec<cors::CorsRule>>, StoreError> {
        Ok(self.state.index.bucket(bucket)?.and_then(|b| b.cors))
    }

    /// Answers a CORS preflight from the bucket's rules.
    fn preflight(&self, req: &Request<Incoming>) -> HttpResponse {
        let forbidden = |msg: &str| {
            let mut e = S3Error::with_message(
                S3ErrorCode::Custom("AccessForbidden".into()),
                msg.to_owned(),
            );
            e.set_status_code(StatusCode::FORBIDDEN);
            e.to_http_response()
                .unwrap_or_else(|_| error_response(S3ErrorCode::InternalError, "internal error"))
        };
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let bad_request = |msg: &str| {
            let mut e =
                S3Error::with_message(S3ErrorCode::Custom("BadRequest".into()), msg.to_owned());
            e.set_status_code(StatusCode::BAD_REQUEST);
            e.to_http_response()
                .unwrap_or_else(|_| error_response(S3ErrorCode::InternalError, "internal error"))
        };
        let Some(origin) = header("origin") else {
            return bad_request("Insufficient information. Origin request header needed.");
        };
        let Some(method) = header("access-control-request-method") else {
            return bad_request("Invalid Access-Control-Request-Method header.");
        };
        let Some(bucket) = self.bucket_of(req) else {
            return forbidden("CORSResponse: Bucket not found");
        };
        let rules = match self.cors_rules(&bucket) {
            Ok(Some(rules)) => rules,
            Ok(None) => return forbidden("CORSResponse: CORS is not enabled for this bucket."),
            Err(e) => {
                return S3Error::from(e)
                    .to_http_response()
                    .unwrap_or_else(|_| error_response(S3ErrorCode::InternalError, ""));
            }
        };
        let requested = cors::parse_request_headers(header("access-control-request-headers"));
        match cors::find_rule(&rules, origin, method, &requested) {
            Some(rule) => {
                let mut resp = Response::new(Body::empty());
                *resp.headers_mut() = cors::preflight_headers(rule, origin, &requested);
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
                resp
            }
            None => forbidden(
                "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, \
                 request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted \
                 by the resource's CORS spec.",
            ),
        }
    }

    /// Handles one request that came on `conn`.
    pub(crate) async fn handle(
        &self,
        req: Request<Incoming>,
        conn: Arc<Connection>,
    ) -> HttpResponse {
        let started = std::time::Instant::now();
        let id = request_id();
        let pending = if self.state.logs.any() {
            self.bucket_of(&req)
                .and_then(|bucket| Pending::begin(&self.state, &req, bucket, &conn, started))
        } else {
            None
        };
        let info = RequestInfo::new(conn);
        let resp = info.scope(self.respond(req, &id)).await;
        match pending {
            Some(pending) => pending.finish(&self.state, resp, &info, &id),
            None => resp,
        }
    }

    async fn respond(&self, req: Request<Incoming>, id: &str) -> HttpResponse {
        if req.method() == Method::OPTIONS {
            return finish(self.preflight(&req), id);
        }
        if let Some(refusal) = gate::check(&req, &self.state) {
            return finish(refusal, id);
        }
        // An actual request is matched with the method it announces in
        // `Access-Control-Request-Method`, if any (as S3 does), else its own.
        let cors_ctx = req
            .headers()
            .get("origin")
            .and_then(|o| o.to_str().ok())
            .map(str::to_owned)
            .and_then(|origin| {
                let method = req
                    .headers()
                    .get("access-control-request-method")
                    .and_then(|m| m.to_str().ok())
                    .unwrap_or(req.method().as_str())
                    .to_owned();
                Some((origin, self.bucket_of(&req)?, method))
            });
        let span = tracing::debug_span!("s3", request_id = %id, method = %req.method(), path = %req.uri().path());
        let mut req = req;
        crate::metadata::transcode_request(req.headers_mut());
        let req = if crate::spool::needs_length(&req)
            && gate::is_streamed_write(
                &req,
                &self.state,
                &crate::sigv2::Query::parse(req.uri().query().unwrap_or_default()),
            ) {
            match crate::spool::with_length(req, self.state.blobs.tmp_dir()).await {
                Ok(req) => req,
                Err(e) => {
                    let resp = e.to_http_response().unwrap_or_else(|_| {
                        error_response(S3ErrorCode::InternalError, "internal error")
                    });
                    return finish(resp, id);
                }
            }
        } else {
            req.map(Body::from)
        };
        let resp = match self.s3.call(req).instrument(span).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::error!(error = ?e, request_id = %id, "s3 service failed");
                error_response(
                    S3ErrorCode::InternalError,
                    "We encountered an internal error. Please try again.",
                )
            }
        };
        let mut resp = finish(resp, id);
        crate::metadata::latin1_response(resp.headers_mut());
        if let Some((origin, bucket, method)) = cors_ctx
            && let Ok(Some(rules)) = self.cors_rules(&bucket)
            && let Some(rule) = cors::find_rule(&rules, &origin, &method, &[])
        {
            resp.headers_mut()
                .extend(cors::actual_headers(rule, &origin));
        }
        resp
    }
}
