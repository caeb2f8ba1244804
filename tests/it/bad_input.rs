//! Bad input, one case per test: each failure has its documented exit code and a message
//! naming the cause and the fix, and leaves the destination (rows, columns, state) exactly as
//! the last good run left it; each odd-but-valid input syncs to the simulator's truth.

use std::process::Output;

use pipedrive_sim::{FaultSettings, OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET, Plan, Scale, SimOptions};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{
    PgSchema, Sim, Snapshot, Workspace, assert_ok, quote, run_binary, same_value, stderr,
};
use crate::sync_duckdb::{Listed, STREAMS, compare_with_truth};

const SOME_STREAMS: &str = "streams:\n  deals:\n  notes:\n  deal_fields:\n";

/// A workspace after one good sync of [`SOME_STREAMS`], and what that sync left.
fn synced(sim: &Sim) -> (Workspace, Snapshot) {
    let workspace = Workspace::new();
    workspace.write_config(sim, SOME_STREAMS);
    assert_ok(&workspace.sync(sim, &[]));
    let snapshot = workspace.snapshot();
    assert!(snapshot.len() >= 4, "{:?}", snapshot.keys());
    (workspace, snapshot)
}

/// Rewrites the workspace's config file.
fn edit_config(workspace: &Workspace, edit: impl FnOnce(String) -> String) {
    let path = workspace.config_path();
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(&path, edit(text)).expect("config written");
}

/// Asserts the exit code, and that the message holds each of `words` (its cause and its fix).
fn assert_fails(output: &Output, code: i32, words: &[&str]) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(code), "{text}");
    for word in words {
        assert!(text.contains(word), "`{word}` is missing from:\n{text}");
    }
}

fn sync_args(workspace: &Workspace) -> Vec<String> {
    vec![
        "sync".to_owned(),
        "--config".to_owned(),
        workspace.config_path().display().to_string(),
    ]
}

