//! Answers from what the cache holds: a stored entry (a body in memory sent whole, a stored
//! body streamed and verified piece by piece) or a fill (the head now, the body as it
//! arrives). Each answer is a response and the cache outcome it came from.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;

use super::Edge;
use super::body::EdgeBody;
use super::cache_status::{self, CACHE_STATUS};
use super::file_send::SendsFiles;
use super::head_memo;
use super::respond::{self, Decision, Fields};
use crate::cache::tags::{SURROGATE_KEY, WANT_TAGS};
use crate::cache::{
    Body, CacheOutcome, Entry, FillError, FillHead, FillKind, FillReader, Sink, StoredBody, Tags,
    Tier, Validators,
};

/// A response and how it came about.
pub type Answer = (Response<EdgeBody>, CacheOutcome);

/// What a request asks of a representation: the decision between 304, 200, 206 and 416.
/// Several ranges are answered whole from a body that is not held in memory (RFC 9110 14.2
/// allows it): only one range is streamed.
fn decision(
    parts: &http::request::Parts,
    status: StatusCode,
    validators: &dyn Fn() -> Validators,
    length: Option<u64>,
    in_memory: bool,
) -> Decision {
    let decision = respond::decide(&parts.method, &parts.headers, status, validators, length);
    match decision {
        Decision::Partial(ranges) if ranges.len() > 1 && !in_memory => Decision::Full,
        other => other,
    }
}

impl Edge {
    /// The outcome of serving `entry` from `tier` at `now` (a negative ttl: stale).
    pub(super) fn hit(entry: &Entry, tier: Tier, now: SystemTime) -> CacheOutcome {
        CacheOutcome::Hit {
            ttl: entry.freshness.ttl_seconds(now),
            tier,
        }
    }

    /// Answers from a stored entry whose body is in memory.
    pub(super) fn answer_from_memory(
        &self,
        entry: &Arc<Entry>,
        body: &Bytes,
        parts: &http::request::Parts,
        outcome: CacheOutcome,
        now: SystemTime,
    ) -> Answer {
        let decision = decision(
            parts,
            entry.status,
            &|| entry.validators(),
            Some(body.len() as u64),
            true,
        );
        let age = entry.freshness.age(now).as_secs();
        let tags = tag_field(parts, &entry.tags);
        // A whole hit's head depends only on the entry, its age and its ttl: hot objects
        // reuse the head this thread rendered last (see `head_memo`).
        let memo = match (&decision, outcome) {
            (
                Decision::Full,
                CacheOutcome::Hit {
                    ttl,
                    tier: Tier::Memory,
                },
            ) if tags.is_none() => Some(head_memo::Stamp { age, ttl }),
            _ => None,
        };
        if let Some(stamp) = memo
            && let Some(headers) = head_memo::get(entry, stamp)
        {
            return (
                respond::full(&parts.method, entry.status, headers, body),
                outcome,
            );
        }
        let mut extra = vec![
            (header::AGE, HeaderValue::from(age)),
            (CACHE_STATUS, cache_status::render(&outcome, &self.pop_name)),
        ];
        extra.extend(tags);
        let response = respond::from_bytes(
            decision,
            &parts.method,
            entry.status,
            &entry.head,
            body,
            &extra,
        );
        if let Some(stamp) = memo {
            head_memo::offer(entry, stamp, response.headers());
        }
        (response, outcome)
    }

    /// Answers from a stored entry, whatever holds its body; `None` when its stored body
    /// turned out bad (the tier dropped it: the request is then a miss).
    pub(super) async fn answer_from_entry(
        &self,
        entry: &Arc<Entry>,
        parts: &http::request::Parts,
        outcome: CacheOutcome,
        now: SystemTime,
    ) -> Option<Answer> {
        match &entry.body {
            Body::Memory(body) => Some(self.answer_from_memory(entry, body, parts, outcome, now)),
            Body::Stored(stored) => {
                let mut extra = vec![
                    (
                        header::AGE,
                        HeaderValue::from(entry.freshness.age(now).as_secs()),
                    ),
                    (CACHE_STATUS, cache_status::render(&outcome, &self.pop_name)),
                ];
                extra.extend(tag_field(parts, &entry.tags));
                let response = from_stored(
                    stored,
                    entry.status,
                    &entry.head,
                    &|| entry.validators(),
                    parts,
                    &extra,
                )
                .await?;
                Some((response, outcome))
            }
        }
    }

