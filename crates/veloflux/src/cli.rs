//! The command line of DESIGN.md section 5.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use veloflux_api::error_chain as chain;
use veloflux_domain::{Email, Password};
use veloflux_store::Store;

use crate::config::{Config, Sources, ensure_data_dir};
use crate::{EXIT_FAILURE, EXIT_USAGE};

/// VeloFlux: one binary that runs a multi-tenant web platform.
#[derive(Debug, Parser)]
#[command(name = "veloflux", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the configuration comes from; every command accepts these.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, env = "VELOFLUX_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (SQLite file, objects, outbox, keys); overrides every other source.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl ConfigArgs {
    fn sources(&self) -> Sources {
        Sources {
            file: self.config.clone(),
            data_dir: self.data_dir.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane, admin and metrics listeners.
    Serve(ConfigArgs),
    /// Apply database migrations and exit.
    Migrate(ConfigArgs),
    /// Manage platform administrators.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create a platform administrator who owns the default tenant.
    Create {
        /// E-mail address of the administrator.
        #[arg(long)]
        email: String,
        /// Password (at least 8 characters, not a common one).
        #[arg(long)]
        password: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate the configuration, print it with secrets masked, and exit.
    Check(ConfigArgs),
}

/// Why a command failed, and the exit code that says so.
#[derive(Debug)]
pub struct Failure {
    /// Exit code: 1 runtime failure, 2 bad usage or invalid input.
    pub code: u8,
    /// One line for stderr.
    pub message: String,
}

impl Failure {
    pub(crate) fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    pub(crate) fn runtime(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_FAILURE,
            message: message.into(),
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Config(ConfigCommand::Check(args)) => {
            let config = Config::load(&args.sources()).map_err(|e| Failure::usage(e.to_string()))?;
            let shown = serde_json::to_string_pretty(&config.masked()).unwrap_or_default();
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "configuration is valid\n{shown}");
            Ok(())
        }
        Command::Serve(args) => {
            let config = Config::load(&args.sources()).map_err(|e| Failure::usage(e.to_string()))?;
            runtime()?.block_on(crate::serve::serve(config))
        }
        Command::Migrate(args) => {
            let config = Config::load(&args.sources()).map_err(|e| Failure::usage(e.to_string()))?;
            crate::logging::init(&config);
            runtime()?.block_on(async {
                let store = open_store(&config).await?;
                let applied = store
                    .migrate()
                    .await
                    .map_err(|e| Failure::runtime(format!("migration failed: {}", chain(&e))))?;
                store
                    .ensure_default_tenant()
                    .await
                    .map_err(|e| Failure::runtime(chain(&e)))?;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(
                    out,
                    "applied {applied} migration(s) to the {} database",
                    store.engine().as_str()
                );
                Ok(())
            })
        }
        Command::Admin(AdminCommand::Create {
            email,
            password,
            config,
        }) => {
            let email = Email::parse(&email).map_err(|e| Failure::usage(format!("--email: {}", e.message)))?;
            let password =
                Password::parse(&password).map_err(|e| Failure::usage(format!("--password: {}", e.message)))?;
            let config = Config::load(&config.sources()).map_err(|e| Failure::usage(e.to_string()))?;
            crate::logging::init(&config);
            runtime()?.block_on(async {
                let store = open_store(&config).await?;
                store
                    .migrate()
                    .await
                    .map_err(|e| Failure::runtime(format!("migration failed: {}", chain(&e))))?;
                let user = veloflux_identity::create_platform_admin(&store, email, password)
                    .await
                    .map_err(|err| match err {
                        veloflux_identity::AccountError::EmailTaken(_) => Failure::usage(err.to_string()),
                        other => Failure::runtime(chain(&other)),
                    })?;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "created platform admin {} ({})", user.email, user.id);
                Ok(())
            })
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("veloflux")
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the async runtime: {e}")))
}

/// Creates the data directory and connects to the database.
pub(crate) async fn open_store(config: &Config) -> Result<Store, Failure> {
    ensure_data_dir(&config.data_dir).map_err(|e| {
        Failure::runtime(format!(
            "cannot create data directory {}: {e}",
            config.data_dir.display()
        ))
    })?;
    Store::connect(&config.database_url).await.map_err(|e| {
        Failure::runtime(format!(
            "cannot open database {}: {}",
            crate::config::mask_url(&config.database_url),
            chain(&e)
        ))
    })
}
