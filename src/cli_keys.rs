//! `edge key create|list|delete`: access keys limited to buckets, over a PoP's admin API.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::admin_cli::{AdminApi, Sent, send};

#[derive(Subcommand)]
pub enum KeyAction {
    /// List the fleet's access keys (never their secrets).
    List,
    /// Create a key limited to buckets; its secret is printed this once.
    Create {
        name: String,
        /// A bucket and what the key may do in it: BUCKET:read or BUCKET:readwrite; repeatable.
        #[arg(long = "grant", value_name = "BUCKET:ACCESS", required = true)]
        grants: Vec<String>,
    },
    /// Delete a key: the origin refuses it from then on.
    Delete { access_key: String },
}

/// `BUCKET:ACCESS` as the API's grant (the API checks the names).
fn grant(text: &str) -> anyhow::Result<Value> {
    let (bucket, access) = text
        .rsplit_once(':')
        .with_context(|| format!("--grant {text}: expected BUCKET:read or BUCKET:readwrite"))?;
    Ok(json!({ "bucket": bucket, "access": access }))
}

/// Runs one `edge key` command.
pub fn key_command(api: AdminApi, action: KeyAction) -> anyhow::Result<ExitCode> {
    use edge::control::client::keys_table;
    use http::Method;
    let (method, path, body) = match &action {
        KeyAction::List => (Method::GET, "/v1/keys".to_owned(), None),
        KeyAction::Create { name, grants } => {
            let grants = grants
                .iter()
                .map(|g| grant(g))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let body = json!({ "name": name, "grants": grants });
            (Method::POST, "/v1/keys".to_owned(), Some(body))
        }
        KeyAction::Delete { access_key } => {
            (Method::DELETE, format!("/v1/keys/{access_key}"), None)
        }
    };
    let reply = match send(&api, method, &path, body.as_ref())? {
        Sent::Reply(reply) => reply,
        Sent::Done(code) => return Ok(code),
    };
    match action {
        KeyAction::List => {
            let keys = reply["keys"].as_array().cloned().unwrap_or_default();
            print!("{}", keys_table(&keys));
        }
        KeyAction::Create { .. } => {
            print!("{}", keys_table(std::slice::from_ref(&reply)));
            println!(
                "secret key: {}\n(shown this once: store it now)",
                reply["secret_key"].as_str().unwrap_or_default()
            );
        }
        KeyAction::Delete { access_key } => println!("key {access_key} deleted"),
    }
    Ok(ExitCode::SUCCESS)
}
