//! `pipedrive-sync bench`: runs the simulator in this process and `pipedrive-sync sync` as a
//! child process (so its CPU time and peak memory are its own), then reports what matters
//! against Pipedrive's limits: request rate versus the burst ceiling, 429s, tokens per 1,000
//! records, and unthrottled records/s with peak RSS.

use std::path::{Path, PathBuf};
use std::time::Instant;

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
    pub peak_rss_mb: f64,
    pub records_per_second: f64,
    /// Requests per second as a share of the plan's burst ceiling (limit / 2 s).
    pub burst_share: Option<f64>,
    pub tokens_per_1000_core_records: f64,
    pub tokens_per_1000_records: f64,
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

/// Runs one scenario in a scratch directory under `work`.
pub async fn measure(scenario: &Scenario, work: &Path) -> anyhow::Result<Measurement> {
    let dir = work.join(format!(
        "{}-{}-{}",
        scenario.name, scenario.scale, scenario.plan
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let sim = pipedrive_sim::start(
        SimOptions {
            scale: scenario.scale,
            plan: scenario.plan,
            latency_ms: scenario.latency_ms,
            jitter_ms: scenario.jitter_ms,
            ..SimOptions::default()
        },
        0,
    )
    .await?;
    let burst_limit = reqwest::Client::new()
        .get(format!("{}/api/v1/users/me", sim.url))
        .header("x-api-token", &sim.api_token)
        .send()
        .await?
        .headers()
        .get("x-ratelimit-limit")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok());
    let http = reqwest::Client::new();
    http.post(format!("{}/__sim/stats/reset", sim.url))
        .send()
        .await?;

    let db = dir.join("bench.duckdb");
    let config = dir.join("bench.yaml");
    let pg_schema = format!("pds_bench_{}", std::process::id());
    let target = match &scenario.target {
        BenchTarget::DuckDb => format!("  path: {}\n", db.display()),
        BenchTarget::Postgres(url) => {
            format!("  type: postgres\n  url: {url}\n  schema: {pg_schema}\n")
        }
        BenchTarget::Parquet => {
            format!("  type: parquet\n  path: {}\n", dir.join("files").display())
        }
    };
    std::fs::write(
        &config,
        format!(
            "source:\n  api_token: ${{PDS_BENCH_TOKEN}}\n  base_url: {}\ntarget:\n{target}concurrency: {}\nstreams:\n{}",
            sim.url,
            scenario.concurrency,
            scenario
                .streams
                .iter()
                .map(|s| format!("  {s}:\n"))
                .collect::<String>()
        ),
    )?;
    let log = dir.join("sync.log");
    let started = Instant::now();
    let child = std::process::Command::new(std::env::current_exe()?)
        .args(["sync", "--config"])
        .arg(&config)
        .env("PDS_BENCH_TOKEN", &sim.api_token)
        .env_remove("PIPEDRIVE_SYNC_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let (success, usage) =
        tokio::task::spawn_blocking(move || wait_with_usage(child.id())).await??;
    let wall_seconds = started.elapsed().as_secs_f64();
    if !success {
        anyhow::bail!(
            "the benchmarked sync failed:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let stats: Value = http
        .get(format!("{}/__sim/stats", sim.url))
        .send()
        .await?
        .json()
        .await?;
    sim.shutdown().await;

    let counts = match &scenario.target {
        BenchTarget::DuckDb => table_counts(&db)?,
        BenchTarget::Postgres(url) => postgres_counts(url, &pg_schema).await?,
        BenchTarget::Parquet => parquet_counts(&dir.join("files"))?,
    };
    let records: u64 = counts.iter().map(|(_, n)| n).sum();
    let core_records: u64 = counts
        .iter()
        .filter(|(name, _)| CORE.iter().any(|(core, _)| core == name))
        .map(|(_, n)| n)
        .sum();
    let number = |v: &Value| v.as_u64().unwrap_or(0);
    let requests = number(&stats["requests"]);
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
    let _ = std::fs::remove_dir_all(&dir);
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
        peak_rss_mb: usage.max_rss_kb as f64 / 1024.0,
        records_per_second: records as f64 / wall_seconds,
        burst_share: burst_limit
            .filter(|_| scenario.plan != Plan::Unlimited)
            .map(|limit| requests as f64 / wall_seconds / (limit / 2.0)),
        tokens_per_1000_core_records: per_thousand(core_tokens, core_records),
        tokens_per_1000_records: per_thousand(tokens, records),
    })
}

struct Usage {
    cpu_seconds: f64,
    max_rss_kb: i64,
}

/// Waits for one child and returns whether it succeeded with its own CPU time and peak RSS
/// (`wait4` reports them per process, unlike `getrusage(RUSAGE_CHILDREN)`).
fn wait_with_usage(pid: u32) -> std::io::Result<(bool, Usage)> {
    let mut status = 0;
    // SAFETY: wait4 writes into the status and zeroed rusage we own; `pid` is our own child,
    // which std has not reaped because we never call `wait` on its handle.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let success = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Ok((
        success,
        Usage {
            cpu_seconds: seconds(usage.ru_utime) + seconds(usage.ru_stime),
            max_rss_kb: usage.ru_maxrss,
        },
    ))
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
    client
        .batch_execute(&format!("DROP SCHEMA {quoted_schema} CASCADE"))
        .await?;
    Ok(counts)
}

#[cfg(not(feature = "duckdb"))]
fn table_counts(_db: &Path) -> anyhow::Result<Vec<(String, u64)>> {
    anyhow::bail!("bench needs the DuckDB destination: rebuild with the default features")
}

/// The table the command prints.
pub fn render(measurements: &[Measurement]) -> String {
    let mut out = format!(
        "{:<22} {:<7} {:<10} {:>9} {:>8} {:>6} {:>8} {:>9} {:>8} {:>8} {:>10} {:>7} {:>12} {:>10}\n",
        "scenario",
        "scale",
        "plan",
        "records",
        "requests",
        "429s",
        "wall s",
        "cpu s",
        "rss MB",
        "rec/s",
        "burst use",
        "tok/1k",
        "tok/1k core",
        "tokens"
    );
    for m in measurements {
        out.push_str(&format!(
            "{:<22} {:<7} {:<10} {:>9} {:>8} {:>6} {:>8.1} {:>9.1} {:>8.1} {:>8.0} {:>10} {:>7.1} {:>12.1} {:>10}\n",
            m.scenario,
            m.scale,
            m.plan,
            m.records,
            m.requests,
            m.responses_429,
            m.wall_seconds,
            m.cpu_seconds,
            m.peak_rss_mb,
            m.records_per_second,
            m.burst_share.map_or("-".to_owned(), |s| format!("{:.1}%", s * 100.0)),
            m.tokens_per_1000_records,
            m.tokens_per_1000_core_records,
            m.tokens
        ));
    }
    out
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
