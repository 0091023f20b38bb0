//! Spaces as the admin API writes them: the stored spec (what an admin asked for, kept as
//! JSON in the fleet's state store), its validation into a config [`Space`] with the same
//! rules and messages as `[[space]]`, and the JSON view the API answers with.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::tls::LeafInfo;

use crate::config::{
    Config, OriginAuth, PlainHttp, QueryPolicy, RawQuery, RawSpace, Space, SpaceCert,
    format_duration, validate_space,
};

/// A space created over the API, as stored (`spaces/<name>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpaceSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<QuerySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_auth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targeted: Option<Vec<String>>,
}

/// `"certificate"`: `"acme"`, or `{"id": ...}` of an uploaded certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CertificateRef {
    Named(String),
    Uploaded { id: String },
}

/// `"query"`: `"full"`, `"ignore"` or `{"allow": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum QuerySpec {
    Named(String),
    Allow { allow: Vec<String> },
}

/// Why a spec is not a valid space; the message names the field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

/// Fields the API accepts in a space (besides the read-only `source`).
const FIELDS: &[&str] = &[
    "name",
    "region",
    "ttl",
    "bucket",
    "custom_domain",
    "certificate",
    "query",
    "http",
    "origin_auth",
    "compress",
    "targeted",
];

impl SpaceSpec {
    /// Parses a create body; unknown fields are refused by name.
    pub fn from_json(body: &[u8]) -> Result<SpaceSpec, SpecError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| SpecError(format!("body: not JSON: {e}")))?;
        let Value::Object(fields) = value else {
            return Err(SpecError("body: must be a JSON object".to_owned()));
        };
        Self::from_fields(fields)
    }

    fn from_fields(mut fields: Map<String, Value>) -> Result<SpaceSpec, SpecError> {
        fields.remove("source");
        if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(SpecError(format!("{unknown}: unknown field")));
        }
        // Nulls are absent fields (defaults apply).
        fields.retain(|_, v| !v.is_null());
        for (name, value) in &fields {
            let expected_string = !matches!(
                name.as_str(),
                "certificate" | "query" | "compress" | "targeted"
            );
            if expected_string && !value.is_string() {
                return Err(SpecError(format!("{name}: must be a string")));
            }
        }
        serde_json::from_value(Value::Object(fields)).map_err(|e| SpecError(format!("body: {e}")))
    }

    /// This spec with the fields of a PATCH body laid over it (`null` clears a field back to
    /// its default); the name cannot change.
    pub fn patched(&self, body: &[u8]) -> Result<SpaceSpec, SpecError> {
        let patch: Value =
            serde_json::from_slice(body).map_err(|e| SpecError(format!("body: not JSON: {e}")))?;
        let Value::Object(patch) = patch else {
            return Err(SpecError("body: must be a JSON object".to_owned()));
        };
        if let Some(name) = patch.get("name")
            && name.as_str() != Some(self.name.as_str())
        {
            return Err(SpecError("name: cannot be changed".to_owned()));
        }
        let Value::Object(mut fields) =
            serde_json::to_value(self).map_err(|e| SpecError(format!("stored space: {e}")))?
        else {
            return Err(SpecError("stored space: not an object".to_owned()));
        };
        for (name, value) in patch {
            fields.insert(name, value);
        }
        Self::from_fields(fields)
    }

    /// The space this spec makes under `config` (its `[acme]`, and the region of its first
    /// space as the default region), checked as `[[space]]` is; `uploaded` finds the
    /// certificates uploaded through the API.
    pub fn to_space(
        &self,
        config: &Config,
        uploaded: impl Fn(&str) -> Option<LeafInfo>,
    ) -> Result<Space, SpecError> {
        let (certificate, uploaded_id) = match &self.certificate {
            None => (None, None),
            Some(CertificateRef::Named(name)) => {
                (Some(crate::config::RawSpaceCert::Named(name.clone())), None)
            }
            Some(CertificateRef::Uploaded { id }) => {
                let Some(domain) = &self.custom_domain else {
                    return Err(SpecError(
                        "certificate: an uploaded certificate needs a custom_domain".to_owned(),
                    ));
                };
                let Some(leaf) = uploaded(id) else {
                    return Err(SpecError(format!(
                        "certificate: no uploaded certificate `{id}`"
                    )));
                };
                if !leaf.covers(domain) {
                    return Err(SpecError(format!(
                        "certificate: `{id}` does not name `{domain}`"
                    )));
                }
                (None, Some(id.clone()))
            }
        };
        // Judged as the router will see it: without a final dot, brackets off an IPv6 one.
        if let Some(domain) = &self.custom_domain
            && (domain
                .trim_end_matches('.')
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok()
                || domain.contains('*'))
        {
            return Err(SpecError(format!(
                "custom_domain: `{domain}` must be a DNS name (not an address or a wildcard)"
            )));
        }
        let region = self.region.clone().or_else(|| default_region(config));
        let raw = RawSpace {
            name: self.name.clone(),
            region,
            ttl: self.ttl.clone(),
            bucket: self.bucket.clone(),
            custom_domain: self.custom_domain.clone(),
            certificate,
            origin_auth: self.origin_auth.clone(),
            query: self.query.clone().map(|q| match q {
                QuerySpec::Named(name) => RawQuery::Named(name),
                QuerySpec::Allow { allow } => RawQuery::Allow { allow },
            }),
            http: self.http.clone(),
            compress: self.compress,
            targeted: self.targeted.clone(),
        };
        let mut space =
            validate_space("", raw, &config.acme).map_err(|e| SpecError(e.to_string()))?;
        if let Some(id) = uploaded_id {
            space.certificate = SpaceCert::Uploaded { id };
        }
        check_unique(&space, config)?;
        Ok(space)
    }
}

