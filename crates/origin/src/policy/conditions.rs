//! Policy `Condition` blocks: the IAM operators and condition keys this store evaluates, and
//! the facts of a request they are evaluated against.
//!
//! Operators: `String(Not)Equals(IgnoreCase)`, `String(Not)Like`, `Numeric(Not)Equals`,
//! `NumericLessThan(Equals)`, `NumericGreaterThan(Equals)`, `Bool`, `(Not)IpAddress` and
//! `Null`, each also with the `IfExists` suffix. Keys: `aws:SourceIp`, `aws:SecureTransport`,
//! `aws:Referer`, `aws:UserAgent`, `s3:prefix`, `s3:delimiter`, `s3:max-keys` (list requests)
//! and `s3:x-amz-*` (the request header of that name, e.g. `s3:x-amz-acl`). Anything else is
//! refused when the policy is stored (`MalformedPolicy`) rather than half-honoured.
//!
//! As in IAM: the values of one key are alternatives (any may match), the keys of one
//! operator and the operators of one block must all hold; a key the request lacks fails every
//! operator except the negated ones (`StringNotEquals`, `NotIpAddress`...), `...IfExists`
//! and `Null`.

use std::net::IpAddr;

use http::HeaderMap;
use serde_json::Value;

use super::{PolicyError, glob};

/// What a request shows the conditions.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The address the connection comes from.
    pub source_ip: Option<IpAddr>,
    /// Whether the request came over TLS.
    pub secure: bool,
    /// The request headers.
    pub headers: HeaderMap,
    /// The raw query string (decoded when a condition looks at it).
    pub query: String,
}

impl Facts {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    fn query(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The value of `key` for a request doing `action`, if the request has one.
    fn value(&self, key: &Key, action: &str) -> Option<String> {
        let listing = action.starts_with("s3:listbucket");
        match key {
            Key::SourceIp => self.source_ip.map(|ip| ip.to_string()),
            Key::SecureTransport => Some(self.secure.to_string()),
            Key::Referer => self.header("referer"),
            Key::UserAgent => self.header("user-agent"),
            Key::Prefix if listing => Some(self.query("prefix").unwrap_or_default()),
            Key::Delimiter if listing => self.query("delimiter"),
            Key::MaxKeys if listing => self.query("max-keys"),
            Key::Prefix | Key::Delimiter | Key::MaxKeys => None,
            Key::AmzHeader(name) => self.header(name),
        }
    }
}

/// A condition key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    SourceIp,
    SecureTransport,
    Referer,
    UserAgent,
    Prefix,
    Delimiter,
    MaxKeys,
    /// `s3:x-amz-...`: the request header (lower-case) of that name.
    AmzHeader(String),
}

/// The type of value a key holds (which operators fit it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Numeric,
    Bool,
    Ip,
}

impl Key {
    fn parse(name: &str) -> Result<Key, PolicyError> {
        let lower = name.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "aws:sourceip" => Key::SourceIp,
            "aws:securetransport" => Key::SecureTransport,
            "aws:referer" => Key::Referer,
            "aws:useragent" => Key::UserAgent,
            "s3:prefix" => Key::Prefix,
            "s3:delimiter" => Key::Delimiter,
            "s3:max-keys" => Key::MaxKeys,
            other => match other.strip_prefix("s3:") {
                Some(header)
                    if header.starts_with("x-amz-")
                        && http::HeaderName::from_bytes(header.as_bytes()).is_ok() =>
                {
                    Key::AmzHeader(header.to_owned())
                }
                _ => {
                    return Err(PolicyError(format!(
                        "Policy has an unsupported condition key {name:?}"
                    )));
                }
            },
        })
    }

    fn kind(&self) -> Kind {
        match self {
            Key::SourceIp => Kind::Ip,
            Key::SecureTransport => Kind::Bool,
            Key::MaxKeys => Kind::Numeric,
            _ => Kind::String,
        }
    }
}

