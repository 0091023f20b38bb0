//! A stored response: head, body and freshness, shared by every request it serves.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{ETAG, LAST_MODIFIED, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::disk::DiskBody;
use super::freshness::Freshness;
use super::key::CacheKey;

/// Where a stored response's body is: in memory, or in a disk-tier entry file read block by
/// block (bodies larger than the memory tier takes).
#[derive(Debug, Clone)]
pub enum EntryBody {
    Memory(Bytes),
    Disk(Arc<DiskBody>),
}

impl EntryBody {
    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            EntryBody::Memory(bytes) => bytes.len() as u64,
            EntryBody::Disk(disk) => disk.len(),
        }
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Bytes> for EntryBody {
    fn from(bytes: Bytes) -> EntryBody {
        EntryBody::Memory(bytes)
    }
}

/// One cached response. Cheap to share: the body is a `Bytes` (or a disk file) and the entry
/// sits in an `Arc`.
#[derive(Debug)]
pub struct Entry {
    pub key: CacheKey,
    pub status: StatusCode,
    /// Response headers as stored (hop-by-hop fields and `Age` removed).
    pub headers: HeaderMap,
    pub body: EntryBody,
    pub freshness: Freshness,
    pub validators: Validators,
    /// The request header values this variant was selected by (`Vary`).
    pub vary: VaryValues,
}

impl Entry {
    /// Bytes this entry holds, for the memory tier's weigher.
    pub fn weight(&self) -> u32 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        let body = usize::try_from(self.body.len()).unwrap_or(usize::MAX);
        u32::try_from(body.saturating_add(headers + self.key.as_str().len() + 256))
            .unwrap_or(u32::MAX)
    }
}

/// `ETag` and `Last-Modified` of a stored response, parsed once.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    pub etag: Option<HeaderValue>,
    pub last_modified: Option<SystemTime>,
}

impl Validators {
    /// Reads the validators from response headers.
    pub fn from_headers(headers: &HeaderMap) -> Validators {
        Validators {
            etag: headers.get(ETAG).cloned(),
            last_modified: headers
                .get(LAST_MODIFIED)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok()),
        }
    }

    /// Whether the origin can answer a conditional request with 304.
    pub fn any(&self) -> bool {
        self.etag.is_some() || self.last_modified.is_some()
    }
}

/// The header names a response varies on.
pub fn vary_names(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
}

/// The values a request has for the `Vary` header names of a response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct VaryValues(Vec<(HeaderName, Option<Vec<u8>>)>);

impl VaryValues {
    /// Collects `request`'s values for `names`, normalized (joined by ", ").
    pub fn of(names: &[HeaderName], request: &HeaderMap) -> VaryValues {
        VaryValues(
            names
                .iter()
                .map(|name| {
                    let mut joined: Option<Vec<u8>> = None;
                    for value in request.get_all(name) {
                        let buf = joined.get_or_insert_with(Vec::new);
                        if !buf.is_empty() {
                            buf.extend_from_slice(b", ");
                        }
                        buf.extend_from_slice(value.as_bytes().trim_ascii());
                    }
                    (name.clone(), joined)
                })
                .collect(),
        )
    }

    /// Whether the response varies at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A hash naming this variant under its primary key (never 0, which is the primary).
    pub fn variant_id(&self) -> u64 {
        if self.0.is_empty() {
            return 0;
        }
        let mut hasher = std::hash::DefaultHasher::new();
        self.hash(&mut hasher);
        hasher.finish().max(1)
    }

    /// The header names.
    pub fn names(&self) -> Vec<HeaderName> {
        self.0.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The (name, joined value) pairs, for serializing.
    pub fn pairs(&self) -> &[(HeaderName, Option<Vec<u8>>)] {
        &self.0
    }

    /// Rebuilds values from their pairs (as stored on disk).
    pub fn from_pairs(pairs: Vec<(HeaderName, Option<Vec<u8>>)>) -> VaryValues {
        VaryValues(pairs)
    }
}
