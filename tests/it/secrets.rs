//! OAuth secrets: the client secret and every refresh and access token the simulator handed
//! out appear in no output, state, table or file after verbose runs that succeed and fail;
//! the token store that has to hold the refresh token is readable by its owner only.

use std::os::unix::fs::PermissionsExt;

use base64::Engine as _;
use pipedrive_sim::{OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET, Plan, Scale};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Sim, Workspace, quote, run_binary, stderr, stdout};

const TOKEN_STORE: &str = ".pipedrive-sync-refresh-token";

fn strings(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("a token").to_owned())
        .collect()
}

/// Checks a run's exit code and keeps everything it printed.
fn record(seen: &mut String, output: &std::process::Output, code: i32, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: {}",
        stderr(output)
    );
    seen.push_str(&stdout(output));
    seen.push_str(&stderr(output));
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth_secrets_appear_nowhere_after_verbose_runs_that_succeed_and_fail() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    let first_refresh_token = sim
        .admin_call(Method::POST, "/__sim/oauth/refresh_token", json!({}))
        .await["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned();
    let yaml = format!(
        "source:\n  base_url: {url}\n  oauth:\n    client_id: {OAUTH_CLIENT_ID}\n    client_secret: ${{PDS_CLIENT_SECRET}}\n    refresh_token: ${{PDS_REFRESH_TOKEN}}\n    token_url: {url}/oauth/token\ntarget:\n  path: {db}\n",
        url = sim.handle.url,
        db = workspace.db_path().display(),
    );
    std::fs::write(workspace.config_path(), yaml).unwrap();
    let config = workspace.config_path().display().to_string();
    let wrong_secret = "not-the-client-secret-5f2c9a81e7";
    let run = |args: &[&str], secret: &str| {
        run_binary(
            args,
            &[
                ("PDS_CLIENT_SECRET", secret),
                ("PDS_REFRESH_TOKEN", first_refresh_token.as_str()),
            ],
            workspace.dir.path(),
        )
    };

    let mut seen = String::new();
    // Successes: a text-logged and a JSON-logged sync (the second rotates the stored token
    // again), check and state show.
    record(
        &mut seen,
        &run(&["-vv", "sync", "--config", &config], OAUTH_CLIENT_SECRET),
        0,
        "sync",
    );
    record(
        &mut seen,
        &run(
            &["-vv", "--log-format", "json", "sync", "--config", &config],
            OAUTH_CLIENT_SECRET,
        ),
        0,
        "JSON-logged sync",
    );
    record(
        &mut seen,
        &run(&["-vv", "check", "--config", &config], OAUTH_CLIENT_SECRET),
        0,
        "check",
    );
    record(
        &mut seen,
        &run(
            &["-vv", "state", "show", "--config", &config],
            OAUTH_CLIENT_SECRET,
        ),
        0,
        "state show",
    );
    // Failures: a wrong client secret, then a refresh token that expired unused.
    record(
        &mut seen,
        &run(&["-vv", "sync", "--config", &config], wrong_secret),
        3,
        "wrong secret",
    );
    assert!(seen.contains("invalid client"), "{seen}");
    sim.admin_call(
        Method::POST,
        "/__sim/clock/advance",
        json!({"seconds": 61 * 86_400}),
    )
    .await;
    record(
        &mut seen,
        &run(&["-vv", "sync", "--config", &config], OAUTH_CLIENT_SECRET),
        3,
        "expired grant",
    );
    record(
        &mut seen,
        &run(&["-vv", "check", "--config", &config], OAUTH_CLIENT_SECRET),
        3,
        "expired check",
    );
    assert!(seen.contains("invalid grant"), "{seen}");

    let issued = sim
        .admin_call(Method::GET, "/__sim/oauth/issued", Value::Null)
        .await;
    let access_tokens = strings(&issued["access_tokens"]);
    let refresh_tokens = strings(&issued["refresh_tokens"]);
    assert!(access_tokens.len() >= 2, "{issued}");
    assert!(refresh_tokens.len() >= 3, "{issued}");
    let mut secrets = vec![OAUTH_CLIENT_SECRET.to_owned(), wrong_secret.to_owned()];
    // The secret as it travels, in the token request's Basic authorisation.
    for secret in [OAUTH_CLIENT_SECRET, wrong_secret] {
        secrets.push(
            base64::engine::general_purpose::STANDARD.encode(format!("{OAUTH_CLIENT_ID}:{secret}")),
        );
    }
    secrets.extend(access_tokens);
    secrets.extend(refresh_tokens.iter().cloned());
    for secret in &secrets {
        assert!(
            !seen.contains(secret.as_str()),
            "{secret} reached stdout or stderr"
        );
    }

    // Every table, the state included.
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
    for (schema, table) in &tables {
        for secret in &secrets {
            let hits: i64 = connection
                .query_row(
                    &format!(
                        "SELECT count(*) FROM {}.{} t WHERE contains(CAST(to_json(t) AS VARCHAR), ?)",
                        quote(schema),
                        quote(table)
                    ),
                    [secret],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(hits, 0, "{secret} is stored in {schema}.{table}");
        }
    }
    drop(statement);
    drop(connection);

    // Every file the runs left (the database, its WAL, the config), byte for byte, but the
    // token store, whose job is to keep the newest refresh token.
    let store = workspace.dir.path().join(TOKEN_STORE);
    for entry in std::fs::read_dir(workspace.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path == store || !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for secret in &secrets {
            assert!(
                !bytes
                    .windows(secret.len())
                    .any(|window| window == secret.as_bytes()),
                "{secret} is in {}",
                path.display()
            );
        }
    }
    let mode = std::fs::metadata(&store).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the token store is readable by others");
    let stored = std::fs::read_to_string(&store).unwrap();
    let newest = refresh_tokens.last().unwrap();
    assert!(
        stored.trim_end().ends_with(newest.as_str()),
        "the store keeps the newest refresh token"
    );
}
