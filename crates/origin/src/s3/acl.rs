//! Get/PutObjectAcl and Get/PutBucketAcl, and turning canned ACLs, `x-amz-grant-*` headers
//! and `AccessControlPolicy` bodies into an [`Acl`].

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::versions::{parse_version, resolve};
use super::{applied, blocking, require_bucket};
use crate::access::Recheck;
use crate::acl::{
    ALL_USERS_URI, AUTHENTICATED_USERS_URI, Acl, AclError, Grant as AclGrant,
    Grantee as AclGrantee, Permission,
};
use crate::store::State;
use crate::users::Users;

fn acl_error(e: AclError) -> s3s::S3Error {
    match e {
        AclError::UnknownCanned(_) => s3_error!(InvalidArgument, "{e}"),
        AclError::InvalidGrantee(_) | AclError::InvalidPermission(_) => {
            s3_error!(InvalidArgument, "{e}")
        }
    }
}

/// The `x-amz-grant-*` header values of a request.
#[derive(Default)]
pub(super) struct GrantHeaders<'a> {
    pub full_control: Option<&'a str>,
    pub read: Option<&'a str>,
    pub read_acp: Option<&'a str>,
    pub write: Option<&'a str>,
    pub write_acp: Option<&'a str>,
}

impl GrantHeaders<'_> {
    fn any(&self) -> bool {
        self.full_control.is_some()
            || self.read.is_some()
            || self.read_acp.is_some()
            || self.write.is_some()
            || self.write_acp.is_some()
    }
}

/// The ACL a write asks for: a canned ACL, grant headers, or (neither) private.
pub(super) fn acl_from_headers(
    users: &Users,
    canned: Option<&str>,
    grants: &GrantHeaders<'_>,
) -> S3Result<Acl> {
    if canned.is_some() && grants.any() {
        return Err(s3_error!(
            InvalidRequest,
            "Specifying both Canned ACLs and Header Grants is not allowed"
        ));
    }
    let mut acl = match canned {
        Some(name) => Acl::canned(name).map_err(acl_error)?,
        None => Acl::default(),
    };
    let lookup = |email: &str| users.id_for_email(email);
    for (perm, value) in [
        (Permission::FullControl, grants.full_control),
        (Permission::Read, grants.read),
        (Permission::ReadAcp, grants.read_acp),
        (Permission::Write, grants.write),
        (Permission::WriteAcp, grants.write_acp),
    ] {
        if let Some(value) = value {
            acl.add_grant_header(perm, value, &lookup)
                .map_err(acl_error)?;
        }
    }
    known_users(users, &acl)?;
    Ok(acl)
}

/// Every user a grant names must exist (S3 answers `InvalidArgument` otherwise).
fn known_users(users: &Users, acl: &Acl) -> S3Result<()> {
    for g in &acl.grants {
        if let AclGrantee::User(id) = &g.grantee
            && users.by_id(id).is_none()
        {
            return Err(s3_error!(InvalidArgument, "Invalid id"));
        }
    }
    Ok(())
}

/// The ACL an `AccessControlPolicy` body describes (the owner's own grants are implicit).
fn acl_from_policy(users: &Users, owner: &str, policy: &AccessControlPolicy) -> S3Result<Acl> {
    let mut acl = Acl::default();
    let mut owner_full_control = false;
    for grant in policy.grants.iter().flatten() {
        let perm_name = grant
            .permission
            .as_ref()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let permission = Permission::parse(&perm_name)
            .ok_or_else(|| acl_error(AclError::InvalidPermission(perm_name)))?;
        let Some(grantee) = &grant.grantee else {
            return Err(s3_error!(MalformedACLError, "A Grant has no Grantee"));
        };
        let grantee =
            match grantee.type_.as_str() {
                Type::CANONICAL_USER => AclGrantee::User(grantee.id.clone().ok_or_else(|| {
                    s3_error!(InvalidArgument, "CanonicalUser grantee without ID")
                })?),
                Type::GROUP => {
                    let uri = grantee.uri.clone().unwrap_or_default();
                    crate::acl::group_from_uri(&uri)
                        .ok_or_else(|| acl_error(AclError::InvalidGrantee(uri)))?
                }
                Type::AMAZON_CUSTOMER_BY_EMAIL => {
                    let email = grantee.email_address.clone().unwrap_or_default();
                    AclGrantee::User(
                        users
                            .id_for_email(&email)
                            .ok_or_else(|| s3_error!(UnresolvableGrantByEmailAddress))?,
                    )
                }
                other => return Err(acl_error(AclError::InvalidGrantee(other.to_owned()))),
            };
        if grantee == AclGrantee::User(owner.to_owned()) && permission == Permission::FullControl {
            owner_full_control = true;
            continue;
        }
        acl.push(AclGrant {
            grantee,
            permission,
        });
    }
    acl.owner_grant_omitted = !owner_full_control;
    known_users(users, &acl)?;
    Ok(acl)
}

/// The ACL of a PutObjectAcl / PutBucketAcl: body, canned header or grant headers.
fn acl_for_put(
    users: &Users,
    owner: &str,
    body: Option<&AccessControlPolicy>,
    canned: Option<&str>,
    grants: &GrantHeaders<'_>,
) -> S3Result<Acl> {
    match body {
        Some(policy) if canned.is_none() && !grants.any() => acl_from_policy(users, owner, policy),
        Some(_) => Err(s3_error!(
            UnexpectedContent,
            "This request does not support content"
        )),
        None if canned.is_none() && !grants.any() => Err(s3_error!(
            MissingSecurityHeader,
            "Your request was missing a required header"
        )),
        None => acl_from_headers(users, canned, grants),
    }
}

