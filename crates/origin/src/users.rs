//! The configured users: who signed a request (SigV4 secrets for s3s) and who owns what;
//! limited access keys ([`crate::limited`]) sign as one of them.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use s3s::S3Result;
use s3s::auth::{Credentials, S3Auth, SecretKey};

use crate::config::UserConfig;
use crate::error::StoreError;
use crate::limited::{Limited, LimitedKey};

/// One user (an S3 owner).
#[derive(Debug)]
pub struct User {
    /// Canonical id.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// E-mail, for ACL grants by address.
    pub email: Option<String>,
    pub(crate) secret_key: String,
}

/// Lookup of users by access key, id and e-mail.
#[derive(Debug, Default)]
pub struct Users {
    by_key: HashMap<String, Arc<User>>,
    by_id: HashMap<String, Arc<User>>,
    /// Limited access keys by access key id, replaced as a whole at runtime.
    limited: RwLock<HashMap<String, Arc<Limited>>>,
}

impl Users {
    /// Builds the lookup from validated config.
    #[must_use]
    pub fn new(config: &[UserConfig]) -> Users {
        let mut users = Users::default();
        for u in config {
            let user = Arc::new(User {
                id: u.id.clone(),
                display_name: if u.display_name.is_empty() {
                    u.id.clone()
                } else {
                    u.display_name.clone()
                },
                email: u.email.clone(),
                secret_key: u.secret_key.clone(),
            });
            users.by_key.insert(u.access_key.clone(), user.clone());
            users.by_id.insert(u.id.clone(), user);
        }
        users
    }

    /// The user a verified signature belongs to (None: anonymous); a limited key's is the
    /// user it acts as.
    #[must_use]
    pub fn caller(&self, credentials: Option<&Credentials>) -> Option<Arc<User>> {
        let key = &credentials?.access_key;
        match self.by_key.get(key) {
            Some(user) => Some(user.clone()),
            None => self.limited(key).map(|l| l.user.clone()),
        }
    }

    /// The limited key a request was signed with, if it was.
    pub(crate) fn limited_caller(&self, credentials: Option<&Credentials>) -> Option<Arc<Limited>> {
        credentials.and_then(|c| self.limited(&c.access_key))
    }

    /// The limited key with this access key id.
    pub(crate) fn limited(&self, access_key: &str) -> Option<Arc<Limited>> {
        self.limited
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(access_key)
            .cloned()
    }

    /// Replaces every limited key with `keys`. Nothing changes when one names an unknown
    /// user or takes a configured user's access key.
    pub(crate) fn set_limited(&self, keys: &[LimitedKey]) -> Result<(), StoreError> {
        let mut next = HashMap::with_capacity(keys.len());
        for key in keys {
            let user = self
                .by_id
                .get(&key.user_id)
                .ok_or_else(|| StoreError::UnknownUser(key.user_id.clone()))?;
            if self.by_key.contains_key(&key.access_key) {
                return Err(StoreError::Config(format!(
                    "limited key {}: a configured user has this access key",
                    key.access_key
                )));
            }
            next.insert(
                key.access_key.clone(),
                Arc::new(Limited::new(key, user.clone())),
            );
        }
        *self.limited.write().unwrap_or_else(PoisonError::into_inner) = next;
        Ok(())
    }

    /// The secret key of an access key (for signatures the store checks itself).
    #[must_use]
    pub fn secret_of(&self, access_key: &str) -> Option<String> {
        match self.by_key.get(access_key) {
            Some(user) => Some(user.secret_key.clone()),
            None => self.limited(access_key).map(|l| l.secret.clone()),
        }
    }

    /// The user with this id.
    #[must_use]
    pub fn by_id(&self, id: &str) -> Option<&Arc<User>> {
        self.by_id.get(id)
    }

    /// The id of the user with this e-mail address.
    #[must_use]
    pub fn id_for_email(&self, email: &str) -> Option<String> {
        self.by_id
            .values()
            .find(|u| {
                u.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .map(|u| u.id.clone())
    }

    /// Display name for an owner id (the id itself for users no longer configured).
    #[must_use]
    pub fn display_name(&self, id: &str) -> String {
        self.by_id
            .get(id)
            .map_or_else(|| id.to_owned(), |u| u.display_name.clone())
    }

    /// The `Owner` element for an id.
    #[must_use]
    pub fn owner(&self, id: &str) -> s3s::dto::Owner {
        s3s::dto::Owner {
            id: Some(id.to_owned()),
            display_name: Some(self.display_name(id)),
        }
    }
}

/// Gives s3s the secret of an access key so it can check signatures.
#[derive(Debug, Clone)]
pub struct Auth(pub Arc<Users>);

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.secret_of(access_key) {
            Some(secret) => Ok(SecretKey::from(secret.as_str())),
            None => Err(s3s::s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
        }
    }
}
