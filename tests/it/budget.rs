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
    assert_streams_equal_the_truth(&sim, &workspace).await;
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
async fn a_run_leaves_the_budget_reserve_unspent_says_what_is_left_and_the_next_run_continues() {
    let sim = Sim::start(Scale::Small, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, STREAMS);
    // A day's budget less than these streams cost, a fifth of it the reserve.
    let limit = LIMIT;
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
    // The estimate of what is left was paid for too, with tokens held above the reserve.
    assert!(
        remaining >= keep,
        "the run spent into the reserve: {remaining} left, {keep} kept"
    );
    let spent_today = sim.stats().await["tokens_spent"].as_u64().unwrap();
    assert_eq!(spent_today, limit - remaining);
    // The summary says what the rest costs and how many days of this budget it takes.
    let estimated = left_for_the_next_runs(&stderr(&stopped));
    let per_day = limit - keep;
    let days = estimated.div_ceil(per_day);
    let days_text = format!(
        "at {per_day} tokens a day above the reserve, {days} more day{}",
        if days == 1 { "" } else { "s" }
    );
    assert!(
        stderr(&stopped).contains(&days_text),
        "{days_text}\n{}",
        stderr(&stopped)
    );

    // A new day: the next run finishes, at about the cost estimated.
    sim.admin_call(Method::POST, "/__sim/budget/reset", json!({}))
        .await;
    sim.reset_stats().await;
    let finished = workspace.sync(&sim, &[]);
    assert_ok(&finished);
    // What the estimate covers: the unfinished streams, and the definitions and checks every
    // run reads; not the page of changes of a stream the stopped run finished.
    let done: u64 = ["deals", "persons", "activities", "notes"]
        .into_iter()
        .filter(|stream| summary_row(&stderr(&stopped), stream).ends_with(" done"))
        .map(|stream| summary_tokens(&stderr(&finished), stream))
        .sum();
    let spent = sim.stats().await["tokens_spent"].as_u64().unwrap() - done;
    let error = estimated.abs_diff(spent) as f64 / spent as f64;
    // The figure docs/performance.md quotes (`--nocapture`).
    eprintln!("the rest: estimated {estimated} tokens, spent {spent}");
    assert!(
        error <= 0.25,
        "estimated {estimated} tokens for the rest, the run spent {spent}"
    );
    assert!(
        left_for_the_next_runs_line(&stderr(&finished)).is_none(),
        "a finished run leaves nothing: {}",
        stderr(&finished)
    );
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
    assert_streams_equal_the_truth(&sim, &workspace).await;
}

/// Every stream of [`STREAMS`] holds what Pipedrive lists, value by value.
async fn assert_streams_equal_the_truth(sim: &Sim, workspace: &Workspace) {
    for (stream, listed) in [
        ("deals", Listed::NotArchived),
        ("persons", Listed::Live),
        ("activities", Listed::Live),
        ("notes", Listed::Live),
    ] {
        let rows = workspace.rows(&format!("main.{stream}"), "id");
        compare_with_truth(sim, stream, "id", listed, &rows).await;
    }
}

/// A stream's row in a run's summary.
fn summary_row<'a>(stderr: &'a str, stream: &str) -> &'a str {
    stderr
        .lines()
        .find(|line| line.split_whitespace().next() == Some(stream))
        .unwrap_or_else(|| panic!("no {stream} in:\n{stderr}"))
}

/// A stream's tokens in a run's summary.
fn summary_tokens(stderr: &str, stream: &str) -> u64 {
    let line = summary_row(stderr, stream);
    line.split_whitespace()
        .nth(3)
        .and_then(|tokens| tokens.parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

/// A daily budget that pays for a part of [`STREAMS`]' first sync at `small`.
const LIMIT: u64 = 540;

fn left_for_the_next_runs_line(stderr: &str) -> Option<&str> {
    stderr
        .lines()
        .find(|line| line.starts_with("left for the next runs: about "))
}

/// The tokens the summary's last lines say the rest of the work costs.
fn left_for_the_next_runs(stderr: &str) -> u64 {
    let line = left_for_the_next_runs_line(stderr).unwrap_or_else(|| panic!("{stderr}"));
    line["left for the next runs: about ".len()..]
        .split(' ')
        .next()
        .and_then(|tokens| tokens.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}
