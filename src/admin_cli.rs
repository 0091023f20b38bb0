//! The admin-API commands of the CLI: `edge space` and `edge cert`, over the control-plane
//! API of any PoP, with tables for people and `--json` for scripts.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use edge::control::client::{call, certs_table, spaces_table};
use http::Method;
use serde_json::Value;

/// How the CLI reaches the admin API.
#[derive(clap::Args)]
pub struct AdminApi {
    /// Admin URL of a PoP, e.g. http://127.0.0.1:8081
    #[arg(long, env = "EDGE_ADMIN_URL", global = true)]
    pub(crate) admin: Option<String>,
    /// Bearer token with the scope the command needs.
    #[arg(long, env = "EDGE_ADMIN_TOKEN", hide_env_values = true, global = true)]
    pub(crate) token: Option<String>,
    /// Extra CA certificates (PEM) to trust for an admin listener with `admin_tls`.
    #[arg(long, global = true)]
    pub(crate) ca: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// A space's settings, as `edge space create` and `update` take them.
#[derive(clap::Args)]
pub struct SpaceFields {
    #[arg(long)]
    region: Option<String>,
    /// Default TTL of the space's objects, e.g. 1h.
    #[arg(long)]
    ttl: Option<String>,
    #[arg(long = "custom-domain")]
    custom_domain: Option<String>,
    /// `acme` (or an uploaded certificate's id).
    #[arg(long)]
    certificate: Option<String>,
    #[arg(long)]
    bucket: Option<String>,
}

impl SpaceFields {
    fn json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut fields = serde_json::Map::new();
        let mut set = |name: &str, value: &Option<String>| {
            if let Some(value) = value {
                fields.insert(name.to_owned(), value.clone().into());
            }
        };
        set("region", &self.region);
        set("ttl", &self.ttl);
        set("custom_domain", &self.custom_domain);
        set("bucket", &self.bucket);
        if let Some(certificate) = &self.certificate {
            let value = match certificate.as_str() {
                "acme" => serde_json::json!("acme"),
                id => serde_json::json!({ "id": id }),
            };
            fields.insert("certificate".to_owned(), value);
        }
        fields
    }
}

#[derive(Subcommand)]
pub enum SpaceAction {
    /// List every space the fleet serves.
    List,
    /// Create a space (and its bucket).
    Create {
        name: String,
        #[command(flatten)]
        fields: SpaceFields,
    },
    /// Change settings of a space created through the API.
    Update {
        name: String,
        #[command(flatten)]
        fields: SpaceFields,
    },
    /// Delete a space created through the API; its cached objects are dropped everywhere.
    Delete { name: String },
}

/// What became of one request of the CLI.
pub(crate) enum Sent {
    /// The API's reply, for the command to show as a table.
    Reply(Value),
    /// Finished: printed as JSON (`--json`), or failed with the reason printed.
    Done(ExitCode),
}

/// Sends one request to the admin API `api` names.
pub(crate) fn send(
    api: &AdminApi,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<Sent> {
    let admin = api
        .admin
        .as_deref()
        .context("--admin (or EDGE_ADMIN_URL) is required")?;
    let token = api
        .token
        .as_deref()
        .context("--token (or EDGE_ADMIN_TOKEN) is required")?;
    let reply =
        crate::runtime()?.block_on(call(admin, token, method, path, body, api.ca.as_deref()));
    Ok(match reply {
        Err(e) => {
            eprintln!("edge: {e}");
            Sent::Done(ExitCode::FAILURE)
        }
        Ok(reply) if api.json => {
            println!("{reply}");
            Sent::Done(ExitCode::SUCCESS)
        }
        Ok(reply) => Sent::Reply(reply),
    })
}

/// `edge space ...`.
pub fn space_command(api: AdminApi, action: SpaceAction) -> anyhow::Result<ExitCode> {
    let (method, path, body) = match &action {
        SpaceAction::List => (Method::GET, "/v1/spaces".to_owned(), None),
        SpaceAction::Create { name, fields } => {
            let mut body = fields.json();
            body.insert("name".to_owned(), name.clone().into());
            (Method::POST, "/v1/spaces".to_owned(), Some(body.into()))
        }
        SpaceAction::Update { name, fields } => (
            Method::PATCH,
            format!("/v1/spaces/{name}"),
            Some(fields.json().into()),
        ),
        SpaceAction::Delete { name } => (Method::DELETE, format!("/v1/spaces/{name}"), None),
    };
    let reply = match send(&api, method, &path, body.as_ref())? {
        Sent::Reply(reply) => reply,
        Sent::Done(code) => return Ok(code),
    };
    match action {
        SpaceAction::List => {
            let spaces = reply["spaces"].as_array().cloned().unwrap_or_default();
            print!("{}", spaces_table(&spaces));
        }
        SpaceAction::Delete { name } => println!("space {name} deleted"),
        SpaceAction::Create { .. } | SpaceAction::Update { .. } => {
            print!("{}", spaces_table(std::slice::from_ref(&reply)));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum CertAction {
    /// Upload a certificate chain and its key (served by every PoP for the names it lists).
    Upload {
        /// PEM chain, leaf first.
        #[arg(long)]
        cert: PathBuf,
        /// PEM private key of the leaf.
        #[arg(long)]
        key: PathBuf,
    },
    /// List uploaded certificates (and those of the config files).
    List,
    /// Delete an uploaded certificate no space uses.
    Delete { id: String },
}

/// `edge cert ...`.
pub fn cert_command(api: AdminApi, action: CertAction) -> anyhow::Result<ExitCode> {
    let (method, path, body) = match &action {
        CertAction::Upload { cert, key } => {
            let read = |path: &PathBuf| {
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))
            };
            let body = serde_json::json!({ "cert": read(cert)?, "key": read(key)? });
            (Method::POST, "/v1/certificates".to_owned(), Some(body))
        }
        CertAction::List => (Method::GET, "/v1/certificates".to_owned(), None),
        CertAction::Delete { id } => (Method::DELETE, format!("/v1/certificates/{id}"), None),
    };
    let reply = match send(&api, method, &path, body.as_ref())? {
        Sent::Reply(reply) => reply,
        Sent::Done(code) => return Ok(code),
    };
    match action {
        CertAction::List => {
            let certs = reply["certificates"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            print!("{}", certs_table(&certs));
        }
        CertAction::Delete { id } => println!("certificate {id} deleted"),
        CertAction::Upload { .. } => print!("{}", certs_table(std::slice::from_ref(&reply))),
    }
    Ok(ExitCode::SUCCESS)
}
