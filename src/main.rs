//! `pipedrive-sync`: the command line. It turns what was typed into resolved config, then hands
//! over to the engine, the destinations and the simulator.

mod allocator;
mod bench;
mod models;
mod plan;
mod progress;
mod protocols;
mod report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pipedrive_client::{Client, ClientError, ErrorClass, PagePosition, Paging, Request};
use pipedrive_config::{Config, ConfigError, FileFormat, Target, parse_every, parse_stream_list};
use pipedrive_engine::{Destination, DestinationError, RunError, StopSignal, SyncMode, catalog};
use pipedrive_sim::{Plan, Scale, SimOptions};

/// Documented exit codes (README → Exit codes).
mod exit {
    pub const OK: u8 = 0;
    pub const OTHER: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const AUTH: u8 = 3;
    pub const DESTINATION: u8 = 4;
    pub const TEMPORARY: u8 = 75;
    /// A second interrupt: stopped at once, without waiting for the pages in flight.
    pub const INTERRUPTED: u8 = 130;
}

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
        action: models::ModelsAction,
    },
    /// Write an HTML report of the runs recorded in the target (requests over time, records per stream).
    Report(report::ReportArgs),
    /// Run the Pipedrive API simulator until interrupted.
    Sim(SimArgs),
    /// Measure sync speed, request rate and token use against the simulator.
    Bench(BenchArgs),
    /// Start a simulator and sync it into a local DuckDB file: a first look in one command.
    Demo {
        /// The DuckDB file to create.
        #[arg(long, default_value = "pipedrive.duckdb")]
        path: PathBuf,
        #[arg(long, default_value = "small")]
        scale: Scale,
    },
    /// Run as a Singer tap (e.g. under Meltano): Singer messages on stdout.
    Singer(protocols::SingerArgs),
    /// Run as an Airbyte source connector: Airbyte messages on stdout.
    Airbyte {
        #[command(subcommand)]
        command: protocols::AirbyteCommand,
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

#[derive(Args)]
struct BenchArgs {
    /// Scale of the throttled run (plan and latency below).
    #[arg(long, default_value = "medium")]
    throttled_scale: Scale,
    #[arg(long, default_value = "premium")]
    throttled_plan: Plan,
    #[arg(long, default_value_t = 30)]
    latency_ms: u64,
    #[arg(long, default_value_t = 10)]
    jitter_ms: u64,
    /// Scales of the unthrottled runs (plan unlimited, no latency), comma-separated.
    #[arg(long, default_value = "small,medium,large", value_delimiter = ',')]
    unthrottled_scales: Vec<Scale>,
    /// Streams read at once (by default as many as a sync's config reads).
    #[arg(long, default_value_t = pipedrive_config::DEFAULT_CONCURRENCY)]
    concurrency: usize,
    /// Also load the unthrottled scales into Parquet files.
    #[arg(long)]
    parquet: bool,
    /// Also load the unthrottled scales into this PostgreSQL database (a scratch schema).
    #[arg(long)]
    postgres_url: Option<String>,
    /// Streams to sync (comma-separated); default: all but the one-request-per-parent ones.
    #[arg(long)]
    streams: Option<String>,
    /// Scenarios to run, comma-separated.
    #[arg(
        long,
        value_enum,
        default_value = "throttled,unthrottled,incremental,fanout",
        value_delimiter = ','
    )]
    scenarios: Vec<bench::Kind>,
    /// Scale of the incremental scenario (plan unlimited).
    #[arg(long, default_value = "small")]
    incremental_scale: Scale,
    /// Scale of the fan-out scenario (plan unlimited; one request per deal on a full sync).
    #[arg(long, default_value = "small")]
    fanout_scale: Scale,
    /// Share of records the incremental and fan-out scenarios change, in percent.
    #[arg(long, default_value_t = 1.0)]
    change_percent: f64,
    /// Simulated seconds those changes are spread over (0: all at once).
    #[arg(long, default_value_t = 3600)]
    change_spread_seconds: u64,
    /// Also write the measurements as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct SimArgs {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value = "tiny")]
    scale: Scale,
    #[arg(long, default_value = "premium")]
    plan: Plan,
    /// Users in the company (the daily budget grows with seats).
    #[arg(long)]
    seats: Option<u32>,
    /// The API token the simulator accepts (default: derived from the seed).
    #[arg(long)]
    token: Option<String>,
    /// Added to every response, to model the network.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Changes per second the company makes while it is read (creates, updates, deletes,
    /// archives, stage moves, merges, custom fields), seeded by `--seed`; 0 = it holds still.
    #[arg(long, default_value_t = 0.0, value_name = "PER_SECOND")]
    churn: f64,
}

