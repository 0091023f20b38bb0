//! Versioning vocabulary: a bucket's versioning state, version ids and how a request names a
//! version (`?versionId=`).
//!
//! A version id is 32 lowercase hex digits: the version's sequence number (16 digits, from a
//! counter in the index, so ids of one key sort by age) and 16 random ones. The `null` version
//! is the one written while the bucket was unversioned or suspended.

use serde::{Deserialize, Serialize};

/// A bucket's versioning state, as S3 has it (never enabled, enabled, suspended).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    /// Versioning was never enabled: writes replace, deletes remove.
    #[default]
    Unversioned,
    /// Every write makes a new version; deletes write delete markers.
    Enabled,
    /// Writes replace the `null` version; deletes write a `null` delete marker.
    Suspended,
}

impl Versioning {
    /// The `Status` GetBucketVersioning answers (none when never enabled).
    #[must_use]
    pub fn status(self) -> Option<&'static str> {
        match self {
            Self::Unversioned => None,
            Self::Enabled => Some("Enabled"),
            Self::Suspended => Some("Suspended"),
        }
    }
}

/// The text S3 uses for the null version.
pub const NULL: &str = "null";

/// Which version a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `versionId=null`.
    Null,
    /// A version id this store issued (its sequence number is part of it).
    Id {
        /// The id as sent.
        id: String,
        /// Its sequence number.
        seq: u64,
    },
}

/// A `versionId` that cannot be one of ours (400 `InvalidArgument`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid version id specified")]
pub struct MalformedVersionId;

impl Selector {
    /// Parses a `versionId` query value.
    pub fn parse(text: &str) -> Result<Selector, MalformedVersionId> {
        if text == NULL {
            return Ok(Selector::Null);
        }
        if text.len() != 32
            || !text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(MalformedVersionId);
        }
        let seq = u64::from_str_radix(&text[..16], 16).map_err(|_| MalformedVersionId)?;
        if seq == 0 {
            return Err(MalformedVersionId);
        }
        Ok(Selector::Id {
            id: text.to_owned(),
            seq,
        })
    }

    /// Whether a version whose id is `version_id` (None: null) is the one named.
    #[must_use]
    pub fn matches(&self, version_id: Option<&str>) -> bool {
        match (self, version_id) {
            (Selector::Null, None) => true,
            (Selector::Id { id, .. }, Some(v)) => id == v,
            _ => false,
        }
    }

    /// The id as S3 shows it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Selector::Null => NULL,
            Selector::Id { id, .. } => id,
        }
    }
}

/// A fresh version id for sequence number `seq`.
#[must_use]
pub fn new_id(seq: u64) -> String {
    let random = uuid::Uuid::new_v4().as_u64_pair().0;
    format!("{seq:016x}{random:016x}")
}

/// How S3 shows a version id (`None` is the null version).
#[must_use]
pub fn shown(version_id: Option<&str>) -> String {
    version_id.unwrap_or(NULL).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_malformed_ones_are_refused() {
        let id = new_id(42);
        assert_eq!(id.len(), 32);
        let sel = Selector::parse(&id).unwrap();
        assert_eq!(
            sel,
            Selector::Id {
                id: id.clone(),
                seq: 42
            }
        );
        assert!(sel.matches(Some(&id)));
        assert!(!sel.matches(None));
        assert_eq!(Selector::parse("null").unwrap(), Selector::Null);
        assert!(Selector::Null.matches(None));
        for bad in [
            "",
            "nul",
            "xyz",
            &id[..31],
            &id.to_uppercase(),
            &"0".repeat(32),
        ] {
            assert_eq!(Selector::parse(bad), Err(MalformedVersionId), "{bad:?}");
        }
        assert!(new_id(1) < new_id(2), "ids of one key sort by age");
    }
}