/// Grants as S3 shows them: group grants first, then the owner's `FULL_CONTROL`, then the
/// other users' grants, every user grant with its `ID` and `DisplayName`. `bucket_owner` is
/// the owner of the bucket holding an object (what `bucket-owner-*` grants name).
fn grants_dto(users: &Users, owner: &str, acl: &Acl, bucket_owner: Option<&str>) -> Grants {
    let user = |id: &str| Grantee {
        display_name: Some(users.display_name(id)),
        email_address: None,
        id: Some(id.to_owned()),
        type_: Type::from_static(Type::CANONICAL_USER),
        uri: None,
    };
    let group = |uri: &str| Grantee {
        display_name: None,
        email_address: None,
        id: None,
        type_: Type::from_static(Type::GROUP),
        uri: Some(uri.to_owned()),
    };
    let grant = |grantee, permission: Permission| Grant {
        grantee: Some(grantee),
        permission: Some(permission.as_str().to_owned().into()),
    };
    let mut groups = Vec::new();
    let mut others = Vec::new();
    for g in &acl.grants {
        match &g.grantee {
            AclGrantee::AllUsers => groups.push(grant(group(ALL_USERS_URI), g.permission)),
            AclGrantee::AuthenticatedUsers => {
                groups.push(grant(group(AUTHENTICATED_USERS_URI), g.permission));
            }
            AclGrantee::User(id) => others.push(grant(user(id), g.permission)),
            AclGrantee::BucketOwner => match bucket_owner {
                Some(b) if b != owner => others.push(grant(user(b), g.permission)),
                _ => {}
            },
        }
    }
    let mut out = groups;
    if !acl.owner_grant_omitted {
        out.push(grant(user(owner), Permission::FullControl));
    }
    out.extend(others);
    out
}

pub(super) fn get_object_acl(
    state: &State,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let input = req.input;
    let sel = parse_version(input.version_id.as_deref())?;
    let bucket = require_bucket(state, &input.bucket)?;
    let object = resolve(state, &input.bucket, &input.key, sel.as_ref())?;
    Ok(S3Response::new(GetObjectAclOutput {
        grants: Some(grants_dto(
            &state.users,
            &object.owner,
            &object.acl,
            Some(&bucket.owner),
        )),
        owner: Some(state.users.owner(&object.owner)),
        ..Default::default()
    }))
}

pub(super) async fn put_object_acl(
    state: &std::sync::Arc<State>,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let caller = super::caller(state, &req);
    let input = req.input;
    let sel = parse_version(input.version_id.as_deref())?;
    let object = resolve(state, &input.bucket, &input.key, sel.as_ref())?;
    let grants = GrantHeaders {
        full_control: input.grant_full_control.as_deref(),
        read: input.grant_read.as_deref(),
        read_acp: input.grant_read_acp.as_deref(),
        write: input.grant_write.as_deref(),
        write_acp: input.grant_write_acp.as_deref(),
    };
    let acl = acl_for_put(
        &state.users,
        &object.owner,
        input.access_control_policy.as_ref(),
        input.acl.as_ref().map(ObjectCannedACL::as_str),
        &grants,
    )?;
    let st = state.clone();
    let (bucket, key) = (input.bucket.clone(), input.key.clone());
    let op = if sel.is_some() {
        "PutObjectVersionAcl"
    } else {
        "PutObjectAcl"
    };
    let check = Recheck::new(caller.as_deref(), &bucket, op);
    applied(
        blocking(move || match sel {
            Some(sel) => st.index.update_version(
                &bucket,
                &key,
                &sel,
                |b, o| check.allows(b, Some(&key), Some(o)),
                |rec| rec.acl = acl,
            ),
            None => st.index.update_object(
                &bucket,
                &key,
                |b, o| check.allows(b, Some(&key), Some(o)),
                |rec| rec.acl = acl,
            ),
        })
        .await?,
    )?;
    Ok(S3Response::new(PutObjectAclOutput::default()))
}

pub(super) fn get_bucket_acl(
    state: &State,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let bucket = require_bucket(state, &req.input.bucket)?;
    Ok(S3Response::new(GetBucketAclOutput {
        grants: Some(grants_dto(&state.users, &bucket.owner, &bucket.acl, None)),
        owner: Some(state.users.owner(&bucket.owner)),
    }))
}

pub(super) async fn put_bucket_acl(
    state: &std::sync::Arc<State>,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let caller = super::caller(state, &req);
    let input = req.input;
    let bucket = require_bucket(state, &input.bucket)?;
    let grants = GrantHeaders {
        full_control: input.grant_full_control.as_deref(),
        read: input.grant_read.as_deref(),
        read_acp: input.grant_read_acp.as_deref(),
        write: input.grant_write.as_deref(),
        write_acp: input.grant_write_acp.as_deref(),
    };
    let acl = acl_for_put(
        &state.users,
        &bucket.owner,
        input.access_control_policy.as_ref(),
        input.acl.as_ref().map(BucketCannedACL::as_str),
        &grants,
    )?;
    let st = state.clone();
    let name = input.bucket.clone();
    let check = Recheck::new(caller.as_deref(), &name, "PutBucketAcl");
    applied(
        blocking(move || {
            st.index
                .update_bucket(&name, |b| check.allows(b, None, None), |b| b.acl = acl)
        })
        .await?,
    )?;
    Ok(S3Response::new(PutBucketAclOutput::default()))
}
