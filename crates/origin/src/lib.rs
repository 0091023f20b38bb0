//! Embedded S3-compatible object store: the edge's default origin.
//!
//! [`Store::open`] opens (or creates) a store in a data directory and recovers from any crash;
//! [`Store::serve`] answers the S3 REST API (SigV4, path-style and virtual-hosted-style) on a
//! listener the caller bound; [`Store::ensure_bucket`] creates buckets without HTTP;
//! [`Store::set_limited_keys`] replaces the bucket-scoped access keys at runtime.
//!
//! Layout: `index` (redb metadata, listing order), `storage` (body files), `users` (who signed),
//! `limited` (bucket-scoped access keys), `access` + `acl` + `policy` (who may do what), `cors`,
//! `listener` + `idle` (accept loop and its limits), `service` (the hyper layer around s3s: request ids, CORS preflight), `gate` +
//! `sigv2` (refusals decided before s3s reads a request), `request` (what a request's
//! connection and access check tell the rest), `access_log` (server access logs), `s3/` (one
//! module per operation family), `versioning` (version ids) and `lifecycle/` (rules and their
//! background worker).
#![forbid(unsafe_code)]

mod access;
mod access_log;
mod acl;
mod completed;
mod config;
mod cors;
mod error;
mod gate;
mod host;
mod idle;
mod index;
mod lifecycle;
mod limited;
mod listener;
mod metadata;
mod names;
mod policy;
mod request;
mod s3;
mod service;
mod sigv2;
mod spool;
mod storage;
mod store;
mod users;
mod versioning;

pub use config::{DEFAULT_LOG_FLUSH, LifecycleConfig, ServeLimits, StoreConfig, UserConfig};
pub use error::StoreError;
pub use limited::{BucketGrant, KeyAccess, LimitedKey};
pub use store::Store;
