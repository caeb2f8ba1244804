//! [`SqlDestination`]: the [`Destination`] every SQL database is, written once over a
//! [`Session`].

use std::collections::HashMap;

use async_trait::async_trait;
use pipedrive_engine::destination::columns::VALID_FROM;
use pipedrive_engine::schema::{Column, ColumnType};
use pipedrive_engine::{
    Batch, Destination, DestinationError, Missing, RunRecord, StreamState, SyncState, TableRef,
};

use super::runs::{self, RUNS_TABLE};
use super::session::{Keys, Load, Session, SqlValue, Statement};
use super::tables::loaded_columns;
use super::{column_list, quote};

/// The table holding every stream's state, in the state schema.
pub const STATE_TABLE: &str = "_pipedrive_sync_state";

/// A SQL database as a destination: tables merged page by page, each page's rows and its
/// stream's state committed together.
pub struct SqlDestination<S> {
    pub(crate) session: S,
    /// The schema of the state and run tables, as stored.
    state_schema: String,
    /// Columns (stored names) of each table as the database has them, read once and kept in
    /// step; forgotten whenever a transaction fails, since it may describe rolled-back DDL.
    pub(crate) tables: HashMap<TableRef, Vec<Column>>,
}

impl<S: Session> SqlDestination<S> {
    /// The destination over `session`, its state table made sure of.
    pub async fn new(session: S, state_schema: &str) -> Result<Self, DestinationError> {
        let mut destination = SqlDestination {
            session,
            state_schema: S::stored_name(state_schema),
            tables: HashMap::new(),
        };
        let state = destination.state_table();
        // Looked for first: creating a schema that exists needs a privilege a user may lack.
        if destination.columns_of(&state).await?.is_none() {
            let sql = format!(
                "CREATE SCHEMA IF NOT EXISTS {}; CREATE TABLE IF NOT EXISTS {} \
                 (stream {} PRIMARY KEY, state {} NOT NULL, updated_at {} NOT NULL)",
                destination.session.schema_sql(&state.schema),
                destination.session.table_sql(&state),
                S::sql_type(ColumnType::Text),
                S::sql_type(ColumnType::Json),
                S::sql_type(ColumnType::Timestamp),
            );
            destination
                .session
                .execute("creating the state table", &sql)
                .await?;
        }
        Ok(destination)
    }

    /// The schema the state table lives in, as stored.
    pub fn state_schema(&self) -> &str {
        &self.state_schema
    }

    fn state_table(&self) -> TableRef {
        TableRef {
            schema: self.state_schema.clone(),
            name: STATE_TABLE.to_owned(),
        }
    }

    fn runs_table(&self) -> TableRef {
        TableRef {
            schema: self.state_schema.clone(),
            name: RUNS_TABLE.to_owned(),
        }
    }

    async fn save_state(
        &mut self,
        stream: &str,
        state: &StreamState,
    ) -> Result<(), DestinationError> {
        let json =
            serde_json::to_string(state).map_err(|e| DestinationError::new(e.to_string()))?;
        let table = self.session.table_sql(&self.state_table());
        let (text, json_type) = (S::sql_type(ColumnType::Text), S::sql_type(ColumnType::Json));
        let mut delete = Statement::default();
        delete.sql = format!(
            "DELETE FROM {table} WHERE stream = {}",
            delete.text::<S>(Some(stream), text)
        );
        self.session.run("saving state", delete).await?;
        let mut insert = Statement::default();
        insert.sql = format!(
            "INSERT INTO {table} (stream, state, updated_at) VALUES ({}, {}, now())",
            insert.text::<S>(Some(stream), text),
            insert.text::<S>(Some(&json), json_type),
        );
        self.session.run("saving state", insert).await?;
        Ok(())
    }

    /// Commits a transaction whose body returned `result`, or rolls it back.
    async fn finish<T>(
        &mut self,
        result: Result<T, DestinationError>,
    ) -> Result<T, DestinationError> {
        let result = match result {
            Ok(value) => self.session.commit().await.map(|()| value),
            Err(error) => Err(error),
        };
        if result.is_err() {
            self.session.rollback().await;
            self.tables.clear();
        }
        result
    }

