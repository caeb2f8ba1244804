//! Singer and Airbyte modes through the real binary, judged by the protocols' own tools: a
//! Singer target installed from PyPI reads the tap's output, and Airbyte's published message
//! models validate every line the source prints. `.ci/run` installs both into its cache.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use pipedrive_sim::{Plan, Scale};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Sim, run_binary, stderr};

/// A tool `.ci/run` installs: from `var`, else from the cache's venv. Missing is a failure, not
/// a skip, so a run without them cannot pass unnoticed.
fn tool(var: &str, in_venv: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("PIPEDRIVE_SYNC_CACHE")
            .unwrap_or_else(|| "/var/tmp/pipedrive-sync-cache".into());
        Path::new(&cache).join("venv/bin").join(in_venv)
    });
    assert!(
        path.exists(),
        "{} is missing ({var} unset or wrong): run .ci/run, which installs the Singer target and \
         airbyte-protocol-models into a venv in its cache",
        path.display()
    );
    path
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

fn protocol_config(sim: &Sim, dir: &Path) -> PathBuf {
    let path = dir.join("config.json");
    write_json(
        &path,
        &json!({"api_token": sim.handle.api_token, "base_url": sim.handle.url}),
    );
    path
}

/// Ids of the records a sync should deliver for an entity: the ground truth less what the
/// API does not list.
async fn truth_ids(sim: &Sim, entity: &str) -> BTreeSet<String> {
    sim.truth(entity)
        .await
        .iter()
        .filter(|r| r["is_archived"] != json!(true))
        .map(|r| r["id"].to_string())
        .collect()
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display())))
        .collect()
}

fn ids(records: &[Value]) -> BTreeSet<String> {
    records.iter().map(|r| r["id"].to_string()).collect()
}

/// `pipedrive-sync singer ...` piped into target-jsonl writing into `out`; returns the state
/// the target printed and the tap's stderr.
fn tap_into_target(dir: &Path, args: &[&str], out: &Path) -> (String, String) {
    let target_config = dir.join("target.json");
    write_json(
        &target_config,
        &json!({"destination_path": out, "do_timestamp_file": false}),
    );
    let tap_log = dir.join("tap.log");
    let mut tap = Command::new(env!("CARGO_BIN_EXE_pipedrive-sync"))
        .arg("singer")
        .args(args)
        .current_dir(dir)
        .env_remove("PIPEDRIVE_SYNC_LOG")
        .stdout(Stdio::piped())
        .stderr(File::create(&tap_log).unwrap())
        .spawn()
        .expect("the tap starts");
    let target = Command::new(tool("PDS_SINGER_TARGET", "target-jsonl"))
        .args(["--config", target_config.to_str().unwrap()])
        .stdin(tap.stdout.take().unwrap())
        .output()
        .expect("the target runs");
    let tap_status = tap.wait().unwrap();
    let log = std::fs::read_to_string(&tap_log).unwrap();
    assert!(tap_status.success(), "tap: {tap_status}\n{log}");
    assert!(
        target.status.success(),
        "target-jsonl: {}\n{log}",
        String::from_utf8_lossy(&target.stderr)
    );
    let state = String::from_utf8(target.stdout).unwrap();
    (state.lines().last().unwrap_or("").to_owned(), log)
}

