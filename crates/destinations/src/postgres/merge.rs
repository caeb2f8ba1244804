//! A page into its PostgreSQL table: the rows with its keys deleted (by key, through the key
//! index), then the page sent by binary COPY.

use std::collections::HashSet;
use std::pin::pin;

use arrow::array::ArrayRef;
use pipedrive_engine::DestinationError;
use pipedrive_engine::columnar;
use pipedrive_engine::destination::columns::{IS_CURRENT, VALID_FROM, VALID_TO};
use pipedrive_engine::schema::Column;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::encode::{Cell, encode, key_text, sql_type, wire_type};
use super::fail;
use super::session::PostgresSession;
use crate::sql::session::Load;
use crate::sql::{SYNCED_AT, quote};

/// Rows to load, the last one winning when a key repeats within the batch (a record seen
/// twice while paging), so the merge never inserts duplicates.
fn last_per_key<'a>(rows: Vec<Vec<Cell<'a>>>, key_positions: &[usize]) -> Vec<Vec<Cell<'a>>> {
    let mut seen = HashSet::new();
    let mut kept: Vec<Vec<Cell<'a>>> = rows
        .into_iter()
        .rev()
        .filter(|cells| {
            seen.insert(
                key_positions
                    .iter()
                    .map(|&k| key_text(&cells[k]))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    kept.reverse();
    kept
}

/// A value for an error message, whatever its array's type, cut short.
fn shown(array: &dyn arrow::array::Array, row: usize) -> String {
    let text = arrow::util::display::array_value_to_string(array, row)
        .unwrap_or_else(|e| format!("(unreadable: {e})"));
    columnar::shorten(text)
}

impl PostgresSession {
    pub(super) async fn copy_in(&mut self, load: &Load<'_>) -> Result<(), DestinationError> {
        let batch = load.batch;
        // Each column as its table's (possibly wider) type once, then read value by value.
        let arrays: Vec<ArrayRef> = load
            .columns
            .iter()
            .map(|(i, column)| {
                columnar::widen(batch.records.column(*i), &batch.columns[*i], column.ty).map_err(
                    |misfit| DestinationError::new(format!("stream {}: {misfit}", batch.stream)),
                )
            })
            .collect::<Result<_, _>>()?;
        let mut encoded: Vec<Vec<Cell<'_>>> = Vec::with_capacity(batch.len());
        for row in 0..batch.len() {
            let cells = load
                .columns
                .iter()
                .zip(&arrays)
                .map(|((i, column), array)| {
                    encode(array.as_ref(), column.ty, row).ok_or_else(|| {
                        DestinationError::new(format!(
                            "stream {}: column {:?} (row {}) holds {}, which does not fit its PostgreSQL type {}",
                            batch.stream,
                            batch.columns[*i].name,
                            row + 1,
                            shown(array.as_ref(), row),
                            sql_type(column.ty)
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            encoded.push(cells);
        }
        let encoded = last_per_key(encoded, load.key_positions);

        // The batch's keys travel as text arrays, cast back to the key columns' types in SQL:
        // the merge needs no temporary table (whose create and drop per page cost more than the
        // rows), and the plain index on the key serves both the delete and the history update.
        let key_arrays: Vec<Vec<Option<String>>> = load
            .key_positions
            .iter()
            .map(|&k| encoded.iter().map(|cells| key_text(&cells[k])).collect())
            .collect();
        let key_params: Vec<&(dyn ToSql + Sync)> = key_arrays
            .iter()
            .map(|a| a as &(dyn ToSql + Sync))
            .collect();
        let keys: Vec<&Column> = load.keys().collect();
        let unnest = format!(
            "unnest({}) AS b({})",
            (1..=keys.len())
                .map(|n| format!("${n}::text[]"))
                .collect::<Vec<_>>()
                .join(", "),
            (0..keys.len())
                .map(|n| format!("k{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let key_match: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(n, k)| format!("t.{} = b.k{n}::{}", quote(&k.name), sql_type(k.ty)))
            .collect();
        let target = load.name;
        self.client
            .execute(
                &format!(
                    "DELETE FROM {target} AS t USING {unnest} WHERE {}",
                    key_match.join(" AND ")
                ),
                &key_params,
            )
            .await
            .map_err(fail("merging rows"))?;
        if batch.history {
            // Each key's current version ends where the batch's first one begins; the last
            // key is `_valid_from`.
            let from = keys.len() - 1;
            let groups: Vec<String> = (0..from).map(|n| format!("b.k{n}")).collect();
            let joined: Vec<String> = keys[..from]
                .iter()
                .enumerate()
                .map(|(n, k)| format!("t.{} = f.k{n}::{}", quote(&k.name), sql_type(k.ty)))
                .collect();
            self.client
                .execute(
                    &format!(
                        "UPDATE {target} AS t SET {to} = f.first_from, {current} = false \
                         FROM (SELECT {groups}, min(b.k{from}::timestamptz) AS first_from FROM {unnest} \
                         GROUP BY {groups}) AS f \
                         WHERE {joined} AND t.{current} AND t.{valid_from} < f.first_from",
                        to = quote(VALID_TO),
                        current = quote(IS_CURRENT),
                        valid_from = quote(VALID_FROM),
                        groups = groups.join(", "),
                        joined = joined.join(" AND "),
                    ),
                    &key_params,
                )
                .await
                .map_err(fail("closing current versions"))?;
        }

        let synced_at = chrono::DateTime::from_timestamp_micros(load.synced_at_us)
            .ok_or_else(|| DestinationError::new("the sync time is out of range"))?;
        let mut names: Vec<String> = load.columns.iter().map(|(_, c)| quote(&c.name)).collect();
        names.push(quote(SYNCED_AT));
        let sink = self
            .client
            .copy_in(&format!(
                "COPY {target} ({}) FROM STDIN (FORMAT binary)",
                names.join(", ")
            ))
            .await
            .map_err(fail("copying rows"))?;
        let mut wire: Vec<Type> = load.columns.iter().map(|(_, c)| wire_type(c.ty)).collect();
        wire.push(Type::TIMESTAMPTZ);
        let mut writer = pin!(BinaryCopyInWriter::new(sink, &wire));
        let mut values: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(wire.len());
        for cells in &encoded {
            values.clear();
            values.extend(cells.iter().map(Cell::as_sql));
            values.push(&synced_at);
            writer
                .as_mut()
                .write(&values)
                .await
                .map_err(fail("copying rows"))?;
        }
        writer.finish().await.map_err(fail("copying rows"))?;
        let grown = self.growth.entry(load.table.clone()).or_default();
        grown.copied += encoded.len() as u64;
        if grown.copied >= grown.analyze_at {
            grown.analyze_at = grown.copied * 2;
            self.client
                .batch_execute(&format!("ANALYZE {target}"))
                .await
                .map_err(fail("analysing the table"))?;
        }
        Ok(())
    }
}
