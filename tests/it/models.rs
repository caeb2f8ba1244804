//! `pipedrive-sync models install`: each view's figures, in DuckDB and in PostgreSQL, equal
//! those computed here from the simulator's ground truth; time in stage equals the clock steps
//! between a deal's moves exactly; a view whose input was not synced is skipped, naming it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use pipedrive_sim::{Plan, Scale};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Sim, Workspace, assert_ok, instant, stderr, stdout};
use crate::sync_duckdb::Listed;
use crate::sync_postgres::{self, Schema};

const STREAMS: &str = "streams:\n  deals:\n    history: true\n  pipelines:\n  stages:\n  users:\n  organizations:\n  activities:\n";

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

    async fn rows(&self, workspace: &Workspace, view: &str) -> Vec<Value> {
        match self {
            Target::DuckDb => workspace.rows(&format!("main.{view}"), "1"),
            Target::Postgres(schema) => {
                let first = match view {
                    "deal_time_in_stage" => "deal_id",
                    "activities_per_owner_week" => "owner_id",
                    "deal_stage_funnel" => "stage_id",
                    _ => "id",
                };
                schema.rows(view, first).await
            }
        }
    }
}

fn install(workspace: &Workspace, sim: &Sim) -> String {
    let config = workspace.config_path();
    let output = workspace.run(
        sim,
        &["models", "install", "--config", config.to_str().unwrap()],
    );
    assert_ok(&output);
    stdout(&output)
}

fn int(value: &Value) -> Option<i64> {
    value.as_i64()
}

fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

fn id(record: &Value) -> i64 {
    record["id"].as_i64().expect("numeric id")
}

fn time(value: &Value) -> i64 {
    instant(value.as_str().expect("a timestamp")).expect("a readable timestamp")
}

