//! Deletes and history, per destination: deleted records stay marked after Pipedrive purges
//! them, and deals moved through several stages between two syncs get one history row per
//! move, at the times the deal flow logged.

use std::collections::BTreeSet;

use pipedrive_sim::{Plan, Scale};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Sim, Workspace, assert_ok, instant};
use crate::sync_postgres::{self, Schema};

/// Where the scenario's rows are read back from.
enum Target {
    DuckDb,
    Postgres(Schema),
}

impl Target {
    fn configure(&self, workspace: &Workspace, sim: &Sim, streams: &str) {
        match self {
            Target::DuckDb => {
                workspace.write_config(sim, streams);
            }
            Target::Postgres(schema) => {
                sync_postgres::write_config(workspace, sim, schema, streams)
            }
        }
    }

    async fn rows(&self, workspace: &Workspace, table: &str, order_by: &str) -> Vec<Value> {
        match self {
            Target::DuckDb => workspace.rows(&format!("main.{table}"), order_by),
            Target::Postgres(schema) => schema.rows(table, order_by).await,
        }
    }
}

const STREAMS: &str = "defaults:\n  reconcile_deletes_every: 0s\nstreams:\n  deals:\n    history: true\n  persons:\n  organizations:\n";

fn id(record: &Value) -> i64 {
    record["id"].as_i64().expect("numeric id")
}

fn row(rows: &[Value], wanted: i64) -> &Value {
    rows.iter()
        .find(|r| id(r) == wanted)
        .unwrap_or_else(|| panic!("row {wanted} is missing"))
}

fn is_true(value: &Value) -> bool {
    value == &json!(true) || value == &json!("true")
}

async fn advance(sim: &Sim, seconds: i64) {
    sim.admin_call(
        Method::POST,
        "/__sim/clock/advance",
        json!({ "seconds": seconds }),
    )
    .await;
}

async fn live(sim: &Sim, entity: &str) -> Vec<Value> {
    sim.truth(entity)
        .await
        .into_iter()
        .filter(|r| r["is_deleted"] != json!(true) && r["is_archived"] != json!(true))
        .collect()
}

