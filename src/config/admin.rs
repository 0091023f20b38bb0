//! Validation of `[admin]` (control-plane tokens and their scopes) and `[control]`.

use std::path::PathBuf;
use std::time::Duration;

use super::fields::*;
use super::*;

pub(super) fn validate_admin(raw: raw::RawAdmin, purge: &Purge) -> Result<Admin, ConfigError> {
    let mut tokens: Vec<AdminToken> = Vec::new();
    for (i, t) in raw.tokens.into_iter().enumerate() {
        let key = format!("admin.tokens[{i}]");
        let token = named_token(
            &key,
            &t.name,
            t.token.as_deref(),
            t.token_env.as_deref(),
            |name| tokens.iter().any(|o| o.name == name),
        )?;
        if token.expose().len() < 16 {
            return Err(invalid(
                format!("{key}.token"),
                "must be at least 16 characters",
            ));
        }
        // One secret, one set of rights: a token that is also the peer's or a purge token
        // would hold both.
        let shared = purge
            .peer_token
            .iter()
            .chain(purge.tokens.iter().map(|p| &p.token));
        if shared
            .into_iter()
            .any(|other| other.expose() == token.expose())
        {
            return Err(invalid(
                format!("{key}.token"),
                "must differ from purge.peer_token and the purge tokens",
            ));
        }
        let scopes = match t.scopes {
            None => Scope::ALL.to_vec(),
            Some(names) => {
                let mut scopes = Vec::new();
                for name in names {
                    let scope = serde_json::from_value(serde_json::Value::String(name.clone()))
                        .map_err(|_| {
                            invalid(
                                format!("{key}.scopes"),
                                format!(
                                    "`{name}` is not one of purge, spaces, certificates, keys, read"
                                ),
                            )
                        })?;
                    if !scopes.contains(&scope) {
                        scopes.push(scope);
                    }
                }
                scopes
            }
        };
        tokens.push(AdminToken {
            name: t.name,
            token,
            scopes,
        });
    }
    Ok(Admin { tokens })
}

pub(super) fn validate_control(
    raw: raw::RawControl,
    origin: &OriginKind,
) -> Result<Control, ConfigError> {
    let poll_interval = duration(
        "control.poll_interval",
        raw.poll_interval.as_deref(),
        Duration::from_secs(10),
    )?;
    if poll_interval < Duration::from_millis(100) {
        return Err(invalid("control.poll_interval", "must be at least 100ms"));
    }
    let origin_enforces_keys = raw.origin_enforces_keys.unwrap_or(false);
    if origin_enforces_keys && raw.state_dir.is_some() {
        return Err(invalid(
            "control.origin_enforces_keys",
            "keys kept in control.state_dir never reach the origin's PoP; share the origin's \
             edge-state bucket instead",
        ));
    }
    if origin_enforces_keys && matches!(origin, OriginKind::Http { .. }) {
        return Err(invalid(
            "control.origin_enforces_keys",
            "an HTTP origin has no access keys",
        ));
    }
    Ok(Control {
        state_dir: raw.state_dir.map(PathBuf::from),
        poll_interval,
        origin_enforces_keys,
    })
}
