//! The `edge` command: CLI parsing, config loading and logging; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use edge::config::Config;

mod cli_keys;

/// mimalloc: size-class pages without a header per allocation. A cached 1 KiB object is a
/// handful of small allocations (the entry, its packed head, its key, the body), and glibc's
/// per-chunk header and rounding cost ~20% more memory per object (`benches/README.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "edge",
    version,
    about = "A CDN edge PoP in front of an S3-compatible object store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one PoP (and the embedded origin when origin.kind = "embedded").
    Serve {
        #[arg(long, default_value = "edge.toml")]
        config: PathBuf,
    },
    /// Run only the embedded origin store.
    Origin {
        #[arg(long, default_value = "edge.toml")]
        config: PathBuf,
    },
    /// Purge paths or cache tags of a space through a PoP's admin API (exit 0: all PoPs done, 2: some pending, 1: error).
    Purge {
        /// Admin URL of the PoP, e.g. http://127.0.0.1:8081
        #[arg(long)]
        admin: String,
        /// Bearer token (or set EDGE_PURGE_TOKEN).
        #[arg(long, env = "EDGE_PURGE_TOKEN", hide_env_values = true)]
        token: String,
        /// Extra CA certificates (PEM) to trust for an admin listener with `admin_tls`.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// The space to purge in.
        space: String,
        /// Paths: `img/a.png`, `css/*` or `*`.
        #[arg(required_unless_present = "tag")]
        paths: Vec<String>,
        /// A cache tag to purge (the origin's `Surrogate-Key` or `Cache-Tag`); repeatable.
        #[arg(long = "tag", value_name = "TAG")]
        tag: Vec<String>,
        /// Mark what is selected stale (revalidated on next use) instead of dropping it.
        #[arg(long)]
        soft: bool,
    },
    /// Manage the fleet's spaces through a PoP's admin API (exit 0: done, 1: error).
    Space {
        #[command(flatten)]
        api: AdminApi,
        #[command(subcommand)]
        action: SpaceAction,
    },
    /// Manage access keys limited to buckets through a PoP's admin API (exit 0: done, 1: error).
    Key {
        #[command(flatten)]
        api: AdminApi,
        #[command(subcommand)]
        action: cli_keys::KeyAction,
    },
    /// Validate the config and print it with secrets masked.
    CheckConfig {
        #[arg(long, default_value = "edge.toml")]
        config: PathBuf,
    },
}

/// How the CLI reaches the admin API.
#[derive(clap::Args)]
struct AdminApi {
    /// Admin URL of a PoP, e.g. http://127.0.0.1:8081
    #[arg(long, env = "EDGE_ADMIN_URL", global = true)]
    admin: Option<String>,
    /// Bearer token with the scope the command needs.
    #[arg(long, env = "EDGE_ADMIN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Extra CA certificates (PEM) to trust for an admin listener with `admin_tls`.
    #[arg(long, global = true)]
    ca: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

/// A space's settings, as `edge space create` and `update` take them.
#[derive(clap::Args)]
struct SpaceFields {
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
enum SpaceAction {
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

fn space_command(api: AdminApi, action: SpaceAction) -> anyhow::Result<ExitCode> {
    use edge::control::client::{call, spaces_table};
    use http::Method;
    let admin = api
        .admin
        .context("--admin (or EDGE_ADMIN_URL) is required")?;
    let token = api
        .token
        .context("--token (or EDGE_ADMIN_TOKEN) is required")?;
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
    let reply = runtime()?.block_on(call(
        &admin,
        &token,
        method,
        &path,
        body.as_ref(),
        api.ca.as_deref(),
    ));
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => {
            eprintln!("edge: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if api.json {
        println!("{reply}");
        return Ok(ExitCode::SUCCESS);
    }
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

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).with_context(|| format!("invalid config {}", path.display()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::CheckConfig { config } => {
            let config = load(&config)?;
            print!("{}", config.to_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { config: path } => {
            let config = load(&path)?;
            edge::logging::init(&config.log).context("cannot set up logging")?;
            runtime()?.block_on(edge::run(config, path))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Origin { config } => {
            let config = load(&config)?;
            edge::logging::init(&config.log).context("cannot set up logging")?;
            runtime()?.block_on(edge::run_origin_only(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Space { api, action } => space_command(api, action),
        Command::Key { api, action } => cli_keys::key_command(api, action),
        Command::Purge {
            admin,
            token,
            space,
            paths,
            tag,
            soft,
            ca,
        } => {
            let request = edge::purge::PurgeRequest {
                files: paths,
                tags: tag,
                soft,
            };
            let outcome = runtime()?.block_on(edge::purge::client::purge(
                &admin,
                &token,
                &space,
                &request,
                ca.as_deref(),
            ))?;
            println!("{}", outcome.reply);
            Ok(if outcome.all_done {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
    }
}