/// A failure with the exit code it maps to. Its message names the cause and the fix.
struct Fail {
    code: u8,
    message: String,
}

impl From<ConfigError> for Fail {
    fn from(error: ConfigError) -> Fail {
        Fail {
            code: exit::USAGE,
            message: error.to_string(),
        }
    }
}

impl From<DestinationError> for Fail {
    fn from(error: DestinationError) -> Fail {
        Fail {
            code: exit::DESTINATION,
            message: error.to_string(),
        }
    }
}

impl From<RunError> for Fail {
    fn from(error: RunError) -> Fail {
        match error {
            RunError::Destination(error) => error.into(),
            RunError::Client(error) => error.into(),
            RunError::NotPipedrive(message) => Fail {
                code: exit::OTHER,
                message,
            },
            RunError::OtherCompany(message) | RunError::Config(message) => Fail {
                code: exit::USAGE,
                message,
            },
        }
    }
}

impl From<ClientError> for Fail {
    fn from(error: ClientError) -> Fail {
        let code = match error.exit_class() {
            ErrorClass::Auth => exit::AUTH,
            ErrorClass::Temporary => exit::TEMPORARY,
            ErrorClass::Permanent | ErrorClass::NotAvailable => exit::OTHER,
        };
        let mut message = error.to_string();
        if let Some(resets_at) = error.budget_resets_at() {
            message.push_str(&format!("; the budget resets at {resets_at}, when the next run resumes where this one stopped"));
        }
        Fail { code, message }
    }
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
        } => {
            let mut companies = selection.companies()?;
            for config in &mut companies {
                config.allow_other_company = allow_other_company;
            }
            if dry_run {
                return estimate_all(&companies).await;
            }
            let every = every.map(|text| interval(&text, "--every")).transpose()?;
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
        Command::Models { action } => models::run(action).await,
        Command::Report(args) => report::run(args).await,
        Command::Sim(args) => sim(args).await,
        Command::Bench(args) => bench(args).await,
        Command::Demo { path, scale } => demo(&path, scale).await,
        Command::Singer(args) => protocols::singer(args).await,
        Command::Airbyte { command } => protocols::airbyte(command).await,
    }
}

/// Prints each company's estimate, under its name when there are several.
async fn estimate_all(companies: &[Config]) -> Result<(), Fail> {
    for config in companies {
        if companies.len() > 1 {
            eprintln!("company {}:", config.company);
        }
        plan::run(config).await?;
    }
    Ok(())
}

/// Applies `--streams` and `--full-refresh` to the configured selection.
fn select_streams(
    config: &mut Config,
    only: Option<&str>,
    full_refresh: Option<&str>,
) -> Result<(), ConfigError> {
    if let Some(only) = only {
        let wanted = parse_stream_list(only, "--streams")?;
        if let Some(missing) = wanted
            .iter()
            .find(|name| !config.streams.iter().any(|s| s.def.name == **name))
        {
            return Err(ConfigError(format!(
                "--streams: `{missing}` is not selected in the config's `streams`; add it there first"
            )));
        }
        config.streams.retain(|s| wanted.contains(&s.def.name));
    }
    if let Some(list) = full_refresh {
        let names = parse_stream_list(list, "--full-refresh")?;
        // Ignoring it would leave the table the user meant to rebuild as it was.
        if let Some(missing) = names
            .iter()
            .find(|name| !config.streams.iter().any(|s| s.def.name == **name))
        {
            return Err(ConfigError(format!(
                "--full-refresh: `{missing}` is not among the streams this sync reads; add it to the config's `streams` (or to --streams) first"
            )));
        }
        for stream in &mut config.streams {
            if names.contains(&stream.def.name) {
                stream.mode = SyncMode::FullRefresh;
            }
        }
    }
    Ok(())
}

