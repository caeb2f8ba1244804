//! The SQL core's behaviour, each test run on both databases it serves: a DuckDB file of its
//! own, and a schema of its own on the PostgreSQL at 127.0.0.1:5432 (dropped when the test
//! ends, passed or failed). Values are read back through the session, cast to text.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use pipedrive_engine::columnar;
use pipedrive_engine::destination::columns::{IS_CURRENT, VALID_FROM, VALID_TO};
use pipedrive_engine::schema::{Column, ColumnType};
use pipedrive_engine::{
    Batch, Destination, DestinationError, Missing, Present, RunRecord, RunStatus, StreamRun,
    StreamState, TableRef, Timeline,
};
use serde_json::{Value, json};

use super::session::{Session, SqlValue, Statement};
use super::{SqlDestination, quote};
use ColumnType::{BigInt, Boolean, Text, Timestamp};

const SYNCED_AT: &str = "2024-05-06T07:08:09Z";

fn table(schema: &str, name: &str) -> TableRef {
    TableRef {
        schema: schema.to_owned(),
        name: name.to_owned(),
    }
}

fn columns(spec: &[(&str, ColumnType)]) -> Vec<Column> {
    spec.iter()
        .map(|(name, ty)| Column::new(name, *ty))
        .collect()
}

fn state(bookmark: &str) -> StreamState {
    StreamState {
        bookmark: Some(bookmark.to_owned()),
        ..StreamState::default()
    }
}

fn batch<'a>(
    table: &'a TableRef,
    primary_key: &'a [&'a str],
    columns: &'a [Column],
    rows: &'a [Vec<Value>],
    state: &'a StreamState,
) -> Batch<'a> {
    // Leaked: a test's few pages live as long as the test anyway.
    let records = Box::leak(Box::new(columnar::record_batch(columns, rows).unwrap()));
    Batch {
        stream: "deals",
        table,
        primary_key,
        columns,
        records,
        replace_parents: None,
        state,
        synced_at: SYNCED_AT,
        history: false,
    }
}

async fn write<S: Session>(
    db: &mut SqlDestination<S>,
    table: &TableRef,
    spec: &[(&str, ColumnType)],
    rows: Vec<Vec<Value>>,
    state: &StreamState,
) -> Result<(), DestinationError> {
    let columns = columns(spec);
    db.write(&[batch(table, &["id"], &columns, &rows, state)])
        .await
}

/// Every row of `SELECT {select} FROM {table} ORDER BY {order}`, as text.
async fn rows<S: Session>(
    db: &mut SqlDestination<S>,
    select: &str,
    table: &TableRef,
    order: &str,
) -> Vec<Vec<Option<String>>> {
    let table = db.session.table_sql(&db.stored(table));
    let rows = db
        .session
        .query(
            "reading back",
            Statement::plain(format!("SELECT {select} FROM {table} ORDER BY {order}")),
        )
        .await
        .unwrap();
    rows.into_iter()
        .map(|row| {
            row.into_iter()
                .map(|value| match value {
                    SqlValue::Null => None,
                    SqlValue::Bool(b) => Some(b.to_string()),
                    SqlValue::Int(n) => Some(n.to_string()),
                    SqlValue::Text(text) => Some(text),
                })
                .collect()
        })
        .collect()
}

fn texts(rows: &[&[Option<&str>]]) -> Vec<Vec<Option<String>>> {
    rows.iter()
        .map(|row| row.iter().map(|v| v.map(str::to_owned)).collect())
        .collect()
}

async fn bookmark<S: Session>(db: &mut SqlDestination<S>) -> Option<String> {
    db.read_state().await.unwrap().remove("deals")?.bookmark
}

/// `CAST(column AS text)` in the session's dialect.
fn text<S: Session>(column: &str) -> String {
    format!("CAST({} AS {})", quote(column), S::sql_type(Text))
}

