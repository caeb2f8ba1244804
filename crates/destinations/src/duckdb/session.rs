//! DuckDB's dialect and session for the SQL core: statements on one connection, key lists
//! loaded into temporary tables through the appender (a literal list costs more to parse than
//! to run), and a checkpoint between transactions once the write-ahead log has grown.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};

use async_trait::async_trait;
use duckdb::Connection;
use duckdb::types::Value as DuckValue;
use pipedrive_engine::schema::ColumnType;
use pipedrive_engine::{DestinationError, TableRef};
use tokio::sync::OwnedRwLockReadGuard;

use super::{
    CHECKPOINT_HEADROOM_KB, CHECKPOINT_THRESHOLD_BYTES, FreshTables, Shared, blocking, fail,
    memory_limit_kb, set_memory_limit, set_memory_limit_kb,
};
use crate::sql::session::{Bound, Keys, Load, Param, Session, SqlValue, Statement};
use crate::sql::{literal, quote};

/// One connection to an open DuckDB database.
pub struct DuckDbSession {
    path: PathBuf,
    pub(super) connection: Connection,
    /// The database's catalog name (the file's stem). Every table name is qualified with it,
    /// because DuckDB refuses `x.t` when both a catalog and a schema are called `x`.
    pub(super) catalog: String,
    /// Tables whose pages can be appended straight in, skipping the staging table, the
    /// delete and the copy.
    pub(super) fresh: FreshTables<TableRef>,
    /// What every connection to this database shares.
    pub(super) shared: Arc<Shared>,
    /// Held from `BEGIN` to the end of the transaction (see [`Shared::checkpoint`]).
    writing: Option<OwnedRwLockReadGuard<()>>,
}

impl DuckDbSession {
    pub(super) fn on_connection(
        path: &Path,
        connection: Connection,
        shared: Arc<Shared>,
    ) -> Result<DuckDbSession, DestinationError> {
        // DuckDB keeps written pages cached up to 80% of RAM by default; a sync streams, so
        // a small cap keeps memory flat whatever the company's size (pages spill to the file);
        // it grows with the widest table (see `BASE_MEMORY_LIMIT_KB`).
        // One thread: a page's merge is too small to split, and idle workers spinning for
        // tasks took CPU from reading the next pages.
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
        Ok(DuckDbSession {
            path: path.to_owned(),
            connection,
            catalog,
            fresh: FreshTables::default(),
            shared,
            writing: None,
        })
    }

    /// Another connection to the same database.
    pub(super) fn share(&self) -> Result<DuckDbSession, DestinationError> {
        let connection = self
            .connection
            .try_clone()
            .map_err(fail("opening another connection"))?;
        DuckDbSession::on_connection(&self.path, connection, Arc::clone(&self.shared))
    }

    pub(super) fn execute_now(&self, context: &str, sql: &str) -> Result<(), DestinationError> {
        self.connection.execute_batch(sql).map_err(fail(context))
    }

