//! Data controls end to end: a row filter (rows that stop matching leave the table), excluded
//! columns that never arrive, and hashed columns whose raw values appear nowhere.

use std::collections::BTreeSet;

use pipedrive_sim::{Plan, Scale};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{Sim, Workspace, assert_ok, instant, stderr};
use crate::sync_duckdb::{Listed, compare_with_truth};

const SALT: &str = "a-secret-pepper";

fn ids(rows: &[Value]) -> BTreeSet<i64> {
    rows.iter().filter_map(|r| r["id"].as_i64()).collect()
}

/// Every text value of every table in the DuckDB file, as one string per row.
fn every_value(workspace: &Workspace) -> Vec<String> {
    let connection = workspace.duckdb();
    let tables: Vec<String> = connection
        .prepare("SELECT table_schema || '.' || table_name FROM information_schema.tables")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .iter()
        .flat_map(|table| {
            connection
                .prepare(&format!(
                    "SELECT CAST(to_json(t) AS VARCHAR) FROM {table} t"
                ))
                .unwrap()
                .query_map([], |row| row.get::<_, String>(0))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn filtered_excluded_and_hashed_columns_hold_what_the_config_says() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(
        &sim,
        &format!(
            "hash_salt: {SALT}\nstreams:\n  deals:\n    filter: pipeline_id = 1 and status != 'deleted'\n  persons:\n    exclude_columns: [phones]\n    hash_columns: [name, emails]\n"
        ),
    );
    assert_ok(&workspace.sync(&sim, &[]));

    let deals = sim.truth("deals").await;
    let wanted: BTreeSet<i64> = deals
        .iter()
        .filter(|d| Listed::NotArchived.includes(d))
        .filter(|d| d["pipeline_id"] == json!(1) && d["status"] != json!("deleted"))
        .filter_map(|d| d["id"].as_i64())
        .collect();
    assert!(!wanted.is_empty());
    assert_eq!(ids(&workspace.rows("main.deals", "id")), wanted);

    let persons = workspace.rows("main.persons", "id");
    assert!(!persons.is_empty());
    assert!(persons.iter().all(|p| p.get("phones").is_none()));
    let truth = sim.truth("persons").await;
    let raw_names: Vec<String> = truth
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    for person in &persons {
        let original = truth.iter().find(|t| t["id"] == person["id"]).unwrap();
        let name = original["name"].as_str().unwrap();
        let expected = hex::encode(Sha256::digest(format!("{SALT}{name}").as_bytes()));
        assert_eq!(person["name"], json!(expected));
        assert!(person["emails"].as_str().is_some_and(|e| e.len() == 64));
    }
    // No raw name, email or salt anywhere in the file.
    let raw_emails: Vec<String> = truth
        .iter()
        .flat_map(|p| p["emails"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["value"].as_str().map(str::to_owned))
        .collect();
    let everything = every_value(&workspace);
    for secret in raw_names
        .iter()
        .chain(&raw_emails)
        .chain([&SALT.to_owned()])
    {
        assert!(
            !everything.iter().any(|row| row.contains(secret.as_str())),
            "{secret} reached the destination"
        );
    }

    // A deal moved out of pipeline 1 leaves the table on the next sync.
    let stages = sim.truth("stages").await;
    let elsewhere = stages
        .iter()
        .find(|s| s["pipeline_id"] != json!(1))
        .expect("a second pipeline")["id"]
        .clone();
    let moved = *wanted.iter().next().unwrap();
    sim.api(
        Method::PATCH,
        &format!("/api/v2/deals/{moved}"),
        Some(json!({ "stage_id": elsewhere })),
    )
    .await;
    assert_ok(&workspace.sync(&sim, &[]));
    let mut expected = wanted.clone();
    expected.remove(&moved);
    assert_eq!(ids(&workspace.rows("main.deals", "id")), expected);
}

#[test]
fn hashing_the_primary_key_or_without_a_salt_is_refused() {
    let workspace = Workspace::new();
    let config = workspace.dir.path().join("bad.yaml");
    for (yaml, hint) in [
        (
            "source: {api_token: t, base_url: 'http://127.0.0.1:9'}\nstreams:\n  persons: {hash_columns: [name]}\n",
            "hash_salt",
        ),
        (
            "source: {api_token: t, base_url: 'http://127.0.0.1:9'}\nhash_salt: s\nstreams:\n  persons: {exclude_columns: [id]}\n",
            "primary key",
        ),
        (
            "source: {api_token: t, base_url: 'http://127.0.0.1:9'}\nstreams:\n  deals: {filter: 'pipeline_id ~ 3'}\n",
            "not a comparison",
        ),
        (
            "source: {api_token: t, base_url: 'http://127.0.0.1:9'}\nstreams:\n  currencies: {history: true}\n",
            "no change time",
        ),
        (
            "source: {api_token: t, base_url: 'http://127.0.0.1:9'}\ndefaults: {reconcile_deletes_every: soon}\n",
            "not an interval",
        ),
    ] {
        std::fs::write(&config, yaml).unwrap();
        let output = crate::support::run_binary(
            &["sync", "--config", config.to_str().unwrap()],
            &[],
            workspace.dir.path(),
        );
        assert_eq!(output.status.code(), Some(2), "{yaml}");
        let message = crate::support::stderr(&output);
        assert!(message.contains(hint), "{yaml}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn recent_first_loads_the_newest_deals_first_then_resumes_to_all_of_them() {
    let sim = Sim::start(Scale::Small, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams:\n  deals: {priority: recent-first}\n");
    let config = std::fs::read_to_string(workspace.config_path()).unwrap();
    // Room for the company check (2), the field definitions and one page of deals: the run
    // stops after it.
    std::fs::write(
        workspace.config_path(),
        config.replace("  base_url:", "  max_tokens: 22\n  base_url:"),
    )
    .unwrap();
    let stopped = workspace.sync(&sim, &[]);
    assert_eq!(stopped.status.code(), Some(75), "{}", stderr(&stopped));

    let listed: Vec<Value> = sim
        .truth("deals")
        .await
        .into_iter()
        .filter(|d| Listed::NotArchived.includes(d))
        .collect();
    let loaded = ids(&workspace.rows("main.deals", "id"));
    assert!(!loaded.is_empty() && loaded.len() < listed.len());
    // What landed is the newest slice: no unloaded deal changed later than a loaded one.
    let time = |d: &Value| instant(d["update_time"].as_str().unwrap()).unwrap();
    let oldest_loaded = listed
        .iter()
        .filter(|d| loaded.contains(&d["id"].as_i64().unwrap()))
        .map(time)
        .min()
        .unwrap();
    let newest_missing = listed
        .iter()
        .filter(|d| !loaded.contains(&d["id"].as_i64().unwrap()))
        .map(time)
        .max()
        .unwrap();
    assert!(newest_missing <= oldest_loaded);

    workspace.write_config(&sim, "streams:\n  deals: {priority: recent-first}\n");
    assert_ok(&workspace.sync(&sim, &[]));
    let all = workspace.rows("main.deals", "id");
    compare_with_truth(&sim, "deals", "id", Listed::NotArchived, &all).await;
    // The bookmark is the newest change: the next run reads one page.
    sim.reset_stats().await;
    assert_ok(&workspace.sync(&sim, &[]));
    assert_eq!(sim.requests_to("/api/v2/deals").await, 1);
}
