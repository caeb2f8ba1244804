//! Test harness: a simulator per test, the real binary as a subprocess, and DuckDB read back
//! as JSON for comparison with the simulator's ground truth.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use pipedrive_sim::{Plan, Scale, SimHandle, SimOptions};
use serde_json::{Value, json};

pub struct Sim {
    pub handle: SimHandle,
    http: reqwest::Client,
}

impl Sim {
    pub async fn start(scale: Scale, plan: Plan) -> Sim {
        Sim::start_with(SimOptions {
            scale,
            plan,
            ..SimOptions::default()
        })
        .await
    }

    pub async fn start_with(options: SimOptions) -> Sim {
        let handle = pipedrive_sim::start(options, 0)
            .await
            .expect("simulator starts");
        Sim {
            handle,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.url)
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin call");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    /// A call to the simulator's admin API (custom fields, clock, archive...).
    pub async fn admin_call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        self.admin(method, path, Some(body)).await
    }

    /// Every record of an entity, deleted and archived ones included, as the API renders it.
    pub async fn truth(&self, entity: &str) -> Vec<Value> {
        let body = self
            .admin(
                reqwest::Method::GET,
                &format!("/__sim/truth/{entity}"),
                None,
            )
            .await;
        body["records"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("no truth for {entity}: {body}"))
    }

    /// A read of the simulator's admin API (`/__sim/...`).
    pub async fn admin_get(&self, path: &str) -> Value {
        self.admin(reqwest::Method::GET, path, None).await
    }

    pub async fn stats(&self) -> Value {
        self.admin(reqwest::Method::GET, "/__sim/stats", None).await
    }

    pub async fn reset_stats(&self) {
        self.admin(reqwest::Method::POST, "/__sim/stats/reset", None)
            .await;
    }

    pub async fn set_faults(&self, faults: Value) {
        self.admin(reqwest::Method::POST, "/__sim/faults", Some(faults))
            .await;
    }

    /// Requests made to one API path since the last stats reset.
    pub async fn requests_to(&self, path: &str) -> u64 {
        self.stats().await["paths"][path]["requests"]
            .as_u64()
            .unwrap_or(0)
    }

