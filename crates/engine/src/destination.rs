//! The one narrow trait every destination implements.

use async_trait::async_trait;
use serde_json::Value;

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
    /// One value per column, aligned with `columns`.
    pub rows: &'a [Vec<Value>],
    /// Fanned-out children: rows whose column `.0` holds one of the parent ids `.1` are
    /// deleted before `rows` are merged, so children removed in Pipedrive go here too.
    pub replace_parents: Option<(&'a str, &'a [Value])>,
    pub state: &'a StreamState,
    /// Stamped into every row's `_synced_at`, RFC 3339.
    pub synced_at: &'a str,
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

    /// Forgets a stream's state (`state reset`): its next sync starts from the beginning.
    async fn reset_state(&mut self, stream: &str) -> Result<(), DestinationError>;
}