async fn open_destination(config: &Config) -> Result<Box<dyn Destination>, Fail> {
    open_shared(config, &mut DuckDbFiles::default()).await
}

/// DuckDB files open in this run: companies that share a file share its database.
#[derive(Default)]
struct DuckDbFiles {
    #[cfg(feature = "duckdb")]
    open: Vec<(PathBuf, pipedrive_destinations::duckdb::DuckDb)>,
}

/// Opens a company's destination; a DuckDB file already open in `files` is shared.
#[cfg_attr(not(feature = "duckdb"), allow(unused_variables))]
async fn open_shared(
    config: &Config,
    files: &mut DuckDbFiles,
) -> Result<Box<dyn Destination>, Fail> {
    match &config.target {
        #[cfg(feature = "duckdb")]
        Target::DuckDb { path } => {
            use pipedrive_destinations::duckdb::DuckDb;
            if let Some((_, database)) = files.open.iter().find(|(open, _)| open == path) {
                return Ok(Box::new(database.share(&config.state_schema)?));
            }
            let database = DuckDb::open(path, &config.state_schema)?;
            let handle = database.share(&config.state_schema)?;
            files.open.push((path.clone(), database));
            Ok(Box::new(handle))
        }
        #[cfg(not(feature = "duckdb"))]
        Target::DuckDb { .. } => Err(Fail {
            code: exit::USAGE,
            message: "this build has no DuckDB support: rebuild with the default features"
                .to_owned(),
        }),
        Target::Postgres { url } => Ok(Box::new(
            pipedrive_destinations::postgres::connect(url, &config.state_schema).await?,
        )),
        Target::Files { format, dir } => {
            let format = match format {
                FileFormat::Parquet => pipedrive_destinations::files::Format::Parquet,
                FileFormat::Jsonl => pipedrive_destinations::files::Format::Jsonl,
            };
            Ok(Box::new(pipedrive_destinations::files::Files::open(
                dir, format,
            )?))
        }
    }
}

async fn check(config: &Config) -> Result<(), Fail> {
    let client = Client::new(config.client.clone())?;
    let me = client
        .get(&Request {
            path: "/api/v1/users/me".to_owned(),
            query: Vec::new(),
            paging: Paging::None,
            token_cost: 2,
            items_path: None,
            start: PagePosition::First,
        })
        .await?;
    let user: serde_json::Value = me
        .items
        .first()
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .unwrap_or_default();
    let text = |key: &str| {
        user.get(key)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    let budget = client.budget();
    eprintln!("credentials ok: {} ({})", text("name"), text("email"));
    eprintln!(
        "company: {} ({}.pipedrive.com)",
        text("company_name"),
        text("company_domain")
    );
    match budget.burst_limit {
        Some(limit) => eprintln!("burst limit: {limit} requests per 2 seconds"),
        None => eprintln!("burst limit: not reported"),
    }
    match (budget.daily_limit, budget.daily_remaining) {
        (Some(limit), Some(left)) => eprintln!("daily token budget: {left} of {limit} left"),
        _ => eprintln!("daily token budget: not reported"),
    }
    Ok(())
}

fn discover(json: bool) {
    if json {
        let streams: Vec<serde_json::Value> = catalog::CATALOG
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name,
                    "endpoint": s.path,
                    "api": s.api,
                    "primary_key": s.primary_key,
                    "cursor_field": s.cursor_field,
                    "sync_modes": if s.supports_incremental() { vec!["full-refresh", "incremental"] } else { vec!["full-refresh"] },
                    "token_cost_per_page": s.token_cost,
                    "custom_fields_from": s.custom_fields.map(|c| c.defined_by),
                    "selected_by_default": !s.opt_in,
                    "cost": selection_cost(s),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&streams).expect("plain JSON")
        );
        return;
    }
    println!(
        "{:<22} {:<26} {:<12} {:<12} {:<26} selection",
        "stream", "endpoint", "primary key", "cursor", "modes"
    );
    for s in catalog::CATALOG {
        println!(
            "{:<22} {:<26} {:<12} {:<12} {:<26} {}",
            s.name,
            s.path,
            s.primary_key.join(","),
            s.cursor_field.unwrap_or("-"),
            if s.supports_incremental() {
                "full-refresh, incremental"
            } else {
                "full-refresh"
            },
            if s.opt_in {
                format!("opt-in: {}", selection_cost(s))
            } else {
                "default".to_owned()
            }
        );
    }
}

