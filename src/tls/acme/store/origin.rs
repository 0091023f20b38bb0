//! The ACME state in the origin's private `edge-acme` bucket, over SigV4-signed S3 requests:
//! what every PoP of a fleet reads and writes. Conditional PUTs (`If-None-Match: *`,
//! `If-Match`) make the order lease safe between PoPs.
//!
//! Ceph's RADOS Gateway (16.2, and DigitalOcean Spaces, which runs it) compares the `If-Match`
//! of a PUT with the stored ETag *without* its quotes, so the quoted entity-tag RFC 9110 asks
//! for never matches there. A quoted `If-Match` refused while the object still carries that
//! very ETag can only be that misreading: the write is asked again with the bare value, and
//! this store sends the bare value from then on. A store that compares as RFC 9110 says never
//! refuses a matching quoted tag, so it never sees the bare form and its lease is as strict as
//! before. RGW also answers a conditional write that lost a race with 500 (where AWS says 409
//! or 412): such a 500 is settled by reading what is stored.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::sync::OnceCell;

use super::{BoxFuture, CertStateStore, Listed, StoreError, Stored, Write, s3_xml, valid_key};
use crate::http_client::{ClientBuilder, HttpsClient};
use crate::origin::Signer;

/// Characters kept as they are in a path or query value (RFC 3986 unreserved).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Largest object or listing page read back.
const MAX_BODY: usize = 4 << 20;

type HttpClient = HttpsClient<Full<Bytes>>;

