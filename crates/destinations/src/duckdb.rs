//! DuckDB: the embedded default. Each page is appended (as a typed Arrow batch) into a temporary
//! table, then merged into the stream's table together with the state row, in one transaction.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use async_trait::async_trait;
use duckdb::Connection;
use pipedrive_engine::destination::columns::{
    DELETED, DELETED_AT, IS_CURRENT, VALID_FROM, VALID_TO, delete_marks,
};
use pipedrive_engine::schema::{Column, ColumnType, to_text};
use pipedrive_engine::{
    Batch, Destination, DestinationError, Missing, Present, RunRecord, StreamState, SyncState,
    TableRef,
};

use crate::arrow_rows::{self, SYNCED_AT, Slot};
use crate::fresh_tables::{FreshTables, bounds};
use crate::runs::{self, RUNS_TABLE};
use crate::sql::{column_list, quote};

/// The table holding every stream's state, in the state schema.
pub const STATE_TABLE: &str = "_pipedrive_sync_state";

pub struct DuckDb {
    path: PathBuf,
    connection: Connection,
    /// The database's catalog name (the file's stem). Every table name is qualified with it,
    /// because DuckDB refuses `x.t` when both a catalog and a schema are called `x`.
    catalog: String,
    state_schema: String,
    /// Columns of each table as the destination has them, read once and kept in step.
    tables: HashMap<TableRef, Vec<Column>>,
    /// Tables whose pages can be appended straight in, skipping the staging table, the
    /// delete and the copy.
    fresh: FreshTables<TableRef>,
    /// What every connection to this database shares.
    shared: Arc<Shared>,
}

/// The state of one open database that its connections share.
struct Shared {
    /// Columns of the widest table in the database (the memory cap it sets is the
    /// database's, not one connection's).
    widest_table: Mutex<usize>,
    /// The database's write-ahead log, whose size says when a checkpoint is due.
    wal: PathBuf,
    /// Held shared by every transaction and exclusively by a checkpoint, so a checkpoint's
    /// blocks are the only ones pinned while it runs (DuckDB would checkpoint beside another
    /// connection's append), and the cap can be raised for it alone
    /// ([`CHECKPOINT_HEADROOM_KB`]).
    checkpoint: RwLock<()>,
}

/// DuckDB's memory cap with no table wider than [`NARROW_TABLE_COLUMNS`]. Rows appended since
/// the last checkpoint stay in memory blocks, so the cap and the checkpoint threshold go
/// together: at `large`, back to back, 32 MB with checkpoints at 16 MB of WAL took 43 and
/// 50 s and 249 and 241 MB peak, against 67 and 65 s and 284 and 281 MB at 96 and 64 MB.
/// 16 MB fails: a checkpoint could not pin its blocks, which invalidates the database.
const BASE_MEMORY_LIMIT_KB: usize = 32 * 1024;
const CHECKPOINT_THRESHOLD_BYTES: u64 = 16 * 1024 * 1024;
/// Added to the cap while a checkpoint runs: a checkpoint pins blocks of its own on top of the
/// pool the appends filled. At 32 MB throughout, 2 of 14 `large` syncs failed "could not
/// allocate block" inside a checkpoint, a fatal error that invalidates the database. 48 MB
/// throughout peaked as high as this does (165–174 MB and 165–170; 147–160 at 32).
const CHECKPOINT_HEADROOM_KB: usize = 16 * 1024;
/// A checkpoint needs memory for each column it writes: at a 32 MB cap a 401-column table failed
/// to checkpoint and 301 columns did not (`tests/it/wide_tables.rs`), about 90 KB a column.
/// The cap grows by 128 KB per column beyond the first hundred, so a company with hundreds of
/// custom fields gets the memory its widest table needs.
const NARROW_TABLE_COLUMNS: usize = 100;
const MEMORY_PER_COLUMN_KB: usize = 128;

/// The memory cap for a database whose widest table has `columns` columns.
fn memory_limit_kb(columns: usize) -> usize {
    BASE_MEMORY_LIMIT_KB + columns.saturating_sub(NARROW_TABLE_COLUMNS) * MEMORY_PER_COLUMN_KB
}

fn sql_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::BigInt => "BIGINT",
        ColumnType::Double => "DOUBLE",
        ColumnType::Date => "DATE",
        ColumnType::Timestamp => "TIMESTAMPTZ",
        ColumnType::Json => "JSON",
        ColumnType::Null | ColumnType::Text => "VARCHAR",
    }
}

