//! Integration tests: real edge, real origins (scripted hyper servers and the embedded S3
//! store), real clients, all on 127.0.0.1 port 0.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

mod acme;
mod browser;
mod cache_flows;
mod ceph;
mod coalescing;
mod compression;
mod conformance;
mod conformance_validation;
mod control;
mod cors;
mod disk;
mod embedded;
mod fleet;
mod fleet_tags;
mod fuzz_corpus;
mod h2_abuse;
mod hostile;
mod large_object;
mod limits;
mod origin_down;
mod origin_tls;
mod range_conditional;
mod routing;
mod security;
mod tags;
mod tls;
mod tls_sni;
mod versioned_origin;