/// What a stream costs in tokens, in the unit that grows with the company.
fn selection_cost(def: &catalog::StreamDef) -> String {
    match def.fanout {
        catalog::Fanout::PerParent { parent } => format!(
            "{} tokens per {} record",
            def.token_cost,
            parent.trim_end_matches('s')
        ),
        _ => format!("{} tokens per page", def.token_cost),
    }
}

/// An interval flag such as `30m`; `never` is not one.
fn interval(text: &str, flag: &str) -> Result<Duration, ConfigError> {
    match parse_every(text, flag)? {
        Some(every) if !every.is_zero() || flag == "--jitter" => Ok(every),
        _ => Err(ConfigError(format!(
            "{flag} `{text}`: write a positive interval such as `30m` or `1h`"
        ))),
    }
}

/// One run of every company, all at once, each after its random share of `jitter`. A company
/// that fails does not stop the others; the result is the most serious failure.
async fn sync(companies: Vec<Config>, jitter: Duration, stop: &StopSignal) -> Result<(), Fail> {
    let several = companies.len() > 1;
    let mut files = DuckDbFiles::default();
    let mut runs = Vec::new();
    // Tokens of one company share its daily budget; each token has its own burst window.
    let mut clients: Vec<Client> = Vec::new();
    for config in companies {
        let same_company = clients
            .iter()
            .find(|c| c.base_url() == &config.client.base_url);
        let client = match same_company {
            Some(other) => other.for_same_company(config.client.clone()),
            None => Client::new(config.client.clone()),
        };
        let prepared = match client {
            Ok(client) => {
                clients.push(client.clone());
                open_shared(&config, &mut files)
                    .await
                    .map(|destination| (client, destination))
            }
            Err(error) => Err(Fail::from(error)),
        };
        let delay = jitter.mul_f64(rand::random::<f64>());
        runs.push(sync_company(config, prepared, delay, stop.clone(), several));
    }
    let results = futures::future::join_all(runs).await;
    drop(files);
    let failed: Vec<(String, Fail)> = results
        .into_iter()
        .filter_map(|(company, result)| result.err().map(|fail| (company, fail)))
        .collect();
    let Some(code) = failed
        .iter()
        .map(|(_, fail)| fail.code)
        .min_by_key(|code| severity(*code))
    else {
        return Ok(());
    };
    let message = if several {
        failed
            .iter()
            .map(|(company, fail)| format!("company {company}: {}", fail.message))
            .collect::<Vec<_>>()
            .join("\nerror: ")
    } else {
        failed.into_iter().map(|(_, fail)| fail.message).collect()
    };
    Err(Fail { code, message })
}

/// Exit codes by how much they matter when several companies fail: credentials first, then
/// the destination, then anything else, then what a later run fixes by itself.
fn severity(code: u8) -> u8 {
    match code {
        exit::AUTH => 0,
        exit::DESTINATION => 1,
        exit::USAGE => 2,
        exit::OTHER => 3,
        _ => 4,
    }
}