    async fn write_batch(&mut self, batch: &Batch<'_>) -> Result<(), DestinationError> {
        let table = self.stored(batch.table);
        let loaded = loaded_columns::<S>(batch)?;
        // History rows are versions: one per key and `_valid_from`.
        let version_key = batch.history.then_some(VALID_FROM);
        let keys: Vec<String> = batch
            .primary_key
            .iter()
            .chain(&version_key)
            .map(|k| S::stored_name(k))
            .collect();
        let parent = batch
            .replace_parents
            .map(|(column, _)| [S::stored_name(column)]);
        let indexed: Vec<&[String]> = std::iter::once(&keys[..])
            .chain(parent.as_ref().map(|p| &p[..]))
            .collect();
        let wanted: Vec<Column> = loaded.iter().map(|(_, c)| c.clone()).collect();
        let table_columns = self.evolve(&table, &wanted, &indexed).await?;
        if let Some((column, parents)) = batch.replace_parents {
            self.delete_children(&table, column, parents).await?;
        }
        if !batch.is_empty() && !loaded.is_empty() {
            let key_positions: Vec<usize> = keys
                .iter()
                .map(|k| loaded.iter().position(|(_, c)| &c.name == k))
                .collect::<Option<_>>()
                .filter(|keys: &Vec<usize>| !keys.is_empty())
                .ok_or_else(|| {
                    DestinationError::new(format!(
                        "stream {}: records have no primary key {:?}",
                        batch.stream, batch.primary_key
                    ))
                })?;
            // Values go in as the table's (possibly wider) column types.
            let columns: Vec<(usize, Column)> = loaded
                .into_iter()
                .map(|(i, c)| {
                    let ty = table_columns
                        .iter()
                        .find(|t| t.name == c.name)
                        .map_or(c.ty, |t| t.ty);
                    (i, Column::new(&c.name, ty))
                })
                .collect();
            let synced_at_us = pipedrive_engine::schema::parse_timestamp(batch.synced_at)
                .map(|t| t.timestamp_micros())
                .ok_or_else(|| {
                    DestinationError::new(format!("unreadable sync time {}", batch.synced_at))
                })?;
            let name = self.session.table_sql(&table);
            let load = Load {
                batch,
                table: &table,
                name: &name,
                columns: &columns,
                key_positions: &key_positions,
                table_columns: &table_columns,
                synced_at_us,
            };
            self.session.merge(&load).await?;
        }
        self.save_state(batch.stream, batch.state).await
    }

    async fn write_all(&mut self, batches: &[Batch<'_>]) -> Result<(), DestinationError> {
        for batch in batches {
            self.write_batch(batch).await?;
        }
        Ok(())
    }

    async fn swap(
        &mut self,
        stream: &str,
        staging: &TableRef,
        target: &TableRef,
        state: &StreamState,
    ) -> Result<(), DestinationError> {
        let (staged, replaced) = (
            self.session.table_sql(staging),
            self.session.table_sql(target),
        );
        if self.columns_of(target).await?.is_none() {
            let sql = format!("ALTER TABLE {staged} RENAME TO {}", quote(&target.name));
            self.session.execute("renaming the table", &sql).await?;
        } else {
            // The table stays, so views, indexes and grants on it do too: its rows are
            // swapped (readers see the old rows until the commit), and the columns the new
            // rows bring are added first.
            let columns = self.columns_of(staging).await?.unwrap_or_default();
            self.evolve(target, &columns, &[]).await?;
            let names = column_list(&columns);
            let sql = format!(
                "DELETE FROM {replaced}; INSERT INTO {replaced} ({names}) SELECT {names} FROM {staged}; \
                 DROP TABLE {staged}"
            );
            self.session
                .execute("replacing the table's rows", &sql)
                .await?;
        }
        self.save_state(stream, state).await
    }

    async fn mark_missing(&mut self, missing: &Missing<'_>) -> Result<u64, DestinationError> {
        let marked = self.keep_missing(missing).await?;
        self.save_state(missing.stream, missing.state).await?;
        Ok(marked)
    }
}

fn unreadable(what: &str) -> DestinationError {
    DestinationError::new(format!("reading {what}: a value has an unexpected type"))
}

#[async_trait]
impl<S: Session> Destination for SqlDestination<S> {
    fn describe(&self) -> String {
        self.session.describe()
    }