async fn merges_on_the_key_keeping_the_last_row<S: Session>(
    db: &mut SqlDestination<S>,
    schema: &str,
) {
    let deals = table(schema, "deals");
    let spec = [("id", BigInt), ("title", Text)];
    let rows1 = vec![vec![json!(1), json!("a")], vec![json!(2), json!("b")]];
    write(db, &deals, &spec, rows1, &state("1")).await.unwrap();
    let rows2 = vec![vec![json!(2), json!("b2")], vec![json!(3), json!("c")]];
    write(db, &deals, &spec, rows2, &state("2")).await.unwrap();
    let read = rows(db, &format!("{}, title", text::<S>("id")), &deals, "id").await;
    let expected = texts(&[
        &[Some("1"), Some("a")],
        &[Some("2"), Some("b2")],
        &[Some("3"), Some("c")],
    ]);
    assert_eq!(read, expected);
    assert_eq!(bookmark(db).await.as_deref(), Some("2"));
}

async fn columns_are_added_and_widened_keeping_values<S: Session>(
    db: &mut SqlDestination<S>,
    schema: &str,
) {
    let deals = table(schema, "deals");
    let st = state("1");
    write(
        db,
        &deals,
        &[("id", BigInt), ("amount", BigInt)],
        vec![vec![json!(1), json!(5)]],
        &st,
    )
    .await
    .unwrap();
    let double = [("id", BigInt), ("amount", ColumnType::Double)];
    write(db, &deals, &double, vec![vec![json!(2), json!(2.5)]], &st)
        .await
        .unwrap();
    let widest = [("id", BigInt), ("amount", Text), ("note", Text)];
    let rows3 = vec![vec![json!(3), json!("x"), json!("n")]];
    write(db, &deals, &widest, rows3, &st).await.unwrap();
    db.tables.clear();
    let stored = db.columns_of(&db.stored(&deals)).await.unwrap().unwrap();
    let ty = |name: &str| stored.iter().find(|c| c.name == name).map(|c| c.ty);
    assert_eq!((ty("amount"), ty("note")), (Some(Text), Some(Text)));
    let read = rows(
        db,
        &format!("{}, amount, note", text::<S>("id")),
        &deals,
        "id",
    )
    .await;
    assert_eq!(read.len(), 3);
    assert!(read[0][1].is_some(), "the first value survives widening");
    assert_eq!(read[1][1].as_deref(), Some("2.5"));
    assert_eq!(read[2][1..], [Some("x".to_owned()), Some("n".to_owned())]);
}

async fn a_failed_write_changes_neither_rows_nor_state<S: Session>(
    db: &mut SqlDestination<S>,
    schema: &str,
) {
    let deals = table(schema, "deals");
    let spec = [("id", BigInt), ("title", Text)];
    write(
        db,
        &deals,
        &spec,
        vec![vec![json!(1), json!("a")]],
        &state("1"),
    )
    .await
    .unwrap();
    // One transaction: a good page with a new column, then a page the table refuses (it has
    // no key to merge on) after adding a column of its own.
    let good = columns(&[("id", BigInt), ("title", Text), ("stage", Text)]);
    let good_rows = vec![vec![json!(2), json!("b"), json!("won")]];
    let bad = columns(&[("amount", BigInt)]);
    let bad_rows = vec![vec![json!(3)]];
    let (two, three) = (state("2"), state("3"));
    let failed = db
        .write(&[
            batch(&deals, &["id"], &good, &good_rows, &two),
            batch(&deals, &["id"], &bad, &bad_rows, &three),
        ])
        .await;
    assert!(failed.is_err(), "a page without its key must fail");
    let read = rows(db, &text::<S>("id"), &deals, "id").await;
    assert_eq!(read, texts(&[&[Some("1")]]));
    assert_eq!(bookmark(db).await.as_deref(), Some("1"));
    // The rolled-back column is gone, and the destination knows it.
    db.write(&[batch(&deals, &["id"], &good, &good_rows, &two)])
        .await
        .unwrap();
    let read = rows(db, &format!("{}, stage", text::<S>("id")), &deals, "id").await;
    assert_eq!(
        read,
        texts(&[&[Some("1"), None], &[Some("2"), Some("won")]])
    );
}

