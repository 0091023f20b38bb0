//! Access control lists: who besides the owner may read or write a bucket or an object.
//!
//! The owner's `FULL_CONTROL` is implicit; an [`Acl`] stores only the extra grants. Canned ACLs
//! (`x-amz-acl`), `x-amz-grant-*` headers and `AccessControlPolicy` XML bodies all become one.

use serde::{Deserialize, Serialize};

/// The URI S3 uses for "everyone, signed or not".
pub const ALL_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
/// The URI S3 uses for "any signed request".
pub const AUTHENTICATED_USERS_URI: &str =
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// Who a grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Grantee {
    /// One user, by canonical id.
    User(String),
    /// Everyone, anonymous included.
    AllUsers,
    /// Any request signed by a known user.
    AuthenticatedUsers,
    /// The owner of the bucket holding the object (`bucket-owner-read`,
    /// `bucket-owner-full-control`). The bucket owner already controls every object in its
    /// bucket, so this grant only shows in the ACL.
    BucketOwner,
}

/// What a grant allows (S3's ACL permissions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Permission {
    /// All of the below.
    FullControl,
    /// Read the object, or list the bucket.
    Read,
    /// Create, overwrite and delete objects in the bucket.
    Write,
    /// Read the ACL.
    ReadAcp,
    /// Change the ACL.
    WriteAcp,
}

impl Permission {
    /// The S3 wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FullControl => "FULL_CONTROL",
            Self::Read => "READ",
            Self::Write => "WRITE",
            Self::ReadAcp => "READ_ACP",
            Self::WriteAcp => "WRITE_ACP",
        }
    }

    /// Parses the S3 wire name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "FULL_CONTROL" => Self::FullControl,
            "READ" => Self::Read,
            "WRITE" => Self::Write,
            "READ_ACP" => Self::ReadAcp,
            "WRITE_ACP" => Self::WriteAcp,
            _ => return None,
        })
    }

    /// Whether holding `self` gives `wanted`.
    #[must_use]
    pub fn covers(self, wanted: Permission) -> bool {
        self == Self::FullControl || self == wanted
    }
}

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Who.
    pub grantee: Grantee,
    /// What.
    pub permission: Permission,
}

/// The grants on a bucket or an object, beyond the owner's implicit full control.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    /// Extra grants.
    pub grants: Vec<Grant>,
    /// The owner's own `FULL_CONTROL` grant was left out of the ACL set (an
    /// `AccessControlPolicy` without it): it is not shown. The owner keeps its rights.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub owner_grant_omitted: bool,
}

/// Why an ACL could not be built from a request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AclError {
    /// `x-amz-acl` names a canned ACL we do not know.
    #[error("unsupported canned ACL {0:?}")]
    UnknownCanned(String),
    /// A grant names something we cannot resolve.
    #[error("invalid grantee {0:?}")]
    InvalidGrantee(String),
    /// A grant has an unknown permission.
    #[error("invalid permission {0:?}")]
    InvalidPermission(String),
}

impl Acl {
    /// The ACL of a canned name (`private`, `public-read`, `public-read-write`,
    /// `authenticated-read`, `bucket-owner-read`, `bucket-owner-full-control`).
    pub fn canned(name: &str) -> Result<Acl, AclError> {
        let grant = |grantee, permission| Grant {
            grantee,
            permission,
        };
        let grants = match name {
            "private" => vec![],
            "bucket-owner-read" => vec![grant(Grantee::BucketOwner, Permission::Read)],
            "bucket-owner-full-control" => {
                vec![grant(Grantee::BucketOwner, Permission::FullControl)]
            }
            "public-read" => vec![grant(Grantee::AllUsers, Permission::Read)],
            "public-read-write" => vec![
                grant(Grantee::AllUsers, Permission::Read),
                grant(Grantee::AllUsers, Permission::Write),
            ],
            "authenticated-read" => vec![grant(Grantee::AuthenticatedUsers, Permission::Read)],
            other => return Err(AclError::UnknownCanned(other.to_owned())),
        };
        Ok(Acl {
            grants,
            owner_grant_omitted: false,
        })
    }

    /// Whether `caller` (None = anonymous) holds `wanted` through these grants.
    #[must_use]
    pub fn allows(&self, caller: Option<&str>, wanted: Permission) -> bool {
        self.grants.iter().any(|g| {
            g.permission.covers(wanted)
                && match &g.grantee {
                    Grantee::AllUsers => true,
                    Grantee::AuthenticatedUsers => caller.is_some(),
                    Grantee::User(id) => caller == Some(id.as_str()),
                    Grantee::BucketOwner => false,
                }
        })
    }

    /// Adds the grants of one `x-amz-grant-<permission>` header value
    /// (`id="..."`, `uri="..."`, `emailAddress="..."`, comma separated).
    pub fn add_grant_header(
        &mut self,
        permission: Permission,
        value: &str,
        email_to_id: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), AclError> {
        for item in value.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (kind, raw) = item
                .split_once('=')
                .ok_or_else(|| AclError::InvalidGrantee(item.to_owned()))?;
            let raw = raw.trim().trim_matches('"');
            let grantee = match kind.trim().to_ascii_lowercase().as_str() {
                "id" => Grantee::User(raw.to_owned()),
                "uri" => {
                    group_from_uri(raw).ok_or_else(|| AclError::InvalidGrantee(raw.to_owned()))?
                }
                "emailaddress" => Grantee::User(
                    email_to_id(raw).ok_or_else(|| AclError::InvalidGrantee(raw.to_owned()))?,
                ),
                _ => return Err(AclError::InvalidGrantee(item.to_owned())),
            };
            self.push(Grant {
                grantee,
                permission,
            });
        }
        Ok(())
    }

    /// Adds a grant unless it is already there.
    pub fn push(&mut self, grant: Grant) {
        if !self.grants.contains(&grant) {
            self.grants.push(grant);
        }
    }
}

/// The group a grantee URI names.
#[must_use]
pub fn group_from_uri(uri: &str) -> Option<Grantee> {
    match uri {
        ALL_USERS_URI => Some(Grantee::AllUsers),
        AUTHENTICATED_USERS_URI => Some(Grantee::AuthenticatedUsers),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_public_read_lets_anyone_read_but_not_write() {
        let acl = Acl::canned("public-read").unwrap();
        assert!(acl.allows(None, Permission::Read));
        assert!(!acl.allows(None, Permission::Write));
        assert!(!acl.allows(Some("bob"), Permission::ReadAcp));
    }

    #[test]
    fn authenticated_read_excludes_anonymous() {
        let acl = Acl::canned("authenticated-read").unwrap();
        assert!(!acl.allows(None, Permission::Read));
        assert!(acl.allows(Some("bob"), Permission::Read));
    }

    #[test]
    fn grant_headers_parse_ids_uris_and_emails() {
        let mut acl = Acl::default();
        let lookup = |e: &str| (e == "bob@example.com").then(|| "bob".to_owned());
        acl.add_grant_header(
            Permission::Read,
            &format!("id=\"alice\", uri=\"{ALL_USERS_URI}\", emailAddress=\"bob@example.com\""),
            &lookup,
        )
        .unwrap();
        assert_eq!(acl.grants.len(), 3);
        assert!(acl.allows(Some("bob"), Permission::Read));
        assert!(
            acl.add_grant_header(Permission::Read, "emailAddress=\"x@y\"", &lookup)
                .is_err()
        );
        assert_eq!(
            Acl::canned("nope"),
            Err(AclError::UnknownCanned("nope".into()))
        );
    }
}
