//! Non-ASCII user metadata (`x-amz-meta-*`) on the wire. HTTP field values are bytes; the
//! store keeps metadata as text. A value that is not UTF-8 is read as ISO-8859-1 (what
//! Python's http.client, and so boto3, the aws cli and s3cmd, send: those SDKs sign the
//! same text in UTF-8, so the signature still matches). On the way out, a value s3s encoded
//! as RFC 2047 (`=?UTF-8?B?...?=`, as S3 answers non-ASCII metadata) whose characters all fit
//! ISO-8859-1 is sent as those bytes again, so what such a client wrote reads back exactly;
//! other non-ASCII values stay RFC 2047 encoded, as S3 sends them.

use base64::Engine as _;
use http::{HeaderMap, HeaderValue};

const PREFIX: &str = "x-amz-meta-";

fn is_metadata(name: &http::HeaderName) -> bool {
    name.as_str().starts_with(PREFIX)
}

/// Rewrites request metadata values that are not UTF-8 from ISO-8859-1 to UTF-8.
pub fn transcode_request(headers: &mut HeaderMap) {
    for (name, value) in headers.iter_mut() {
        if !is_metadata(name) || std::str::from_utf8(value.as_bytes()).is_ok() {
            continue;
        }
        let text: String = value.as_bytes().iter().map(|&b| char::from(b)).collect();
        if let Ok(v) = HeaderValue::from_bytes(text.as_bytes()) {
            *value = v;
        }
    }
}

/// Decodes `=?UTF-8?B?...?=` words (space separated), if the whole value is made of them.
fn decode_words(value: &str) -> Option<String> {
    let mut bytes = Vec::new();
    for word in value.split(' ') {
        let b64 = word
            .strip_prefix("=?UTF-8?B?")
            .or_else(|| word.strip_prefix("=?utf-8?b?"))?
            .strip_suffix("?=")?;
        bytes.extend(base64::engine::general_purpose::STANDARD.decode(b64).ok()?);
    }
    String::from_utf8(bytes).ok()
}

/// Sends response metadata values that fit ISO-8859-1 as those bytes.
pub fn latin1_response(headers: &mut HeaderMap) {
    for (name, value) in headers.iter_mut() {
        if !is_metadata(name) || !value.as_bytes().starts_with(b"=?") {
            continue;
        }
        let Some(text) = value.to_str().ok().and_then(decode_words) else {
            continue;
        };
        let latin1: Option<Vec<u8>> = text
            .chars()
            .map(|c| u8::try_from(u32::from(c)).ok())
            .collect();
        if let Some(bytes) = latin1.filter(|b| b.iter().all(|&c| c >= 0x20 && c != 0x7f))
            && let Ok(v) = HeaderValue::from_bytes(&bytes)
        {
            *value = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_round_trips_and_wider_text_stays_encoded() {
        let mut req = HeaderMap::new();
        req.insert(
            "x-amz-meta-a",
            HeaderValue::from_bytes(b"Hello World\xe9").unwrap(),
        );
        req.insert("x-amz-meta-b", HeaderValue::from_str("plain").unwrap());
        transcode_request(&mut req);
        assert_eq!(
            req["x-amz-meta-a"].as_bytes(),
            "Hello World\u{e9}".as_bytes()
        );
        assert_eq!(req["x-amz-meta-b"], "plain");

        let mut resp = HeaderMap::new();
        // What s3s sends for "Hello World\u{e9}" and for "日本".
        resp.insert(
            "x-amz-meta-a",
            HeaderValue::from_static("=?UTF-8?B?SGVsbG8gV29ybGTDqQ==?="),
        );
        resp.insert(
            "x-amz-meta-c",
            HeaderValue::from_static("=?UTF-8?B?5pel5pys?="),
        );
        latin1_response(&mut resp);
        assert_eq!(resp["x-amz-meta-a"].as_bytes(), b"Hello World\xe9");
        assert_eq!(resp["x-amz-meta-c"], "=?UTF-8?B?5pel5pys?=");
    }
}
