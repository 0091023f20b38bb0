//! Streamed writes (PutObject, UploadPart) sent with `Transfer-Encoding: chunked` and neither
//! `Content-Length` nor `x-amz-decoded-content-length`, as some SDKs send them (S3 and Ceph
//! RGW store them): s3s needs the length to check the payload hash, so the body is read
//! first, into memory up to [`IN_MEMORY`] bytes and beyond that into a temporary file that is
//! unlinked at once (nothing is left behind, even by a crash), and handed on with its length.
//! Bodies past [`MAX_BODY`] (S3's limit for one PUT) are refused.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::{HeaderValue, Request, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use s3s::{Body, S3Error, s3_error};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

/// Bodies up to this size are held in memory.
pub const IN_MEMORY: usize = 1 << 20;
/// The largest body one PUT may carry (5 GiB, as S3).
pub const MAX_BODY: u64 = 5 << 30;

/// Whether `req` is a body of unknown length the store must measure before s3s sees it.
pub fn needs_length<B>(req: &Request<B>) -> bool {
    let h = req.headers();
    h.contains_key(header::TRANSFER_ENCODING)
        && !h.contains_key(header::CONTENT_LENGTH)
        && !h.contains_key("x-amz-decoded-content-length")
}

fn too_large() -> S3Error {
    s3_error!(
        EntityTooLarge,
        "Your proposed upload exceeds the maximum allowed object size."
    )
}

fn incomplete() -> S3Error {
    s3_error!(
        IncompleteBody,
        "The request body ended before it was complete."
    )
}

/// Reads the body of `req` and returns the request with a `Content-Length` and a body of
/// that length; a temporary file in `tmp_dir` holds what does not fit in memory.
pub async fn with_length(req: Request<Incoming>, tmp_dir: &Path) -> Result<Request<Body>, S3Error> {
    let (mut parts, mut body) = req.into_parts();
    let mut buf = BytesMut::new();
    let mut file: Option<tokio::fs::File> = None;
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| incomplete())?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len() as u64);
        if total > MAX_BODY {
            return Err(too_large());
        }
        match &mut file {
            Some(f) => f
                .write_all(&data)
                .await
                .map_err(|e| crate::error::internal("spooling body", e))?,
            None if buf.len() + data.len() <= IN_MEMORY => buf.extend_from_slice(&data),
            None => {
                let path = tmp_dir.join(uuid::Uuid::new_v4().simple().to_string());
                let mut f = tokio::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .await
                    .map_err(|e| crate::error::internal("spooling body", e))?;
                // Unlinked at once: the open file is all that is left of it.
                let _ = tokio::fs::remove_file(&path).await;
                f.write_all(&buf)
                    .await
                    .and(f.write_all(&data).await)
                    .map_err(|e| crate::error::internal("spooling body", e))?;
                buf = BytesMut::new();
                file = Some(f);
            }
        }
    }
    // `Transfer-Encoding` stays: clients may have signed it (botocore before 1.34 does), and
    // the signature is checked against the headers as sent. s3s reads the length from
    // `Content-Length`.
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    let body = match file {
        None => Body::from(Bytes::from(buf)),
        Some(mut f) => {
            f.flush()
                .await
                .and(f.seek(std::io::SeekFrom::Start(0)).await.map(|_| ()))
                .map_err(|e| crate::error::internal("spooling body", e))?;
            let frames = tokio_util::io::ReaderStream::new(f)
                .map(|chunk| chunk.map(hyper::body::Frame::data));
            Body::http_body(http_body_util::StreamBody::new(frames))
        }
    };
    Ok(Request::from_parts(parts, body))
}