/// A condition operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    Bool,
    IpAddress,
    NotIpAddress,
    Null,
}

impl Operator {
    fn parse(name: &str) -> Option<(Operator, bool)> {
        let (base, if_exists) = match name.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (name, false),
        };
        let op = match base {
            "StringEquals" => Operator::StringEquals,
            "StringNotEquals" => Operator::StringNotEquals,
            "StringEqualsIgnoreCase" => Operator::StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => Operator::StringNotEqualsIgnoreCase,
            "StringLike" => Operator::StringLike,
            "StringNotLike" => Operator::StringNotLike,
            "NumericEquals" => Operator::NumericEquals,
            "NumericNotEquals" => Operator::NumericNotEquals,
            "NumericLessThan" => Operator::NumericLessThan,
            "NumericLessThanEquals" => Operator::NumericLessThanEquals,
            "NumericGreaterThan" => Operator::NumericGreaterThan,
            "NumericGreaterThanEquals" => Operator::NumericGreaterThanEquals,
            "Bool" => Operator::Bool,
            "IpAddress" => Operator::IpAddress,
            "NotIpAddress" => Operator::NotIpAddress,
            "Null" if !if_exists => Operator::Null,
            _ => return None,
        };
        Some((op, if_exists))
    }

    /// The kind of key the operator compares (None: any, for `Null`).
    fn kind(self) -> Option<Kind> {
        use Operator::*;
        match self {
            StringEquals
            | StringNotEquals
            | StringEqualsIgnoreCase
            | StringNotEqualsIgnoreCase
            | StringLike
            | StringNotLike => Some(Kind::String),
            NumericEquals
            | NumericNotEquals
            | NumericLessThan
            | NumericLessThanEquals
            | NumericGreaterThan
            | NumericGreaterThanEquals => Some(Kind::Numeric),
            Bool => Some(Kind::Bool),
            IpAddress | NotIpAddress => Some(Kind::Ip),
            Null => None,
        }
    }

    fn negated(self) -> bool {
        matches!(
            self,
            Operator::StringNotEquals
                | Operator::StringNotEqualsIgnoreCase
                | Operator::StringNotLike
                | Operator::NumericNotEquals
                | Operator::NotIpAddress
        )
    }

    /// Whether `actual` matches `expected` (before negation).
    fn matches(self, expected: &str, actual: &str) -> bool {
        use Operator::*;
        match self {
            StringEquals | StringNotEquals => expected == actual,
            StringEqualsIgnoreCase | StringNotEqualsIgnoreCase => {
                expected.to_lowercase() == actual.to_lowercase()
            }
            StringLike | StringNotLike => glob(expected, actual),
            NumericEquals
            | NumericNotEquals
            | NumericLessThan
            | NumericLessThanEquals
            | NumericGreaterThan
            | NumericGreaterThanEquals => {
                let (Ok(e), Ok(a)) = (expected.trim().parse::<f64>(), actual.trim().parse::<f64>())
                else {
                    return false;
                };
                match self {
                    NumericEquals | NumericNotEquals => a == e,
                    NumericLessThan => a < e,
                    NumericLessThanEquals => a <= e,
                    NumericGreaterThan => a > e,
                    _ => a >= e,
                }
            }
            Bool => expected.eq_ignore_ascii_case(actual),
            IpAddress | NotIpAddress => match actual.parse::<IpAddr>() {
                Ok(ip) => Cidr::parse(expected).is_some_and(|c| c.contains(ip)),
                Err(_) => false,
            },
            Null => false,
        }
    }
}

