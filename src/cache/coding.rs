//! Content codings the edge makes itself (`br`, `zstd`, `gzip`): which one a request's
//! `Accept-Encoding` selects (RFC 9110 section 12.5.3), which media types are worth coding,
//! and the encoders, at the levels a cache that codes each object once can afford.

use std::io::Write;

use http::HeaderValue;

/// A content coding the edge can apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    Br,
    Zstd,
    Gzip,
}

/// The codings, most preferred (smallest output) first: the tie-break between equal q-values.
pub const PREFERENCE: [Coding; 3] = [Coding::Br, Coding::Zstd, Coding::Gzip];

/// Bodies up to this size are coded at the highest levels; larger ones at faster levels.
pub const HIGH_LEVEL_MAX: usize = 1 << 20;

/// Why a body could not be coded.
#[derive(Debug, thiserror::Error)]
#[error("encoding failed: {0}")]
pub struct EncodeError(#[from] std::io::Error);

impl Coding {
    /// The coding's name, as in `Content-Encoding`.
    pub fn name(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }

    /// The `Content-Encoding` value.
    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.name())
    }

    /// Codes `body` whole (blocking: call it off the async threads for large bodies).
    /// Levels: brotli 11 and zstd 19 up to [`HIGH_LEVEL_MAX`], brotli 9 and zstd 12 above;
    /// gzip 9 always.
    pub fn encode(self, body: &[u8]) -> Result<Vec<u8>, EncodeError> {
        let high = body.len() <= HIGH_LEVEL_MAX;
        let mut out = Vec::with_capacity(body.len() / 3 + 64);
        match self {
            Coding::Br => {
                let params = brotli::enc::BrotliEncoderParams {
                    quality: if high { 11 } else { 9 },
                    lgwin: window_bits(body.len()),
                    size_hint: body.len(),
                    ..Default::default()
                };
                let mut input = body;
                brotli::BrotliCompress(&mut input, &mut out, &params)?;
            }
            Coding::Zstd => {
                let level = if high { 19 } else { 12 };
                let mut encoder = zstd::stream::Encoder::new(&mut out, level)?;
                encoder.include_contentsize(true)?;
                encoder.set_pledged_src_size(u64::try_from(body.len()).ok())?;
                // A window no larger than the body: decoders need no more memory than that.
                encoder.window_log(window_bits(body.len()).clamp(10, 22) as u32)?;
                encoder.write_all(body)?;
                encoder.finish()?;
            }
            Coding::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(&mut out, flate2::Compression::best());
                encoder.write_all(body)?;
                encoder.finish()?;
            }
        }
        Ok(out)
    }
}

/// The brotli/zstd window for a body of `len` bytes: the smallest that holds it, 16 to 22
/// bits (a window beyond the body only costs the decoder memory).
fn window_bits(len: usize) -> i32 {
    let bits = usize::BITS - len.saturating_sub(1).leading_zeros();
    i32::try_from(bits).unwrap_or(22).clamp(16, 22)
}

/// One `Accept-Encoding` element's weight, in thousandths; `None` if malformed.
fn weight(params: &str) -> Option<u16> {
    let mut weight = 1000;
    for param in params.split(';') {
        let param = param.trim();
        if param.is_empty() {
            continue;
        }
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("q") {
            continue;
        }
        weight = qvalue(value.trim())?;
    }
    Some(weight)
}

/// A `qvalue` (RFC 9110 12.4.2): `0`, `0.x` to three digits, `1` or `1.000`.
fn qvalue(text: &str) -> Option<u16> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, digit) in frac.bytes().enumerate() {
        let place = [100, 10, 1][i];
        thousandths += u16::from(digit - b'0') * place;
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The coding a request with these `Accept-Encoding` field values gets, or `None` for the
/// identity: the highest-weighted of ours the client accepts (`q` > 0, by name or by `*`),
/// ties going to the smaller output (br, zstd, gzip), unless `identity` (by name or by `*`)
/// weighs more; unlisted, the identity is the last choice. No field at all: the identity
/// (what clients that never ask expect).
pub fn negotiate<'a>(fields: impl IntoIterator<Item = &'a HeaderValue>) -> Option<Coding> {
    let mut present = false;
    let mut ours: [Option<u16>; 3] = [None; 3];
    let mut identity = None;
    let mut star = None;
    for field in fields {
        present = true;
        let Ok(text) = field.to_str() else { continue };
        for element in text.split(',') {
            let (name, params) = element.split_once(';').unwrap_or((element, ""));
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            let Some(q) = weight(params) else { continue };
            let slot = if name == "*" {
                &mut star
            } else if name.eq_ignore_ascii_case("identity") {
                &mut identity
            } else if name.eq_ignore_ascii_case("br") {
                &mut ours[0]
            } else if name.eq_ignore_ascii_case("zstd") {
                &mut ours[1]
            } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
                &mut ours[2]
            } else {
                continue;
            };
            slot.get_or_insert(q);
        }
    }
    if !present {
        return None;
    }
    let mut best: Option<(Coding, u16)> = None;
    for (coding, q) in PREFERENCE.iter().zip(ours) {
        let q = q.or(star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((*coding, q));
        }
    }
    // Unlisted (and not matched by `*`), the identity is acceptable but preferred least.
    let identity = identity.or(star).unwrap_or(0);
    best.filter(|(_, q)| *q >= identity)
        .map(|(coding, _)| coding)
}

