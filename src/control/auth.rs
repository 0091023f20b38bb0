//! Who may call the admin API: bearer tokens and their scopes. `[[admin.tokens]]` carry the
//! scopes they were given; `[purge]` tokens the scope `purge` alone; the peer token
//! (`purge.peer_token`) is accepted for forwarded purges and control changes.

use subtle::ConstantTimeEq;

use crate::config::{Config, Scope};

/// Why a request was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No token, or one no PoP gave out: 401.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// A valid token without the scope: 403.
    #[error("this token lacks the scope this request needs")]
    Forbidden,
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A read under `/v1/`: the scope `read` or the resource's own.
    Read(Scope),
    /// A write of a resource: its scope.
    Write(Scope),
    /// A peer telling this PoP the shared state changed: the peer token, or any token
    /// that may write some resource.
    Peer,
}

/// The bearer token of an `Authorization` value.
fn bearer(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

/// Checks `authorization` against the tokens of `config`; `Ok` with the token's name.
pub fn authorize(
    authorization: Option<&str>,
    config: &Config,
    need: Need,
) -> Result<String, Denied> {
    let presented = bearer(authorization)
        .ok_or(Denied::Unauthorized)?
        .as_bytes();
    let same = |secret: &str| bool::from(secret.as_bytes().ct_eq(presented));
    // Every token is compared, so timing does not tell which one (or whether any) matched.
    let mut found: Option<(String, Vec<Scope>, bool)> = None;
    for token in &config.admin.tokens {
        if same(token.token.expose()) {
            found = Some((token.name.clone(), token.scopes.clone(), false));
        }
    }
    for token in &config.purge.tokens {
        if same(token.token.expose()) && found.is_none() {
            found = Some((token.name.clone(), vec![Scope::Purge], false));
        }
    }
    if let Some(peer) = &config.purge.peer_token
        && same(peer.expose())
    {
        let scopes = found.as_ref().map(|f| f.1.clone()).unwrap_or_default();
        found = Some(("peer".to_owned(), scopes, true));
    }
    let (name, scopes, is_peer) = found.ok_or(Denied::Unauthorized)?;
    let allowed = match need {
        // Peers forward purges and read each other's purge journals.
        Need::Read(Scope::Purge) | Need::Write(Scope::Purge) if is_peer => true,
        Need::Read(scope) => scopes.contains(&Scope::Read) || scopes.contains(&scope),
        Need::Write(scope) => scopes.contains(&scope),
        Need::Peer => {
            is_peer
                || scopes
                    .iter()
                    .any(|s| matches!(s, Scope::Spaces | Scope::Certificates | Scope::Keys))
        }
    };
    if allowed {
        Ok(name)
    } else {
        Err(Denied::Forbidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[origin]\nkind = \"http\"\nurl = \"http://127.0.0.1:1\"\n[purge]\ntoken = \"purge-token-1\"\npeer_token = \"peer-token-123\"\n\
             [[admin.tokens]]\nname = \"viewer\"\ntoken = \"viewer-token-0123456\"\nscopes = [\"read\"]\n\
             [[admin.tokens]]\nname = \"ops\"\ntoken = \"ops-token-0123456789\"\n\
             [[space]]\nname = \"assets\"\n",
        )
        .unwrap()
    }

    #[test]
    fn scopes_decide() {
        let c = config();
        let spaces = Need::Write(Scope::Spaces);
        assert_eq!(authorize(None, &c, spaces), Err(Denied::Unauthorized));
        assert_eq!(
            authorize(Some("Bearer nope-nope-nope"), &c, spaces),
            Err(Denied::Unauthorized)
        );
        let viewer = Some("Bearer viewer-token-0123456");
        assert_eq!(authorize(viewer, &c, spaces), Err(Denied::Forbidden));
        assert!(authorize(viewer, &c, Need::Read(Scope::Spaces)).is_ok());
        let ops = Some("Bearer ops-token-0123456789");
        assert_eq!(authorize(ops, &c, spaces).as_deref(), Ok("ops"));
        let purge = Some("Bearer purge-token-1");
        assert_eq!(authorize(purge, &c, spaces), Err(Denied::Forbidden));
        assert!(authorize(purge, &c, Need::Write(Scope::Purge)).is_ok());
        assert_eq!(
            authorize(Some("Bearer peer-token-123"), &c, Need::Peer).as_deref(),
            Ok("peer")
        );
        assert_eq!(authorize(purge, &c, Need::Peer), Err(Denied::Forbidden));
    }
}
