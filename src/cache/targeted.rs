//! Targeted cache control (RFC 9213): `CDN-Cache-Control`, and any further fields a space
//! names (`targeted = [...]`), carry cache directives for the edge alone. The first field of
//! the target list with a valid, non-empty value decides storage and freshness at the edge,
//! and `Cache-Control` and `Expires` are then ignored (for the edge; clients still get them).
//!
//! Targeted fields are Structured Field Dictionaries (RFC 8941 section 3.2): keys are
//! lower-case, `max-age` is an Integer, a bare key is `true`. A field that does not parse, or
//! whose known directives have the wrong type (`max-age="60"`, `max-age=-1`), is ignored
//! whole, and the next field (in the end `Cache-Control`) applies.

use http::{HeaderMap, HeaderName};

use super::cache_control::{CacheControl, DELTA_MAX};

/// `CDN-Cache-Control`, the last field of every space's target list.
pub const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// The directives of the first valid, non-empty field among `targeted` then
/// `CDN-Cache-Control`; `None` when no such field applies.
pub fn select(headers: &HeaderMap, targeted: &[HeaderName]) -> Option<CacheControl> {
    targeted
        .iter()
        .chain(std::iter::once(&CDN_CACHE_CONTROL))
        .find_map(|name| field(headers, name))
}

/// One targeted field's directives, if it is present, valid and not empty.
fn field(headers: &HeaderMap, name: &HeaderName) -> Option<CacheControl> {
    let mut lines = headers.get_all(name).iter().peekable();
    lines.peek()?;
    // Several lines are one list (RFC 8941 section 4.2).
    let mut text = Vec::new();
    for line in lines {
        if !text.is_empty() {
            text.extend_from_slice(b", ");
        }
        text.extend_from_slice(line.as_bytes());
    }
    let members = dictionary(&text)?;
    if members.is_empty() {
        return None;
    }
    let mut cc = CacheControl::default();
    for (key, value) in members {
        let seconds = || match value {
            Item::Integer(n) if n >= 0 => Some(u64::try_from(n).ok()?.min(DELTA_MAX)),
            _ => None,
        };
        let flag = || matches!(value, Item::True | Item::List);
        match key {
            "max-age" => cc.max_age = Some(seconds()?),
            "s-maxage" => cc.s_maxage = Some(seconds()?),
            "stale-while-revalidate" => cc.stale_while_revalidate = Some(seconds()?),
            "stale-if-error" => cc.stale_if_error = Some(seconds()?),
            "no-store" if matches!(value, Item::True) => cc.no_store = true,
            // `no-cache` and `private` may list field names (an Inner List); the edge
            // treats either form as the whole response's.
            "no-cache" if flag() => cc.no_cache = true,
            "private" if flag() => cc.private = true,
            "public" if matches!(value, Item::True) => cc.public = true,
            "must-revalidate" if matches!(value, Item::True) => cc.must_revalidate = true,
            "proxy-revalidate" if matches!(value, Item::True) => cc.proxy_revalidate = true,
            "must-understand" if matches!(value, Item::True) => cc.must_understand = true,
            "no-store" | "no-cache" | "private" | "public" | "must-revalidate"
            | "proxy-revalidate" | "must-understand" => return None,
            // Extensions are ignored, whatever their values.
            _ => {}
        }
    }
    Some(cc)
}

/// A member's value, as far as cache directives care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    /// A bare key, or `?1`.
    True,
    Integer(i64),
    /// An Inner List (field names of `no-cache` or `private`).
    List,
    /// Any other value (a string, token, decimal, byte sequence, `?0`).
    Other,
}

/// Parses a Dictionary (RFC 8941 section 4.2.2); later duplicates of a key win.
fn dictionary(input: &[u8]) -> Option<Vec<(&str, Item)>> {
    let mut p = Parser { input, at: 0 };
    let mut members: Vec<(&str, Item)> = Vec::new();
    p.skip_sp();
    if p.done() {
        return Some(members);
    }
    loop {
        let key = p.key()?;
        let value = if p.eat(b'=') {
            if p.peek() == Some(b'(') {
                p.inner_list()?;
                Item::List
            } else {
                p.bare_item()?
            }
        } else {
            Item::True
        };
        p.parameters()?;
        members.retain(|(k, _)| *k != key);
        members.push((key, value));
        p.skip_ows();
        if p.done() {
            return Some(members);
        }
        if !p.eat(b',') {
            return None;
        }
        p.skip_ows();
        if p.done() {
            // A trailing comma.
            return None;
        }
    }
}