    /// Loads values into a one-column temporary table `v`.
    fn load_keys<K: duckdb::ToSql>(
        &self,
        name: &str,
        sql_type: &str,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<(), DestinationError> {
        self.execute_now(
            "loading keys",
            &format!(
                "CREATE OR REPLACE TEMP TABLE {} (v {sql_type})",
                quote(name)
            ),
        )?;
        let mut appender = self
            .connection
            .appender(name)
            .map_err(fail("loading keys"))?;
        for key in keys {
            appender.append_row([key]).map_err(fail("loading keys"))?;
        }
        appender.flush().map_err(fail("loading keys"))
    }

    /// Loads the statement's key lists, runs `body` with its scalar parameters, and drops the
    /// lists again.
    fn with_keys<T>(
        &self,
        context: &str,
        statement: &Statement<'_>,
        body: impl FnOnce(&mut duckdb::Statement<'_>, Vec<DuckValue>) -> duckdb::Result<T>,
    ) -> Result<T, DestinationError> {
        let mut lists = Vec::new();
        for bound in &statement.bound {
            if let Bound::Keys(keys) = bound {
                let name = format!("_pds_keys_{}", lists.len());
                match keys {
                    Keys::Int(ids) => self.load_keys(&name, "BIGINT", ids)?,
                    Keys::Text(texts) => self.load_keys(&name, "VARCHAR", texts)?,
                }
                lists.push(name);
            }
        }
        let params: Vec<DuckValue> = statement
            .params()
            .map(|param| match param {
                Param::Text(Some(text)) => DuckValue::Text(text.to_owned()),
                Param::Int(Some(n)) => DuckValue::BigInt(n),
                Param::Text(None) | Param::Int(None) => DuckValue::Null,
            })
            .collect();
        // Prepared once per connection, not parsed again for every page; a statement on key
        // lists is not kept, since its lists' tables go away after it.
        let result = if lists.is_empty() {
            self.connection
                .prepare_cached(&statement.sql)
                .and_then(|mut prepared| body(&mut prepared, params))
        } else {
            self.connection
                .prepare(&statement.sql)
                .and_then(|mut prepared| body(&mut prepared, params))
        }
        .map_err(fail(context));
        if !lists.is_empty() {
            let drops: Vec<String> = lists
                .iter()
                .map(|name| format!("DROP TABLE {};", quote(name)))
                .collect();
            self.execute_now(context, &drops.concat())?;
        }
        result
    }

    /// Checkpoints once the write-ahead log has grown past [`CHECKPOINT_THRESHOLD_BYTES`],
    /// while no connection to the database is inside a transaction.
    async fn checkpoint_if_due(&mut self) -> Result<(), DestinationError> {
        let shared = Arc::clone(&self.shared);
        let due = || {
            std::fs::metadata(&shared.wal)
                .is_ok_and(|file| file.len() >= CHECKPOINT_THRESHOLD_BYTES)
        };
        if !due() {
            return Ok(());
        }
        let _alone = shared.checkpoint.write().await;
        // Another connection may have checkpointed while this one waited.
        if !due() {
            return Ok(());
        }
        let widest = *shared
            .widest_table
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        blocking(|| {
            set_memory_limit_kb(
                &self.connection,
                memory_limit_kb(widest) + CHECKPOINT_HEADROOM_KB,
            )?;
            let checkpoint = self.execute_now("checkpointing", "CHECKPOINT");
            // Right after a checkpoint every block is on disk and can be evicted, so the lower
            // cap holds; if DuckDB cannot get under it yet, the next checkpoint tries again.
            if let Err(error) = set_memory_limit(&self.connection, widest) {
                tracing::debug!(%error, "the memory cap stays raised until the next checkpoint");
            }
            checkpoint
        })
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
}

fn read_value(value: DuckValue) -> Result<SqlValue, DestinationError> {
    Ok(match value {
        DuckValue::Null => SqlValue::Null,
        DuckValue::Boolean(b) => SqlValue::Bool(b),
        DuckValue::TinyInt(n) => SqlValue::Int(n.into()),
        DuckValue::SmallInt(n) => SqlValue::Int(n.into()),
        DuckValue::Int(n) => SqlValue::Int(n.into()),
        DuckValue::BigInt(n) => SqlValue::Int(n),
        DuckValue::UTinyInt(n) => SqlValue::Int(n.into()),
        DuckValue::USmallInt(n) => SqlValue::Int(n.into()),
        DuckValue::UInt(n) => SqlValue::Int(n.into()),
        DuckValue::Text(text) => SqlValue::Text(text),
        other => {
            return Err(DestinationError::new(format!(
                "DuckDB: a value of an unexpected type was read back: {other:?}"
            )));
        }
    })
}

#[async_trait]
impl Session for DuckDbSession {
    const PRODUCT: &'static str = "DuckDB";
    const INDEXES_KEYS: bool = false;

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

    fn column_type(declared: &str) -> ColumnType {
        match declared {
            "BOOLEAN" => ColumnType::Boolean,
            "BIGINT" => ColumnType::BigInt,
            "DOUBLE" => ColumnType::Double,
            "DATE" => ColumnType::Date,
            "TIMESTAMP WITH TIME ZONE" | "TIMESTAMPTZ" => ColumnType::Timestamp,
            "JSON" => ColumnType::Json,
            _ => ColumnType::Text,
        }
    }

    /// Parameters are positional (`?`): the core writes them in the order it binds them.
    fn placeholder(_number: usize, _param: Param<'_>, sql_type: &str) -> String {
        format!("CAST(? AS {sql_type})")
    }

    fn one_of(expr: &str, _number: usize, list: usize, _keys: &Keys, sql_type: &str) -> String {
        format!("{expr} IN (SELECT CAST(v AS {sql_type}) FROM _pds_keys_{list})")
    }

    fn change_type(table: &str, column: &str, sql_type: &str) -> String {
        format!("ALTER TABLE {table} ALTER COLUMN {column} SET DATA TYPE {sql_type}")
    }

    fn convert(expr: &str, sql_type: &str) -> String {
        format!("CAST({expr} AS {sql_type})")
    }

    fn epoch_us(expr: &str) -> String {
        format!("epoch_us({expr})")
    }

    /// A plain view: DuckDB binds a view when it is queried, so the tables under it can still
    /// be swapped and widened.
    fn create_view(
        &self,
        schema: &str,
        view: &str,
        select: &str,
        _returns: &str,
        comment: &str,
    ) -> String {
        let view = format!("{}.{}", self.schema_sql(schema), quote(view));
        format!(
            "CREATE OR REPLACE VIEW {view} AS\n{select};\nCOMMENT ON VIEW {view} IS {};\n",
            literal(comment)
        )
    }

    fn schema_sql(&self, schema: &str) -> String {
        format!("{}.{}", quote(&self.catalog), quote(schema))
    }

    fn table_sql(&self, table: &TableRef) -> String {
        format!(
            "{}.{}.{}",
            quote(&self.catalog),
            quote(&table.schema),
            quote(&table.name)
        )
    }

    fn describe(&self) -> String {
        format!("duckdb {}", self.path.display())
    }

    async fn execute(&mut self, context: &str, sql: &str) -> Result<(), DestinationError> {
        blocking(|| self.execute_now(context, sql))
    }

    async fn run(
        &mut self,
        context: &str,
        statement: Statement<'_>,
    ) -> Result<u64, DestinationError> {
        blocking(|| {
            self.with_keys(context, &statement, |prepared, params| {
                prepared.execute(duckdb::params_from_iter(params))
            })
        })
        .map(|changed| changed as u64)
    }

    async fn query(
        &mut self,
        context: &str,
        statement: Statement<'_>,
    ) -> Result<Vec<Vec<SqlValue>>, DestinationError> {
        let rows = blocking(|| {
            self.with_keys(context, &statement, |prepared, params| {
                let mut rows = prepared.query(duckdb::params_from_iter(params))?;
                let mut read = Vec::new();
                while let Some(row) = rows.next()? {
                    let width = row.as_ref().column_count();
                    read.push(
                        (0..width)
                            .map(|i| row.get::<_, DuckValue>(i))
                            .collect::<duckdb::Result<Vec<_>>>()?,
                    );
                }
                Ok(read)
            })
        })?;
        rows.into_iter()
            .map(|row| row.into_iter().map(read_value).collect())
            .collect()
    }

    async fn begin(&mut self) -> Result<(), DestinationError> {
        self.writing = Some(Arc::clone(&self.shared.checkpoint).read_owned().await);
        let begun = blocking(|| self.execute_now("starting a transaction", "BEGIN TRANSACTION"));
        if begun.is_err() {
            self.writing = None;
        }
        begun
    }

    async fn commit(&mut self) -> Result<(), DestinationError> {
        blocking(|| self.execute_now("committing", "COMMIT"))?;
        self.writing = None;
        self.checkpoint_if_due().await
    }

    async fn rollback(&mut self) {
        let _ = blocking(|| self.connection.execute_batch("ROLLBACK"));
        self.writing = None;
        self.fresh.forget_all();
    }

    /// A second connection to the same database: the writers' merges and DuckDB's work on
    /// them run on both cores while the reader waits on the network.
    async fn fork(&mut self) -> Result<Option<Self>, DestinationError> {
        Ok(Some(self.share()?))
    }

    async fn merge(&mut self, load: &Load<'_>) -> Result<(), DestinationError> {
        blocking(|| self.merge_now(load))
    }

    fn created(&mut self, table: &TableRef, width: usize) -> Result<(), DestinationError> {
        self.fresh.created(table);
        self.fit_memory_to(width)
    }

    fn widened(&mut self, width: usize) -> Result<(), DestinationError> {
        self.fit_memory_to(width)
    }

    fn forget(&mut self, table: &TableRef) {
        self.fresh.forget(table);
    }

    fn may_hold(&self, table: &TableRef, column: &str, parents: &[i64]) -> bool {
        !self.fresh.none_hold(table, column, parents.iter().copied())
    }
}
