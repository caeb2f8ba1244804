//! Custom field names are user data: quotes, semicolons, SQL, reserved words, emoji and
//! over-long names must land in a quoted, deterministic column in every destination, with the
//! simulator's values, and nothing in them may run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use pipedrive_destinations::files::read_table;
use pipedrive_destinations::postgres::stored_name;
use pipedrive_sim::{Plan, Scale};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{PgSchema, Sim, Workspace, assert_ok, quote, same_value};

const STREAMS: &str = "streams:\n  deals:\n  persons:\n  deal_fields:\n  custom_fields_mapping:\n";

fn hostile_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "He said \"hi\"",
        "O'Brien's field",
        "a;b;c",
        "\"; DROP TABLE deals; --",
        "'); DROP TABLE persons; --",
        "select",
        "order",
        "Größe 📏 大小",
    ]
    .map(str::to_owned)
    .into();
    names.push("Quarterly revenue forecast ".repeat(8)[..200].to_owned());
    assert_eq!(names.last().unwrap().len(), 200);
    names
}

/// Creates one varchar deal field per hostile name and gives a few deals a value in each
/// (values that are SQL too). Returns the fields' keys.
async fn add_hostile_fields(sim: &Sim) -> Vec<String> {
    let mut keys = Vec::new();
    for name in hostile_names() {
        let field = sim
            .admin_call(
                Method::POST,
                "/__sim/custom_fields/deal",
                json!({"name": name, "field_type": "varchar"}),
            )
            .await;
        keys.push(field["key"].as_str().expect("field key").to_owned());
    }
    let deals: Vec<i64> = sim
        .truth("deals")
        .await
        .iter()
        .filter(|d| d["status"] == json!("open") && d["is_archived"] != json!(true))
        .take(3)
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    for (n, id) in deals.iter().enumerate() {
        let values: serde_json::Map<String, Value> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let value = format!("value {i}/{n}'); DROP TABLE deals; -- \"x\"");
                (key.clone(), Value::String(value))
            })
            .collect();
        sim.api(
            Method::PATCH,
            &format!("/api/v2/deals/{id}"),
            Some(json!({"custom_fields": values})),
        )
        .await;
    }
    keys
}

fn config(sim: &Sim, target: &str) -> String {
    format!(
        "source:\n  api_token: ${{PDS_TEST_TOKEN}}\n  base_url: {}\n{target}{STREAMS}",
        sim.handle.url
    )
}

/// Field key → column, as the `custom_fields_mapping` rows say.
fn mapping_of(rows: &[Value], keys: &[String]) -> BTreeMap<String, String> {
    let mapping: BTreeMap<String, String> = rows
        .iter()
        .filter(|r| r["stream"] == json!("deals"))
        .map(|r| {
            (
                r["field_key"].as_str().unwrap().to_owned(),
                r["column_name"].as_str().unwrap().to_owned(),
            )
        })
        .filter(|(key, _)| keys.contains(key))
        .collect();
    assert_eq!(
        mapping.len(),
        keys.len(),
        "every field is mapped: {mapping:?}"
    );
    let columns: BTreeSet<&String> = mapping.values().collect();
    assert_eq!(columns.len(), keys.len(), "one column each: {mapping:?}");
    mapping
}

/// Each hostile field's value in `rows` (deals read back) equals the simulator's, under the
/// column `column_of` gives for the mapped name.
async fn assert_values(
    sim: &Sim,
    rows: &[Value],
    mapping: &BTreeMap<String, String>,
    column_of: impl Fn(&str) -> String,
) {
    let truth = sim.truth("deals").await;
    let mut checked = 0;
    for record in truth.iter().filter(|d| d["is_archived"] != json!(true)) {
        let row = rows
            .iter()
            .find(|r| r["id"] == record["id"])
            .unwrap_or_else(|| panic!("deal {} not loaded", record["id"]));
        for (key, column) in mapping {
            let want = &record["custom_fields"][key];
            let got = row.get(column_of(column)).unwrap_or(&Value::Null);
            assert!(
                same_value(want, got),
                "deal {} column {column}: {got} loaded, {want} in Pipedrive",
                record["id"]
            );
            checked += usize::from(!want.is_null());
        }
    }
    assert_eq!(
        checked,
        3 * mapping.len(),
        "three deals have a value in each field"
    );
}

