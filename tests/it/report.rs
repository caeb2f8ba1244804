//! Run records and reports: every sync leaves a row in `_sync_runs` whose figures equal what
//! the simulator counted, and `pipedrive-sync report` renders them as an HTML page that headless
//! Chromium draws with every chart in place.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pipedrive_sim::{Plan, Scale};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{PgSchema, Sim, Workspace, assert_ok, instant, stderr};
use crate::sync_duckdb::{Listed, STREAMS};

const SOME_STREAMS: &str = "streams:\n  deals:\n  persons:\n  notes:\n  pipelines:\n  users:\n";

/// The streams whose requests go to their own endpoint only (no recents), with that path.
const OWN_PATHS: &[(&str, &str)] = &[
    ("deals", "/api/v2/deals"),
    ("persons", "/api/v2/persons"),
    ("notes", "/api/v1/notes"),
    ("pipelines", "/api/v2/pipelines"),
];

/// A run as read back from `_sync_runs`, times in microseconds since the epoch.
#[derive(Debug)]
struct Recorded {
    run_id: String,
    company: String,
    started_us: i64,
    finished_us: i64,
    status: String,
    error: Option<String>,
    records: i64,
    requests: i64,
    tokens: i64,
    responses_429: i64,
    burst_limit: Option<i64>,
    streams: Vec<Value>,
    timeline: Value,
}

impl Recorded {
    fn stream(&self, name: &str) -> &Value {
        self.streams
            .iter()
            .find(|s| s["stream"] == json!(name))
            .unwrap_or_else(|| panic!("no stream {name} in {:?}", self.streams))
    }

    fn timeline_sum(&self, key: &str) -> i64 {
        self.timeline[key]
            .as_array()
            .unwrap_or_else(|| panic!("timeline.{key}: {}", self.timeline))
            .iter()
            .map(|n| n.as_i64().expect("a count"))
            .sum()
    }
}

fn duckdb_runs(workspace: &Workspace) -> Vec<Recorded> {
    let connection = workspace.duckdb();
    let mut statement = connection
        .prepare(
            "SELECT run_id, company, epoch_us(started_at), epoch_us(finished_at), status, error, \
             records, requests, tokens, responses_429, burst_limit, CAST(streams AS VARCHAR), \
             CAST(timeline AS VARCHAR) FROM main._sync_runs ORDER BY started_at",
        )
        .expect("main._sync_runs exists");
    statement
        .query_map([], |r| {
            Ok(Recorded {
                run_id: r.get(0)?,
                company: r.get(1)?,
                started_us: r.get(2)?,
                finished_us: r.get(3)?,
                status: r.get(4)?,
                error: r.get(5)?,
                records: r.get(6)?,
                requests: r.get(7)?,
                tokens: r.get(8)?,
                responses_429: r.get(9)?,
                burst_limit: r.get(10)?,
                streams: serde_json::from_str(&r.get::<_, String>(11)?).expect("streams JSON"),
                timeline: serde_json::from_str(&r.get::<_, String>(12)?).expect("timeline JSON"),
            })
        })
        .expect("runs")
        .map(|r| r.expect("run row"))
        .collect()
}

/// The burst limit the simulator announces to this token, from a request of our own.
async fn announced_burst_limit(sim: &Sim) -> i64 {
    let response = reqwest::Client::new()
        .get(sim.url("/api/v1/users/me"))
        .header("x-api-token", &sim.handle.api_token)
        .send()
        .await
        .expect("users/me");
    response.headers()["x-ratelimit-limit"]
        .to_str()
        .unwrap()
        .parse()
        .expect("x-ratelimit-limit is a number")
}

fn count(value: &Value) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("not a count: {value}"))
}

/// The run's totals equal the simulator's own counts since its last reset, and its timeline
/// adds up to them.
fn assert_totals(run: &Recorded, stats: &Value) {
    assert_eq!(run.requests, count(&stats["requests"]), "requests; {stats}");
    assert_eq!(run.tokens, count(&stats["tokens_spent"]), "tokens; {stats}");
    assert_eq!(
        run.responses_429,
        count(&stats["responses_429"]),
        "429s; {stats}"
    );
    assert_eq!(
        run.timeline_sum("requests"),
        run.requests,
        "{:?}",
        run.timeline
    );
    assert_eq!(run.timeline_sum("responses_429"), run.responses_429);
    let seconds = (run.finished_us - run.started_us) as f64 / 1e6;
    let timeline_len = run.timeline["requests"].as_array().unwrap().len() as f64;
    assert!(
        timeline_len <= seconds.ceil() + 1.0,
        "{timeline_len} seconds in the timeline of a {seconds} s run"
    );
    assert!(run.started_us < run.finished_us, "{run:?}");
    let streams_records: i64 = run.streams.iter().map(|s| count(&s["records"])).sum();
    assert_eq!(run.records, streams_records);
}

