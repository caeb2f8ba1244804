//! The tools data teams already run, against the real binary: Meltano with MeltanoLabs'
//! `target-postgres` into PostgreSQL, and PyAirbyte into its local DuckDB cache. Each runs the
//! documented snippet (docs/integrations.md) as written, twice, with data changed in between through the simulator's
//! API. `.ci/run` installs the pinned tools (tests/clients/*.txt) into venvs in its cache.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use pipedrive_sim::{Plan, Scale};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Sim, run_binary, stderr, stdout};
use crate::sync_duckdb::STREAMS as STREAMS_LISTED;
use crate::sync_postgres::{Schema, URL};

/// A tool from a venv `.ci/run` builds: `var` when set, else `<cache>/<venv>/bin/<name>`.
/// Missing is a failure naming how to get it, never a skip.
pub fn tool(var: &str, venv: &str, name: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("PIPEDRIVE_SYNC_CACHE")
            .unwrap_or_else(|| "/var/tmp/pipedrive-sync-cache".into());
        Path::new(&cache).join(venv).join("bin").join(name)
    });
    assert!(
        path.exists(),
        "{} is missing ({var} unset or wrong): run .ci/run, which installs it from \
         tests/clients/{venv}.txt",
        path.display()
    );
    path
}

/// The fenced block right after `marker` in docs/integrations.md: what users copy is what runs
/// here.
fn documented_block(marker: &str) -> String {
    let page = include_str!("../../docs/integrations.md");
    let after = &page[page
        .find(marker)
        .unwrap_or_else(|| panic!("docs/integrations.md has no `{marker}`"))..];
    let start = after.find("```").expect("a fenced block after the marker");
    let body = &after[start..];
    let body = &body[body.find('\n').expect("fence line") + 1..];
    body[..body.find("```").expect("a closing fence")].to_owned()
}

