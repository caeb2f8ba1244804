//! `pipedrive-sync plan`: its estimate of a run against the tokens that run then spends, by the
//! simulator's own count of the official token costs.

use pipedrive_sim::{Plan, Scale};
use reqwest::Method;
use serde_json::json;

use crate::support::{Sim, Workspace, assert_ok, stderr};

/// The scales compared: `small` in CI; `PDS_PLAN_SCALES=small,medium` for the longer run.
fn scales() -> Vec<Scale> {
    std::env::var("PDS_PLAN_SCALES")
        .unwrap_or_else(|_| "small".to_owned())
        .split(',')
        .map(|name| name.trim().parse().expect("a scale name"))
        .collect()
}

/// The `total` line's tokens of a `plan` answer.
fn estimated_tokens(plan: &str) -> u64 {
    let line = plan
        .lines()
        .find(|line| line.starts_with("total "))
        .unwrap_or_else(|| panic!("no total line in:\n{plan}"));
    let tokens = line.split_whitespace().last().expect("tokens");
    tokens.replace(',', "").parse().expect("a number")
}

/// Runs `plan`, then the sync it estimates; returns both token figures.
async fn estimate_then_sync(sim: &Sim, workspace: &Workspace) -> (u64, u64, String) {
    let config = workspace.config_path();
    let plan = workspace.run(sim, &["plan", "--config", config.to_str().unwrap()]);
    assert_ok(&plan);
    let answer = stderr(&plan);
    let before = sim.stats().await["tokens_spent"].as_u64().unwrap();
    assert_ok(&workspace.sync(sim, &[]));
    let spent = sim.stats().await["tokens_spent"].as_u64().unwrap() - before;
    (estimated_tokens(&answer), spent, answer)
}

