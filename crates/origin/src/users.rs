//! The configured users: who signed a request (SigV4 secrets for s3s) and who owns what.

use std::collections::HashMap;
use std::sync::Arc;

use s3s::S3Result;
use s3s::auth::{Credentials, S3Auth, SecretKey};

use crate::config::UserConfig;

/// One user (an S3 owner).
#[derive(Debug)]
pub struct User {
    /// Canonical id.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// E-mail, for ACL grants by address.
    pub email: Option<String>,
    secret_key: String,
}

/// Lookup of users by access key, id and e-mail.
#[derive(Debug, Default)]
pub struct Users {
    by_key: HashMap<String, Arc<User>>,
    by_id: HashMap<String, Arc<User>>,
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

    /// The user a verified signature belongs to (None: anonymous).
    #[must_use]
    pub fn caller(&self, credentials: Option<&Credentials>) -> Option<Arc<User>> {
        credentials.and_then(|c| self.by_key.get(&c.access_key).cloned())
    }

    /// The secret key of an access key (for signatures the store checks itself).
    #[must_use]
    pub fn secret_of(&self, access_key: &str) -> Option<&str> {
        self.by_key.get(access_key).map(|u| u.secret_key.as_str())
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
        match self.0.by_key.get(access_key) {
            Some(user) => Ok(SecretKey::from(user.secret_key.as_str())),
            None => Err(s3s::s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
        }
    }
}
