//! The purge API: who may purge (bearer tokens, compared in constant time), what a purge
//! request names, and the reply listing each PoP's result.

pub mod catch_up;
pub mod client;
pub mod fanout;
pub mod journal;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::cache::tags::check_tag;
use crate::cache::{PurgeAction, PurgeSelector};
use crate::config::PurgeToken;

/// Writes `value` as JSON to `path` through a temporary file and a rename, so a crash leaves
/// the old file or the new one, never half of one; failures are logged, not fatal.
pub(crate) fn save_json<T: Serialize + ?Sized>(path: &std::path::Path, value: &T, what: &str) {
    let tmp = path.with_extension("json.tmp");
    let result = serde_json::to_vec(value)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "cannot persist {what}");
    }
}

/// The body of `DELETE /v1/spaces/{space}/cache`: paths, prefixes or `*` (`files`), cache
/// tags (`tags`), or both; `soft` marks what they select stale instead of dropping it. The
/// same value is forwarded to peers and kept in the journal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub soft: bool,
}

impl PurgeRequest {
    /// A hard purge of `files`.
    pub fn files(files: Vec<String>) -> PurgeRequest {
        PurgeRequest {
            files,
            ..PurgeRequest::default()
        }
    }

    /// What it does to the entries it selects, applied at `at`.
    pub fn action(&self, at: std::time::SystemTime) -> PurgeAction {
        if self.soft {
            PurgeAction::MarkStale(at)
        } else {
            PurgeAction::Drop
        }
    }

    /// Its selectors in `space` (for a request already checked by [`parse_request`], or
    /// replayed from a journal: anything unparseable is skipped).
    pub fn selectors(&self, space: &str) -> Vec<PurgeSelector> {
        let files = self
            .files
            .iter()
            .filter_map(|file| PurgeSelector::parse(space, file).ok());
        let tags = self
            .tags
            .iter()
            .filter(|tag| check_tag(tag).is_ok())
            .map(|tag| PurgeSelector::Tag {
                space: space.to_owned(),
                tag: tag.clone(),
            });
        files.chain(tags).collect()
    }
}

/// One PoP's result in a purge reply.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PopResult {
    pub pop: String,
    /// `done` or `pending`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped: Option<usize>,
}

/// The purge reply.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PurgeReply {
    pub pops: Vec<PopResult>,
}

/// Most files and tags one purge request may name (together).
pub const MAX_FILES: usize = 10_000;

/// Why a purge request was refused.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("this token may not purge")]
    Forbidden,
    #[error("{0}")]
    BadRequest(String),
    #[error("unknown space `{0}`")]
    UnknownSpace(String),
}

impl PurgeError {
    /// The HTTP status of this error.
    pub fn status(&self) -> http::StatusCode {
        match self {
            PurgeError::Unauthorized => http::StatusCode::UNAUTHORIZED,
            PurgeError::Forbidden => http::StatusCode::FORBIDDEN,
            PurgeError::BadRequest(_) => http::StatusCode::BAD_REQUEST,
            PurgeError::UnknownSpace(_) => http::StatusCode::NOT_FOUND,
        }
    }
}

/// The name of the token `authorization` carries, if it is one of `tokens`.
pub fn authorize<'a>(
    authorization: Option<&str>,
    tokens: &'a [PurgeToken],
) -> Result<&'a str, PurgeError> {
    let presented = authorization
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(PurgeError::Unauthorized)?;
    let mut found = None;
    // Every token is compared, so timing does not tell which one (or whether any) matched.
    for token in tokens {
        if bool::from(token.token.expose().as_bytes().ct_eq(presented.as_bytes())) {
            found = Some(token.name.as_str());
        }
    }
    found.ok_or(PurgeError::Unauthorized)
}