/// An address block (`10.0.0.0/8`, `2001:db8::/32`, or one address).
#[derive(Debug, Clone, Copy)]
struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    fn parse(s: &str) -> Option<Cidr> {
        let (addr, bits) = match s.trim().split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
            None => (s.trim(), None),
        };
        let net: IpAddr = addr.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { net, bits })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.net, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            _ => ip,
        };
        let (net, addr, width) = match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                (u128::from(u32::from(n)), u128::from(u32::from(a)), 32u32)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => (u128::from(n), u128::from(a), 128u32),
            _ => return false,
        };
        let shift = width - u32::from(self.bits);
        let mask = u128::MAX.checked_shl(shift).unwrap_or(0) & (u128::MAX >> (128 - width));
        net & mask == addr & mask
    }
}

/// One operator applied to one key.
#[derive(Debug, Clone)]
struct Test {
    op: Operator,
    if_exists: bool,
    key: Key,
    values: Vec<String>,
}

impl Test {
    fn holds(&self, facts: &Facts, action: &str) -> bool {
        let actual = facts.value(&self.key, action);
        if self.op == Operator::Null {
            // `"Null": {"key": "true"}`: the key is absent.
            let want_absent = self.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
            return actual.is_none() == want_absent;
        }
        let Some(actual) = actual else {
            return self.if_exists || self.op.negated();
        };
        let any = self.values.iter().any(|v| self.op.matches(v, &actual));
        if self.op.negated() { !any } else { any }
    }
}

/// A statement's `Condition` block.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    tests: Vec<Test>,
}

