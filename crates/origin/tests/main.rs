//! Integration tests of the origin store against real servers on 127.0.0.1:0: real S3
//! clients (s3cmd, boto3, the aws cli), raw signed requests for the error cases, versioning,
//! lifecycle rules, access logs, HTTPS, a crash test and a streaming memory test (the last two
//! run the store as a child process: this very test binary).

// Tests may unwrap (see clippy.toml); the harness helpers here are test code too.
#![allow(clippy::unwrap_used)]

mod access_log;
mod api;
mod authz;
mod boto3;
mod chunked;
mod common;
mod crash;
mod errors;
mod hostile;
mod https;
mod lifecycle;
mod limited;
mod multipart;
mod s3cmd;
mod streaming;
mod versioning;
mod versioning_raw;
