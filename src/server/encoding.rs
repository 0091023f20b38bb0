//! Content coding of answers: which coding a response gets (a compressible object, a space
//! with `compress`, the request's `Accept-Encoding`), the coded variant answered instead of
//! the identity (`cache::coded` makes and stores it), and the `Vary: Accept-Encoding` every
//! response of a compressible object carries, whatever its coding.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{HeaderMap, StatusCode};

use super::Edge;
use super::answer::{Answer, fill_outcome};
use super::respond::Fields;
use crate::cache::cache_control::CacheControl;
use crate::cache::coded::coded_inline;
use crate::cache::coding::{self, Coding};
use crate::cache::{
    Body, CacheKey, CacheOutcome, Entry, FillError, FillHead, FillReader, Variants,
};
use crate::config::Space;

/// The content coding of one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Choice {
    /// Not a compressible object: sent as it is, without `Vary: Accept-Encoding`.
    AsIs,
    /// A compressible object sent as the identity (the request accepts none of ours).
    Identity,
    /// A compressible object sent in this coding.
    Coded(Coding),
}

/// Whether a `Cache-Control` value has `no-transform`.
fn no_transform(value: &HeaderValue) -> bool {
    value
        .to_str()
        .is_ok_and(|text| CacheControl::parse(text).no_transform)
}

/// Adds `Vary: Accept-Encoding` to a response of a compressible object (once).
fn with_vary((mut response, outcome): Answer, choice: Choice) -> Answer {
    if choice != Choice::AsIs {
        let headers = response.headers_mut();
        let named = headers.get_all(header::VARY).iter().any(|v| {
            v.to_str().is_ok_and(|text| {
                text.split(',')
                    .any(|n| n.trim().eq_ignore_ascii_case("accept-encoding"))
            })
        });
        if !named {
            headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        }
    }
    (response, outcome)
}

/// The whole body of a fill, of `length` bytes (bounded by the caller).
async fn whole_body(reader: &mut FillReader, length: u64) -> Result<Bytes, FillError> {
    let mut body = BytesMut::with_capacity(usize::try_from(length).unwrap_or(0));
    while let Some(chunk) = reader.next_chunk(None).await {
        body.extend_from_slice(&chunk?);
    }
    Ok(body.freeze())
}

impl Edge {
    /// The coding of a response to `request` with `status`, `fields` and a body of `length`:
    /// a 200 of a compressible type, of `cache.compress_min` to the memory tier's largest
    /// object, without a `Content-Encoding` of its own or `no-transform`, in a space with
    /// `compress`, gets the coding the request prefers (the identity if it asks
    /// `no-transform`).
    pub(super) fn choose_coding(
        &self,
        space: &Space,
        request: &HeaderMap,
        status: StatusCode,
        fields: &dyn Fields,
        length: Option<u64>,
    ) -> Choice {
        if !space.compress || status != StatusCode::OK {
            return Choice::AsIs;
        }
        let Some(length) = length else {
            return Choice::AsIs;
        };
        if length < self.live.load().config.cache.compress_min
            || length > self.cache.max_memory_object()
            || fields.first(&header::CONTENT_ENCODING).is_some()
        {
            return Choice::AsIs;
        }
        let compressible = fields
            .first(&header::CONTENT_TYPE)
            .is_some_and(|ct| coding::compressible_type(ct.as_bytes()));
        if !compressible
            || (fields.first(&header::CACHE_CONTROL).is_some()
                && fields
                    .values(&header::CACHE_CONTROL)
                    .iter()
                    .any(no_transform))
        {
            return Choice::AsIs;
        }
        if request
            .get_all(header::CACHE_CONTROL)
            .iter()
            .any(no_transform)
        {
            return Choice::Identity;
        }
        match coding::negotiate(request.get_all(header::ACCEPT_ENCODING)) {
            Some(coding) => Choice::Coded(coding),
            None => Choice::Identity,
        }
    }

