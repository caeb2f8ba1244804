//! Correct while Pipedrive changes under the sync: a change that shows in a list after changes
//! stamped later (replication lag, a long transaction, same-second ties behind the cursor) is
//! still read by the next incremental run.

use pipedrive_sim::{Plan, Scale};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{PgSchema, Sim, Workspace, assert_ok, quote};

fn loaded_title(workspace: &Workspace, id: i64) -> Value {
    let title: String = workspace
        .duckdb()
        .query_row("SELECT title FROM main.deals WHERE id = ?", [id], |r| {
            r.get(0)
        })
        .unwrap_or_else(|e| panic!("deal {id} in DuckDB: {e}"));
    Value::String(title)
}

/// Writes the config with `lookback` under `source` (absent: the default).
fn config(workspace: &Workspace, sim: &Sim, lookback: Option<&str>) {
    let path = workspace.write_config(sim, "streams:\n  deals:\n");
    if let Some(lookback) = lookback {
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replacen(
            "source:\n",
            &format!("source:\n  lookback: {lookback}\n"),
            1,
        );
        std::fs::write(&path, text).unwrap();
    }
}

/// One sync, then a change that shows at once, a second sync (its bookmark moves to that
/// change), then a change stamped 30 s earlier that shows only now: what does a third sync load?
async fn late_change_after_three_syncs(lookback: Option<&str>) -> (Value, String) {
    let sim = Sim::start(Scale::Tiny, Plan::Unlimited).await;
    let workspace = Workspace::new();
    config(&workspace, &sim, lookback);
    let ids = sim.live_deal_ids().await;
    assert_ok(&workspace.sync(&sim, &[]));
    sim.retitle_deal(ids[0], "seen at once").await;
    assert_ok(&workspace.sync(&sim, &[]));
    assert_eq!(loaded_title(&workspace, ids[0]), "seen at once");

    sim.set_faults(json!({"write_lag_ms": 30_000})).await;
    sim.retitle_deal(ids[1], "shown late").await;
    sim.set_faults(json!({})).await;
    assert_ok(&workspace.sync(&sim, &[]));
    let truth = sim
        .truth("deals")
        .await
        .into_iter()
        .find(|d| d["id"] == ids[1])
        .expect("deal in the truth");
    (
        loaded_title(&workspace, ids[1]),
        truth["title"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_that_shows_after_later_ones_is_read_by_the_default_lookback() {
    let (loaded, truth) = late_change_after_three_syncs(None).await;
    assert_eq!(truth, "shown late");
    assert_eq!(loaded, json!(truth));
}

/// Without a lookback the same change is lost: what the default guards against.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_lookback_a_change_that_shows_late_is_lost() {
    let (loaded, truth) = late_change_after_three_syncs(Some("0s")).await;
    assert_eq!(truth, "shown late");
    assert_ne!(loaded, json!(truth));
}

fn ids_and_names(rows: &[Value]) -> Vec<(i64, String)> {
    rows.iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The live pipelines' names as Pipedrive lists them, by id.
async fn pipeline_names(sim: &Sim) -> Vec<(i64, String)> {
    let live: Vec<Value> = sim
        .truth("pipelines")
        .await
        .into_iter()
        .filter(|p| p["is_deleted"] != json!(true))
        .collect();
    let mut names = ids_and_names(&live);
    names.sort();
    names
}

async fn add_pipeline(sim: &Sim, name: &str) {
    let answer = sim
        .api(
            Method::POST,
            "/api/v2/pipelines",
            Some(json!({"name": name})),
        )
        .await;
    assert_eq!(answer["data"]["name"], name, "{answer}");
}

const FULL_REFRESH_PIPELINES: &str = "streams:\n  pipelines: {mode: full-refresh}\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_view_on_a_full_refresh_table_answers_after_every_sync_in_duckdb() {
    let sim = Sim::start(Scale::Tiny, Plan::Unlimited).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, FULL_REFRESH_PIPELINES);
    assert_ok(&workspace.sync(&sim, &[]));
    workspace
        .duckdb()
        .execute_batch(
            "CREATE VIEW main.pipeline_names AS SELECT id, name FROM main.pipelines; \
             CREATE INDEX pipelines_by_name ON main.pipelines (name)",
        )
        .unwrap();
    for run in ["Renewals", "Partners"] {
        add_pipeline(&sim, run).await;
        assert_ok(&workspace.sync(&sim, &[]));
        let loaded = ids_and_names(&workspace.rows("main.pipeline_names", "id"));
        assert_eq!(loaded, pipeline_names(&sim).await, "after adding {run}");
    }
    let indexes: i64 = workspace
        .duckdb()
        .query_row(
            "SELECT count(*) FROM duckdb_indexes() WHERE index_name = 'pipelines_by_name'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 1, "the user's index is gone");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_view_index_and_grant_on_a_full_refresh_table_survive_every_sync_in_postgres() {
    let sim = Sim::start(Scale::Tiny, Plan::Unlimited).await;
    let schema = PgSchema::new("views").await;
    let workspace = Workspace::new();
    let yaml = format!(
        "source:\n  api_token: ${{PDS_TEST_TOKEN}}\n  base_url: {}\n{}{FULL_REFRESH_PIPELINES}",
        sim.handle.url,
        schema.target()
    );
    std::fs::write(workspace.config_path(), yaml).unwrap();
    assert_ok(&workspace.sync(&sim, &[]));
    let s = quote(&schema.name);
    schema
        .execute(&format!(
            "CREATE VIEW {s}.pipeline_names AS SELECT id, name FROM {s}.pipelines; \
             CREATE INDEX pipelines_by_name ON {s}.pipelines (name); \
             GRANT SELECT ON {s}.pipelines TO PUBLIC"
        ))
        .await;
    for run in ["Renewals", "Partners"] {
        add_pipeline(&sim, run).await;
        assert_ok(&workspace.sync(&sim, &[]));
        let loaded = ids_and_names(&schema.rows("pipeline_names", "id").await);
        assert_eq!(loaded, pipeline_names(&sim).await, "after adding {run}");
    }
    let survived = schema
        .texts(&format!(
            "SELECT (SELECT count(*) FROM pg_indexes WHERE schemaname = '{0}' \
               AND indexname = 'pipelines_by_name')::text || ' ' || \
             has_table_privilege('public', '{s}.pipelines', 'SELECT')::text",
            schema.name.replace('\'', "''")
        ))
        .await;
    assert_eq!(survived, ["1 true"], "the user's index or grant is gone");
    schema.drop().await;
}