/// Runs `sync` with exactly these environment variables for the config.
fn sync_with_env(workspace: &Workspace, env: &[(&str, &str)]) -> Output {
    let args = sync_args(workspace);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_binary(&args, env, workspace.dir.path())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_token_exits_2_naming_the_variable_to_export() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let (workspace, before) = synced(&sim);
    let output = sync_with_env(&workspace, &[]);
    assert_fails(
        &output,
        2,
        &[
            "source.api_token",
            "PDS_TEST_TOKEN",
            "export PDS_TEST_TOKEN=",
        ],
    );
    assert_eq!(workspace.snapshot(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_token_exits_3_and_keeps_the_data() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let (workspace, before) = synced(&sim);
    let output = sync_with_env(
        &workspace,
        &[("PDS_TEST_TOKEN", "0000invalid0000token0000")],
    );
    assert_fails(
        &output,
        3,
        &[
            "API token was rejected (HTTP 401)",
            "Personal preferences → API",
        ],
    );
    assert_eq!(workspace.snapshot(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_that_does_not_exist_exits_1_at_once_naming_company_domain() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let (workspace, before) = synced(&sim);
    // `.invalid` never resolves (RFC 2606), with or without a network.
    edit_config(&workspace, |text| {
        text.replace(&sim.handle.url, "https://mycompany-typo.invalid")
    });
    let started = std::time::Instant::now();
    let output = workspace.sync(&sim, &[]);
    assert_fails(
        &output,
        1,
        &[
            "mycompany-typo.invalid does not exist",
            "source.company_domain",
        ],
    );
    assert!(
        started.elapsed().as_secs() < 20,
        "a name that does not exist is not retried for a minute"
    );
    assert_eq!(workspace.snapshot(), before);
}

/// A config that authenticates with OAuth against the simulator.
fn write_oauth_config(workspace: &Workspace, sim: &Sim, refresh_token: &str) {
    let yaml = format!(
        "source:\n  base_url: {url}\n  oauth:\n    client_id: {OAUTH_CLIENT_ID}\n    client_secret: ${{PDS_CLIENT_SECRET}}\n    refresh_token: '{refresh_token}'\n    token_url: {url}/oauth/token\ntarget:\n  path: {db}\n{SOME_STREAMS}",
        url = sim.handle.url,
        db = workspace.db_path().display(),
    );
    std::fs::write(workspace.config_path(), yaml).expect("config written");
}

async fn new_refresh_token(sim: &Sim) -> String {
    sim.admin_call(Method::POST, "/__sim/oauth/refresh_token", json!({}))
        .await["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_oauth_grant_exits_3_and_re_authorising_fixes_it() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    let secret = [("PDS_CLIENT_SECRET", OAUTH_CLIENT_SECRET)];
    write_oauth_config(&workspace, &sim, &new_refresh_token(&sim).await);
    assert_ok(&sync_with_env(&workspace, &secret));
    let before = workspace.snapshot();

    // Unused for longer than the refresh token lives: Pipedrive answers invalid_grant.
    sim.admin_call(
        Method::POST,
        "/__sim/clock/advance",
        json!({"seconds": 61 * 86_400}),
    )
    .await;
    let output = sync_with_env(&workspace, &secret);
    assert_fails(
        &output,
        3,
        &[
            "refresh token was rejected (invalid grant",
            "re-authorise the app in Pipedrive and update source.oauth.refresh_token",
        ],
    );
    assert_eq!(workspace.snapshot(), before);

    // Doing what the message says works, although the rotated token of the old grant is
    // still in the token store.
    assert!(
        workspace
            .dir
            .path()
            .join(".pipedrive-sync-refresh-token")
            .is_file()
    );
    write_oauth_config(&workspace, &sim, &new_refresh_token(&sim).await);
    assert_ok(&sync_with_env(&workspace, &secret));
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_yaml_is_reported_with_line_and_column() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let (workspace, before) = synced(&sim);
    // One space too many before `base_url`.
    edit_config(&workspace, |text| {
        text.replace("\n  base_url", "\n   base_url")
    });
    assert_fails(
        &workspace.sync(&sim, &[]),
        2,
        &[
            "pipedrive-sync.yaml",
            "line 3 column",
            "indent nested keys with spaces",
        ],
    );
    assert_eq!(workspace.snapshot(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_key_is_named_with_its_position_and_the_valid_keys() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let (workspace, before) = synced(&sim);
    edit_config(&workspace, |text| {
        text.replace("  base_url:", "  start_dat: 2024-01-01\n  base_url:")
    });
    assert_fails(
        &workspace.sync(&sim, &[]),
        2,
        &[
            "line 3 column 3",
            "unknown field `start_dat`",
            "expected one of",
            "start_date",
        ],
    );
    assert_eq!(workspace.snapshot(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_stream_gets_the_closest_names() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let (workspace, before) = synced(&sim);
    edit_config(&workspace, |text| text.replace("  notes:", "  noets:"));
    assert_fails(
        &workspace.sync(&sim, &[]),
        2,
        &["unknown stream `noets`", "did you mean", "notes"],
    );
    assert_eq!(workspace.snapshot(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_start_date_names_the_format() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let (workspace, before) = synced(&sim);
    edit_config(&workspace, |text| {
        text.replace("  base_url:", "  start_date: 2024-02-30\n  base_url:")
    });
    assert_fails(
        &workspace.sync(&sim, &[]),
        2,
        &["source.start_date `2024-02-30` is not a date", "YYYY-MM-DD"],
    );
    assert_eq!(workspace.snapshot(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_future_start_date_is_refused() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let (workspace, before) = synced(&sim);
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(2)).format("%Y-%m-%d");
    edit_config(&workspace, |text| {
        text.replace(
            "  base_url:",
            &format!("  start_date: {tomorrow}\n  base_url:"),
        )
    });
    assert_fails(
        &workspace.sync(&sim, &[]),
        2,
        &["is in the future", "use a past date or remove it"],
    );
    assert_eq!(workspace.snapshot(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_postgres_exits_4_naming_the_server_and_the_fix() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let schema = PgSchema::new("unreachable").await;
    let workspace = Workspace::new();
    let good = format!(
        "source:\n  api_token: ${{PDS_TEST_TOKEN}}\n  base_url: {}\n{}{SOME_STREAMS}",
        sim.handle.url,
        schema.target()
    );
    std::fs::write(workspace.config_path(), &good).unwrap();
    assert_ok(&workspace.sync(&sim, &[]));
    let before = schema.snapshot().await;
    assert!(before.len() >= 4, "{:?}", before.keys());

    // Port 1: nothing listens there.
    std::fs::write(
        workspace.config_path(),
        good.replace("127.0.0.1:5432", "127.0.0.1:1"),
    )
    .unwrap();
    assert_fails(
        &workspace.sync(&sim, &[]),
        4,
        &[
            "cannot connect to 127.0.0.1:1",
            "is PostgreSQL running",
            "target.url",
        ],
    );
    assert_eq!(schema.snapshot().await, before);
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_user_that_does_not_exist_exits_4_naming_the_user() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let schema = PgSchema::new("no_role").await;
    let workspace = Workspace::new();
    let good = format!(
        "source:\n  api_token: ${{PDS_TEST_TOKEN}}\n  base_url: {}\n{}{SOME_STREAMS}",
        sim.handle.url,
        schema.target()
    );
    std::fs::write(workspace.config_path(), &good).unwrap();
    assert_ok(&workspace.sync(&sim, &[]));
    let before = schema.snapshot().await;

    std::fs::write(
        workspace.config_path(),
        good.replace("postgres://postgres@", "postgres://no_such_role_pds:pw@"),
    )
    .unwrap();
    let output = workspace.sync(&sim, &[]);
    assert_fails(
        &output,
        4,
        &["no_such_role_pds", "check the user in target.url"],
    );
    assert!(!stderr(&output).contains(":pw@"), "the password leaked");
    assert_eq!(schema.snapshot().await, before);
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duckdb_file_another_process_holds_exits_4() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let (workspace, before) = synced(&sim);
    // This test process is the other process: DuckDB locks the file for its writer.
    let holder = workspace.duckdb();
    assert_fails(
        &workspace.sync(&sim, &[]),
        4,
        &["lock", "another process", "close it and retry"],
    );
    drop(holder);
    assert_eq!(workspace.snapshot(), before);
}

/// Runs the binary as an unprivileged user when the tests run as root (who may write to any
/// directory), so a read-only directory is read-only to it. Returns the output.
fn sync_unprivileged(workspace: &Workspace, sim: &Sim) -> Output {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = workspace.dir.path();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pipedrive-sync"));
    command
        .args(sync_args(workspace))
        .current_dir(dir)
        .env_remove("PIPEDRIVE_SYNC_LOG")
        .env("PDS_TEST_TOKEN", &sim.handle.api_token);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        for path in [dir, &workspace.config_path()] {
            let mode = if path.is_dir() { 0o755 } else { 0o644 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        command.uid(65534).gid(65534);
    }
    command.output().expect("binary runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duckdb_file_in_a_read_only_directory_exits_4() {
    use std::os::unix::fs::PermissionsExt;
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    let read_only = workspace.dir.path().join("read-only");
    std::fs::create_dir(&read_only).unwrap();
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).unwrap();
    let yaml = format!(
        "source:\n  api_token: ${{PDS_TEST_TOKEN}}\n  base_url: {}\ntarget:\n  path: {}\n{SOME_STREAMS}",
        sim.handle.url,
        read_only.join("pipedrive.duckdb").display()
    );
    std::fs::write(workspace.config_path(), yaml).unwrap();
    let output = sync_unprivileged(&workspace, &sim);
    assert_fails(
        &output,
        4,
        &["pipedrive.duckdb", "not writable", "change target.path"],
    );
    assert_eq!(std::fs::read_dir(&read_only).unwrap().count(), 0);
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn column_type(workspace: &Workspace, table: &str, column: &str) -> String {
    workspace
        .duckdb()
        .query_row(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ? AND column_name = ?",
            [table, column],
            |row| row.get(0),
        )
        .unwrap_or_else(|e| panic!("{table}.{column}: {e}"))
}

/// Each deal's value of one column, by id.
fn column_values(workspace: &Workspace, column: &str) -> Vec<(i64, Value)> {
    workspace
        .rows("main.deals", "id")
        .iter()
        .map(|row| (row["id"].as_i64().unwrap(), row[column].clone()))
        .collect()
}

/// Open, unarchived deals to write to.
async fn some_deal_ids(sim: &Sim, n: usize) -> Vec<i64> {
    sim.truth("deals")
        .await
        .iter()
        .filter(|d| d["status"] == json!("open") && d["is_archived"] != json!(true))
        .take(n)
        .map(|d| d["id"].as_i64().unwrap())
        .collect()
}

async fn add_deal_field(sim: &Sim, name: &str, field_type: &str) -> String {
    sim.admin_call(
        Method::POST,
        "/__sim/custom_fields/deal",
        json!({"name": name, "field_type": field_type}),
    )
    .await["key"]
        .as_str()
        .expect("field key")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_fields_load_as_their_declared_types_whatever_the_first_values() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams:\n  deals:\n");
    let score = add_deal_field(&sim, "Score", "double").await;
    let follow_up = add_deal_field(&sim, "Follow up", "varchar").await;
    let ids = some_deal_ids(&sim, 2).await;
    // A whole number in a number field, a date in a text field.
    sim.api(
        Method::PATCH,
        &format!("/api/v2/deals/{}", ids[0]),
        Some(json!({"custom_fields": {score.clone(): 5, follow_up.clone(): "2024-05-01"}})),
    )
    .await;
    assert_ok(&workspace.sync(&sim, &[]));
    assert_eq!(column_type(&workspace, "deals", "score"), "DOUBLE");
    assert_eq!(column_type(&workspace, "deals", "follow_up"), "VARCHAR");

    // Fractions and free text fit the same columns.
    sim.api(
        Method::PATCH,
        &format!("/api/v2/deals/{}", ids[1]),
        Some(
            json!({"custom_fields": {score.clone(): 7.25, follow_up.clone(): "after the summer"}}),
        ),
    )
    .await;
    let output = workspace.sync(&sim, &[]);
    assert_ok(&output);
    assert_eq!(column_type(&workspace, "deals", "score"), "DOUBLE");
    assert_eq!(column_type(&workspace, "deals", "follow_up"), "VARCHAR");
    let truth = sim.truth("deals").await;
    for column in ["score", "follow_up"] {
        let key = if column == "score" {
            &score
        } else {
            &follow_up
        };
        for (id, loaded) in column_values(&workspace, column) {
            let record = truth.iter().find(|d| d["id"] == json!(id)).unwrap();
            let want = &record["custom_fields"][key];
            assert!(
                same_value(want, &loaded),
                "deal {id} {column}: {loaded} loaded, {want} in Pipedrive"
            );
        }
    }
}

/// Stores `value` in a deal's custom field without the API's checks, as an old import did.
async fn store_as_is(sim: &Sim, deal: i64, field: &str, value: Value) {
    sim.admin_call(
        Method::POST,
        &format!("/__sim/custom_field_values/deals/{deal}"),
        json!({"key": field, "value": value}),
    )
    .await;
}

/// A sync that succeeds and says some values were loaded as null.
fn sync_warning_of_misfits(workspace: &Workspace, sim: &Sim) {
    let output = workspace.sync(sim, &[]);
    assert_ok(&output);
    assert!(
        stderr(&output)
            .contains("values that do not fit their column's declared type were loaded as null"),
        "{}",
        stderr(&output)
    );
}

/// A column's value by deal id.
fn value_by_id(values: Vec<(i64, Value)>) -> impl Fn(i64) -> Value {
    move |id| values.iter().find(|(i, _)| *i == id).unwrap().1.clone()
}

/// A date that does not exist (an old import's `2024-02-30`) in a date field loads as null
/// with a warning, like text in a number field: it does not fail the page it is on.
#[tokio::test(flavor = "multi_thread")]
async fn an_impossible_date_loads_as_null_with_a_warning() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams:\n  deals:\n");
    let renewal = add_deal_field(&sim, "Renewal", "date").await;
    let ids = some_deal_ids(&sim, 2).await;
    sim.api(
        Method::PATCH,
        &format!("/api/v2/deals/{}", ids[0]),
        Some(json!({"custom_fields": {renewal.clone(): "2024-03-01"}})),
    )
    .await;
    store_as_is(&sim, ids[1], &renewal, json!("2024-02-30")).await;
    sync_warning_of_misfits(&workspace, &sim);
    assert_eq!(column_type(&workspace, "deals", "renewal"), "DATE");
    let value_of = value_by_id(column_values(&workspace, "renewal"));
    assert_eq!(value_of(ids[0]), json!("2024-03-01"));
    assert_eq!(value_of(ids[1]), Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn text_in_a_number_field_loads_as_null_with_a_warning_and_the_column_keeps_its_type() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams:\n  deals:\n");
    let budget = add_deal_field(&sim, "Budget", "double").await;
    let ids = some_deal_ids(&sim, 3).await;
    for (id, amount) in ids.iter().zip([1500.5, 20.0]) {
        sim.api(
            Method::PATCH,
            &format!("/api/v2/deals/{id}"),
            Some(json!({"custom_fields": {budget.clone(): amount}})),
        )
        .await;
    }
    assert_ok(&workspace.sync(&sim, &[]));
    assert_eq!(column_type(&workspace, "deals", "budget"), "DOUBLE");

    // An old import left text where Pipedrive promises a number.
    store_as_is(&sim, ids[2], &budget, json!("N/A")).await;
    assert_eq!(
        sim.api(Method::GET, &format!("/api/v2/deals/{}", ids[2]), None)
            .await["data"]["custom_fields"][&budget],
        "N/A"
    );
    sync_warning_of_misfits(&workspace, &sim);
    // Queries that sum the column keep working: it is still a number column.
    assert_eq!(column_type(&workspace, "deals", "budget"), "DOUBLE");
    let value_of = value_by_id(column_values(&workspace, "budget"));
    for (id, amount) in ids.iter().zip([1500.5, 20.0]) {
        assert_eq!(value_of(*id).as_f64(), Some(amount), "deal {id}");
    }
    assert_eq!(value_of(ids[2]), Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_data_null_page_is_an_empty_page() {
    let sim = Sim::start(Scale::Empty, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, SOME_STREAMS);
    let deal = sim
        .api(
            Method::POST,
            "/api/v2/deals",
            Some(json!({"title": "The only deal"})),
        )
        .await["data"]["id"]
        .clone();
    // v1 answers a list without records with `"data": null`.
    let notes = sim.api(Method::GET, "/api/v1/notes", None).await;
    assert!(notes["data"].is_null(), "{notes}");
    assert_ok(&workspace.sync(&sim, &[]));
    assert_eq!(workspace.count("main.notes"), 0);
    assert_eq!(workspace.rows("main.deals", "id")[0]["id"], deal);

    // The empty page moved nothing it should not have: a later note arrives.
    sim.api(
        Method::POST,
        "/api/v1/notes",
        Some(json!({"content": "First note", "deal_id": deal})),
    )
    .await;
    assert_ok(&workspace.sync(&sim, &[]));
    compare_with_truth(
        &sim,
        "notes",
        "id",
        Listed::Live,
        &workspace.rows("main.notes", "id"),
    )
    .await;
    assert_eq!(workspace.count("main.notes"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_megabyte_note_and_field_value_round_trip() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, SOME_STREAMS);
    let huge: String = "Meeting notes, line after line. "
        .repeat(1 << 15)
        .chars()
        .take(1 << 20)
        .collect();
    let deal = some_deal_ids(&sim, 1).await[0];
    let note = sim
        .api(
            Method::POST,
            "/api/v1/notes",
            Some(json!({"content": huge, "deal_id": deal})),
        )
        .await["data"]["id"]
        .as_i64()
        .unwrap();
    let field = add_deal_field(&sim, "Long text", "text").await;
    sim.api(
        Method::PATCH,
        &format!("/api/v2/deals/{deal}"),
        Some(json!({"custom_fields": {field: huge}})),
    )
    .await;
    assert_ok(&workspace.sync(&sim, &[]));
    let content: String = workspace
        .duckdb()
        .query_row("SELECT content FROM main.notes WHERE id = ?", [note], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(content.len(), 1 << 20);
    assert_eq!(content, huge);
    let long_text: String = workspace
        .duckdb()
        .query_row(
            "SELECT long_text FROM main.deals WHERE id = ?",
            [deal],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(long_text, huge);
    compare_with_truth(
        &sim,
        "notes",
        "id",
        Listed::Live,
        &workspace.rows("main.notes", "id"),
    )
    .await;
}

/// Emoji (with skin tones and joiners), combining marks, right-to-left and CJK text, astral
/// planes, and look-alike quotes: what names and notes really hold.
const UNICODE: &[&str] = &[
    "Zoë Ñandú – Ünïcödé",
    "👩🏽‍💻 Team 🚀🔥",
    "שלום עולם مرحبا",
    "東京オフィス 商談",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈 🀄",
    "e\u{301} vs é, \u{200b}zero width\u{feff}",
    "‘smart’ “quotes” and \\ backslash",
];

/// Writes [`UNICODE`] into a person's name, a deal's title and custom field, and notes.
async fn write_unicode(sim: &Sim) -> (Vec<i64>, String) {
    let field = add_deal_field(sim, "Notiz 📝", "varchar").await;
    let ids = some_deal_ids(sim, UNICODE.len()).await;
    for (id, text) in ids.iter().zip(UNICODE) {
        sim.api(
            Method::PATCH,
            &format!("/api/v2/deals/{id}"),
            Some(json!({"title": text, "custom_fields": {field.clone(): text}})),
        )
        .await;
        sim.api(
            Method::POST,
            "/api/v1/notes",
            Some(json!({"content": text, "deal_id": id})),
        )
        .await;
    }
    (ids, field)
}

#[tokio::test(flavor = "multi_thread")]
async fn emoji_and_other_unicode_round_trip_into_duckdb() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, SOME_STREAMS);
    let (ids, _) = write_unicode(&sim).await;
    assert_ok(&workspace.sync(&sim, &[]));
    let rows = workspace.rows("main.deals", "id");
    for (id, text) in ids.iter().zip(UNICODE) {
        let row = rows.iter().find(|r| r["id"] == json!(id)).unwrap();
        assert_eq!(row["title"], json!(text));
        assert_eq!(
            row["notiz"],
            json!(text),
            "the custom field's column is `notiz`"
        );
    }
    for (stream, listed) in [("deals", Listed::NotArchived), ("notes", Listed::Live)] {
        let rows = workspace.rows(&format!("main.{stream}"), "id");
        compare_with_truth(&sim, stream, "id", listed, &rows).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn emoji_and_other_unicode_round_trip_into_postgres() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let schema = PgSchema::new("unicode").await;
    let workspace = Workspace::new();
    let yaml = format!(
        "source:\n  api_token: ${{PDS_TEST_TOKEN}}\n  base_url: {}\n{}{SOME_STREAMS}",
        sim.handle.url,
        schema.target()
    );
    std::fs::write(workspace.config_path(), yaml).unwrap();
    let (ids, _) = write_unicode(&sim).await;
    assert_ok(&workspace.sync(&sim, &[]));
    let rows = schema.rows("deals", "id").await;
    for (id, text) in ids.iter().zip(UNICODE) {
        let row = rows.iter().find(|r| r["id"] == json!(id)).unwrap();
        assert_eq!(row["title"], json!(text));
        assert_eq!(row["notiz"], json!(text));
    }
    for (stream, listed) in [("deals", Listed::NotArchived), ("notes", Listed::Live)] {
        compare_with_truth(&sim, stream, "id", listed, &schema.rows(stream, "id").await).await;
    }
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_ids_across_pages_are_loaded_once() {
    let sim = Sim::start_with(SimOptions {
        scale: Scale::Small,
        plan: Plan::Unlimited,
        faults: FaultSettings {
            page_overlap: 7,
            ..FaultSettings::default()
        },
        ..SimOptions::default()
    })
    .await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams:\n  notes:\n");
    // More than two pages of 500, so later pages repeat the end of earlier ones.
    let notes = sim.truth("notes").await.len();
    assert!(notes > 1000, "{notes} notes");
    assert_ok(&workspace.sync(&sim, &[]));
    assert!(sim.requests_to("/api/v1/notes").await >= 3);
    let rows = workspace.rows("main.notes", "id");
    compare_with_truth(&sim, "notes", "id", Listed::Live, &rows).await;
    let distinct: i64 = workspace
        .duckdb()
        .query_row("SELECT count(DISTINCT id) FROM main.notes", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(distinct, workspace.count("main.notes"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_company_syncs_every_stream() {
    let sim = Sim::start(Scale::Empty, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "");
    assert_ok(&workspace.sync(&sim, &[]));
    assert_eq!(workspace.count("main.deals"), 0);
    assert_eq!(workspace.count("main.users"), 1);
    for (stream, key, listed) in STREAMS {
        let table = format!("main.{}", quote(stream));
        if sim.truth(stream).await.is_empty() {
            // The table exists (empty) so queries work before the first record arrives.
            assert_eq!(workspace.count(&table), 0, "{stream}");
            continue;
        }
        let rows = workspace.rows(&table, &quote(key));
        compare_with_truth(&sim, stream, key, *listed, &rows).await;
    }
    // The next run, full refreshes of empty streams included, finds nothing new.
    let users = workspace.rows("main.users", "id");
    assert_ok(&workspace.sync(&sim, &[]));
    assert_eq!(workspace.count("main.deals"), 0);
    compare_with_truth(
        &sim,
        "users",
        "id",
        Listed::All,
        &workspace.rows("main.users", "id"),
    )
    .await;
    assert_eq!(workspace.rows("main.users", "id").len(), users.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_timeout_out_of_range_is_a_config_error() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let (workspace, before) = synced(&sim);
    edit_config(&workspace, |text| {
        text.replace("  base_url:", "  request_timeout_seconds: 0\n  base_url:")
    });
    assert_fails(
        &workspace.sync(&sim, &[]),
        2,
        &[
            "source.request_timeout_seconds is 0",
            "use 1 to 3600 seconds",
        ],
    );
    assert_eq!(workspace.snapshot(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_named_by_a_bare_file_name_anchors_relative_paths_beside_it() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    let yaml = format!(
        "source:\n  api_token: ${{PDS_TEST_TOKEN}}\n  base_url: {}\ntarget:\n  type: parquet\n  path: out\n{SOME_STREAMS}",
        sim.handle.url
    );
    std::fs::write(workspace.config_path(), yaml).unwrap();
    // Run from the config's directory, naming it without a directory part.
    assert_ok(&workspace.run(&sim, &["sync", "--config", "pipedrive-sync.yaml"]));
    let out = workspace.dir.path().join("out");
    assert!(out.join("_pipedrive_sync_state.json").is_file());
    assert!(out.join("deals").is_dir());
}

/// A good sync, then `edit` to its config and a sync with `args` that must fail with `code`
/// and every one of `words`, leaving the destination (rows, columns, state) as it was.
fn assert_refused(
    sim: &Sim,
    edit: impl FnOnce(String) -> String,
    args: &[&str],
    code: i32,
    words: &[&str],
) {
    let (workspace, before) = synced(sim);
    edit_config(&workspace, edit);
    assert_fails(&workspace.sync(sim, args), code, words);
    assert_eq!(workspace.snapshot(), before);
}

/// Appends `options` (a flow mapping) to one stream of [`SOME_STREAMS`].
fn with_options(stream: &str, options: &str) -> impl FnOnce(String) -> String {
    let (from, to) = (format!("  {stream}:\n"), format!("  {stream}: {options}\n"));
    move |text| {
        assert!(text.contains(&from), "{text}");
        format!("hash_salt: pepper\n{}", text.replace(&from, &to))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_streams_loading_into_one_table_are_refused_before_any_write() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    assert_refused(
        &sim,
        |text| {
            text.replace("  deals:\n", "  deals: {object: main.crm}\n")
                .replace("  notes:\n", "  notes: {object: main.crm}\n")
        },
        &[],
        2,
        &[
            "`deals` and `notes` would both load into the table main.crm",
            "give each stream an `object` of its own",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_default_object_without_the_stream_name_is_refused_naming_it() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    assert_refused(
        &sim,
        |text| format!("{text}defaults: {{object: main.everything}}\n"),
        &[],
        2,
        &[
            "would both load into the table main.everything (defaults.object)",
            "put `{stream_name}` in defaults.object",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_refresh_of_a_stream_not_synced_is_an_error() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    assert_refused(
        &sim,
        |text| text,
        &["--full-refresh", "persons"],
        2,
        &["--full-refresh: `persons` is not among the streams"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dotted_target_schema_is_blamed_on_target_schema() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    assert_refused(
        &sim,
        |text| {
            text.replace(
                "  type: duckdb\n",
                "  type: duckdb\n  schema: Newb_Mixed.Case\n",
            )
        },
        &[],
        2,
        &[
            "target.schema `Newb_Mixed.Case` is not a schema name",
            "without `.`",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_misspelt_filter_column_is_refused_with_the_closest_name() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    assert_refused(
        &sim,
        with_options("deals", "{filter: 'pipline_id = 1'}"),
        &["--streams", "deals"],
        2,
        &[
            "streams.deals.filter: `pipline_id` is not a column of this stream",
            "did you mean `pipeline_id`?",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_typo_in_one_streams_options_stops_the_run_before_any_stream_writes() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let (workspace, before) = synced(&sim);
    // A change the deals stream would load if it ran.
    let deal = sim.live_deal_ids().await[0];
    sim.retitle_deal(deal, "Changed before a refused run").await;
    edit_config(
        &workspace,
        with_options("notes", "{exclude_columns: [contnet]}"),
    );
    assert_fails(
        &workspace.sync(&sim, &[]),
        2,
        &["streams.notes.exclude_columns: `contnet` is not a column"],
    );
    assert_eq!(workspace.snapshot(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_misspelt_hashed_column_is_refused_rather_than_loaded_in_clear() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    assert_refused(
        &sim,
        with_options("deals", "{hash_columns: [titel]}"),
        &["--streams", "deals"],
        2,
        &[
            "streams.deals.hash_columns: `titel` is not a column",
            "did you mean `title`?",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_misspelt_excluded_column_is_refused() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    assert_refused(
        &sim,
        with_options("notes", "{exclude_columns: [contnet]}"),
        &["--streams", "notes"],
        2,
        &[
            "streams.notes.exclude_columns: `contnet` is not a column",
            "did you mean `content`?",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_field_named_as_pipedrive_shows_it_gets_its_column() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    add_deal_field(&sim, "Secret Budget", "double").await;
    assert_refused(
        &sim,
        with_options("deals", "{exclude_columns: [Secret Budget]}"),
        &["--streams", "deals"],
        2,
        &[
            "`Secret Budget` is not a column",
            "its column is `secret_budget`",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_text_value_compared_with_a_number_column_is_refused() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    assert_refused(
        &sim,
        with_options("deals", "{filter: \"value > 'abc'\"}"),
        &["--streams", "deals"],
        2,
        &[
            "streams.deals.filter: `value > 'abc'` compares a column of numbers with the text 'abc'",
            "write a number without quotes",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_number_compared_with_a_text_column_is_refused() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    assert_refused(
        &sim,
        with_options("deals", "{filter: 'status = 3'}"),
        &["--streams", "deals"],
        2,
        &[
            "`status = 3` compares a column of text with the number 3",
            "quote the text",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_stream_option_is_named_with_the_valid_ones() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    assert_refused(
        &sim,
        |text| text.replace("  deals:\n", "  deals: {moode: full-refresh}\n"),
        &[],
        2,
        &["unknown field `moode`", "mode"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zero_concurrency_is_refused() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    assert_refused(
        &sim,
        |text| format!("{text}concurrency: 0\n"),
        &[],
        2,
        &["concurrency must be at least 1"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_priority_names_the_two_valid_ones() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    assert_refused(
        &sim,
        |text| text.replace("  deals:\n", "  deals: {priority: newest}\n"),
        &[],
        2,
        &[
            "streams.deals.priority `newest`",
            "`recent-first` or `oldest-first`",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_target_type_lists_the_supported_ones() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    assert_refused(
        &sim,
        |text| text.replace("  type: duckdb\n", "  type: sqlite\n"),
        &[],
        2,
        &[
            "target.type `sqlite` is not supported",
            "duckdb, postgres, parquet or jsonl",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_stream_in_the_streams_flag_gets_the_closest_names() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    assert_refused(
        &sim,
        |text| text,
        &["--streams", "deal"],
        2,
        &["--streams: unknown stream `deal`", "did you mean deals"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streams_flag_naming_an_unconfigured_stream_is_refused() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    assert_refused(
        &sim,
        |text| text,
        &["--streams", "persons"],
        2,
        &["`persons` is not selected in the config's `streams`"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_every_interval_is_refused() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    assert_refused(
        &sim,
        |text| text,
        &["--every", "soon"],
        2,
        &["--every: `soon` is not an interval", "`30m`"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_with_both_source_and_sources_is_refused() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    assert_refused(
        &sim,
        |text| format!("{text}sources: []\n"),
        &[],
        2,
        &["both `source` and `sources`"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_company_flag_lists_the_configured_ones() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    assert_refused(
        &sim,
        |text| text,
        &["--company", "globex"],
        2,
        &["--company `globex` is not in the config"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_given_as_a_list_are_synced() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams: [deals, notes]\n");
    assert_ok(&workspace.sync(&sim, &[]));
    compare_with_truth(
        &sim,
        "notes",
        "id",
        Listed::Live,
        &workspace.rows("main.notes", "id"),
    )
    .await;
    assert!(workspace.count("main.deals") > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_base_url_copied_with_the_api_version_is_used_without_it() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, SOME_STREAMS);
    edit_config(&workspace, |text| {
        text.replace(&sim.handle.url, &format!("{}/api/v2/", sim.handle.url))
    });
    assert_ok(&workspace.sync(&sim, &[]));
    compare_with_truth(
        &sim,
        "notes",
        "id",
        Listed::Live,
        &workspace.rows("main.notes", "id"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_schema_longer_than_postgres_keeps_is_refused() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let schema = PgSchema::new("long").await;
    let long = format!("{}_{}", schema.name, "x".repeat(75 - schema.name.len() - 1));
    assert_eq!(long.len(), 75);
    let workspace = Workspace::new();
    let yaml = format!(
        "source:\n  api_token: ${{PDS_TEST_TOKEN}}\n  base_url: {}\n{}{SOME_STREAMS}",
        sim.handle.url,
        schema.target().replace(&schema.name, &long)
    );
    std::fs::write(workspace.config_path(), yaml).unwrap();
    assert_fails(
        &workspace.sync(&sim, &[]),
        2,
        &["target.schema: `", "is 75 bytes long", "at most 63 bytes"],
    );
    // Nothing was created under the name PostgreSQL would have cut it to either.
    let (client, connection) =
        tokio_postgres::connect(crate::support::POSTGRES_URL, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let schemas = client
        .query(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name LIKE $1",
            &[&format!("{}%", schema.name)],
        )
        .await
        .unwrap();
    assert!(schemas.is_empty());
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hashing_emails_hashes_the_person_emails_rows_too() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(
        &sim,
        "hash_salt: pepper\nstreams:\n  persons: {hash_columns: [emails], exclude_columns: [phones]}\n  person_emails:\n  person_phones:\n",
    );
    assert_ok(&workspace.sync(&sim, &[]));
    let truth = sim.truth("persons").await;
    let emails: Vec<&str> = truth
        .iter()
        .flat_map(|p| p["emails"].as_array().into_iter().flatten())
        .filter_map(|e| e["value"].as_str())
        .collect();
    assert!(!emails.is_empty());
    let rows = workspace.rows("main.person_emails", "person_id, position");
    assert!(!rows.is_empty());
    for row in &rows {
        let value = row["value"].as_str().unwrap();
        assert_eq!(value.len(), 64, "{row}");
        assert!(!emails.contains(&value), "{row}");
    }
    let hashes: Vec<Value> = emails
        .iter()
        .map(|email| {
            json!(hex::encode(Sha256::digest(
                format!("pepper{email}").as_bytes()
            )))
        })
        .collect();
    assert!(rows.iter().all(|row| hashes.contains(&row["value"])));
    // Excluded phones leave only the keys of their rows.
    for row in workspace.rows("main.person_phones", "person_id, position") {
        let columns: Vec<&String> = row.as_object().unwrap().keys().collect();
        assert!(
            columns
                .iter()
                .all(|c| ["person_id", "position"].contains(&c.as_str()) || c.starts_with('_')),
            "{row}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_is_reported_once_however_many_streams() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "");
    let output = sync_with_env(&workspace, &[("PDS_TEST_TOKEN", "0000wrong0000token0000")]);
    assert_fails(&output, 3, &["API token was rejected (HTTP 401)"]);
    let text = stderr(&output);
    assert_eq!(text.matches("HTTP 401").count(), 1, "{text}");
    assert!(text.lines().count() <= 3, "{text}");
    assert!(!workspace.db_path().exists() || !workspace.snapshot().contains_key("main.deals"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_base_url_that_is_not_pipedrives_api_is_an_error_not_a_skip() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let (workspace, before) = synced(&sim);
    // A proxy prefix that does not exist: every path answers 404.
    edit_config(&workspace, |text| {
        text.replace(
            &sim.handle.url,
            &format!("{}/pipedrive-proxy", sim.handle.url),
        )
    });
    assert_fails(
        &workspace.sync(&sim, &[]),
        1,
        &[
            "404 Not Found for /api/v1/users/me, which every company has",
            "source.base_url",
            "/pipedrive-proxy",
        ],
    );
    assert_eq!(workspace.snapshot(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn another_companys_credentials_are_refused_unless_allowed() {
    let first = Sim::start(Scale::Tiny, Plan::Premium).await;
    let (workspace, before) = synced(&first);
    let second = Sim::start_with(SimOptions {
        seed: 2,
        ..SimOptions::default()
    })
    .await;
    edit_config(&workspace, |text| {
        text.replace(&first.handle.url, &second.handle.url)
    });
    let output = workspace.sync(&second, &[]);
    assert_fails(
        &output,
        2,
        &[
            "holds the data of Pipedrive company",
            "would mix two companies",
            "--allow-other-company",
        ],
    );
    assert!(!stderr(&output).contains(&second.handle.api_token));
    assert_eq!(workspace.snapshot(), before);
    // A stream follows the other company once a run allowed to loads it; the others still
    // hold the first company's rows, so a run that selects them is refused, naming one.
    assert_ok(&workspace.sync(&second, &["--allow-other-company", "--streams", "deals"]));
    assert_ok(&workspace.sync(&second, &["--streams", "deals"]));
    assert_fails(
        &workspace.sync(&second, &[]),
        2,
        &["(stream `notes`)", "--allow-other-company"],
    );
    assert_ok(&workspace.sync(&second, &["--allow-other-company"]));
    // The target now belongs to the second company.
    assert_ok(&workspace.sync(&second, &[]));
    edit_config(&workspace, |text| {
        text.replace(&second.handle.url, &first.handle.url)
    });
    assert_fails(&workspace.sync(&first, &[]), 2, &["--allow-other-company"]);
}

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn check_config(workspace: &Workspace, source: &str) -> Output {
    std::fs::write(
        workspace.config_path(),
        format!("source:\n  api_token: t0ken\n  {source}\n"),
    )
    .unwrap();
    run_binary(
        &[
            "check",
            "--config",
            workspace.config_path().to_str().unwrap(),
        ],
        &[],
        workspace.dir.path(),
    )
}

#[test]
fn check_against_a_closed_port_fails_fast_naming_base_url() {
    let workspace = Workspace::new();
    let started = std::time::Instant::now();
    let port = closed_port();
    let output = check_config(&workspace, &format!("base_url: http://127.0.0.1:{port}"));
    assert_fails(
        &output,
        1,
        &[
            &format!("nothing answers HTTP at http://127.0.0.1:{port}/"),
            "source.base_url",
        ],
    );
    assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
}

#[test]
fn check_against_a_port_that_speaks_no_http_fails_fast_naming_base_url() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n");
        }
    });
    let workspace = Workspace::new();
    let started = std::time::Instant::now();
    let output = check_config(&workspace, &format!("base_url: http://127.0.0.1:{port}"));
    assert_fails(&output, 1, &["nothing answers HTTP", "source.base_url"]);
    assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
}

#[test]
fn check_against_a_domain_that_does_not_exist_fails_fast_naming_company_domain() {
    let workspace = Workspace::new();
    let started = std::time::Instant::now();
    let output = check_config(&workspace, "base_url: https://nosuchcompany.invalid");
    assert_fails(&output, 1, &["does not exist", "source.company_domain"]);
    assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duckdb_target_that_is_a_sqlite_file_is_refused_without_downloading() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, SOME_STREAMS);
    // A SQLite database's first page: DuckDB would fetch its sqlite extension to read it.
    let mut sqlite = b"SQLite format 3\0".to_vec();
    sqlite.resize(4096, 0);
    std::fs::write(workspace.db_path(), &sqlite).unwrap();
    let home = tempfile::tempdir().unwrap();
    let output = run_binary(
        &[
            "sync",
            "--config",
            workspace.config_path().to_str().unwrap(),
        ],
        &[
            ("PDS_TEST_TOKEN", sim.handle.api_token.as_str()),
            ("HOME", home.path().to_str().unwrap()),
        ],
        workspace.dir.path(),
    );
    assert_fails(&output, 4, &["DuckDB: cannot open", "pipedrive.duckdb"]);
    assert_eq!(std::fs::read(workspace.db_path()).unwrap(), sqlite);
    // DuckDB keeps downloaded extensions under ~/.duckdb: nothing was fetched.
    assert!(!home.path().join(".duckdb").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_interrupt_stops_at_once() {
    let sim = Sim::start_with(SimOptions {
        scale: Scale::Small,
        latency_ms: 1500,
        ..SimOptions::default()
    })
    .await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_pipedrive-sync"))
        .args(sync_args(&workspace))
        .env("PDS_TEST_TOKEN", &sim.handle.api_token)
        .env_remove("PIPEDRIVE_SYNC_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Until the first request arrives: the signal handler is in place by then.
    while sim.stats().await["requests"].as_u64().unwrap_or(0) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let pid = child.id() as libc::pid_t;
    let interrupt = || {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid, libc::SIGINT) };
    };
    interrupt();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    interrupt();
    let stopped = std::time::Instant::now();
    let output = child.wait_with_output().unwrap();
    assert!(stopped.elapsed().as_secs() < 3, "{:?}", stopped.elapsed());
    assert_fails(
        &output,
        130,
        &["interrupt again to stop at once", "stopped at once"],
    );
}

#[test]
fn demo_prints_deals_itself_and_never_merges_into_an_existing_file() {
    let workspace = Workspace::new();
    let path = workspace.db_path();
    let demo = |scale: &str| {
        run_binary(
            &["demo", "--path", path.to_str().unwrap(), "--scale", scale],
            &[],
            workspace.dir.path(),
        )
    };
    let output = demo("tiny");
    assert_ok(&output);
    let text = stderr(&output);
    assert!(
        text.contains("Some deals:") && text.contains("status"),
        "{text}"
    );
    assert!(
        text.contains("https://duckdb.org/docs/installation"),
        "{text}"
    );
    let before = workspace.snapshot();
    assert!(before.contains_key("main.deals"));
    assert_fails(
        &demo("small"),
        2,
        &[
            "pipedrive.duckdb already exists",
            "remove it, or pass --path",
        ],
    );
    assert_eq!(workspace.snapshot(), before);
}
