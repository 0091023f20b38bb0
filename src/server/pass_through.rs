//! Requests the cache does not store, forwarded as they are: OPTIONS (CORS preflights), and
//! other methods to HTTP origins, where an unsafe method that succeeds invalidates what is
//! stored for its URL (RFC 9111 section 4.4).

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::Edge;
use super::answer::Answer;
use super::body::EdgeBody;
use super::cache_status;
use super::conn::ConnInfo;
use super::handler::UpstreamQuery;
use super::upstream::origin_request;
use crate::cache::fill::driver::end_to_end;
use crate::cache::key::object_key;
use crate::cache::{BypassReason, CacheKey, CacheOutcome, FillError, PurgeSelector};
use crate::config::Space;

impl Edge {
    /// Forwards `request` uncached; `unsafe_method` ones invalidate the URL when they work.
    pub(super) async fn pass_through(
        self: &Arc<Self>,
        space: Arc<Space>,
        request: Request<Incoming>,
        conn: &ConnInfo,
        unsafe_method: bool,
    ) -> Answer {
        let outcome = CacheOutcome::Bypass(BypassReason::Method);
        let (parts, body) = request.into_parts();
        let object_key = match object_key(parts.uri.path()) {
            Ok(key) => key,
            Err(e) => return self.error(StatusCode::BAD_REQUEST, &e.to_string()),
        };
        let forwarded = self.fill_request(
            &space,
            CacheKey::new(&space.name, &object_key, ""),
            object_key.clone(),
            UpstreamQuery::Raw,
            &parts,
            conn,
            None,
        );
        let response = match self
            .upstream
            .client
            .forward(
                &origin_request(&forwarded, parts.method.clone(), None),
                body,
            )
            .await
        {
            Ok(response) => response,
            Err(e) => return self.error(e.status(), "origin unavailable"),
        };
        if unsafe_method && (response.status().is_success() || response.status().is_redirection()) {
            self.cache.purge(&PurgeSelector::Path {
                space: space.name.clone(),
                key: object_key,
            });
        }
        let (mut head, body) = response.into_parts();
        head.headers = end_to_end(head.headers);
        crate::cache::tags::strip(&mut head.headers);
        cache_status::append(
            &mut head.headers,
            &cache_status::render(&outcome, &self.pop_name),
        );
        let body = body
            .map_err(|e| FillError::Body(e.to_string().into()))
            .boxed();
        (Response::from_parts(head, EdgeBody::Stream(body)), outcome)
    }
}
