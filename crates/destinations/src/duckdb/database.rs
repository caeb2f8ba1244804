//! Opening a DuckDB file: its memory cap, its checkpoints, and the views installed in it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use duckdb::Connection;
use pipedrive_engine::DestinationError;

use super::session::DuckDbSession;
use crate::sql::{SqlDestination, models};

/// A DuckDB database as a destination.
pub type DuckDb = SqlDestination<DuckDbSession>;

/// The state of one open database that its connections share.
pub(super) struct Shared {
    /// Columns of the widest table in the database (the memory cap it sets is the
    /// database's, not one connection's).
    pub(super) widest_table: Mutex<usize>,
    /// The database's write-ahead log, whose size says when a checkpoint is due.
    pub(super) wal: PathBuf,
    /// Held shared by every transaction and exclusively by a checkpoint, so a checkpoint's
    /// blocks are the only ones pinned while it runs (DuckDB would checkpoint beside another
    /// connection's append), and the cap can be raised for it alone
    /// ([`CHECKPOINT_HEADROOM_KB`]).
    pub(super) checkpoint: Arc<tokio::sync::RwLock<()>>,
}

/// DuckDB's memory cap with no table wider than [`NARROW_TABLE_COLUMNS`]. Rows appended since
/// the last checkpoint stay in memory blocks, so the cap and the checkpoint threshold go
/// together (docs/performance.md has the measurements). Below 32 MB a checkpoint could not pin
/// its blocks, which invalidates the database.
const BASE_MEMORY_LIMIT_KB: usize = 32 * 1024;
pub(super) const CHECKPOINT_THRESHOLD_BYTES: u64 = 16 * 1024 * 1024;
/// Added to the cap while a checkpoint runs: a checkpoint pins blocks of its own on top of the
/// pool the appends filled, and failing to allocate one inside a checkpoint is a fatal error
/// that invalidates the database.
pub(super) const CHECKPOINT_HEADROOM_KB: usize = 16 * 1024;
/// A checkpoint needs memory for each column it writes: at a 32 MB cap a 401-column table failed
/// to checkpoint and 301 columns did not (`tests/it/wide_tables.rs`), about 90 KB a column.
/// The cap grows by 128 KB per column beyond the first hundred, so a company with hundreds of
/// custom fields gets the memory its widest table needs.
const NARROW_TABLE_COLUMNS: usize = 100;
const MEMORY_PER_COLUMN_KB: usize = 128;

/// The memory cap for a database whose widest table has `columns` columns.
pub(super) fn memory_limit_kb(columns: usize) -> usize {
    BASE_MEMORY_LIMIT_KB + columns.saturating_sub(NARROW_TABLE_COLUMNS) * MEMORY_PER_COLUMN_KB
}

pub(super) fn set_memory_limit(
    connection: &Connection,
    widest_table: usize,
) -> Result<(), DestinationError> {
    set_memory_limit_kb(connection, memory_limit_kb(widest_table))
}

pub(super) fn set_memory_limit_kb(
    connection: &Connection,
    kb: usize,
) -> Result<(), DestinationError> {
    connection
        .execute_batch(&format!("SET memory_limit = '{kb}KiB'"))
        .map_err(fail("setting the memory limit"))
}

pub(super) fn fail(context: &str) -> impl Fn(duckdb::Error) -> DestinationError + '_ {
    move |error| DestinationError::new(format!("DuckDB: {context}: {error}"))
}

