//! Simulator → `pipedrive-sync sync` → DuckDB, compared with the simulator's ground truth.

use std::collections::{BTreeMap, BTreeSet};

use pipedrive_sim::{Plan, Scale};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Sim, Workspace, assert_ok, instant, same_value};

/// Streams of the foundation with the filter that turns ground truth (which keeps deleted and
/// archived records) into what the stream's endpoint lists.
pub const STREAMS: &[(&str, &str, Listed)] = &[
    ("deals", "id", Listed::NotArchived),
    ("persons", "id", Listed::Live),
    ("organizations", "id", Listed::Live),
    ("activities", "id", Listed::Live),
    ("products", "id", Listed::Live),
    ("pipelines", "id", Listed::Live),
    ("stages", "id", Listed::Live),
    ("notes", "id", Listed::Live),
    ("leads", "id", Listed::NotArchived),
    ("users", "id", Listed::All),
    ("activity_types", "id", Listed::All),
    ("currencies", "id", Listed::All),
    ("filters", "id", Listed::All),
    ("lead_labels", "id", Listed::All),
    ("deal_fields", "field_code", Listed::All),
    ("person_fields", "field_code", Listed::All),
    ("organization_fields", "field_code", Listed::All),
    ("product_fields", "field_code", Listed::All),
    ("activity_fields", "field_code", Listed::All),
    ("lead_fields", "key", Listed::All),
    ("note_fields", "key", Listed::All),
    ("lead_sources", "name", Listed::All),
    ("files", "id", Listed::All),
    ("call_logs", "id", Listed::All),
    ("mail_threads", "id", Listed::All),
    ("roles", "id", Listed::All),
    ("permission_sets", "id", Listed::All),
    ("goals", "id", Listed::All),
    ("tasks", "id", Listed::All),
];

#[derive(Clone, Copy)]
pub enum Listed {
    All,
    NotArchived,
    Live,
}

impl Listed {
    pub fn includes(self, record: &Value) -> bool {
        let flag = |key: &str| record.get(key).and_then(Value::as_bool).unwrap_or(false);
        match self {
            Listed::All => true,
            Listed::NotArchived => !flag("is_archived"),
            Listed::Live => {
                !flag("is_archived")
                    && !flag("is_deleted")
                    && record.get("active_flag") != Some(&json!(false))
            }
        }
    }
}