/// One company's run; with several companies its summary is headed by its name.
async fn sync_company(
    config: Config,
    prepared: Result<(Client, Box<dyn Destination>), Fail>,
    delay: Duration,
    stop: StopSignal,
    several: bool,
) -> (String, Result<(), Fail>) {
    let company = config.company.clone();
    let result = async {
        let (client, mut destination) = prepared?;
        if !sleep_unless_stopped(delay, &stop).await {
            return Ok(());
        }
        let label = several.then(|| company.clone());
        let plan = config.plan();
        // What the bars expect: nothing when the target keeps no runs.
        let runs = destination.read_runs().await.unwrap_or_default();
        let expected = pipedrive_engine::estimate::last_full_reads(&plan, &runs)
            .into_iter()
            .filter(|(_, last)| last.records > 0)
            .map(|(stream, last)| (stream.to_owned(), last.records))
            .collect();
        let observer = Arc::new(progress::Progress::new(client.clone(), label, expected));
        // The company's own signal: giving up on its credentials stops it, not the others.
        let report =
            pipedrive_engine::run(&client, destination, plan, observer, stop.child()).await?;
        if several {
            eprintln!("company {company}:");
        }
        eprint!("{}", progress::summary(&report, &client));
        protocols::outcome(&report)
    }
    .await;
    (company, result)
}

/// Sleeps `duration`; false if a stop was asked for meanwhile.
async fn sleep_unless_stopped(duration: Duration, stop: &StopSignal) -> bool {
    let until = tokio::time::Instant::now() + duration;
    while !stop.is_stopped() {
        let now = tokio::time::Instant::now();
        if now >= until {
            return true;
        }
        tokio::time::sleep((until - now).min(Duration::from_millis(100))).await;
    }
    false
}

/// `sync --every`: a run of every company per tick until SIGINT/SIGTERM. A stop finishes the
/// pages in flight and saves state, then ends the schedule (exit 0). A run that fails is
/// reported and the schedule goes on: the next tick may find the cause gone.
async fn schedule(companies: Vec<Config>, every: Duration, jitter: Duration) -> Result<(), Fail> {
    let stop = stop_on_signal("saving state; the schedule then ends");
    let start = tokio::time::Instant::now();
    for run in 1_u64.. {
        tracing::info!(run, "scheduled run started");
        match sync(companies.clone(), jitter, &stop).await {
            Ok(()) => tracing::info!(run, "scheduled run finished"),
            Err(fail) => tracing::error!(
                run,
                exit_code = fail.code,
                "scheduled run failed: {}",
                fail.message
            ),
        }
        // The next tick still ahead: ticks missed by a long run are skipped, never queued.
        let ticks = start.elapsed().as_nanos() / every.as_nanos().max(1) + 1;
        let next = start + every.mul_f64(ticks as f64);
        if stop.is_stopped()
            || !sleep_unless_stopped(
                next.saturating_duration_since(tokio::time::Instant::now()),
                &stop,
            )
            .await
        {
            break;
        }
    }
    Ok(())
}
async fn state(action: StateAction) -> Result<(), Fail> {
    match action {
        StateAction::Show(args) => {
            let config = args.company()?;
            let mut destination = open_destination(&config).await?;
            let state = destination.read_state().await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&state).expect("state is JSON")
            );
        }
        StateAction::Reset { stream, config } => {
            let config = config.company()?;
            let name = parse_stream_list(&stream, "state reset")?;
            let mut destination = open_destination(&config).await?;
            for stream in name {
                destination.reset_state(stream).await?;
                eprintln!("state of {stream} reset: its next sync starts from the beginning");
            }
        }
    }
    Ok(())
}

