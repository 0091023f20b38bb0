//! Validation of `[purge]`: tokens and the PoPs a purge reaches.

use std::path::PathBuf;
use std::time::Duration;

use super::fields::*;
use super::*;

pub(super) fn validate_purge(raw: raw::RawPurge) -> Result<Purge, ConfigError> {
    let mut tokens = Vec::new();
    if let Some(token) = secret(
        "purge.token",
        raw.token.as_deref(),
        raw.token_env.as_deref(),
    )? {
        tokens.push(PurgeToken {
            name: "default".to_owned(),
            token,
        });
    }
    for (i, t) in raw.tokens.into_iter().enumerate() {
        let key = format!("purge.tokens[{i}]");
        let token = named_token(
            &key,
            &t.name,
            t.token.as_deref(),
            t.token_env.as_deref(),
            |name| tokens.iter().any(|o| o.name == name),
        )?;
        tokens.push(PurgeToken {
            name: t.name,
            token,
        });
    }
    for t in &tokens {
        if t.token.expose().len() < 8 {
            return Err(invalid(
                "purge.token",
                format!("token `{}` must be at least 8 characters", t.name),
            ));
        }
    }
    let peer_token = secret(
        "purge.peer_token",
        raw.peer_token.as_deref(),
        raw.peer_token_env.as_deref(),
    )?
    .or_else(|| tokens.first().map(|t| t.token.clone()));
    let mut peers = Vec::new();
    for (i, p) in raw.peers.into_iter().enumerate() {
        uri(&format!("purge.peers[{i}]"), &p)?;
        peers.push(p.trim_end_matches('/').to_owned());
    }
    if !peers.is_empty() && peer_token.is_none() {
        return Err(invalid(
            "purge.peers",
            "peers need a token to send (purge.token or purge.peer_token_env)",
        ));
    }
    Ok(Purge {
        tokens,
        peer_token,
        peers,
        timeout: duration(
            "purge.timeout",
            raw.timeout.as_deref(),
            Duration::from_secs(2),
        )?,
        state_dir: raw.state_dir.map(PathBuf::from),
        ca_roots: raw.ca_roots.map(PathBuf::from),
    })
}
