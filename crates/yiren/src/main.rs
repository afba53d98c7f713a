//! `yiren`: one binary for a one-person online business.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use yiren::config::{Config, Overrides};
use yiren::{backup, open_db, App, Deps};

#[derive(Parser)]
#[command(
    name = "yiren",
    version,
    about = "Yiren (一人): everything a one-person online business needs, on your own server"
)]
struct Cli {
    /// Configuration file (default: ./yiren.toml when it exists).
    #[arg(long, global = true, env = "YIREN_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (database, files, indexes, themes). Default ./yiren-data.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite:///path/yiren.db or postgres://USER:PASSWORD@HOST:5432/DB. Default: SQLite in the data directory.
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (applies migrations first).
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        addr: Option<String>,
        /// Address of the Prometheus metrics listener (default: none).
        #[arg(long)]
        metrics_addr: Option<String>,
    },
    /// Apply database migrations without serving.
    Migrate,
    /// Write a consistent backup of the database and files (works while the server runs).
    Backup {
        /// Archive to write (.tar.gz).
        file: PathBuf,
    },
    /// Restore a backup into an empty data directory or empty database (any engine).
    Restore {
        /// Archive to read.
        file: PathBuf,
    },
    /// Build the product search index again from the database (while the server runs, the
    /// server does it).
    Reindex,
    /// Single sign-on (OpenID Connect provider) helpers.
    Oidc {
        #[command(subcommand)]
        action: OidcAction,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand)]
enum OidcAction {
    /// Make a new ID-token signing key the active one; earlier keys stay published in the JWKS so
    /// tokens they signed still verify.
    RotateKey,
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print an annotated yiren.toml with every option and its default.
    Example,
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{},sqlx=warn", config.log.level)));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if config.log.format == "json" {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Config {
        action: ConfigAction::Example,
    } = cli.command
    {
        print!("{}", yiren::config::EXAMPLE);
        return ExitCode::SUCCESS;
    }
    let (addr, metrics_addr) = match &cli.command {
        Command::Serve { addr, metrics_addr } => (addr.clone(), metrics_addr.clone()),
        _ => (None, None),
    };
    let overrides = Overrides {
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
        addr,
        metrics_addr,
    };
    let config = match Config::load(cli.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("yiren: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("yiren: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("yiren: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve { .. } => {
            let shutdown = CancellationToken::new();
            yiren::cancel_on_signals(shutdown.clone())?;
            let app = App::build(&config, Deps::default()).await?;
            let locale = app.state.settings().await.default_locale;
            tracing::info!(addr = %app.local_addr(), engine = app.state.ctx.db.engine().name(), "Yiren is listening on http://{}", app.local_addr());
            if let Some(m) = app.metrics_addr() {
                tracing::info!("metrics on http://{m}/metrics");
            }
            if let Some(url) = &app.setup_url {
                // Printed on stdout so it can be found even when logs go elsewhere.
                println!("{}", yiren::setup_message(url, locale));
                if locale != yiren_core::Locale::En {
                    println!("{}", yiren::setup_message(url, yiren_core::Locale::En));
                }
            }
            app.run(shutdown).await
        }
        Command::Migrate => {
            let db = open_db(&config).await?;
            db.migrate().await?;
            println!("migrations applied to {}", db.shown_url());
            Ok(())
        }
        Command::Backup { file } => {
            let db = open_db(&config).await?;
            let m = backup::backup(&config, &db, &file).await?;
            let rows: u64 = m.tables.values().sum();
            println!(
                "backup written to {} ({} rows, {} files, from {})",
                file.display(),
                rows,
                m.files,
                m.source_engine
            );
            Ok(())
        }
        Command::Restore { file } => {
            let db = open_db(&config).await?;
            let m = backup::restore(&config, &db, &file).await?;
            let rows: u64 = m.tables.values().sum();
            println!(
                "restored {} rows and {} files from {} into {}",
                rows,
                m.files,
                file.display(),
                db.shown_url()
            );
            Ok(())
        }
        Command::Reindex => {
            let ctx = yiren::context(&config, Deps::default()).await?;
            let (index, _) = yiren::open_search(&config)?;
            match yiren_search::rebuild(&ctx, &index).await {
                Ok(n) => println!("search index rebuilt: {n} products searchable"),
                Err(yiren_search::SearchError::Locked) => {
                    // The running server is writing to it right now: let the server do it.
                    let mut tx = ctx.db.begin().await?;
                    yiren_core::job::enqueue(
                        &ctx,
                        &mut tx,
                        yiren_search::REINDEX_KIND,
                        &serde_json::json!({}),
                        Default::default(),
                    )
                    .await?;
                    tx.commit().await?;
                    println!(
                        "the running server is writing the index: it will rebuild it (job {})",
                        yiren_search::REINDEX_KIND
                    );
                }
                Err(e) => return Err(e.into()),
            }
            Ok(())
        }
        Command::Oidc {
            action: OidcAction::RotateKey,
        } => {
            let ctx = yiren::context(&config, Deps::default()).await?;
            let kid = yiren_core::oidc::rotate_key(&ctx).await?;
            println!(
                "new signing key {kid} is active; earlier keys stay published for verification"
            );
            Ok(())
        }
        Command::Config { .. } => Ok(()),
    }
}