/// The region a space gets when its spec names none: the first configured space's.
pub fn default_region(config: &Config) -> Option<String> {
    config.spaces.first().map(|s| s.region.clone())
}

/// A space must not take a name, or a custom domain, that another space has, nor a custom
/// domain under the CDN's own domain.
fn check_unique(space: &Space, config: &Config) -> Result<(), SpecError> {
    let others = config.spaces.iter().filter(|s| s.name != space.name);
    for other in others {
        if space.custom_domain.is_some() && other.custom_domain == space.custom_domain {
            return Err(SpecError(format!(
                "custom_domain: `{}` is used by space `{}`",
                space.custom_domain.as_deref().unwrap_or_default(),
                other.name
            )));
        }
    }
    if let Some(domain) = &space.custom_domain
        && domain.ends_with(&format!(".{}", config.cdn.domain))
    {
        return Err(SpecError(format!(
            "custom_domain: `{domain}` lies under cdn.domain"
        )));
    }
    Ok(())
}

/// Where a space was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Api,
    Config,
}

/// The API's JSON of a space.
pub fn view(space: &Space, source: Source) -> Value {
    let certificate = match &space.certificate {
        SpaceCert::None => Value::Null,
        SpaceCert::Acme => json!("acme"),
        SpaceCert::Files { cert, .. } => json!({ "file": cert.display().to_string() }),
        SpaceCert::Uploaded { id } => json!({ "id": id }),
    };
    let query = match &space.query {
        QueryPolicy::Full => json!("full"),
        QueryPolicy::Ignore => json!("ignore"),
        QueryPolicy::Allow(allow) => json!({ "allow": allow }),
    };
    json!({
        "name": space.name,
        "region": space.region,
        "ttl": space.ttl.map(format_duration),
        "bucket": space.bucket,
        "custom_domain": space.custom_domain,
        "certificate": certificate,
        "query": query,
        "http": match space.http {
            PlainHttp::Serve => "serve",
            PlainHttp::Redirect => "redirect",
        },
        "origin_auth": match space.origin_auth {
            OriginAuth::Anonymous => "anonymous",
            OriginAuth::Signed => "signed",
        },
        "compress": space.compress,
        "source": match source {
            Source::Api => "api",
            Source::Config => "config",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_mistyped_fields_are_named() {
        let e = SpaceSpec::from_json(br#"{"name": "a", "colour": "red"}"#).unwrap_err();
        assert_eq!(e.0, "colour: unknown field");
        let e = SpaceSpec::from_json(br#"{"name": "a", "ttl": 60}"#).unwrap_err();
        assert_eq!(e.0, "ttl: must be a string");
        let e = SpaceSpec::from_json(b"[1]").unwrap_err();
        assert!(e.0.starts_with("body:"), "{e}");
    }

    #[test]
    fn a_patch_sets_clears_and_keeps_fields() {
        let spec =
            SpaceSpec::from_json(br#"{"name": "a", "ttl": "1h", "custom_domain": "a.example"}"#)
                .unwrap();
        let patched = spec
            .patched(br#"{"ttl": "5m", "custom_domain": null}"#)
            .unwrap();
        assert_eq!(patched.ttl.as_deref(), Some("5m"));
        assert_eq!(patched.custom_domain, None);
        assert_eq!(patched.name, "a");
        assert!(spec.patched(br#"{"name": "b"}"#).is_err());
    }
}