    /// Answers from a fill: `collapsed` when this request joined another's.
    pub(super) async fn answer_from_fill(
        &self,
        head: Arc<FillHead>,
        reader: FillReader,
        parts: &http::request::Parts,
        collapsed: bool,
    ) -> Answer {
        let now = self.cache.now();
        let outcome = fill_outcome(&head, collapsed, now);
        let mut extra = vec![(CACHE_STATUS, cache_status::render(&outcome, &self.pop_name))];
        if let Ok(freshness) = &head.admission {
            extra.push((header::AGE, HeaderValue::from(freshness.age(now).as_secs())));
        }
        extra.extend(tag_field(parts, &head.tags));
        let validators = || Validators::from_headers(&head.headers);
        if let Some(stored) = &head.stored_body {
            let response = from_stored(
                stored,
                head.status,
                &head.headers,
                &validators,
                parts,
                &extra,
            )
            .await;
            return match response {
                Some(response) => (response, outcome),
                None => self.error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "stored copy unreadable, retry",
                ),
            };
        }
        let decision = decision(parts, head.status, &validators, head.content_length, false);
        match decision {
            Decision::NotModified => {
                return (respond::not_modified(&head.headers, &extra), outcome);
            }
            Decision::Unsatisfiable => {
                return (
                    respond::unsatisfiable(head.content_length.unwrap_or(0), &extra),
                    outcome,
                );
            }
            _ => {}
        }
        let (status, headers) = respond::streaming_head(
            &decision,
            head.status,
            &head.headers,
            head.content_length,
            &extra,
        );
        let body = if parts.method == Method::HEAD {
            EdgeBody::Empty
        } else {
            let (reader, end) = match &decision {
                Decision::Partial(ranges) => {
                    let range = &ranges[0];
                    match reader.fill().reader(*range.start()) {
                        Some(ranged) => (ranged, Some(range.end() + 1)),
                        None => {
                            return self.error(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "range no longer buffered, retry",
                            );
                        }
                    }
                }
                _ => (reader, None),
            };
            stream_fill(reader, end)
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        (response, outcome)
    }
}

/// The outcome of answering from a fill with `head` (`collapsed`: joined another's).
pub(super) fn fill_outcome(head: &FillHead, collapsed: bool, now: SystemTime) -> CacheOutcome {
    let stored = head.admission.is_ok();
    match head.kind {
        FillKind::Miss => CacheOutcome::Miss { stored, collapsed },
        FillKind::Revalidation(status) => CacheOutcome::Revalidated {
            status,
            stored,
            collapsed,
        },
        FillKind::StaleOnError(status) => CacheOutcome::StaleOnError {
            status,
            ttl: head.admission.as_ref().map_or(0, |f| f.ttl_seconds(now)),
        },
    }
}

/// `Surrogate-Key` with an entry's tags, for a PoP below this one that asked for them
/// (`x-edge-tags`): its copy is then tagged too. Clients never get tags otherwise.
fn tag_field(parts: &http::request::Parts, tags: &Tags) -> Option<(HeaderName, HeaderValue)> {
    if tags.is_empty() || !parts.headers.contains_key(WANT_TAGS) {
        return None;
    }
    let value = HeaderValue::from_str(tags.packed()).ok()?;
    Some((SURROGATE_KEY, value))
}

/// Answers from a stored body: the first piece is read and verified before the head is
/// (so a bad stored copy becomes a miss, `None`); later pieces are verified as they stream,
/// and a bad one cuts the response.
async fn from_stored(
    stored: &Arc<dyn StoredBody>,
    status: StatusCode,
    headers: &(dyn Fields + Sync),
    validators: &(dyn Fn() -> Validators + Sync),
    parts: &http::request::Parts,
    extra: &[(HeaderName, HeaderValue)],
) -> Option<Response<EdgeBody>> {
    let len = stored.len();
    let decision = decision(parts, status, validators, Some(len), false);
    let (start, end) = match &decision {
        Decision::NotModified => return Some(respond::not_modified(headers, extra)),
        Decision::Unsatisfiable => return Some(respond::unsatisfiable(len, extra)),
        Decision::Partial(ranges) => (*ranges[0].start(), ranges[0].end() + 1),
        Decision::Full => (0, len),
    };
    let (status, headers) = respond::streaming_head(&decision, status, headers, Some(len), extra);
    let body = if parts.method == Method::HEAD || start >= end {
        EdgeBody::Empty
    } else {
        let sink = if parts.extensions.get::<SendsFiles>().is_some() {
            Sink::Socket
        } else {
            Sink::Copy
        };
        let stream = stored.clone().read(start, end, sink).await.ok()?;
        let frames = futures::StreamExt::map(stream, |piece| {
            piece
                .map(http_body::Frame::data)
                .map_err(|e| FillError::Body(e.0))
        });
        EdgeBody::Stream(http_body_util::StreamBody::new(frames).boxed())
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Some(response)
}

/// A fill's body from the reader's offset, up to `end` if given.
fn stream_fill(reader: FillReader, end: Option<u64>) -> EdgeBody {
    let stream = futures::stream::unfold(reader, move |mut reader| async move {
        let chunk = reader.next_chunk(end).await?;
        Some((chunk.map(http_body::Frame::data), reader))
    });
    EdgeBody::Stream(http_body_util::StreamBody::new(stream).boxed())
}