/// Parses and checks the request body: its selectors for `space`, and the request as given
/// (to forward and journal).
pub fn parse_request(
    space: &str,
    body: &[u8],
) -> Result<(Vec<PurgeSelector>, PurgeRequest), PurgeError> {
    let request: PurgeRequest = serde_json::from_slice(body).map_err(|e| {
        PurgeError::BadRequest(format!(
            "body must be {{\"files\": [...], \"tags\": [...], \"soft\": false}}: {e}"
        ))
    })?;
    if request.files.is_empty() && request.tags.is_empty() {
        return Err(PurgeError::BadRequest(
            "name files or tags to purge".to_owned(),
        ));
    }
    if request.files.len().saturating_add(request.tags.len()) > MAX_FILES {
        return Err(PurgeError::BadRequest(format!(
            "at most {MAX_FILES} files and tags per request"
        )));
    }
    for file in &request.files {
        if file.is_empty() {
            return Err(PurgeError::BadRequest(
                "an empty path names nothing".to_owned(),
            ));
        }
        PurgeSelector::parse(space, file)
            .map_err(|e| PurgeError::BadRequest(format!("`{file}`: {e}")))?;
    }
    for tag in &request.tags {
        check_tag(tag).map_err(|e| PurgeError::BadRequest(format!("tag `{tag}`: {e}")))?;
    }
    Ok((request.selectors(space), request))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn tokens() -> Vec<PurgeToken> {
        vec![
            PurgeToken {
                name: "deploy".into(),
                token: Secret::new("token-one-1234"),
            },
            PurgeToken {
                name: "ops".into(),
                token: Secret::new("token-two-5678"),
            },
        ]
    }

    #[test]
    fn tokens_are_checked() {
        let t = tokens();
        assert_eq!(authorize(Some("Bearer token-two-5678"), &t).unwrap(), "ops");
        assert!(authorize(Some("Bearer token-two-567"), &t).is_err());
        assert!(authorize(Some("token-two-5678"), &t).is_err());
        assert!(authorize(None, &t).is_err());
        assert!(authorize(Some("Bearer x"), &[]).is_err());
    }

    #[test]
    fn bodies_are_parsed() {
        let (selectors, _) =
            parse_request("s", br#"{"files": ["img/a.png", "/css/*", "*"]}"#).unwrap();
        assert_eq!(selectors.len(), 3);
        assert!(parse_request("s", b"{}").is_err());
        assert!(parse_request("s", br#"{"files": []}"#).is_err());
        assert!(parse_request("s", br#"{"files": ["a/../b"]}"#).is_err());
        assert!(parse_request("s", br#"{"files": [""]}"#).is_err());
        assert!(parse_request("s", b"not json").is_err());
        assert!(parse_request("s", br#"{"files": ["a"], "other": 1}"#).is_err());
    }

    #[test]
    fn journal_entries_of_older_builds_still_parse() {
        let old: journal::JournalEntry =
            serde_json::from_str(r#"{"at":5,"space":"s","files":["a"]}"#).unwrap();
        assert_eq!(old.request, PurgeRequest::files(vec!["a".into()]));
        let new = journal::JournalEntry {
            at: 6,
            space: "s".into(),
            request: PurgeRequest {
                files: vec![],
                tags: vec!["t".into()],
                soft: true,
            },
        };
        let text = serde_json::to_string(&new).unwrap();
        assert_eq!(
            text,
            r#"{"at":6,"space":"s","files":[],"tags":["t"],"soft":true}"#
        );
        assert_eq!(
            serde_json::from_str::<journal::JournalEntry>(&text).unwrap(),
            new
        );
    }

    #[test]
    fn tags_and_soft_purges() {
        let (selectors, request) =
            parse_request("s", br#"{"tags": ["product-42", "sale"], "soft": true}"#).unwrap();
        assert_eq!(
            selectors[0],
            PurgeSelector::Tag {
                space: "s".into(),
                tag: "product-42".into()
            }
        );
        assert_eq!(selectors.len(), 2);
        assert!(request.soft);
        let at = std::time::SystemTime::UNIX_EPOCH;
        assert_eq!(request.action(at), PurgeAction::MarkStale(at));
        let (selectors, _) = parse_request("s", br#"{"files": ["a"], "tags": ["t"]}"#).unwrap();
        assert_eq!(selectors.len(), 2);
        assert!(parse_request("s", br#"{"tags": []}"#).is_err());
        assert!(parse_request("s", br#"{"tags": ["two words"]}"#).is_err());
        assert!(parse_request("s", br#"{"tags": [""]}"#).is_err());
        let long = format!(r#"{{"tags": ["{}"]}}"#, "x".repeat(300));
        assert!(parse_request("s", long.as_bytes()).is_err());
        // Forwarded as given; a plain file purge looks as it always did.
        assert_eq!(
            serde_json::to_string(&PurgeRequest::files(vec!["a".into()])).unwrap(),
            r#"{"files":["a"]}"#
        );
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"files":[],"tags":["product-42","sale"],"soft":true}"#
        );
    }
}
