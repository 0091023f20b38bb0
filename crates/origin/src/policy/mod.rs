//! Bucket policies: the subset of the IAM policy language S3 buckets commonly use.
//!
//! Supported: `Effect` Allow/Deny, `Principal` `"*"`, `{"AWS": "*"}`, `{"AWS": [ids or
//! arn:aws:iam::<id>:...]}`, `{"CanonicalUser": ids}` (`{"Service": ...}` names no caller of
//! this store and matches nobody), `Action` and `Resource` as strings or
//! lists with `*`/`?` wildcards (`arn:aws:s3:::*`, `arn:aws:s3:::bucket*/*`: every resource
//! must be able to name this bucket or its objects), and `Condition` blocks (`conditions`).
//! An explicit Deny beats any Allow. Policies with `NotPrincipal`, `NotAction`, `NotResource`
//! or a condition this store cannot evaluate are refused when stored rather than half-honoured.

pub mod conditions;

use serde_json::Value;

use self::conditions::Conditions;
pub use self::conditions::Facts;

/// Why a policy document was refused (`MalformedPolicy`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// What a policy says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An Allow statement matches and no Deny does.
    Allow,
    /// A Deny statement matches.
    Deny,
    /// No statement matches.
    Silent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Principal {
    Anyone,
    Users(Vec<String>),
}

#[derive(Debug, Clone)]
struct Statement {
    allow: bool,
    principal: Principal,
    actions: Vec<String>,
    resources: Vec<String>,
    conditions: Conditions,
}

/// A parsed bucket policy.
#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<Statement>,
}

fn strings(value: &Value, field: &str) -> Result<Vec<String>, PolicyError> {
    let bad = || PolicyError(format!("{field} must be a string or a list of strings"));
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
            .collect(),
        _ => Err(bad()),
    }
}

/// The user id an IAM-style principal names: `id`, `arn:aws:iam::<id>:root` or `...:user/x`.
fn principal_id(s: &str) -> String {
    match s.strip_prefix("arn:aws:iam::") {
        Some(rest) => rest.split(':').next().unwrap_or(rest).to_owned(),
        None => s.to_owned(),
    }
}

fn parse_principal(value: &Value) -> Result<Principal, PolicyError> {
    match value {
        Value::String(s) if s == "*" => Ok(Principal::Anyone),
        Value::Object(map) => {
            let mut ids = Vec::new();
            for (kind, v) in map {
                if kind == "Service" {
                    // AWS services (e.g. `logging.s3.amazonaws.com`, log delivery) are no
                    // request's caller here: this store delivers its own logs.
                    strings(v, "Principal")?;
                    continue;
                }
                if kind != "AWS" && kind != "CanonicalUser" {
                    return Err(PolicyError(format!("unsupported principal type {kind:?}")));
                }
                for id in strings(v, "Principal")? {
                    if id == "*" {
                        return Ok(Principal::Anyone);
                    }
                    ids.push(principal_id(&id));
                }
            }
            Ok(Principal::Users(ids))
        }
        _ => Err(PolicyError("Principal must be \"*\" or an object".into())),
    }
}

/// Whether some text starting with `prefix` matches `pattern` (`*` any run, `?` one
/// character): the pattern positions reachable after reading `prefix` are not all dead.
fn glob_prefix(pattern: &str, prefix: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    // Positions in the pattern still alive, with `*` absorbing runs.
    let close = |states: &mut Vec<usize>| {
        let mut i = 0;
        while i < states.len() {
            let s = states[i];
            if s < p.len() && p[s] == '*' && !states.contains(&(s + 1)) {
                states.push(s + 1);
            }
            i += 1;
        }
    };
    let mut states = vec![0];
    close(&mut states);
    for c in prefix.chars() {
        let mut next = Vec::new();
        for &s in &states {
            if s < p.len() {
                let keep = match p[s] {
                    '*' => Some(s),
                    '?' => Some(s + 1),
                    pc if pc == c => Some(s + 1),
                    _ => None,
                };
                if let Some(n) = keep
                    && !next.contains(&n)
                {
                    next.push(n);
                }
            }
        }
        close(&mut next);
        if next.is_empty() {
            return false;
        }
        states = next;
    }
    true
}

/// Wildcard match: `*` any run, `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