fn column_type(sql: &str) -> ColumnType {
    match sql {
        "BOOLEAN" => ColumnType::Boolean,
        "BIGINT" => ColumnType::BigInt,
        "DOUBLE" => ColumnType::Double,
        "DATE" => ColumnType::Date,
        "TIMESTAMP WITH TIME ZONE" | "TIMESTAMPTZ" => ColumnType::Timestamp,
        "JSON" => ColumnType::Json,
        _ => ColumnType::Text,
    }
}

fn set_memory_limit(connection: &Connection, widest_table: usize) -> Result<(), DestinationError> {
    set_memory_limit_kb(connection, memory_limit_kb(widest_table))
}

fn set_memory_limit_kb(connection: &Connection, kb: usize) -> Result<(), DestinationError> {
    connection
        .execute_batch(&format!("SET memory_limit = '{kb}KiB'"))
        .map_err(fail("setting the memory limit"))
}

fn fail(context: &str) -> impl Fn(duckdb::Error) -> DestinationError + '_ {
    move |error| DestinationError::new(format!("DuckDB: {context}: {error}"))
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
    pub fn open(path: &Path, state_schema: &str) -> Result<DuckDb, DestinationError> {
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
        DuckDb::on_connection(
            path,
            connection,
            state_schema,
            Arc::new(Shared {
                widest_table: Mutex::new(widest),
                wal: {
                    let mut wal = path.as_os_str().to_owned();
                    wal.push(".wal");
                    wal.into()
                },
                checkpoint: RwLock::default(),
            }),
        )
    }

    /// Another handle on this open database, for another company's schema: companies synced
    /// at once share the file, and one process must not open a DuckDB file twice.
    pub fn share(&self, state_schema: &str) -> Result<DuckDb, DestinationError> {
        let connection = self
            .connection
            .try_clone()
            .map_err(fail("opening another connection"))?;
        DuckDb::on_connection(
            &self.path,
            connection,
            state_schema,
            Arc::clone(&self.shared),
        )
    }

    fn on_connection(
        path: &Path,
        connection: Connection,
        state_schema: &str,
        shared: Arc<Shared>,
    ) -> Result<DuckDb, DestinationError> {
        // DuckDB keeps written pages cached up to 80% of RAM by default; a sync streams, so
        // a small cap keeps memory flat whatever the company's size (pages spill to the file);
        // it grows with the widest table (see `BASE_MEMORY_LIMIT_KB`).
        // One thread: a page's merge is too small to split, and idle workers spinning for
        // tasks took CPU from reading the next pages (bench medium: 44 → 32 CPU s).
        // No automatic checkpoints: they are run between transactions (see `Shared`).
        connection
            .execute_batch(
                "SET preserve_insertion_order = false; SET threads = 1; \
                 SET checkpoint_threshold = '1TB'",
            )
            .map_err(fail("configuring the connection"))?;
        let catalog: String = connection
            .query_row("SELECT current_database()", [], |row| row.get(0))
            .map_err(fail("reading the database name"))?;
        let mut destination = DuckDb {
            path: path.to_owned(),
            connection,
            catalog,
            state_schema: state_schema.to_owned(),
            tables: HashMap::new(),
            fresh: FreshTables::default(),
            shared,
        };
        destination.execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; CREATE TABLE IF NOT EXISTS {table} \
             (stream VARCHAR PRIMARY KEY, state JSON NOT NULL, updated_at TIMESTAMPTZ NOT NULL)",
            schema = destination.schema(state_schema),
            table = destination.table(state_schema, STATE_TABLE),
        ))?;
        Ok(destination)
    }

    /// `"catalog"."schema"`.
    fn schema(&self, schema: &str) -> String {
        format!("{}.{}", quote(&self.catalog), quote(schema))
    }

    /// `"catalog"."schema"."table"`.
    fn table(&self, schema: &str, table: &str) -> String {
        format!(
            "{}.{}.{}",
            quote(&self.catalog),
            quote(schema),
            quote(table)
        )
    }

    fn execute(&mut self, sql: &str) -> Result<(), DestinationError> {
        self.connection
            .execute_batch(sql)
            .map_err(fail("statement failed"))
    }

    fn columns_of(&mut self, table: &TableRef) -> Result<Option<Vec<Column>>, DestinationError> {
        if let Some(columns) = self.tables.get(table) {
            return Ok(Some(columns.clone()));
        }
        let mut statement = self
            .connection
            .prepare(
                "SELECT column_name, data_type FROM information_schema.columns \
                 WHERE table_catalog = ? AND table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            )
            .map_err(fail("reading columns"))?;
        let columns: Vec<Column> = statement
            .query_map([&self.catalog, &table.schema, &table.name], |row| {
                Ok(Column {
                    name: row.get(0)?,
                    ty: column_type(&row.get::<_, String>(1)?),
                })
            })
            .map_err(fail("reading columns"))?
            .collect::<Result<_, _>>()
            .map_err(fail("reading columns"))?;
        if columns.is_empty() {
            return Ok(None);
        }
        self.tables.insert(table.clone(), columns.clone());
        Ok(Some(columns))
    }

    /// Creates the table, adds new columns and widens changed ones, so that every batch
    /// column with a known type has a place. Returns the table's columns.
    fn evolve(
        &mut self,
        table: &TableRef,
        batch: &[Column],
    ) -> Result<Vec<Column>, DestinationError> {
        let name = self.table(&table.schema, &table.name);
        let Some(mut existing) = self.columns_of(table)? else {
            let mut columns: Vec<Column> = batch
                .iter()
                .filter(|c| c.ty != ColumnType::Null)
                .cloned()
                .collect();
            columns.push(Column {
                name: SYNCED_AT.to_owned(),
                ty: ColumnType::Timestamp,
            });
            let definitions: Vec<String> = columns
                .iter()
                .map(|c| format!("{} {}", quote(&c.name), sql_type(c.ty)))
                .collect();
            self.execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {}; CREATE TABLE {name} ({})",
                self.schema(&table.schema),
                definitions.join(", ")
            ))?;
            self.fit_memory_to(columns.len())?;
            self.tables.insert(table.clone(), columns.clone());
            self.fresh.created(table);
            return Ok(columns);
        };
        let width_before = existing.len();
        for column in batch.iter().filter(|c| c.ty != ColumnType::Null) {
            match existing.iter_mut().find(|e| e.name == column.name) {
                None => {
                    self.execute(&format!(
                        "ALTER TABLE {name} ADD COLUMN {} {}",
                        quote(&column.name),
                        sql_type(column.ty)
                    ))?;
                    existing.push(column.clone());
                }
                Some(current) => {
                    let widened = current.ty.widen(column.ty);
                    if sql_type(widened) != sql_type(current.ty) {
                        self.execute(&format!(
                            "ALTER TABLE {name} ALTER COLUMN {} SET DATA TYPE {}",
                            quote(&column.name),
                            sql_type(widened)
                        ))?;
                        current.ty = widened;
                    }
                }
            }
        }
        // Tables already in the file were measured at open; only a new column widens one.
        if existing.len() > width_before {
            self.fit_memory_to(existing.len())?;
        }
        self.tables.insert(table.clone(), existing.clone());
        Ok(existing)
    }

    /// Raises the database's memory cap when a table has become wider than any before.
    fn fit_memory_to(&self, columns: usize) -> Result<(), DestinationError> {
        // Held while setting, so two connections widening tables at once leave the wider cap.
        let mut widest = self
            .shared
            .widest_table
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if columns <= *widest {
            return Ok(());
        }
        set_memory_limit(&self.connection, columns)?;
        *widest = columns;
        Ok(())
    }

    fn save_state(&mut self, stream: &str, state: &StreamState) -> Result<(), DestinationError> {
        let json =
            serde_json::to_string(state).map_err(|e| DestinationError::new(e.to_string()))?;
        let table = self.table(&self.state_schema, STATE_TABLE);
        // Prepared once per connection, not parsed again for every page.
        self.connection
            .prepare_cached(&format!("DELETE FROM {table} WHERE stream = ?"))
            .and_then(|mut delete| delete.execute([stream]))
            .map_err(fail("saving state"))?;
        self.connection
            .prepare_cached(&format!("INSERT INTO {table} VALUES (?, ?, now())"))
            .and_then(|mut insert| insert.execute([stream, json.as_str()]))
            .map_err(fail("saving state"))?;
        Ok(())
    }

    /// Runs `body` inside one transaction, rolling back (and forgetting cached columns, which
    /// may describe rolled-back DDL) when it fails.
    fn in_transaction(
        &mut self,
        body: impl FnOnce(&mut DuckDb) -> Result<(), DestinationError>,
    ) -> Result<(), DestinationError> {
        let shared = Arc::clone(&self.shared);
        let writing = shared
            .checkpoint
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        self.execute("BEGIN TRANSACTION")?;
        match body(self).and_then(|()| self.execute("COMMIT")) {
            Ok(()) => {
                drop(writing);
                self.checkpoint_if_due()
            }
            Err(error) => {
                let _ = self.connection.execute_batch("ROLLBACK");
                self.tables.clear();
                self.fresh.forget_all();
                Err(error)
            }
        }
    }

    /// Checkpoints once the write-ahead log has grown past [`CHECKPOINT_THRESHOLD_BYTES`],
    /// while no connection to the database is inside a transaction.
    fn checkpoint_if_due(&mut self) -> Result<(), DestinationError> {
        let shared = Arc::clone(&self.shared);
        let due = || {
            std::fs::metadata(&shared.wal)
                .is_ok_and(|file| file.len() >= CHECKPOINT_THRESHOLD_BYTES)
        };
        if !due() {
            return Ok(());
        }
        let _alone = shared
            .checkpoint
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Another connection may have checkpointed while this one waited.
        if !due() {
            return Ok(());
        }
        let widest = *shared
            .widest_table
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        set_memory_limit_kb(
            &self.connection,
            memory_limit_kb(widest) + CHECKPOINT_HEADROOM_KB,
        )?;
        let checkpoint = self
            .connection
            .execute_batch("CHECKPOINT")
            .map_err(fail("checkpointing"));
        // Right after a checkpoint every block is on disk and can be evicted, so the lower cap
        // holds; if DuckDB cannot get under it yet, the next checkpoint tries again.
        if let Err(error) = set_memory_limit(&self.connection, widest) {
            tracing::debug!(%error, "the memory cap stays raised until the next checkpoint");
        }
        checkpoint
    }

    /// Deletes the rows of the given parents (their children are re-read as a whole).
    /// Integer ids compare as integers within the page's id range, so DuckDB skips the row
    /// groups outside it instead of casting every row of the table to text, which made
    /// loading children quadratic in their parents.
    fn delete_children(
        &mut self,
        table: &TableRef,
        column: &str,
        parents: &[serde_json::Value],
    ) -> Result<(), DestinationError> {
        let column_type = self
            .columns_of(table)?
            .and_then(|columns| columns.into_iter().find(|c| c.name == column))
            .map(|c| c.ty);
        let Some(column_type) = column_type.filter(|_| !parents.is_empty()) else {
            return Ok(());
        };
        let integers: Option<Vec<i64>> = parents.iter().map(serde_json::Value::as_i64).collect();
        if let (Some(ids), ColumnType::BigInt) = (integers, column_type)
            && let Some((low, high)) = bounds(ids.iter().copied())
        {
            // The ids go through the appender: a literal list costs more to parse than to
            // run.
            self.load_keys("_pds_parents", "BIGINT", ids)?;
            return self.execute(&format!(
                "DELETE FROM {} WHERE {column} BETWEEN {low} AND {high} \
                 AND {column} IN (SELECT v FROM _pds_parents); DROP TABLE _pds_parents",
                self.table(&table.schema, &table.name),
                column = quote(column),
            ));
        }
        self.load_keys("_pds_parents", "VARCHAR", parents.iter().map(to_text))?;
        self.execute(&format!(
            "DELETE FROM {} WHERE CAST({} AS VARCHAR) IN (SELECT v FROM _pds_parents); DROP TABLE _pds_parents",
            self.table(&table.schema, &table.name),
            quote(column)
        ))
    }

    /// Loads values into a one-column temporary table `v` of `sql_type`.
    fn load_keys<K: duckdb::ToSql>(
        &mut self,
        name: &str,
        sql_type: &str,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<(), DestinationError> {
        self.execute(&format!(
            "CREATE OR REPLACE TEMP TABLE {} (v {sql_type})",
            quote(name)
        ))?;
        let mut appender = self.connection.appender(name).map_err(fail("appending"))?;
        for key in keys {
            appender.append_row([key]).map_err(fail("appending"))?;
        }
        appender.flush().map_err(fail("appending"))
    }

    fn keep_missing(&mut self, missing: &Missing<'_>) -> Result<u64, DestinationError> {
        let target_columns = self
            .columns_of(missing.table)?
            .filter(|columns| columns.iter().any(|c| c.name == missing.key));
        let Some(target_columns) = target_columns else {
            // No table, or one that never had a row: nothing to keep.
            self.save_state(missing.stream, missing.state)?;
            return Ok(0);
        };
        let target = self.table(&missing.table.schema, &missing.table.name);
        let key = quote(missing.key);
        let marks = delete_marks();
        let marked = match missing.present {
            Present::Keys(keys) => {
                self.evolve(missing.table, &marks)?;
                self.load_keys("_pds_present", "VARCHAR", keys.iter().map(to_text))?;
                let marked = self
                    .connection
                    .execute(
                        &format!(
                            "UPDATE {target} SET {deleted} = true, {deleted_at} = CAST(? AS TIMESTAMPTZ) \
                             WHERE coalesce({deleted}, false) = false \
                             AND CAST({key} AS VARCHAR) NOT IN (SELECT v FROM _pds_present)",
                            deleted = quote(DELETED),
                            deleted_at = quote(DELETED_AT),
                        ),
                        [missing.deleted_at],
                    )
                    .map_err(fail("marking deleted rows"))?;
                self.execute("DROP TABLE _pds_present")?;
                marked
            }
            Present::Reloaded(staging) => {
                // The reload gets every column the old rows have, widened where they differ.
                let mut wanted = target_columns.clone();
                wanted.extend(marks);
                let staging_columns = self.evolve(staging, &wanted)?;
                let type_of = |name: &str| {
                    staging_columns
                        .iter()
                        .find(|c| c.name == name)
                        .map_or("VARCHAR", |c| sql_type(c.ty))
                };
                let has = |name: &str| target_columns.iter().any(|c| c.name == name);
                let mut names = Vec::new();
                let mut values = Vec::new();
                for column in &target_columns {
                    if column.name == DELETED || column.name == DELETED_AT {
                        continue;
                    }
                    names.push(quote(&column.name));
                    values.push(format!(
                        "CAST(t.{} AS {})",
                        quote(&column.name),
                        type_of(&column.name)
                    ));
                }
                names.push(quote(DELETED));
                values.push("true".to_owned());
                names.push(quote(DELETED_AT));
                values.push(if has(DELETED_AT) {
                    format!("coalesce(t.{}, CAST(? AS TIMESTAMPTZ))", quote(DELETED_AT))
                } else {
                    "CAST(? AS TIMESTAMPTZ)".to_owned()
                });
                let copied = self
                    .connection
                    .execute(
                        &format!(
                            "INSERT INTO {staging} ({}) SELECT {} FROM {target} AS t \
                             WHERE NOT EXISTS (SELECT 1 FROM {staging} AS s \
                             WHERE CAST(s.{key} AS VARCHAR) = CAST(t.{key} AS VARCHAR))",
                            names.join(", "),
                            values.join(", "),
                            staging = self.table(&staging.schema, &staging.name),
                        ),
                        [missing.deleted_at],
                    )
                    .map_err(fail("keeping deleted rows"))?;
                // Its keys are no longer known to this connection.
                self.fresh.forget(staging);
                copied
            }
        };
        self.save_state(missing.stream, missing.state)?;
        Ok(marked as u64)
    }

    /// Appends the batch's rows straight into its table: one Arrow column per table column,
    /// in the table's order, null where the batch has no value.
    fn append(
        &mut self,
        batch: &Batch<'_>,
        table_columns: &[Column],
        loaded: &[(usize, &Column)],
    ) -> Result<(), DestinationError> {
        let slots: Vec<Slot<'_>> = table_columns
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
        let record_batch =
            arrow_rows::record_batch_of(batch, &slots, arrow_rows::synced_at(batch)?)?;
        let mut appender = self
            .connection
            .appender_to_catalog_and_db(&batch.table.name, &self.catalog, &batch.table.schema)
            .map_err(fail("appending"))?;
        appender
            .append_record_batch(record_batch)
            .map_err(fail("appending"))?;
        appender.flush().map_err(fail("appending"))
    }

    fn write_batch(&mut self, batch: &Batch<'_>) -> Result<(), DestinationError> {
        let table_columns = self.evolve(batch.table, batch.columns)?;
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
        if let Some((column, parents)) = batch.replace_parents {
            let no_children_yet = parents
                .iter()
                .map(serde_json::Value::as_i64)
                .collect::<Option<Vec<i64>>>()
                .is_some_and(|ids| self.fresh.none_hold(batch.table, column, ids.into_iter()));
            if !no_children_yet {
                self.delete_children(batch.table, column, parents)?;
            }
        }
        // Values go in as the table's (possibly wider) column types, already typed: DuckDB
        // takes the Arrow batch as is, with no text to parse back per value.
        let loaded: Vec<(usize, Column)> = batch
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.ty != ColumnType::Null && c.name != SYNCED_AT)
            .map(|(i, c)| {
                let ty = table_columns
                    .iter()
                    .find(|t| t.name == c.name)
                    .map_or(c.ty, |t| t.ty);
                (i, Column::new(&c.name, ty))
            })
            .collect();
        if batch.rows.is_empty() || loaded.is_empty() {
            return self.save_state(batch.stream, batch.state);
        }
        let columns: Vec<(usize, &Column)> = loaded.iter().map(|(i, c)| (*i, c)).collect();
        arrow_rows::require_primary_key(batch, &columns)?;
        let keys = key_range(batch, &loaded);
        // A row can only replace one with the same leading key, so none is replaced when the
        // table holds none of the page's.
        let appendable = !batch.history
            && keys.is_some()
            && tracked.first().is_some_and(|(column, ids)| {
                ids.as_ref().is_some_and(|ids| {
                    self.fresh
                        .none_hold(batch.table, column, ids.iter().copied())
                })
            });
        self.fresh.wrote(batch.table, &tracked);
        if appendable {
            self.append(batch, &table_columns, &columns)?;
            return self.save_state(batch.stream, batch.state);
        }
        let record_batch =
            arrow_rows::to_record_batch(batch, &columns, arrow_rows::synced_at(batch)?)?;

        let mut definitions: Vec<String> = loaded
            .iter()
            .map(|(_, c)| format!("{} {}", quote(&c.name), sql_type(c.ty)))
            .collect();
        definitions.push(format!("{} TIMESTAMPTZ", quote(SYNCED_AT)));
        self.execute(&format!(
            "CREATE OR REPLACE TEMP TABLE _pds_batch ({})",
            definitions.join(", ")
        ))?;
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
        let target = self.table(&batch.table.schema, &batch.table.name);
        // History rows are versions: one per key and `_valid_from`.
        let version_key = batch.history.then_some(VALID_FROM);
        let mut key_match: Vec<String> = batch
            .primary_key
            .iter()
            .chain(&version_key)
            .map(|k| format!("t.{q} = b.{q}", q = quote(k)))
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
        self.execute(&format!(
            "DELETE FROM {target} AS t USING _pds_batch AS b WHERE {}",
            key_match.join(" AND ")
        ))?;
        if batch.history {
            // Each key's current version ends where the batch's first one begins.
            let keys: Vec<String> = batch.primary_key.iter().map(|k| quote(k)).collect();
            let joined: Vec<String> = keys.iter().map(|k| format!("t.{k} = f.{k}")).collect();
            self.execute(&format!(
                "UPDATE {target} AS t SET {to} = f.first_from, {current} = false \
                 FROM (SELECT {keys}, min({from}) AS first_from FROM _pds_batch GROUP BY ALL) AS f \
                 WHERE {joined} AND t.{current} AND t.{from} < f.first_from",
                to = quote(VALID_TO),
                current = quote(IS_CURRENT),
                from = quote(VALID_FROM),
                keys = keys.join(", "),
                joined = joined.join(" AND "),
            ))?;
        }
        let mut names: Vec<String> = loaded.iter().map(|(_, c)| quote(&c.name)).collect();
        names.push(quote(SYNCED_AT));
        let names = names.join(", ");
        self.execute(&format!(
            "INSERT INTO {target} ({names}) SELECT {names} FROM _pds_batch; DROP TABLE _pds_batch"
        ))?;
        self.save_state(batch.stream, batch.state)
    }
}

