//! `pipedrive-sync`: the command line. It turns what was typed into resolved config, then hands
//! over to the engine, the destinations and the simulator.

mod allocator;
mod commands;
mod fail;
mod progress;
mod signals;
mod targets;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pipedrive_config::{Config, ConfigError};
use pipedrive_sim::Scale;

use crate::commands::plan::estimate_all;
use crate::commands::sim::SimArgs;
use crate::commands::sim::sim;
use crate::commands::sync::{interval, schedule, select_streams, sync};
use crate::commands::{check::check, demo::demo, discover::discover, state::state};
use crate::fail::{Fail, exit};
use crate::signals::stop_on_signal;

#[derive(Parser)]
#[command(
    name = "pipedrive-sync",
    version,
    about = "Replicate a Pipedrive company's CRM data into a database"
)]
struct Cli {
    /// More log detail: -v for debug, -vv for trace.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args)]
struct ConfigArg {
    /// The YAML config file.
    #[arg(
        short,
        long,
        env = "PIPEDRIVE_SYNC_CONFIG",
        default_value = "pipedrive-sync.yaml"
    )]
    config: PathBuf,
    /// Only this company of the config's `sources` (by its `name`).
    #[arg(long)]
    company: Option<String>,
}

impl ConfigArg {
    /// The config's companies, or the one `--company` names.
    fn companies(&self) -> Result<Vec<Config>, ConfigError> {
        let companies = Config::load_all(&self.config)?;
        match &self.company {
            Some(name) => Ok(vec![Config::pick(companies, Some(name))?]),
            None => Ok(companies),
        }
    }

    /// The one company a command works on: the only one, or the one `--company` names.
    fn company(&self) -> Result<Config, ConfigError> {
        Config::pick(Config::load_all(&self.config)?, self.company.as_deref())
    }
}