    /// Another session on the same database: the database merges one page while the other's
    /// rows are encoded and sent.
    async fn fork(&mut self) -> Result<Option<Box<dyn Destination>>, DestinationError> {
        let Some(session) = self.session.fork().await? else {
            return Ok(None);
        };
        Ok(Some(Box::new(SqlDestination {
            session,
            state_schema: self.state_schema.clone(),
            tables: HashMap::new(),
        })))
    }

    async fn read_state(&mut self) -> Result<SyncState, DestinationError> {
        let statement = Statement::plain(format!(
            "SELECT stream, CAST(state AS {}) FROM {}",
            S::sql_type(ColumnType::Text),
            self.session.table_sql(&self.state_table())
        ));
        let rows = self.session.query("reading state", statement).await?;
        rows.into_iter()
            .map(|row| {
                let mut values = row.into_iter().map(SqlValue::text);
                let (Some(Some(stream)), Some(Some(json))) = (values.next(), values.next()) else {
                    return Err(unreadable("state"));
                };
                serde_json::from_str(&json)
                    .map(|state| (stream.clone(), state))
                    .map_err(|e| {
                        DestinationError::new(format!("state of {stream} is unreadable: {e}"))
                    })
            })
            .collect()
    }

    async fn write(&mut self, batches: &[Batch<'_>]) -> Result<(), DestinationError> {
        self.session.begin().await?;
        let written = self.write_all(batches).await;
        self.finish(written).await
    }

    async fn replace(
        &mut self,
        stream: &str,
        staging: &TableRef,
        target: &TableRef,
        state: &StreamState,
    ) -> Result<(), DestinationError> {
        let (staging, target) = (self.stored(staging), self.stored(target));
        self.session.begin().await?;
        let swapped = self.swap(stream, &staging, &target, state).await;
        let result = self.finish(swapped).await;
        for table in [&staging, &target] {
            self.tables.remove(table);
            self.session.forget(table);
        }
        result
    }

    fn keeps_deleted(&self) -> bool {
        true
    }

    async fn keep_deleted(&mut self, missing: &Missing<'_>) -> Result<u64, DestinationError> {
        self.session.begin().await?;
        let marked = self.mark_missing(missing).await;
        self.finish(marked).await
    }

    async fn drop_table(&mut self, table: &TableRef) -> Result<(), DestinationError> {
        let table = self.stored(table);
        self.tables.remove(&table);
        self.session.forget(&table);
        let sql = format!("DROP TABLE IF EXISTS {}", self.session.table_sql(&table));
        self.session.execute("dropping a table", &sql).await
    }

    async fn reset_state(&mut self, stream: &str) -> Result<(), DestinationError> {
        let mut statement = Statement::default();
        statement.sql = format!(
            "DELETE FROM {} WHERE stream = {}",
            self.session.table_sql(&self.state_table()),
            statement.text::<S>(Some(stream), S::sql_type(ColumnType::Text))
        );
        self.session.run("resetting state", statement).await?;
        Ok(())
    }

    async fn record_run(&mut self, run: &RunRecord) -> Result<(), DestinationError> {
        let row = runs::Row::of(run)?;
        let runs = self.runs_table();
        let table = self.session.table_sql(&runs);
        let sql = format!(
            "CREATE SCHEMA IF NOT EXISTS {}; CREATE TABLE IF NOT EXISTS {table} ({})",
            self.session.schema_sql(&runs.schema),
            runs::definitions(S::sql_type(ColumnType::Text), S::sql_type(ColumnType::Json)),
        );
        self.session
            .execute("creating the runs table", &sql)
            .await?;
        let (started_at, finished_at) = (run.started_at.to_rfc3339(), run.finished_at.to_rfc3339());
        let (text, json, timestamp) = (
            S::sql_type(ColumnType::Text),
            S::sql_type(ColumnType::Json),
            S::sql_type(ColumnType::Timestamp),
        );
        let mut insert = Statement::default();
        let values = [
            insert.text::<S>(Some(&row.run_id), text),
            insert.text::<S>(Some(&row.company), text),
            insert.text::<S>(Some(&started_at), timestamp),
            insert.text::<S>(Some(&finished_at), timestamp),
            insert.text::<S>(Some(&row.status), text),
            insert.text::<S>(row.error.as_deref(), text),
            insert.int::<S>(Some(row.records)),
            insert.int::<S>(Some(row.requests)),
            insert.int::<S>(Some(row.tokens)),
            insert.int::<S>(Some(row.responses_429)),
            insert.int::<S>(row.burst_limit),
            insert.text::<S>(Some(&row.streams), json),
            insert.text::<S>(Some(&row.timeline), json),
        ];
        insert.sql = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            runs::names(),
            values.join(", ")
        );
        self.session.run("recording the run", insert).await?;
        Ok(())
    }

