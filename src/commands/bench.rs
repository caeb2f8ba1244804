//! `bench`: the benchmark scenarios run against the simulator.

use std::path::PathBuf;

use clap::Args;
use pipedrive_config::parse_stream_list;
use pipedrive_sim::{Plan, Scale};

use crate::bench;
use crate::fail::{Fail, exit};

#[derive(Args)]
pub(crate) struct BenchArgs {
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
    /// Also write the measurements as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub(crate) async fn run(args: BenchArgs) -> Result<(), Fail> {
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
    if let Some(path) = args.json {
        let report = bench::Report {
            runs,
            memory_flatness,
            incremental,
            fanout,
            follow,
        };
        let json = serde_json::to_string_pretty(&report).expect("plain JSON");
        std::fs::write(&path, json).map_err(|e| fail(e.into()))?;
    }
    Ok(())
}