#[derive(Subcommand)]
enum Command {
    /// Check the credentials and company domain, and show the rate limits that apply.
    Check(ConfigArg),
    /// List the streams with their sync modes, primary keys and cursors.
    Discover {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Copy the selected streams into the target.
    Sync {
        #[command(flatten)]
        selection: Selection,
        /// Run again at this interval (e.g. `30m`, `1h`) until SIGINT/SIGTERM. A run never
        /// overlaps the previous one: ticks missed while a run lasts are skipped.
        #[arg(long)]
        every: Option<String>,
        /// Start each company after a random delay of up to this long (e.g. `2m`), so many
        /// companies do not all start at once. Default with --every: a tenth of it, at most 5m.
        #[arg(long)]
        jitter: Option<String>,
        /// Load although the target holds another Pipedrive company's data (by default
        /// refused, as the two companies' rows would mix).
        #[arg(long)]
        allow_other_company: bool,
        /// Estimate the run's cost, as `plan` does, and load nothing.
        #[arg(long)]
        dry_run: bool,
        /// Keep the target seconds behind Pipedrive with webhooks until SIGINT/SIGTERM: sync,
        /// then apply each change Pipedrive delivers, with a safety-net sync every `--every`
        /// (default 1h). Needs --listen and --public-url; one company, DuckDB or PostgreSQL.
        #[arg(long, requires_all = ["listen", "public_url"], conflicts_with = "dry_run")]
        follow: bool,
        /// Where the webhook receiver listens, e.g. `0.0.0.0:8787` (with --follow).
        #[arg(long, requires = "follow")]
        listen: Option<String>,
        /// The address Pipedrive delivers webhooks to: a reverse proxy or tunnel in front of
        /// --listen, e.g. `https://sync.example.com/pipedrive` (with --follow).
        #[arg(long, requires = "follow")]
        public_url: Option<String>,
    },
    /// Estimate what the next sync costs (requests, tokens, days at the daily budget) from a
    /// few probe pages, before paying for it.
    Plan(Selection),
    /// Show or reset the sync state kept in the target.
    State {
        #[command(subcommand)]
        action: StateAction,
    },
    /// Create the analytics views (enriched deals, stage funnel, time in stage, activities per week).
    Models {
        #[command(subcommand)]
        action: commands::models::ModelsAction,
    },
    /// Write an HTML report of the runs recorded in the target (requests over time, records per stream).
    Report(commands::report::ReportArgs),
    /// Run the Pipedrive API simulator until interrupted.
    Sim(SimArgs),
    /// Start a simulator and sync it into a local DuckDB file: a first look in one command.
    Demo {
        /// The DuckDB file to create.
        #[arg(long, default_value = "pipedrive.duckdb")]
        path: PathBuf,
        #[arg(long, default_value = "small")]
        scale: Scale,
    },
    /// Run as a Singer tap (e.g. under Meltano): Singer messages on stdout.
    Singer(commands::protocols::SingerArgs),
    /// Run as an Airbyte source connector: Airbyte messages on stdout.
    Airbyte {
        #[command(subcommand)]
        command: commands::protocols::AirbyteCommand,
    },
}

/// The companies and streams `sync` and `plan` work on.
#[derive(Args)]
struct Selection {
    #[command(flatten)]
    config: ConfigArg,
    /// Only these streams (comma-separated).
    #[arg(long)]
    streams: Option<String>,
    /// Reload these streams in full (comma-separated); the old table stays until the new one is complete.
    #[arg(long)]
    full_refresh: Option<String>,
}

impl Selection {
    /// The config's companies (or the one `--company` names) with `--streams` and
    /// `--full-refresh` applied.
    fn companies(&self) -> Result<Vec<Config>, ConfigError> {
        let mut companies = self.config.companies()?;
        for config in &mut companies {
            select_streams(
                config,
                self.streams.as_deref(),
                self.full_refresh.as_deref(),
            )?;
        }
        Ok(companies)
    }
}

#[derive(Subcommand)]
enum StateAction {
    /// Print every stream's state as JSON.
    Show(ConfigArg),
    /// Forget a stream's state so its next sync starts over.
    Reset {
        stream: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// Names under which the binary runs one protocol's command directly, for tools that take a
/// single executable: Meltano's `executable` (a Singer tap) and PyAirbyte's `local_executable`
/// (an Airbyte source). A link by that name to `pipedrive-sync` is all they need.
const PROTOCOL_NAMES: &[(&str, &str)] = &[
    ("tap-pipedrive-sync", "singer"),
    ("source-pipedrive-sync", "airbyte"),
];

/// The command line, with the protocol's subcommand put first when the binary was invoked
/// under one of [`PROTOCOL_NAMES`].
fn arguments() -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked = args
        .first()
        .and_then(|first| std::path::Path::new(first).file_stem())
        .and_then(|stem| stem.to_str())
        .map(str::to_owned);
    if let Some((_, command)) = PROTOCOL_NAMES
        .iter()
        .find(|(name, _)| invoked.as_deref() == Some(*name))
    {
        args.insert(1, (*command).into());
    }
    args
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(arguments());
    init_logging(cli.verbose, cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(fail) => {
            eprintln!("error: {}", fail.message);
            ExitCode::from(fail.code)
        }
    }
}

fn init_logging(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "warn,pipedrive_sync=info,pipedrive_engine=info,pipedrive_client=info",
        1 => {
            "info,pipedrive_sync=debug,pipedrive_engine=debug,pipedrive_client=debug,pipedrive_destinations=debug"
        }
        _ => "debug,pipedrive_sync=trace,pipedrive_engine=trace,pipedrive_client=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PIPEDRIVE_SYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn dispatch(command: Command) -> Result<(), Fail> {
    match command {
        Command::Check(args) => {
            for config in args.companies()? {
                check(&config).await?;
            }
            Ok(())
        }
        Command::Discover { json } => {
            discover(json);
            Ok(())
        }
        Command::Sync {
            selection,
            every,
            jitter,
            allow_other_company,
            dry_run,
            follow,
            listen,
            public_url,
        } => {
            let mut companies = selection.companies()?;
            for config in &mut companies {
                config.allow_other_company = allow_other_company;
            }
            if dry_run {
                return estimate_all(&companies).await;
            }
            let every = every.map(|text| interval(&text, "--every")).transpose()?;
            if follow {
                let args = commands::follow::FollowArgs {
                    listen,
                    public_url,
                    every,
                };
                return commands::follow::follow(companies, args).await;
            }
            let jitter = match (jitter, every) {
                (Some(text), _) => interval(&text, "--jitter")?,
                (None, Some(every)) => (every / 10).min(Duration::from_secs(300)),
                (None, None) => Duration::ZERO,
            };
            match every {
                None => sync(companies, jitter, &stop_on_signal("saving state")).await,
                Some(every) => schedule(companies, every, jitter).await,
            }
        }
        Command::Plan(selection) => estimate_all(&selection.companies()?).await,
        Command::State { action } => state(action).await,
        Command::Models { action } => commands::models::run(action).await,
        Command::Report(args) => commands::report::run(args).await,
        Command::Sim(args) => sim(args).await,
        Command::Demo { path, scale } => demo(&path, scale).await,
        Command::Singer(args) => commands::protocols::singer(args).await,
        Command::Airbyte { command } => commands::protocols::airbyte(command).await,
    }
}
