//! The scenarios: the simulator runs in this process and `pipedrive-sync sync` as a
//! child process (so its CPU time and peak memory are its own), then reports what matters
//! against Pipedrive's limits: request rate versus the burst ceiling, 429s, tokens per 1,000
//! records, and unthrottled records/s with peak RSS.

mod follow;
mod tokens;

pub use follow::{FollowMeasurement, measure_follow, render_follow};
pub use tokens::{TokensMeasurement, measure_tokens, render_tokens};

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use pipedrive_engine::catalog::{Fanout, PagingKind};
use pipedrive_sim::{Plan, Scale, SimOptions};
use serde::Serialize;
use serde_json::Value;

/// Streams whose records count as "core entities" for tokens per 1,000 records.
const CORE: &[(&str, &str)] = &[
    ("deals", "/api/v2/deals"),
    ("persons", "/api/v2/persons"),
    ("organizations", "/api/v2/organizations"),
    ("activities", "/api/v2/activities"),
    ("products", "/api/v2/products"),
];

/// How the incremental and fan-out scenarios change a record, as a user's tool would: the
/// stream (and `/__sim/truth` entity), the write's method and path, and the text field set to
/// [`CHANGE_MARK`] and the id.
pub struct Edit {
    pub stream: &'static str,
    pub method: reqwest::Method,
    pub path: &'static str,
    pub field: &'static str,
}

/// The start of every value the bench writes, so the loaded rows can be counted.
const CHANGE_MARK: &str = "pipedrive-sync bench change ";

/// The streams the incremental scenario changes: the core entities and notes.
fn edits() -> Vec<Edit> {
    let v2 = |stream, path, field| Edit {
        stream,
        method: reqwest::Method::PATCH,
        path,
        field,
    };
    vec![
        v2("deals", "/api/v2/deals", "title"),
        v2("persons", "/api/v2/persons", "name"),
        v2("organizations", "/api/v2/organizations", "name"),
        v2("activities", "/api/v2/activities", "subject"),
        v2("products", "/api/v2/products", "name"),
        Edit {
            stream: "notes",
            method: reqwest::Method::PUT,
            path: "/api/v1/notes",
            field: "content",
        },
    ]
}

/// What the incremental and fan-out scenarios change between their two syncs.
pub struct Changes {
    /// Share of each stream's live records changed, in percent.
    pub percent: f64,
    /// Simulated seconds the changes are spread over: a user's changes fall in different
    /// seconds, and a v1 list walked by update time reads a page's last second twice, so a
    /// burst in one second (0) costs extra pages.
    pub spread_seconds: u64,
}

/// Batches a stream's changes are made in, the simulator's clock moved on between them.
const CHANGE_STEPS: usize = 60;

/// Requests an incremental run may make beyond 1.1 × the minimum, per stream: one page,
/// because the records changed within the lookback before the bookmark are read again (so that
/// a change that shows late is not missed) and may spill onto a page of their own.
const EXTRA_PAGES: u64 = 1;

/// The incremental scenario: a full sync, `change_percent` % of each stream's records changed
/// through the API, then an incremental sync measured.
#[derive(Debug, Serialize)]
pub struct IncrementalMeasurement {
    pub scale: String,
    pub change_percent: f64,
    pub change_spread_seconds: u64,
    /// Requests of the full sync before the changes.
    pub full_sync_requests: u64,
    /// Requests of the incremental sync, all paths.
    pub requests: u64,
    pub wall_seconds: f64,
    pub streams: Vec<IncrementalStream>,
}

#[derive(Debug, Serialize)]
pub struct IncrementalStream {
    pub stream: String,
    /// Records changed through the API.
    pub changed: u64,
    /// Changed records found with their new value in DuckDB after the incremental sync.
    pub loaded: u64,
    /// Records per page of the stream's list.
    pub page_limit: u64,
    /// ⌈changed / page_limit⌉: the fewest list requests that can return the changes.
    pub minimum: u64,
    /// Requests to the stream's list.
    pub list_requests: u64,
    /// Requests to the `*_fields` list that names the stream's custom fields (read once a
    /// run; none for streams without custom fields).
    pub field_requests: u64,
    /// `list_requests + field_requests`.
    pub requests: u64,
    /// The fixed allowance per stream: the field-definition read plus [`EXTRA_PAGES`].
    pub overhead: u64,
    /// `list_requests / minimum`.
    pub ratio: f64,
    /// `requests ≤ 1.1 × minimum + overhead`, the target.
    pub within_target: bool,
}