/// A truth record's name by id, among the records the stream lists.
fn names(records: &[Value], listed: Listed) -> BTreeMap<i64, String> {
    records
        .iter()
        .filter(|r| listed.includes(r))
        .map(|r| (id(r), r["name"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

async fn advance(sim: &Sim, seconds: i64) {
    sim.admin_call(
        Method::POST,
        "/__sim/clock/advance",
        json!({ "seconds": seconds }),
    )
    .await;
}

/// Updates a deal through the API and returns the update's time (whole seconds).
async fn update(sim: &Sim, deal: i64, body: Value) -> i64 {
    let updated = sim
        .api(Method::PATCH, &format!("/api/v2/deals/{deal}"), Some(body))
        .await;
    time(&updated["data"]["update_time"])
}

/// (owner, week start) → (owner name, total, done, not done).
type Weeks = BTreeMap<(i64, Option<String>), (Option<String>, i64, i64, i64)>;

/// Per deal and stage: (seconds, visits, entered_at, left_at, is_current_stage).
type Stay = (i64, i64, i64, Option<i64>, bool);

async fn views_equal_ground_truth(target: Target) {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    target.configure(&workspace, &sim, STREAMS);
    assert_ok(&workspace.sync(&sim, &[]));
    // Installed before the second sync: full refreshes of pipelines and stages, and history
    // merges, must still work with the views in place.
    let printed = install(&workspace, &sim);
    for view in [
        "deals_enriched",
        "deal_stage_funnel",
        "deal_time_in_stage",
        "activities_per_owner_week",
    ] {
        assert!(
            printed
                .lines()
                .any(|line| line.starts_with("created ") && line.ends_with(&format!(".{view}"))),
            "{printed}"
        );
    }

    // One open deal moves s0 → s1 (renamed there) → s2 → s1 and is won, a clock step apart.
    let stages = sim.truth("stages").await;
    let deals = sim.truth("deals").await;
    let live = |r: &&Value| Listed::Live.includes(r);
    let others = |deal: &Value| -> Vec<i64> {
        stages
            .iter()
            .filter(live)
            .filter(|s| s["pipeline_id"] == deal["pipeline_id"] && s["id"] != deal["stage_id"])
            .map(id)
            .collect()
    };
    let moved = deals
        .iter()
        .filter(live)
        .find(|d| d["status"] == "open" && others(d).len() >= 2)
        .expect("an open deal in a pipeline of three stages or more");
    let moved_id = id(moved);
    let (s0, s1, s2) = (
        moved["stage_id"].as_i64().unwrap(),
        others(moved)[0],
        others(moved)[1],
    );
    let t0 = time(&moved["update_time"]);
    advance(&sim, 3600).await;
    let t1 = update(&sim, moved_id, json!({"stage_id": s1})).await;
    advance(&sim, 1800).await;
    update(&sim, moved_id, json!({"title": "Renamed in stage"})).await;
    advance(&sim, 7200).await;
    let t3 = update(&sim, moved_id, json!({"stage_id": s2})).await;
    advance(&sim, 600).await;
    let t4 = update(&sim, moved_id, json!({"stage_id": s1})).await;
    advance(&sim, 900).await;
    let t5 = update(&sim, moved_id, json!({"status": "won"})).await;
    assert!(t1 - t0 >= 3600 && t5 - t4 >= 900, "the clock steps apply");
    let second = workspace.sync(&sim, &[]);
    assert_ok(&second);
    // Installing again replaces the views in place.
    install(&workspace, &sim);

    let deals = sim.truth("deals").await;
    let stages = sim.truth("stages").await;
    let pipelines = sim.truth("pipelines").await;
    let users = names(&sim.truth("users").await, Listed::All);
    let organizations = names(&sim.truth("organizations").await, Listed::Live);
    let pipeline_names = names(&pipelines, Listed::Live);
    let stage_names = names(&stages, Listed::Live);
    let live_deals: Vec<&Value> = deals.iter().filter(live).collect();

    // deals_enriched: every deal not deleted, with the names of what it points to.
    let enriched = target.rows(&workspace, "deals_enriched").await;
    let by_id: BTreeMap<i64, &Value> = enriched.iter().map(|r| (id(r), r)).collect();
    assert_eq!(
        by_id.keys().copied().collect::<BTreeSet<_>>(),
        live_deals.iter().map(|d| id(d)).collect::<BTreeSet<_>>(),
        "deals_enriched holds the deals not deleted"
    );
    assert_eq!(enriched.len(), by_id.len(), "one row per deal");
    let name_of = |names: &BTreeMap<i64, String>, key: &Value| {
        key.as_i64().and_then(|k| names.get(&k).cloned())
    };
    for deal in &live_deals {
        let row = by_id[&id(deal)];
        let context = format!("deal {}: {row}", id(deal));
        assert_eq!(text(&row["title"]), text(&deal["title"]), "{context}");
        assert_eq!(text(&row["status"]), text(&deal["status"]), "{context}");
        assert_eq!(text(&row["currency"]), text(&deal["currency"]), "{context}");
        assert!(
            (row["value"].as_f64().unwrap() - deal["value"].as_f64().unwrap()).abs() < 1e-6,
            "{context}"
        );
        assert_eq!(int(&row["stage_id"]), int(&deal["stage_id"]), "{context}");
        assert_eq!(
            text(&row["pipeline_name"]),
            name_of(&pipeline_names, &deal["pipeline_id"]),
            "{context}"
        );
        assert_eq!(
            text(&row["stage_name"]),
            name_of(&stage_names, &deal["stage_id"]),
            "{context}"
        );
        assert_eq!(
            text(&row["owner_name"]),
            name_of(&users, &deal["owner_id"]),
            "{context}"
        );
        assert_eq!(
            text(&row["org_name"]),
            name_of(&organizations, &deal["org_id"]),
            "{context}"
        );
        assert_eq!(int(&row["org_id"]), int(&deal["org_id"]), "{context}");
        assert_eq!(time(&row["add_time"]), time(&deal["add_time"]), "{context}");
        assert_eq!(
            row["won_time"].as_str().map(|t| instant(t).unwrap()),
            deal["won_time"].as_str().map(|t| instant(t).unwrap()),
            "{context}"
        );
    }
    assert!(
        enriched.iter().any(|r| r["org_name"].is_string())
            && enriched.iter().any(|r| r["owner_name"].is_string()),
        "names are filled in"
    );

    // deal_stage_funnel: a deal reached each stage of its pipeline up to its stage's order_nr.
    let live_stages: Vec<&Value> = stages.iter().filter(live).collect();
    let place: BTreeMap<i64, (i64, i64)> = live_stages
        .iter()
        .map(|s| {
            (
                id(s),
                (
                    s["pipeline_id"].as_i64().unwrap(),
                    s["order_nr"].as_i64().unwrap(),
                ),
            )
        })
        .collect();
    let mut expected_funnel = BTreeMap::new();
    for pipeline in pipeline_names.keys() {
        let mut ordered: Vec<&&Value> = live_stages
            .iter()
            .filter(|s| s["pipeline_id"].as_i64() == Some(*pipeline))
            .collect();
        ordered.sort_by_key(|s| (s["order_nr"].as_i64().unwrap(), id(s)));
        let reached: Vec<i64> = ordered
            .iter()
            .map(|stage| {
                let order = stage["order_nr"].as_i64().unwrap();
                live_deals
                    .iter()
                    .filter_map(|d| place.get(&d["stage_id"].as_i64().unwrap()))
                    .filter(|(p, o)| p == pipeline && *o >= order)
                    .count() as i64
            })
            .collect();
        for (position, stage) in ordered.iter().enumerate() {
            let next = ordered.get(position + 1).map(|s| id(s));
            let reached_next = reached.get(position + 1).copied();
            let conversion = reached_next
                .filter(|_| reached[position] > 0)
                .map(|n| n as f64 / reached[position] as f64);
            expected_funnel.insert(
                id(stage),
                (
                    *pipeline,
                    pipeline_names[pipeline].clone(),
                    position as i64 + 1,
                    reached[position],
                    next,
                    reached_next,
                    conversion,
                ),
            );
        }
    }
    let funnel = target.rows(&workspace, "deal_stage_funnel").await;
    let seen_funnel: BTreeMap<i64, _> = funnel
        .iter()
        .map(|r| {
            (
                int(&r["stage_id"]).unwrap(),
                (
                    int(&r["pipeline_id"]).unwrap(),
                    text(&r["pipeline_name"]).unwrap_or_default(),
                    int(&r["stage_position"]).unwrap(),
                    int(&r["deals_reached"]).unwrap(),
                    int(&r["next_stage_id"]),
                    int(&r["deals_reached_next"]),
                    r["conversion"].as_f64(),
                ),
            )
        })
        .collect();
    assert_eq!(seen_funnel.len(), funnel.len(), "one row per stage");
    assert_eq!(
        seen_funnel.keys().collect::<Vec<_>>(),
        expected_funnel.keys().collect::<Vec<_>>()
    );
    for (stage, expected) in &expected_funnel {
        let seen = &seen_funnel[stage];
        assert_eq!(
            (&seen.0, &seen.1, seen.2, seen.3, seen.4, seen.5),
            (
                &expected.0,
                &expected.1,
                expected.2,
                expected.3,
                expected.4,
                expected.5
            ),
            "stage {stage}"
        );
        match (seen.6, expected.6) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "stage {stage}: {a} vs {b}"),
            (a, b) => assert_eq!(a, b, "stage {stage}"),
        }
    }
    assert!(
        expected_funnel.values().any(|f| f.3 > 0 && f.5.is_some()),
        "some stage has deals and a next stage"
    );

    // deal_time_in_stage: the moved deal's stays equal the clock steps, exactly.
    let before_query = chrono::Utc::now().timestamp();
    let times = target.rows(&workspace, "deal_time_in_stage").await;
    let after_query = chrono::Utc::now().timestamp();
    let mut stays: BTreeMap<(i64, i64), Stay> = BTreeMap::new();
    for row in &times {
        let key = (
            int(&row["deal_id"]).unwrap(),
            int(&row["stage_id"]).unwrap(),
        );
        let stay = (
            int(&row["seconds_in_stage"]).unwrap(),
            int(&row["visits"]).unwrap(),
            time(&row["entered_at"]),
            row["left_at"].as_str().map(|t| instant(t).unwrap()),
            row["is_current_stage"] == json!(true),
        );
        assert!(
            (row["days_in_stage"].as_f64().unwrap() - stay.0 as f64 / 86_400.0).abs() < 1e-9,
            "{row}"
        );
        assert!(
            stays.insert(key, stay).is_none(),
            "one row per deal and stage"
        );
    }
    let moved_stays: BTreeMap<i64, Stay> = stays
        .iter()
        .filter(|((deal, _), _)| *deal == moved_id)
        .map(|((_, stage), stay)| (*stage, *stay))
        .collect();
    let expected_stays = BTreeMap::from([
        (s0, (t1 - t0, 1, t0, Some(t1), false)),
        (s1, ((t3 - t1) + (t5 - t4), 2, t1, None, true)),
        (s2, (t4 - t3, 1, t3, Some(t4), false)),
    ]);
    assert_eq!(moved_stays, expected_stays, "stays of deal {moved_id}");
    // Every other deal: one current stage; an open one's counts up to now.
    for deal in live_deals.iter().filter(|d| id(d) != moved_id) {
        let current: Vec<(&(i64, i64), &Stay)> = stays
            .iter()
            .filter(|((d, _), stay)| *d == id(deal) && stay.4)
            .collect();
        assert_eq!(current.len(), 1, "deal {}: {current:?}", id(deal));
        let ((_, stage), stay) = current[0];
        assert_eq!(Some(*stage), int(&deal["stage_id"]), "deal {}", id(deal));
        if deal["status"] == "open" {
            let since = time(&deal["update_time"]);
            assert!(
                (before_query - since..=after_query - since + 1).contains(&stay.0),
                "deal {}: {} seconds in its current stage since {since}",
                id(deal),
                stay.0
            );
        }
    }
    let deleted: BTreeSet<i64> = deals
        .iter()
        .filter(|d| d["is_deleted"] == json!(true))
        .map(id)
        .collect();
    assert!(
        stays.keys().all(|(deal, _)| !deleted.contains(deal)),
        "deleted deals have no stays"
    );

    // activities_per_owner_week: counts per owner and Monday of the due date.
    let mut expected_weeks: Weeks = BTreeMap::new();
    let mut iso: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for activity in sim
        .truth("activities")
        .await
        .iter()
        .filter(|a| Listed::Live.includes(a))
    {
        let owner = activity["owner_id"].as_i64().unwrap();
        let week = activity["due_date"].as_str().map(|due| {
            let date = NaiveDate::parse_from_str(due, "%Y-%m-%d").unwrap();
            let monday = date - chrono::Days::new(u64::from(date.weekday().num_days_from_monday()));
            let week = date.iso_week();
            iso.insert(
                monday.to_string(),
                (i64::from(week.year()), i64::from(week.week())),
            );
            monday.to_string()
        });
        let entry =
            expected_weeks
                .entry((owner, week))
                .or_insert((users.get(&owner).cloned(), 0, 0, 0));
        entry.1 += 1;
        if activity["done"] == json!(true) {
            entry.2 += 1;
        } else {
            entry.3 += 1;
        }
    }
    let weeks = target.rows(&workspace, "activities_per_owner_week").await;
    let seen_weeks: Weeks = weeks
        .iter()
        .map(|r| {
            let week = text(&r["week_start"]);
            if let Some(week) = &week {
                assert_eq!(
                    (int(&r["iso_year"]).unwrap(), int(&r["iso_week"]).unwrap()),
                    iso[week],
                    "{r}"
                );
            }
            (
                (int(&r["owner_id"]).unwrap(), week),
                (
                    text(&r["owner_name"]),
                    int(&r["total"]).unwrap(),
                    int(&r["done"]).unwrap(),
                    int(&r["not_done"]).unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(seen_weeks.len(), weeks.len(), "one row per owner and week");
    assert_eq!(seen_weeks, expected_weeks);
    assert!(
        expected_weeks.values().any(|w| w.2 > 0) && expected_weeks.values().any(|w| w.3 > 0),
        "both done and open activities are counted"
    );
    if let Target::Postgres(schema) = target {
        schema.drop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn duckdb_views_equal_ground_truth() {
    views_equal_ground_truth(Target::DuckDb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_views_equal_ground_truth() {
    views_equal_ground_truth(Target::Postgres(Schema::new().await)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_view_whose_input_was_not_synced_is_skipped_naming_the_fix() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(
        &sim,
        "streams:\n  deals:\n  pipelines:\n  stages:\n  users:\n  organizations:\n",
    );
    assert_ok(&workspace.sync(&sim, &[]));
    let printed = install(&workspace, &sim);
    assert!(
        printed.contains("created main.deals_enriched\n"),
        "{printed}"
    );
    assert!(
        printed.contains("created main.deal_stage_funnel\n"),
        "{printed}"
    );
    let skipped = |view: &str| {
        printed
            .lines()
            .find(|line| line.starts_with(&format!("{view} skipped: ")))
            .unwrap_or_else(|| panic!("{view} is not reported skipped: {printed}"))
            .to_owned()
    };
    assert!(
        skipped("activities_per_owner_week").contains("add `activities:` under `streams:`"),
        "{printed}"
    );
    assert!(
        skipped("deal_time_in_stage").contains("`deals: {history: true}`"),
        "{printed}"
    );
    let views: BTreeSet<String> = workspace
        .rows(
            "(SELECT view_name FROM duckdb_views() WHERE NOT internal)",
            "1",
        )
        .iter()
        .map(|r| r["view_name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        views,
        BTreeSet::from(["deal_stage_funnel".to_owned(), "deals_enriched".to_owned()])
    );
    assert_eq!(
        workspace.count("main.deals_enriched"),
        sim.truth("deals")
            .await
            .iter()
            .filter(|d| Listed::NotArchived.includes(d) && d["is_deleted"] != json!(true))
            .count() as i64
    );

    // A files target has no views to hold.
    std::fs::write(
        workspace.config_path(),
        format!(
            "source:\n  api_token: x\n  base_url: {}\ntarget:\n  type: parquet\n",
            sim.handle.url
        ),
    )
    .unwrap();
    let config = workspace.config_path();
    let refused = workspace.run(
        &sim,
        &["models", "install", "--config", config.to_str().unwrap()],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("use a duckdb or postgres target"),
        "{}",
        stderr(&refused)
    );
}
