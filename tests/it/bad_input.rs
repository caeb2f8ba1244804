//! Bad input, one case per test: each failure has its documented exit code and a message
//! naming the cause and the fix, and leaves the destination (rows, columns, state) exactly as
//! the last good run left it; each odd-but-valid input syncs to the simulator's truth.

use std::process::Output;

use pipedrive_sim::{FaultSettings, OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET, Plan, Scale, SimOptions};
use reqwest::Method;
use serde_json::{Value, json};

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
async fn a_field_that_changes_type_between_syncs_is_widened() {
    let sim = Sim::start(Scale::Tiny, Plan::Premium).await;
    let workspace = Workspace::new();
    workspace.write_config(&sim, "streams:\n  deals:\n");
    let score = add_deal_field(&sim, "Score", "double").await;
    let follow_up = add_deal_field(&sim, "Follow up", "varchar").await;
    let ids = some_deal_ids(&sim, 2).await;
    sim.api(
        Method::PATCH,
        &format!("/api/v2/deals/{}", ids[0]),
        Some(json!({"custom_fields": {score.clone(): 5, follow_up.clone(): "2024-05-01"}})),
    )
    .await;
    assert_ok(&workspace.sync(&sim, &[]));
    assert_eq!(column_type(&workspace, "deals", "score"), "BIGINT");
    assert_eq!(column_type(&workspace, "deals", "follow_up"), "DATE");

    // Users now write fractions and free text into the same fields.
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

#[tokio::test(flavor = "multi_thread")]
async fn text_in_a_number_field_widens_the_column_to_text() {
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
    sim.admin_call(
        Method::POST,
        &format!("/__sim/custom_field_values/deals/{}", ids[2]),
        json!({"key": budget, "value": "N/A"}),
    )
    .await;
    assert_eq!(
        sim.api(Method::GET, &format!("/api/v2/deals/{}", ids[2]), None)
            .await["data"]["custom_fields"][&budget],
        "N/A"
    );
    assert_ok(&workspace.sync(&sim, &[]));
    assert_eq!(column_type(&workspace, "deals", "budget"), "VARCHAR");
    let values = column_values(&workspace, "budget");
    let value_of = |id: i64| values.iter().find(|(i, _)| *i == id).unwrap().1.clone();
    // The numbers stay, now as text.
    for (id, amount) in ids.iter().zip([1500.5, 20.0]) {
        let text = value_of(*id);
        let number: f64 = text.as_str().and_then(|t| t.parse().ok()).unwrap();
        assert_eq!(number, amount, "deal {id}: {text}");
    }
    assert_eq!(value_of(ids[2]), json!("N/A"));
    compare_with_truth(
        &sim,
        "deals",
        "id",
        Listed::NotArchived,
        &workspace.rows("main.deals", "id"),
    )
    .await;
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
