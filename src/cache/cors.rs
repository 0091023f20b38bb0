//! CORS at the edge: an S3 origin answers `Access-Control-Allow-Origin` by the request's
//! `Origin` but does not always say `Vary: Origin` (not on a response to a request without
//! `Origin`, nor to one whose origin no rule allows), so the edge selects S3 variants by
//! `Origin` itself and tells downstream caches so.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue, ORIGIN, VARY};

use super::entry::{ensure_vary, vary_names};

/// The request headers an S3-origin response is selected by: the only client header a cache
/// fill passes to an S3 origin is `Origin`, so nothing else can change the response.
pub const S3_VARY: [HeaderName; 1] = [ORIGIN];

/// Names an S3 origin lists in `Vary` that never reach it on a cache fill (they only matter
/// to preflights, which are not cached).
const PREFLIGHT_ONLY: [&str; 2] = [
    "access-control-request-headers",
    "access-control-request-method",
];

/// Rewrites an S3 origin's response `Vary` to what the edge's response varies on: `Origin`
/// always, the preflight-only names never, anything else the origin listed kept.
pub fn s3_response_vary(headers: &mut HeaderMap) {
    let listed = vary_names(headers);
    if listed.iter().any(|n| PREFLIGHT_ONLY.contains(&n.as_str())) {
        headers.remove(VARY);
        for name in listed
            .iter()
            .filter(|n| !PREFLIGHT_ONLY.contains(&n.as_str()))
        {
            headers.append(VARY, HeaderValue::from_name(name.clone()));
        }
    }
    ensure_vary(headers, &ORIGIN);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_always_preflight_names_never() {
        let mut headers = HeaderMap::new();
        s3_response_vary(&mut headers);
        assert_eq!(vary_names(&headers), [ORIGIN]);

        let mut headers = HeaderMap::new();
        headers.insert(
            VARY,
            HeaderValue::from_static(
                "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
            ),
        );
        s3_response_vary(&mut headers);
        assert_eq!(vary_names(&headers), [ORIGIN]);

        let mut headers = HeaderMap::new();
        headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        s3_response_vary(&mut headers);
        assert_eq!(
            vary_names(&headers),
            [http::header::ACCEPT_ENCODING, ORIGIN]
        );
    }
}