async fn rows_no_longer_listed_are_marked_not_removed<S: Session>(
    db: &mut SqlDestination<S>,
    schema: &str,
) {
    let deals = table(schema, "deals");
    let spec = [("id", BigInt), ("title", Text)];
    let all = (1..=3).map(|id| vec![json!(id), json!("t")]).collect();
    write(db, &deals, &spec, all, &state("1")).await.unwrap();
    let present = [json!(1), json!(3)];
    let missing = |state| Missing {
        stream: "deals",
        table: &deals,
        key: "id",
        present: Present::Keys(&present),
        deleted_at: "2024-06-01T00:00:00Z",
        state,
    };
    let (nine, ten) = (state("9"), state("10"));
    assert_eq!(db.keep_deleted(&missing(&nine)).await.unwrap(), 1);
    let select = format!(
        "{}, {}, {}",
        text::<S>("id"),
        text::<S>("_deleted"),
        S::epoch_us(&quote("_deleted_at"))
    );
    let expected = texts(&[
        &[Some("1"), None, None],
        &[Some("2"), Some("true"), Some("1717200000000000")],
        &[Some("3"), None, None],
    ]);
    assert_eq!(rows(db, &select, &deals, "id").await, expected);
    // Marked once: a second pass marks nothing and keeps the first time.
    assert_eq!(db.keep_deleted(&missing(&ten)).await.unwrap(), 0);
    assert_eq!(rows(db, &select, &deals, "id").await, expected);
    assert_eq!(bookmark(db).await.as_deref(), Some("10"));
}

async fn a_reload_replaces_the_table_keeping_deleted_rows<S: Session>(
    db: &mut SqlDestination<S>,
    schema: &str,
) {
    let deals = table(schema, "deals");
    let staging = deals.staging();
    let spec = [("id", BigInt), ("title", Text)];
    let old = vec![vec![json!(1), json!("a")], vec![json!(2), json!("b")]];
    write(db, &deals, &spec, old, &state("1")).await.unwrap();
    let reloaded = vec![vec![json!(1), json!("a2")]];
    write(db, &staging, &spec, reloaded, &state("1"))
        .await
        .unwrap();
    let loading = state("loading");
    let missing = Missing {
        stream: "deals",
        table: &deals,
        key: "id",
        present: Present::Reloaded(&staging),
        deleted_at: "2024-06-01T00:00:00Z",
        state: &loading,
    };
    assert_eq!(db.keep_deleted(&missing).await.unwrap(), 1);
    db.replace("deals", &staging, &deals, &state("done"))
        .await
        .unwrap();
    let select = format!("{}, title, {}", text::<S>("id"), text::<S>("_deleted"));
    let expected = texts(&[
        &[Some("1"), Some("a2"), None],
        &[Some("2"), Some("b"), Some("true")],
    ]);
    assert_eq!(rows(db, &select, &deals, "id").await, expected);
    assert_eq!(bookmark(db).await.as_deref(), Some("done"));
    db.tables.clear();
    let staged = db.stored(&staging);
    assert_eq!(
        db.columns_of(&staged).await.unwrap(),
        None,
        "staging is gone"
    );
}

async fn children_of_parents_read_again_are_replaced<S: Session>(
    db: &mut SqlDestination<S>,
    schema: &str,
) {
    let products = table(schema, "deal_products");
    let spec = columns(&[("id", BigInt), ("deal_id", BigInt)]);
    let child = |id: i64, deal: i64| vec![json!(id), json!(deal)];
    let first = vec![child(1, 10), child(2, 10), child(3, 20)];
    let st = state("1");
    db.write(&[batch(&products, &["id"], &spec, &first, &st)])
        .await
        .unwrap();
    let again = vec![child(4, 10)];
    for (parents, rows) in [(vec![json!(10)], again), (vec![json!(20)], Vec::new())] {
        let mut page = batch(&products, &["id"], &spec, &rows, &st);
        page.replace_parents = Some(("deal_id", &parents));
        db.write(&[page]).await.unwrap();
    }
    let read = rows(db, &text::<S>("id"), &products, "id").await;
    assert_eq!(read, texts(&[&[Some("4")]]));
}

