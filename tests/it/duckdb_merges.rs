//! DuckDB's merge of pages into a table it created in the same run: pages whose leading keys
//! lie above every earlier one are appended straight into the table, the others merged. Both
//! must leave one row per key, the last one written.

use pipedrive_destinations::duckdb::DuckDb;
use pipedrive_engine::schema::{Column, ColumnType};
use pipedrive_engine::{Batch, Destination, StreamState, TableRef};
use serde_json::{Value, json};

const SYNCED_AT: &str = "2026-01-02T03:04:05Z";

struct Table {
    table: TableRef,
    primary_key: &'static [&'static str],
    columns: Vec<Column>,
}

impl Table {
    async fn write(
        &self,
        destination: &mut DuckDb,
        rows: &[Vec<Value>],
        replace_parents: Option<(&str, &[Value])>,
    ) {
        let state = StreamState::default();
        let batch = Batch {
            stream: "stream",
            table: &self.table,
            primary_key: self.primary_key,
            columns: &self.columns,
            rows,
            replace_parents,
            state: &state,
            synced_at: SYNCED_AT,
            history: false,
        };
        destination
            .write(&[batch])
            .await
            .expect("the page is written");
    }
}

fn rows_of(path: &std::path::Path, sql: &str) -> Vec<(i64, i64, String)> {
    let connection = duckdb::Connection::open(path).expect("the file opens");
    let mut statement = connection.prepare(sql).expect("the query prepares");
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("the query runs")
        .collect::<Result<_, _>>()
        .expect("the rows read")
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_out_of_key_order_still_leave_one_row_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("merges.duckdb");
    let mut destination = DuckDb::open(&path, "main").unwrap();
    let deals = Table {
        table: TableRef {
            schema: "main".to_owned(),
            name: "deals".to_owned(),
        },
        primary_key: &["id"],
        columns: vec![
            Column::new("id", ColumnType::BigInt),
            Column::new("title", ColumnType::Text),
        ],
    };
    let row = |id: i64, title: &str| vec![json!(id), json!(title)];
    deals
        .write(
            &mut destination,
            &[row(1, "a"), row(2, "b"), row(3, "c")],
            None,
        )
        .await;
    // Overlaps the last page (a record that moved while the list was read).
    deals
        .write(&mut destination, &[row(3, "c2"), row(4, "d")], None)
        .await;
    deals
        .write(&mut destination, &[row(10, "e"), row(11, "f")], None)
        .await;
    // Below everything so far.
    deals.write(&mut destination, &[row(2, "b2")], None).await;
    deals.write(&mut destination, &[row(12, "g")], None).await;
    drop(destination);

    let rows = rows_of(&path, "SELECT id, 0, title FROM deals ORDER BY id, title");
    let expected: Vec<(i64, i64, String)> = [
        (1, "a"),
        (2, "b2"),
        (3, "c2"),
        (4, "d"),
        (10, "e"),
        (11, "f"),
        (12, "g"),
    ]
    .into_iter()
    .map(|(id, title)| (id, 0, title.to_owned()))
    .collect();
    assert_eq!(rows, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn children_keyed_by_their_parent_are_replaced_per_parent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("children.duckdb");
    let mut destination = DuckDb::open(&path, "main").unwrap();
    let emails = Table {
        table: TableRef {
            schema: "main".to_owned(),
            name: "person_emails".to_owned(),
        },
        primary_key: &["person_id", "position"],
        columns: vec![
            Column::new("person_id", ColumnType::BigInt),
            Column::new("position", ColumnType::BigInt),
            Column::new("value", ColumnType::Text),
        ],
    };
    let row = |person: i64, position: i64, value: &str| {
        vec![json!(person), json!(position), json!(value)]
    };
    emails
        .write(
            &mut destination,
            &[
                row(1, 0, "a"),
                row(1, 1, "b"),
                row(2, 0, "c"),
                row(2, 1, "d"),
            ],
            Some(("person_id", &[json!(1), json!(2)])),
        )
        .await;
    // Person 2 again, now with one email; person 3 has none.
    emails
        .write(
            &mut destination,
            &[row(2, 0, "c2")],
            Some(("person_id", &[json!(2), json!(3)])),
        )
        .await;
    emails
        .write(
            &mut destination,
            &[row(5, 0, "e")],
            Some(("person_id", &[json!(4), json!(5)])),
        )
        .await;
    // Person 1 lost every email.
    emails
        .write(&mut destination, &[], Some(("person_id", &[json!(1)])))
        .await;
    drop(destination);

    let rows = rows_of(
        &path,
        "SELECT person_id, position, value FROM person_emails ORDER BY ALL",
    );
    let expected: Vec<(i64, i64, String)> = [(2, 0, "c2"), (5, 0, "e")]
        .into_iter()
        .map(|(person, position, value)| (person, position, value.to_owned()))
        .collect();
    assert_eq!(rows, expected);
}
