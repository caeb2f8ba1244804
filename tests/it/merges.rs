//! Merging pages into a table the destination created in the same run: pages out of key order
//! (DuckDB appends those holding no leading key written before straight in, and merges the
//! others) and children replaced per parent, keyed by it or by ids of their own. Every destination must leave one row per key,
//! the last one written, and a parent's children exactly as its last page gave them.

use pipedrive_destinations::duckdb::DuckDb;
use pipedrive_destinations::postgres;
use pipedrive_engine::columnar;
use pipedrive_engine::schema::{Column, ColumnType};
use pipedrive_engine::{Batch, Destination, StreamState, TableRef};
use serde_json::{Value, json};

use crate::support::{POSTGRES_URL, PgSchema};

/// One page's rows, with the parent column and the parents whose children it replaces.
struct Page {
    rows: Vec<Vec<Value>>,
    parents: Option<(&'static str, Vec<Value>)>,
}

impl Page {
    /// Rows replacing the children of `parents` (ids in `column`).
    fn children(column: &'static str, rows: Vec<Vec<Value>>, parents: &[i64]) -> Page {
        Page {
            rows,
            parents: Some((column, parents.iter().map(|id| json!(id)).collect())),
        }
    }
}

/// Writes `rows` into `table` as one page of the stream named after it, in a transaction of
/// its own.
async fn write_page(
    destination: &mut dyn Destination,
    table: &TableRef,
    primary_key: &[&str],
    columns: &[Column],
    rows: &[Vec<Value>],
    replace_parents: Option<(&str, &[Value])>,
) {
    let records = columnar::record_batch(columns, rows).expect("the rows fit their columns");
    let batch = Batch {
        stream: &table.name,
        table,
        primary_key,
        columns,
        records: &records,
        replace_parents,
        state: &StreamState::default(),
        synced_at: "2026-01-02T03:04:05Z",
        history: false,
    };
    destination
        .write(&[batch])
        .await
        .expect("the page is written");
}

/// Pages written in order into one table.
struct Scenario {
    table: &'static str,
    primary_key: &'static [&'static str],
    columns: Vec<Column>,
    pages: Vec<Page>,
    /// The table's rows at the end, as `column: value` objects.
    expected: Vec<Value>,
}

impl Scenario {
    async fn write(&self, destination: &mut dyn Destination, schema: &str) {
        let table = TableRef {
            schema: schema.to_owned(),
            name: self.table.to_owned(),
        };
        for Page { rows, parents } in &self.pages {
            let replace = parents
                .as_ref()
                .map(|(column, parents)| (*column, parents.as_slice()));
            write_page(
                destination,
                &table,
                self.primary_key,
                &self.columns,
                rows,
                replace,
            )
            .await;
        }
    }

    /// `rows` (objects with `_synced_at`) against the expected ones, in any order.
    fn check(&self, rows: Vec<Value>) {
        let mut rows: Vec<String> = rows
            .into_iter()
            .map(|mut row| {
                let object = row.as_object_mut().expect("a row is an object");
                assert!(object.remove("_synced_at").is_some(), "{object:?}");
                row.to_string()
            })
            .collect();
        let mut expected: Vec<String> = self.expected.iter().map(Value::to_string).collect();
        rows.sort();
        expected.sort();
        assert_eq!(rows, expected, "{}", self.table);
    }
}

fn deals() -> Scenario {
    let row = |id: i64, title: &str| vec![json!(id), json!(title)];
    let pages = vec![
        vec![row(1, "a"), row(2, "b"), row(3, "c")],
        // Overlaps the last page (a record that moved while the list was read).
        vec![row(3, "c2"), row(4, "d")],
        vec![row(10, "e"), row(11, "f")],
        // Below everything so far.
        vec![row(2, "b2")],
        vec![row(12, "g")],
    ];
    Scenario {
        table: "deals",
        primary_key: &["id"],
        columns: vec![
            Column::new("id", ColumnType::BigInt),
            Column::new("title", ColumnType::Text),
        ],
        pages: pages
            .into_iter()
            .map(|rows| Page {
                rows,
                parents: None,
            })
            .collect(),
        expected: [
            (1, "a"),
            (2, "b2"),
            (3, "c2"),
            (4, "d"),
            (10, "e"),
            (11, "f"),
            (12, "g"),
        ]
        .into_iter()
        .map(|(id, title)| json!({"id": id, "title": title}))
        .collect(),
    }
}

fn person_emails() -> Scenario {
    let row = |person: i64, position: i64, value: &str| {
        vec![json!(person), json!(position), json!(value)]
    };
    let page = |rows, people: &[i64]| Page::children("person_id", rows, people);
    Scenario {
        table: "person_emails",
        primary_key: &["person_id", "position"],
        columns: vec![
            Column::new("person_id", ColumnType::BigInt),
            Column::new("position", ColumnType::BigInt),
            Column::new("value", ColumnType::Text),
        ],
        pages: vec![
            page(
                vec![
                    row(1, 0, "a"),
                    row(1, 1, "b"),
                    row(2, 0, "c"),
                    row(2, 1, "d"),
                ],
                &[1, 2],
            ),
            // Person 2 again, now with one email; person 3 has none.
            page(vec![row(2, 0, "c2")], &[2, 3]),
            page(vec![row(5, 0, "e")], &[4, 5]),
            // Person 1 lost every email.
            page(vec![], &[1]),
        ],
        expected: vec![
            json!({"person_id": 2, "position": 0, "value": "c2"}),
            json!({"person_id": 5, "position": 0, "value": "e"}),
        ],
    }
}