impl Policy {
    /// Parses and checks a policy for `bucket`: every resource must be the bucket or inside it.
    pub fn parse(json: &str, bucket: &str) -> Result<Policy, PolicyError> {
        let doc: Value = serde_json::from_str(json)
            .map_err(|e| PolicyError(format!("policies must be valid JSON: {e}")))?;
        let statements = match doc.get("Statement") {
            Some(Value::Array(items)) => items.clone(),
            Some(one @ Value::Object(_)) => vec![one.clone()],
            _ => return Err(PolicyError("missing Statement".into())),
        };
        if statements.is_empty() {
            return Err(PolicyError("Statement must not be empty".into()));
        }
        let bucket_arn = format!("arn:aws:s3:::{bucket}");
        let mut out = Vec::new();
        for st in &statements {
            let Value::Object(map) = st else {
                return Err(PolicyError("a statement must be an object".into()));
            };
            for unsupported in ["NotPrincipal", "NotAction", "NotResource"] {
                if map.contains_key(unsupported) {
                    return Err(PolicyError(format!(
                        "{unsupported} is not supported by this store"
                    )));
                }
            }
            let allow = match map.get("Effect").and_then(Value::as_str) {
                Some("Allow") => true,
                Some("Deny") => false,
                _ => return Err(PolicyError("Effect must be Allow or Deny".into())),
            };
            let principal = parse_principal(
                map.get("Principal")
                    .ok_or_else(|| PolicyError("missing Principal".into()))?,
            )?;
            let actions = strings(
                map.get("Action")
                    .ok_or_else(|| PolicyError("missing Action".into()))?,
                "Action",
            )?;
            for a in &actions {
                if a != "*" && !a.to_ascii_lowercase().starts_with("s3:") {
                    return Err(PolicyError(format!("Policy has invalid action {a:?}")));
                }
            }
            let resources = strings(
                map.get("Resource")
                    .ok_or_else(|| PolicyError("missing Resource".into()))?,
                "Resource",
            )?;
            for r in &resources {
                // The bucket itself, or some object in it.
                let inside = glob(r, &bucket_arn) || glob_prefix(r, &format!("{bucket_arn}/"));
                if !inside {
                    return Err(PolicyError(format!("Policy has invalid resource {r:?}")));
                }
            }
            let conditions = match map.get("Condition") {
                // A statement for AWS services only (the log delivery grant AWS documents,
                // with `aws:SourceArn` / `aws:SourceAccount` conditions) never applies here:
                // kept, its conditions not evaluated.
                Some(_) if principal == Principal::Users(Vec::new()) => Conditions::default(),
                Some(c) => Conditions::parse(c)?,
                None => Conditions::default(),
            };
            out.push(Statement {
                allow,
                principal,
                actions,
                resources,
                conditions,
            });
        }
        Ok(Policy { statements: out })
    }

    /// What the policy says about `caller` (None: anonymous) doing `action` (e.g.
    /// `s3:GetObject`) on `resource` (`arn:aws:s3:::bucket/key`) in a request showing `facts`.
    #[must_use]
    pub fn evaluate(
        &self,
        caller: Option<&str>,
        action: &str,
        resource: &str,
        facts: &Facts,
    ) -> Decision {
        let action = action.to_ascii_lowercase();
        let mut decision = Decision::Silent;
        for st in &self.statements {
            let principal_ok = match &st.principal {
                Principal::Anyone => true,
                Principal::Users(ids) => caller.is_some_and(|c| ids.iter().any(|id| id == c)),
            };
            let action_ok = st
                .actions
                .iter()
                .any(|a| glob(&a.to_ascii_lowercase(), &action));
            let resource_ok = st.resources.iter().any(|r| glob(r, resource));
            if principal_ok && action_ok && resource_ok && st.conditions.hold(facts, &action) {
                if !st.allow {
                    return Decision::Deny;
                }
                decision = Decision::Allow;
            }
        }
        decision
    }