/// An S3 bucket reached with signed requests.
#[derive(Debug)]
pub struct OriginStore {
    endpoint: String,
    bucket: String,
    region: String,
    signer: Signer,
    client: HttpClient,
    timeout: Duration,
    bucket_ready: OnceCell<()>,
    /// The store compares `If-Match` on PUT with the bare ETag (RGW): send it unquoted.
    bare_if_match: AtomicBool,
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl OriginStore {
    /// A store in `bucket` of the S3 endpoint `endpoint` (e.g. `http://127.0.0.1:9000`); the
    /// bucket is created (private) on first use if missing.
    pub fn new(
        endpoint: &Uri,
        bucket: &str,
        region: &str,
        signer: Signer,
        timeout: Duration,
    ) -> Result<OriginStore, StoreError> {
        Self::with_tls(endpoint, bucket, region, signer, timeout, None)
    }

    /// Like [`OriginStore::new`]; with `tls`, HTTPS is checked with that config and server
    /// name (the embedded origin's, see [`crate::tls::embedded_origin_tls`]).
    pub fn with_tls(
        endpoint: &Uri,
        bucket: &str,
        region: &str,
        signer: Signer,
        timeout: Duration,
        tls: Option<(rustls::ClientConfig, rustls::pki_types::ServerName<'static>)>,
    ) -> Result<OriginStore, StoreError> {
        let (tls, server_name) = match tls {
            Some((tls, name)) => (tls, Some(name)),
            None => (crate::tls::client_config(), None),
        };
        let client = ClientBuilder::new(tls, timeout)
            .server_name(server_name)
            .pool(Duration::from_secs(30), usize::MAX)
            .build();
        Ok(OriginStore {
            endpoint: endpoint.to_string().trim_end_matches('/').to_owned(),
            bucket: bucket.to_owned(),
            region: region.to_owned(),
            signer,
            client,
            timeout,
            bucket_ready: OnceCell::new(),
            bare_if_match: AtomicBool::new(false),
        })
    }

    fn object_url(&self, key: &str) -> String {
        let path: String = key
            .split('/')
            .map(|segment| utf8_percent_encode(segment, UNRESERVED).to_string())
            .collect::<Vec<_>>()
            .join("/");
        format!("{}/{}/{path}", self.endpoint, self.bucket)
    }

    async fn send(
        &self,
        op: &'static str,
        key: &str,
        method: Method,
        url: &str,
        headers: &[(header::HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Reply, StoreError> {
        let transport = |reason: String| StoreError::Transport {
            op,
            key: key.to_owned(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|e| transport(format!("{url}: {e}")))?;
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .body(())
            .map_err(|e| transport(e.to_string()))?;
        for (name, value) in headers {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        if !body.is_empty() {
            request
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        self.signer
            .sign_with_body(&mut request, &body, SystemTime::now())
            .map_err(|e| transport(e.to_string()))?;
        let request = request.map(|()| Full::new(body));
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| transport(error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| transport(e.to_string()))?
                .to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| transport(format!("no answer within {:?}", self.timeout)))?
    }

    fn unexpected(op: &'static str, key: &str, reply: &Reply) -> StoreError {
        StoreError::Status {
            op,
            key: key.to_owned(),
            status: reply.status.as_u16(),
            message: s3_xml::error_code(&reply.body).unwrap_or_else(|| {
                String::from_utf8_lossy(&reply.body[..reply.body.len().min(200)]).into_owned()
            }),
        }
    }

    /// Creates the bucket unless it exists, and makes sure it is this user's (once per
    /// process): a bucket of the same name that another user of the origin created first
    /// (and opened to everyone) would otherwise receive the fleet's private keys.
    async fn ensure_bucket(&self) -> Result<(), StoreError> {
        self.bucket_ready
            .get_or_try_init(|| async {
                self.create_bucket().await?;
                self.check_owned().await?;
                tracing::info!(bucket = %self.bucket, "state bucket ready");
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// Refuses a state bucket this user does not own. ListBuckets names exactly the
    /// caller's own buckets on AWS S3, Ceph RGW and the embedded store alike.
    async fn check_owned(&self) -> Result<(), StoreError> {
        let url = format!("{}/", self.endpoint);
        let listed = self
            .send("ListBuckets", "", Method::GET, &url, &[], Bytes::new())
            .await?;
        if !listed.status.is_success() {
            return Err(Self::unexpected("ListBuckets", "", &listed));
        }
        let names = s3_xml::bucket_names(&listed.body)
            .ok_or_else(|| Self::unexpected("ListBuckets", "", &listed))?;
        if names.contains(&self.bucket) {
            Ok(())
        } else {
            Err(StoreError::NotOwned(self.bucket.clone()))
        }
    }

    /// Creates the bucket (private) if it does not exist; one that exists, whoever owns it,
    /// is left as it is (a space served from an existing bucket).
    pub async fn create_bucket_unless_present(&self) -> Result<(), StoreError> {
        match self.create_bucket().await {
            Err(StoreError::NotOwned(_)) => Ok(()),
            other => other,
        }
    }

    /// Creates the bucket (private) if it does not exist.
    async fn create_bucket(&self) -> Result<(), StoreError> {
        let url = format!("{}/{}", self.endpoint, self.bucket);
        let head = self
            .send("HeadBucket", "", Method::HEAD, &url, &[], Bytes::new())
            .await?;
        if head.status.is_success() {
            return Ok(());
        }
        let body = if self.region == "us-east-1" {
            Bytes::new()
        } else {
            Bytes::from(format!(
                "<CreateBucketConfiguration><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.region
            ))
        };
        let created = self
            .send("CreateBucket", "", Method::PUT, &url, &[], body)
            .await?;
        match s3_xml::error_code(&created.body).as_deref() {
            _ if created.status.is_success() => Ok(()),
            Some("BucketAlreadyOwnedByYou") => Ok(()),
            Some("BucketAlreadyExists") => Err(StoreError::NotOwned(self.bucket.clone())),
            _ => Err(Self::unexpected("CreateBucket", &self.bucket, &created)),
        }
    }

    async fn get_object(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        check(key)?;
        self.ensure_bucket().await?;
        let reply = self
            .send(
                "GetObject",
                key,
                Method::GET,
                &self.object_url(key),
                &[],
                Bytes::new(),
            )
            .await?;
        match reply.status {
            StatusCode::OK => Ok(Some(Stored {
                etag: reply
                    .headers
                    .get(header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(s3_xml::unquote)
                    .unwrap_or_default(),
                body: reply.body,
            })),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(Self::unexpected("GetObject", key, &reply)),
        }
    }

    async fn put_object(
        &self,
        key: &str,
        body: Bytes,
        when: Write,
    ) -> Result<Option<String>, StoreError> {
        check(key)?;
        self.ensure_bucket().await?;
        match self.put_conditional(key, body.clone(), &when).await {
            Err(error @ StoreError::Status { status: 500.., .. }) if when != Write::Always => {
                self.settle(key, &body, &when, error).await
            }
            outcome => outcome,
        }
    }

    /// After a conditional write failed with a server error: RGW answers one that lost a race
    /// to a concurrent write (ECANCELED) with 500. If what is stored no longer meets the
    /// precondition, the race was lost (or won, when our body is what is stored); otherwise
    /// the error stands.
    async fn settle(
        &self,
        key: &str,
        body: &Bytes,
        when: &Write,
        error: StoreError,
    ) -> Result<Option<String>, StoreError> {
        let current = self.get_object(key).await?;
        let unchanged = match (when, &current) {
            (Write::IfAbsent, None) => true,
            (Write::IfMatch(etag), Some(current)) => current.etag == *etag,
            _ => false,
        };
        if unchanged {
            return Err(error);
        }
        Ok(current.filter(|c| c.body == *body).map(|c| c.etag))
    }

    /// A write with its precondition, `If-Match` in the form the store understands.
    async fn put_conditional(
        &self,
        key: &str,
        body: Bytes,
        when: &Write,
    ) -> Result<Option<String>, StoreError> {
        let Write::IfMatch(etag) = when else {
            return self.put_once(key, body, when, false).await;
        };
        let bare = self.bare_if_match.load(Ordering::Relaxed);
        let written = self.put_once(key, body.clone(), when, bare).await?;
        if written.is_some() || bare {
            return Ok(written);
        }
        // Refused: either the object changed, or the store misread the quoted tag (RGW).
        match self.get_object(key).await? {
            Some(current) if current.etag == *etag => {
                let written = self.put_once(key, body, when, true).await?;
                if written.is_some() && !self.bare_if_match.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        bucket = %self.bucket,
                        "the store compares If-Match without quotes (Ceph RGW): sending bare ETags"
                    );
                }
                Ok(written)
            }
            _ => Ok(None),
        }
    }

    /// One PUT; an `If-Match` tag goes quoted unless `bare`.
    async fn put_once(
        &self,
        key: &str,
        body: Bytes,
        when: &Write,
        bare: bool,
    ) -> Result<Option<String>, StoreError> {
        let mut headers = vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )];
        match when {
            Write::Always => {}
            Write::IfAbsent => headers.push((header::IF_NONE_MATCH, HeaderValue::from_static("*"))),
            Write::IfMatch(etag) => {
                let value = if bare {
                    etag.clone()
                } else {
                    format!("\"{etag}\"")
                };
                headers.push((
                    header::IF_MATCH,
                    HeaderValue::from_str(&value).map_err(|_| {
                        StoreError::Key(format!("{key} (etag `{etag}` is not a header value)"))
                    })?,
                ));
            }
        }
        let reply = self
            .send(
                "PutObject",
                key,
                Method::PUT,
                &self.object_url(key),
                &headers,
                body,
            )
            .await?;
        match reply.status {
            status if status.is_success() => Ok(Some(
                reply
                    .headers
                    .get(header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(s3_xml::unquote)
                    .unwrap_or_default(),
            )),
            // 409: a concurrent conditional write won (what AWS answers to such a race).
            StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT if *when != Write::Always => {
                Ok(None)
            }
            // If-Match on a key that is gone.
            StatusCode::NOT_FOUND if matches!(when, Write::IfMatch(_)) => Ok(None),
            _ => Err(Self::unexpected("PutObject", key, &reply)),
        }
    }

    async fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        check(key)?;
        self.ensure_bucket().await?;
        let reply = self
            .send(
                "DeleteObject",
                key,
                Method::DELETE,
                &self.object_url(key),
                &[],
                Bytes::new(),
            )
            .await?;
        if reply.status.is_success() || reply.status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(Self::unexpected("DeleteObject", key, &reply))
        }
    }

    async fn list_objects(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        self.ensure_bucket().await?;
        let mut listed = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = format!(
                "{}/{}?list-type=2&prefix={}",
                self.endpoint,
                self.bucket,
                utf8_percent_encode(prefix, UNRESERVED)
            );
            if let Some(token) = &token {
                url.push_str("&continuation-token=");
                url.extend(utf8_percent_encode(token, UNRESERVED));
            }
            let reply = self
                .send(
                    "ListObjectsV2",
                    prefix,
                    Method::GET,
                    &url,
                    &[],
                    Bytes::new(),
                )
                .await?;
            if reply.status != StatusCode::OK {
                return Err(Self::unexpected("ListObjectsV2", prefix, &reply));
            }
            let page = s3_xml::parse_list(&reply.body)
                .ok_or_else(|| Self::unexpected("ListObjectsV2", prefix, &reply))?;
            listed.extend(page.entries);
            match page.next {
                Some(next) if page.truncated => token = Some(next),
                _ => break,
            }
        }
        Ok(listed)
    }
}

fn check(key: &str) -> Result<(), StoreError> {
    if valid_key(key) {
        Ok(())
    } else {
        Err(StoreError::Key(key.to_owned()))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        message = format!("{message}: {inner}");
        source = inner.source();
    }
    message
}

impl CertStateStore for OriginStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Stored>, StoreError>> {
        Box::pin(self.get_object(key))
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
        when: Write,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(self.put_object(key, body, when))
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.delete_object(key))
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Listed>, StoreError>> {
        Box::pin(self.list_objects(prefix))
    }
}
