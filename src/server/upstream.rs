//! The PoP's origin as fills see it: the [`crate::cache::Origin`] seam implemented by the
//! origin client, with each fetch counted in the metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http::Method;
use hyper::body::Incoming;

use crate::cache::{Entry, FillError, FillRequest, Origin};
use crate::metrics::Metrics;
use crate::origin::{OriginClient, OriginRequest};

/// The origin client and the metrics its fetches are counted in.
pub struct Upstream {
    pub client: OriginClient,
    pub metrics: Arc<Metrics>,
}

/// The origin request for `request` with `method`, revalidating `revalidate` if given.
pub fn origin_request<'a>(
    request: &'a FillRequest,
    method: Method,
    revalidate: Option<&Entry>,
) -> OriginRequest<'a> {
    // Fills (GET, and HEAD revalidations) send what the cache decides; other methods are
    // forwarded with the client's conditional and range fields.
    let pass_through = method != Method::GET && method != Method::HEAD;
    OriginRequest {
        space: &request.space,
        method,
        object_key: &request.object_key,
        path_and_query: &request.path_and_query,
        query: request.query.as_deref(),
        client_headers: &request.client_headers,
        client_addr: request.client_addr,
        tls: request.tls,
        revalidate: revalidate.map(|e| {
            let validators = e.validators();
            (validators.etag, validators.last_modified)
        }),
        pass_through,
    }
}

impl Origin for Upstream {
    fn fetch<'a>(
        &'a self,
        request: &'a FillRequest,
        method: Method,
        revalidate: Option<&'a Entry>,
    ) -> BoxFuture<'a, Result<http::Response<Incoming>, FillError>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self
                .client
                .fetch(&origin_request(request, method, revalidate))
                .await;
            self.metrics.origin_fetch(
                &request.space.name,
                result.is_ok(),
                started.elapsed().as_secs_f64(),
            );
            result.map_err(|e| FillError::Origin(e.status(), e.to_string().into()))
        })
    }

    fn body_timeout(&self) -> Duration {
        self.client.body_timeout()
    }
}
