//! Simulator → `pipedrive-sync sync` → Parquet files, read back and compared with the
//! simulator's ground truth after merging on the primary key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use pipedrive_destinations::files::{parse_timestamp, read_table};
use pipedrive_sim::{Plan, Scale};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Sim, Workspace, assert_ok};
use crate::sync_duckdb::{STREAMS, compare_with_truth, key_of};

fn write_config(workspace: &Workspace, sim: &Sim) {
    // A relative path: resolved against the config file's directory.
    let yaml = format!(
        "source:\n  api_token: ${{PDS_TEST_TOKEN}}\n  base_url: {}\ntarget:\n  type: parquet\n  path: out\n",
        sim.handle.url
    );
    std::fs::write(workspace.config_path(), yaml).expect("config written");
}

/// A table as the README says to read it: files appended in order, merged on the key keeping
/// the row with the latest `_synced_at` (the later file on a tie), less the rows marked
/// `_removed`.
pub fn merged(dir: &Path, table: &str, key: &str) -> Vec<Value> {
    let mut latest: BTreeMap<String, (i64, Value)> = BTreeMap::new();
    for row in read_table(dir, table).expect("table readable") {
        let row = Value::Object(row);
        let synced = row["_synced_at"]
            .as_str()
            .and_then(parse_timestamp)
            .expect("_synced_at");
        let key = key_of(&row, key);
        if latest.get(&key).is_none_or(|(seen, _)| synced >= *seen) {
            latest.insert(key, (synced, row));
        }
    }
    latest
        .into_values()
        .map(|(_, row)| row)
        .filter(|row| row["_removed"] != json!(true))
        .collect()
}

fn data_files(dir: &Path, table: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir.join(table))
        .map(|entries| {
            entries
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn parquet_files_merge_to_ground_truth_and_incremental_runs_only_append_changes() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    write_config(&workspace, &sim);
    assert_ok(&workspace.sync(&sim, &[]));
    let out = workspace.dir.path().join("out");
    assert!(out.join("_pipedrive_sync_state.json").is_file());
    for (stream, key, listed) in STREAMS {
        let rows = merged(&out, stream, key);
        compare_with_truth(&sim, stream, key, *listed, &rows).await;
    }

    let deals_before = data_files(&out, "deals");
    let state: Value = serde_json::from_slice(
        &std::fs::read(out.join("_pipedrive_sync_state.json")).expect("state file"),
    )
    .expect("state JSON");
    let bookmark = state["streams"]["deals"]["bookmark"]
        .as_str()
        .and_then(parse_timestamp)
        .expect("deals bookmark");
    let created = sim
        .api(Method::POST, "/api/v2/deals", Some(json!({"title": "x"})))
        .await;
    let new_id = created["data"]["id"].clone();
    assert!(new_id.is_i64(), "{created}");
    assert_ok(&workspace.sync(&sim, &[]));

    let added: Vec<String> = data_files(&out, "deals")
        .difference(&deals_before)
        .cloned()
        .collect();
    assert_eq!(added.len(), 1, "one new deals file: {added:?}");
    let rows = pipedrive_destinations::files::read_file(&out.join("deals").join(&added[0]))
        .expect("new file readable");
    // The new deal, and the rows at the bookmark (the cursor is inclusive), nothing older.
    let new = rows
        .iter()
        .find(|r| r["id"] == new_id)
        .expect("new deal appended");
    assert_eq!(new["title"], json!("x"));
    for row in rows.iter().filter(|r| r["id"] != new_id) {
        let updated = row["update_time"].as_str().and_then(parse_timestamp);
        assert_eq!(
            updated,
            Some(bookmark),
            "only changes are appended: {row:?}"
        );
    }
    let (_, key, listed) = STREAMS.iter().find(|(s, ..)| *s == "deals").unwrap();
    compare_with_truth(&sim, "deals", key, *listed, &merged(&out, "deals", key)).await;
}

/// The README's read of a Parquet table, run by DuckDB's Python package (the bundled DuckDB
/// here has no Parquet reader; the one users run has).
fn read_as_documented(out: &Path, table: &str) -> Vec<i64> {
    let glob = out.join(table).join("*.parquet");
    let sql = format!(
        "SELECT id FROM (SELECT * FROM read_parquet('{}', union_by_name = true, filename = true) \
         QUALIFY row_number() OVER (PARTITION BY id ORDER BY _synced_at DESC, filename DESC) = 1) \
         WHERE _removed IS NOT TRUE ORDER BY id",
        glob.display()
    );
    let output = std::process::Command::new(crate::clients::tool(
        "PDS_PYAIRBYTE_PYTHON",
        "venv-pyairbyte",
        "python",
    ))
    .args([
        "-c",
        "import duckdb, json, sys; print(json.dumps([r[0] for r in duckdb.sql(sys.argv[1]).fetchall()]))",
        &sql,
    ])
    .output()
    .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON list of ids")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_the_filter_now_rejects_is_gone_from_the_documented_read() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    let yaml = format!(
        "source:\n  api_token: ${{PDS_TEST_TOKEN}}\n  base_url: {}\ntarget:\n  type: parquet\n  path: out\nstreams:\n  deals: {{filter: \"status != 'lost'\"}}\n",
        sim.handle.url
    );
    std::fs::write(workspace.config_path(), yaml).expect("config written");
    assert_ok(&workspace.sync(&sim, &[]));
    let out = workspace.dir.path().join("out");
    let before = read_as_documented(&out, "deals");
    let lost = sim
        .truth("deals")
        .await
        .into_iter()
        .find(|d| d["status"] == "open" && d["is_archived"] != json!(true))
        .expect("an open deal")["id"]
        .as_i64()
        .unwrap();
    assert!(before.contains(&lost));

    sim.api(
        Method::PATCH,
        &format!("/api/v2/deals/{lost}"),
        Some(json!({"status": "lost"})),
    )
    .await;
    assert_ok(&workspace.sync(&sim, &[]));
    let after = read_as_documented(&out, "deals");
    let expected: Vec<i64> = before.into_iter().filter(|id| *id != lost).collect();
    assert_eq!(after, expected);
}