    /// A call to the Pipedrive API itself, the way a user's tool would make it.
    pub async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("x-api-token", &self.handle.api_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("API call");
        let status = response.status();
        let body: Value = response.json().await.expect("JSON body");
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// Ids of deals the deals list shows (neither deleted nor archived), in the truth's order.
    pub async fn live_deal_ids(&self) -> Vec<i64> {
        self.truth("deals")
            .await
            .iter()
            .filter(|d| d["is_archived"] != json!(true) && d["is_deleted"] != json!(true))
            .filter_map(|d| d["id"].as_i64())
            .collect()
    }

    /// Renames a deal through the API, as a user would.
    pub async fn retitle_deal(&self, id: i64, title: &str) {
        let answer = self
            .api(
                reqwest::Method::PATCH,
                &format!("/api/v2/deals/{id}"),
                Some(json!({"title": title})),
            )
            .await;
        assert_eq!(answer["data"]["title"], title, "{answer}");
    }
}

/// A scratch directory with a config file pointing at `sim` and a DuckDB target inside it.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("pipedrive.duckdb")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("pipedrive-sync.yaml")
    }

    /// Writes a config for `sim` with `extra` YAML appended.
    pub fn write_config(&self, sim: &Sim, extra: &str) -> PathBuf {
        let yaml = format!(
            "source:\n  api_token: ${{PDS_TEST_TOKEN}}\n  base_url: {}\ntarget:\n  type: duckdb\n  path: {}\n{extra}",
            sim.handle.url,
            self.db_path().display()
        );
        std::fs::write(self.config_path(), yaml).expect("config written");
        self.config_path()
    }

    /// Runs the real binary with the simulator's token in the environment.
    pub fn run(&self, sim: &Sim, args: &[&str]) -> Output {
        run_binary(
            args,
            &[("PDS_TEST_TOKEN", sim.handle.api_token.as_str())],
            self.dir.path(),
        )
    }

    pub fn sync(&self, sim: &Sim, args: &[&str]) -> Output {
        let config = self.config_path();
        let mut all = vec!["sync", "--config", config.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        self.run(sim, &all)
    }

    pub fn duckdb(&self) -> duckdb::Connection {
        duckdb::Connection::open(self.db_path()).expect("DuckDB opens")
    }

    /// Every row of a table as JSON objects (DuckDB's own rendering), sorted by `order_by`.
    pub fn rows(&self, table: &str, order_by: &str) -> Vec<Value> {
        let connection = self.duckdb();
        let mut statement = connection
            .prepare(&format!(
                "SELECT CAST(to_json(t) AS VARCHAR) FROM {table} t ORDER BY {order_by}"
            ))
            .unwrap_or_else(|e| panic!("query {table}: {e}"));
        statement
            .query_map([], |row| row.get::<_, String>(0))
            .expect("rows")
            .map(|json| serde_json::from_str(&json.expect("row")).expect("JSON row"))
            .collect()
    }

    /// Every table with its column types and rows: equal snapshots mean a run changed nothing.
    /// `_sync_runs` is left out: every run, a failed one too, adds its record there.
    pub fn snapshot(&self) -> Snapshot {
        let connection = self.duckdb();
        let strings = |sql: &str| -> Vec<String> {
            let mut statement = connection
                .prepare(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            statement
                .query_map([], |row| row.get::<_, String>(0))
                .expect("rows")
                .map(|text| text.expect("text"))
                .collect()
        };
        let tables = strings(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables \
             WHERE table_catalog = current_database() ORDER BY 1",
        );
        tables
            .into_iter()
            .filter(|table| !table.ends_with("._sync_runs"))
            .map(|table| {
                let (schema, name) = table.split_once('.').expect("schema.table");
                let mut contents = strings(&format!(
                    "SELECT column_name || ' ' || data_type FROM information_schema.columns \
                     WHERE table_catalog = current_database() AND table_schema = '{}' \
                     AND table_name = '{}' ORDER BY ordinal_position",
                    schema.replace('\'', "''"),
                    name.replace('\'', "''")
                ));
                let mut rows = strings(&format!(
                    "SELECT CAST(to_json(t) AS VARCHAR) FROM {}.{} t",
                    quote(schema),
                    quote(name)
                ));
                rows.sort();
                contents.extend(rows);
                (table, contents)
            })
            .collect()
    }

    pub fn count(&self, table: &str) -> i64 {
        self.duckdb()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
                row.get(0)
            })
            .unwrap_or_else(|e| panic!("count {table}: {e}"))
    }
}

/// Each table (`schema.table`) of a destination: its columns with their types, then its rows
/// as JSON text, sorted.
pub type Snapshot = BTreeMap<String, Vec<String>>;

/// A SQL identifier in double quotes, inner quotes doubled.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The PostgreSQL server the tests use (trust authentication).
pub const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A PostgreSQL schema of one test's own, dropped by [`PgSchema::drop`].
pub struct PgSchema {
    pub name: String,
    client: tokio_postgres::Client,
}