/// The fan-out scenario: deals with their per-deal children, read in full and then after
/// `change_percent` % of the deals changed.
#[derive(Debug, Serialize)]
pub struct FanoutMeasurement {
    pub scale: String,
    /// Deals the full sync loaded (the parents whose children are read).
    pub deals: u64,
    /// Deals changed through the API before the incremental run.
    pub changed_deals: u64,
    /// Deals sharing the full sync's last update second: the incremental run reads them
    /// again with the changed ones (`updated_since` is inclusive).
    pub bookmark_deals: u64,
    pub full_wall_seconds: f64,
    pub incremental_wall_seconds: f64,
    pub children: Vec<FanoutChild>,
}

#[derive(Debug, Serialize)]
pub struct FanoutChild {
    pub stream: String,
    pub path: String,
    /// Parents per request: 1 for per-deal endpoints, 100 for `deal_ids` batches.
    pub deals_per_request: u64,
    pub full_requests: u64,
    /// ⌈deals / deals_per_request⌉.
    pub full_minimum: u64,
    pub incremental_requests: u64,
    /// ⌈changed_deals / deals_per_request⌉.
    pub incremental_minimum: u64,
}

/// Fan-out children of deals measured by the fan-out scenario.
const FANOUT_CHILDREN: &[&str] = &["deal_products", "deal_flow", "deal_participants"];

#[derive(Debug, Serialize)]
pub struct Measurement {
    pub scenario: String,
    pub scale: String,
    pub plan: String,
    pub latency_ms: u64,
    pub records: u64,
    pub core_records: u64,
    pub requests: u64,
    pub responses_429: u64,
    pub tokens: u64,
    pub core_tokens: u64,
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    /// The part of `cpu_seconds` spent in the kernel on the sync's behalf (files created and
    /// synced, sockets), which no change to our own code's loops reduces.
    pub kernel_cpu_seconds: f64,
    /// CPU time of this process (the simulator serving the sync) while the sync ran: on a
    /// 2-core machine it shares the cores with the sync, so it bounds what the sync can reach.
    pub simulator_cpu_seconds: f64,
    pub peak_rss_mb: f64,
    pub records_per_second: f64,
    /// Seconds from the sync's first request to its last, as the simulator saw them.
    pub request_seconds: f64,
    /// Requests per second while the sync made requests (over `request_seconds`) as a share
    /// of the plan's burst ceiling (limit / 2 s): how well the client uses the window.
    pub burst_share: Option<f64>,
    /// The same over the whole wall time, start-up and the last commits included.
    pub burst_share_wall: Option<f64>,
    pub tokens_per_1000_core_records: f64,
    pub tokens_per_1000_records: f64,
}

/// The scenarios `bench --scenarios` can pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A full sync at a paid plan's burst limit, with latency.
    Throttled,
    /// Full syncs at plan unlimited: speed, CPU and peak memory by scale.
    Unthrottled,
    /// Requests of an incremental sync after a share of the records changed.
    Incremental,
    /// Requests of deal products, deal flow and participants per deal and per changed deal.
    Fanout,
    /// Follow mode's latency and tokens over a simulated hour of changes, against polling.
    Follow,
    /// Tokens of a first sync and of a run with nothing changed, default selection, plan
    /// growth, with and without `refresh_every`.
    Tokens,
}

/// Where a scenario loads.
#[derive(Clone)]
pub enum BenchTarget {
    DuckDb,
    /// A PostgreSQL URL; the scenario uses a schema of its own and drops it afterwards.
    Postgres(String),
    /// Parquet files in the scenario's scratch directory.
    Parquet,
}

pub struct Scenario {
    pub name: &'static str,
    pub target: BenchTarget,
    /// Streams synced; see [`default_streams`].
    pub streams: Vec<&'static str>,
    pub scale: Scale,
    pub plan: Plan,
    pub latency_ms: u64,
    pub jitter_ms: u64,
    pub concurrency: usize,
}

/// One scenario's world: a simulator in this process, an HTTP client for its admin API and a
/// scratch directory for the config, the database and the sync's log.
struct World {
    sim: pipedrive_sim::SimHandle,
    http: reqwest::Client,
    dir: PathBuf,
}

impl World {
    async fn start(dir: PathBuf, options: SimOptions) -> anyhow::Result<World> {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let sim = pipedrive_sim::start(options, 0).await?;
        Ok(World {
            sim,
            http: reqwest::Client::new(),
            dir,
        })
    }

    /// A config for the child `sync`: the simulator as source, `target` (YAML lines under
    /// `target:`) and the streams; the token travels in the environment.
    fn write_config(
        &self,
        target: &str,
        concurrency: usize,
        streams: &[&str],
    ) -> anyhow::Result<PathBuf> {
        let config = self.dir.join("bench.yaml");
        std::fs::write(
            &config,
            format!(
                "source:\n  api_token: ${{PDS_BENCH_TOKEN}}\n  base_url: {}\ntarget:\n{target}concurrency: {concurrency}\nstreams:\n{}",
                self.sim.url,
                streams
                    .iter()
                    .map(|s| format!("  {s}:\n"))
                    .collect::<String>()
            ),
        )?;
        Ok(config)
    }

