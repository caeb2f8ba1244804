//! `pipedrive-sync-bench`: the benchmark scenarios, run against the simulator in this process
//! with a `pipedrive-sync` binary as the child whose CPU time and peak memory are measured. It
//! ships apart from the product, and `--binary` benchmarks any build (a previous release beside
//! the new one).

mod measure;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::Parser;
use pipedrive_config::parse_stream_list;
use pipedrive_sim::{Plan, Scale};

use crate::measure as bench;

/// Exit codes: 0 done, 1 a scenario failed, 2 bad arguments.
const USAGE: u8 = 2;
const FAILED: u8 = 1;

/// The `pipedrive-sync` binary the scenarios run.
static SYNC_BINARY: OnceLock<PathBuf> = OnceLock::new();

/// The `pipedrive-sync` binary the scenarios run (set once, at start).
fn sync_binary() -> &'static PathBuf {
    SYNC_BINARY.get().expect("set at start")
}

/// Measure sync speed, request rate and token use against the simulator.
#[derive(Parser)]
#[command(name = "pipedrive-sync-bench", version)]
struct BenchArgs {
    /// The pipedrive-sync binary to measure (default: the one beside this program).
    #[arg(long)]
    binary: Option<PathBuf>,
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
    /// Leave DuckDB out of the unthrottled runs, e.g. to measure a build without it
    /// (`--no-default-features`) into Parquet or PostgreSQL.
    #[arg(long)]
    no_duckdb: bool,
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
    /// Scale of the follow scenario (plan unlimited; into DuckDB, and PostgreSQL with
    /// --postgres-url).
    #[arg(long, default_value = "small")]
    follow_scale: Scale,
    /// Changes per second during the follow scenario.
    #[arg(long, default_value_t = 50.0)]
    follow_rate: f64,
    /// Real seconds standing for the follow scenario's hour.
    #[arg(long, default_value_t = 120)]
    follow_hour_seconds: u64,
    /// Scale of the tokens scenario (plan growth, default selection).
    #[arg(long, default_value = "small")]
    tokens_scale: Scale,
    /// Also write the measurements as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = BenchArgs::parse();
    let binary = match &args.binary {
        Some(binary) => binary.clone(),
        None => match std::env::current_exe() {
            Ok(exe) => {
                exe.with_file_name(format!("pipedrive-sync{}", std::env::consts::EXE_SUFFIX))
            }
            Err(error) => {
                eprintln!(
                    "pipedrive-sync-bench: cannot find its own path ({error}); give --binary"
                );
                return ExitCode::from(USAGE);
            }
        },
    };
    if !binary.is_file() {
        eprintln!(
            "pipedrive-sync-bench: {} is not a file: build pipedrive-sync (cargo build --release) or give --binary",
            binary.display()
        );
        return ExitCode::from(USAGE);
    }
    SYNC_BINARY.get_or_init(|| binary);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("pipedrive-sync-bench: {message}");
            ExitCode::from(code)
        }
    }
}

async fn run(args: BenchArgs) -> Result<(), (u8, String)> {
    let fail = |e: anyhow::Error| (FAILED, format!("{e:#}"));
    let streams = match &args.streams {
        Some(list) => parse_stream_list(list, "--streams").map_err(|e| (USAGE, e.to_string()))?,
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
    // The unthrottled scales into each target asked for: DuckDB unless left out.
    let targets = (!args.no_duckdb)
        .then_some(("unthrottled", bench::BenchTarget::DuckDb))
        .into_iter()
        .chain(
            args.parquet
                .then_some(("unthrottled-parquet", bench::BenchTarget::Parquet)),
        )
        .chain(args.postgres_url.as_ref().map(|url| {
            (
                "unthrottled-postgres",
                bench::BenchTarget::Postgres(url.clone()),
            )
        }));
    for (name, target) in targets {
        scenarios.extend(args.unthrottled_scales.iter().map(|scale| bench::Scenario {
            name,
            target: target.clone(),
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
        return Err((
            USAGE,
            format!(
                "--change-percent {} is out of range: give a share of records above 0 and at most 100",
                args.change_percent
            ),
        ));
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
    let mut follow = Vec::new();
    if chosen(bench::Kind::Follow) {
        let targets = std::iter::once(bench::BenchTarget::DuckDb).chain(
            args.postgres_url
                .iter()
                .map(|url| bench::BenchTarget::Postgres(url.clone())),
        );
        for target in targets {
            eprintln!("bench: follow {} ...", args.follow_scale);
            follow.push(
                bench::measure_follow(
                    args.follow_scale,
                    &target,
                    args.follow_rate,
                    args.follow_hour_seconds,
                    &work,
                )
                .await
                .map_err(fail)?,
            );
        }
    }
    let tokens = if chosen(bench::Kind::Tokens) {
        eprintln!("bench: tokens {} ...", args.tokens_scale);
        Some(
            bench::measure_tokens(args.tokens_scale, &work)
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
    if !follow.is_empty() {
        print!("\n{}", bench::render_follow(&follow));
    }
    if let Some(m) = &tokens {
        print!("\n{}", bench::render_tokens(m));
    }
    if let Some(path) = args.json {
        let report = bench::Report {
            runs,
            memory_flatness,
            incremental,
            fanout,
            follow,
            tokens,
        };
        let json = serde_json::to_string_pretty(&report).expect("plain JSON");
        std::fs::write(&path, json).map_err(|e| fail(e.into()))?;
    }
    Ok(())
}