/// A directory holding the names Meltano and PyAirbyte run, linked to the binary under test
/// (as docs/integrations.md tells users to link them), and a PATH that finds them first.
fn linked_names(dir: &Path) -> OsString {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["tap-pipedrive-sync", "source-pipedrive-sync"] {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_pipedrive-sync"), bin.join(name)).unwrap();
    }
    let mut path = OsString::from(bin);
    if let Some(rest) = std::env::var_os("PATH") {
        path.push(":");
        path.push(rest);
    }
    path
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what}: {}\n{}\n{}",
        output.status,
        tail(&stdout(output)),
        tail(&stderr(output))
    );
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// The columns and JSON Schema types `singer --discover` declares for `stream`.
fn declared(dir: &Path, config: &Path, stream: &str) -> BTreeMap<String, Value> {
    let output = run_binary(
        &["singer", "--config", config.to_str().unwrap(), "--discover"],
        &[],
        dir,
    );
    assert_success("discover", &output);
    let catalog: Value = serde_json::from_slice(&output.stdout).unwrap();
    let entry = catalog["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == stream)
        .unwrap_or_else(|| panic!("{stream} not discovered"));
    entry["schema"]["properties"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A scalar as comparable text: timestamps as UTC seconds, numbers as f64, dates and strings
/// as they are. `None` for null (and for nested values, compared elsewhere).
fn comparable(value: &Value) -> Option<String> {
    match value {
        Value::Null | Value::Array(_) | Value::Object(_) => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(format!("{:.6}", n.as_f64().unwrap())),
        Value::String(s) => Some(timestamp(s).unwrap_or_else(|| s.clone())),
    }
}

fn timestamp(text: &str) -> Option<String> {
    if NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok() {
        return None;
    }
    let parsed = DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").map(|t| t.and_utc())
        })
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc())
        })
        .or_else(|_| {
            DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%#z").map(|t| t.with_timezone(&Utc))
        })
        .or_else(|_| {
            DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z").map(|t| t.with_timezone(&Utc))
        })
        .ok()?;
    Some(parsed.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// Compares every built-in scalar field of the truth with the loaded row, value by value.
/// The truth is what the stream's list shows (deleted deals are listed, other deleted records
/// and archived ones are not).
fn assert_rows_equal_truth(stream: &str, truth: &[Value], rows: &[Value]) {
    let by_id: BTreeMap<String, &Value> = rows.iter().map(|r| (r["id"].to_string(), r)).collect();
    let listed = STREAMS_LISTED
        .iter()
        .find(|(name, _, _)| *name == stream)
        .map(|(_, _, listed)| *listed)
        .expect("a stream of sync_duckdb::STREAMS");
    let expected: Vec<&Value> = truth.iter().filter(|r| listed.includes(r)).collect();
    assert_eq!(
        by_id.keys().cloned().collect::<BTreeSet<_>>(),
        expected
            .iter()
            .map(|r| r["id"].to_string())
            .collect::<BTreeSet<_>>(),
        "{stream}: the ids loaded are the truth's"
    );
    let mut compared = 0;
    for record in expected {
        let row = by_id[&record["id"].to_string()];
        for (field, value) in record.as_object().unwrap() {
            let Some(want) = comparable(value) else {
                continue;
            };
            let Some(got) = row.get(field) else {
                continue;
            };
            assert_eq!(
                comparable(got).as_deref(),
                Some(want.as_str()),
                "{stream} {} {field}: loaded {got}, truth {value}",
                record["id"]
            );
            compared += 1;
        }
    }
    assert!(
        compared > rows.len() * 5,
        "{stream}: {compared} values compared"
    );
}

/// The loader `meltano add loader target-postgres` would add, as a custom plugin pointing at
/// the pinned install, so no run depends on Meltano Hub or an install step.
fn meltano_project(dir: &Path, schema: &str) {
    let loader = format!(
        "  loaders:\n    - name: target-postgres\n      namespace: target_postgres\n      executable: {}\n      config:\n        sqlalchemy_url: {}\n        default_target_schema: {schema}\n",
        tool(
            "PDS_TARGET_POSTGRES",
            "venv-target-postgres",
            "target-postgres"
        )
        .display(),
        URL.replace("postgres://", "postgresql+psycopg://"),
    );
    let yaml = format!(
        "default_environment: dev\nenvironments:\n  - name: dev\nsend_anonymous_usage_stats: false\n{}{loader}",
        documented_block("<!-- meltano.yml:")
    );
    std::fs::write(dir.join("meltano.yml"), yaml).unwrap();
}

fn meltano_run(dir: &Path, sim: &Sim, path: &OsString) -> Output {
    Command::new(tool("PDS_MELTANO", "venv-meltano", "meltano"))
        .args(["run", "tap-pipedrive-sync", "target-postgres"])
        .current_dir(dir)
        .env("PATH", path)
        .env("MELTANO_SEND_ANONYMOUS_USAGE_STATS", "false")
        .env("TAP_PIPEDRIVE_SYNC_API_TOKEN", &sim.handle.api_token)
        .env("TAP_PIPEDRIVE_SYNC_BASE_URL", &sim.handle.url)
        .env_remove("PIPEDRIVE_SYNC_LOG")
        .output()
        .expect("meltano runs")
}

/// PostgreSQL's type of each column of a loaded table.
async fn pg_columns(schema: &Schema, table: &str) -> BTreeMap<String, String> {
    schema
        .query_strings(&format!(
            "SELECT column_name || ' ' || data_type FROM information_schema.columns \
             WHERE table_schema = '{}' AND table_name = '{table}'",
            schema.name
        ))
        .await
        .into_iter()
        .map(|line| {
            let (name, ty) = line.split_once(' ').unwrap();
            (name.to_owned(), ty.to_owned())
        })
        .collect()
}

/// Whether a column's database type is what its JSON Schema declared.
fn type_matches(declared: &Value, database: &str) -> bool {
    let types: Vec<&str> = declared["type"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let database = database.to_lowercase();
    match (types.as_slice(), declared["format"].as_str()) {
        (_, Some("date-time")) => database.starts_with("timestamp"),
        (_, Some("date")) => database == "date",
        (t, _) if t.contains(&"integer") => database == "bigint" || database == "integer",
        (t, _) if t.contains(&"number") => {
            matches!(
                database.as_str(),
                "numeric" | "double precision" | "decimal"
            )
        }
        (t, _) if t.contains(&"boolean") => database == "boolean",
        (t, _) if t.contains(&"object") => database == "jsonb" || database == "json",
        (t, _) if t.contains(&"string") => {
            matches!(database.as_str(), "character varying" | "text")
        }
        _ => false,
    }
}

const STREAMS: [&str; 3] = ["deals", "persons", "organizations"];

#[tokio::test(flavor = "multi_thread")]
async fn meltano_runs_the_readme_tap_into_target_postgres_twice() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let schema = Schema::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = linked_names(dir.path());
    meltano_project(dir.path(), &schema.name);
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        json!({"api_token": sim.handle.api_token, "base_url": sim.handle.url}).to_string(),
    )
    .unwrap();

    let first = meltano_run(dir.path(), &sim, &path);
    assert_success("first meltano run", &first);
    for stream in STREAMS {
        let rows = schema.rows(stream, "id").await;
        assert_rows_equal_truth(stream, &sim.truth(stream).await, &rows);
        // Every declared column is a column of the table, of the declared type.
        let columns = pg_columns(&schema, stream).await;
        for (column, declared) in declared(dir.path(), &config, stream) {
            let database = columns
                .get(&column)
                .unwrap_or_else(|| panic!("{stream}.{column} not created: {columns:?}"));
            assert!(
                type_matches(&declared, database),
                "{stream}.{column}: declared {declared}, created {database}"
            );
        }
    }
    let deals_before = schema.count("deals").await;
    let deals_table = format!("\"{}\".\"deals\"", schema.name);
    let loaded_before = schema
        .query_strings(&format!(
            "SELECT max(_sdc_batched_at)::text FROM {deals_table}"
        ))
        .await;

    // One deal renamed and a custom field added in Pipedrive, with a value on that deal.
    let deal_id = sim.live_deal_ids().await[0];
    let field = sim
        .admin_call(
            Method::POST,
            "/__sim/custom_fields/deals",
            json!({"name": "Sales region", "field_type": "varchar"}),
        )
        .await;
    let key = field["key"]
        .as_str()
        .expect("the new field's key")
        .to_owned();
    sim.api(
        Method::PATCH,
        &format!("/api/v2/deals/{deal_id}"),
        Some(json!({"title": "Renamed through the API", "custom_fields": {key.clone(): "EMEA"}})),
    )
    .await;
    sim.reset_stats().await;

    let second = meltano_run(dir.path(), &sim, &path);
    assert_success("second meltano run", &second);
    assert_eq!(
        sim.requests_to("/api/v2/deals").await,
        1,
        "the second run reads deals from its bookmark: {}",
        sim.stats().await
    );
    for stream in STREAMS {
        let rows = schema.rows(stream, "id").await;
        assert_rows_equal_truth(stream, &sim.truth(stream).await, &rows);
    }
    let rows = schema.rows("deals", "id").await;
    let renamed = rows.iter().find(|r| r["id"] == json!(deal_id)).unwrap();
    assert_eq!(renamed["title"], "Renamed through the API");
    assert_eq!(renamed["sales_region"], "EMEA", "the new field's column");
    assert_eq!(schema.count("deals").await, deals_before);
    // Only what changed was sent again: the other rows keep their first load's batch time.
    let reloaded = schema
        .query_strings(&format!(
            "SELECT count(*)::text FROM {deals_table} WHERE _sdc_batched_at > '{}'",
            loaded_before[0]
        ))
        .await;
    let reloaded: i64 = reloaded[0].parse().unwrap();
    assert!(
        (1..deals_before / 2).contains(&reloaded),
        "{reloaded} of {deals_before} deals loaded again"
    );
    let text = format!("{}{}", stderr(&first), stderr(&second));
    assert!(!text.contains(&sim.handle.api_token), "the token leaked");
    schema.drop().await;
}