pub fn key_of(record: &Value, key: &str) -> String {
    match &record[key] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// v1 custom-field keys: 40 hex characters, maybe with a subfield suffix (`<hash>_currency`).
pub fn is_custom_field_key(key: &str) -> bool {
    key.len() >= 40
        && key.as_bytes()[..40]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// The column a custom field lands in: its name in snake case.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_owned()
}

/// Asserts that the table holds exactly the listed ground truth, value for value.
async fn assert_matches_truth(
    sim: &Sim,
    workspace: &Workspace,
    stream: &str,
    key: &str,
    listed: Listed,
) {
    let rows = workspace.rows(&format!("main.{stream}"), &format!("\"{key}\""));
    compare_with_truth(sim, stream, key, listed, &rows).await;
}

/// Asserts that `rows` (a table read back as JSON objects) are exactly the listed ground truth.
pub async fn compare_with_truth(
    sim: &Sim,
    stream: &str,
    key: &str,
    listed: Listed,
    rows: &[Value],
) {
    let truth: Vec<Value> = sim
        .truth(stream)
        .await
        .into_iter()
        .filter(|r| listed.includes(r))
        .collect();
    let loaded: BTreeMap<String, &Value> = rows.iter().map(|r| (key_of(r, key), r)).collect();
    assert_eq!(loaded.len(), rows.len(), "{stream}: duplicate keys loaded");
    let expected: BTreeSet<String> = truth.iter().map(|r| key_of(r, key)).collect();
    let actual: BTreeSet<String> = loaded.keys().cloned().collect();
    assert_eq!(
        actual, expected,
        "{stream}: loaded keys differ from ground truth"
    );
    for record in &truth {
        let row = loaded[&key_of(record, key)];
        for (field, value) in record.as_object().expect("object record") {
            // Custom fields land under their names; `custom_fields_land_under_their_names` checks them.
            if field == "custom_fields" || is_custom_field_key(field) {
                continue;
            }
            let stored = row.get(field).unwrap_or(&Value::Null);
            assert!(
                same_value(value, stored),
                "{stream} {}: {field} is {stored} in the destination but {value} in Pipedrive",
                key_of(record, key)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn full_sync_equals_ground_truth() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "");
    let output = workspace.sync(&sim, &[]);
    assert_ok(&output);
    for (stream, key, listed) in STREAMS {
        assert_matches_truth(&sim, &workspace, stream, key, *listed).await;
    }
    // Archived deals come from their own endpoint.
    let archived: Vec<Value> = sim
        .truth("deals")
        .await
        .into_iter()
        .filter(|d| d["is_archived"] == json!(true))
        .collect();
    let rows = workspace.rows("main.deals_archived", "id");
    assert_eq!(
        rows.iter().map(|r| r["id"].clone()).collect::<Vec<_>>(),
        archived.iter().map(|r| r["id"].clone()).collect::<Vec<_>>()
    );
    // Every stream has a table, and the state moved for the incremental ones.
    let state = workspace.run(
        &sim,
        &[
            "state",
            "show",
            "--config",
            workspace.config_path().to_str().unwrap(),
        ],
    );
    assert_ok(&state);
    let state: Value = serde_json::from_slice(&state.stdout).expect("state JSON");
    assert!(state["deals"]["bookmark"].is_string(), "{state}");
    assert!(state["pipelines"]["completed_at"].is_string(), "{state}");
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_fields_land_under_their_names_with_option_labels() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams:\n  deals:\n");
    assert_ok(&workspace.sync(&sim, &[]));
    let fields = sim.truth("deal_fields").await;
    let deals = sim.truth("deals").await;
    let rows = workspace.rows("main.deals", "id");
    let by_id: BTreeMap<i64, &Value> = rows
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r))
        .collect();
    let mut checked = BTreeSet::new();
    for field in fields
        .iter()
        .filter(|f| f["is_custom_field"] == json!(true))
    {
        let code = field["field_code"].as_str().unwrap();
        let column = snake(field["field_name"].as_str().unwrap());
        let label = |id: &Value| {
            field["options"]
                .as_array()
                .and_then(|options| options.iter().find(|o| o["id"] == *id))
                .map_or_else(|| id.clone(), |o| o["label"].clone())
        };
        for deal in deals.iter().filter(|d| d["is_archived"] != json!(true)) {
            let Some(value) = deal["custom_fields"].get(code).filter(|v| !v.is_null()) else {
                continue;
            };
            let row = by_id[&deal["id"].as_i64().unwrap()];
            let field_type = field["field_type"].as_str().unwrap();
            let expected: Vec<(String, Value)> = match (field_type, value) {
                ("enum", id) => vec![(column.clone(), label(id))],
                ("set", Value::Array(ids)) => vec![(
                    column.clone(),
                    Value::Array(ids.iter().map(label).collect()),
                )],
                (_, Value::Object(parts)) => parts
                    .iter()
                    .map(|(part, v)| {
                        let name = if part == "value" {
                            column.clone()
                        } else {
                            format!("{column}_{part}")
                        };
                        (name, v.clone())
                    })
                    .collect(),
                (_, scalar) => vec![(column.clone(), scalar.clone())],
            };
            for (name, want) in expected {
                let got = row.get(&name).unwrap_or(&Value::Null);
                assert!(
                    same_value(&want, got),
                    "deal {} field {field_type} `{name}`: {got} loaded, {want} expected",
                    deal["id"]
                );
            }
            checked.insert(field_type.to_owned());
        }
    }
    for field_type in ["enum", "set", "monetary", "double", "varchar", "date"] {
        assert!(
            checked.contains(field_type),
            "no {field_type} custom field value checked: {checked:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_sync_applies_changes_and_reads_only_changed_pages() {
    let sim = Sim::start(Scale::Small, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(
        &sim,
        "streams:\n  deals:\n  persons:\n  notes:\n  pipelines:\n",
    );
    assert_ok(&workspace.sync(&sim, &[]));
    let deals_before = workspace.count("main.deals");
    let persons_before = workspace.count("main.persons");

    let created = sim
        .api(
            Method::POST,
            "/api/v2/deals",
            Some(json!({"title": "Fresh deal"})),
        )
        .await;
    let new_id = created["data"]["id"].as_i64().expect("new deal id");
    let live_person = sim
        .truth("persons")
        .await
        .into_iter()
        .find(|p| p["is_deleted"] != json!(true))
        .unwrap();
    let person_id = live_person["id"].as_i64().unwrap();
    sim.api(
        Method::PATCH,
        &format!("/api/v2/persons/{person_id}"),
        Some(json!({"name": "Renamed Person"})),
    )
    .await;
    let open_deal = sim
        .truth("deals")
        .await
        .into_iter()
        .find(|d| d["status"] == json!("open") && d["is_archived"] != json!(true))
        .unwrap();
    let deleted_id = open_deal["id"].as_i64().unwrap();
    sim.api(Method::DELETE, &format!("/api/v2/deals/{deleted_id}"), None)
        .await;

    sim.reset_stats().await;
    let output = workspace.sync(&sim, &[]);
    assert_ok(&output);

    assert_eq!(
        workspace.count("main.deals"),
        deals_before + 1,
        "one new deal, nothing duplicated"
    );
    assert_eq!(workspace.count("main.persons"), persons_before);
    let distinct: i64 = workspace
        .duckdb()
        .query_row("SELECT count(DISTINCT id) FROM main.deals", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(distinct, deals_before + 1);
    let title: String = workspace
        .duckdb()
        .query_row("SELECT title FROM main.deals WHERE id = ?", [new_id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(title, "Fresh deal");
    let name: String = workspace
        .duckdb()
        .query_row(
            "SELECT name FROM main.persons WHERE id = ?",
            [person_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(name, "Renamed Person");
    let status: String = workspace
        .duckdb()
        .query_row(
            "SELECT status FROM main.deals WHERE id = ?",
            [deleted_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(status, "deleted");

    // Only changed pages were read: one page per incremental stream (the changes fit in one),
    // and the full-refresh stream once.
    for path in [
        "/api/v2/deals",
        "/api/v2/persons",
        "/api/v1/notes",
        "/api/v2/pipelines",
    ] {
        assert_eq!(
            sim.requests_to(path).await,
            1,
            "{path}: {}",
            sim.stats().await
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn low_plan_full_sync_stays_under_the_burst_limit() {
    // Lite allows 20 requests per 2 seconds; one request per deal makes ~70 requests, from
    // several streams at once.
    let sim = Sim::start(Scale::Tiny, Plan::Lite).await;
    let workspace = Workspace::new();
    workspace.write_config(
        &sim,
        "concurrency: 8\nstreams:\n  deals:\n  deal_participants:\n  persons:\n  notes:\n  users:\n  pipelines:\n",
    );
    assert_ok(&workspace.sync(&sim, &[]));
    let stats = sim.stats().await;
    assert_eq!(stats["responses_429"], json!(0), "{stats}");
    assert_eq!(
        workspace.count("main.deals") as usize,
        sim.truth("deals")
            .await
            .iter()
            .filter(|d| d["is_archived"] != json!(true))
            .count()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_faults_are_survived_with_identical_data() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    sim.set_faults(json!({"error_rate": 0.1, "rate_429_no_headers": 0.05, "truncate_rate": 0.03, "malformed_rate": 0.03, "reset_rate": 0.03})).await;
    let workspace = Workspace::new();
    workspace.write_config(
        &sim,
        "streams:\n  deals:\n  persons:\n  notes:\n  users:\n  leads:\n",
    );
    assert_ok(&workspace.sync(&sim, &[]));
    sim.set_faults(json!({})).await;
    for (stream, key, listed) in STREAMS
        .iter()
        .filter(|(s, ..)| ["deals", "persons", "notes", "users", "leads"].contains(s))
    {
        assert_matches_truth(&sim, &workspace, stream, key, *listed).await;
    }
    let stats = sim.stats().await;
    assert!(
        stats["responses_by_status"]["500"].as_u64().unwrap_or(0)
            + stats["responses_by_status"]["502"].as_u64().unwrap_or(0)
            + stats["responses_by_status"]["503"].as_u64().unwrap_or(0)
            > 0,
        "faults were injected: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn full_refresh_reloads_a_stream_and_keeps_its_table_until_complete() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams:\n  persons:\n");
    assert_ok(&workspace.sync(&sim, &[]));
    // A row the source does not have: a full refresh must drop it.
    workspace
        .duckdb()
        .execute_batch("INSERT INTO main.persons (id, name) VALUES (999999, 'stray')")
        .unwrap();
    sim.reset_stats().await;
    assert_ok(&workspace.sync(&sim, &["--full-refresh", "persons"]));
    let live = workspace.rows("(SELECT * FROM main.persons WHERE NOT _deleted)", "id");
    compare_with_truth(&sim, "persons", "id", Listed::Live, &live).await;
    // Pipedrive no longer lists it: it is kept, marked deleted at the reload.
    let stray: (bool, bool) = workspace
        .duckdb()
        .query_row(
            "SELECT _deleted, _deleted_at IS NOT NULL FROM main.persons WHERE id = 999999",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(stray, (true, true));
    let tables: i64 = workspace
        .duckdb()
        .query_row(
            "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '_pds_staging_%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "the staging table was swapped in");
}

/// Rows of a fanned-out table keyed like the truth records, restricted to listed parents.
async fn assert_children_match(
    sim: &Sim,
    workspace: &Workspace,
    stream: &str,
    key: &[&str],
    parent_key: &str,
    parents: &BTreeSet<i64>,
) {
    let render = |record: &Value| {
        key.iter()
            .map(|k| key_of(record, k))
            .collect::<Vec<_>>()
            .join("/")
    };
    let truth: Vec<Value> = sim
        .truth(stream)
        .await
        .into_iter()
        .filter(|r| r[parent_key].as_i64().is_some_and(|p| parents.contains(&p)))
        .collect();
    let rows = workspace.rows(
        &format!("main.{stream}"),
        &key.iter()
            .map(|k| format!("\"{k}\""))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let loaded: BTreeMap<String, &Value> = rows.iter().map(|r| (render(r), r)).collect();
    assert_eq!(loaded.len(), rows.len(), "{stream}: duplicate keys");
    let expected: BTreeSet<String> = truth.iter().map(render).collect();
    assert_eq!(
        loaded.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "{stream}: keys differ from ground truth"
    );
    for record in &truth {
        let row = loaded[&render(record)];
        for (field, value) in record.as_object().unwrap() {
            let stored = row.get(field).unwrap_or(&Value::Null);
            assert!(
                same_value(value, stored),
                "{stream} {}: {field} is {stored}, expected {value}",
                render(record)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fanned_out_streams_equal_truth_within_request_bounds() {
    let sim = Sim::start(Scale::Small, Plan::Unlimited).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams:\n  deals:\n  deal_products:\n  deal_flow:\n  deal_followers:\n  deal_installments:\n");
    sim.reset_stats().await;
    assert_ok(&workspace.sync(&sim, &[]));

    let listed: BTreeSet<i64> = sim
        .truth("deals")
        .await
        .iter()
        .filter(|d| d["is_archived"] != json!(true))
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    let n = listed.len() as u64;
    assert_children_match(
        &sim,
        &workspace,
        "deal_products",
        &["id"],
        "deal_id",
        &listed,
    )
    .await;
    assert_children_match(
        &sim,
        &workspace,
        "deal_followers",
        &["deal_id", "user_id"],
        "deal_id",
        &listed,
    )
    .await;
    assert_children_match(
        &sim,
        &workspace,
        "deal_installments",
        &["id"],
        "deal_id",
        &listed,
    )
    .await;
    assert_children_match(&sim, &workspace, "deal_flow", &["id"], "item_id", &listed).await;

    // One walk over the deals serves all four children.
    assert_eq!(
        sim.requests_to("/api/v2/deals").await,
        n.div_ceil(500),
        "{}",
        sim.stats().await
    );
    let products = sim.requests_to("/api/v2/deals/products").await;
    assert!(
        products <= n.div_ceil(100) + 1,
        "{products} requests for {n} deals"
    );
    assert_eq!(sim.requests_to("/api/v1/deals/{id}/flow").await, n);

    // Three deals change: their children are re-read, and those of the deals changed within
    // the lookback before the bookmark (read again so that a change that shows late is not lost).
    let truth = sim.truth("deals").await;
    let listed_times: Vec<i64> = truth
        .iter()
        .filter(|d| d["is_archived"] != json!(true))
        .filter_map(|d| d["update_time"].as_str().and_then(instant))
        .collect();
    let newest = *listed_times.iter().max().unwrap();
    let lookback = pipedrive_config::DEFAULT_LOOKBACK.as_secs() as i64;
    let boundary = listed_times
        .iter()
        .filter(|t| **t >= newest - lookback)
        .count() as u64;
    let changed: Vec<i64> = listed.iter().take(3).copied().collect();
    for id in &changed {
        sim.api(
            Method::PATCH,
            &format!("/api/v2/deals/{id}"),
            Some(json!({"title": format!("changed {id}")})),
        )
        .await;
    }
    sim.reset_stats().await;
    assert_ok(&workspace.sync(&sim, &[]));
    assert_eq!(
        sim.requests_to("/api/v1/deals/{id}/flow").await,
        3 + boundary,
        "{}",
        sim.stats().await
    );
    assert_eq!(sim.requests_to("/api/v2/deals/products").await, 1);
    assert_eq!(sim.requests_to("/api/v2/deals").await, 1);
    assert_children_match(&sim, &workspace, "deal_flow", &["id"], "item_id", &listed).await;
    let flow_rows: i64 = workspace
        .duckdb()
        .query_row("SELECT count(*) FROM main.deal_flow WHERE field_key = 'title' AND new_value LIKE 'changed %'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(flow_rows, 3);
}

/// Mail threads are listed in full (Pipedrive has no change filter for them), but each
/// thread's messages are read again only when the thread changed: a first sync reads every
/// thread's, an unchanged company only the threads within the lookback of the newest change,
/// and a new message its thread's.
#[tokio::test(flavor = "multi_thread")]
async fn mail_messages_are_read_again_only_for_threads_that_changed() {
    let sim = Sim::start(Scale::Small, Plan::Unlimited).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams:\n  mail_threads:\n  mail_messages:\n");
    const PER_THREAD: &str = "/api/v1/mailbox/mailThreads/{id}/mailMessages";
    sim.reset_stats().await;
    assert_ok(&workspace.sync(&sim, &[]));
    let threads: BTreeSet<i64> = sim
        .truth("mail_threads")
        .await
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert!(threads.len() > 10, "{} threads", threads.len());
    assert_eq!(sim.requests_to(PER_THREAD).await, threads.len() as u64);
    assert_children_match(
        &sim,
        &workspace,
        "mail_messages",
        &["id"],
        "mail_thread_id",
        &threads,
    )
    .await;

    // The threads a run re-reads: those changed since the lookback before the newest change
    // the last run saw.
    let lookback = pipedrive_config::DEFAULT_LOOKBACK.as_secs() as i64;
    let update_times = |truth: Vec<Value>| -> Vec<i64> {
        truth
            .iter()
            .filter_map(|t| t["update_time"].as_str().and_then(instant))
            .collect()
    };
    let seen = update_times(sim.truth("mail_threads").await);
    let since = *seen.iter().max().unwrap() - lookback;
    let unchanged = seen.iter().filter(|t| **t >= since).count() as u64;
    sim.reset_stats().await;
    assert_ok(&workspace.sync(&sim, &[]));
    assert_eq!(sim.requests_to(PER_THREAD).await, unchanged);
    assert!(
        unchanged < threads.len() as u64 / 4,
        "{unchanged} of {}",
        threads.len()
    );

    // A message arrives in two older threads: theirs are read too, with the new message.
    let changed: Vec<i64> = sim
        .truth("mail_threads")
        .await
        .iter()
        .filter(|t| {
            t["update_time"]
                .as_str()
                .and_then(instant)
                .is_some_and(|at| at < since)
        })
        .map(|t| t["id"].as_i64().unwrap())
        .take(2)
        .collect();
    for id in &changed {
        sim.admin_call(
            Method::POST,
            &format!("/__sim/mail_threads/{id}/messages"),
            json!({}),
        )
        .await;
    }
    sim.reset_stats().await;
    assert_ok(&workspace.sync(&sim, &[]));
    assert_eq!(sim.requests_to(PER_THREAD).await, unchanged + 2);
    assert_children_match(
        &sim,
        &workspace,
        "mail_messages",
        &["id"],
        "mail_thread_id",
        &threads,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nested_arrays_become_child_tables_keyed_by_parent_and_position() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(
        &sim,
        "streams:\n  persons:\n  person_emails:\n  person_phones:\n",
    );
    sim.reset_stats().await;
    assert_ok(&workspace.sync(&sim, &[]));
    let persons: Vec<Value> = sim
        .truth("persons")
        .await
        .into_iter()
        .filter(|p| Listed::Live.includes(p))
        .collect();
    let mut expected = 0;
    for person in &persons {
        for (position, email) in person["emails"].as_array().unwrap().iter().enumerate() {
            expected += 1;
            let value: String = workspace
                .duckdb()
                .query_row(
                    "SELECT value FROM main.person_emails WHERE person_id = ? AND position = ?",
                    [person["id"].as_i64().unwrap(), position as i64],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(value, email["value"].as_str().unwrap());
        }
    }
    assert!(expected > persons.len(), "people have several emails");
    assert_eq!(workspace.count("main.person_emails"), expected as i64);
    // The persons list was walked once for all three tables.
    assert_eq!(
        sim.requests_to("/api/v2/persons").await,
        (persons.len() as u64).div_ceil(500)
    );
}

/// The columns of a DuckDB table.
fn columns(workspace: &Workspace, table: &str) -> BTreeSet<String> {
    let connection = workspace.duckdb();
    let mut statement = connection
        .prepare("SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ?")
        .unwrap();
    statement
        .query_map([table], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_field_renames_additions_and_deletions_keep_columns_stable() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams:\n  deals:\n  custom_fields_mapping:\n");
    assert_ok(&workspace.sync(&sim, &[]));

    let fields = sim.truth("deal_fields").await;
    let custom: Vec<&Value> = fields
        .iter()
        .filter(|f| f["is_custom_field"] == json!(true))
        .collect();
    let text_field = custom
        .iter()
        .find(|f| f["field_type"] == json!("varchar"))
        .expect("a varchar custom field");
    let renamed_key = text_field["field_code"].as_str().unwrap().to_owned();
    let renamed_column = snake(text_field["field_name"].as_str().unwrap());
    let doomed = custom
        .iter()
        .find(|f| f["field_type"] == json!("double"))
        .expect("a double custom field");
    let deleted_key = doomed["field_code"].as_str().unwrap().to_owned();
    let deleted_column = snake(doomed["field_name"].as_str().unwrap());
    let before = columns(&workspace, "deals");
    assert!(
        before.contains(&renamed_column) && before.contains(&deleted_column),
        "{before:?}"
    );
    let deal_id = sim
        .truth("deals")
        .await
        .iter()
        .find(|d| d["status"] == json!("open") && d["is_archived"] != json!(true))
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    // The deal re-read below loses its value with the field; every other deal keeps its value.
    let count_others = |workspace: &Workspace| -> i64 {
        workspace
            .duckdb()
            .query_row(
                &format!("SELECT count(\"{deleted_column}\") FROM main.deals WHERE id <> ?"),
                [deal_id],
                |r| r.get(0),
            )
            .unwrap()
    };
    let deleted_values = count_others(&workspace);

    // Rename one field, delete another, add a new one and give a deal values in both.
    sim.admin_call(
        Method::PATCH,
        &format!("/__sim/custom_fields/deal/{renamed_key}"),
        json!({"name": "Totally New Name"}),
    )
    .await;
    sim.admin_call(
        Method::DELETE,
        &format!("/__sim/custom_fields/deal/{deleted_key}"),
        json!({}),
    )
    .await;
    let added = sim
        .admin_call(
            Method::POST,
            "/__sim/custom_fields/deal",
            json!({"name": "Brand new field", "field_type": "varchar"}),
        )
        .await;
    let added_key = added["key"].as_str().expect("new field key").to_owned();
    sim.api(
        Method::PATCH,
        &format!("/api/v2/deals/{deal_id}"),
        Some(json!({"custom_fields": {renamed_key.clone(): "after rename", added_key.clone(): "fresh"}})),
    )
    .await;
    assert_ok(&workspace.sync(&sim, &[]));

    let after = columns(&workspace, "deals");
    assert!(
        after.contains(&renamed_column),
        "a renamed field keeps its column: {after:?}"
    );
    assert!(!after.contains("totally_new_name"), "{after:?}");
    assert!(
        after.contains("brand_new_field"),
        "a new field adds a column: {after:?}"
    );
    assert!(
        after.contains(&deleted_column),
        "a deleted field keeps its column: {after:?}"
    );
    let (renamed, fresh): (String, String) = workspace
        .duckdb()
        .query_row(
            &format!("SELECT \"{renamed_column}\", brand_new_field FROM main.deals WHERE id = ?"),
            [deal_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (renamed.as_str(), fresh.as_str()),
        ("after rename", "fresh")
    );
    assert!(deleted_values > 0);
    assert_eq!(
        count_others(&workspace),
        deleted_values,
        "values of the deleted field stay"
    );
    let mapped: String = workspace
        .duckdb()
        .query_row(
            "SELECT column_name FROM main.custom_fields_mapping WHERE stream = 'deals' AND field_key = ?",
            [&renamed_key],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(mapped, renamed_column);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bookmark_older_than_the_recents_month_reimports_in_full() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams:\n  users:\n");
    assert_ok(&workspace.sync(&sim, &[]));
    // A bookmark a day old (whatever the seeded users' times): changes come from /v1/recents.
    let now = sim.admin_call(Method::GET, "/__sim/clock", json!({})).await["now"]
        .as_str()
        .unwrap()
        .to_owned();
    let day_ago = (chrono::DateTime::parse_from_rfc3339(&now).unwrap() - chrono::Duration::days(1))
        .to_utc()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    workspace
        .duckdb()
        .execute(
            "UPDATE main._pipedrive_sync_state SET state = json_object('bookmark', ?::VARCHAR, 'reconciled_at', ?::VARCHAR) WHERE stream = 'users'",
            [&day_ago, &chrono::Utc::now().to_rfc3339()],
        )
        .unwrap();
    sim.reset_stats().await;
    assert_ok(&workspace.sync(&sim, &[]));
    assert_eq!(
        sim.requests_to("/api/v1/recents").await,
        1,
        "{}",
        sim.stats().await
    );
    assert_eq!(sim.requests_to("/api/v1/users").await, 0);
    // Forty days later recents no longer reaches the bookmark: the list is read in full.
    sim.admin_call(
        Method::POST,
        "/__sim/clock/advance",
        json!({"seconds": 40 * 86400}),
    )
    .await;
    sim.reset_stats().await;
    assert_ok(&workspace.sync(&sim, &[]));
    assert_eq!(sim.requests_to("/api/v1/recents").await, 1);
    assert_eq!(
        sim.requests_to("/api/v1/users").await,
        1,
        "{}",
        sim.stats().await
    );
    assert_matches_truth(&sim, &workspace, "users", "id", Listed::All).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn goal_results_are_read_per_goal_over_its_duration() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams:\n  goals:\n  goal_results:\n");
    assert_ok(&workspace.sync(&sim, &[]));
    let goals: BTreeSet<String> = sim
        .truth("goals")
        .await
        .iter()
        .map(|g| key_of(g, "id"))
        .collect();
    let rows = workspace.rows("main.goal_results", "goal_id");
    let loaded: BTreeSet<String> = rows.iter().map(|r| key_of(r, "goal_id")).collect();
    assert_eq!(loaded, goals);
    assert!(rows.iter().all(|r| r["progress"].is_number()), "{rows:?}");
    let stats = sim.stats().await;
    let results_requests: u64 = stats["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(path, _)| path.starts_with("/api/v1/goals/") && path.ends_with("/results"))
        .map(|(_, s)| s["requests"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        results_requests,
        goals.len() as u64,
        "one request per goal: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_opt_in_stream_an_earlier_run_loaded_is_named_when_it_is_no_longer_selected() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams:\n  deals:\n  deal_followers:\n");
    assert_ok(&workspace.sync(&sim, &[]));
    assert!(workspace.count("main.deal_followers") > 0);

    // The default selection leaves the opt-in stream out: the run says its table stops.
    workspace.write_config(&sim, "");
    let output = workspace.sync(&sim, &[]);
    assert_ok(&output);
    let stderr = crate::support::stderr(&output);
    assert!(
        stderr.contains("deal_followers")
            && stderr.contains("opt-in and not selected, so its table is no longer updated"),
        "{stderr}"
    );
}