    /// Runs `pipedrive-sync sync` as a child process; returns its wall time and usage.
    async fn sync(&self, config: &Path) -> anyhow::Result<(f64, Usage)> {
        let log = self.dir.join("sync.log");
        let started = Instant::now();
        let own_cpu_before = own_cpu_seconds();
        let exe = crate::sync_binary();
        let child = std::process::Command::new(exe)
            .args(["sync", "--config"])
            .arg(config)
            .env("PDS_BENCH_TOKEN", &self.sim.api_token)
            .env_remove("PIPEDRIVE_SYNC_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} for the benchmarked sync (rebuilt while the bench ran?)",
                    exe.display()
                )
            })?;
        let (success, mut usage) =
            tokio::task::spawn_blocking(move || wait_with_usage(child.id())).await??;
        let wall_seconds = started.elapsed().as_secs_f64();
        usage.simulator_cpu_seconds = own_cpu_seconds() - own_cpu_before;
        if !success {
            anyhow::bail!(
                "the benchmarked sync failed:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Ok((wall_seconds, usage))
    }

    /// A call to the simulator's `/__sim/` admin API (no limits, not counted in its stats).
    async fn admin(&self, method: reqwest::Method, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .request(method, format!("{}/__sim/{path}", self.sim.url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    async fn reset_stats(&self) -> anyhow::Result<()> {
        self.admin(reqwest::Method::POST, "stats/reset").await?;
        Ok(())
    }

    async fn stats(&self) -> anyhow::Result<Value> {
        self.admin(reqwest::Method::GET, "stats").await
    }

    /// Changes `changes.percent` % (at least one) of the live records of `edit.stream`, picked
    /// evenly over the ids, through the Pipedrive API as a user's tool would, in
    /// [`CHANGE_STEPS`] batches spread over `changes.spread_seconds` of the simulator's clock;
    /// returns how many changed.
    async fn change(&self, edit: &Edit, changes: &Changes) -> anyhow::Result<u64> {
        let truth = self
            .admin(reqwest::Method::GET, &format!("truth/{}", edit.stream))
            .await?;
        let live: Vec<u64> = truth["records"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| {
                r["is_deleted"] != true && r["is_archived"] != true && r["active_flag"] != false
            })
            .filter_map(|r| r["id"].as_u64())
            .collect();
        if live.is_empty() {
            return Ok(0);
        }
        let wanted =
            ((live.len() as f64 * changes.percent / 100.0).ceil() as usize).clamp(1, live.len());
        let step = live.len() as f64 / wanted as f64;
        let ids: Vec<u64> = (0..wanted)
            .map(|i| live[(i as f64 * step) as usize])
            .collect();
        let batches: Vec<&[u64]> = ids.chunks(wanted.div_ceil(CHANGE_STEPS)).collect();
        let pause = changes.spread_seconds as f64 / batches.len() as f64;
        for batch in batches {
            // A few writers at once: a large scale's 1% is thousands of requests.
            let mut writers = tokio::task::JoinSet::new();
            for chunk in batch.chunks(batch.len().div_ceil(8)) {
                let chunk = chunk.to_vec();
                let http = self.http.clone();
                let url = self.sim.url.clone();
                let token = self.sim.api_token.clone();
                let (method, path, field) = (edit.method.clone(), edit.path, edit.field);
                writers.spawn(async move {
                    for id in chunk {
                        http.request(method.clone(), format!("{url}{path}/{id}"))
                            .header("x-api-token", &token)
                            .json(&serde_json::json!({ field: format!("{CHANGE_MARK}{id}") }))
                            .send()
                            .await?
                            .error_for_status()?;
                    }
                    Ok::<_, reqwest::Error>(())
                });
            }
            while let Some(done) = writers.join_next().await {
                done??;
            }
            if pause > 0.0 {
                self.http
                    .post(format!("{}/__sim/clock/advance", self.sim.url))
                    .json(&serde_json::json!({ "seconds": pause }))
                    .send()
                    .await?
                    .error_for_status()?;
            }
        }
        Ok(ids.len() as u64)
    }

    async fn shutdown(self) {
        self.sim.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs one scenario in a scratch directory under `work`.
pub async fn measure(scenario: &Scenario, work: &Path) -> anyhow::Result<Measurement> {
    let world = World::start(
        work.join(format!(
            "{}-{}-{}",
            scenario.name, scenario.scale, scenario.plan
        )),
        SimOptions {
            scale: scenario.scale,
            plan: scenario.plan,
            latency_ms: scenario.latency_ms,
            jitter_ms: scenario.jitter_ms,
            ..SimOptions::default()
        },
    )
    .await?;
    let dir = world.dir.clone();
    let burst_limit = world
        .http
        .get(format!("{}/api/v1/users/me", world.sim.url))
        .header("x-api-token", &world.sim.api_token)
        .send()
        .await?
        .headers()
        .get("x-ratelimit-limit")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok());
    world.reset_stats().await?;

    let db = dir.join("bench.duckdb");
    let pg_schema = format!("pds_bench_{}", std::process::id());
    let target = match &scenario.target {
        BenchTarget::DuckDb => duckdb_target(&db),
        BenchTarget::Postgres(url) => {
            format!("  type: postgres\n  url: {url}\n  schema: {pg_schema}\n")
        }
        BenchTarget::Parquet => {
            format!("  type: parquet\n  path: {}\n", dir.join("files").display())
        }
    };
    let config = world.write_config(&target, scenario.concurrency, &scenario.streams)?;
    let (wall_seconds, usage) = world.sync(&config).await?;
    let stats = world.stats().await?;

    let counts = match &scenario.target {
        BenchTarget::DuckDb => table_counts(&db)?,
        BenchTarget::Postgres(url) => postgres_counts(url, &pg_schema).await?,
        BenchTarget::Parquet => parquet_counts(&dir.join("files"))?,
    };
    world.shutdown().await;
    let records: u64 = counts.iter().map(|(_, n)| n).sum();
    let core_records: u64 = counts
        .iter()
        .filter(|(name, _)| CORE.iter().any(|(core, _)| core == name))
        .map(|(_, n)| n)
        .sum();
    let requests = number(&stats["requests"]);
    let request_seconds = stats["active_seconds"].as_f64().unwrap_or_default();
    let ceiling = burst_limit
        .filter(|_| scenario.plan != Plan::Unlimited)
        .map(|limit| limit / 2.0);
    let tokens = number(&stats["tokens_spent"]);
    let core_tokens: u64 = CORE
        .iter()
        .map(|(_, path)| number(&stats["paths"][*path]["tokens_spent"]))
        .sum();
    let per_thousand = |tokens: u64, records: u64| {
        if records == 0 {
            0.0
        } else {
            tokens as f64 * 1000.0 / records as f64
        }
    };
    Ok(Measurement {
        scenario: scenario.name.to_owned(),
        scale: scenario.scale.to_string(),
        plan: scenario.plan.to_string(),
        latency_ms: scenario.latency_ms,
        records,
        core_records,
        requests,
        responses_429: number(&stats["responses_429"]),
        tokens,
        core_tokens,
        wall_seconds,
        cpu_seconds: usage.cpu_seconds,
        kernel_cpu_seconds: usage.kernel_cpu_seconds,
        simulator_cpu_seconds: usage.simulator_cpu_seconds,
        peak_rss_mb: usage.max_rss_kb as f64 / 1024.0,
        records_per_second: records as f64 / wall_seconds,
        request_seconds,
        // n requests spaced evenly over a span are n - 1 intervals.
        burst_share: ceiling
            .filter(|_| request_seconds > 0.0)
            .map(|ceiling| requests.saturating_sub(1) as f64 / request_seconds / ceiling),
        burst_share_wall: ceiling.map(|ceiling| requests as f64 / wall_seconds / ceiling),
        tokens_per_1000_core_records: per_thousand(core_tokens, core_records),
        tokens_per_1000_records: per_thousand(tokens, records),
    })
}

/// The incremental scenario at `scale` (plan unlimited, no latency: it counts requests, not
/// time): a full sync of the core streams and notes into DuckDB, `changes.percent` % of each
/// stream's records changed through the API, the simulator's stats reset, an incremental sync.
pub async fn measure_incremental(
    scale: Scale,
    changes: &Changes,
    concurrency: usize,
    work: &Path,
) -> anyhow::Result<IncrementalMeasurement> {
    let world = World::start(
        work.join(format!("incremental-{scale}")),
        SimOptions {
            scale,
            plan: Plan::Unlimited,
            ..SimOptions::default()
        },
    )
    .await?;
    let edits = edits();
    let streams: Vec<&str> = edits.iter().map(|e| e.stream).collect();
    let db = world.dir.join("bench.duckdb");
    let config = world.write_config(&duckdb_target(&db), concurrency, &streams)?;
    world.reset_stats().await?;
    world.sync(&config).await?;
    let full_sync_requests = number(&world.stats().await?["requests"]);
    let mut changed = Vec::new();
    for edit in &edits {
        changed.push(world.change(edit, changes).await?);
    }
    world.reset_stats().await?;
    let (wall_seconds, _) = world.sync(&config).await?;
    let stats = world.stats().await?;
    let requests_to = |path: &str| number(&stats["paths"][path]["requests"]);
    let mut rows = Vec::new();
    for (edit, changed) in edits.iter().zip(changed) {
        let def = pipedrive_engine::catalog::find(edit.stream)
            .ok_or_else(|| anyhow::anyhow!("{} is not in the catalog", edit.stream))?;
        let page_limit = match def.paging {
            PagingKind::Cursor { limit } | PagingKind::Offset { limit } => u64::from(limit),
            PagingKind::None => u64::MAX,
        };
        let fields_path = def
            .custom_fields
            .and_then(|c| pipedrive_engine::catalog::find(c.defined_by))
            .map(|d| d.path);
        let minimum = changed.div_ceil(page_limit);
        let list_requests = requests_to(def.path);
        let field_requests = fields_path.map_or(0, requests_to);
        let requests = list_requests + field_requests;
        let overhead = u64::from(fields_path.is_some()) + EXTRA_PAGES;
        rows.push(IncrementalStream {
            stream: edit.stream.to_owned(),
            changed,
            loaded: count_marked(&db, edit.stream, edit.field)?,
            page_limit,
            minimum,
            list_requests,
            field_requests,
            requests,
            overhead,
            ratio: list_requests as f64 / minimum.max(1) as f64,
            within_target: requests as f64 <= 1.1 * minimum as f64 + overhead as f64,
        });
    }
    world.shutdown().await;
    Ok(IncrementalMeasurement {
        scale: scale.to_string(),
        change_percent: changes.percent,
        change_spread_seconds: changes.spread_seconds,
        full_sync_requests,
        requests: number(&stats["requests"]),
        wall_seconds,
        streams: rows,
    })
}

/// The fan-out scenario at `scale` (plan unlimited, no latency): deals with deal products,
/// deal flow and participants, synced in full, then `changes.percent` % of the deals changed
/// through the API and synced incrementally; requests counted per child endpoint.
pub async fn measure_fanout(
    scale: Scale,
    changes: &Changes,
    concurrency: usize,
    work: &Path,
) -> anyhow::Result<FanoutMeasurement> {
    let world = World::start(
        work.join(format!("fanout-{scale}")),
        SimOptions {
            scale,
            plan: Plan::Unlimited,
            ..SimOptions::default()
        },
    )
    .await?;
    let streams: Vec<&str> = std::iter::once("deals")
        .chain(FANOUT_CHILDREN.iter().copied())
        .collect();
    let db = world.dir.join("bench.duckdb");
    let config = world.write_config(&duckdb_target(&db), concurrency, &streams)?;
    world.reset_stats().await?;
    let (full_wall_seconds, _) = world.sync(&config).await?;
    let full = world.stats().await?;
    let (deals, bookmark_deals) = deal_counts(&db)?;
    let deal_edit = edits()
        .into_iter()
        .find(|e| e.stream == "deals")
        .expect("deals are edited");
    let changed_deals = world.change(&deal_edit, changes).await?;
    world.reset_stats().await?;
    let (incremental_wall_seconds, _) = world.sync(&config).await?;
    let incremental = world.stats().await?;
    world.shutdown().await;
    let children = FANOUT_CHILDREN
        .iter()
        .map(|name| {
            let def = pipedrive_engine::catalog::find(name)
                .ok_or_else(|| anyhow::anyhow!("{name} is not in the catalog"))?;
            let deals_per_request = match def.fanout {
                Fanout::IdsParam { batch, .. } => batch as u64,
                _ => 1,
            };
            Ok(FanoutChild {
                stream: (*name).to_owned(),
                path: def.path.to_owned(),
                deals_per_request,
                full_requests: number(&full["paths"][def.path]["requests"]),
                full_minimum: deals.div_ceil(deals_per_request),
                incremental_requests: number(&incremental["paths"][def.path]["requests"]),
                incremental_minimum: changed_deals.div_ceil(deals_per_request),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(FanoutMeasurement {
        scale: scale.to_string(),
        deals,
        changed_deals,
        bookmark_deals,
        full_wall_seconds,
        incremental_wall_seconds,
        children,
    })
}

fn number(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn duckdb_target(db: &Path) -> String {
    format!("  path: {}\n", db.display())
}

struct Usage {
    cpu_seconds: f64,
    kernel_cpu_seconds: f64,
    simulator_cpu_seconds: f64,
    max_rss_kb: i64,
}

/// Waits for one child and returns whether it succeeded with its own CPU time and peak RSS.
///
/// The peak is the child's `VmHWM`, sampled until it exits: `ru_maxrss` is no good here,
/// because Linux carries the parent's high-water mark into a spawned child at `exec`, and this
/// process holds the simulator's whole company (hundreds of MB at `large`).
fn wait_with_usage(pid: u32) -> std::io::Result<(bool, Usage)> {
    let status_path = format!("/proc/{pid}/status");
    let mut peak_kb: i64 = 0;
    let mut status = 0;
    // SAFETY: wait4 writes into the status and zeroed rusage we own; `pid` is our own child,
    // which std has not reaped because we never call `wait` on its handle.
    let usage = loop {
        if let Some(kb) = std::fs::read_to_string(&status_path)
            .ok()
            .and_then(|text| high_water_kb(&text))
        {
            peak_kb = peak_kb.max(kb);
        }
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let reaped =
            unsafe { libc::wait4(pid as libc::pid_t, &mut status, libc::WNOHANG, &mut usage) };
        match reaped {
            r if r < 0 => return Err(std::io::Error::last_os_error()),
            0 => std::thread::sleep(std::time::Duration::from_millis(10)),
            _ => break usage,
        }
    };
    let success = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Ok((
        success,
        Usage {
            cpu_seconds: timeval_seconds(usage.ru_utime) + timeval_seconds(usage.ru_stime),
            kernel_cpu_seconds: timeval_seconds(usage.ru_stime),
            simulator_cpu_seconds: 0.0,
            max_rss_kb: peak_kb,
        },
    ))
}

fn timeval_seconds(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// User and system CPU time of this whole process so far (every thread: the simulator's).
fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    timeval_seconds(usage.ru_utime) + timeval_seconds(usage.ru_stime)
}

/// `VmHWM` (peak resident set, kB) of a `/proc/PID/status` text.
fn high_water_kb(status: &str) -> Option<i64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(feature = "duckdb")]
fn table_counts(db: &Path) -> anyhow::Result<Vec<(String, u64)>> {
    let connection = duckdb::Connection::open(db)?;
    let mut statement = connection.prepare(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' AND table_name NOT LIKE '\\_%' ESCAPE '\\'",
    )?;
    let tables: Vec<String> = statement
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    tables
        .into_iter()
        .map(|table| {
            let quoted = pipedrive_destinations::sql::quote(&table);
            let n: i64 =
                connection.query_row(&format!("SELECT count(*) FROM main.{quoted}"), [], |r| {
                    r.get(0)
                })?;
            Ok((table, n as u64))
        })
        .collect()
}

/// Rows of `main.{table}` whose `column` holds a value the bench wrote.
#[cfg(feature = "duckdb")]
fn count_marked(db: &Path, table: &str, column: &str) -> anyhow::Result<u64> {
    use pipedrive_destinations::sql::quote;
    let connection = duckdb::Connection::open(db)?;
    let n: i64 = connection.query_row(
        &format!(
            "SELECT count(*) FROM main.{} WHERE starts_with({}, ?)",
            quote(table),
            quote(column)
        ),
        [CHANGE_MARK],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

/// Deals loaded, and how many of them an incremental run reads again: those changed within
/// the default lookback before the latest update time (the bookmark).
#[cfg(feature = "duckdb")]
fn deal_counts(db: &Path) -> anyhow::Result<(u64, u64)> {
    let connection = duckdb::Connection::open(db)?;
    let lookback = pipedrive_config::DEFAULT_LOOKBACK.as_secs();
    let (all, last): (i64, i64) = connection.query_row(
        &format!(
            "SELECT count(*), count(*) FILTER (WHERE epoch_us(update_time) >= \
             (SELECT max(epoch_us(update_time)) FROM main.deals) - {lookback} * 1000000) FROM main.deals"
        ),
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((all as u64, last as u64))
}

#[cfg(not(feature = "duckdb"))]
fn count_marked(_db: &Path, _table: &str, _column: &str) -> anyhow::Result<u64> {
    anyhow::bail!("bench needs the DuckDB destination: rebuild with the default features")
}

#[cfg(not(feature = "duckdb"))]
fn deal_counts(_db: &Path) -> anyhow::Result<(u64, u64)> {
    anyhow::bail!("bench needs the DuckDB destination: rebuild with the default features")
}

/// Row counts of every table directory, from the Parquet footers.
fn parquet_counts(dir: &Path) -> anyhow::Result<Vec<(String, u64)>> {
    use parquet::file::reader::FileReader;
    let mut counts = Vec::new();
    for table in std::fs::read_dir(dir)? {
        let table = table?;
        let name = table.file_name().to_string_lossy().into_owned();
        if !table.file_type()?.is_dir() || name.starts_with(['_', '.']) {
            continue;
        }
        let mut rows = 0u64;
        for file in std::fs::read_dir(table.path())? {
            let path = file?.path();
            if path.extension().is_some_and(|e| e == "parquet") {
                let reader =
                    parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&path)?)?;
                rows += reader.metadata().file_metadata().num_rows() as u64;
            }
        }
        counts.push((name, rows));
    }
    Ok(counts)
}

/// Row counts of the scenario's PostgreSQL schema, which is dropped afterwards.
async fn postgres_counts(url: &str, schema: &str) -> anyhow::Result<Vec<(String, u64)>> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let tables = client
        .query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_name NOT LIKE '\\_%'",
            &[&schema],
        )
        .await?;
    let quoted_schema = pipedrive_destinations::sql::quote(schema);
    let mut counts = Vec::new();
    for row in tables {
        let table: String = row.get(0);
        let quoted = pipedrive_destinations::sql::quote(&table);
        let n: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {quoted_schema}.{quoted}"),
                &[],
            )
            .await?
            .get(0);
        counts.push((table, n as u64));
    }
    drop_schema(url, schema).await?;
    Ok(counts)
}

/// Drops a scenario's scratch schema.
async fn drop_schema(url: &str, schema: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            pipedrive_destinations::sql::quote(schema)
        ))
        .await?;
    Ok(())
}

#[cfg(not(feature = "duckdb"))]
fn table_counts(_db: &Path) -> anyhow::Result<Vec<(String, u64)>> {
    anyhow::bail!("bench needs the DuckDB destination: rebuild with the default features")
}

/// The table the command prints.
pub fn render(measurements: &[Measurement]) -> String {
    let mut out = format!(
        "{:<22} {:<7} {:<10} {:>9} {:>8} {:>6} {:>8} {:>9} {:>9} {:>8} {:>9} {:>8} {:>8} {:>10} {:>9} {:>7} {:>12} {:>10}\n",
        "scenario",
        "scale",
        "plan",
        "records",
        "requests",
        "429s",
        "wall s",
        "cpu s",
        "kernel s",
        "µs/rec",
        "sim cpu s",
        "rss MB",
        "rec/s",
        "burst use",
        "wall use",
        "tok/1k",
        "tok/1k core",
        "tokens"
    );
    for m in measurements {
        out.push_str(&format!(
            "{:<22} {:<7} {:<10} {:>9} {:>8} {:>6} {:>8.1} {:>9.1} {:>9.1} {:>8.1} {:>9.1} {:>8.1} {:>8.0} {:>10} {:>9} {:>7.1} {:>12.1} {:>10}\n",
            m.scenario,
            m.scale,
            m.plan,
            m.records,
            m.requests,
            m.responses_429,
            m.wall_seconds,
            m.cpu_seconds,
            m.kernel_cpu_seconds,
            m.cpu_seconds * 1e6 / m.records.max(1) as f64,
            m.simulator_cpu_seconds,
            m.peak_rss_mb,
            m.records_per_second,
            m.burst_share.map_or("-".to_owned(), |s| format!("{:.1}%", s * 100.0)),
            m.burst_share_wall
                .map_or("-".to_owned(), |s| format!("{:.1}%", s * 100.0)),
            m.tokens_per_1000_records,
            m.tokens_per_1000_core_records,
            m.tokens
        ));
    }
    out
}

/// Peak RSS of one scenario's runs across scales: flat memory means the largest scale peaks
/// about where the smallest does.
#[derive(Debug, Serialize)]
pub struct MemoryFlatness {
    pub scenario: String,
    /// In the order run (`--unthrottled-scales`).
    pub points: Vec<MemoryPoint>,
    /// Peak RSS of the last scale over the first's.
    pub growth: f64,
}

#[derive(Debug, Serialize)]
pub struct MemoryPoint {
    pub scale: String,
    pub records: u64,
    pub peak_rss_mb: f64,
}

/// The memory-flatness view of the unthrottled runs, one entry per destination.
pub fn memory_flatness(measurements: &[Measurement]) -> Vec<MemoryFlatness> {
    let mut out: Vec<MemoryFlatness> = Vec::new();
    for m in measurements
        .iter()
        .filter(|m| m.scenario.starts_with("unthrottled"))
    {
        let point = MemoryPoint {
            scale: m.scale.clone(),
            records: m.records,
            peak_rss_mb: m.peak_rss_mb,
        };
        match out.iter_mut().find(|f| f.scenario == m.scenario) {
            Some(f) => f.points.push(point),
            None => out.push(MemoryFlatness {
                scenario: m.scenario.clone(),
                points: vec![point],
                growth: 1.0,
            }),
        }
    }
    for f in &mut out {
        if let (Some(first), Some(last)) = (f.points.first(), f.points.last()) {
            f.growth = last.peak_rss_mb / first.peak_rss_mb.max(f64::MIN_POSITIVE);
        }
    }
    out
}

pub fn render_memory(flatness: &[MemoryFlatness]) -> String {
    let mut out = String::new();
    for f in flatness.iter().filter(|f| f.points.len() > 1) {
        out.push_str(&format!(
            "memory flatness, {}: peak RSS {}; x{:.2} from the first scale to the last\n",
            f.scenario,
            f.points
                .iter()
                .map(|p| format!(
                    "{} ({} records) {:.0} MB",
                    p.scale, p.records, p.peak_rss_mb
                ))
                .collect::<Vec<_>>()
                .join(", "),
            f.growth
        ));
    }
    out
}

pub fn render_incremental(m: &IncrementalMeasurement) -> String {
    let mut out = format!(
        "incremental {}: {}% of each stream changed through the API over {} simulated s; full sync {} requests, incremental {} requests in {:.1} s\n",
        m.scale,
        m.change_percent,
        m.change_spread_seconds,
        m.full_sync_requests,
        m.requests,
        m.wall_seconds
    );
    out.push_str(&format!(
        "{:<15} {:>8} {:>8} {:>6} {:>8} {:>9} {:>10} {:>9} {:>9} {:>6}  {}\n",
        "stream",
        "changed",
        "loaded",
        "page",
        "minimum",
        "list req",
        "field req",
        "requests",
        "overhead",
        "ratio",
        "requests <= 1.1 x minimum + overhead"
    ));
    for s in &m.streams {
        out.push_str(&format!(
            "{:<15} {:>8} {:>8} {:>6} {:>8} {:>9} {:>10} {:>9} {:>9} {:>6.2}  {}\n",
            s.stream,
            s.changed,
            s.loaded,
            s.page_limit,
            s.minimum,
            s.list_requests,
            s.field_requests,
            s.requests,
            s.overhead,
            s.ratio,
            if s.within_target { "yes" } else { "NO" }
        ));
    }
    out
}

pub fn render_fanout(m: &FanoutMeasurement) -> String {
    let mut out = format!(
        "fan-out {}: {} deals ({:.1} s); then {} changed, {} more re-read in the lookback before the bookmark ({:.1} s)\n",
        m.scale,
        m.deals,
        m.full_wall_seconds,
        m.changed_deals,
        m.bookmark_deals,
        m.incremental_wall_seconds
    );
    out.push_str(&format!(
        "{:<18} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "child", "deals/req", "full req", "full min", "req/deal", "incr req", "incr min"
    ));
    for c in &m.children {
        out.push_str(&format!(
            "{:<18} {:>10} {:>9} {:>9} {:>9.3} {:>9} {:>9}\n",
            c.stream,
            c.deals_per_request,
            c.full_requests,
            c.full_minimum,
            c.full_requests as f64 / m.deals.max(1) as f64,
            c.incremental_requests,
            c.incremental_minimum
        ));
    }
    out
}

/// Everything one `bench` invocation measured, as its JSON file holds it.
#[derive(Debug, Serialize)]
pub struct Report {
    pub runs: Vec<Measurement>,
    pub memory_flatness: Vec<MemoryFlatness>,
    pub incremental: Option<IncrementalMeasurement>,
    pub fanout: Option<FanoutMeasurement>,
    pub follow: Vec<FollowMeasurement>,
    pub tokens: Option<TokensMeasurement>,
}

/// Every stream but those read one request per parent (deal flow, participants, followers,
/// mail messages, assignments): those cost a request per deal or thread whatever the client
/// does, so they would measure the plan's burst limit, not the sync.
pub fn default_streams() -> Vec<&'static str> {
    pipedrive_engine::CATALOG
        .iter()
        .filter(|s| {
            !matches!(
                s.fanout,
                pipedrive_engine::catalog::Fanout::PerParent { .. }
            )
        })
        .map(|s| s.name)
        .collect()
}

/// A scratch folder for benchmark databases.
pub fn work_dir() -> PathBuf {
    std::env::temp_dir().join(format!("pipedrive-sync-bench-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_peak_resident_set_is_read_from_proc_status() {
        let status = "Name:\tpipedrive-sync\nVmPeak:\t  900000 kB\nVmHWM:\t   52344 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(super::high_water_kb(status), Some(52_344));
        assert_eq!(super::high_water_kb("Name:\tx\n"), None);
        let own = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(super::high_water_kb(&own).is_some_and(|kb| kb > 0));
    }
}