/// The documented PyAirbyte script (docs/integrations.md), run in `dir` with the simulator's credentials.
fn pyairbyte_run(dir: &Path, sim: &Sim, path: &OsString) -> Output {
    let script = dir.join("read.py");
    std::fs::write(&script, documented_block("<!-- pyairbyte:")).unwrap();
    Command::new(tool("PDS_PYAIRBYTE_PYTHON", "venv-pyairbyte", "python"))
        .arg(&script)
        .current_dir(dir)
        .env("PATH", path)
        .env("PIPEDRIVE_API_TOKEN", &sim.handle.api_token)
        .env("PIPEDRIVE_BASE_URL", &sim.handle.url)
        // No internet here: PyAirbyte would look the connector up in Airbyte's registry first.
        .env("AIRBYTE_OFFLINE_MODE", "1")
        .env("DO_NOT_TRACK", "1")
        .env_remove("PIPEDRIVE_SYNC_LOG")
        .output()
        .expect("the PyAirbyte script runs")
}

/// The one DuckDB file PyAirbyte's local cache wrote under `dir`.
fn cache_file(dir: &Path) -> PathBuf {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "duckdb") {
                found.push(path);
            }
        }
    }
    assert_eq!(found.len(), 1, "one DuckDB cache: {found:?}");
    found.remove(0)
}