/// The batch's non-null values of `column`; `None` when one is not an integer.
fn integer_values(batch: &Batch<'_>, column: &str) -> Option<Vec<i64>> {
    let Some(index) = batch.columns.iter().position(|c| c.name == column) else {
        return Some(Vec::new());
    };
    batch
        .rows
        .iter()
        .map(|row| &row[index])
        .filter(|value| !value.is_null())
        .map(serde_json::Value::as_i64)
        .collect()
}

/// The smallest and largest leading key of a batch whose leading key column is an integer.
struct KeyRange {
    column: String,
    low: i64,
    high: i64,
}

fn key_range(batch: &Batch<'_>, loaded: &[(usize, Column)]) -> Option<KeyRange> {
    let key = batch.primary_key.first()?;
    let (index, column) = loaded.iter().find(|(_, c)| c.name == *key)?;
    if column.ty != ColumnType::BigInt {
        return None;
    }
    let (low, high) = bounds(batch.rows.iter().filter_map(|row| row[*index].as_i64()))?;
    Some(KeyRange {
        column: column.name.clone(),
        low,
        high,
    })
}

#[async_trait]
impl Destination for DuckDb {
    fn describe(&self) -> String {
        format!("duckdb {}", self.path.display())
    }

    /// A second connection to the same database: the writers' merges and DuckDB's work on
    /// them run on both cores while the reader waits on the network.
    async fn fork(&mut self) -> Result<Option<Box<dyn Destination>>, DestinationError> {
        Ok(Some(Box::new(self.share(&self.state_schema)?)))
    }