/// Runs blocking DuckDB work without stalling the other tasks of a multi-threaded runtime.
pub(super) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    let multi_threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_threaded {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// Opens a DuckDB file with extensions neither downloaded nor loaded on demand: a sync never
/// fetches code at run time (a SQLite file named as the target would otherwise make DuckDB
/// download its `sqlite_scanner` extension).
pub fn open_offline(path: &Path) -> duckdb::Result<Connection> {
    let config = duckdb::Config::default()
        .enable_autoload_extension(false)?
        .with("autoinstall_known_extensions", "false")?;
    Connection::open_with_flags(path, config)
}

impl DuckDb {
    /// Opens (or creates) the database file. A file another process holds open, or a directory
    /// that cannot be written, fails here with a message naming the cause.
    pub async fn open(path: &Path, state_schema: &str) -> Result<DuckDb, DestinationError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(DestinationError::new(format!(
                "DuckDB: the directory {} does not exist; create it or change target.path",
                parent.display()
            )));
        }
        let connection = open_offline(path).map_err(|error| {
            let text = error.to_string();
            let hint = if text.contains("Could not set lock") || text.contains("Conflicting lock") {
                "another process (a running sync, or a DuckDB shell) has the file open; close it and retry"
            } else if text.contains("ermission") || text.contains("read-only") {
                "the file or its directory is not writable; fix its permissions or change target.path"
            } else {
                "check target.path"
            };
            DestinationError::new(format!("DuckDB: cannot open {}: {text} ({hint})", path.display()))
        })?;
        let widest: i64 = connection
            .query_row(
                "SELECT coalesce(max(column_count), 0) FROM duckdb_tables()",
                [],
                |row| row.get(0),
            )
            .map_err(fail("reading the tables' widths"))?;
        let widest = usize::try_from(widest).unwrap_or(0);
        set_memory_limit(&connection, widest)?;
        let shared = Arc::new(Shared {
            widest_table: Mutex::new(widest),
            wal: {
                let mut wal = path.as_os_str().to_owned();
                wal.push(".wal");
                wal.into()
            },
            checkpoint: Arc::default(),
        });
        let session = DuckDbSession::on_connection(path, connection, shared)?;
        SqlDestination::new(session, state_schema).await
    }
}

/// Installs the analytics views in the DuckDB file at `path`, which a sync has made.
pub async fn install_models(
    path: &Path,
    state_schema: &str,
    inputs: &models::Inputs,
) -> Result<Vec<models::Outcome>, DestinationError> {
    if !path.is_file() {
        return Err(DestinationError::new(format!(
            "DuckDB: {} does not exist: run `pipedrive-sync sync` first, then install the models",
            path.display()
        )));
    }
    let mut db = DuckDb::open(path, state_schema).await?;
    models::install(&mut db, inputs).await
}

#[cfg(test)]
mod tests {
    use pipedrive_engine::schema::{Column, ColumnType};
    use pipedrive_engine::{Batch, Destination, StreamState, TableRef};

    use super::*;

    fn memory_limit(db: &DuckDb) -> String {
        db.session
            .connection
            .query_row("SELECT current_setting('memory_limit')", [], |row| {
                row.get(0)
            })
            .unwrap()
    }

    /// The cap raised for a checkpoint comes back down after it.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_checkpoint_leaves_the_memory_cap_where_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = DuckDb::open(&dir.path().join("cap.duckdb"), "main")
            .await
            .unwrap();
        let before = memory_limit(&db);
        let table = TableRef {
            schema: "main".to_owned(),
            name: "t".to_owned(),
        };
        let columns = [
            Column::new("id", ColumnType::BigInt),
            Column::new("text", ColumnType::Text),
        ];
        let mut logged = 0;
        let mut checkpointed = false;
        for page in 0..60_i64 {
            let rows: Vec<Vec<serde_json::Value>> = (0..1_000)
                .map(|row| {
                    let id = page * 1_000 + row;
                    vec![id.into(), format!("{id:>400}").into()]
                })
                .collect();
            let records = pipedrive_engine::columnar::record_batch(&columns, &rows).unwrap();
            let batch = Batch {
                stream: "t",
                table: &table,
                primary_key: &["id"],
                columns: &columns,
                records: &records,
                replace_parents: None,
                state: &StreamState::default(),
                synced_at: "2026-01-02T03:04:05Z",
                history: false,
            };
            db.write(&[batch]).await.unwrap();
            let log = std::fs::metadata(&db.session.shared.wal).map_or(0, |m| m.len());
            checkpointed |= log < logged;
            logged = log;
        }
        assert!(checkpointed, "the log never shrank: no checkpoint ran");
        assert_eq!(memory_limit(&db), before);
    }
}
