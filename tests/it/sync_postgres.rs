//! Simulator → `pipedrive-sync sync` → PostgreSQL (the real server on 127.0.0.1:5432), compared
//! with the simulator's ground truth. Each test works in its own schema and drops it.

use pipedrive_sim::{Plan, Scale};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Sim, Workspace, assert_ok, stderr};
use crate::sync_duckdb::{Listed, STREAMS, compare_with_truth};

pub const URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A schema of its own, dropped when the test ends.
pub struct Schema {
    pub name: String,
    client: tokio_postgres::Client,
}

impl Schema {
    pub async fn new() -> Schema {
        let (client, connection) = tokio_postgres::connect(URL, tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432");
        tokio::spawn(connection);
        let name = format!("pds_it_{}", uuid_like());
        Schema { name, client }
    }

    pub async fn rows(&self, table: &str, key: &str) -> Vec<Value> {
        let sql = format!(
            "SELECT row_to_json(t)::text FROM \"{}\".\"{table}\" t ORDER BY \"{key}\"",
            self.name
        );
        self.client
            .query(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|row| serde_json::from_str(row.get::<_, &str>(0)).expect("JSON row"))
            .collect()
    }

    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM \"{}\".\"{table}\"", self.name);
        self.client.query_one(&sql, &[]).await.unwrap().get(0)
    }

    /// The first column of every row of `sql`, as text.
    pub async fn query_strings(&self, sql: &str) -> Vec<String> {
        self.client
            .query(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|row| row.get::<_, Option<String>>(0).unwrap_or_default())
            .collect()
    }

    pub async fn drop(self) {
        let _ = self
            .client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name))
            .await;
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}_{nanos}", std::process::id())
}

pub fn write_config(workspace: &Workspace, sim: &Sim, schema: &Schema, extra: &str) {
    let yaml = format!(
        "source:\n  api_token: ${{PDS_TEST_TOKEN}}\n  base_url: {}\ntarget:\n  type: postgres\n  url: {URL}\n  schema: {}\n{extra}",
        sim.handle.url, schema.name
    );
    std::fs::write(workspace.config_path(), yaml).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn full_then_incremental_sync_into_postgres_equals_ground_truth() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let schema = Schema::new().await;
    let workspace = Workspace::new();
    write_config(&workspace, &sim, &schema, "");
    assert_ok(&workspace.sync(&sim, &[]));
    for (stream, key, listed) in STREAMS {
        compare_with_truth(&sim, stream, key, *listed, &schema.rows(stream, key).await).await;
    }

    let before = schema.count("deals").await;
    sim.api(
        Method::POST,
        "/api/v2/deals",
        Some(json!({"title": "Postgres deal"})),
    )
    .await;
    sim.reset_stats().await;
    let output = workspace.sync(&sim, &[]);
    assert_ok(&output);
    assert_eq!(
        schema.count("deals").await,
        before + 1,
        "{}",
        stderr(&output)
    );
    compare_with_truth(
        &sim,
        "deals",
        "id",
        Listed::NotArchived,
        &schema.rows("deals", "id").await,
    )
    .await;
    assert_eq!(sim.requests_to("/api/v2/deals").await, 1);
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_postgres_exits_4_naming_the_server() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    let yaml = format!(
        "source:\n  api_token: ${{PDS_TEST_TOKEN}}\n  base_url: {}\ntarget:\n  type: postgres\n  url: postgres://postgres:secret-pw@127.0.0.1:1/test\n",
        sim.handle.url
    );
    std::fs::write(workspace.config_path(), yaml).unwrap();
    let output = workspace.sync(&sim, &[]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("127.0.0.1:1"),
        "{}",
        stderr(&output)
    );
    assert!(
        !stderr(&output).contains("secret-pw"),
        "the password leaked: {}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_writer_is_refused_and_a_dead_ones_lock_is_gone() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let schema = Schema::new().await;
    let workspace = Workspace::new();
    write_config(&workspace, &sim, &schema, "streams:\n  pipelines:\n");
    // Another session holds the writer lock, as a running sync would.
    let (holder, connection) = tokio_postgres::connect(URL, tokio_postgres::NoTls)
        .await
        .unwrap();
    let holder_task = tokio::spawn(connection);
    holder
        .query_one(
            "SELECT pg_try_advisory_lock(hashtext($1))",
            &[&format!("pipedrive-sync:{}", schema.name)],
        )
        .await
        .unwrap();
    let refused = workspace.sync(&sim, &[]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("another pipedrive-sync run"),
        "{}",
        stderr(&refused)
    );
    // The holder dies without unlocking: its lock goes with its connection.
    drop(holder);
    let _ = holder_task.await;
    assert_ok(&workspace.sync(&sim, &[]));
    assert!(schema.count("pipelines").await > 0);
    schema.drop().await;
}