impl PgSchema {
    pub async fn new(label: &str) -> PgSchema {
        let (client, connection) = tokio_postgres::connect(POSTGRES_URL, tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432");
        tokio::spawn(connection);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .subsec_nanos();
        let name = format!("pds_it_{label}_{}_{nanos}", std::process::id());
        PgSchema { name, client }
    }

    /// A `target:` block writing into this schema.
    pub fn target(&self) -> String {
        format!(
            "target:\n  type: postgres\n  url: {POSTGRES_URL}\n  schema: {}\n",
            self.name
        )
    }

    async fn strings(
        &self,
        sql: &str,
        parameters: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Vec<String> {
        self.client
            .query(sql, parameters)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|row| row.get::<_, String>(0))
            .collect()
    }

    /// Runs statements as a user of the database would (views, indexes, grants).
    pub async fn execute(&self, sql: &str) {
        self.client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The first column of each row of `sql`, as text.
    pub async fn texts(&self, sql: &str) -> Vec<String> {
        self.strings(sql, &[]).await
    }

    pub async fn tables(&self) -> Vec<String> {
        self.strings(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
            &[&self.name],
        )
        .await
    }

    /// Every row of a table as JSON objects, sorted by `order_by` (a column name).
    pub async fn rows(&self, table: &str, order_by: &str) -> Vec<Value> {
        self.strings(
            &format!(
                "SELECT row_to_json(t)::text FROM {}.{} t ORDER BY {}",
                quote(&self.name),
                quote(table),
                quote(order_by)
            ),
            &[],
        )
        .await
        .iter()
        .map(|json| serde_json::from_str(json).expect("JSON row"))
        .collect()
    }

    pub async fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::new();
        for table in self.tables().await {
            if table == "_sync_runs" {
                continue;
            }
            let mut contents = self
                .strings(
                    "SELECT column_name || ' ' || data_type FROM information_schema.columns \
                     WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                    &[&self.name, &table],
                )
                .await;
            let mut rows = self
                .strings(
                    &format!(
                        "SELECT row_to_json(t)::text FROM {}.{} t",
                        quote(&self.name),
                        quote(&table)
                    ),
                    &[],
                )
                .await;
            rows.sort();
            contents.extend(rows);
            snapshot.insert(format!("{}.{table}", self.name), contents);
        }
        snapshot
    }

    pub async fn drop(self) {
        let _ = self
            .client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                quote(&self.name)
            ))
            .await;
    }
}

pub fn run_binary(args: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pipedrive-sync"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("PIPEDRIVE_SYNC_CONFIG")
        .env_remove("PIPEDRIVE_SYNC_LOG");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("binary runs")
}

/// The package's directory, as cargo gives it to the running test. The compile-time value
/// would name the checkout that built the binary, which a shared target directory reuses for
/// another checkout of the same sources.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// Runs the benchmark binary on the `pipedrive-sync` binary under test.
pub fn run_bench(args: &[&str], dir: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pipedrive-sync-bench"))
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_pipedrive-sync"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the benchmark runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts success, showing stderr when it is not.
pub fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "exit {:?}\n{}",
        output.status.code(),
        stderr(output)
    );
}

/// Whole-second UTC of any Pipedrive or DuckDB timestamp rendering, for comparisons.
pub fn instant(text: &str) -> Option<i64> {
    let text = text.trim();
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp())
        .or_else(|_| {
            chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z").map(|t| t.timestamp())
        })
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .map(|t| t.and_utc().timestamp())
        })
        .ok()
}

/// Whether a value loaded into DuckDB equals the API's value, allowing for the type mapping
/// (timestamps as instants, integers in double columns, nested values as JSON).
pub fn same_value(api: &Value, loaded: &Value) -> bool {
    match (api, loaded) {
        (Value::Null, Value::Null) => true,
        (Value::Number(a), Value::Number(b)) => {
            (a.as_f64().unwrap_or(f64::NAN) - b.as_f64().unwrap_or(0.0)).abs() < 1e-9
        }
        (Value::String(a), Value::String(b)) if a == b => true,
        (Value::String(a), Value::String(b)) => match (instant(a), instant(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        (Value::Number(a), Value::String(b)) | (Value::String(b), Value::Number(a)) => {
            a.to_string() == *b
        }
        (Value::Bool(a), Value::String(b)) | (Value::String(b), Value::Bool(a)) => {
            a.to_string() == *b
        }
        (Value::Array(_) | Value::Object(_), Value::String(b)) => {
            serde_json::from_str::<Value>(b).is_ok_and(|v| v == *api)
        }
        (a, b) => a == b,
    }
}
