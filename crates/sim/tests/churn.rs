//! Merges and churn: merged-away records vanish and their children move to the survivor; the
//! seeded churn is reproducible, shows in the API lists exactly as the ground truth says, and
//! runs at the requested rate; list walks stay consistent with writes between their pages.

mod common;
use common::*;
use pipedrive_sim::{Plan, SimOptions};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

fn id_of(v: &Value) -> u64 {
    v["id"].as_u64().expect("numeric id")
}

/// The records' numeric ids, as a list or a set.
fn ids_of<C: FromIterator<u64>>(records: &[Value]) -> C {
    records.iter().map(id_of).collect()
}

/// The numeric ids of one page's `data`.
fn page_ids(page: &Value) -> Vec<u64> {
    ids_of(page["data"].as_array().expect("data"))
}

fn by_id(records: Vec<Value>) -> BTreeMap<u64, Value> {
    records.into_iter().map(|r| (id_of(&r), r)).collect()
}

/// The simulated clock, to the second, as RFC 3339.
async fn clock(s: &Sim) -> String {
    let v = s.admin("GET", "/__sim/clock", Value::Null).await;
    v["now"].as_str().expect("now").to_string()
}

/// The records of a truth that are not deleted.
fn live(records: &[Value]) -> impl Iterator<Item = &Value> {
    records.iter().filter(|r| r["is_deleted"] != json!(true))
}

/// Two live records, the first linked to at least one live deal and one live activity.
async fn merge_pair(s: &Sim, link: &str, entity: &str) -> (u64, u64) {
    let deals = s.truth("deals").await;
    let activities = s.truth("activities").await;
    let records = s.truth(entity).await;
    let linked = |id: u64| {
        live(&deals).any(|d| d[link] == json!(id))
            && live(&activities).any(|a| a[link] == json!(id))
    };
    let gone = live(&records)
        .map(id_of)
        .find(|id| linked(*id))
        .expect("a record with deals and activities");
    let survivor = live(&records)
        .map(id_of)
        .find(|id| *id != gone)
        .expect("a second record");
    (gone, survivor)
}

/// `PUT /api/v1/{entity}/{gone}/merge` into `survivor`, which must succeed; returns the body.
async fn merge(s: &Sim, entity: &str, (gone, survivor): (u64, u64)) -> Value {
    let path = format!("/api/v1/{entity}/{gone}/merge");
    s.expect("PUT", &path, json!({"merge_with_id": survivor}), 200)
        .await
}

/// After a merge: the merged-away record is out of the truth and the v2 list, and the survivor
/// has the merge time as `update_time`. Returns the truth and the list, by id.
async fn assert_merged_away(
    s: &Sim,
    entity: &str,
    (gone, survivor): (u64, u64),
    merge_time: &str,
) -> (BTreeMap<u64, Value>, BTreeMap<u64, Value>) {
    let truth = by_id(s.truth(entity).await);
    assert!(
        !truth.contains_key(&gone),
        "merged {entity} {gone} still in the truth"
    );
    assert!(truth[&survivor]["update_time"].as_str().unwrap() >= merge_time);
    let listed = by_id(s.all_v2(&format!("/api/v2/{entity}"), 100).await);
    assert!(
        !listed.contains_key(&gone),
        "merged {entity} {gone} still listed"
    );
    (truth, listed)
}

/// Checks one child entity after a merge: nothing points at `gone`, everything that did now
/// points at `survivor` with the merge time as `update_time`, and the API list agrees with
/// the truth value by value.
async fn assert_repointed(
    s: &Sim,
    entity: &str,
    link: &str,
    before: &[Value],
    (gone, survivor): (u64, u64),
    merge_time: &str,
) {
    let moved: BTreeSet<u64> = before
        .iter()
        .filter(|r| r[link] == json!(gone))
        .map(id_of)
        .collect();
    assert!(!moved.is_empty(), "{entity}: nothing linked to {gone}");
    let truth = by_id(s.truth(entity).await);
    assert!(
        truth.values().all(|r| r[link] != json!(gone)),
        "{entity}: still linked to the merged-away {gone}"
    );
    for id in &moved {
        let r = &truth[id];
        assert_eq!(r[link], json!(survivor), "{entity} {id}");
        assert!(
            r["update_time"].as_str().unwrap() >= merge_time,
            "{entity} {id}: update_time {} before the merge at {merge_time}",
            r["update_time"]
        );
    }
    let listed = by_id(
        s.all_v2(&format!("/api/v2/{entity}?{link}={survivor}"), 50)
            .await,
    );
    for id in &moved {
        if truth[id]["is_deleted"] == json!(true) {
            continue;
        }
        assert_eq!(listed.get(id), Some(&truth[id]), "{entity} {id} as listed");
    }
    let gone_list = s
        .all_v2(&format!("/api/v2/{entity}?{link}={gone}"), 50)
        .await;
    assert!(gone_list.is_empty(), "{entity} still listed under {gone}");
}

