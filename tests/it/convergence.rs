//! Correct while Pipedrive changes under the sync: a change that shows in a list after changes
//! stamped later (replication lag, a long transaction, same-second ties behind the cursor) is
//! still read by the next incremental run.

use pipedrive_sim::{Plan, Scale};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Sim, Workspace, assert_ok};

async fn live_deal_ids(sim: &Sim, n: usize) -> Vec<i64> {
    sim.truth("deals")
        .await
        .iter()
        .filter(|d| d["is_deleted"] != json!(true) && d["is_archived"] != json!(true))
        .filter_map(|d| d["id"].as_i64())
        .take(n)
        .collect()
}

async fn retitle(sim: &Sim, id: i64, title: &str) {
    let answer = sim
        .api(
            Method::PATCH,
            &format!("/api/v2/deals/{id}"),
            Some(json!({"title": title})),
        )
        .await;
    assert_eq!(answer["data"]["title"], title, "{answer}");
}

fn loaded_title(workspace: &Workspace, id: i64) -> Value {
    let rows = workspace.rows(&format!("main.deals WHERE id = {id}"), "id");
    rows[0]["title"].clone()
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
    let ids = live_deal_ids(&sim, 2).await;
    assert_ok(&workspace.sync(&sim, &[]));
    retitle(&sim, ids[0], "seen at once").await;
    assert_ok(&workspace.sync(&sim, &[]));
    assert_eq!(loaded_title(&workspace, ids[0]), "seen at once");

    sim.set_faults(json!({"write_lag_ms": 30_000})).await;
    retitle(&sim, ids[1], "shown late").await;
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