/// Whether a response of this `Content-Type` is worth coding: text, JavaScript, JSON, XML,
/// SVG, WASM and fonts other than WOFF/WOFF2 (already compressed); never images, video,
/// audio or archives.
pub fn compressible_type(content_type: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(content_type) else {
        return false;
    };
    let essence = text.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let kind = kind.to_ascii_lowercase();
    let subtype = subtype.to_ascii_lowercase();
    match kind.as_str() {
        "text" => subtype != "event-stream",
        "image" => subtype == "svg+xml",
        "font" => !matches!(subtype.as_str(), "woff" | "woff2"),
        "application" => {
            matches!(
                subtype.as_str(),
                "javascript"
                    | "x-javascript"
                    | "ecmascript"
                    | "json"
                    | "xml"
                    | "wasm"
                    | "x-font-ttf"
                    | "x-font-otf"
                    | "font-sfnt"
                    | "vnd.ms-fontobject"
            ) || subtype.ends_with("+json")
                || subtype.ends_with("+xml")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(value: &str) -> Option<Coding> {
        negotiate([&HeaderValue::from_str(value).unwrap()])
    }

    #[test]
    fn negotiation_follows_rfc_9110() {
        assert_eq!(negotiate([]), None);
        assert_eq!(pick(""), None);
        assert_eq!(pick("gzip, deflate, br, zstd"), Some(Coding::Br));
        assert_eq!(pick("gzip, zstd"), Some(Coding::Zstd));
        assert_eq!(pick("GZIP"), Some(Coding::Gzip));
        assert_eq!(pick("x-gzip"), Some(Coding::Gzip));
        assert_eq!(pick("br;q=0.5, gzip;q=0.8"), Some(Coding::Gzip));
        assert_eq!(pick("br;q=0, gzip"), Some(Coding::Gzip));
        assert_eq!(pick("br;q=0"), None);
        assert_eq!(pick("*"), Some(Coding::Br));
        assert_eq!(pick("*;q=0.5, br;q=0"), Some(Coding::Zstd));
        assert_eq!(pick("*;q=0"), None);
        assert_eq!(pick("gzip;q=0.5, identity"), None);
        assert_eq!(pick("gzip;q=0.5, identity;q=0.5"), Some(Coding::Gzip));
        assert_eq!(pick("deflate"), None);
        // Malformed weights drop the element, not the field.
        assert_eq!(pick("br;q=2, gzip"), Some(Coding::Gzip));
        assert_eq!(pick("br;q=0.0001, gzip;q=0.001"), Some(Coding::Gzip));
        assert_eq!(pick("br ; q=1.000"), Some(Coding::Br));
        assert_eq!(pick("br;q=1.5"), None);
        // Several fields are one list.
        let a = HeaderValue::from_static("gzip;q=0.2");
        let b = HeaderValue::from_static("zstd");
        assert_eq!(negotiate([&a, &b]), Some(Coding::Zstd));
    }

    #[test]
    fn compressible_types() {
        for yes in [
            "text/html; charset=utf-8",
            "text/css",
            "application/javascript",
            "text/javascript",
            "application/json",
            "application/ld+json",
            "image/svg+xml",
            "application/wasm",
            "font/ttf",
            "Application/XML",
        ] {
            assert!(compressible_type(yes.as_bytes()), "{yes}");
        }
        for no in [
            "image/png",
            "video/mp4",
            "audio/mpeg",
            "application/zip",
            "application/gzip",
            "font/woff2",
            "font/woff",
            "application/octet-stream",
            "text",
            "",
        ] {
            assert!(!compressible_type(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn encodings_round_trip() {
        let body: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("line {} of a script;\n", i % 977).into_bytes())
            .collect();
        for coding in PREFERENCE {
            let coded = coding.encode(&body).unwrap();
            assert!(coded.len() < body.len() / 4, "{coding:?}: {}", coded.len());
            let mut decoded = Vec::new();
            match coding {
                Coding::Br => {
                    brotli::BrotliDecompress(&mut coded.as_slice(), &mut decoded).unwrap();
                }
                Coding::Zstd => decoded = zstd::stream::decode_all(coded.as_slice()).unwrap(),
                Coding::Gzip => {
                    use std::io::Read;
                    flate2::read::GzDecoder::new(coded.as_slice())
                        .read_to_end(&mut decoded)
                        .unwrap();
                }
            }
            assert_eq!(decoded, body, "{coding:?}");
        }
    }
}
