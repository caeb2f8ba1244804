//! Files: Parquet or gzipped JSONL in a directory, one subdirectory per table.
//!
//! Layout: `DIR/{table}/{run_id}-{seq}.parquet` (or `.jsonl.gz`), and every stream's state in
//! `DIR/_pipedrive_sync_state.json`. Files only append: a row that changes in Pipedrive is
//! written again in a later file, so readers merge on the primary key and keep the row with
//! the latest `_synced_at` (ties: the later file; names sort in write order). Each write
//! makes its data files durable (temp name, fsync, rename, directory fsync) before the state
//! file moves the same way, so a crash leaves at most an orphan file that state does not
//! cover: its rows are read again and written again, which the merge absorbs.
//!
//! A row that leaves its table (a child its parent no longer has, a record the filter now
//! rejects) is written again as its key with `_removed = true`, and a row Pipedrive no longer
//! lists as its last version with `_deleted = true`: appending is the only way files change.
//! One run writes a directory at a time (`.pipedrive-sync.lock`).
//!
//! Column types are per file (a column may be BigInt in one file and Double in a later one):
//! read with union-by-name, e.g. DuckDB's `read_parquet('DIR/deals/*.parquet',
//! union_by_name = true)`. The table's schema part is not used: tables are directories.

pub mod config;
#[cfg(feature = "files")]
mod destination;
#[cfg(feature = "files")]
mod holdings;
#[cfg(feature = "files")]
mod read;

pub use self::config::Format;
#[cfg(feature = "files")]
use self::destination::*;
#[cfg(feature = "files")]
pub use self::destination::{Files, LOCK_FILE, REMOVED, RUNS_FILE, STATE_FILE};
#[cfg(feature = "files")]
pub use self::read::{read_file, read_table};
#[cfg(feature = "files")]
pub use crate::arrow_rows::parse_timestamp;