    /// A memory hit in the coding the request gets; `None` when that coded variant is not in
    /// memory (the full lookup then finds or makes it).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn memory_hit(
        &self,
        space: &Space,
        entry: &Arc<Entry>,
        body: &Bytes,
        parts: &http::request::Parts,
        outcome: CacheOutcome,
        variants: Variants,
        now: SystemTime,
    ) -> Option<Answer> {
        let length = Some(body.len() as u64);
        let choice = self.choose_coding(space, &parts.headers, entry.status, &entry.head, length);
        let answer = match choice {
            Choice::Coded(coding) => {
                let variant =
                    self.cache
                        .coded_in_memory(entry, coding, variants, &parts.headers, now)?;
                let Body::Memory(coded) = &variant.body else {
                    return None;
                };
                self.answer_from_memory(&variant, coded, parts, outcome, now)
            }
            _ => self.answer_from_memory(entry, body, parts, outcome, now),
        };
        Some(with_vary(answer, choice))
    }

    /// A hit from any tier in the coding the request gets (made now if need be); `None` when
    /// a stored body turned out bad (see [`Edge::answer_from_entry`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn stored_hit(
        &self,
        space: &Space,
        entry: &Arc<Entry>,
        parts: &http::request::Parts,
        outcome: CacheOutcome,
        variants: Variants,
        now: SystemTime,
    ) -> Option<Answer> {
        let length = Some(entry.body.len());
        let choice = self.choose_coding(space, &parts.headers, entry.status, &entry.head, length);
        if let Choice::Coded(coding) = choice
            && let Some((variant, _)) = self
                .cache
                .coded(entry, coding, variants, &parts.headers, now)
                .await
            && let Some(answer) = self.answer_from_entry(&variant, parts, outcome, now).await
        {
            return Some(with_vary(answer, choice));
        }
        let answer = self.answer_from_entry(entry, parts, outcome, now).await?;
        Some(with_vary(answer, choice))
    }

    /// Answers from a fill in the coding the request gets. A coded answer waits for the whole
    /// body (at most [`crate::cache::coded::INLINE_MAX`]), makes the variant once and stores
    /// it beside the identity the fill stores; a larger body streams as the identity and is
    /// coded in the background when next asked for; a response that will not be stored is never coded
    /// (coding is once per stored object, never per request).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn fill_answer(
        &self,
        space: &Space,
        key: &CacheKey,
        head: Arc<FillHead>,
        mut reader: FillReader,
        parts: &http::request::Parts,
        collapsed: bool,
        variants: Variants,
    ) -> Answer {
        let choice = self.choose_coding(
            space,
            &parts.headers,
            head.status,
            &head.headers,
            head.content_length,
        );
        let stored = match (choice, &head.admission, head.content_length) {
            (Choice::Coded(coding), Ok(freshness), Some(length))
                if head.retained && head.stored_body.is_none() && coded_inline(length) =>
            {
                Some((coding, *freshness, length))
            }
            _ => None,
        };
        let Some((coding, freshness, length)) = stored else {
            let answer = self.answer_from_fill(head, reader, parts, collapsed).await;
            return with_vary(answer, choice);
        };
        let body = match whole_body(&mut reader, length).await {
            Ok(body) => body,
            Err(e) => return self.fill_error(&e),
        };
        let now = self.cache.now();
        let outcome = fill_outcome(&head, collapsed, now);
        let identity = Arc::new(
            Entry::new(
                key.clone(),
                head.status,
                &head.headers,
                Body::Memory(body),
                freshness,
                head.vary.clone(),
            )
            .with_tags(head.tags.clone()),
        );
        if let Some((variant, _)) = self
            .cache
            .coded(&identity, coding, variants, &parts.headers, now)
            .await
            && let Some(answer) = self.answer_from_entry(&variant, parts, outcome, now).await
        {
            return with_vary(answer, choice);
        }
        match self.answer_from_entry(&identity, parts, outcome, now).await {
            Some(answer) => with_vary(answer, choice),
            None => self.error(StatusCode::SERVICE_UNAVAILABLE, "fill unavailable, retry"),
        }
    }
}