    async fn read_runs(&mut self) -> Result<Vec<RunRecord>, DestinationError> {
        let runs = self.runs_table();
        if self.columns_of(&runs).await?.is_none() {
            return Ok(Vec::new());
        }
        let text = S::sql_type(ColumnType::Text);
        let columns = runs::select_list(|column, ty| {
            if ty.starts_with("TIMESTAMPTZ") {
                S::epoch_us(&quote(column))
            } else if ty.starts_with("JSON") {
                format!("CAST({} AS {text})", quote(column))
            } else {
                quote(column)
            }
        });
        let statement = Statement::plain(format!(
            "SELECT {columns} FROM {} ORDER BY {}, {}",
            self.session.table_sql(&runs),
            quote("started_at"),
            quote("run_id"),
        ));
        let rows = self.session.query("reading the runs", statement).await?;
        rows.into_iter()
            .map(|row| {
                let [
                    run_id,
                    company,
                    started,
                    finished,
                    status,
                    error,
                    records,
                    requests,
                    tokens,
                    responses_429,
                    burst_limit,
                    streams,
                    timeline,
                ]: [SqlValue; 13] = row.try_into().map_err(|_| unreadable("the runs"))?;
                let text = |value: SqlValue| value.text().ok_or_else(|| unreadable("the runs"));
                let int = |value: &SqlValue| value.int().ok_or_else(|| unreadable("the runs"));
                runs::Row {
                    run_id: text(run_id)?,
                    company: text(company)?,
                    status: text(status)?,
                    error: error.text(),
                    records: int(&records)?,
                    requests: int(&requests)?,
                    tokens: int(&tokens)?,
                    responses_429: int(&responses_429)?,
                    burst_limit: burst_limit.int(),
                    streams: text(streams)?,
                    timeline: text(timeline)?,
                }
                .into_record(int(&started)?, int(&finished)?)
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
        let table = self.stored(table);
        let (key, version) = (S::stored_name(key), S::stored_name(version));
        let columns = self.columns_of(&table).await?.unwrap_or_default();
        let Some(key_type) = columns.iter().find(|c| c.name == key).map(|c| c.ty) else {
            return Ok(HashMap::new());
        };
        if !columns.iter().any(|c| c.name == version) {
            return Ok(HashMap::new());
        }
        let (quoted_key, quoted_version) = (quote(&key), quote(&version));
        let mut statement = Statement::default();
        // The keys cast to the key column's type, so an index on it finds them.
        statement.sql = format!(
            "SELECT CAST(t.{quoted_key} AS {text}), {epoch} FROM {target} AS t \
             WHERE {member} AND t.{quoted_version} IS NOT NULL",
            text = S::sql_type(ColumnType::Text),
            epoch = S::epoch_us(&format!("t.{quoted_version}")),
            target = self.session.table_sql(&table),
            member = statement.one_of::<S>(
                &format!("t.{quoted_key}"),
                Keys::Text(keys.to_vec()),
                S::sql_type(key_type)
            ),
        );
        let rows = self
            .session
            .query("reading stored versions", statement)
            .await?;
        rows.into_iter()
            .map(|row| {
                let mut values = row.into_iter();
                match (values.next(), values.next()) {
                    (Some(SqlValue::Text(key)), Some(SqlValue::Int(us))) => {
                        Ok((key, us.div_euclid(1_000)))
                    }
                    _ => Err(unreadable("stored versions")),
                }
            })
            .collect()
    }
}
