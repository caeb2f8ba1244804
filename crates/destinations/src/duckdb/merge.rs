//! A page into its DuckDB table: appended straight in when the table cannot hold its keys
//! yet, otherwise through a temporary table and a keyed delete and insert.

use pipedrive_engine::columnar;
use pipedrive_engine::destination::columns::{IS_CURRENT, VALID_FROM, VALID_TO};
use pipedrive_engine::schema::{Column, ColumnType};
use pipedrive_engine::{Batch, DestinationError};

use super::fail;
use super::fresh_tables::bounds;
use super::session::DuckDbSession;
use crate::arrow_rows::{self, SYNCED_AT, Slot};
use crate::sql::quote;
use crate::sql::session::{Load, Session};

/// The batch's non-null values of `column`; `None` when it is not an integer column.
fn integer_values(batch: &Batch<'_>, column: &str) -> Option<Vec<i64>> {
    let Some(index) = batch.columns.iter().position(|c| c.name == column) else {
        return Some(Vec::new());
    };
    columnar::integers(
        batch.columns[index].ty,
        batch.records.column(index).as_ref(),
    )
}

/// The smallest and largest leading key of a batch whose leading key column is an integer.
struct KeyRange {
    column: String,
    low: i64,
    high: i64,
}

fn key_range(load: &Load<'_>) -> Option<KeyRange> {
    let (index, column) = &load.columns[*load.key_positions.first()?];
    if column.ty != ColumnType::BigInt {
        return None;
    }
    let batch = load.batch;
    let keys = columnar::integers(
        batch.columns[*index].ty,
        batch.records.column(*index).as_ref(),
    )?;
    let (low, high) = bounds(keys.into_iter())?;
    Some(KeyRange {
        column: column.name.clone(),
        low,
        high,
    })
}

impl DuckDbSession {
    pub(super) fn merge_now(&mut self, load: &Load<'_>) -> Result<(), DestinationError> {
        let batch = load.batch;
        // The columns whose values tell which pages skip their delete: the leading key and,
        // for children, the parent column.
        let tracked: Vec<(&str, Option<Vec<i64>>)> = batch
            .primary_key
            .first()
            .copied()
            .into_iter()
            .chain(batch.replace_parents.map(|(column, _)| column))
            .map(|column| (column, integer_values(batch, column)))
            .collect();
        let columns: Vec<(usize, &Column)> = load.columns.iter().map(|(i, c)| (*i, c)).collect();
        let keys = key_range(load);
        // A row can only replace one with the same leading key, so none is replaced when the
        // table holds none of the page's.
        let appendable = !batch.history
            && keys.is_some()
            && tracked.first().is_some_and(|(column, ids)| {
                ids.as_ref().is_some_and(|ids| {
                    self.fresh
                        .none_hold(load.table, column, ids.iter().copied())
                })
            });
        self.fresh.wrote(load.table, &tracked);
        if appendable {
            return self.append(load, &columns);
        }
        // Values go in already typed: DuckDB takes the Arrow batch as is, with no text to parse
        // back per value.
        let record_batch = arrow_rows::to_record_batch(batch, &columns, load.synced_at_us)?;
        let mut definitions: Vec<String> = load
            .columns
            .iter()
            .map(|(_, c)| format!("{} {}", quote(&c.name), Self::sql_type(c.ty)))
            .collect();
        definitions.push(format!("{} TIMESTAMPTZ", quote(SYNCED_AT)));
        self.execute_now(
            "staging the page",
            &format!(
                "CREATE OR REPLACE TEMP TABLE _pds_batch ({})",
                definitions.join(", ")
            ),
        )?;
        {
            let mut appender = self
                .connection
                .appender("_pds_batch")
                .map_err(fail("appending"))?;
            appender
                .append_record_batch(record_batch)
                .map_err(fail("appending"))?;
            appender.flush().map_err(fail("appending"))?;
        }
        let target = load.name;
        let mut key_match: Vec<String> = load
            .keys()
            .map(|k| format!("t.{q} = b.{q}", q = quote(&k.name)))
            .collect();
        // Ids are mostly read in ascending runs, so bounding the delete by the page's id range
        // lets DuckDB skip every row group outside it instead of scanning the whole table.
        if let Some(keys) = &keys {
            key_match.push(format!(
                "t.{} BETWEEN {} AND {}",
                quote(&keys.column),
                keys.low,
                keys.high
            ));
        }
        self.execute_now(
            "merging rows",
            &format!(
                "DELETE FROM {target} AS t USING _pds_batch AS b WHERE {}",
                key_match.join(" AND ")
            ),
        )?;
        if batch.history {
            // Each key's current version ends where the batch's first one begins.
            let keys: Vec<String> = load
                .keys()
                .filter(|k| k.name != VALID_FROM)
                .map(|k| quote(&k.name))
                .collect();
            let joined: Vec<String> = keys.iter().map(|k| format!("t.{k} = f.{k}")).collect();
            self.execute_now(
                "closing current versions",
                &format!(
                    "UPDATE {target} AS t SET {to} = f.first_from, {current} = false \
                     FROM (SELECT {keys}, min({from}) AS first_from FROM _pds_batch GROUP BY ALL) AS f \
                     WHERE {joined} AND t.{current} AND t.{from} < f.first_from",
                    to = quote(VALID_TO),
                    current = quote(IS_CURRENT),
                    from = quote(VALID_FROM),
                    keys = keys.join(", "),
                    joined = joined.join(" AND "),
                ),
            )?;
        }
        let mut names: Vec<String> = load.columns.iter().map(|(_, c)| quote(&c.name)).collect();
        names.push(quote(SYNCED_AT));
        let names = names.join(", ");
        self.execute_now(
            "merging rows",
            &format!(
                "INSERT INTO {target} ({names}) SELECT {names} FROM _pds_batch; DROP TABLE _pds_batch"
            ),
        )
    }

    /// Appends the batch's rows straight into its table: one Arrow column per table column,
    /// in the table's order, null where the batch has no value.
    fn append(
        &mut self,
        load: &Load<'_>,
        loaded: &[(usize, &Column)],
    ) -> Result<(), DestinationError> {
        let slots: Vec<Slot<'_>> = load
            .table_columns
            .iter()
            .map(|column| {
                if column.name == SYNCED_AT {
                    return Slot::SyncedAt;
                }
                match loaded.iter().find(|(_, c)| c.name == column.name) {
                    Some((index, loaded)) => Slot::Row(*index, loaded),
                    None => Slot::Null(column),
                }
            })
            .collect();
        let record_batch = arrow_rows::record_batch_of(load.batch, &slots, load.synced_at_us)?;
        let mut appender = self
            .connection
            .appender_to_catalog_and_db(&load.table.name, &self.catalog, &load.table.schema)
            .map_err(fail("appending"))?;
        appender
            .append_record_batch(record_batch)
            .map_err(fail("appending"))?;
        appender.flush().map_err(fail("appending"))
    }
}