struct Parser<'a> {
    input: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    fn done(&self) -> bool {
        self.at >= self.input.len()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let matched = self.peek() == Some(byte);
        if matched {
            self.at += 1;
        }
        matched
    }

    fn skip_sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.at += 1;
        }
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.at;
        while self.peek().is_some_and(&keep) {
            self.at += 1;
        }
        &self.input[start..self.at]
    }

    /// `key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )`
    fn key(&mut self) -> Option<&'a str> {
        if !matches!(self.peek(), Some(b'a'..=b'z' | b'*')) {
            return None;
        }
        let key = self.take_while(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b'*')
        });
        std::str::from_utf8(key).ok()
    }

    fn bare_item(&mut self) -> Option<Item> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => {
                self.at += 1;
                loop {
                    match self.peek()? {
                        b'\\' => {
                            self.at += 1;
                            if !matches!(self.peek()?, b'"' | b'\\') {
                                return None;
                            }
                            self.at += 1;
                        }
                        b'"' => {
                            self.at += 1;
                            return Some(Item::Other);
                        }
                        0x20..=0x7e => self.at += 1,
                        _ => return None,
                    }
                }
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'*' => {
                self.take_while(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b));
                Some(Item::Other)
            }
            b':' => {
                self.at += 1;
                self.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
                self.eat(b':').then_some(Item::Other)
            }
            b'?' => {
                self.at += 1;
                match self.peek()? {
                    b'1' => {
                        self.at += 1;
                        Some(Item::True)
                    }
                    b'0' => {
                        self.at += 1;
                        Some(Item::Other)
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// An Integer or a Decimal.
    fn number(&mut self) -> Option<Item> {
        let negative = self.eat(b'-');
        let int = self.take_while(|b| b.is_ascii_digit());
        if int.is_empty() || int.len() > 15 {
            return None;
        }
        if self.eat(b'.') {
            let frac = self.take_while(|b| b.is_ascii_digit());
            if frac.is_empty() || frac.len() > 3 || int.len() > 12 {
                return None;
            }
            return Some(Item::Other);
        }
        let value: i64 = std::str::from_utf8(int).ok()?.parse().ok()?;
        Some(Item::Integer(if negative { -value } else { value }))
    }

    fn inner_list(&mut self) -> Option<()> {
        if !self.eat(b'(') {
            return None;
        }
        loop {
            self.skip_sp();
            if self.eat(b')') {
                return self.parameters();
            }
            self.bare_item()?;
            self.parameters()?;
            if !matches!(self.peek()?, b' ' | b')') {
                return None;
            }
        }
    }

    fn parameters(&mut self) -> Option<()> {
        while self.eat(b';') {
            self.skip_sp();
            self.key()?;
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn cdn(value: &str) -> Option<CacheControl> {
        select(&headers(&[("cdn-cache-control", value)]), &[])
    }

    #[test]
    fn valid_fields() {
        let cc = cdn("max-age=3600").unwrap();
        assert_eq!(cc.max_age, Some(3600));
        let cc = cdn("foobar, max-age=3600, ext=\"a, b\";p=1").unwrap();
        assert_eq!(cc.max_age, Some(3600));
        assert!(cdn("private").unwrap().private);
        assert!(cdn("no-store").unwrap().no_store);
        assert!(cdn("no-cache=(\"set-cookie\")").unwrap().no_cache);
        assert_eq!(cdn("max-age=99999999999").unwrap().max_age, Some(1 << 31));
        // `none` is no registered directive, but makes a valid, non-empty field.
        assert_eq!(cdn("none"), Some(CacheControl::default()));
        // A later duplicate wins (RFC 8941 section 4.2.2).
        assert_eq!(cdn("max-age=1, max-age=60").unwrap().max_age, Some(60));
    }

    #[test]
    fn invalid_fields_are_ignored() {
        for value in [
            "",
            "max-age=10000, &&&&&",
            "max-age=\"10000\"",
            "max-age=-1",
            "max-age=1.5",
            "MaX-aGe=3600",
            "max-age =100",
            "max-age= 100",
            "max-age=1,",
            "no-store=?0",
        ] {
            assert_eq!(cdn(value), None, "{value}");
        }
    }

    #[test]
    fn the_first_valid_field_of_the_target_list_wins() {
        let edge = HeaderName::from_static("edge-cache-control");
        let h = headers(&[
            ("edge-cache-control", "max-age=5"),
            ("cdn-cache-control", "max-age=50"),
        ]);
        assert_eq!(
            select(&h, std::slice::from_ref(&edge)).unwrap().max_age,
            Some(5)
        );
        assert_eq!(select(&h, &[]).unwrap().max_age, Some(50));
        let h = headers(&[
            ("edge-cache-control", "max-age=\"5\""),
            ("cdn-cache-control", "max-age=50"),
        ]);
        assert_eq!(select(&h, &[edge]).unwrap().max_age, Some(50));
        let h = headers(&[
            ("cdn-cache-control", "max-age=5"),
            ("cdn-cache-control", "private"),
        ]);
        let cc = select(&h, &[]).unwrap();
        assert!(cc.private);
        assert_eq!(cc.max_age, Some(5));
    }
}
