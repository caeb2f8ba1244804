//! `sync --follow` against the simulator's webhooks v2: the real binary receives the
//! deliveries, and the destination is compared with Pipedrive's ground truth value by value
//! (the same comparison as the churn tests).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pipedrive_sim::{Plan, Scale, SimOptions, WebhookFaults, WebhookOptions};
use reqwest::Method;
use serde_json::{Value, json};

use crate::churn::{CHECKED, differences};
use crate::support::{Sim, Workspace, stderr};
use crate::sync_postgres;

/// Every stream webhooks report, read by polling too. History is left out: versions come
/// from the safety-net syncs.
const SELECTION: &str = "streams:\n  deals:\n  deals_archived:\n  persons:\n  organizations:\n  activities:\n  products:\n  notes:\n  leads:\n  leads_archived:\n  pipelines:\n  stages:\n";

/// The password the webhooks are registered with: a restart then reuses them, bans included.
const PASSWORD: &str = "test-webhook-secret";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

struct Follower {
    child: Child,
    port: u16,
    http: reqwest::Client,
}

impl Follower {
    fn start(workspace: &Workspace, sim: &Sim, port: u16, every: &str) -> Follower {
        let config = workspace.config_path();
        let listen = format!("127.0.0.1:{port}");
        let public_url = format!("http://127.0.0.1:{port}/pipedrive");
        let child = Command::new(env!("CARGO_BIN_EXE_pipedrive-sync"))
            .args(["sync", "--config", config.to_str().expect("utf-8 path")])
            .args(["--follow", "--listen", &listen, "--public-url", &public_url])
            .args(["--every", every])
            .current_dir(workspace.dir.path())
            .env("PDS_TEST_TOKEN", &sim.handle.api_token)
            .env("PIPEDRIVE_WEBHOOK_PASSWORD", PASSWORD)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary runs");
        Follower {
            child,
            port,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn health(&self) -> Option<Value> {
        let response = self.http.get(self.url("/healthz")).send().await.ok()?;
        response.json().await.ok()
    }

    /// Waits until `/healthz` satisfies `ready`, failing after `limit`.
    async fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        ready: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        let mut last = Value::Null;
        loop {
            if let Some(status) = self.health().await {
                if ready(&status) {
                    return status;
                }
                last = status;
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("the follower exited ({exit}) while waiting for {what}");
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {limit:?}; the last status: {last}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then the exit status and what it printed.
    fn stop(self) -> (std::process::ExitStatus, String) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let output = self.child.wait_with_output().expect("follower exits");
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reaped");
    }
}

async fn set_churn(sim: &Sim, per_second: f64) {
    sim.admin_call(
        Method::POST,
        "/__sim/churn",
        json!({"per_second": per_second}),
    )
    .await;
}

async fn webhook_stats(sim: &Sim) -> Value {
    sim.admin_get("/__sim/webhooks/stats").await
}

/// Waits until the simulator has nothing left to deliver (retries included).
async fn deliveries_settled(sim: &Sim) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = webhook_stats(sim).await;
        if stats["pending"] == json!(0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries still pending: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `time_scale` shrinks Pipedrive's delivery timing (retries 3/30/150 s, a 30-minute ban, a
/// reordered delivery held up to 2 s for the next one).
fn sim_options(seed: u64, time_scale: f64, faults: WebhookFaults) -> SimOptions {
    SimOptions {
        seed,
        scale: Scale::Tiny,
        plan: Plan::Unlimited,
        webhooks: WebhookOptions { time_scale, faults },
        ..SimOptions::default()
    }
}

/// Where the follower writes, read back for the comparison.
enum Target {
    DuckDb,
    Postgres(sync_postgres::Schema),
}

impl Target {
    fn configure(&self, workspace: &Workspace, sim: &Sim, extra: &str) {
        let selection = format!("{extra}{SELECTION}");
        match self {
            Target::DuckDb => {
                workspace.write_config(sim, &selection);
            }
            Target::Postgres(schema) => {
                sync_postgres::write_config(workspace, sim, schema, &selection)
            }
        }
    }

    /// Every followed entity equals the truth, value by value.
    async fn assert_equals_truth(&self, workspace: &Workspace, sim: &Sim) {
        let mut found = Vec::new();
        for stream in CHECKED {
            let rows = match self {
                Target::DuckDb => workspace.rows(&format!("main.{stream}"), "id"),
                Target::Postgres(schema) => schema.rows(stream, "id").await,
            };
            found.extend(differences(
                "follow",
                stream,
                &sim.truth(stream).await,
                &rows,
            ));
        }
        let first: Vec<String> = found.iter().take(20).cloned().collect();
        assert!(
            found.is_empty(),
            "{} differences from the truth (first 20):\n{}",
            found.len(),
            first.join("\n")
        );
    }
}

/// Our webhooks still registered in the simulator.
async fn our_webhooks(sim: &Sim) -> Vec<Value> {
    let listed = sim.api(Method::GET, "/api/v1/webhooks", None).await;
    listed["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|w| {
            w["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("pipedrive-sync "))
        })
        .collect()
}

/// Webhooks alone, with duplicated and reordered deliveries, keep every followed entity equal
/// to the truth: creates, changes, merges and deletes of every kind, with no sync after the
/// first one.
async fn webhooks_alone_converge(target: Target) {
    // A reordered delivery is held long enough for the next edit to overtake it.
    let sim = Sim::start_with(sim_options(
        7,
        0.5,
        WebhookFaults {
            duplicate_rate: 0.2,
            reorder_rate: 0.5,
            ..WebhookFaults::default()
        },
    ))
    .await;
    let workspace = Workspace::new();
    target.configure(
        &workspace,
        &sim,
        "defaults:\n  reconcile_deletes_every: never\n",
    );
    let mut follower = Follower::start(&workspace, &sim, free_port(), "1h");
    follower
        .wait_for("the first sync", Duration::from_secs(60), |s| {
            s["safety_net_syncs"] == json!(1)
        })
        .await;
    assert_eq!(
        our_webhooks(&sim).await.len(),
        9,
        "one webhook per followed object"
    );

    set_churn(&sim, 40.0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    set_churn(&sim, 0.0).await;
    // A few records edited many times within a second, every delivery held back until the next
    // one has gone: each edit arrives after the one that followed it, the last two included.
    sim.admin_call(
        Method::POST,
        "/__sim/webhooks/faults",
        json!({"reorder_rate": 1.0, "duplicate_rate": 0.2}),
    )
    .await;
    for id in sim.live_deal_ids().await.into_iter().take(3) {
        for edit in 0..10 {
            sim.retitle_deal(id, &format!("edit {edit} of {id}")).await;
        }
    }
    deliveries_settled(&sim).await;
    // Every attempt, duplicates included, reached the receiver.
    let sent = webhook_stats(&sim).await["attempted"].as_u64().unwrap_or(0);
    let status = follower
        .wait_for("every delivery applied", Duration::from_secs(30), |s| {
            s["received"].as_u64() == Some(sent) && s["last_applied_at"].is_string()
        })
        .await;
    // The batch that took the last delivery commits within its window.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (exit, stderr) = follower.stop();
    assert!(exit.success(), "follower: {exit}\n{stderr}");
    assert!(stderr.contains("follow:"), "{stderr}");
    assert_eq!(
        status["safety_net_syncs"],
        json!(1),
        "no sync after the churn: {status}"
    );
    assert!(status["applied"]["deletes"].as_u64() > Some(0), "{status}");
    assert!(status["applied"]["merges"].as_u64() > Some(0), "{status}");
    assert!(
        status["applied"]["stale"].as_u64() > Some(0),
        "duplicates seen: {status}"
    );
    let stats = webhook_stats(&sim).await;
    assert!(
        stats["duplicated"].as_u64() > Some(0) && stats["reordered"].as_u64() > Some(0),
        "{stats}"
    );

    target.assert_equals_truth(&workspace, &sim).await;
    assert!(
        our_webhooks(&sim).await.is_empty(),
        "the webhooks are removed on exit"
    );
    if let Target::Postgres(schema) = target {
        schema.drop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_alone_keep_duckdb_equal_to_the_truth_under_churn() {
    webhooks_alone_converge(Target::DuckDb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_alone_keep_postgres_equal_to_the_truth_under_churn() {
    webhooks_alone_converge(Target::Postgres(sync_postgres::Schema::new().await)).await;
}

/// Drops, duplicates, reordering, a follower killed mid-churn (its webhooks banned for the
/// failed deliveries, the events meanwhile lost) and restarted: once the churn stops, one
/// safety-net sync brings the destination to the truth.
#[tokio::test(flavor = "multi_thread")]
async fn the_safety_net_sync_converges_after_drops_a_ban_and_a_restart() {
    let sim = Sim::start_with(sim_options(
        11,
        0.01,
        WebhookFaults {
            duplicate_rate: 0.1,
            reorder_rate: 0.1,
            drop_rate: 0.05,
            ..WebhookFaults::default()
        },
    ))
    .await;
    let workspace = Workspace::new();
    Target::DuckDb.configure(
        &workspace,
        &sim,
        "defaults:\n  reconcile_deletes_every: 0s\n",
    );
    let port = free_port();
    let mut first = Follower::start(&workspace, &sim, port, "1h");
    first
        .wait_for("the first sync", Duration::from_secs(60), |s| {
            s["safety_net_syncs"] == json!(1)
        })
        .await;
    set_churn(&sim, 60.0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    first.kill();
    // Deliveries fail while nothing listens: ten failed first attempts ban a webhook.
    let deadline = Instant::now() + Duration::from_secs(20);
    while webhook_stats(&sim).await["bans"].as_u64() < Some(1) {
        assert!(
            Instant::now() < deadline,
            "no ban: {}",
            webhook_stats(&sim).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut second = Follower::start(&workspace, &sim, port, "2s");
    tokio::time::sleep(Duration::from_secs(2)).await;
    set_churn(&sim, 0.0).await;
    deliveries_settled(&sim).await;
    let settled = chrono::Utc::now();
    let status = second
        .wait_for(
            "a safety-net sync after the churn",
            Duration::from_secs(60),
            |s| {
                s["last_sync_started_at"]
                    .as_str()
                    .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                    .is_some_and(|at| at > settled)
            },
        )
        .await;
    let (exit, stderr) = second.stop();
    assert!(exit.success(), "follower: {exit}\n{stderr}");
    assert_eq!(our_webhooks(&sim).await.len(), 0, "removed on exit");
    let stats = webhook_stats(&sim).await;
    for fault in ["dropped", "duplicated", "reordered", "lost_to_ban"] {
        assert!(stats[fault].as_u64() > Some(0), "{fault}: {stats}");
    }
    assert!(status["applied"]["rows"].as_u64() > Some(0), "{status}");

    Target::DuckDb.assert_equals_truth(&workspace, &sim).await;
}

/// Bad credentials and bodies that are no event are refused with the right status and leave
/// the receiver running; the password never shows in the output.
#[tokio::test(flavor = "multi_thread")]
async fn the_receiver_refuses_bad_credentials_and_malformed_bodies_and_keeps_running() {
    let sim = Sim::start(Scale::Tiny, Plan::Unlimited).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams:\n  deals:\n");
    let mut follower = Follower::start(&workspace, &sim, free_port(), "1h");
    follower
        .wait_for("the first sync", Duration::from_secs(60), |s| {
            s["safety_net_syncs"] == json!(1)
        })
        .await;
    let http = reqwest::Client::new();
    let deliver = |user: &str, password: &str, body: &str| {
        http.post(follower.url("/pipedrive"))
            .basic_auth(user, Some(password))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
    };
    let event = json!({"meta": {"action": "change", "entity": "deal", "entity_id": "1",
        "timestamp": "2026-03-02T09:15:03.120Z"}, "data": {"id": 1}, "previous": {}})
    .to_string();
    assert_eq!(
        deliver("pipedrive-sync", "wrong", &event)
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        deliver("pipedrive-sync", PASSWORD, "{\"meta\":")
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        deliver("pipedrive-sync", PASSWORD, "{}")
            .await
            .unwrap()
            .status(),
        400
    );
    let status = follower
        .wait_for(
            "the receiver still answering",
            Duration::from_secs(5),
            |s| s["rejected"] == json!(3),
        )
        .await;
    assert_eq!(
        status["gap"],
        json!(true),
        "a refused body may be a lost change: {status}"
    );
    let (exit, stderr) = follower.stop();
    assert!(exit.success(), "{stderr}");
    assert!(
        stderr.contains("(401)") && stderr.contains("(400)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(PASSWORD),
        "the password was printed:\n{stderr}"
    );
}

/// Follow mode is refused where it cannot work, before anything is registered.
#[tokio::test(flavor = "multi_thread")]
async fn follow_mode_names_what_it_needs() {
    let sim = Sim::start(Scale::Tiny, Plan::Unlimited).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams:\n  deals:\n");
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let cases: [(&[&str], &str); 3] = [
        (&["--follow", "--listen", &listen], "--public-url"),
        (
            &[
                "--follow",
                "--listen",
                "nowhere",
                "--public-url",
                "http://x/",
            ],
            "--listen",
        ),
        (
            &["--follow", "--listen", &listen, "--public-url", "ftp://x/"],
            "--public-url",
        ),
    ];
    for (args, named) in cases {
        let output = workspace.sync(&sim, args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains(named),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    assert!(our_webhooks(&sim).await.is_empty());
}