/// Children with ids of their own, replaced per parent (a deal's products): a page of new ids
/// still replaces the children its parents had.
fn deal_products() -> Scenario {
    let row = |id: i64, deal: i64| vec![json!(id), json!(deal)];
    let page = |rows, deals: &[i64]| Page::children("deal_id", rows, deals);
    Scenario {
        table: "deal_products",
        primary_key: &["id"],
        columns: vec![
            Column::new("id", ColumnType::BigInt),
            Column::new("deal_id", ColumnType::BigInt),
        ],
        pages: vec![
            page(vec![row(20, 1), row(10, 1), row(30, 2)], &[1, 2]),
            // Deal 1 re-read with a product added and both old ones removed.
            page(vec![row(40, 1)], &[1]),
            page(vec![row(5, 3)], &[3]),
        ],
        expected: vec![
            json!({"id": 30, "deal_id": 2}),
            json!({"id": 40, "deal_id": 1}),
            json!({"id": 5, "deal_id": 3}),
        ],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn duckdb_leaves_one_row_per_key_and_the_last_children() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("merges.duckdb");
    let scenarios = [deals(), person_emails(), deal_products()];
    let mut destination = DuckDb::open(&path, "main").await.unwrap();
    for scenario in &scenarios {
        scenario.write(&mut destination, "main").await;
    }
    drop(destination);

    let connection = duckdb::Connection::open(&path).expect("the file opens");
    for scenario in &scenarios {
        let sql = format!(
            "SELECT to_json(t)::VARCHAR FROM main.{} AS t",
            scenario.table
        );
        let mut statement = connection.prepare(&sql).expect("the query prepares");
        let rows: Vec<String> = statement
            .query_map([], |row| row.get(0))
            .expect("the query runs")
            .collect::<Result<_, _>>()
            .expect("the rows read");
        scenario.check(
            rows.iter()
                .map(|json| serde_json::from_str(json).expect("JSON row"))
                .collect(),
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_leaves_one_row_per_key_and_the_last_children() {
    let schema = PgSchema::new("merges").await;
    let scenarios = [deals(), person_emails(), deal_products()];
    let mut destination = postgres::connect(POSTGRES_URL, &schema.name)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
    for scenario in &scenarios {
        scenario.write(&mut destination, &schema.name).await;
    }
    destination.close().await.expect("the lock is released");

    for scenario in &scenarios {
        scenario.check(schema.rows(scenario.table, scenario.primary_key[0]).await);
    }
    schema.drop().await;
}

/// Two connections writing at once (as a sync's two writers do) checkpoint between their
/// transactions: the write-ahead log never grows far past the threshold (16 MB), though
/// DuckDB's own automatic checkpoints are off, and every row is in the file afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn duckdb_checkpoints_between_two_writers_transactions() {
    const PAGES: i64 = 80;
    const TEXTS: usize = 16;
    const ROWS: i64 = 500;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoints.duckdb");
    let mut first = DuckDb::open(&path, "main").await.unwrap();
    let second = first.fork().await.unwrap().expect("DuckDB forks");
    let wal = dir.path().join("checkpoints.duckdb.wal");
    let columns: Vec<Column> = std::iter::once(Column {
        name: "id".to_owned(),
        ty: ColumnType::BigInt,
    })
    .chain((0..TEXTS).map(|i| Column {
        name: format!("text_{i}"),
        ty: ColumnType::Text,
    }))
    .collect();
    let writer = |mut destination: Box<dyn Destination>, table_name: &'static str| {
        let (columns, wal) = (columns.clone(), wal.clone());
        tokio::spawn(async move {
            let table = TableRef {
                schema: "main".to_owned(),
                name: table_name.to_owned(),
            };
            let (mut largest_log, mut text_bytes) = (0, 0);
            for page in 0..PAGES {
                // Text that does not compress away in the log: each row's own digits.
                let rows: Vec<Vec<Value>> = (0..ROWS)
                    .map(|row| {
                        let id = page * ROWS + row;
                        std::iter::once(json!(id))
                            .chain(
                                (0..TEXTS)
                                    .map(|i| json!(format!("{id:>20}-{i:02}-{:>16}", id * 7919))),
                            )
                            .collect()
                    })
                    .collect();
                text_bytes += rows
                    .iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::len)
                    .sum::<usize>();
                write_page(destination.as_mut(), &table, &["id"], &columns, &rows, None).await;
                largest_log = largest_log.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
            }
            (largest_log, text_bytes)
        })
    };
    let (one, two) = (writer(Box::new(first), "one"), writer(second, "two"));
    let logs = [one.await.unwrap(), two.await.unwrap()];
    let written: usize = logs.iter().map(|(_, bytes)| bytes).sum();
    assert!(
        written > 3 * (16 << 20),
        "the test writes {written} bytes of text, enough for several checkpoints"
    );
    for (largest, _) in logs {
        assert!(
            largest < 20 << 20,
            "the log reached {largest} bytes between checkpoints"
        );
    }
    let connection = duckdb::Connection::open(&path).expect("the file opens");
    for table in ["one", "two"] {
        let rows: i64 = connection
            .query_row(
                &format!("SELECT count(DISTINCT id) FROM main.{table}"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rows, PAGES * ROWS);
    }
}