/// Per stream reading only its own endpoint: requests, tokens and 429s equal the
/// simulator's figures for that path.
fn assert_per_path(run: &Recorded, stats: &Value) {
    for (stream, path) in OWN_PATHS {
        let recorded = run.stream(stream);
        let seen = &stats["paths"][path];
        assert_eq!(
            count(&recorded["responses_429"]),
            seen["responses_429"].as_i64().unwrap_or(0),
            "{stream} 429s; {stats}"
        );
        // Requests that got a 429 are retried: the stream counts the pages it read.
        assert_eq!(
            count(&recorded["requests"]),
            seen["requests"].as_i64().unwrap_or(0) - seen["responses_429"].as_i64().unwrap_or(0),
            "{stream} requests; {stats}"
        );
        assert_eq!(
            count(&recorded["tokens"]),
            seen["tokens_spent"].as_i64().unwrap_or(0),
            "{stream} tokens; {stats}"
        );
        assert_eq!(recorded["outcome"], json!("complete"), "{recorded}");
        assert_eq!(recorded["error"], Value::Null);
    }
}

/// Records, requests and tokens on the `total` line of the summary a sync prints.
fn summary_total(output: &Output) -> (i64, i64, i64) {
    let text = stderr(output);
    let line = text
        .lines()
        .find(|l| l.starts_with("total "))
        .unwrap_or_else(|| panic!("no total line in:\n{text}"));
    let numbers: Vec<i64> = line
        .split_whitespace()
        .skip(1)
        .take(3)
        .map(|n| {
            n.parse()
                .unwrap_or_else(|_| panic!("not a number in {line}"))
        })
        .collect();
    (numbers[0], numbers[1], numbers[2])
}

/// Records listed by the stream's endpoint changed at or after `since` (whole seconds).
async fn changed_since(sim: &Sim, stream: &str, since: i64) -> i64 {
    let (_, _, listed) = STREAMS.iter().find(|(s, ..)| *s == stream).unwrap();
    let listed: Listed = *listed;
    sim.truth(stream)
        .await
        .iter()
        .filter(|r| listed.includes(r))
        .filter(|r| {
            r["update_time"]
                .as_str()
                .and_then(instant)
                .is_some_and(|t| t >= since)
        })
        .count() as i64
}

#[tokio::test(flavor = "multi_thread")]
async fn each_sync_records_its_run_with_the_simulators_figures_in_duckdb() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let burst_limit = announced_burst_limit(&sim).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, SOME_STREAMS);

    sim.reset_stats().await;
    let first_output = workspace.sync(&sim, &[]);
    assert_ok(&first_output);
    let first_stats = sim.stats().await;
    let first_tables: Vec<(String, i64)> = ["deals", "persons", "notes", "pipelines", "users"]
        .iter()
        .map(|s| ((*s).to_owned(), workspace.count(&format!("main.{s}"))))
        .collect();
    let bookmarks: Value = serde_json::from_str(
        &workspace
            .duckdb()
            .query_row(
                "SELECT CAST(json_group_object(stream, state) AS VARCHAR) FROM main._pipedrive_sync_state",
                [],
                |r| r.get::<_, String>(0),
            )
            .unwrap(),
    )
    .unwrap();

    // Changes for the incremental run to pick up.
    let deal = sim.truth("deals").await[0]["id"].as_i64().unwrap();
    sim.api(
        Method::PATCH,
        &format!("/api/v2/deals/{deal}"),
        Some(json!({"title": "Changed for the second run"})),
    )
    .await;
    sim.reset_stats().await;
    let second_output = workspace.sync(&sim, &[]);
    assert_ok(&second_output);
    let second_stats = sim.stats().await;

    let runs = duckdb_runs(&workspace);
    assert_eq!(runs.len(), 2, "{runs:?}");
    let (first, second) = (&runs[0], &runs[1]);
    assert_ne!(first.run_id, second.run_id);
    assert!(!first.company.is_empty());
    assert_eq!(first.company, second.company);
    assert!(
        second.started_us >= first.finished_us,
        "the second run started before the first ended: {runs:?}"
    );
    for (run, stats, output) in [
        (first, &first_stats, &first_output),
        (second, &second_stats, &second_output),
    ] {
        // The summary printed at the end says what the run record says.
        assert_eq!(
            summary_total(output),
            (run.records, run.requests, run.tokens),
            "{}",
            stderr(output)
        );
        assert_eq!(run.status, "succeeded", "{run:?}");
        assert_eq!(run.error, None);
        assert_eq!(run.burst_limit, Some(burst_limit));
        assert_totals(run, stats);
        assert_per_path(run, stats);
        let names: Vec<&str> = run
            .streams
            .iter()
            .map(|s| s["stream"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["deals", "persons", "pipelines", "notes", "users"]);
    }
    // First run: everything, once.
    for (stream, rows) in &first_tables {
        assert_eq!(count(&first.stream(stream)["records"]), *rows, "{stream}");
    }
    // Second run: the full-refresh stream in full, incremental ones what changed since their
    // bookmark less the lookback (that window is read again).
    assert_eq!(
        count(&second.stream("pipelines")["records"]),
        workspace.count("main.pipelines")
    );
    let lookback = pipedrive_config::DEFAULT_LOOKBACK.as_secs() as i64;
    for stream in ["deals", "persons", "notes"] {
        let bookmark = bookmarks[stream]["bookmark"]
            .as_str()
            .and_then(instant)
            .unwrap_or_else(|| panic!("{stream} has a bookmark: {bookmarks}"));
        assert_eq!(
            count(&second.stream(stream)["records"]),
            changed_since(&sim, stream, bookmark - lookback).await,
            "{stream} since {bookmark}"
        );
    }
    assert!(count(&second.stream("deals")["records"]) >= 1);
}