/// What [`merge_with_children`] merged, and what it found after.
struct MergedWithChildren {
    gone: u64,
    survivor: u64,
    response: Value,
    truth: BTreeMap<u64, Value>,
    listed: BTreeMap<u64, Value>,
}

/// Merges a record linked (by `link`) to deals and activities into another: checks the
/// merged-away record is gone and its deals and activities moved to the survivor.
async fn merge_with_children(s: &Sim, entity: &str, link: &str) -> MergedWithChildren {
    let pair = merge_pair(s, link, entity).await;
    let deals = s.truth("deals").await;
    let activities = s.truth("activities").await;
    let merge_time = clock(s).await;
    let response = merge(s, entity, pair).await;
    let (truth, listed) = assert_merged_away(s, entity, pair, &merge_time).await;
    assert_repointed(s, "deals", link, &deals, pair, &merge_time).await;
    assert_repointed(s, "activities", link, &activities, pair, &merge_time).await;
    let (gone, survivor) = pair;
    MergedWithChildren {
        gone,
        survivor,
        response,
        truth,
        listed,
    }
}

#[tokio::test]
async fn merging_persons_moves_deals_and_activities_and_removes_the_merged_person() {
    let s = unlimited(11).await;
    let MergedWithChildren {
        gone,
        survivor,
        response: v,
        truth: persons,
        listed,
    } = merge_with_children(&s, "persons", "person_id").await;
    assert_eq!(v["success"], json!(true));
    assert_eq!(v["data"]["id"], json!(survivor), "merge_with_id survives");
    assert_eq!(v["data"]["merge_what_id"], json!(gone));
    assert_eq!(listed.get(&survivor), Some(&persons[&survivor]));
    let (status, _) = s.get(&format!("/api/v2/persons/{gone}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn merging_organizations_moves_deals_and_activities() {
    let s = unlimited(12).await;
    let merged = merge_with_children(&s, "organizations", "org_id").await;
    assert_eq!(merged.response["data"], json!({"id": merged.survivor}));
    let persons = s.truth("persons").await;
    assert!(persons.iter().all(|p| p["org_id"] != json!(merged.gone)));
}

#[tokio::test]
async fn merging_deals_moves_activities_notes_and_products_and_removes_the_merged_deal() {
    let s = unlimited(13).await;
    let deals = s.truth("deals").await;
    let activities = s.truth("activities").await;
    let notes = s.truth("notes").await;
    let products = s.truth("deal_products").await;
    let open = |d: &&Value| d["is_deleted"] == json!(false) && d["is_archived"] == json!(false);
    let has = |list: &[Value], id: u64| list.iter().any(|r| r["deal_id"] == json!(id));
    let gone = deals
        .iter()
        .filter(open)
        .map(id_of)
        .find(|id| has(&activities, *id) && has(&products, *id))
        .expect("a deal with activities and products");
    let survivor = deals
        .iter()
        .filter(open)
        .map(id_of)
        .find(|id| *id != gone && has(&products, *id))
        .expect("a second deal with products");
    let merge_time = clock(&s).await;

    let pair = (gone, survivor);
    let v = merge(&s, "deals", pair).await;
    assert_eq!(v["data"]["id"], json!(survivor));
    assert_eq!(v["data"]["merge_what_id"], json!(gone));

    assert_merged_away(&s, "deals", pair, &merge_time).await;
    let listed = by_id(s.all_v2("/api/v2/deals?status=deleted", 100).await);
    assert!(
        !listed.contains_key(&gone),
        "deleted deals list the merged deal"
    );
    assert_repointed(&s, "activities", "deal_id", &activities, pair, &merge_time).await;

    // Notes (v1) follow the deal too.
    let moved_notes: BTreeSet<u64> = notes
        .iter()
        .filter(|n| n["deal_id"] == json!(gone) && n["active_flag"] == json!(true))
        .map(id_of)
        .collect();
    let listed: BTreeSet<u64> = ids_of(
        &s.all_v1(&format!("/api/v1/notes?deal_id={survivor}"), 100)
            .await,
    );
    assert!(
        moved_notes.is_subset(&listed),
        "{moved_notes:?} not under {survivor}"
    );

    // Deal products: both deals' attachments, now all on the survivor.
    let expected: BTreeSet<u64> = products
        .iter()
        .filter(|p| p["deal_id"] == json!(gone) || p["deal_id"] == json!(survivor))
        .map(id_of)
        .collect();
    let attached = s
        .all_v2(&format!("/api/v2/deals/{survivor}/products"), 100)
        .await;
    let attached_ids: BTreeSet<u64> = ids_of(&attached);
    assert_eq!(attached_ids, expected);
    let truth_products = by_id(s.truth("deal_products").await);
    for p in &attached {
        assert_eq!(p["deal_id"], json!(survivor));
        assert_eq!(Some(p), truth_products.get(&id_of(p)));
    }
    let (status, _) = s.get(&format!("/api/v2/deals/{gone}/products")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn merge_requests_are_validated() {
    let s = unlimited(14).await;
    let persons = s.truth("persons").await;
    let ids: Vec<u64> = live(&persons).map(id_of).take(2).collect();
    let path = format!("/api/v1/persons/{}/merge", ids[0]);
    let (status, _) = s.send("PUT", &path, json!({})).await;
    assert_eq!(status, 400, "merge_with_id is required");
    let (status, _) = s.send("PUT", &path, json!({"merge_with_id": ids[0]})).await;
    assert_eq!(status, 400, "a record does not merge with itself");
    let (status, _) = s
        .send("PUT", &path, json!({"merge_with_id": 999_999_999}))
        .await;
    assert_eq!(status, 404);
    let (status, _) = s
        .send(
            "PUT",
            "/api/v1/persons/999999999/merge",
            json!({"merge_with_id": ids[1]}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        s.truth("persons").await,
        persons,
        "failed merges change nothing"
    );
}

async fn churn_steps(s: &Sim, steps: u64) -> Value {
    s.admin("POST", "/__sim/churn", json!({"steps": steps}))
        .await
}

/// Drops every timestamp (`*_time`): two simulators run at different wall-clock moments.
fn without_times(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.ends_with("_time"))
                .map(|(k, v)| (k.clone(), without_times(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_times).collect()),
        other => other.clone(),
    }
}

const CHURNED: [&str; 9] = [
    "deals",
    "persons",
    "organizations",
    "activities",
    "products",
    "notes",
    "leads",
    "deal_products",
    "deal_fields",
];

async fn churned_truth(seed: u64, steps: u64) -> (Value, Vec<Value>) {
    let s = unlimited(seed).await;
    let report = churn_steps(&s, steps).await;
    let mut truth = Vec::new();
    for entity in CHURNED {
        truth.push(without_times(&Value::Array(s.truth(entity).await)));
    }
    (report, truth)
}

#[tokio::test]
async fn churn_steps_with_the_same_seed_give_the_same_company() {
    let (report_a, truth_a) = churned_truth(21, 300).await;
    let (report_b, truth_b) = churned_truth(21, 300).await;
    assert_eq!(report_a["applied"], json!(300), "{report_a}");
    assert_eq!(report_a["rejected"], json!(0), "{report_a}");
    assert_eq!(report_a, report_b);
    for (entity, (a, b)) in CHURNED.iter().zip(truth_a.iter().zip(&truth_b)) {
        assert!(a == b, "{entity} differs between two runs of the same seed");
    }
    let (report_c, truth_c) = churned_truth(22, 300).await;
    assert!(
        report_c != report_a || truth_c != truth_a,
        "another seed churned the same changes"
    );
}

/// The live records of a v2 list: not deleted, and for deals not archived.
fn listable(entity: &str, r: &Value) -> bool {
    r["is_deleted"] != json!(true) && !(entity == "deals" && r["is_archived"] == json!(true))
}

#[tokio::test]
async fn churn_of_every_kind_shows_in_the_lists_as_the_truth_says() {
    let s = unlimited(23).await;
    let since = clock(&s).await;
    let report = churn_steps(&s, 500).await;
    assert_eq!(report["applied"], json!(500), "{report}");
    assert_eq!(report["rejected"], json!(0), "{report}");
    for kind in [
        "create",
        "update",
        "delete",
        "archive",
        "unarchive",
        "stage_move",
        "merge",
        "field_add",
        "field_rename",
        "field_delete",
    ] {
        assert!(
            report["by_kind"][kind]
                .as_object()
                .is_some_and(|m| !m.is_empty()),
            "no {kind} in {report}"
        );
    }
    for (entity, kinds) in [
        ("persons", ["merge", "create"]),
        ("organizations", ["merge", "update"]),
        ("deals", ["merge", "delete"]),
    ] {
        for kind in kinds {
            assert!(
                report["by_kind"][kind][entity].as_u64() > Some(0),
                "no {kind} of {entity} in {report}"
            );
        }
    }

    for entity in [
        "deals",
        "persons",
        "organizations",
        "activities",
        "products",
    ] {
        let expected: BTreeMap<u64, Value> = by_id(s.truth(entity).await)
            .into_iter()
            .filter(|(_, r)| listable(entity, r) && r["update_time"].as_str() >= Some(&since))
            .collect();
        assert!(!expected.is_empty(), "{entity}: churn changed nothing");
        let listed = s
            .all_v2(&format!("/api/v2/{entity}?updated_since={since}"), 37)
            .await;
        let listed_count = listed.len();
        let listed = by_id(listed);
        assert_eq!(listed_count, listed.len(), "{entity}: listed twice");
        let missing: Vec<&u64> = expected
            .keys()
            .filter(|id| !listed.contains_key(id))
            .collect();
        let extra: Vec<&u64> = listed
            .keys()
            .filter(|id| !expected.contains_key(id))
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{entity}: missing {missing:?}, extra {extra:?}"
        );
        for (id, r) in &expected {
            assert_eq!(&listed[id], r, "{entity} {id}");
        }
    }

    // v1 lists: notes and leads as the truth has them.
    let notes: BTreeSet<u64> = live_v1(&s.truth("notes").await, "active_flag");
    let listed: BTreeSet<u64> = ids_of(&s.all_v1("/api/v1/notes", 100).await);
    assert_eq!(listed, notes);
    let uuids = |leads: &[Value]| -> BTreeSet<String> {
        leads
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_string())
            .collect()
    };
    let mut leads = s.truth("leads").await;
    leads.retain(|l| l["is_archived"] == json!(false));
    assert_eq!(uuids(&s.all_v1("/api/v1/leads", 100).await), uuids(&leads));

    // Merges leave no link to a record that is gone.
    let persons: BTreeSet<u64> = ids_of(&s.truth("persons").await);
    let orgs: BTreeSet<u64> = ids_of(&s.truth("organizations").await);
    let deals: BTreeSet<u64> = ids_of(&s.truth("deals").await);
    for entity in ["deals", "activities", "notes"] {
        for r in s.truth(entity).await {
            for (link, ids) in [("person_id", &persons), ("org_id", &orgs)] {
                if let Some(id) = r[link].as_u64() {
                    assert!(ids.contains(&id), "{entity} {} links {link} {id}", r["id"]);
                }
            }
        }
    }
    for p in s.truth("deal_products").await {
        assert!(deals.contains(&p["deal_id"].as_u64().unwrap()), "{p}");
    }
}

fn live_v1(records: &[Value], flag: &str) -> BTreeSet<u64> {
    records
        .iter()
        .filter(|r| r[flag] == json!(true))
        .map(id_of)
        .collect()
}

async fn applied(s: &Sim) -> u64 {
    s.admin("GET", "/__sim/churn", Value::Null).await["applied"]
        .as_u64()
        .expect("applied")
}

#[tokio::test]
async fn timed_churn_runs_at_roughly_the_requested_rate_and_stops() {
    let s = sim(SimOptions {
        seed: 24,
        plan: Plan::Unlimited,
        churn_per_second: 40.0,
        ..Default::default()
    })
    .await;
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let n = applied(&s).await as f64;
    let expected = 40.0 * started.elapsed().as_secs_f64();
    assert!(
        n >= expected * 0.5 && n <= expected * 1.2,
        "{n} changes where about {expected} were due"
    );
    let report = s.admin("GET", "/__sim/churn", Value::Null).await;
    assert_eq!(report["per_second"], json!(40.0));
    assert_eq!(report["rejected"], json!(0), "{report}");

    let report = s
        .admin("POST", "/__sim/churn", json!({"per_second": 0}))
        .await;
    assert_eq!(report["per_second"], json!(0.0));
    let stopped = applied(&s).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(applied(&s).await, stopped, "churn went on at rate 0");

    s.admin("POST", "/__sim/churn", json!({"per_second": 100}))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let more = applied(&s).await - stopped;
    assert!(
        (60..=200).contains(&more),
        "{more} changes in 1.5 s at 100 per second"
    );
}

#[tokio::test]
async fn churn_requests_are_validated() {
    let s = unlimited(25).await;
    let status = s
        .admin_status("POST", "/__sim/churn", json!({"per_secnod": 3}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(applied(&s).await, 0);
}

/// A DELETE as clients send it, without a body.
async fn delete(s: &Sim, path: &str) -> u16 {
    s.c.delete(s.url(path))
        .header("x-api-token", &s.h.api_token)
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_v1_offset_walk_shifts_by_one_when_a_record_before_the_offset_is_deleted() {
    let s = unlimited(26).await;
    let all: Vec<u64> = ids_of(&s.all_v1("/api/v1/notes", 100).await);
    assert!(all.len() > 25);
    let (status, first) = s.get("/api/v1/notes?start=0&limit=10").await;
    assert_eq!(status, 200);
    let first = page_ids(&first);
    assert_eq!(first, all[..10]);
    assert_eq!(delete(&s, &format!("/api/v1/notes/{}", all[3])).await, 200);
    let (_, second) = s.get("/api/v1/notes?start=10&limit=10").await;
    let second = page_ids(&second);
    // The offset counts live records: the one that was 11th is now 10th and is skipped.
    assert_eq!(second, all[11..21]);
}

#[tokio::test]
async fn a_v2_cursor_walk_neither_skips_nor_repeats_when_records_change_between_pages() {
    let s = unlimited(27).await;
    let all: Vec<u64> = ids_of(&s.all_v2("/api/v2/deals", 100).await);
    assert!(all.len() > 25);
    let (_, first) = s.get("/api/v2/deals?limit=10").await;
    let cursor = first["additional_data"]["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_string();
    let first = page_ids(&first);
    assert_eq!(first, all[..10]);
    // Between pages: one deal already read is deleted, one ahead is deleted, one is created.
    for id in [all[3], all[15]] {
        assert_eq!(delete(&s, &format!("/api/v2/deals/{id}")).await, 200);
    }
    let created = s
        .expect(
            "POST",
            "/api/v2/deals",
            json!({"title": "Between pages"}),
            200,
        )
        .await;
    let created = id_of(&created["data"]);
    let mut rest = Vec::new();
    let mut next = Some(cursor);
    while let Some(cursor) = next {
        let (status, page) = s
            .get(&format!("/api/v2/deals?limit=10&cursor={cursor}"))
            .await;
        assert_eq!(status, 200, "{page}");
        rest.extend(page_ids(&page));
        next = page["additional_data"]["next_cursor"]
            .as_str()
            .map(str::to_string);
    }
    let mut expected: Vec<u64> = all[10..]
        .iter()
        .copied()
        .filter(|id| *id != all[15])
        .collect();
    expected.push(created);
    assert_eq!(rest.len(), expected.len());
    rest.sort_unstable();
    expected.sort_unstable();
    assert_eq!(rest, expected);
}
