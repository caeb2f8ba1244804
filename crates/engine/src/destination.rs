//! The one narrow trait every destination implements.

use std::collections::HashMap;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde_json::Value;

use crate::runs::RunRecord;
use crate::schema::Column;
use crate::state::{StreamState, SyncState};

/// `schema.table` in the destination.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TableRef {
    pub schema: String,
    pub name: String,
}

impl TableRef {
    /// The table a full refresh loads into before it replaces `self`.
    pub fn staging(&self) -> TableRef {
        TableRef {
            schema: self.schema.clone(),
            name: format!("_pds_staging_{}", self.name),
        }
    }
}

impl TableRef {
    /// The table holding every version of this one's rows (history mode).
    pub fn history(&self) -> TableRef {
        TableRef {
            schema: self.schema.clone(),
            name: format!("{}_history", self.name),
        }
    }
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// One page of rows for one table, with the stream state that becomes true once they land.
#[derive(Debug)]
pub struct Batch<'a> {
    pub stream: &'a str,
    pub table: &'a TableRef,
    /// Rows are merged on these columns: a row whose key exists replaces it.
    pub primary_key: &'a [&'a str],
    pub columns: &'a [Column],
    /// The rows, one array per column, aligned with `columns` (see [`crate::columnar`]).
    pub records: &'a RecordBatch,
    /// Fanned-out children: rows whose column `.0` holds one of the parent ids `.1` are
    /// deleted before `rows` are merged, so children removed in Pipedrive go here too.
    pub replace_parents: Option<(&'a str, &'a [Value])>,
    pub state: &'a StreamState,
    /// Stamped into every row's `_synced_at`, RFC 3339.
    pub synced_at: &'a str,
    /// The rows are versions for a history table: keyed by `primary_key` plus `_valid_from`,
    /// and each key's current row (`_is_current`) is closed at the batch's first version.
    pub history: bool,
}

impl Batch<'_> {
    /// How many rows the batch holds.
    pub fn len(&self) -> usize {
        self.records.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of column `column` in row `row`, as JSON (see [`crate::columnar::json_value`]).
    pub fn value(&self, row: usize, column: usize) -> Value {
        crate::columnar::json_value(
            self.columns[column].ty,
            self.records.column(column).as_ref(),
            row,
        )
    }

    /// Row `row` as JSON values, aligned with `columns`.
    pub fn row(&self, row: usize) -> Vec<Value> {
        (0..self.columns.len())
            .map(|column| self.value(row, column))
            .collect()
    }
}

/// Column names the engine gives meaning to.
pub mod columns {
    pub const DELETED: &str = "_deleted";
    pub const DELETED_AT: &str = "_deleted_at";
    pub const VALID_FROM: &str = "_valid_from";
    pub const VALID_TO: &str = "_valid_to";
    pub const IS_CURRENT: &str = "_is_current";

    use crate::schema::{Column, ColumnType};

    /// `_deleted` and `_deleted_at`, typed even when every value is null.
    pub fn delete_marks() -> [Column; 2] {
        [
            Column::new(DELETED, ColumnType::Boolean),
            Column::new(DELETED_AT, ColumnType::Timestamp),
        ]
    }
}

/// Rows of `table` that Pipedrive no longer lists: they are kept and marked deleted.
#[derive(Debug)]
pub struct Missing<'a> {
    pub stream: &'a str,
    pub table: &'a TableRef,
    /// The single-column primary key.
    pub key: &'a str,
    pub present: Present<'a>,
    /// `_deleted_at` of rows marked now (RFC 3339); rows marked before keep theirs.
    pub deleted_at: &'a str,
    pub state: &'a StreamState,
}

/// What Pipedrive still lists.
#[derive(Debug)]
pub enum Present<'a> {
    /// Every key of a listing: other rows of the table are marked deleted in place.
    Keys(&'a [Value]),
    /// The staging table of a full refresh: rows of the table missing from it are copied into
    /// it, marked deleted, so the swap that follows keeps them.
    Reloaded(&'a TableRef),
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DestinationError {
    pub message: String,
}

impl DestinationError {
    pub fn new(message: impl Into<String>) -> DestinationError {
        DestinationError {
            message: message.into(),
        }
    }
}

/// A place rows land. Every method that changes data also commits the given state, atomically.
#[async_trait]
pub trait Destination: Send {
    /// A short name for messages, e.g. `duckdb /path/file.duckdb`.
    fn describe(&self) -> String;

    /// Every stream's committed state.
    async fn read_state(&mut self) -> Result<SyncState, DestinationError>;

    /// For each batch, merges its rows into its table (creating it and adding or widening
    /// columns as needed) and stores its stream's state; all batches in one transaction. With
    /// no rows a batch still creates its table, so every synced stream has one.
    async fn write(&mut self, batches: &[Batch<'_>]) -> Result<(), DestinationError>;

    /// Replaces `target` with `staging` and stores `state`, in one transaction: readers see the
    /// old table or the complete new one, never a partial one.
    async fn replace(
        &mut self,
        stream: &str,
        staging: &TableRef,
        target: &TableRef,
        state: &StreamState,
    ) -> Result<(), DestinationError>;

    /// Drops a leftover staging table (a full refresh that must restart from scratch).
    async fn drop_table(&mut self, table: &TableRef) -> Result<(), DestinationError>;

    /// Whether `keep_deleted` is implemented; the runner skips reconciliation otherwise.
    fn keeps_deleted(&self) -> bool {
        false
    }

    /// Marks (or carries over) the rows Pipedrive no longer lists and stores the state, in one
    /// transaction. Returns how many rows were newly marked.
    async fn keep_deleted(&mut self, missing: &Missing<'_>) -> Result<u64, DestinationError> {
        Err(DestinationError::new(format!(
            "{}: cannot keep deleted rows of {}",
            self.describe(),
            missing.stream
        )))
    }

    /// Forgets a stream's state (`state reset`): its next sync starts from the beginning.
    async fn reset_state(&mut self, stream: &str) -> Result<(), DestinationError>;

    /// Keeps a finished run's record (`_sync_runs`). Destinations that write to stdout keep
    /// none.
    async fn record_run(&mut self, _run: &RunRecord) -> Result<(), DestinationError> {
        Ok(())
    }

    /// Another handle on the same destination, for a second writer where writes can run at
    /// once (another connection): the runner gives each stream to one writer,
    /// so two handles never write one table, only distinct rows of the state table. `None`
    /// (the default): one writer.
    async fn fork(&mut self) -> Result<Option<Box<dyn Destination>>, DestinationError> {
        Ok(None)
    }

    /// The stored `version` of each row of `table` whose `key` is one of `keys`, as
    /// milliseconds since the epoch, by the key as text (a string key as is, a number in
    /// decimal). Follow mode reads it so that an event older than the stored row (a late retry,
    /// a reordered delivery) never replaces it. A row with no version, or a table not there
    /// yet, is left out. The default, for destinations that cannot read rows back: none.
    async fn stored_versions(
        &mut self,
        _table: &TableRef,
        _key: &str,
        _version: &str,
        _keys: &[String],
    ) -> Result<HashMap<String, i64>, DestinationError> {
        Ok(HashMap::new())
    }

    /// The kept run records, oldest first.
    async fn read_runs(&mut self) -> Result<Vec<RunRecord>, DestinationError> {
        Err(DestinationError::new(format!(
            "{} keeps no run records; use a DuckDB, PostgreSQL, Parquet or JSONL target",
            self.describe()
        )))
    }
}