/// A simulator answering some requests with 429: the run records them, overall, per second
/// and per stream, as the simulator counted them.
async fn throttled_sync(sim: &Sim, workspace: &Workspace) -> Recorded {
    workspace.write_config(sim, SOME_STREAMS);
    sim.set_faults(json!({"rate_429_no_headers": 0.2})).await;
    sim.reset_stats().await;
    assert_ok(&workspace.sync(sim, &[]));
    let stats = sim.stats().await;
    sim.set_faults(json!({})).await;
    let run = duckdb_runs(workspace).pop().expect("a run");
    assert!(run.responses_429 > 0, "no 429 was answered: {stats}");
    assert_totals(&run, &stats);
    assert_per_path(&run, &stats);
    assert_eq!(run.status, "succeeded", "{run:?}");
    run
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_run_records_its_429s() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    let run = throttled_sync(&sim, &workspace).await;
    let marked: i64 = run.streams.iter().map(|s| count(&s["responses_429"])).sum();
    assert!(marked > 0, "no stream was charged a 429: {:?}", run.streams);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_is_recorded_with_its_error() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, SOME_STREAMS);
    assert_ok(&workspace.sync(&sim, &[]));
    let output = crate::support::run_binary(
        &[
            "sync",
            "--config",
            workspace.config_path().to_str().unwrap(),
        ],
        &[("PDS_TEST_TOKEN", "0000invalid0000token0000")],
        workspace.dir.path(),
    );
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let runs = duckdb_runs(&workspace);
    assert_eq!(runs.len(), 2);
    let failed = &runs[1];
    assert_eq!(failed.status, "failed");
    let error = failed.error.as_deref().expect("the failure's message");
    assert!(error.contains("HTTP 401"), "{error}");
    // The first stream to meet the bad token fails; the others stop after it.
    assert!(
        failed
            .streams
            .iter()
            .any(|s| s["outcome"] == json!("failed"))
    );
    assert!(
        failed
            .streams
            .iter()
            .all(|s| s["outcome"] != json!("complete"))
    );
    assert_eq!(failed.records, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_keeps_run_records_in_the_state_schema() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let schema = PgSchema::new("runs").await;
    let workspace = Workspace::new();
    std::fs::write(
        workspace.config_path(),
        format!(
            "source:\n  api_token: ${{PDS_TEST_TOKEN}}\n  base_url: {}\n{}{SOME_STREAMS}",
            sim.handle.url,
            schema.target()
        ),
    )
    .unwrap();
    let mut stats = Vec::new();
    for _ in 0..2 {
        sim.reset_stats().await;
        assert_ok(&workspace.sync(&sim, &[]));
        stats.push(sim.stats().await);
    }
    let rows = schema.rows("_sync_runs", "started_at").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (row, stats) in rows.iter().zip(&stats) {
        assert_eq!(row["status"], json!("succeeded"), "{row}");
        assert_eq!(row["requests"], stats["requests"], "{row} {stats}");
        assert_eq!(row["tokens"], stats["tokens_spent"]);
        assert_eq!(row["responses_429"], stats["responses_429"]);
        assert!(
            time(&row["started_at"]) < time(&row["finished_at"]),
            "{row}"
        );
        let timeline: i64 = row["timeline"]["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(count)
            .sum();
        assert_eq!(json!(timeline), stats["requests"]);
    }
    for stream in ["deals", "persons", "pipelines"] {
        let first = rows[0]["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stream"] == json!(stream))
            .unwrap_or_else(|| panic!("{stream} in {}", rows[0]));
        assert_eq!(
            json!(schema.rows(stream, "id").await.len()),
            first["records"],
            "{stream}"
        );
    }
    assert!(time(&rows[0]["finished_at"]) <= time(&rows[1]["started_at"]));

    // The report reads them back through the same destination.
    let html = workspace.dir.path().join("report.html");
    assert_ok(&workspace.run(
        &sim,
        &[
            "report",
            "--config",
            workspace.config_path().to_str().unwrap(),
            "--output",
            html.to_str().unwrap(),
        ],
    ));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("data-stream=\"persons\""));
    schema.drop().await;
}