#[tokio::test(flavor = "multi_thread")]
async fn singer_tap_feeds_a_real_target_and_resumes_from_its_state() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let dir = tempfile::tempdir().unwrap();
    let config = protocol_config(&sim, dir.path());

    let discovered = run_binary(
        &["singer", "--config", config.to_str().unwrap(), "--discover"],
        &[],
        dir.path(),
    );
    assert!(discovered.status.success(), "{}", stderr(&discovered));
    let mut catalog: Value = serde_json::from_slice(&discovered.stdout).unwrap();
    let wanted = ["deals", "users", "pipelines"];
    for stream in catalog["streams"].as_array_mut().unwrap() {
        let selected = wanted.contains(&stream["stream"].as_str().unwrap());
        stream["metadata"][0]["metadata"]["selected"] = json!(selected);
    }
    let catalog_path = dir.path().join("catalog.json");
    write_json(&catalog_path, &catalog);

    let first = dir.path().join("first");
    let base = [
        "--config",
        config.to_str().unwrap(),
        "--catalog",
        catalog_path.to_str().unwrap(),
    ];
    let (state, log) = tap_into_target(dir.path(), &base, &first);
    for (stream, entity) in [
        ("deals", "deals"),
        ("users", "users"),
        ("pipelines", "pipelines"),
    ] {
        let records = jsonl(&first.join(format!("{stream}.jsonl")));
        assert_eq!(ids(&records), truth_ids(&sim, entity).await, "{stream}");
        assert_eq!(
            records.len(),
            ids(&records).len(),
            "{stream}: each record once"
        );
    }
    let deals = jsonl(&first.join("deals.jsonl"));
    assert!(
        deals
            .iter()
            .all(|d| d["update_time"].as_str().is_some_and(|t| t.contains('T'))),
        "timestamps in RFC 3339"
    );
    assert!(
        !first.join("persons.jsonl").exists(),
        "only selected streams are synced"
    );
    let state_value: Value =
        serde_json::from_str(&state).expect("the target prints the last state");
    assert!(
        state_value["bookmarks"]["deals"]["bookmark"].is_string(),
        "{state}"
    );
    for text in [
        &state,
        &log,
        &std::fs::read_to_string(first.join("deals.jsonl")).unwrap(),
    ] {
        assert!(!text.contains(&sim.handle.api_token), "the token leaked");
    }

    // One change, then a run from the state: only the change is read.
    let deal_id = sim.live_deal_ids().await[0];
    sim.retitle_deal(deal_id, "Renamed by the Singer test")
        .await;
    sim.reset_stats().await;
    let state_path = dir.path().join("state.json");
    std::fs::write(&state_path, &state).unwrap();
    let second = dir.path().join("second");
    let mut args = base.to_vec();
    args.extend(["--state", state_path.to_str().unwrap()]);
    tap_into_target(dir.path(), &args, &second);
    assert_eq!(
        sim.requests_to("/api/v2/deals").await,
        1,
        "{}",
        sim.stats().await
    );
    let changed = jsonl(&second.join("deals.jsonl"));
    assert!(
        changed.len() < deals.len(),
        "{} of {} deals re-read",
        changed.len(),
        deals.len()
    );
    let renamed = changed
        .iter()
        .find(|d| d["id"] == json!(deal_id))
        .expect("the changed deal is re-read");
    assert_eq!(renamed["title"], "Renamed by the Singer test");

    // A state file of the wrong shape is a usage error naming the shape.
    std::fs::write(&state_path, r#"{"deals": {}}"#).unwrap();
    let mut all = vec!["singer"];
    all.extend_from_slice(&base);
    all.extend(["--state", state_path.to_str().unwrap()]);
    let wrong = run_binary(&all, &[], dir.path());
    assert_eq!(wrong.status.code(), Some(2), "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("bookmarks"), "{}", stderr(&wrong));
    assert!(wrong.stdout.is_empty(), "nothing on the data channel");
}

fn airbyte(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["airbyte"];
    all.extend_from_slice(args);
    run_binary(&all, &[], dir)
}

fn messages(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Runs the committed validator over every line, with Airbyte's own models.
fn validate_with_airbyte_models(dir: &Path, stdout: &[u8], configured: &Path) -> Value {
    let file = dir.join("messages.jsonl");
    std::fs::write(&file, stdout).unwrap();
    let script = crate::support::manifest_dir().join("tests/protocol/validate_airbyte.py");
    let output = Command::new(tool("PDS_PYTHON", "python"))
        .arg(script)
        .arg(&file)
        .args(["--configured-catalog", configured.to_str().unwrap()])
        .output()
        .expect("the validator runs");
    assert!(
        output.status.success(),
        "validator: {}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn airbyte_source_speaks_the_published_protocol() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let dir = tempfile::tempdir().unwrap();
    let config = protocol_config(&sim, dir.path());
    let config = config.to_str().unwrap();
    let bad_config = dir.path().join("bad.json");
    write_json(
        &bad_config,
        &json!({"api_token": "not-the-token", "base_url": sim.handle.url}),
    );
    let bad_config = bad_config.to_str().unwrap();
    let configured = dir.path().join("configured.json");
    let stream = |name: &str, mode: &str| {
        json!({"stream": {"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"]},
               "sync_mode": mode, "destination_sync_mode": if mode == "incremental" { "append_dedup" } else { "overwrite" },
               "primary_key": [["id"]]})
    };
    write_json(
        &configured,
        &json!({"streams": [stream("deals", "incremental"), stream("users", "incremental"),
                            stream("pipelines", "full_refresh"), stream("deal_products", "incremental")]}),
    );
    let catalog = configured.to_str().unwrap();

    let spec = airbyte(dir.path(), &["spec"]);
    let check = airbyte(dir.path(), &["check", "--config", config]);
    let failed_check = airbyte(dir.path(), &["check", "--config", bad_config]);
    let discover = airbyte(dir.path(), &["discover", "--config", config]);
    let read = airbyte(
        dir.path(),
        &["read", "--config", config, "--catalog", catalog],
    );
    let failed_read = airbyte(
        dir.path(),
        &["read", "--config", bad_config, "--catalog", catalog],
    );
    for output in [&spec, &check, &failed_check, &discover, &read] {
        assert!(output.status.success(), "{}", stderr(output));
    }
    assert_eq!(
        failed_read.status.code(),
        Some(3),
        "bad credentials: {}",
        stderr(&failed_read)
    );

    let all: Vec<u8> = [&spec, &check, &failed_check, &discover, &read, &failed_read]
        .iter()
        .flat_map(|o| o.stdout.clone())
        .collect();
    let text = String::from_utf8(all.clone()).unwrap();
    assert!(
        !text.contains(&sim.handle.api_token),
        "the token leaked to stdout"
    );
    for output in [&check, &read, &failed_read] {
        assert!(
            !stderr(output).contains(&sim.handle.api_token),
            "the token leaked to stderr"
        );
    }
    let counts = validate_with_airbyte_models(dir.path(), &all, &configured);
    for kind in [
        "SPEC",
        "CONNECTION_STATUS",
        "CATALOG",
        "RECORD",
        "STATE",
        "TRACE",
        "LOG",
    ] {
        assert!(
            counts[kind].as_u64().is_some_and(|n| n > 0),
            "no {kind}: {counts}"
        );
    }

    assert_eq!(
        messages(&check)[0]["connectionStatus"]["status"],
        "SUCCEEDED"
    );
    assert_eq!(
        messages(&failed_check)[0]["connectionStatus"]["status"],
        "FAILED"
    );
    let error = messages(&failed_read)
        .into_iter()
        .find(|m| m["type"] == "TRACE" && m["trace"]["type"] == "ERROR")
        .expect("an error trace");
    assert_eq!(error["trace"]["error"]["failure_type"], "config_error");
    let streams = &messages(&discover)[0]["catalog"]["streams"];
    assert_eq!(
        streams.as_array().unwrap().len(),
        pipedrive_engine::CATALOG.len()
    );

    let read_messages = messages(&read);
    let records = |stream: &str| -> Vec<Value> {
        read_messages
            .iter()
            .filter(|m| m["type"] == "RECORD" && m["record"]["stream"] == stream)
            .map(|m| m["record"]["data"].clone())
            .collect()
    };
    for entity in ["deals", "users", "pipelines"] {
        assert_eq!(
            ids(&records(entity)),
            truth_ids(&sim, entity).await,
            "{entity}"
        );
    }
    assert!(!records("deal_products").is_empty());
    let emitted: BTreeSet<&str> = read_messages
        .iter()
        .filter(|m| m["type"] == "RECORD")
        .map(|m| m["record"]["stream"].as_str().unwrap())
        .collect();
    assert_eq!(
        emitted,
        BTreeSet::from(["deals", "deal_products", "pipelines", "users"])
    );

    // The last state of each stream, as Airbyte would keep it, makes the next read incremental.
    let mut last_states = std::collections::BTreeMap::new();
    for message in read_messages.iter().filter(|m| m["type"] == "STATE") {
        last_states.insert(
            message["state"]["stream"]["stream_descriptor"]["name"].to_string(),
            message["state"].clone(),
        );
    }
    assert_eq!(last_states.len(), 4);
    let state_path = dir.path().join("state.json");
    write_json(
        &state_path,
        &Value::Array(last_states.into_values().collect()),
    );
    sim.reset_stats().await;
    let again = airbyte(
        dir.path(),
        &[
            "read",
            "--config",
            config,
            "--catalog",
            catalog,
            "--state",
            state_path.to_str().unwrap(),
        ],
    );
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        sim.requests_to("/api/v2/deals").await,
        1,
        "{}",
        sim.stats().await
    );
    let deals_again = messages(&again)
        .iter()
        .filter(|m| m["type"] == "RECORD" && m["record"]["stream"] == "deals")
        .count();
    assert!(
        deals_again < records("deals").len(),
        "{deals_again} deals re-read"
    );
}

/// The SCHEMA messages of one tap run, by stream, and its records.
fn schemas_and_records(output: &Output) -> (BTreeMap<String, Value>, Vec<Value>) {
    let mut schemas = BTreeMap::new();
    let mut records = Vec::new();
    for message in messages(output) {
        match message["type"].as_str() {
            Some("SCHEMA") => {
                let stream = message["stream"].as_str().unwrap().to_owned();
                let earlier = schemas.insert(stream.clone(), message);
                assert!(earlier.is_none(), "{stream}: one SCHEMA a run");
            }
            Some("RECORD") => records.push(message),
            _ => {}
        }
    }
    (schemas, records)
}

/// The last STATE message's value, as `--state` takes it back.
fn last_state(output: &Output) -> Value {
    messages(output)
        .into_iter()
        .rfind(|m| m["type"] == "STATE")
        .expect("a STATE message")["value"]
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn singer_schemas_are_the_same_on_every_run_until_a_field_is_added() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let dir = tempfile::tempdir().unwrap();
    let config = protocol_config(&sim, dir.path());
    let config = config.to_str().unwrap();
    let discover = || {
        let output = run_binary(
            &["singer", "--config", config, "--discover"],
            &[],
            dir.path(),
        );
        assert!(output.status.success(), "{}", stderr(&output));
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    let mut catalog = discover();
    assert_eq!(catalog, discover(), "discover is stable");
    for stream in catalog["streams"].as_array_mut().unwrap() {
        let name = stream["stream"].as_str().unwrap().to_owned();
        for entry in stream["metadata"].as_array_mut().unwrap() {
            let breadcrumb = entry["breadcrumb"].clone();
            if breadcrumb == json!([]) {
                entry["metadata"]["selected"] = json!(name == "deals" || name == "persons");
            }
            // Deselecting a column leaves it out; deselecting the key cannot.
            if name == "deals"
                && (breadcrumb == json!(["properties", "title"])
                    || breadcrumb == json!(["properties", "id"]))
            {
                entry["metadata"]["selected"] = json!(false);
            }
        }
    }
    let deals_entry = catalog["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == "deals")
        .unwrap()
        .clone();
    let properties = deals_entry["schema"]["properties"].as_object().unwrap();
    assert_eq!(properties["id"], json!({"type": ["null", "integer"]}));
    assert_eq!(
        properties["update_time"],
        json!({"type": ["null", "string"], "format": "date-time"})
    );
    assert!(
        properties.len() > 30,
        "built-in and custom columns: {properties:?}"
    );
    let inclusion = |column: &str| {
        deals_entry["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["breadcrumb"] == json!(["properties", column]))
            .map(|m| m["metadata"]["inclusion"].clone())
    };
    assert_eq!(inclusion("id"), Some(json!("automatic")));
    assert_eq!(inclusion("update_time"), Some(json!("automatic")));
    assert_eq!(inclusion("value"), Some(json!("available")));
    let catalog_path = dir.path().join("catalog.json");
    write_json(&catalog_path, &catalog);
    let state_path = dir.path().join("state.json");
    let tap = |state: Option<&Value>| {
        let mut args = vec![
            "singer",
            "--config",
            config,
            "--catalog",
            catalog_path.to_str().unwrap(),
        ];
        if let Some(state) = state {
            write_json(&state_path, state);
            args.extend(["--state", state_path.to_str().unwrap()]);
        }
        let output = run_binary(&args, &[], dir.path());
        assert!(output.status.success(), "{}", stderr(&output));
        output
    };

    let first = tap(None);
    let (first_schemas, records) = schemas_and_records(&first);
    assert_eq!(
        first_schemas.keys().collect::<Vec<_>>(),
        ["deals", "persons"]
    );
    let deal_schema = &first_schemas["deals"]["schema"]["properties"];
    assert!(
        deal_schema.get("title").is_none(),
        "deselected: {deal_schema}"
    );
    assert!(deal_schema.get("id").is_some(), "the key stays");
    let mut declared = deals_entry["schema"].clone();
    declared["properties"]
        .as_object_mut()
        .unwrap()
        .remove("title");
    assert_eq!(
        first_schemas["deals"]["schema"], declared,
        "SCHEMA is what discover declared"
    );
    for record in records.iter().filter(|r| r["stream"] == "deals") {
        assert!(record["record"].get("title").is_none(), "{record}");
        for column in record["record"].as_object().unwrap().keys() {
            assert!(deal_schema.get(column).is_some(), "{column} not declared");
        }
    }

    // Data changes, no field does: the same SCHEMA, though few records are sent.
    let deal_id = sim.live_deal_ids().await[0];
    sim.api(
        Method::PATCH,
        &format!("/api/v2/deals/{deal_id}"),
        Some(json!({"value": 4321})),
    )
    .await;
    let second = tap(Some(&last_state(&first)));
    let (second_schemas, second_records) = schemas_and_records(&second);
    assert!(
        second_records.len() < records.len() / 4,
        "{} records",
        second_records.len()
    );
    assert_eq!(second_schemas, first_schemas);

    // A field added in Pipedrive adds its column, and changes nothing else.
    let field = sim
        .admin_call(
            Method::POST,
            "/__sim/custom_fields/deals",
            json!({"name": "Contract budget", "field_type": "monetary"}),
        )
        .await;
    assert!(field["key"].is_string(), "{field}");
    let third = tap(Some(&last_state(&second)));
    let (third_schemas, _) = schemas_and_records(&third);
    assert_eq!(third_schemas["persons"], first_schemas["persons"]);
    let mut expected = first_schemas["deals"].clone();
    let added = expected["schema"]["properties"].as_object_mut().unwrap();
    added.insert(
        "contract_budget".to_owned(),
        json!({"type": ["null", "number"]}),
    );
    added.insert(
        "contract_budget_currency".to_owned(),
        json!({"type": ["null", "string"]}),
    );
    let mut got = third_schemas["deals"].clone();
    // Compared as sets of properties: a new column may come anywhere.
    let order = |schema: &mut Value| {
        let properties: BTreeMap<String, Value> =
            serde_json::from_value(schema["schema"]["properties"].take()).unwrap();
        schema["schema"]["properties"] = serde_json::to_value(properties).unwrap();
    };
    order(&mut expected);
    order(&mut got);
    assert_eq!(got, expected);

    // Airbyte's discover agrees: the same columns, typed, with the new field.
    let airbyte_discover = airbyte(dir.path(), &["discover", "--config", config]);
    assert!(
        airbyte_discover.status.success(),
        "{}",
        stderr(&airbyte_discover)
    );
    let streams = messages(&airbyte_discover)[0]["catalog"]["streams"].clone();
    let deals = streams
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "deals")
        .unwrap();
    assert_eq!(
        deals["json_schema"]["properties"]["id"],
        json!({"type": ["null", "integer"]})
    );
    assert_eq!(
        deals["json_schema"]["properties"]["update_time"],
        json!({"type": ["null", "string"], "format": "date-time", "airbyte_type": "timestamp_with_timezone"})
    );
    assert_eq!(
        deals["json_schema"]["properties"]["contract_budget"],
        json!({"type": ["null", "number"]})
    );
    assert_eq!(deals["source_defined_primary_key"], json!([["id"]]));
    assert_eq!(deals["default_cursor_field"], json!(["update_time"]));
    let singer_catalog = discover();
    let singer_columns: BTreeSet<String> = singer_catalog["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == "deals")
        .unwrap()["schema"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let airbyte_columns: BTreeSet<String> = deals["json_schema"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(singer_columns, airbyte_columns);
}
