//! Bad input through the real binary: each case gets a message naming cause and fix, its
//! documented exit code, and never the token.

use pipedrive_sim::{Plan, Scale};

use crate::support::{Sim, Workspace, run_bench, run_binary, stderr};

fn code(output: &std::process::Output) -> i32 {
    output.status.code().expect("exited")
}

#[test]
fn discover_lists_streams_with_keys_and_modes() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_binary(&["discover", "--json"], &[], dir.path());
    assert_eq!(code(&output), 0);
    let streams: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let deals = streams
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "deals")
        .unwrap();
    assert_eq!(deals["primary_key"], serde_json::json!(["id"]));
    assert_eq!(deals["cursor_field"], "update_time");
    assert_eq!(
        deals["sync_modes"],
        serde_json::json!(["full-refresh", "incremental"])
    );
}

#[test]
fn config_mistakes_exit_2_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    let cases: &[(&str, &str)] = &[
        (
            "source: {api_token: a, base_url: 'http://127.0.0.1:9'}\nstreams: {dealz: }\n",
            "did you mean deals",
        ),
        (
            "source: {api_token: a, base_url: 'http://127.0.0.1:9'}\ntarget: {type: oracle}\n",
            "target.type",
        ),
        (
            "source: {api_token: a, base_url: 'http://127.0.0.1:9', start_date: 'next week'}\n",
            "YYYY-MM-DD",
        ),
        (
            "source: {api_token: '${PDS_MISSING_VAR}', company_domain: acme}\n",
            "PDS_MISSING_VAR",
        ),
        (
            "source:\n  api_token: a\n   company_domain: acme\n",
            "c.yaml",
        ),
        (
            "source: {api_token: a, company_domain: acme}\nsurprise: 1\n",
            "surprise",
        ),
    ];
    for (yaml, expected) in cases {
        std::fs::write(&config, yaml).unwrap();
        let output = run_binary(
            &["sync", "--config", config.to_str().unwrap()],
            &[],
            dir.path(),
        );
        assert_eq!(code(&output), 2, "{yaml}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(expected),
            "{yaml}: {}",
            stderr(&output)
        );
    }
    let missing = run_binary(
        &["sync", "--config", "/nonexistent/c.yaml"],
        &[],
        dir.path(),
    );
    assert_eq!(code(&missing), 2);
    assert!(
        stderr(&missing).contains("--config"),
        "{}",
        stderr(&missing)
    );
    std::fs::write(
        &config,
        "source: {api_token: a, base_url: 'http://127.0.0.1:9'}\n",
    )
    .unwrap();
    let unknown = run_binary(
        &[
            "sync",
            "--config",
            config.to_str().unwrap(),
            "--streams",
            "persns",
        ],
        &[],
        dir.path(),
    );
    assert_eq!(code(&unknown), 2);
    assert!(
        stderr(&unknown).contains("did you mean persons"),
        "{}",
        stderr(&unknown)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_exits_3_without_printing_it() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams:\n  deals:\n");
    let wrong = "0123456789abcdef0123456789abcdefdeadbeef";
    let output = run_binary(
        &[
            "-vv",
            "sync",
            "--config",
            workspace.config_path().to_str().unwrap(),
        ],
        &[("PDS_TEST_TOKEN", wrong)],
        workspace.dir.path(),
    );
    assert_eq!(code(&output), 3, "{}", stderr(&output));
    assert!(stderr(&output).contains("401"), "{}", stderr(&output));
    let everything = format!(
        "{}{}",
        stderr(&output),
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(!everything.contains(wrong), "the token leaked");
    let check = run_binary(
        &[
            "check",
            "--config",
            workspace.config_path().to_str().unwrap(),
        ],
        &[("PDS_TEST_TOKEN", wrong)],
        workspace.dir.path(),
    );
    assert_eq!(code(&check), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_reports_company_and_limits() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "");
    let output = workspace.run(
        &sim,
        &[
            "check",
            "--config",
            workspace.config_path().to_str().unwrap(),
        ],
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains(&sim.handle.company_domain), "{text}");
    assert!(
        text.contains("burst limit: 100 requests per 2 seconds"),
        "{text}"
    );
    assert!(!text.contains(&sim.handle.api_token));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_duckdb_path_exits_4_and_state_reset_restarts_a_stream() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    let bad = format!(
        "source:\n  api_token: ${{PDS_TEST_TOKEN}}\n  base_url: {}\ntarget:\n  path: /nonexistent-dir/x.duckdb\n",
        sim.handle.url
    );
    std::fs::write(workspace.config_path(), bad).unwrap();
    let output = workspace.sync(&sim, &[]);
    assert_eq!(code(&output), 4, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("does not exist"),
        "{}",
        stderr(&output)
    );

    workspace.write_config(&sim, "streams:\n  notes:\n");
    assert_eq!(code(&workspace.sync(&sim, &[])), 0);
    let config = workspace.config_path();
    let reset = workspace.run(
        &sim,
        &[
            "state",
            "reset",
            "notes",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&reset), 0, "{}", stderr(&reset));
    let shown = workspace.run(
        &sim,
        &["state", "show", "--config", config.to_str().unwrap()],
    );
    let state: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert!(state.get("notes").is_none(), "{state}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_appears_nowhere_after_a_verbose_sync() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "");
    let config = workspace.config_path();
    let token = sim.handle.api_token.clone();
    let mut seen = String::new();
    for args in [
        vec!["-vv", "sync", "--config", config.to_str().unwrap()],
        vec!["-vv", "check", "--config", config.to_str().unwrap()],
        vec!["-vv", "state", "show", "--config", config.to_str().unwrap()],
        vec![
            "-vv",
            "--log-format",
            "json",
            "sync",
            "--config",
            config.to_str().unwrap(),
        ],
    ] {
        let output = workspace.run(&sim, &args);
        assert_eq!(code(&output), 0, "{args:?}: {}", stderr(&output));
        seen.push_str(&stderr(&output));
        seen.push_str(&String::from_utf8_lossy(&output.stdout));
    }
    assert!(!seen.contains(&token), "the token reached stdout or stderr");
    // Every table, the state included, rendered as text.
    let connection = workspace.duckdb();
    let mut statement = connection
        .prepare("SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = current_database()")
        .unwrap();
    let tables: Vec<(String, String)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(tables.len() > 40, "{tables:?}");
    for (schema, table) in tables {
        let hits: i64 = connection
            .query_row(
                &format!("SELECT count(*) FROM \"{schema}\".\"{table}\" t WHERE CAST(to_json(t) AS VARCHAR) LIKE '%' || ? || '%'"),
                [&token],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(hits, 0, "the token is stored in {schema}.{table}");
    }
}

#[test]
fn bench_incremental_and_fanout_read_about_the_minimum_requests() {
    use pipedrive_engine::catalog::{self, PagingKind};
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let output = run_bench(
        &[
            "--scenarios",
            "incremental,fanout",
            // Small enough to be quick, big enough that re-reading a whole stream would
            // take several pages where its changes fit in one.
            "--incremental-scale",
            "small",
            "--fanout-scale",
            "tiny",
            "--change-percent",
            "5",
            "--json",
            json.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("a count: {v}"));

    let streams = report["incremental"]["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 6, "{report}");
    for s in streams {
        let def = catalog::find(s["stream"].as_str().unwrap()).unwrap();
        let (PagingKind::Cursor { limit } | PagingKind::Offset { limit }) = def.paging else {
            panic!("{} pages", def.name)
        };
        let changed = n(&s["changed"]);
        assert!(changed > 0, "{s}");
        // The incremental sync loaded every change (and read nothing else into those columns).
        assert_eq!(n(&s["loaded"]), changed, "{s}");
        let minimum = changed.div_ceil(u64::from(limit));
        // The fixed overhead: the stream's field definitions, read once a run, and one page
        // for the records changed within the lookback before the bookmark, which are read again.
        let overhead = u64::from(def.custom_fields.is_some()) + 1;
        let requests = n(&s["list_requests"]) + n(&s["field_requests"]);
        assert!(n(&s["list_requests"]) >= minimum, "{s}");
        assert!(
            requests as f64 <= 1.1 * minimum as f64 + overhead as f64,
            "{}: {requests} requests for {changed} changes: {s}",
            def.name
        );
        assert_eq!(n(&s["minimum"]), minimum, "{s}");
        assert_eq!(n(&s["overhead"]), overhead, "{s}");
        let ratio = s["ratio"].as_f64().unwrap();
        assert!(
            (ratio - n(&s["list_requests"]) as f64 / minimum as f64).abs() < 1e-9,
            "{s}"
        );
    }

    let fanout = &report["fanout"];
    let deals = n(&fanout["deals"]);
    let changed = n(&fanout["changed_deals"]);
    let again = n(&fanout["bookmark_deals"]);
    assert!(deals > 0 && changed > 0, "{fanout}");
    let children = fanout["children"].as_array().unwrap();
    assert_eq!(children.len(), 3, "{fanout}");
    for c in children {
        let per_request = n(&c["deals_per_request"]);
        // A full sync reads every deal's children, a request per deal or per 100 deals...
        assert_eq!(n(&c["full_requests"]), deals.div_ceil(per_request), "{c}");
        // ...and an incremental one only the changed deals' (and those in the lookback).
        let incremental = n(&c["incremental_requests"]);
        assert!(incremental >= changed.div_ceil(per_request), "{c}");
        assert!(
            incremental <= (changed + again).div_ceil(per_request),
            "{c}: {changed} changed deals, {again} within the lookback before the bookmark"
        );
    }
}