async fn deletes_stay_marked_and_moves_become_history(target: Target) {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    target.configure(&workspace, &sim, STREAMS);
    assert_ok(&workspace.sync(&sim, &[]));

    let deals = live(&sim, "deals").await;
    let all_stages = sim.truth("stages").await;
    let other_stages = |deal: &Value| -> Vec<i64> {
        all_stages
            .iter()
            .filter(|s| s["pipeline_id"] == deal["pipeline_id"] && s["id"] != deal["stage_id"])
            .map(id)
            .collect()
    };
    let moved = deals
        .iter()
        .find(|d| other_stages(d).len() >= 3)
        .expect("a deal in a pipeline of four stages or more");
    let stages = other_stages(moved);
    let moved_id = id(moved);
    let gone_deal = deals.iter().map(id).find(|d| *d != moved_id).unwrap();
    let persons = live(&sim, "persons").await;
    let organizations = live(&sim, "organizations").await;
    let (gone_person, gone_org) = (id(&persons[0]), id(&organizations[0]));
    let ids = |records: &[Value]| records.iter().map(id).collect::<BTreeSet<i64>>();
    let live_before = [ids(&deals), ids(&persons), ids(&organizations)];
    let first_version = instant(moved["update_time"].as_str().unwrap()).unwrap();

    // Three moves a minute apart, then the deletes.
    let mut moves = Vec::new();
    for stage in &stages[..3] {
        advance(&sim, 60).await;
        let updated = sim
            .api(
                Method::PATCH,
                &format!("/api/v2/deals/{moved_id}"),
                Some(json!({ "stage_id": stage })),
            )
            .await;
        moves.push((
            *stage,
            instant(updated["data"]["update_time"].as_str().unwrap()).unwrap(),
        ));
    }
    advance(&sim, 60).await;
    sim.api(Method::DELETE, &format!("/api/v2/deals/{gone_deal}"), None)
        .await;
    sim.api(
        Method::DELETE,
        &format!("/api/v2/persons/{gone_person}"),
        None,
    )
    .await;
    sim.api(
        Method::DELETE,
        &format!("/api/v2/organizations/{gone_org}"),
        None,
    )
    .await;
    sim.reset_stats().await;
    assert_ok(&workspace.sync(&sim, &[]));
    // The changed deals' changes come from `/changelog` (20 tokens a deal), not `/flow` (40).
    assert!(sim.requests_to("/api/v1/deals/{id}/changelog").await > 0);
    assert_eq!(sim.requests_to("/api/v1/deals/{id}/flow").await, 0);

    let check_deleted = |rows: &[Value], table: &str, gone: i64, live: &BTreeSet<i64>| -> Value {
        for r in rows.iter().filter(|r| live.contains(&id(r))) {
            assert_eq!(
                is_true(&r["_deleted"]),
                id(r) == gone,
                "{table} {}: _deleted is {}",
                id(r),
                r["_deleted"]
            );
        }
        let deleted_at = row(rows, gone)["_deleted_at"].clone();
        assert!(deleted_at.is_string(), "{table} {gone}: _deleted_at is set");
        deleted_at
    };
    let marked = [
        ("deals", gone_deal),
        ("persons", gone_person),
        ("organizations", gone_org),
    ];
    let mut deleted_at = Vec::new();
    for ((table, gone), live) in marked.iter().zip(&live_before) {
        let rows = target.rows(&workspace, table, "id").await;
        deleted_at.push(check_deleted(&rows, table, *gone, live));
    }

    // History: the version of the first sync, then one per move at the flow's times.
    let mut history = target.rows(&workspace, "deals_history", "id").await;
    let valid_from = |v: &Value| instant(v["_valid_from"].as_str().unwrap()).unwrap();
    history.sort_by_key(|v| (id(v), valid_from(v)));
    let versions: Vec<&Value> = history.iter().filter(|r| id(r) == moved_id).collect();
    let seen: Vec<(i64, i64)> = versions
        .iter()
        .map(|v| {
            (
                v["stage_id"].as_i64().unwrap(),
                instant(v["_valid_from"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    let mut expected = vec![(moved["stage_id"].as_i64().unwrap(), first_version)];
    expected.extend(moves.iter().copied());
    assert_eq!(seen, expected, "history of deal {moved_id}");
    for pair in versions.windows(2) {
        assert_eq!(
            instant(pair[0]["_valid_to"].as_str().unwrap()),
            instant(pair[1]["_valid_from"].as_str().unwrap()),
            "versions of deal {moved_id} are contiguous"
        );
    }
    let mut current = std::collections::BTreeMap::<i64, usize>::new();
    for version in &history {
        *current.entry(id(version)).or_default() += usize::from(is_true(&version["_is_current"]));
    }
    assert!(
        current.values().all(|count| *count == 1),
        "exactly one current version per deal: {current:?}"
    );
    let deleted_version = history
        .iter()
        .find(|v| id(v) == gone_deal && is_true(&v["_is_current"]))
        .unwrap();
    assert!(is_true(&deleted_version["_deleted"]));

    // Thirty-one days on Pipedrive has purged them; the destination keeps them, marked.
    advance(&sim, 31 * 86_400).await;
    assert!(
        sim.truth("persons")
            .await
            .iter()
            .all(|p| id(p) != gone_person)
    );
    assert_ok(&workspace.sync(&sim, &[]));
    for (((table, gone), live), before) in marked.iter().zip(&live_before).zip(deleted_at) {
        let rows = target.rows(&workspace, table, "id").await;
        assert_eq!(
            check_deleted(&rows, table, *gone, live),
            before,
            "{table} {gone}"
        );
    }
    if let Target::Postgres(schema) = target {
        schema.drop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn duckdb_keeps_purged_deletes_and_rebuilds_deal_history_from_the_change_log() {
    deletes_stay_marked_and_moves_become_history(Target::DuckDb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_keeps_purged_deletes_and_rebuilds_deal_history_from_the_change_log() {
    deletes_stay_marked_and_moves_become_history(Target::Postgres(Schema::new().await)).await;
}

/// Runs `sync` and fails the test, instead of hanging it, if the run does not end in time.
fn sync_within(workspace: &Workspace, sim: &Sim, limit: std::time::Duration) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pipedrive-sync"))
        .arg("sync")
        .arg("--config")
        .arg(workspace.config_path())
        .env("PDS_TEST_TOKEN", &sim.handle.api_token)
        .env_remove("PIPEDRIVE_SYNC_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("binary starts");
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "sync exited {status}");
            return;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("sync did not end within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// v1 lists are walked by update time (keyset), not by offset: reconciling them must advance
/// that walk page by page and end, and mark exactly the records Pipedrive no longer lists.
#[tokio::test(flavor = "multi_thread")]
async fn reconciling_v1_keyset_lists_walks_every_page_once_and_marks_the_missing() {
    let sim = Sim::start(Scale::Small, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(
        &sim,
        "defaults:\n  reconcile_deletes_every: 0s\nstreams:\n  notes:\n  leads:\n",
    );
    assert_ok(&workspace.sync(&sim, &[]));
    let leads: Vec<Value> = sim
        .truth("leads")
        .await
        .into_iter()
        .filter(|lead| lead["is_archived"] != json!(true))
        .collect();
    let gone = leads[0]["id"].as_str().expect("lead id").to_owned();
    sim.api(Method::DELETE, &format!("/api/v1/leads/{gone}"), None)
        .await;
    sim.reset_stats().await;

    sync_within(&workspace, &sim, std::time::Duration::from_secs(120));

    // The reconciliation read each list once: at most a page per 500 records, plus the
    // incremental read's one page and a page re-read at each boundary second.
    for (path, entity) in [("/api/v1/notes", "notes"), ("/api/v1/leads", "leads")] {
        let records = sim.truth(entity).await.len() as u64;
        let requests = sim.requests_to(path).await;
        assert!(
            requests <= 2 * records.div_ceil(500) + 2,
            "{path}: {requests} requests for {records} records"
        );
    }
    let rows = workspace.rows("main.leads", "id");
    assert_eq!(rows.len(), leads.len());
    for row in &rows {
        let deleted = is_true(&row["_deleted"]);
        assert_eq!(deleted, row["id"] == json!(gone), "{row}");
    }
}