/// A stop signal raised by SIGINT/SIGTERM: the run finishes the pages in flight, then `then`.
/// A second signal ends the process at once: state is safe without the pages in flight, as
/// only committed pages count.
fn stop_on_signal(then: &'static str) -> StopSignal {
    let stop = StopSignal::default();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::warn!(
            "stopping: finishing the pages in flight and {then} (interrupt again to stop at once)"
        );
        on_signal.stop();
        shutdown_signal().await;
        eprintln!(
            "error: stopped at once on a second interrupt; the next run resumes from the last committed page"
        );
        std::process::exit(i32::from(exit::INTERRUPTED));
    });
    stop
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn sim(args: SimArgs) -> Result<(), Fail> {
    let options = SimOptions {
        seed: args.seed,
        scale: args.scale,
        plan: args.plan,
        seats: args.seats,
        api_token: args.token,
        latency_ms: args.latency_ms,
        jitter_ms: args.jitter_ms,
        churn_per_second: args.churn,
        ..SimOptions::default()
    };
    let handle = pipedrive_sim::start(options, args.port)
        .await
        .map_err(|e| Fail {
            code: exit::OTHER,
            message: format!(
                "the simulator cannot listen on 127.0.0.1:{}: {e}; pick another --port",
                args.port
            ),
        })?;
    println!(
        "{}",
        serde_json::json!({"url": handle.url, "api_token": handle.api_token, "company_domain": handle.company_domain})
    );
    shutdown_signal().await;
    handle.shutdown().await;
    Ok(())
}

async fn bench(args: BenchArgs) -> Result<(), Fail> {
    let fail = |e: anyhow::Error| Fail {
        code: exit::OTHER,
        message: format!("benchmark: {e:#}"),
    };
    let streams = match &args.streams {
        Some(list) => parse_stream_list(list, "--streams")?,
        None => bench::default_streams(),
    };
    let chosen = |kind| args.scenarios.contains(&kind);
    let mut scenarios = vec![bench::Scenario {
        name: "throttled",
        target: bench::BenchTarget::DuckDb,
        streams: streams.clone(),
        scale: args.throttled_scale,
        plan: args.throttled_plan,
        latency_ms: args.latency_ms,
        jitter_ms: args.jitter_ms,
        concurrency: args.concurrency,
    }];
    scenarios.extend(args.unthrottled_scales.iter().map(|scale| bench::Scenario {
        name: "unthrottled",
        target: bench::BenchTarget::DuckDb,
        streams: streams.clone(),
        scale: *scale,
        plan: Plan::Unlimited,
        latency_ms: 0,
        jitter_ms: 0,
        concurrency: args.concurrency,
    }));
    if args.parquet {
        scenarios.extend(args.unthrottled_scales.iter().map(|scale| bench::Scenario {
            name: "unthrottled-parquet",
            target: bench::BenchTarget::Parquet,
            streams: streams.clone(),
            scale: *scale,
            plan: Plan::Unlimited,
            latency_ms: 0,
            jitter_ms: 0,
            concurrency: args.concurrency,
        }));
    }
    if let Some(url) = &args.postgres_url {
        scenarios.extend(args.unthrottled_scales.iter().map(|scale| bench::Scenario {
            name: "unthrottled-postgres",
            target: bench::BenchTarget::Postgres(url.clone()),
            streams: streams.clone(),
            scale: *scale,
            plan: Plan::Unlimited,
            latency_ms: 0,
            jitter_ms: 0,
            concurrency: args.concurrency,
        }));
    }
    scenarios.retain(|s| {
        chosen(if s.name == "throttled" {
            bench::Kind::Throttled
        } else {
            bench::Kind::Unthrottled
        })
    });
    if !(args.change_percent > 0.0 && args.change_percent <= 100.0) {
        return Err(Fail {
            code: exit::USAGE,
            message: format!(
                "--change-percent {} is out of range: give a share of records above 0 and at most 100",
                args.change_percent
            ),
        });
    }
    let changes = bench::Changes {
        percent: args.change_percent,
        spread_seconds: args.change_spread_seconds,
    };
    let work = bench::work_dir();
    let mut runs = Vec::new();
    for scenario in &scenarios {
        eprintln!(
            "bench: {} {} at plan {} ...",
            scenario.name, scenario.scale, scenario.plan
        );
        runs.push(bench::measure(scenario, &work).await.map_err(fail)?);
    }
    let incremental = if chosen(bench::Kind::Incremental) {
        eprintln!("bench: incremental {} ...", args.incremental_scale);
        Some(
            bench::measure_incremental(args.incremental_scale, &changes, args.concurrency, &work)
                .await
                .map_err(fail)?,
        )
    } else {
        None
    };
    let fanout = if chosen(bench::Kind::Fanout) {
        eprintln!("bench: fan-out {} ...", args.fanout_scale);
        Some(
            bench::measure_fanout(args.fanout_scale, &changes, args.concurrency, &work)
                .await
                .map_err(fail)?,
        )
    } else {
        None
    };
    let _ = std::fs::remove_dir_all(&work);
    let memory_flatness = bench::memory_flatness(&runs);
    if !runs.is_empty() {
        print!("{}", bench::render(&runs));
    }
    print!("{}", bench::render_memory(&memory_flatness));
    if let Some(m) = &incremental {
        print!("\n{}", bench::render_incremental(m));
    }
    if let Some(m) = &fanout {
        print!("\n{}", bench::render_fanout(m));
    }
    if let Some(path) = args.json {
        let report = bench::Report {
            runs,
            memory_flatness,
            incremental,
            fanout,
        };
        let json = serde_json::to_string_pretty(&report).expect("plain JSON");
        std::fs::write(&path, json).map_err(|e| fail(e.into()))?;
    }
    Ok(())
}

