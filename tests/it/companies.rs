//! Several companies in one config, and scheduled syncs: each company lands in its own schema
//! with its own state and budget, one failing leaves the others' data landed, and a schedule
//! stopped by SIGTERM saves its state and resumes cleanly.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pipedrive_sim::{Plan, Scale, SimOptions};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Sim, Workspace, assert_ok, run_binary, stderr};

const STREAMS: &str = "streams:\n  deals:\n  persons:\n  pipelines:\n  stages:\n";

/// A config listing `companies` as `(name, simulator, token)`, all into one DuckDB file.
fn config(workspace: &Workspace, companies: &[(&str, &Sim, &str)], extra: &str) -> String {
    let mut yaml = String::from("sources:\n");
    for (name, sim, token) in companies {
        yaml.push_str(&format!(
            "  - name: {name}\n    api_token: '{token}'\n    base_url: {}\n",
            sim.handle.url
        ));
    }
    yaml.push_str(&format!(
        "target:\n  type: duckdb\n  path: {}\n{STREAMS}{extra}",
        workspace.db_path().display()
    ));
    std::fs::write(workspace.config_path(), &yaml).expect("config written");
    yaml
}

fn sync(workspace: &Workspace, args: &[&str]) -> std::process::Output {
    let config = workspace.config_path();
    let mut all = vec!["sync", "--config", config.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    run_binary(&all, &[], workspace.dir.path())
}

/// Ids of the deals the simulator lists (not archived), as the deals table should hold them.
async fn listed_deal_ids(sim: &Sim) -> BTreeSet<i64> {
    sim.truth("deals")
        .await
        .iter()
        .filter(|d| d["is_archived"] != json!(true))
        .filter_map(|d| d["id"].as_i64())
        .collect()
}

fn ids(workspace: &Workspace, table: &str) -> BTreeSet<i64> {
    workspace
        .rows(table, "id")
        .iter()
        .filter_map(|row| row["id"].as_i64())
        .collect()
}

fn titles(workspace: &Workspace, table: &str) -> Vec<(i64, String)> {
    workspace
        .rows(table, "id")
        .iter()
        .map(|row| {
            (
                row["id"].as_i64().unwrap_or_default(),
                row["title"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn state_streams(workspace: &Workspace, schema: &str) -> BTreeSet<String> {
    workspace
        .rows(&format!("{schema}._pipedrive_sync_state"), "stream")
        .iter()
        .filter_map(|row| row["stream"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_companies_load_apart_and_a_bad_token_fails_alone() {
    let acme = Sim::start_with(SimOptions {
        seed: 11,
        scale: Scale::Tiny,
        plan: Plan::Premium,
        ..SimOptions::default()
    })
    .await;
    let globex = Sim::start_with(SimOptions {
        seed: 12,
        scale: Scale::Tiny,
        plan: Plan::Premium,
        ..SimOptions::default()
    })
    .await;
    let workspace = Workspace::new();
    config(
        &workspace,
        &[
            ("acme", &acme, &acme.handle.api_token),
            ("globex", &globex, &globex.handle.api_token),
        ],
        "",
    );

    let first = sync(&workspace, &[]);
    assert_ok(&first);
    let log = stderr(&first);
    assert!(
        log.contains("company acme:") && log.contains("company globex:"),
        "{log}"
    );
    // Each company's deals in its own schema, equal to its own simulator.
    assert_eq!(
        ids(&workspace, "acme_pipedrive.deals"),
        listed_deal_ids(&acme).await
    );
    assert_eq!(
        ids(&workspace, "globex_pipedrive.deals"),
        listed_deal_ids(&globex).await
    );
    assert_ne!(
        titles(&workspace, "acme_pipedrive.deals"),
        titles(&workspace, "globex_pipedrive.deals"),
        "two seeds make two different companies"
    );
    // Separate state, each with every stream, and each simulator saw only its own token.
    let expected: BTreeSet<String> = ["deals", "persons", "pipelines", "stages"]
        .map(str::to_owned)
        .into();
    assert_eq!(state_streams(&workspace, "acme_pipedrive"), expected);
    assert_eq!(state_streams(&workspace, "globex_pipedrive"), expected);
    for sim in [&acme, &globex] {
        let stats = sim.stats().await;
        assert!(stats["requests"].as_u64().unwrap_or(0) > 0, "{stats}");
        assert_eq!(stats["responses_by_status"]["401"], Value::Null, "{stats}");
    }

    // A change at acme; globex's token is revoked. Acme's change lands, globex fails alone
    // (exit 3 names it) and its tables stay as they were.
    let deal = *listed_deal_ids(&acme).await.first().expect("a deal");
    acme.api(
        Method::PATCH,
        &format!("/api/v2/deals/{deal}"),
        Some(json!({"title": "Renamed at acme"})),
    )
    .await;
    let globex_before = titles(&workspace, "globex_pipedrive.deals");
    config(
        &workspace,
        &[
            ("acme", &acme, &acme.handle.api_token),
            ("globex", &globex, "revoked-token"),
        ],
        "",
    );
    let second = sync(&workspace, &[]);
    assert_eq!(second.status.code(), Some(3), "{}", stderr(&second));
    let log = stderr(&second);
    assert!(log.contains("company globex:"), "{log}");
    assert!(
        !log.contains("error: company acme"),
        "acme did not fail: {}",
        &log[log.len().saturating_sub(3000)..]
    );
    assert!(
        titles(&workspace, "acme_pipedrive.deals").contains(&(deal, "Renamed at acme".to_owned()))
    );
    assert_eq!(titles(&workspace, "globex_pipedrive.deals"), globex_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_company_spends_from_its_own_budget() {
    let acme = Sim::start_with(SimOptions {
        seed: 21,
        scale: Scale::Small,
        plan: Plan::Premium,
        ..SimOptions::default()
    })
    .await;
    let globex = Sim::start_with(SimOptions {
        seed: 22,
        scale: Scale::Tiny,
        plan: Plan::Premium,
        ..SimOptions::default()
    })
    .await;
    let workspace = Workspace::new();
    // Acme may spend 30 tokens this run: it stops early (exit 75, resumable); globex's
    // budget is its own, so it completes.
    let yaml = format!(
        "sources:\n  - name: acme\n    api_token: '{}'\n    base_url: {}\n    max_tokens: 30\n  - name: globex\n    api_token: '{}'\n    base_url: {}\ntarget:\n  type: duckdb\n  path: {}\n{STREAMS}",
        acme.handle.api_token,
        acme.handle.url,
        globex.handle.api_token,
        globex.handle.url,
        workspace.db_path().display()
    );
    std::fs::write(workspace.config_path(), yaml).unwrap();
    let output = sync(&workspace, &[]);
    assert_eq!(output.status.code(), Some(75), "{}", stderr(&output));
    assert_eq!(
        ids(&workspace, "globex_pipedrive.deals"),
        listed_deal_ids(&globex).await
    );
    let charged = |stats: Value| stats["tokens_spent"].as_u64().unwrap_or(u64::MAX);
    assert!(charged(acme.stats().await) <= 30);
    assert!(charged(globex.stats().await) > 30);

    // The next run (no cap) resumes acme where it stopped and completes it.
    let yaml = std::fs::read_to_string(workspace.config_path())
        .unwrap()
        .replace("    max_tokens: 30\n", "");
    std::fs::write(workspace.config_path(), yaml).unwrap();
    assert_ok(&sync(&workspace, &[]));
    assert_eq!(
        ids(&workspace, "acme_pipedrive.deals"),
        listed_deal_ids(&acme).await
    );
}

#[test]
fn companies_must_not_share_a_schema_or_a_name() {
    let workspace = Workspace::new();
    let write = |yaml: &str| std::fs::write(workspace.config_path(), yaml).unwrap();
    let source = |name: &str| {
        format!("  - name: {name}\n    api_token: t\n    base_url: http://127.0.0.1:9\n")
    };
    write(&format!(
        "sources:\n{}{}target:\n  type: duckdb\n  schema: crm\n",
        source("acme"),
        source("globex")
    ));
    let output = sync(&workspace, &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("{company}"), "{}", stderr(&output));
    write(&format!("sources:\n{}{}", source("acme"), source("acme")));
    let output = sync(&workspace, &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("distinct `name`"),
        "{}",
        stderr(&output)
    );
    write(&format!("sources:\n{}{}", source("acme"), source("globex")));
    let output = sync(&workspace, &["--company", "initech"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("acme, globex"),
        "{}",
        stderr(&output)
    );
}

/// Lines of a `--log-format json` log whose message is `message`, as their `run` numbers.
fn runs_logged(log: &str, message: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == json!(message))
        .filter_map(|line| line["fields"]["run"].as_u64())
        .collect()
}

fn wait_for(path: &Path, deadline: Duration, done: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if done(&log) || start.elapsed() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_stopped_by_sigterm_saves_state_and_resumes() {
    // Latency makes a run last long enough to be stopped in the middle.
    let sim = Sim::start_with(SimOptions {
        scale: Scale::Tiny,
        plan: Plan::Premium,
        latency_ms: 40,
        ..SimOptions::default()
    })
    .await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, STREAMS);
    let log_path = workspace.dir.path().join("schedule.log");
    let config = workspace.config_path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipedrive-sync"))
        .args(["--log-format", "json", "sync", "--every", "1s", "--config"])
        .arg(&config)
        .env("PDS_TEST_TOKEN", &sim.handle.api_token)
        .env_remove("PIPEDRIVE_SYNC_LOG")
        .current_dir(workspace.dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("binary starts");

    // Let two runs finish and a third start, then stop it in the middle of that one.
    let log = wait_for(&log_path, Duration::from_secs(60), |log| {
        runs_logged(log, "scheduled run started").contains(&3)
    });
    assert!(
        runs_logged(&log, "scheduled run finished").starts_with(&[1, 2]),
        "{log}"
    );
    // Runs never overlap: each starts after the previous one finished.
    let order: Vec<(String, u64)> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|line| {
            let message = line["fields"]["message"].as_str()?.to_owned();
            let run = line["fields"]["run"].as_u64()?;
            message
                .starts_with("scheduled run")
                .then_some((message, run))
        })
        .collect();
    for pair in order.windows(2) {
        if pair[1].0 == "scheduled run started" {
            assert_eq!(pair[0].0, "scheduled run finished", "{order:?}");
            assert_eq!(pair[0].1 + 1, pair[1].1, "{order:?}");
        }
    }
    let stopped_at = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopped_at.elapsed() < Duration::from_secs(30),
            "the schedule did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("stopping"), "{log}");
    assert!(
        !runs_logged(&log, "scheduled run started").contains(&4),
        "no run starts after the stop: {log}"
    );

    // A change, then a plain sync: it resumes from the saved state and ends equal to the truth.
    let deal = *listed_deal_ids(&sim).await.first().expect("a deal");
    sim.api(
        Method::PATCH,
        &format!("/api/v2/deals/{deal}"),
        Some(json!({"title": "Changed after the stop"})),
    )
    .await;
    assert_ok(&workspace.sync(&sim, &[]));
    assert_eq!(ids(&workspace, "main.deals"), listed_deal_ids(&sim).await);
    assert!(
        titles(&workspace, "main.deals").contains(&(deal, "Changed after the stop".to_owned()))
    );
}
