//! Crash safety: `sync` is SIGKILLed at seeded random instants (while paging, loading or
//! writing state), restarted, and the destination finally compared with a clean run's: no row
//! lost, none duplicated, state never ahead of the data. `PDS_CRASH_POINTS` sets the number of
//! kills (default 5; docs/architecture.md documents a 20-point run).

use std::collections::BTreeSet;
use std::time::Duration;

use pipedrive_sim::{Plan, Scale, SimOptions};
use serde_json::Value;

use crate::support::{Sim, Workspace, assert_ok, stderr};

const STREAMS: &str = "streams:\n  deals:\n  deal_products:\n  persons:\n  person_emails:\n  notes:\n  leads:\n  activities:\n  pipelines: {mode: full-refresh}\n  organizations: {mode: full-refresh}\n";
const TABLES: &[(&str, &str)] = &[
    ("deals", "id"),
    ("deal_products", "id"),
    ("persons", "id"),
    ("person_emails", "person_id, position"),
    ("notes", "id"),
    ("leads", "id"),
    ("activities", "id"),
    ("pipelines", "id"),
    ("organizations", "id"),
];

fn kill_points() -> usize {
    std::env::var("PDS_CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// A small deterministic generator, so a failing kill schedule can be replayed.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Every row of the table without `_synced_at`, as sorted JSON text.
fn snapshot(workspace: &Workspace, table: &str, order: &str) -> Vec<String> {
    workspace
        .rows(&format!("main.{table}"), order)
        .into_iter()
        .map(|mut row| {
            row.as_object_mut().unwrap().remove("_synced_at");
            row.to_string()
        })
        .collect()
}

/// Starts `sync` and SIGKILLs it after a seeded random delay, `kill_points()` times, calling
/// `after_each` between runs. Returns how many runs were killed before they finished. Delays
/// stay under half a clean run's duration: a run that finished unkilled leaves only incremental
/// runs after it, so a delay near the full duration could let every kill miss on a fast day.
async fn kill_repeatedly(
    sim: &Sim,
    workspace: &Workspace,
    clean_ms: u64,
    seed: u64,
    after_each: impl Fn(),
) -> usize {
    let mut rng = Lcg(seed);
    let config = workspace.config_path();
    let mut kills = 0;
    for _ in 0..kill_points() {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pipedrive-sync"))
            .args(["sync", "--config", config.to_str().unwrap()])
            .env("PDS_TEST_TOKEN", &sim.handle.api_token)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(
            20 + rng.below((clean_ms / 2).max(50)),
        ))
        .await;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        after_each();
    }
    kills
}

async fn slow_sim() -> Sim {
    Sim::start_with(SimOptions {
        scale: Scale::Small,
        plan: Plan::Unlimited,
        latency_ms: 4,
        ..SimOptions::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_syncs_resume_to_the_same_data_as_a_clean_run() {
    let sim = slow_sim().await;
    let clean = Workspace::new();
    clean.write_config(&sim, STREAMS);
    let started = std::time::Instant::now();
    assert_ok(&clean.sync(&sim, &[]));
    let clean_ms = started.elapsed().as_millis() as u64;

    let crashed = Workspace::new();
    crashed.write_config(&sim, STREAMS);
    // A killed run never leaves state ahead of its rows.
    let kills = kill_repeatedly(&sim, &crashed, clean_ms, 0x5eed, || {
        assert_state_not_ahead(&crashed)
    })
    .await;
    assert!(
        kills > 0,
        "no run was killed mid-way; the schedule is too slow for this machine"
    );
    let last = crashed.sync(&sim, &[]);
    assert_ok(&last);

    for (table, order) in TABLES {
        let expected = snapshot(&clean, table, order);
        let actual = snapshot(&crashed, table, order);
        assert_eq!(
            actual.len(),
            expected.len(),
            "{table}: row count after {kills} kills\n{}",
            stderr(&last)
        );
        assert_eq!(
            actual.iter().collect::<BTreeSet<_>>().len(),
            actual.len(),
            "{table}: duplicates"
        );
        assert_eq!(actual, expected, "{table}: rows differ from the clean run");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_refresh_killed_part_way_leaves_the_previous_table_unchanged() {
    let sim = slow_sim().await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams:\n  persons:\n  deals:\n");
    assert_ok(&workspace.sync(&sim, &[]));
    let before = snapshot(&workspace, "persons", "id");
    let started = std::time::Instant::now();
    assert_ok(&workspace.sync(&sim, &["--full-refresh", "persons"]));
    let reload_ms = started.elapsed().as_millis() as u64;

    let mut rng = Lcg(0xf0115);
    let config = workspace.config_path();
    let mut kills = 0;
    for _ in 0..kill_points() {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pipedrive-sync"))
            .args([
                "sync",
                "--config",
                config.to_str().unwrap(),
                "--full-refresh",
                "persons",
            ])
            .env("PDS_TEST_TOKEN", &sim.handle.api_token)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20 + rng.below(reload_ms.max(100)))).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        // Nothing changed in Pipedrive, so a finished reload equals the old table too; a killed
        // one must not have touched it.
        assert_eq!(snapshot(&workspace, "persons", "id"), before);
    }
    assert!(kills > 0, "no reload was killed mid-way");
    assert_ok(&workspace.sync(&sim, &["--full-refresh", "persons"]));
    assert_eq!(snapshot(&workspace, "persons", "id"), before);
}

/// Each incremental stream's bookmark is no newer than the newest `update_time` in its table.
fn assert_state_not_ahead(workspace: &Workspace) {
    if !workspace.db_path().exists() {
        return;
    }
    let connection = workspace.duckdb();
    let Ok(mut statement) =
        connection.prepare("SELECT stream, CAST(state AS VARCHAR) FROM main._pipedrive_sync_state")
    else {
        return;
    };
    let states: Vec<(String, String)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (stream, state) in states {
        let state: Value = serde_json::from_str(&state).unwrap();
        let Some(bookmark) = state["bookmark"].as_str() else {
            continue;
        };
        if !["deals", "persons", "notes", "leads", "activities"].contains(&stream.as_str()) {
            continue;
        }
        let newest: Option<String> = connection
            .query_row(
                &format!("SELECT strftime(CAST(max(update_time) AS TIMESTAMP), '%Y-%m-%dT%H:%M:%SZ') FROM main.{stream}"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        let newest = newest.unwrap_or_default();
        assert!(
            bookmark <= newest.as_str(),
            "{stream}: state bookmark {bookmark} is ahead of the newest row {newest}"
        );
    }
}

/// Every row of a PostgreSQL table without `_synced_at`, as sorted JSON text.
async fn pg_snapshot(
    client: &tokio_postgres::Client,
    schema: &str,
    table: &str,
    order: &str,
) -> Vec<String> {
    let order: Vec<String> = order.split(", ").map(|k| format!("\"{k}\"")).collect();
    let sql = format!(
        "SELECT (to_jsonb(t) - '_synced_at')::text FROM \"{schema}\".\"{table}\" t ORDER BY {}",
        order.join(", ")
    );
    client
        .query(&sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_syncs_into_postgres_resume_to_the_same_data_as_a_clean_run() {
    const URL: &str = "postgres://postgres@127.0.0.1:5432/test";
    let (client, connection) = tokio_postgres::connect(URL, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let suffix = std::process::id();
    let (clean_schema, crashed_schema) = (
        format!("pds_crash_clean_{suffix}"),
        format!("pds_crash_killed_{suffix}"),
    );
    let sim = slow_sim().await;
    let config = |workspace: &Workspace, schema: &str| {
        let yaml = format!(
            "source:\n  api_token: ${{PDS_TEST_TOKEN}}\n  base_url: {}\ntarget:\n  type: postgres\n  url: {URL}\n  schema: {schema}\n{STREAMS}",
            sim.handle.url
        );
        std::fs::write(workspace.config_path(), yaml).unwrap();
    };
    let clean = Workspace::new();
    config(&clean, &clean_schema);
    let started = std::time::Instant::now();
    assert_ok(&clean.sync(&sim, &[]));
    let clean_ms = started.elapsed().as_millis() as u64;

    let crashed = Workspace::new();
    config(&crashed, &crashed_schema);
    let kills = kill_repeatedly(&sim, &crashed, clean_ms, 0xdead, || {}).await;
    assert!(kills > 0, "no run was killed mid-way");
    // The killed runs' sessions (and their writer locks) end with their connections.
    let mut last = crashed.sync(&sim, &[]);
    for _ in 0..20 {
        if last.status.code() != Some(4) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        last = crashed.sync(&sim, &[]);
    }
    assert_ok(&last);
    for (table, order) in TABLES {
        let expected = pg_snapshot(&client, &clean_schema, table, order).await;
        let actual = pg_snapshot(&client, &crashed_schema, table, order).await;
        assert_eq!(
            actual.len(),
            expected.len(),
            "{table}: row count after {kills} kills"
        );
        assert_eq!(actual, expected, "{table}: rows differ from the clean run");
    }
    for schema in [clean_schema, crashed_schema] {
        let _ = client
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await;
    }
}