fn assert_within_a_quarter(estimated: u64, spent: u64, run: &str, answer: &str) {
    let error = (estimated as f64 - spent as f64).abs() / spent as f64;
    // The figures docs/performance.md quotes (`--nocapture`).
    eprintln!("{run}: estimated {estimated} tokens, spent {spent}");
    assert!(
        error <= 0.25,
        "{run}: estimated {estimated} tokens, the run spent {spent} ({:.0}% off)\n{answer}",
        error * 100.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_estimates_first_and_incremental_runs_within_a_quarter() {
    for scale in scales() {
        let sim = Sim::start(scale, Plan::Growth).await;
        let workspace = Workspace::new();
        workspace.write_config(&sim, "");
        let label = format!("{scale:?}");

        let (estimated, spent, answer) = estimate_then_sync(&sim, &workspace).await;
        assert_within_a_quarter(estimated, spent, &format!("{label} first sync"), &answer);
        assert!(answer.contains("in full"), "{answer}");

        let (estimated, spent, answer) = estimate_then_sync(&sim, &workspace).await;
        assert_within_a_quarter(estimated, spent, &format!("{label} unchanged"), &answer);
        assert!(answer.contains("changes"), "{answer}");

        // One deal in a hundred changed.
        let ids = sim.live_deal_ids().await;
        for id in ids.iter().step_by(100) {
            sim.retitle_deal(*id, &format!("Changed {id}")).await;
            // Within the plan's burst limit, as a user's tool would pace itself.
            tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        }
        let (estimated, spent, answer) = estimate_then_sync(&sim, &workspace).await;
        assert_within_a_quarter(estimated, spent, &format!("{label} 1% changed"), &answer);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_says_how_many_days_a_sync_takes_when_the_budget_left_is_short() {
    let sim = Sim::start(Scale::Small, Plan::Growth).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "");
    let config = workspace.config_path();
    let config = config.to_str().unwrap();
    let plan = workspace.run(&sim, &["plan", "--config", config]);
    assert_ok(&plan);
    let answer = stderr(&plan);
    assert!(
        answer.contains("the sync fits in what is left today"),
        "{answer}"
    );
    // A company whose whole day's budget is less than the sync: a day's budget, less its
    // reserve, at a time.
    sim.admin_call(
        Method::POST,
        "/__sim/budget/reset",
        json!({"remaining": estimated_tokens(&answer)}),
    )
    .await;
    let plan = workspace.run(&sim, &["plan", "--config", config]);
    assert_ok(&plan);
    let answer = stderr(&plan);
    let figures = |after: &str| -> u64 {
        let at = answer
            .find(after)
            .unwrap_or_else(|| panic!("no `{after}` in:\n{answer}"));
        let text: String = answer[at + after.len()..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .filter(char::is_ascii_digit)
            .collect();
        text.parse()
            .unwrap_or_else(|_| panic!("a number after `{after}` in:\n{answer}"))
    };
    let (left, limit, kept) = (
        figures("daily token budget: "),
        figures(" of "),
        figures("runs leave "),
    );
    let days = figures("the sync takes about ");
    let (usable_today, usable_per_day) = (left.saturating_sub(kept), limit - kept);
    let needed = estimated_tokens(&answer);
    assert!(needed > usable_today, "{answer}");
    assert_eq!(
        days,
        1 + (needed - usable_today).div_ceil(usable_per_day),
        "{answer}"
    );
    assert!(days >= 2, "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_dry_run_prints_the_estimate_and_loads_nothing() {
    let sim = Sim::start(Scale::Tiny, Plan::Growth).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams:\n  deals:\n  notes:\n");
    let dry = workspace.sync(&sim, &["--dry-run"]);
    assert_ok(&dry);
    let answer = stderr(&dry);
    assert!(estimated_tokens(&answer) > 0, "{answer}");
    assert!(
        answer.contains("deals ") && answer.contains("notes "),
        "{answer}"
    );
    let tables: Vec<String> = workspace.snapshot().into_keys().collect();
    assert!(
        !tables
            .iter()
            .any(|t| t == "main.deals" || t == "main.notes"),
        "{tables:?}"
    );
}

/// The requests `plan` estimates for `stream`, read as a changes-only read.
fn changes_requests(answer: &str, stream: &str) -> u64 {
    let line = answer
        .lines()
        .find(|line| line.split_whitespace().next() == Some(stream))
        .unwrap_or_else(|| panic!("no {stream} line in:\n{answer}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        fields[1], "changes",
        "{stream} is estimated in full:\n{answer}"
    );
    fields[3].replace(',', "").parse().expect("a number")
}

/// Mail messages are read again only for the threads whose `update_time` moved: `plan`
/// counts those threads (as the run will select them), rather than one request per thread.
#[tokio::test(flavor = "multi_thread")]
async fn plan_counts_the_threads_whose_messages_a_run_reads_again() {
    const PER_THREAD: &str = "/api/v1/mailbox/mailThreads/{id}/mailMessages";
    let sim = Sim::start(Scale::Small, Plan::Unlimited).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams:\n  mail_threads:\n  mail_messages:\n");
    assert_ok(&workspace.sync(&sim, &[]));
    let threads = sim.truth("mail_threads").await;
    // A message arrives in three threads, wherever they are in the list.
    for thread in threads.iter().step_by(threads.len() / 3) {
        let id = thread["id"].as_i64().unwrap();
        let path = format!("/__sim/mail_threads/{id}/messages");
        sim.admin_call(Method::POST, &path, json!({})).await;
    }
    let config = workspace.config_path();
    let plan = workspace.run(&sim, &["plan", "--config", config.to_str().unwrap()]);
    assert_ok(&plan);
    let answer = stderr(&plan);
    let estimated = changes_requests(&answer, "mail_messages");
    sim.reset_stats().await;
    assert_ok(&workspace.sync(&sim, &[]));
    let read = sim.requests_to(PER_THREAD).await;
    // The figures docs/performance.md quotes (`--nocapture`).
    eprintln!(
        "mail messages: estimated {estimated} requests, the run made {read}, of {} threads",
        threads.len()
    );
    assert_eq!(estimated, read, "{answer}");
    assert!(
        (3..threads.len() as u64 / 4).contains(&read),
        "{read} of {} threads read again",
        threads.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_every_leaves_full_reads_alone_until_due_and_plan_counts_them_free() {
    let sim = Sim::start(Scale::Small, Plan::Growth).await;
    let workspace = Workspace::new();
    let streams = "streams:\n  deals:\n  pipelines:\n  stages:\n  currencies:\n";
    workspace.write_config(&sim, &format!("defaults:\n  refresh_every: 6h\n{streams}"));
    assert_ok(&workspace.sync(&sim, &[]));

    // A pipeline renamed in Pipedrive: the next run within six hours does not read it again.
    let pipeline = sim.truth("pipelines").await[0]["id"].as_i64().unwrap();
    let renamed = sim
        .api(
            Method::PATCH,
            &format!("/api/v2/pipelines/{pipeline}"),
            Some(json!({"name": "Renamed pipeline"})),
        )
        .await;
    assert_eq!(renamed["data"]["name"], "Renamed pipeline", "{renamed}");
    let (estimated, spent, answer) = estimate_then_sync(&sim, &workspace).await;
    assert_within_a_quarter(estimated, spent, "refresh_every not due", &answer);
    for stream in ["pipelines", "stages", "currencies"] {
        let line = answer
            .lines()
            .find(|line| line.starts_with(&format!("{stream} ")))
            .unwrap_or_else(|| panic!("no {stream} in:\n{answer}"));
        assert!(line.ends_with("refresh_every: not due"), "{line}");
    }
    sim.reset_stats().await;
    let quiet = workspace.sync(&sim, &[]);
    assert_ok(&quiet);
    for path in ["/api/v2/pipelines", "/api/v2/stages", "/api/v1/currencies"] {
        assert_eq!(sim.requests_to(path).await, 0, "{path} read again");
    }
    assert!(sim.requests_to("/api/v2/deals").await > 0);
    assert!(
        stderr(&quiet).contains("read in full 0m ago, and refresh_every is 6h"),
        "{}",
        stderr(&quiet)
    );
    let names = |rows: Vec<serde_json::Value>| -> Vec<String> {
        rows.iter()
            .map(|row| row["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert!(
        !names(workspace.rows("main.pipelines", "id")).contains(&"Renamed pipeline".to_owned())
    );

    // Without it, the next run reads every list again, and the tables equal Pipedrive's.
    workspace.write_config(&sim, streams);
    assert_ok(&workspace.sync(&sim, &[]));
    assert!(sim.requests_to("/api/v2/pipelines").await > 0);
    for stream in ["pipelines", "stages"] {
        let rows = workspace.rows(&format!("main.{stream}"), "id");
        crate::sync_duckdb::compare_with_truth(
            &sim,
            stream,
            "id",
            crate::sync_duckdb::Listed::Live,
            &rows,
        )
        .await;
    }
}