/// A timestamp as PostgreSQL's `row_to_json` renders it.
fn time(value: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{value}: {e}"))
}

/// Chromium: `PDS_CHROMIUM`, else Debian's `/usr/bin/chromium`. Missing is a failure, not a
/// skip: the report's rendering would go unchecked.
fn chromium() -> PathBuf {
    let path = std::env::var_os("PDS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "Chromium is needed to check the HTML report and was not found at {}: install it \
         (`apt-get install chromium`; .ci/run does) or point PDS_CHROMIUM at its binary",
        path.display()
    );
    path
}

/// Runs headless Chromium on `page` with `args`, killing it after two minutes.
fn headless(page: &Path, profile: &Path, args: &[String]) -> Output {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    while child.try_wait().expect("chromium runs").is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish within two minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("chromium output")
}

/// The value of the first `name="..."` attribute in `html`.
fn attribute<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    let start = html.find(&format!("{name}=\""))? + name.len() + 2;
    let end = html[start..].find('"')?;
    Some(&html[start..start + end])
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_renders_in_headless_chromium() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, SOME_STREAMS);
    assert_ok(&workspace.sync(&sim, &[]));
    let latest = throttled_sync(&sim, &workspace).await;

    let html = workspace.dir.path().join("report.html");
    let output = workspace.run(
        &sim,
        &[
            "report",
            "--config",
            workspace.config_path().to_str().unwrap(),
            "--output",
            html.to_str().unwrap(),
            "--runs",
            "5",
        ],
    );
    assert_ok(&output);
    let page = std::fs::read_to_string(&html).expect("the report");
    for external in ["http://", "https://", "src=", "<link"] {
        assert!(!page.contains(external), "the page loads {external}");
    }

    let profile = tempfile::tempdir().unwrap();
    let dom = headless(
        &html,
        profile.path(),
        &[
            "--virtual-time-budget=10000".to_owned(),
            "--dump-dom".to_owned(),
        ],
    );
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    let body = &dom_text[dom_text.find("<body").expect("a body in the DOM")..];
    assert_eq!(
        attribute(body, "data-rendered"),
        Some("ok"),
        "the page's own check; chromium said: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    for stream in &latest.streams {
        let name = stream["stream"].as_str().unwrap();
        assert!(
            body.contains(&format!("data-stream=\"{name}\"")),
            "no bar for {name}"
        );
        assert!(
            body.contains(&format!("<td>{name}</td>")),
            "no row for {name}"
        );
    }
    assert!(body.contains("class=\"ceiling\""), "no burst ceiling");
    assert!(body.contains("class=\"r429\""), "no 429 mark");
    // Both runs are listed, newest first.
    assert_eq!(body.matches("<td class=\"status succeeded\">").count(), 2);

    let shot = workspace.dir.path().join("report.png");
    let (width, height) = (1000u32, 1600u32);
    let screenshot = headless(
        &html,
        profile.path(),
        &[
            format!("--screenshot={}", shot.display()),
            format!("--window-size={width},{height}"),
            "--virtual-time-budget=10000".to_owned(),
        ],
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&screenshot.stderr)
        )
    });
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let dimension = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((dimension(16), dimension(20)), (width, height));
    // A blank page of that size compresses to a few kilobytes; charts, text and tables do not.
    assert!(png.len() > 30_000, "a {} byte screenshot", png.len());
}