/// DuckDB's type of each column of a cache table, and its rows as JSON.
fn cache_table(file: &Path, table: &str) -> (BTreeMap<String, String>, Vec<Value>) {
    let connection = duckdb::Connection::open(file).expect("the cache opens");
    let schema: String = connection
        .query_row(
            &format!(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = '{table}'"
            ),
            [],
            |row| row.get(0),
        )
        .unwrap_or_else(|e| panic!("no {table} in the cache: {e}"));
    let mut statement = connection
        .prepare(&format!(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_schema = '{schema}' AND table_name = '{table}'"
        ))
        .unwrap();
    let columns = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut statement = connection
        .prepare(&format!(
            "SELECT CAST(to_json(t) AS VARCHAR) FROM \"{schema}\".\"{table}\" t"
        ))
        .unwrap();
    let rows = statement
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(|json| serde_json::from_str(&json.unwrap()).unwrap())
        .collect();
    (columns, rows)
}

/// Whether DuckDB's column type is what the Airbyte JSON Schema declared.
fn duckdb_type_matches(declared: &Value, database: &str) -> bool {
    let types: Vec<&str> = declared["type"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match (types.as_slice(), declared["format"].as_str()) {
        // PyAirbyte's DuckDB cache keeps timestamps as UTC `TIMESTAMP`s.
        (_, Some("date-time")) => database.starts_with("TIMESTAMP"),
        (_, Some("date")) => database == "DATE",
        (t, _) if t.contains(&"integer") => database == "BIGINT",
        (t, _) if t.contains(&"number") => database == "DOUBLE" || database.starts_with("DECIMAL"),
        (t, _) if t.contains(&"boolean") => database == "BOOLEAN",
        (t, _) if t.contains(&"object") => database == "JSON",
        (t, _) if t.contains(&"string") => database == "VARCHAR",
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pyairbyte_reads_the_readme_source_twice_into_its_duckdb_cache() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let dir = tempfile::tempdir().unwrap();
    let path = linked_names(dir.path());
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        json!({"api_token": sim.handle.api_token, "base_url": sim.handle.url}).to_string(),
    )
    .unwrap();
    let discover = run_binary(
        &["airbyte", "discover", "--config", config.to_str().unwrap()],
        &[],
        dir.path(),
    );
    assert_success("discover", &discover);
    let catalog: Value = serde_json::from_slice(&discover.stdout).unwrap();

    let first = pyairbyte_run(dir.path(), &sim, &path);
    assert_success("first PyAirbyte read", &first);
    let said = format!("{}{}", stdout(&first), stderr(&first));
    assert!(
        !said.contains("Could not determine airbyte type"),
        "every column has a type PyAirbyte knows:\n{}",
        tail(&said)
    );
    let file = cache_file(dir.path());
    for stream in STREAMS {
        let (columns, rows) = cache_table(&file, stream);
        let declared = catalog["catalog"]["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == stream)
            .unwrap()["json_schema"]["properties"]
            .as_object()
            .unwrap()
            .clone();
        for (column, schema) in &declared {
            let database = columns
                .get(column)
                .unwrap_or_else(|| panic!("{stream}.{column} not in the cache: {columns:?}"));
            assert!(
                duckdb_type_matches(schema, database),
                "{stream}.{column}: declared {schema}, cached as {database}"
            );
        }
        assert_rows_equal_truth(stream, &sim.truth(stream).await, &rows);
    }
    let (_, deals_before) = cache_table(&file, "deals");

    let deal_id = sim.live_deal_ids().await[0];
    sim.retitle_deal(deal_id, "Renamed for PyAirbyte").await;

    let second = pyairbyte_run(dir.path(), &sim, &path);
    assert_success("second PyAirbyte read", &second);
    for stream in STREAMS {
        let (_, rows) = cache_table(&file, stream);
        assert_rows_equal_truth(stream, &sim.truth(stream).await, &rows);
    }
    let (_, deals_after) = cache_table(&file, "deals");
    assert_eq!(deals_after.len(), deals_before.len());
    let renamed = deals_after
        .iter()
        .find(|r| r["id"] == json!(deal_id))
        .unwrap();
    assert_eq!(renamed["title"], "Renamed for PyAirbyte");
    // Only what changed was read again: the other rows keep their first extraction time.
    let extracted = |row: &Value| row["_airbyte_extracted_at"].as_str().unwrap().to_owned();
    let first_read = deals_before.iter().map(extracted).max().unwrap();
    let reread = deals_after
        .iter()
        .filter(|r| extracted(r) > first_read)
        .count();
    assert!(
        (1..deals_after.len() / 2).contains(&reread),
        "{reread} of {} deals read again",
        deals_after.len()
    );
}