    /// Whether some Allow statement could let `caller` do `action` on some object of the
    /// bucket (a request naming several keys is refused up front when none could).
    #[must_use]
    pub fn may_allow_on_objects(&self, caller: Option<&str>, action: &str, bucket: &str) -> bool {
        let action = action.to_ascii_lowercase();
        let objects = format!("arn:aws:s3:::{bucket}/");
        self.statements.iter().any(|st| {
            st.allow
                && match &st.principal {
                    Principal::Anyone => true,
                    Principal::Users(ids) => caller.is_some_and(|c| ids.iter().any(|id| id == c)),
                }
                && st
                    .actions
                    .iter()
                    .any(|a| glob(&a.to_ascii_lowercase(), &action))
                && st.resources.iter().any(|r| glob_prefix(r, &objects))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC_PREFIX: &str = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/public/*"},
        {"Effect":"Deny","Principal":{"AWS":"*"},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::b/public/secret*"]},
        {"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::bob:root"]},"Action":"s3:*","Resource":"arn:aws:s3:::b"}]}"#;

    #[test]
    fn allow_on_prefix_and_deny_wins() {
        let p = Policy::parse(PUBLIC_PREFIX, "b").unwrap();
        assert_eq!(
            p.evaluate(
                None,
                "s3:GetObject",
                "arn:aws:s3:::b/public/a.png",
                &Facts::default()
            ),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(
                Some("bob"),
                "s3:getobject",
                "arn:aws:s3:::b/public/a.png",
                &Facts::default()
            ),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(
                None,
                "s3:GetObject",
                "arn:aws:s3:::b/private/a.png",
                &Facts::default()
            ),
            Decision::Silent
        );
        assert_eq!(
            p.evaluate(
                None,
                "s3:PutObject",
                "arn:aws:s3:::b/public/a.png",
                &Facts::default()
            ),
            Decision::Silent
        );
        assert_eq!(
            p.evaluate(
                None,
                "s3:GetObject",
                "arn:aws:s3:::b/public/secret.txt",
                &Facts::default()
            ),
            Decision::Deny
        );
        assert_eq!(
            p.evaluate(
                Some("bob"),
                "s3:ListBucket",
                "arn:aws:s3:::b",
                &Facts::default()
            ),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(
                Some("eve"),
                "s3:ListBucket",
                "arn:aws:s3:::b",
                &Facts::default()
            ),
            Decision::Silent
        );
    }

    #[test]
    fn may_allow_on_objects_looks_at_allows_for_keys() {
        let p = Policy::parse(PUBLIC_PREFIX, "b").unwrap();
        assert!(p.may_allow_on_objects(None, "s3:GetObject", "b"));
        assert!(!p.may_allow_on_objects(None, "s3:DeleteObject", "b"));
        // bob's Allow names the bucket itself, never a key.
        assert!(!p.may_allow_on_objects(Some("bob"), "s3:DeleteObject", "b"));
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        assert!(Policy::parse(PUBLIC_PREFIX, "other").is_err());
        assert!(Policy::parse("not json", "b").is_err());
        let cond = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}}"#;
        assert!(
            Policy::parse(cond, "b")
                .unwrap_err()
                .0
                .contains("DateLessThan")
        );
        let bucket_b2 = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b2/*"}}"#;
        assert!(Policy::parse(bucket_b2, "b").is_err());
    }

    #[test]
    fn wildcard_resources_must_be_able_to_name_the_bucket() {
        let doc = |r: &str| {
            format!(
                r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"{r}"}}}}"#
            )
        };
        for ok in [
            "arn:aws:s3:::*",
            "arn:aws:s3:::b*/*",
            "arn:aws:s3:::?/*",
            "arn:aws:s3:::b/x*",
        ] {
            assert!(Policy::parse(&doc(ok), "b").is_ok(), "{ok}");
        }
        for bad in [
            "arn:aws:s3:::c*/*",
            "arn:aws:s3:::bb/*",
            "arn:aws:s3:::a?/*",
        ] {
            assert!(Policy::parse(&doc(bad), "b").is_err(), "{bad}");
        }
        let p = Policy::parse(&doc("arn:aws:s3:::b*/*"), "b").unwrap();
        assert_eq!(
            p.evaluate(None, "s3:GetObject", "arn:aws:s3:::b/k", &Facts::default()),
            Decision::Allow
        );
    }

    #[test]
    fn conditions_decide_with_the_request() {
        let p = Policy::parse(
            r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*",
                "Condition":{"StringNotEquals":{"s3:x-amz-acl":"private"}}}}"#,
            "b",
        )
        .unwrap();
        let mut facts = Facts::default();
        assert_eq!(
            p.evaluate(None, "s3:PutObject", "arn:aws:s3:::b/k", &facts),
            Decision::Deny
        );
        facts
            .headers
            .insert("x-amz-acl", http::HeaderValue::from_static("private"));
        assert_eq!(
            p.evaluate(None, "s3:PutObject", "arn:aws:s3:::b/k", &facts),
            Decision::Silent
        );
    }

    #[test]
    fn glob_matches_like_iam() {
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "abbc"));
        assert!(glob("*", ""));
        assert!(!glob("arn:aws:s3:::b/x*", "arn:aws:s3:::b/y"));
    }
}
