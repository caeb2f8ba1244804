//! A company with hundreds of custom fields gets tables hundreds of columns wide. DuckDB's
//! checkpoint needs memory for every column it writes, so its memory cap must grow with the
//! widest table: a fixed small cap invalidates the database mid-sync ("Failed to create
//! checkpoint").

use pipedrive_destinations::duckdb::DuckDb;
use pipedrive_engine::columnar;
use pipedrive_engine::schema::{Column, ColumnType};
use pipedrive_engine::{Batch, Destination, StreamState, TableRef};
use serde_json::{Value, json};

const CUSTOM_FIELDS: usize = 400;
const PAGES: i64 = 12;
const PAGE_ROWS: i64 = 500;

#[tokio::test(flavor = "multi_thread")]
async fn duckdb_checkpoints_a_table_with_hundreds_of_custom_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.duckdb");
    let table = TableRef {
        schema: "main".to_owned(),
        name: "deals".to_owned(),
    };
    let is_text = |field: usize| field.is_multiple_of(2);
    let mut columns = vec![Column::new("id", ColumnType::BigInt)];
    columns.extend((0..CUSTOM_FIELDS).map(|i| {
        let ty = if is_text(i) {
            ColumnType::Text
        } else {
            ColumnType::Double
        };
        Column::new(&format!("custom field {i}"), ty)
    }));
    let value = |id: i64, field: usize| -> Value {
        if is_text(field) {
            json!(format!("deal {id} value {field}"))
        } else {
            json!(id as f64 + field as f64 / 1000.0)
        }
    };
    let state = StreamState::default();
    let mut destination = DuckDb::open(&path, "main").await.unwrap();
    for page in 0..PAGES {
        let rows: Vec<Vec<Value>> = (page * PAGE_ROWS..(page + 1) * PAGE_ROWS)
            .map(|id| {
                std::iter::once(json!(id))
                    .chain((0..CUSTOM_FIELDS).map(|field| value(id, field)))
                    .collect()
            })
            .collect();
        let records = columnar::record_batch(&columns, &rows).unwrap();
        let batch = Batch {
            stream: "deals",
            table: &table,
            primary_key: &["id"],
            columns: &columns,
            records: &records,
            replace_parents: None,
            state: &state,
            synced_at: "2026-01-02T03:04:05Z",
            history: false,
        };
        destination
            .write(&[batch])
            .await
            .unwrap_or_else(|error| panic!("page {page} is written: {error}"));
    }
    drop(destination);

    let connection = duckdb::Connection::open(&path).expect("the file opens");
    let (rows, last_text, last_number): (i64, String, f64) = connection
        .query_row(
            &format!(
                "SELECT count(*), max(\"custom field {text}\"), max(\"custom field {number}\") \
                 FROM main.deals",
                text = CUSTOM_FIELDS - 2,
                number = CUSTOM_FIELDS - 1,
            ),
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .expect("the table reads");
    let last_id = PAGES * PAGE_ROWS - 1;
    assert_eq!(rows, PAGES * PAGE_ROWS);
    // Text compares as text: "deal 999 …" sorts after "deal 5999 …".
    assert_eq!(last_text, format!("deal 999 value {}", CUSTOM_FIELDS - 2));
    assert_eq!(
        last_number,
        last_id as f64 + (CUSTOM_FIELDS - 1) as f64 / 1000.0
    );
}