async fn a_new_version_closes_the_current_one<S: Session>(
    db: &mut SqlDestination<S>,
    schema: &str,
) {
    let history = table(schema, "deals_history");
    let spec = columns(&[
        ("id", BigInt),
        ("title", Text),
        (VALID_FROM, Timestamp),
        (VALID_TO, Timestamp),
        (IS_CURRENT, Boolean),
    ]);
    let st = state("1");
    for (title, from) in [("a", "2024-01-01T00:00:00Z"), ("b", "2024-02-01T00:00:00Z")] {
        let rows = vec![vec![
            json!(1),
            json!(title),
            json!(from),
            Value::Null,
            json!(true),
        ]];
        let mut page = batch(&history, &["id"], &spec, &rows, &st);
        page.history = true;
        db.write(&[page]).await.unwrap();
    }
    let select = format!(
        "title, {}, {}",
        S::epoch_us(&quote(VALID_TO)),
        text::<S>(IS_CURRENT)
    );
    let read = rows(db, &select, &history, &quote(VALID_FROM)).await;
    let expected = texts(&[
        &[Some("a"), Some("1706745600000000"), Some("false")],
        &[Some("b"), None, Some("true")],
    ]);
    assert_eq!(read, expected);
}

fn run(company: &str, started_at: DateTime<Utc>) -> RunRecord {
    RunRecord {
        run_id: format!("{company}-{}", started_at.timestamp_micros()),
        company: company.to_owned(),
        started_at,
        finished_at: started_at + chrono::Duration::milliseconds(2_345),
        status: RunStatus::Succeeded,
        error: Some("a \"quoted\" message".to_owned()),
        records: 5,
        requests: 2,
        tokens: 20,
        responses_429: 1,
        burst_limit: None,
        streams: vec![StreamRun {
            stream: "deals".to_owned(),
            records: 5,
            requests: 2,
            tokens: 20,
            responses_429: 1,
            seconds: 1.5,
            outcome: "complete".to_owned(),
            error: None,
        }],
        timeline: Timeline {
            requests: vec![2, 0],
            responses_429: vec![0, 1],
        },
    }
}

async fn versions_and_runs_read_back_as_written<S: Session>(
    db: &mut SqlDestination<S>,
    schema: &str,
) {
    let deals = table(schema, "deals");
    let spec = [("id", BigInt), ("update_time", Timestamp)];
    let rows = vec![
        vec![json!(1), json!("2024-01-01T00:00:00.250Z")],
        vec![json!(2), Value::Null],
    ];
    write(db, &deals, &spec, rows, &state("1")).await.unwrap();
    let keys = ["1", "2", "3"].map(str::to_owned);
    let versions = db
        .stored_versions(&deals, "id", "update_time", &keys)
        .await
        .unwrap();
    assert_eq!(
        versions,
        HashMap::from([("1".to_owned(), 1_704_067_200_250)])
    );
    let none = db
        .stored_versions(&table(schema, "absent"), "id", "update_time", &keys)
        .await
        .unwrap();
    assert!(none.is_empty());

    let started = DateTime::parse_from_rfc3339("2024-03-04T05:06:07.123456Z")
        .unwrap()
        .with_timezone(&Utc);
    let written = [
        run("acme", started),
        run("acme", started + chrono::Duration::hours(1)),
    ];
    for record in &written {
        db.record_run(record).await.unwrap();
    }
    assert_eq!(db.read_runs().await.unwrap(), written);
}

/// Each behaviour as two tests: `duckdb` and `postgres`.
macro_rules! on_both {
    ($($behaviour:ident),* $(,)?) => {$(
        mod $behaviour {
            use crate::duckdb::DuckDb;
            use crate::postgres::tests::{Scratch, URL};

            #[tokio::test(flavor = "multi_thread")]
            async fn duckdb() {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("core.duckdb");
                let mut db = DuckDb::open(&path, "main").await.unwrap();
                super::$behaviour(&mut db, "crm").await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn postgres() {
                let scratch = Scratch::new("core");
                let mut db = crate::postgres::connect(URL, &scratch.schema).await.unwrap();
                super::$behaviour(&mut db, &scratch.schema).await;
            }
        }
    )*};
}

on_both!(
    merges_on_the_key_keeping_the_last_row,
    columns_are_added_and_widened_keeping_values,
    a_failed_write_changes_neither_rows_nor_state,
    rows_no_longer_listed_are_marked_not_removed,
    a_reload_replaces_the_table_keeping_deleted_rows,
    children_of_parents_read_again_are_replaced,
    a_new_version_closes_the_current_one,
    versions_and_runs_read_back_as_written,
);