fn condition_values(value: &Value) -> Result<Vec<String>, PolicyError> {
    let one = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(PolicyError(
            "condition values must be strings, numbers or booleans".into(),
        )),
    };
    match value {
        Value::Array(items) if items.is_empty() => Err(PolicyError(
            "a condition key needs at least one value".into(),
        )),
        Value::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

fn check_value(op: Operator, kind: Kind, value: &str) -> Result<(), PolicyError> {
    let ok = match (op, kind) {
        (Operator::Null, _) | (_, Kind::Bool) => {
            value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")
        }
        (_, Kind::Numeric) => value.trim().parse::<f64>().is_ok(),
        (_, Kind::Ip) => Cidr::parse(value).is_some(),
        (_, Kind::String) => true,
    };
    if ok {
        Ok(())
    } else {
        Err(PolicyError(format!(
            "Policy has an invalid condition value {value:?}"
        )))
    }
}

impl Conditions {
    /// Parses a `Condition` object.
    pub fn parse(value: &Value) -> Result<Conditions, PolicyError> {
        let Value::Object(operators) = value else {
            return Err(PolicyError("Condition must be an object".into()));
        };
        let mut tests = Vec::new();
        for (name, keys) in operators {
            let (op, if_exists) = Operator::parse(name).ok_or_else(|| {
                PolicyError(format!(
                    "Policy has an unsupported condition operator {name:?}"
                ))
            })?;
            let Value::Object(keys) = keys else {
                return Err(PolicyError(format!(
                    "condition operator {name:?} must map keys to values"
                )));
            };
            if keys.is_empty() {
                return Err(PolicyError(format!(
                    "condition operator {name:?} names no key"
                )));
            }
            for (key_name, values) in keys {
                let key = Key::parse(key_name)?;
                let kind = op.kind().unwrap_or(Kind::Bool);
                if op.kind().is_some_and(|k| k != key.kind()) {
                    return Err(PolicyError(format!(
                        "condition operator {name:?} does not apply to {key_name:?}"
                    )));
                }
                let values = condition_values(values)?;
                for v in &values {
                    check_value(op, kind, v)?;
                }
                tests.push(Test {
                    op,
                    if_exists,
                    key,
                    values,
                });
            }
        }
        Ok(Conditions { tests })
    }

    /// Whether every test holds for a request doing `action` (lower-case).
    #[must_use]
    pub fn hold(&self, facts: &Facts, action: &str) -> bool {
        self.tests.iter().all(|t| t.holds(facts, action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Conditions, PolicyError> {
        Conditions::parse(&serde_json::from_str(json).unwrap())
    }

    fn facts(ip: &str, secure: bool, headers: &[(&str, &str)], query: &[(&str, &str)]) -> Facts {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Facts {
            source_ip: Some(ip.parse().unwrap()),
            secure,
            headers: map,
            query: form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query.iter())
                .finish(),
        }
    }

    #[test]
    fn operators_on_request_facts() {
        let c = parse(
            r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","127.0.0.1"]},
                "Bool":{"aws:SecureTransport":"false"},
                "StringLike":{"aws:Referer":"http://www.example.com/*"},
                "StringEquals":{"s3:x-amz-acl":["public-read","private"]}}"#,
        )
        .unwrap();
        let ok = facts(
            "127.0.0.1",
            false,
            &[
                ("referer", "http://www.example.com/a"),
                ("x-amz-acl", "private"),
            ],
            &[],
        );
        assert!(c.hold(&ok, "s3:putobject"));
        let mut f = ok.clone();
        f.source_ip = Some("192.168.1.1".parse().unwrap());
        assert!(!c.hold(&f, "s3:putobject"));
        let mut f = ok.clone();
        f.secure = true;
        assert!(!c.hold(&f, "s3:putobject"));
        let mut f = ok.clone();
        f.headers.remove("x-amz-acl");
        assert!(
            !c.hold(&f, "s3:putobject"),
            "a missing key fails StringEquals"
        );
    }

    #[test]
    fn negation_if_exists_and_null() {
        let c = parse(r#"{"StringNotEquals":{"s3:x-amz-acl":"public-read"}}"#).unwrap();
        assert!(c.hold(&facts("::1", true, &[], &[]), "s3:putobject"));
        assert!(!c.hold(
            &facts("::1", true, &[("x-amz-acl", "public-read")], &[]),
            "s3:putobject"
        ));
        let c = parse(r#"{"StringLikeIfExists":{"aws:Referer":"http://a/*"}}"#).unwrap();
        assert!(c.hold(&facts("::1", true, &[], &[]), "s3:getobject"));
        assert!(!c.hold(
            &facts("::1", true, &[("referer", "http://b/")], &[]),
            "s3:getobject"
        ));
        let c = parse(r#"{"Null":{"s3:x-amz-acl":"true"}}"#).unwrap();
        assert!(c.hold(&facts("::1", true, &[], &[]), "s3:putobject"));
    }

    #[test]
    fn list_keys_only_on_listings() {
        let c = parse(
            r#"{"StringEquals":{"s3:prefix":"home/","s3:delimiter":"/"},
                "NumericLessThanEquals":{"s3:max-keys":"10"}}"#,
        )
        .unwrap();
        let q = facts(
            "1.2.3.4",
            false,
            &[],
            &[("prefix", "home/"), ("delimiter", "/"), ("max-keys", "5")],
        );
        assert!(c.hold(&q, "s3:listbucket"));
        assert!(!c.hold(&q, "s3:getobject"));
        let more = facts(
            "1.2.3.4",
            false,
            &[],
            &[("prefix", "home/"), ("delimiter", "/"), ("max-keys", "50")],
        );
        assert!(!c.hold(&more, "s3:listbucket"));
    }

    #[test]
    fn refuses_what_it_cannot_evaluate() {
        for bad in [
            r#"{"StringEquals":{"s3:ExistingObjectTag/a":"b"}}"#,
            r#"{"DateGreaterThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"}}"#,
            r#"{"ForAnyValue:StringEquals":{"aws:Referer":"x"}}"#,
            r#"{"IpAddress":{"aws:SourceIp":"not-an-ip"}}"#,
            r#"{"StringEquals":{"aws:SourceIp":"10.0.0.1"}}"#,
            r#"{"NumericLessThan":{"s3:max-keys":"ten"}}"#,
            r#"{"Bool":{"aws:SecureTransport":"maybe"}}"#,
            r#"{"StringEquals":{}}"#,
            r#"[]"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidr_blocks() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            Cidr::parse("2001:db8::/32")
                .unwrap()
                .contains("2001:db8::1".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none());
    }
}
