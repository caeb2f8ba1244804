//! The follow scenario: a company changing at a steady rate, followed by webhooks for a
//! simulated hour, against polling the same changes.
//!
//! `seconds` of real time stand for one hour: the follower's safety-net sync runs once in it
//! (`--every seconds`), and the polling baselines run every five minutes of that hour, and
//! back to back (as fresh as polling gets). The first sync is the same for all and is not
//! counted; registering and removing the webhooks are.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pipedrive_sim::{Plan, Scale, SimOptions};
use serde::Serialize;
use serde_json::{Value, json};

use super::{BenchTarget, World, number};

/// What follow mode reads: every stream webhooks report.
const FOLLOWED: &[&str] = &[
    "deals",
    "deals_archived",
    "persons",
    "organizations",
    "activities",
    "products",
    "pipelines",
    "stages",
    "notes",
    "leads",
    "leads_archived",
];

#[derive(Clone, Debug, Serialize)]
pub struct FollowMeasurement {
    pub target: String,
    pub scale: String,
    pub changes_per_second: f64,
    /// Real seconds standing for one hour.
    pub hour_seconds: u64,
    /// Changes the simulator applied while followed.
    pub changes: u64,
    /// Events the follower applied as rows.
    pub rows_applied: u64,
    pub latency_p50_ms: u64,
    pub latency_p99_ms: u64,
    pub latency_max_ms: u64,
    /// Registration, the hour's safety-net sync, removal.
    pub follow_tokens: u64,
    pub polling: Vec<PollingBaseline>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PollingBaseline {
    /// `every 5 min` or `back to back`.
    pub schedule: String,
    pub syncs: u64,
    pub changes: u64,
    pub tokens: u64,
}

fn per_thousand(tokens: u64, changes: u64) -> f64 {
    if changes == 0 {
        0.0
    } else {
        tokens as f64 * 1000.0 / changes as f64
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn target_yaml(target: &BenchTarget, dir: &Path, schema: &str) -> anyhow::Result<String> {
    Ok(match target {
        BenchTarget::DuckDb => super::duckdb_target(&dir.join("bench.duckdb")),
        BenchTarget::Postgres(url) => {
            format!("  type: postgres\n  url: {url}\n  schema: {schema}\n")
        }
        BenchTarget::Parquet => bail!("follow mode writes to DuckDB or PostgreSQL"),
    })
}

impl World {
    /// Moves the simulator's clock (which starts at its data's anchor date) to the wall
    /// clock, so that `meta.timestamp` and the follower's commit time are on one clock.
    async fn align_clock(&self) -> anyhow::Result<()> {
        let simulated = self.admin(reqwest::Method::GET, "clock").await?["now_ms"]
            .as_i64()
            .context("the simulator's clock")?;
        let wall = chrono::Utc::now().timestamp_millis();
        if wall > simulated {
            self.http
                .post(format!("{}/__sim/clock/advance", self.sim.url))
                .json(&json!({ "seconds": (wall - simulated) as f64 / 1000.0 }))
                .send()
                .await?
                .error_for_status()?;
        }
        Ok(())
    }

    async fn set_churn(&self, per_second: f64) -> anyhow::Result<Value> {
        Ok(self
            .http
            .post(format!("{}/__sim/churn", self.sim.url))
            .json(&json!({ "per_second": per_second }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }
}

async fn health(http: &reqwest::Client, port: u16) -> Option<Value> {
    http.get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

async fn wait_for_syncs(
    http: &reqwest::Client,
    port: u16,
    syncs: u64,
    limit: Duration,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = health(http, port).await
            && status["safety_net_syncs"].as_u64() >= Some(syncs)
        {
            return Ok(status);
        }
        if Instant::now() > deadline {
            bail!("the follower did not finish safety-net sync {syncs} within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Follows `scale` changing at `per_second` for `hour_seconds`, then polls the same changes.
pub async fn measure_follow(
    scale: Scale,
    target: &BenchTarget,
    per_second: f64,
    hour_seconds: u64,
    work: &Path,
) -> anyhow::Result<FollowMeasurement> {
    let options = SimOptions {
        scale,
        plan: Plan::Unlimited,
        ..SimOptions::default()
    };
    let target_name = match target {
        BenchTarget::DuckDb => "duckdb",
        BenchTarget::Postgres(_) => "postgres",
        BenchTarget::Parquet => "parquet",
    };
    let world = World::start(work.join(format!("follow-{target_name}")), options.clone()).await?;
    world.align_clock().await?;
    let schema = format!("pds_bench_follow_{}", std::process::id());
    let config = world.write_config(&target_yaml(target, &world.dir, &schema)?, 4, FOLLOWED)?;
    let port = free_port()?;
    let log = world.dir.join("follow.log");
    let mut child = Command::new(crate::sync_binary())
        .args(["sync", "--config"])
        .arg(&config)
        .args(["--follow", "--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--public-url",
            &format!("http://127.0.0.1:{port}/pipedrive"),
        ])
        .args(["--every", &format!("{hour_seconds}s")])
        .env("PDS_BENCH_TOKEN", &world.sim.api_token)
        .env_remove("PIPEDRIVE_SYNC_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting the follower")?;
    let first = wait_for_syncs(&world.http, port, 1, Duration::from_secs(600)).await;
    if let Err(error) = first {
        let _ = child.kill();
        bail!(
            "{error}:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    // Registration happened before the first sync: counted, the first sync is not.
    let registration = number(&world.stats().await?["paths"]["/api/v1/webhooks"]["tokens_spent"]);
    world.reset_stats().await?;
    let churn_before = number(&world.set_churn(per_second).await?["applied"]);
    tokio::time::sleep(Duration::from_secs(hour_seconds)).await;
    let churn = world.set_churn(0.0).await?;
    let status = wait_for_syncs(&world.http, port, 2, Duration::from_secs(600)).await?;
    // The events of the hour's last seconds, applied before the stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = health(&world.http, port).await.unwrap_or(status);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let exited = tokio::task::spawn_blocking(move || child.wait()).await??;
    if !exited.success() {
        bail!(
            "the follower failed:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let follow_tokens = registration + number(&world.stats().await?["tokens_spent"]);
    let changes = number(&churn["applied"]) - churn_before;
    world.shutdown().await;
    if let BenchTarget::Postgres(url) = target {
        super::drop_schema(url, &schema).await?;
    }

    let mut polling = Vec::new();
    for (schedule, every) in [
        ("every 5 min", Some(hour_seconds as f64 / 12.0)),
        ("back to back", None),
    ] {
        polling.push(
            measure_polling(
                &options,
                target,
                per_second,
                hour_seconds,
                schedule,
                every,
                work,
            )
            .await?,
        );
    }
    Ok(FollowMeasurement {
        target: target_name.to_owned(),
        scale: scale.to_string(),
        changes_per_second: per_second,
        hour_seconds,
        changes,
        rows_applied: number(&status["applied"]["rows"]),
        latency_p50_ms: number(&status["latency"]["p50_ms"]),
        latency_p99_ms: number(&status["latency"]["p99_ms"]),
        latency_max_ms: number(&status["latency"]["max_ms"]),
        follow_tokens,
        polling,
    })
}

/// Incremental syncs of the same streams over the same hour of the same changes.
async fn measure_polling(
    options: &SimOptions,
    target: &BenchTarget,
    per_second: f64,
    hour_seconds: u64,
    schedule: &str,
    every: Option<f64>,
    work: &Path,
) -> anyhow::Result<PollingBaseline> {
    let world = World::start(work.join("follow-polling"), options.clone()).await?;
    world.align_clock().await?;
    let schema = format!("pds_bench_poll_{}", std::process::id());
    let config = world.write_config(&target_yaml(target, &world.dir, &schema)?, 4, FOLLOWED)?;
    world.sync(&config).await?;
    world.reset_stats().await?;
    let churn_before = number(&world.set_churn(per_second).await?["applied"]);
    let started = Instant::now();
    let hour = Duration::from_secs(hour_seconds);
    let mut syncs = 0;
    while started.elapsed() < hour {
        let tick = Instant::now();
        world.sync(&config).await?;
        syncs += 1;
        if let Some(every) = every {
            let next = Duration::from_secs_f64(every).saturating_sub(tick.elapsed());
            tokio::time::sleep(next.min(hour.saturating_sub(started.elapsed()))).await;
        }
    }
    let churn = world.set_churn(0.0).await?;
    // The hour's last changes, read as the follower's safety net reads them.
    world.sync(&config).await?;
    syncs += 1;
    let tokens = number(&world.stats().await?["tokens_spent"]);
    world.shutdown().await;
    if let BenchTarget::Postgres(url) = target {
        super::drop_schema(url, &schema).await?;
    }
    Ok(PollingBaseline {
        schedule: schedule.to_owned(),
        syncs,
        changes: number(&churn["applied"]) - churn_before,
        tokens,
    })
}

pub fn render_follow(measurements: &[FollowMeasurement]) -> String {
    let mut out = String::from(
        "follow (webhooks) against polling, one simulated hour:\n\
         target    changes  applied  p50 ms  p99 ms  max ms  follow tokens  /1000 changes | polling: schedule, syncs, tokens, /1000 changes, follow's share\n",
    );
    for m in measurements {
        let follow_rate = per_thousand(m.follow_tokens, m.changes);
        let polls: Vec<String> = m
            .polling
            .iter()
            .map(|p| {
                let rate = per_thousand(p.tokens, p.changes);
                let share = if rate > 0.0 {
                    follow_rate / rate * 100.0
                } else {
                    0.0
                };
                format!(
                    "{} {} syncs {} tokens {:.0} ({share:.1}%)",
                    p.schedule, p.syncs, p.tokens, rate
                )
            })
            .collect();
        out.push_str(&format!(
            "{:<9} {:>7}  {:>7}  {:>6}  {:>6}  {:>6}  {:>13}  {:>13.0} | {}\n",
            m.target,
            m.changes,
            m.rows_applied,
            m.latency_p50_ms,
            m.latency_p99_ms,
            m.latency_max_ms,
            m.follow_tokens,
            follow_rate,
            polls.join("; "),
        ));
    }
    out
}
