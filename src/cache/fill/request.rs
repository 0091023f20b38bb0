//! What a fill fetches, and the seam it fetches through: the [`Origin`] a fill is handed
//! (the PoP's origin client in production), so the cache never reaches into the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use http::HeaderMap;
use hyper::body::Incoming;

use super::FillError;
use crate::cache::entry::Entry;
use crate::cache::key::CacheKey;
use crate::config::Space;

/// Everything a fill needs to fetch, owned so the fetch outlives the request that started it.
#[derive(Debug, Clone)]
pub struct FillRequest {
    pub space: Arc<Space>,
    pub key: CacheKey,
    /// The decoded object key.
    pub object_key: String,
    /// What HTTP origins and parents are asked for (built from the key; see
    /// [`crate::origin::http_target`]).
    pub path_and_query: String,
    /// The client's raw query string (S3 origins take presign parameters from it).
    pub query: Option<String>,
    /// The client's request headers, `Host` set to the request's one authority.
    pub client_headers: HeaderMap,
    pub client_addr: SocketAddr,
    pub tls: bool,
    /// Expiry of a presigned URL this fetch carries.
    pub hard_expiry: Option<SystemTime>,
    /// Whether the origin sees the client's headers (HTTP origins and parents, not S3).
    pub forwards_client_headers: bool,
    /// Whether the client's request is a HEAD (a stale entry is then revalidated with one).
    pub head: bool,
}

impl FillRequest {
    /// Whether the response is selected by the request's `Origin` whatever the origin's
    /// `Vary` says: S3 origins answer CORS by it (see [`crate::cache::cors`]).
    pub fn varies_by_origin(&self) -> bool {
        !self.forwards_client_headers
    }
}

/// Where fills fetch from.
pub trait Origin: Send + Sync + 'static {
    /// Sends the fill's `method` (GET, or HEAD to revalidate for a HEAD), conditional on
    /// `revalidate`'s validators when given, and waits for the response head.
    fn fetch<'a>(
        &'a self,
        request: &'a FillRequest,
        method: http::Method,
        revalidate: Option<&'a Entry>,
    ) -> BoxFuture<'a, Result<http::Response<Incoming>, FillError>>;

    /// How long to wait for each piece of body.
    fn body_timeout(&self) -> Duration;
}