fn duckdb_tables(workspace: &Workspace) -> BTreeSet<String> {
    let connection = workspace.duckdb();
    let mut statement = connection
        .prepare("SELECT table_schema || '.' || table_name FROM information_schema.tables WHERE table_catalog = current_database()")
        .unwrap();
    statement
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn duckdb_sync(sim: &Sim) -> Workspace {
    let workspace = Workspace::new();
    workspace.write_config(sim, STREAMS);
    // A table of the user's own, which must survive any name.
    workspace
        .duckdb()
        .execute_batch("CREATE TABLE main.canary AS SELECT 42 AS answer")
        .unwrap();
    assert_ok(&workspace.sync(sim, &[]));
    workspace
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_field_names_map_to_quoted_deterministic_columns_in_duckdb() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let expected_tables = duckdb_tables(&duckdb_sync(&sim));
    let keys = add_hostile_fields(&sim).await;

    let first = duckdb_sync(&sim);
    assert_eq!(
        duckdb_tables(&first),
        expected_tables,
        "a table was created or dropped"
    );
    let answer: i64 = first
        .duckdb()
        .query_row("SELECT answer FROM main.canary", [], |r| r.get(0))
        .unwrap();
    assert_eq!(answer, 42);
    let mapping = mapping_of(
        &first.rows("main.custom_fields_mapping", "field_key"),
        &keys,
    );
    assert_eq!(mapping[&keys[5]], "select");
    assert_eq!(mapping[&keys[7]], "größe_大小");
    assert_values(
        &sim,
        &first.rows("main.deals", "id"),
        &mapping,
        str::to_owned,
    )
    .await;
    for stream in ["deals", "persons"] {
        let live = sim
            .truth(stream)
            .await
            .iter()
            .filter(|r| r["is_archived"] != json!(true) && r["is_deleted"] != json!(true))
            .count();
        assert!(first.count(&format!("main.{}", quote(stream))) as usize >= live);
    }

    let second = duckdb_sync(&sim);
    assert_eq!(
        mapping_of(
            &second.rows("main.custom_fields_mapping", "field_key"),
            &keys
        ),
        mapping,
        "a fresh sync chose other columns"
    );
}

fn parquet_sync(sim: &Sim) -> (Workspace, std::path::PathBuf) {
    let workspace = Workspace::new();
    let target = "target:\n  type: parquet\n  path: out\n";
    std::fs::write(workspace.config_path(), config(sim, target)).unwrap();
    assert_ok(&workspace.sync(sim, &[]));
    let out = workspace.dir.path().join("out");
    (workspace, out)
}

fn directories(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn parquet_rows(dir: &Path, table: &str) -> Vec<Value> {
    read_table(dir, table)
        .unwrap_or_else(|e| panic!("{table}: {e}"))
        .into_iter()
        .map(Value::Object)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_field_names_map_to_deterministic_columns_in_parquet() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let expected = directories(&parquet_sync(&sim).1);
    let keys = add_hostile_fields(&sim).await;

    let (_first, out) = parquet_sync(&sim);
    assert_eq!(
        directories(&out),
        expected,
        "a table was created or dropped"
    );
    let mapping = mapping_of(&parquet_rows(&out, "custom_fields_mapping"), &keys);
    assert_values(&sim, &parquet_rows(&out, "deals"), &mapping, str::to_owned).await;

    let (_second, again) = parquet_sync(&sim);
    assert_eq!(
        mapping_of(&parquet_rows(&again, "custom_fields_mapping"), &keys),
        mapping,
        "a fresh sync chose other columns"
    );
}

async fn postgres_sync(sim: &Sim, label: &str) -> (Workspace, PgSchema) {
    let schema = PgSchema::new(label).await;
    let workspace = Workspace::new();
    std::fs::write(workspace.config_path(), config(sim, &schema.target())).unwrap();
    assert_ok(&workspace.sync(sim, &[]));
    (workspace, schema)
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_field_names_map_to_quoted_deterministic_columns_in_postgres() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let (_control, control) = postgres_sync(&sim, "names_control").await;
    let expected = control.tables().await;
    control.drop().await;
    let keys = add_hostile_fields(&sim).await;

    let (_first, first) = postgres_sync(&sim, "names_first").await;
    assert_eq!(
        first.tables().await,
        expected,
        "a table was created or dropped"
    );
    let mapping = mapping_of(
        &first.rows("custom_fields_mapping", "field_key").await,
        &keys,
    );
    // PostgreSQL keeps 63 bytes of a name: longer ones end in a hash of the whole.
    let long = &mapping[&keys[8]];
    assert_eq!(long.len(), 200);
    assert_eq!(stored_name(long).len(), 63);
    assert_values(
        &sim,
        &first.rows("deals", "id").await,
        &mapping,
        stored_name,
    )
    .await;

    let (_second, second) = postgres_sync(&sim, "names_second").await;
    assert_eq!(
        mapping_of(
            &second.rows("custom_fields_mapping", "field_key").await,
            &keys
        ),
        mapping,
        "a fresh sync chose other columns"
    );
    first.drop().await;
    second.drop().await;
}
