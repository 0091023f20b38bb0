//! Answers to a revalidation of a stale entry: a 304 (or a matching `200` to a HEAD)
//! refreshes the entry without a body transfer, its fields replacing the stored ones (RFC 9111
//! sections 4.3.4 and 4.3.5); a failed origin has the stale entry served (`stale-if-error`);
//! a HEAD answered with an error (`404`, `410`...) invalidates the entry.

use std::sync::Arc;

use http::StatusCode;
use http::header::{self, HeaderMap};

use super::driver::{end_to_end, origin_request_headers, response_headers, stored_headers};
use super::{Fill, FillHead, FillKind, FillPermit, FillRequest};
use crate::cache::admission::{Exchange, NotStored, TtlRules, admit};
use crate::cache::body::{Body, StoredBody};
use crate::cache::entry::{Entry, Validators};
use crate::cache::tags::{self, Tags};

/// What the origin answered a revalidation with.
pub(super) struct Update<'a> {
    pub status: StatusCode,
    pub headers: &'a HeaderMap,
    pub exchange: Exchange,
}

/// A 304 from the origin (or a matching `200` to a HEAD): its fields replace the stored ones (RFC 9111 section 4.3.4;
/// `Date` and `Age` included, so the refreshed entry's age is the origin's), and the
/// freshness is decided again from the result.
pub(super) async fn refresh(
    permit: FillPermit,
    request: &FillRequest,
    stale: &Entry,
    update: Update<'_>,
    rules: &TtlRules,
) {
    let exchange = update.exchange;
    let status = update.status;
    let update = update.headers;
    let mut headers = stale.headers();
    for name in end_to_end(update.clone()).keys() {
        headers.remove(name);
        for value in update.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    // Tags the 304 carries replace the stored ones.
    let (headers, tags) = response_headers(request, headers);
    let updates_tags = tags::TAG_FIELDS
        .iter()
        .any(|name| update.contains_key(name));
    let tags = match tags {
        Ok(tags) if updates_tags => Some(tags),
        Ok(_) => Some(stale.tags.clone()),
        Err(_) => None,
    };
    let admission = match &tags {
        Some(_) => admit(
            &origin_request_headers(request),
            stale.status,
            &headers,
            exchange,
            rules,
        )
        .map(|fresh| stale.freshness.refreshed(fresh)),
        None => Err(NotStored::Tags),
    };
    let tags = tags.unwrap_or_default();
    let headers = stored_headers(&headers);
    let head = FillHead {
        status: stale.status,
        headers: headers.clone(),
        content_length: Some(stale.body.len()),
        admission,
        vary: stale.vary.clone(),
        kind: FillKind::Revalidation(status),
        retained: true,
        stored_body: stored_body(&stale.body),
        tags: tags.clone(),
    };
    let fill = permit.fill().clone();
    fill.set_head(head);
    push_stored(&fill, &stale.body).await;
    fill.finish(Ok(()));
    let entry = admission.ok().map(|freshness| {
        Entry::new(
            stale.key.clone(),
            stale.status,
            &headers,
            stale.body.clone(),
            freshness,
            stale.vary.clone(),
        )
        .with_tags(tags)
    });
    permit.complete(entry);
}

/// The origin's answer to a HEAD revalidating `stale` (RFC 9111 section 4.3.5), other than a
/// 304 or a failure served stale: a `200` whose validators (and length) match the stored
/// response refreshes it as a 304 would; one that does not leaves it stale; an error status
/// (`404`, `410`...) means the stored response is no longer the resource's, and it is
/// dropped. The client gets the origin's answer.
pub(super) async fn head_answered(
    permit: FillPermit,
    request: &FillRequest,
    stale: &Arc<Entry>,
    update: Update<'_>,
    rules: &TtlRules,
) {
    if update.status == StatusCode::OK && same_representation(stale, update.headers) {
        refresh(permit, request, stale, update, rules).await;
        return;
    }
    if update.status.is_client_error() {
        permit.cache().invalidate(stale);
    }
    let content_length = update
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let (headers, _) = response_headers(request, update.headers.clone());
    let head = FillHead {
        status: update.status,
        headers,
        content_length,
        admission: Err(NotStored::Forbidden),
        vary: stale.vary.clone(),
        kind: FillKind::Revalidation(update.status),
        retained: true,
        stored_body: None,
        tags: Tags::default(),
    };
    let fill = permit.fill().clone();
    fill.set_head(head);
    fill.finish(Ok(()));
    permit.complete(None);
}

/// Whether a HEAD's `200` describes the stored representation: every validator it carries
/// matches the stored one (and it carries one if the stored response has any), and so does
/// its `Content-Length`, if any.
fn same_representation(stale: &Entry, head: &HeaderMap) -> bool {
    let stored = stale.validators();
    let received = Validators::from_headers(head);
    if stored.any() && !received.any() {
        return false;
    }
    let etag_matches = received
        .etag
        .is_none_or(|etag| stored.etag.as_ref() == Some(&etag));
    let date_matches = received
        .last_modified
        .is_none_or(|lm| stored.last_modified == Some(lm));
    let length_matches = head
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_none_or(|len| len == stale.body.len());
    etag_matches && date_matches && length_matches
}

/// The origin failed with `status`; the stale entry is served as it is (and stays stored as
/// it is: the next request tries the origin again).
pub(super) async fn serve_stale(permit: FillPermit, stale: &Entry, status: StatusCode) {
    let head = FillHead {
        status: stale.status,
        headers: stale.headers(),
        content_length: Some(stale.body.len()),
        admission: Ok(stale.freshness),
        vary: stale.vary.clone(),
        kind: FillKind::StaleOnError(status),
        retained: true,
        stored_body: stored_body(&stale.body),
        tags: stale.tags.clone(),
    };
    let fill = permit.fill().clone();
    fill.set_head(head);
    push_stored(&fill, &stale.body).await;
    fill.finish(Ok(()));
    permit.complete(None);
}

/// Publishes a stored body to a fill: a memory body whole; a stored one is not copied, the
/// head names it and readers stream it from storage (`FillHead::stored_body`).
async fn push_stored(fill: &Fill, body: &Body) {
    if let Body::Memory(bytes) = body {
        fill.push(bytes.clone()).await;
    }
}

fn stored_body(body: &Body) -> Option<Arc<dyn StoredBody>> {
    match body {
        Body::Stored(stored) => Some(stored.clone()),
        Body::Memory(_) => None,
    }
}
