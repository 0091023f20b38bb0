//! The `edge` command: CLI parsing, config loading and logging; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use edge::config::Config;

mod admin_cli;
use admin_cli::{AdminApi, CertAction, SpaceAction};
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
    /// Manage uploaded certificates through a PoP's admin API (exit 0: done, 1: error).
    Cert {
        #[command(flatten)]
        api: AdminApi,
        #[command(subcommand)]
        action: CertAction,
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

/// Lifts the soft limit of open files to the hard one, as Go's runtime and nginx's
/// `worker_rlimit_nofile` do: connections and the disk tier's open entry files (half the
/// limit, `cache::disk`) share it, and the usual soft limit of 1,024 is far too low for both.
fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let (Some(current), Some(maximum)) = (limit.current, limit.maximum) else {
        return;
    };
    if current >= maximum {
        return;
    }
    let raised = Rlimit {
        current: Some(maximum),
        maximum: Some(maximum),
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::debug!(from = current, to = maximum, "raised the open files limit"),
        Err(e) => tracing::warn!(limit = current, error = %e, "cannot raise the open files limit"),
    }
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
            raise_open_files_limit();
            runtime()?.block_on(edge::run(config, path))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Origin { config } => {
            let config = load(&config)?;
            edge::logging::init(&config.log).context("cannot set up logging")?;
            runtime()?.block_on(edge::run_origin_only(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Space { api, action } => admin_cli::space_command(api, action),
        Command::Cert { api, action } => admin_cli::cert_command(api, action),
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