    async fn read_state(&mut self) -> Result<SyncState, DestinationError> {
        let table = self.table(&self.state_schema, STATE_TABLE);
        let mut statement = self
            .connection
            .prepare(&format!(
                "SELECT stream, CAST(state AS VARCHAR) FROM {table}"
            ))
            .map_err(fail("reading state"))?;
        let rows: Vec<(String, String)> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(fail("reading state"))?
            .collect::<Result<_, _>>()
            .map_err(fail("reading state"))?;
        rows.into_iter()
            .map(|(stream, json)| {
                serde_json::from_str(&json)
                    .map(|state| (stream.clone(), state))
                    .map_err(|e| {
                        DestinationError::new(format!("state of {stream} is unreadable: {e}"))
                    })
            })
            .collect()
    }

    async fn stored_versions(
        &mut self,
        table: &TableRef,
        key: &str,
        version: &str,
        keys: &[String],
    ) -> Result<HashMap<String, i64>, DestinationError> {
        tokio::task::block_in_place(|| {
            let columns = self.columns_of(table)?.unwrap_or_default();
            if ![key, version]
                .iter()
                .all(|name| columns.iter().any(|c| c.name == *name))
            {
                return Ok(HashMap::new());
            }
            self.load_keys("_pds_version_keys", "VARCHAR", keys)?;
            let sql = format!(
                "SELECT CAST(t.{key} AS VARCHAR), epoch_ms(t.{version}) FROM {target} AS t \
                 JOIN _pds_version_keys AS k ON CAST(t.{key} AS VARCHAR) = k.v \
                 WHERE t.{version} IS NOT NULL",
                key = quote(key),
                version = quote(version),
                target = self.table(&table.schema, &table.name),
            );
            let mut statement = self
                .connection
                .prepare(&sql)
                .map_err(fail("reading stored versions"))?;
            let versions = statement
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })
                .map_err(fail("reading stored versions"))?
                .collect::<Result<HashMap<_, _>, _>>()
                .map_err(fail("reading stored versions"))?;
            drop(statement);
            self.execute("DROP TABLE _pds_version_keys")?;
            Ok(versions)
        })
    }

    async fn write(&mut self, batches: &[Batch<'_>]) -> Result<(), DestinationError> {
        tokio::task::block_in_place(|| {
            self.in_transaction(|db| batches.iter().try_for_each(|batch| db.write_batch(batch)))
        })
    }

    async fn replace(
        &mut self,
        stream: &str,
        staging: &TableRef,
        target: &TableRef,
        state: &StreamState,
    ) -> Result<(), DestinationError> {
        tokio::task::block_in_place(|| {
            self.in_transaction(|db| {
                let (staged, replaced) = (
                    db.table(&staging.schema, &staging.name),
                    db.table(&target.schema, &target.name),
                );
                if db.columns_of(target)?.is_none() {
                    db.execute(&format!(
                        "ALTER TABLE {staged} RENAME TO {}",
                        quote(&target.name)
                    ))?;
                } else {
                    // The table stays, so views, indexes and grants on it do too: its rows are
                    // swapped, and the columns the new rows bring are added first.
                    let columns = db.columns_of(staging)?.unwrap_or_default();
                    db.evolve(target, &columns)?;
                    let names = column_list(&columns);
                    db.execute(&format!(
                        "DELETE FROM {replaced}; INSERT INTO {replaced} ({names}) SELECT {names} FROM {staged}; DROP TABLE {staged}"
                    ))?;
                }
                db.tables.remove(staging);
                db.tables.remove(target);
                db.fresh.forget(staging);
                db.fresh.forget(target);
                db.save_state(stream, state)
            })
        })
    }

    fn keeps_deleted(&self) -> bool {
        true
    }

    async fn keep_deleted(&mut self, missing: &Missing<'_>) -> Result<u64, DestinationError> {
        tokio::task::block_in_place(|| {
            let mut marked = 0;
            self.in_transaction(|db| {
                marked = db.keep_missing(missing)?;
                Ok(())
            })?;
            Ok(marked)
        })
    }

    async fn drop_table(&mut self, table: &TableRef) -> Result<(), DestinationError> {
        self.tables.remove(table);
        self.fresh.forget(table);
        tokio::task::block_in_place(|| {
            self.execute(&format!(
                "DROP TABLE IF EXISTS {}",
                self.table(&table.schema, &table.name)
            ))
        })
    }

    async fn record_run(&mut self, run: &RunRecord) -> Result<(), DestinationError> {
        let row = runs::Row::of(run)?;
        let table = self.table(&self.state_schema, RUNS_TABLE);
        let (started_at, finished_at) = (run.started_at.to_rfc3339(), run.finished_at.to_rfc3339());
        tokio::task::block_in_place(|| {
            self.execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {}; CREATE TABLE IF NOT EXISTS {table} ({})",
                self.schema(&self.state_schema),
                runs::definitions("VARCHAR", "JSON"),
            ))?;
            self.connection
                .execute(
                    &format!(
                        "INSERT INTO {table} ({}) VALUES (?, ?, CAST(? AS TIMESTAMPTZ), \
                         CAST(? AS TIMESTAMPTZ), ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        runs::names()
                    ),
                    duckdb::params![
                        row.run_id,
                        row.company,
                        started_at,
                        finished_at,
                        row.status,
                        row.error,
                        row.records,
                        row.requests,
                        row.tokens,
                        row.responses_429,
                        row.burst_limit,
                        row.streams,
                        row.timeline,
                    ],
                )
                .map_err(fail("recording the run"))?;
            Ok(())
        })
    }

    async fn read_runs(&mut self) -> Result<Vec<RunRecord>, DestinationError> {
        let runs = TableRef {
            schema: self.state_schema.clone(),
            name: RUNS_TABLE.to_owned(),
        };
        tokio::task::block_in_place(|| {
            if self.columns_of(&runs)?.is_none() {
                return Ok(Vec::new());
            }
            let table = self.table(&self.state_schema, RUNS_TABLE);
            let columns = runs::select_list(|column, ty| {
                if ty.starts_with("TIMESTAMPTZ") {
                    format!("epoch_us({})", quote(column))
                } else if ty.starts_with("JSON") {
                    format!("CAST({} AS VARCHAR)", quote(column))
                } else {
                    quote(column)
                }
            });
            let mut statement = self
                .connection
                .prepare(&format!(
                    "SELECT {columns} FROM {table} ORDER BY {}, {}",
                    quote("started_at"),
                    quote("run_id"),
                ))
                .map_err(fail("reading the runs"))?;
            let rows: Vec<(runs::Row, i64, i64)> = statement
                .query_map([], |r| {
                    let row = runs::Row {
                        run_id: r.get(0)?,
                        company: r.get(1)?,
                        status: r.get(4)?,
                        error: r.get(5)?,
                        records: r.get(6)?,
                        requests: r.get(7)?,
                        tokens: r.get(8)?,
                        responses_429: r.get(9)?,
                        burst_limit: r.get(10)?,
                        streams: r.get(11)?,
                        timeline: r.get(12)?,
                    };
                    Ok((row, r.get(2)?, r.get(3)?))
                })
                .map_err(fail("reading the runs"))?
                .collect::<Result<_, _>>()
                .map_err(fail("reading the runs"))?;
            rows.into_iter()
                .map(|(row, started, finished)| row.into_record(started, finished))
                .collect()
        })
    }

    async fn reset_state(&mut self, stream: &str) -> Result<(), DestinationError> {
        let table = self.table(&self.state_schema, STATE_TABLE);
        self.connection
            .execute(&format!("DELETE FROM {table} WHERE stream = ?"), [stream])
            .map_err(fail("resetting state"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory_limit(db: &DuckDb) -> String {
        db.connection
            .query_row("SELECT current_setting('memory_limit')", [], |row| {
                row.get(0)
            })
            .unwrap()
    }

    /// The cap raised for a checkpoint comes back down after it.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_checkpoint_leaves_the_memory_cap_where_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = DuckDb::open(&dir.path().join("cap.duckdb"), "main").unwrap();
        let before = memory_limit(&db);
        let table = TableRef {
            schema: "main".to_owned(),
            name: "t".to_owned(),
        };
        let columns = [
            Column {
                name: "id".to_owned(),
                ty: ColumnType::BigInt,
            },
            Column {
                name: "text".to_owned(),
                ty: ColumnType::Text,
            },
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
            let batch = Batch {
                stream: "t",
                table: &table,
                primary_key: &["id"],
                columns: &columns,
                rows: &rows,
                replace_parents: None,
                state: &StreamState::default(),
                synced_at: "2026-01-02T03:04:05Z",
                history: false,
            };
            db.write(&[batch]).await.unwrap();
            let log = std::fs::metadata(&db.shared.wal).map_or(0, |m| m.len());
            checkpointed |= log < logged;
            logged = log;
        }
        assert!(checkpointed, "the log never shrank: no checkpoint ran");
        assert_eq!(memory_limit(&db), before);
    }
}
