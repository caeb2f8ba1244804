//! The daily token budget and the per-run token cap: a clean stop with exit 75 and the reset
//! time, state saved, and a later run that resumes where the stop happened.

use pipedrive_sim::{Plan, Scale};
use reqwest::Method;
use serde_json::json;

use crate::support::{Sim, Workspace, assert_ok, stderr};
use crate::sync_duckdb::{Listed, compare_with_truth};

const STREAMS: &str = "concurrency: 1\nstreams:\n  deals:\n  persons:\n  activities:\n  notes:\n";

#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_daily_budget_stops_with_75_and_the_next_run_resumes() {
    let sim = Sim::start(Scale::Small, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, STREAMS);
    // Enough for a few pages, not for the whole company.
    sim.admin_call(
        Method::POST,
        "/__sim/budget/reset",
        json!({"remaining": 45}),
    )
    .await;
    let stopped = workspace.sync(&sim, &[]);
    assert_eq!(stopped.status.code(), Some(75), "{}", stderr(&stopped));
    assert!(
        stderr(&stopped).contains("resets at"),
        "{}",
        stderr(&stopped)
    );
    let requests_when_stopped = sim.stats().await["requests"].as_u64().unwrap();
    assert!(
        requests_when_stopped <= 6,
        "no retry loop against a spent budget: {}",
        sim.stats().await
    );

    // After the reset, the next run finishes and the data equals the source.
    sim.admin_call(Method::POST, "/__sim/budget/reset", json!({}))
        .await;
    assert_ok(&workspace.sync(&sim, &[]));
    for (stream, listed) in [
        ("deals", Listed::NotArchived),
        ("persons", Listed::Live),
        ("activities", Listed::Live),
        ("notes", Listed::Live),
    ] {
        let rows = workspace.rows(&format!("main.{stream}"), "id");
        compare_with_truth(&sim, stream, "id", listed, &rows).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn max_tokens_caps_what_one_run_spends() {
    let sim = Sim::start(Scale::Small, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, STREAMS);
    let config = std::fs::read_to_string(workspace.config_path())
        .unwrap()
        .replace("  base_url:", "  max_tokens: 30\n  base_url:");
    std::fs::write(workspace.config_path(), config).unwrap();
    let stopped = workspace.sync(&sim, &[]);
    assert_eq!(stopped.status.code(), Some(75), "{}", stderr(&stopped));
    let spent = sim.stats().await["tokens_spent"].as_u64().unwrap();
    assert!(spent <= 30, "spent {spent} tokens with max_tokens 30");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_leaves_the_budget_reserve_unspent_and_the_next_run_continues() {
    let sim = Sim::start(Scale::Small, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, STREAMS);
    // A day's budget of 250 tokens, less than these streams cost: 50 of them are the reserve.
    let limit = 250;
    sim.admin_call(
        Method::POST,
        "/__sim/budget/reset",
        json!({"remaining": limit}),
    )
    .await;
    let keep = limit * u64::from(pipedrive_config::DEFAULT_BUDGET_RESERVE_PERCENT) / 100;
    let stopped = workspace.sync(&sim, &[]);
    assert_eq!(stopped.status.code(), Some(75), "{}", stderr(&stopped));
    assert!(
        stderr(&stopped).contains("budget_reserve_percent"),
        "{}",
        stderr(&stopped)
    );
    let remaining = sim.admin_get("/__sim/budget").await["remaining"]
        .as_u64()
        .unwrap();
    assert!(
        remaining >= keep,
        "the run spent into the reserve: {remaining} left, {keep} kept"
    );
    assert!(remaining < limit, "the run read nothing");

    sim.admin_call(Method::POST, "/__sim/budget/reset", json!({}))
        .await;
    let finished = workspace.sync(&sim, &[]);
    assert_ok(&finished);
    // The summary says what is left of the day's budget, as the server counts it.
    let budget = sim.admin_get("/__sim/budget").await;
    let full = budget["limit"].as_u64().unwrap();
    let percent = pipedrive_config::DEFAULT_BUDGET_RESERVE_PERCENT;
    let line = format!(
        "daily token budget: {} of {full} left; runs leave {} ({percent}%)",
        budget["remaining"],
        full * u64::from(percent) / 100
    );
    assert!(
        stderr(&finished).contains(&line),
        "{line}\n{}",
        stderr(&finished)
    );
    let rows = workspace.rows("main.deals", "id");
    compare_with_truth(&sim, "deals", "id", Listed::NotArchived, &rows).await;
}
