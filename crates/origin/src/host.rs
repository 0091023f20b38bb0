//! Virtual-hosted-style addressing: `bucket.<domain>` names the bucket; other hosts are
//! path-style.

use std::borrow::Cow;

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

/// The configured base domain.
#[derive(Debug, Clone)]
pub struct Domain {
    base: String,
}

impl Domain {
    /// A parser for `bucket.<base>` host names (lower-cased, port ignored).
    #[must_use]
    pub fn new(base: &str) -> Domain {
        Domain {
            base: base.trim_end_matches('.').to_ascii_lowercase(),
        }
    }

    /// The bucket a `Host` header names, if it is `bucket.<base>[:port]`.
    #[must_use]
    pub fn bucket_of(&self, host: &str) -> Option<String> {
        let host = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
        let bucket = host.strip_suffix(self.base.as_str())?.strip_suffix('.')?;
        (!bucket.is_empty()).then(|| bucket.to_owned())
    }
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') || h.starts_with('[') => {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        }
        _ => host,
    }
}

impl S3Host for Domain {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let vh = VirtualHost::new(Cow::Borrowed(host));
        Ok(match self.bucket_of(host) {
            Some(bucket) => vh.with_bucket(bucket),
            None => vh,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_come_from_subdomains_only() {
        let d = Domain::new("local.origin.localhost");
        assert_eq!(
            d.bucket_of("assets.local.origin.localhost:9000").as_deref(),
            Some("assets")
        );
        assert_eq!(
            d.bucket_of("Assets.LOCAL.origin.localhost").as_deref(),
            Some("assets")
        );
        assert_eq!(
            d.bucket_of("a.b.local.origin.localhost").as_deref(),
            Some("a.b")
        );
        assert_eq!(d.bucket_of("local.origin.localhost:9000"), None);
        assert_eq!(d.bucket_of("127.0.0.1:9000"), None);
        assert_eq!(d.bucket_of("xlocal.origin.localhost"), None);
    }
}