/// A few deals of the demo file, as a small table: a first look needs no other tool.
#[cfg(feature = "duckdb")]
fn demo_deals(path: &Path) -> duckdb::Result<String> {
    let connection = pipedrive_destinations::duckdb::open_offline(path)?;
    let mut statement = connection.prepare(
        "SELECT title, coalesce(CAST(value AS VARCHAR), ''), coalesce(currency, ''), status FROM deals ORDER BY id LIMIT 5",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(format!(
            "  {:<40} {:>12} {:<4} {}",
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?
        ))
    })?;
    let mut text = format!(
        "  {:<40} {:>12} {:<4} {}\n",
        "title", "value", "cur", "status"
    );
    for row in rows {
        text.push_str(&row?);
        text.push('\n');
    }
    Ok(text)
}

#[cfg(not(feature = "duckdb"))]
fn demo_deals(_path: &Path) -> Result<String, String> {
    Ok(String::new())
}

async fn demo(path: &Path, scale: Scale) -> Result<(), Fail> {
    // Another scale's company has other records under the same ids: merging one into the
    // other would leave a mix of both.
    if path.exists() {
        return Err(Fail {
            code: exit::USAGE,
            message: format!(
                "{} already exists (perhaps from an earlier demo, of another scale): remove it, or pass --path with a new file",
                path.display()
            ),
        });
    }
    // No rate limits: a first look should take seconds, not the minutes a real plan's burst
    // limit imposes on one request per deal.
    let handle = pipedrive_sim::start(
        SimOptions {
            scale,
            plan: Plan::Unlimited,
            ..SimOptions::default()
        },
        0,
    )
    .await
    .map_err(|e| Fail {
        code: exit::OTHER,
        message: format!("the embedded simulator cannot start: {e}"),
    })?;
    eprintln!("simulator ({scale} company) listening on {}", handle.url);
    let yaml = format!(
        "source:\n  api_token: '{}'\n  base_url: '{}'\ntarget:\n  type: duckdb\n  path: '{}'\n",
        handle.api_token,
        handle.url,
        path.display().to_string().replace('\'', "''")
    );
    let config = Config::parse(&yaml, "demo config", Path::new("."))?;
    let result = sync(
        vec![config],
        Duration::ZERO,
        &stop_on_signal("saving state"),
    )
    .await;
    handle.shutdown().await;
    result?;
    let deals = demo_deals(path).map_err(|e| Fail {
        code: exit::DESTINATION,
        message: format!("DuckDB: reading {} back: {e}", path.display()),
    })?;
    eprintln!(
        "\nDone. The data is in {}. Some deals:\n{deals}\nQuery it from any DuckDB client (the `duckdb` CLI is at https://duckdb.org/docs/installation), e.g.\n  SELECT title, value, currency, status FROM deals LIMIT 10;",
        path.display()
    );
    Ok(())
}
