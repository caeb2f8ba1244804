//! PostgreSQL. Each page replaces the rows with its keys (deleted by key), then is sent by binary
//! COPY into the stream's table, together with the state row, in one transaction. Tables made
//! elsewhere need no key constraint: the merge does not rely on one.

mod encode;
mod names;
mod tls;

use std::collections::{HashMap, HashSet};
use std::pin::pin;
use std::time::Duration;

use async_trait::async_trait;
use pipedrive_engine::destination::columns::{
    DELETED, DELETED_AT, IS_CURRENT, VALID_FROM, VALID_TO, delete_marks,
};
use pipedrive_engine::schema::{Column, ColumnType, parse_timestamp, to_text};
use pipedrive_engine::{
    Batch, Destination, DestinationError, Missing, Present, RunRecord, StreamState, SyncState,
    TableRef,
};
use serde_json::Value;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Config, GenericClient, Transaction};

pub use names::{MAX_IDENTIFIER_BYTES, stored_name};

use self::encode::{Cell, column_type, encode, key_text, show, sql_type, wire_type};
use crate::runs::{self, RUNS_TABLE};
use crate::sql::quote;

/// The table holding every stream's state, in the state schema.
pub const STATE_TABLE: &str = "_pipedrive_sync_state";

/// How long one connection attempt may take when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A table as stored: schema and name after [`stored_name`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Stored {
    schema: String,
    name: String,
}

impl Stored {
    fn of(table: &TableRef) -> Stored {
        Stored {
            schema: stored_name(&table.schema),
            name: stored_name(&table.name),
        }
    }

    fn sql(&self) -> String {
        format!("{}.{}", quote(&self.schema), quote(&self.name))
    }
}

pub struct Postgres {
    client: Client,
    /// The connection URL as configured, password included, for [`Destination::fork`]: never
    /// printed.
    url: String,
    /// `postgres://user@host:port/db`: never the password.
    description: String,
    state_schema: String,
    /// Columns (stored names) of each table as the database has them, read once and kept in
    /// step; forgotten whenever a transaction fails, since it may describe rolled-back DDL.
    tables: HashMap<Stored, Vec<Column>>,
    /// Rows copied into each table by this session, and the count at which it is analysed next.
    growth: HashMap<Stored, Growth>,
}

/// A table filled faster than autovacuum analyses it keeps the planner's first idea of it
/// (empty), and the merge's delete then sorts the whole table instead of using the key index:
/// at `large` that made each page cost more than the one before. Analysing at each doubling
/// keeps the statistics current for a logarithmic number of `ANALYZE`s.
#[derive(Clone, Copy, Debug)]
struct Growth {
    copied: u64,
    analyze_at: u64,
}

impl Default for Growth {
    fn default() -> Growth {
        Growth {
            copied: 0,
            analyze_at: 2_000,
        }
    }
}

/// `context: message (detail; hint)` for a database error, the cause chain otherwise.
fn explain(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = db.message().to_owned();
        let extra: Vec<&str> = [db.detail(), db.hint()].into_iter().flatten().collect();
        if !extra.is_empty() {
            text = format!("{text} ({})", extra.join("; "));
        }
        return text;
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    if error.is_closed() {
        text.push_str(" (the connection to PostgreSQL was lost; rerun the sync)");
    }
    text
}

fn fail(context: &str) -> impl Fn(tokio_postgres::Error) -> DestinationError + '_ {
    move |error| DestinationError::new(format!("PostgreSQL: {context}: {}", explain(&error)))
}

fn host_port(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

/// A connection failure as a message naming the cause and what to change. Never includes the
/// password, which tokio-postgres does not echo either.
fn connect_error(error: &tokio_postgres::Error, config: &Config) -> DestinationError {
    let user = config.get_user().unwrap_or("(none)");
    let database = config.get_dbname().unwrap_or(user);
    let at = host_port(config);
    let message = match error.code() {
        Some(code) if *code == SqlState::INVALID_PASSWORD => {
            format!(
                "password authentication failed for user {user}: check the password in target.url"
            )
        }
        Some(code) if *code == SqlState::INVALID_CATALOG_NAME => {
            format!(
                "database \"{database}\" does not exist on {at}: create it (CREATE DATABASE) or fix the database in target.url"
            )
        }
        Some(code) if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => format!(
            "the server refused user {user}: {} (check the user in target.url, or add ?sslmode=require if the server only accepts TLS)",
            explain(error)
        ),
        Some(_) => format!("connecting to {at}: {}", explain(error)),
        None => {
            let text = explain(error);
            if text.contains("password missing") {
                format!("the server asks for a password for user {user}: add it to target.url")
            } else if text.contains("TLS handshake") {
                format!(
                    "TLS with {at} failed ({text}): connect by the host name the certificate names, \
                     or use sslmode=verify-ca (no host check) or sslmode=require (no certificate check)"
                )
            } else if text.contains("server does not support TLS") {
                format!(
                    "{at} does not accept TLS connections: remove sslmode from target.url or enable ssl on the server"
                )
            } else {
                format!(
                    "cannot connect to {at} ({text}): is PostgreSQL running on {at}? check target.url"
                )
            }
        }
    };
    DestinationError::new(format!("PostgreSQL: {message}"))
}

/// Connects to `url` (`postgres://user:password@host:port/database?sslmode=...`) and makes sure
/// the state table exists in `schema_for_state`. `sslmode=require` encrypts without checking
/// the certificate (as libpq does); `verify-ca`/`verify-full` also check it against the
/// system's roots; anything else connects in plain text.
pub async fn connect(url: &str, schema_for_state: &str) -> Result<Postgres, DestinationError> {
    let (client, config) = session(url).await?;
    let user = config.get_user().unwrap_or("");
    let description = format!(
        "postgres postgres://{user}@{}/{}",
        host_port(&config),
        config.get_dbname().unwrap_or(user)
    );
    let state_schema = stored_name(schema_for_state);
    let state_table = format!("{}.{}", quote(&state_schema), quote(STATE_TABLE));
    // One writer per state schema. The advisory lock belongs to this session, so a run that
    // was killed releases it when its connection closes: there is no stale lock to clean up.
    let locked: bool = client
        .query_one(
            "SELECT pg_try_advisory_lock(hashtext($1))",
            &[&format!("pipedrive-sync:{state_schema}")],
        )
        .await
        .map_err(fail("taking the writer lock"))?
        .get(0);
    if !locked {
        return Err(DestinationError::new(format!(
            "PostgreSQL: another pipedrive-sync run is writing to schema {schema_for_state} on {}; wait for it to finish (a killed run releases its lock when its connection closes)",
            host_port(&config)
        )));
    }
    let exists = client
        .query_opt("SELECT to_regclass($1)::text", &[&state_table])
        .await
        .map_err(fail("looking for the state table"))?
        .and_then(|row| row.get::<_, Option<String>>(0))
        .is_some();
    if !exists {
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {}; CREATE TABLE IF NOT EXISTS {state_table} \
                 (stream text PRIMARY KEY, state jsonb NOT NULL, updated_at timestamptz NOT NULL)",
                quote(&state_schema)
            ))
            .await
            .map_err(fail("creating the state table"))?;
    }
    Ok(Postgres {
        client,
        url: url.to_owned(),
        description,
        state_schema,
        tables: HashMap::new(),
        growth: HashMap::new(),
    })
}

/// One connection to `url`, its session set up.
async fn session(url: &str) -> Result<(Client, Config), DestinationError> {
    let (url, verify) = tls::take_verify_mode(url);
    let mut config: Config = url.parse().map_err(|error| {
        DestinationError::new(format!(
            "PostgreSQL: target.url is not a valid connection URL ({error}); expected postgres://user:password@host:5432/database"
        ))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("pipedrive-sync");
    }
    let client = match config.get_ssl_mode() {
        tokio_postgres::config::SslMode::Require => {
            let connector = tls::connector(verify)?;
            let (client, connection) = config
                .connect(connector)
                .await
                .map_err(|e| connect_error(&e, &config))?;
            spawn_connection(connection);
            client
        }
        _ => {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| connect_error(&e, &config))?;
            spawn_connection(connection);
            client
        }
    };
    // UTC so widening dates to timestamps (and any text cast) means midnight UTC, as the rows do.
    client
        .batch_execute("SET TIME ZONE 'UTC'")
        .await
        .map_err(fail("setting the session"))?;
    Ok((client, config))
}

fn spawn_connection<C>(connection: C)
where
    C: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!("PostgreSQL connection ended: {}", explain(&error));
        }
    });
}

async fn columns_of(
    tx: &Transaction<'_>,
    cache: &mut HashMap<Stored, Vec<Column>>,
    table: &Stored,
) -> Result<Option<Vec<Column>>, DestinationError> {
    if let Some(columns) = cache.get(table) {
        return Ok(Some(columns.clone()));
    }
    let rows = tx
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            &[&table.schema, &table.name],
        )
        .await
        .map_err(fail("reading columns"))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let columns: Vec<Column> = rows
        .iter()
        .map(|row| Column {
            name: row.get(0),
            ty: column_type(row.get(1)),
        })
        .collect();
    cache.insert(table.clone(), columns.clone());
    Ok(Some(columns))
}

/// Creates the table, adds new columns and widens changed ones, so that every batch column
/// with a known type has a place. `batch` holds stored names; a new table gets an index on
/// each of `indexed` (the primary key, the parent column of fanned-out children). Returns
/// the table's columns.
async fn evolve(
    tx: &Transaction<'_>,
    cache: &mut HashMap<Stored, Vec<Column>>,
    table: &Stored,
    batch: &[Column],
    indexed: &[&[String]],
) -> Result<Vec<Column>, DestinationError> {
    let name = table.sql();
    let Some(mut existing) = columns_of(tx, cache, table).await? else {
        let mut columns: Vec<Column> = batch.to_vec();
        columns.push(Column {
            name: "_synced_at".to_owned(),
            ty: ColumnType::Timestamp,
        });
        let definitions: Vec<String> = columns
            .iter()
            .map(|c| format!("{} {}", quote(&c.name), sql_type(c.ty)))
            .collect();
        let mut sql = format!(
            "CREATE SCHEMA IF NOT EXISTS {}; CREATE TABLE {name} ({});",
            quote(&table.schema),
            definitions.join(", ")
        );
        // Plain (not unique) indexes keep each merge's deletes, by key and by parent, from
        // scanning the whole table; unnamed, so PostgreSQL picks a free name even after
        // staging tables are renamed.
        for keys in indexed {
            if !keys.is_empty() && keys.iter().all(|k| batch.iter().any(|c| &c.name == k)) {
                let keys: Vec<String> = keys.iter().map(|k| quote(k)).collect();
                sql.push_str(&format!(" CREATE INDEX ON {name} ({});", keys.join(", ")));
            }
        }
        tx.batch_execute(&sql)
            .await
            .map_err(fail("creating the table"))?;
        cache.insert(table.clone(), columns.clone());
        return Ok(columns);
    };
    for column in batch {
        match existing.iter_mut().find(|e| e.name == column.name) {
            None => {
                tx.batch_execute(&format!(
                    "ALTER TABLE {name} ADD COLUMN {} {}",
                    quote(&column.name),
                    sql_type(column.ty)
                ))
                .await
                .map_err(fail("adding a column"))?;
                existing.push(column.clone());
            }
            Some(current) => {
                let widened = current.ty.widen(column.ty);
                if sql_type(widened) != sql_type(current.ty) {
                    let quoted = quote(&column.name);
                    let new_type = sql_type(widened);
                    tx.batch_execute(&format!(
                        "ALTER TABLE {name} ALTER COLUMN {quoted} TYPE {new_type} USING {quoted}::{new_type}"
                    ))
                    .await
                    .map_err(fail("widening a column"))?;
                    current.ty = widened;
                }
            }
        }
    }
    cache.insert(table.clone(), existing.clone());
    Ok(existing)
}

async fn save_state(
    client: &impl GenericClient,
    state_schema: &str,
    stream: &str,
    state: &StreamState,
) -> Result<(), DestinationError> {
    let json = serde_json::to_value(state).map_err(|e| DestinationError::new(e.to_string()))?;
    client
        .execute(
            &format!(
                "INSERT INTO {}.{} (stream, state, updated_at) VALUES ($1, $2, now()) \
                 ON CONFLICT (stream) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                quote(state_schema),
                quote(STATE_TABLE)
            ),
            &[&stream, &json],
        )
        .await
        .map_err(fail("saving state"))?;
    Ok(())
}

/// The batch's loadable columns: index into the row, the column under its stored name.
fn loaded_columns(batch: &Batch<'_>) -> Result<Vec<(usize, Column)>, DestinationError> {
    let mut seen: HashMap<String, &str> = HashMap::new();
    let mut loaded = Vec::new();
    for (i, column) in batch.columns.iter().enumerate() {
        let stored = stored_name(&column.name);
        if let Some(other) = seen.insert(stored.clone(), &column.name) {
            return Err(DestinationError::new(format!(
                "stream {}: columns {other:?} and {:?} are both stored as {stored:?} in PostgreSQL; rename one",
                batch.stream, column.name
            )));
        }
        if column.ty != ColumnType::Null {
            loaded.push((
                i,
                Column {
                    name: stored,
                    ty: column.ty,
                },
            ));
        }
    }
    Ok(loaded)
}

/// Rows to load, the last one winning when a key repeats within the batch (a record seen
/// twice while paging), so the merge never inserts duplicates.
fn last_per_key<'r>(batch: &Batch<'r>, key_indexes: &[usize]) -> Vec<&'r Vec<Value>> {
    let mut seen = HashSet::new();
    let mut rows: Vec<&Vec<Value>> = batch
        .rows
        .iter()
        .rev()
        .filter(|row| {
            seen.insert(
                key_indexes
                    .iter()
                    .map(|i| row[*i].to_string())
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    rows.reverse();
    rows
}

/// Deletes the rows of the given parents (their children are re-read as a whole). Integer ids
/// compare as integers, so an index on the column serves; anything else compares as text.
async fn delete_children(
    tx: &Transaction<'_>,
    table: &Stored,
    columns: &[Column],
    column: &str,
    parents: &[Value],
) -> Result<(), DestinationError> {
    let stored = stored_name(column);
    let Some(existing) = columns.iter().find(|c| c.name == stored) else {
        return Ok(());
    };
    if parents.is_empty() {
        return Ok(());
    }
    let quoted = quote(&stored);
    let integers: Option<Vec<i64>> = parents.iter().map(Value::as_i64).collect();
    let deleted = match integers {
        Some(ids) if existing.ty == ColumnType::BigInt => {
            tx.execute(
                &format!("DELETE FROM {} WHERE {quoted} = ANY($1)", table.sql()),
                &[&ids],
            )
            .await
        }
        _ => {
            let ids: Vec<String> = parents.iter().filter_map(to_text).collect();
            tx.execute(
                &format!("DELETE FROM {} WHERE {quoted}::text = ANY($1)", table.sql()),
                &[&ids],
            )
            .await
        }
    };
    deleted.map_err(fail("deleting replaced children"))?;
    Ok(())
}

async fn write_batch(
    tx: &Transaction<'_>,
    cache: &mut HashMap<Stored, Vec<Column>>,
    growth: &mut HashMap<Stored, Growth>,
    state_schema: &str,
    batch: &Batch<'_>,
) -> Result<(), DestinationError> {
    let table = Stored::of(batch.table);
    let loaded = loaded_columns(batch)?;
    let batch_columns: Vec<Column> = loaded.iter().map(|(_, c)| c.clone()).collect();
    // History rows are versions: one per key and `_valid_from`.
    let version_key = batch.history.then_some(VALID_FROM);
    let key_names: Vec<String> = batch
        .primary_key
        .iter()
        .chain(&version_key)
        .map(|k| stored_name(k))
        .collect();
    let parent = batch
        .replace_parents
        .map(|(column, _)| [stored_name(column)]);
    let indexed: Vec<&[String]> = std::iter::once(&key_names[..])
        .chain(parent.as_ref().map(|p| &p[..]))
        .collect();
    let table_columns = evolve(tx, cache, &table, &batch_columns, &indexed).await?;
    if let Some((column, parents)) = batch.replace_parents {
        delete_children(tx, &table, &table_columns, column, parents).await?;
    }
    if !batch.rows.is_empty() && !loaded.is_empty() {
        // Each key column's place among the loaded columns (and so in an encoded row).
        let key_positions: Vec<usize> = key_names
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
        // Values are encoded as the table's (possibly wider) column types.
        let types: Vec<ColumnType> = loaded
            .iter()
            .map(|(_, c)| {
                table_columns
                    .iter()
                    .find(|t| t.name == c.name)
                    .map_or(c.ty, |t| t.ty)
            })
            .collect();
        let key_indexes: Vec<usize> = key_positions.iter().map(|&k| loaded[k].0).collect();
        let rows = last_per_key(batch, &key_indexes);
        let mut encoded: Vec<Vec<Cell<'_>>> = Vec::with_capacity(rows.len());
        for (row_number, row) in rows.iter().enumerate() {
            let cells = loaded
                .iter()
                .zip(&types)
                .map(|((i, _), ty)| {
                    encode(&row[*i], *ty).ok_or_else(|| {
                        DestinationError::new(format!(
                            "stream {}: column {:?} (row {}) holds {}, which does not fit its PostgreSQL type {}",
                            batch.stream,
                            batch.columns[*i].name,
                            row_number + 1,
                            show(&row[*i]),
                            sql_type(*ty)
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            encoded.push(cells);
        }

        // The batch's keys travel as text arrays, cast back to the key columns' types in SQL:
        // the merge needs no temporary table (whose create and drop per page cost more than the
        // rows), and the plain index on the key serves both the delete and the history update.
        let key_arrays: Vec<Vec<Option<String>>> = key_positions
            .iter()
            .map(|&k| encoded.iter().map(|cells| key_text(&cells[k])).collect())
            .collect();
        let key_params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = key_arrays
            .iter()
            .map(|a| a as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let unnest = format!(
            "unnest({}) AS b({})",
            (1..=key_names.len())
                .map(|n| format!("${n}::text[]"))
                .collect::<Vec<_>>()
                .join(", "),
            (0..key_names.len())
                .map(|n| format!("k{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let key_type = |n: usize| sql_type(types[key_positions[n]]);
        let key_match: Vec<String> = key_names
            .iter()
            .enumerate()
            .map(|(n, k)| format!("t.{} = b.k{n}::{}", quote(k), key_type(n)))
            .collect();
        let target = table.sql();
        tx.execute(
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
            let from = key_names.len() - 1;
            let groups: Vec<String> = (0..from).map(|n| format!("b.k{n}")).collect();
            let joined: Vec<String> = key_names[..from]
                .iter()
                .enumerate()
                .map(|(n, k)| format!("t.{} = f.k{n}::{}", quote(k), key_type(n)))
                .collect();
            tx.execute(
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

        let synced_at = parse_timestamp(batch.synced_at).ok_or_else(|| {
            DestinationError::new(format!("unreadable sync time {}", batch.synced_at))
        })?;
        let mut names: Vec<String> = loaded.iter().map(|(_, c)| quote(&c.name)).collect();
        names.push(quote("_synced_at"));
        let sink = tx
            .copy_in(&format!(
                "COPY {target} ({}) FROM STDIN (FORMAT binary)",
                names.join(", ")
            ))
            .await
            .map_err(fail("copying rows"))?;
        let mut wire: Vec<_> = types.iter().map(|ty| wire_type(*ty)).collect();
        wire.push(Type::TIMESTAMPTZ);
        let mut writer = pin!(BinaryCopyInWriter::new(sink, &wire));
        let mut values: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            Vec::with_capacity(wire.len());
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
        let grown = growth.entry(table.clone()).or_default();
        grown.copied += encoded.len() as u64;
        if grown.copied >= grown.analyze_at {
            grown.analyze_at = grown.copied * 2;
            tx.batch_execute(&format!("ANALYZE {target}"))
                .await
                .map_err(fail("analysing the table"))?;
        }
    }
    save_state(tx, state_schema, batch.stream, batch.state).await
}

/// Marks the rows Pipedrive no longer lists deleted (or carries them into a reload).
async fn keep_missing(
    tx: &Transaction<'_>,
    cache: &mut HashMap<Stored, Vec<Column>>,
    state_schema: &str,
    missing: &Missing<'_>,
) -> Result<u64, DestinationError> {
    let table = Stored::of(missing.table);
    let key_name = stored_name(missing.key);
    let target_columns = columns_of(tx, cache, &table)
        .await?
        .filter(|columns| columns.iter().any(|c| c.name == key_name));
    let Some(target_columns) = target_columns else {
        // No table, or one that never had a row: nothing to keep.
        save_state(tx, state_schema, missing.stream, missing.state).await?;
        return Ok(0);
    };
    let key = quote(&key_name);
    let marks = delete_marks();
    let (deleted, deleted_at) = (quote(DELETED), quote(DELETED_AT));
    let marked = match missing.present {
        Present::Keys(keys) => {
            evolve(tx, cache, &table, &marks, &[]).await?;
            let keys: Vec<String> = keys.iter().filter_map(to_text).collect();
            tx.execute(
                &format!(
                    "UPDATE {} SET {deleted} = true, {deleted_at} = $1::text::timestamptz \
                     WHERE coalesce({deleted}, false) = false AND NOT ({key}::text = ANY($2))",
                    table.sql()
                ),
                &[&missing.deleted_at, &keys],
            )
            .await
            .map_err(fail("marking deleted rows"))?
        }
        Present::Reloaded(staging) => {
            // The reload gets every column the old rows have, widened where they differ.
            let staging = Stored::of(staging);
            let mut wanted = target_columns.clone();
            wanted.extend(marks);
            let staging_columns = evolve(tx, cache, &staging, &wanted, &[]).await?;
            let type_of = |name: &str| {
                staging_columns
                    .iter()
                    .find(|c| c.name == name)
                    .map_or("text", |c| sql_type(c.ty))
            };
            let has_deleted_at = target_columns.iter().any(|c| c.name == DELETED_AT);
            let mut names = Vec::new();
            let mut values = Vec::new();
            for column in &target_columns {
                if column.name == DELETED || column.name == DELETED_AT {
                    continue;
                }
                let quoted = quote(&column.name);
                let target_type = sql_type(column.ty);
                let staging_type = type_of(&column.name);
                names.push(quoted.clone());
                values.push(if target_type == staging_type {
                    format!("t.{quoted}")
                } else {
                    format!("t.{quoted}::text::{staging_type}")
                });
            }
            names.push(deleted.clone());
            values.push("true".to_owned());
            names.push(deleted_at.clone());
            values.push(if has_deleted_at {
                format!("coalesce(t.{deleted_at}, $1::text::timestamptz)")
            } else {
                "$1::text::timestamptz".to_owned()
            });
            tx.execute(
                &format!(
                    "INSERT INTO {staging} ({}) SELECT {} FROM {target} AS t \
                     WHERE NOT EXISTS (SELECT 1 FROM {staging} AS s WHERE s.{key}::text = t.{key}::text)",
                    names.join(", "),
                    values.join(", "),
                    staging = staging.sql(),
                    target = table.sql(),
                ),
                &[&missing.deleted_at],
            )
            .await
            .map_err(fail("keeping deleted rows"))?
        }
    };
    save_state(tx, state_schema, missing.stream, missing.state).await?;
    Ok(marked)
}

impl Postgres {
    /// The schema the state table lives in, as stored.
    pub fn state_schema(&self) -> &str {
        &self.state_schema
    }

    /// The session, for SQL beyond loading (the analytics models' views).
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Releases the writer lock now rather than when the server notices the closed connection.
    pub async fn close(self) -> Result<(), DestinationError> {
        self.client
            .batch_execute("SELECT pg_advisory_unlock_all()")
            .await
            .map_err(fail("releasing the writer lock"))
    }
}

#[async_trait]
impl Destination for Postgres {
    fn describe(&self) -> String {
        self.description.clone()
    }

    /// A second connection: the server merges one page while the other's rows are encoded
    /// and sent. It takes no writer lock (this handle holds it for both).
    async fn fork(&mut self) -> Result<Option<Box<dyn Destination>>, DestinationError> {
        let (client, _) = session(&self.url).await?;
        Ok(Some(Box::new(Postgres {
            client,
            url: self.url.clone(),
            description: self.description.clone(),
            state_schema: self.state_schema.clone(),
            tables: HashMap::new(),
            growth: HashMap::new(),
        })))
    }

    async fn read_state(&mut self) -> Result<SyncState, DestinationError> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT stream, state FROM {}.{}",
                    quote(&self.state_schema),
                    quote(STATE_TABLE)
                ),
                &[],
            )
            .await
            .map_err(fail("reading state"))?;
        rows.iter()
            .map(|row| {
                let stream: String = row.get(0);
                serde_json::from_value(row.get::<_, Value>(1))
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
        let stored = Stored::of(table);
        let (key, version) = (stored_name(key), stored_name(version));
        let present = self
            .client
            .query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2 AND column_name = ANY($3)",
                &[
                    &stored.schema,
                    &stored.name,
                    &vec![key.clone(), version.clone()],
                ],
            )
            .await
            .map_err(fail("reading stored versions"))?;
        let key_type = present
            .iter()
            .find(|row| row.get::<_, String>(0) == key)
            .map(|row| row.get::<_, String>(1));
        let (Some(key_type), 2) = (key_type, present.len()) else {
            return Ok(HashMap::new());
        };
        // The keys cast to the key column's type, so its index finds them.
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT t.{key}::text, (extract(epoch FROM t.{version}) * 1000)::bigint \
                     FROM {target} AS t WHERE t.{key} = ANY($1::text[]::{key_type}[]) \
                     AND t.{version} IS NOT NULL",
                    key = quote(&key),
                    version = quote(&version),
                    target = stored.sql(),
                ),
                &[&keys],
            )
            .await
            .map_err(fail("reading stored versions"))?;
        Ok(rows
            .iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
            .collect())
    }

    async fn write(&mut self, batches: &[Batch<'_>]) -> Result<(), DestinationError> {
        let tx = self
            .client
            .transaction()
            .await
            .map_err(fail("starting a transaction"))?;
        let mut result = Ok(());
        for batch in batches {
            result = write_batch(
                &tx,
                &mut self.tables,
                &mut self.growth,
                &self.state_schema,
                batch,
            )
            .await;
            if result.is_err() {
                break;
            }
        }
        let result = match result {
            Ok(()) => tx.commit().await.map_err(fail("committing")),
            Err(error) => Err(error),
        };
        if result.is_err() {
            self.tables.clear();
        }
        result
    }

    async fn replace(
        &mut self,
        stream: &str,
        staging: &TableRef,
        target: &TableRef,
        state: &StreamState,
    ) -> Result<(), DestinationError> {
        let (staging, target) = (Stored::of(staging), Stored::of(target));
        self.tables.remove(&staging);
        self.tables.remove(&target);
        let tx = self
            .client
            .transaction()
            .await
            .map_err(fail("starting a transaction"))?;
        let tables = &mut self.tables;
        let result = async {
            let sql = match columns_of(&tx, tables, &target).await? {
                None => {
                    let mut sql = format!(
                        "ALTER TABLE {} RENAME TO {};",
                        staging.sql(),
                        quote(&target.name)
                    );
                    if staging.schema != target.schema {
                        sql.push_str(&format!(
                            " ALTER TABLE {}.{} SET SCHEMA {};",
                            quote(&staging.schema),
                            quote(&target.name),
                            quote(&target.schema)
                        ));
                    }
                    sql
                }
                Some(_) => {
                    // The table stays, so views, indexes and grants on it do too: its rows are
                    // swapped (readers see the old rows until the commit), and the columns the
                    // new rows bring are added first.
                    let columns = columns_of(&tx, tables, &staging).await?.unwrap_or_default();
                    evolve(&tx, tables, &target, &columns, &[]).await?;
                    let names = crate::sql::column_list(&columns);
                    format!(
                        "DELETE FROM {target}; INSERT INTO {target} ({names}) SELECT {names} FROM {staging}; DROP TABLE {staging};",
                        target = target.sql(),
                        staging = staging.sql(),
                    )
                }
            };
            tx.batch_execute(&sql)
                .await
                .map_err(fail("replacing the table's rows"))?;
            save_state(&tx, &self.state_schema, stream, state).await?;
            tx.commit().await.map_err(fail("committing"))
        }
        .await;
        self.tables.remove(&staging);
        self.tables.remove(&target);
        if result.is_err() {
            // The cache may describe DDL the failed transaction rolled back.
            self.tables.clear();
        }
        result
    }

    fn keeps_deleted(&self) -> bool {
        true
    }

    async fn keep_deleted(&mut self, missing: &Missing<'_>) -> Result<u64, DestinationError> {
        let tx = self
            .client
            .transaction()
            .await
            .map_err(fail("starting a transaction"))?;
        let result = match keep_missing(&tx, &mut self.tables, &self.state_schema, missing).await {
            Ok(marked) => tx
                .commit()
                .await
                .map(|()| marked)
                .map_err(fail("committing")),
            Err(error) => Err(error),
        };
        if result.is_err() {
            self.tables.clear();
        }
        result
    }

    async fn drop_table(&mut self, table: &TableRef) -> Result<(), DestinationError> {
        let table = Stored::of(table);
        self.tables.remove(&table);
        self.client
            .batch_execute(&format!("DROP TABLE IF EXISTS {}", table.sql()))
            .await
            .map_err(fail("dropping a table"))
    }

    async fn record_run(&mut self, run: &RunRecord) -> Result<(), DestinationError> {
        let row = runs::Row::of(run)?;
        let table = format!("{}.{}", quote(&self.state_schema), quote(RUNS_TABLE));
        self.client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {table} ({})",
                runs::definitions("text", "jsonb")
            ))
            .await
            .map_err(fail("creating the runs table"))?;
        self.client
            .execute(
                &format!(
                    "INSERT INTO {table} ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
                     $11, $12::text::jsonb, $13::text::jsonb)",
                    runs::names()
                ),
                &[
                    &row.run_id,
                    &row.company,
                    &run.started_at,
                    &run.finished_at,
                    &row.status,
                    &row.error,
                    &row.records,
                    &row.requests,
                    &row.tokens,
                    &row.responses_429,
                    &row.burst_limit,
                    &row.streams,
                    &row.timeline,
                ],
            )
            .await
            .map_err(fail("recording the run"))?;
        Ok(())
    }

    async fn read_runs(&mut self) -> Result<Vec<RunRecord>, DestinationError> {
        let table = format!("{}.{}", quote(&self.state_schema), quote(RUNS_TABLE));
        let exists = self
            .client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
            .await
            .map_err(fail("looking for the runs table"))?
            .get::<_, bool>(0);
        if !exists {
            return Ok(Vec::new());
        }
        let columns = runs::select_list(|column, ty| {
            if ty.starts_with("JSON") {
                format!("{}::text", quote(column))
            } else {
                quote(column)
            }
        });
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT {columns} FROM {table} ORDER BY {}, {}",
                    quote("started_at"),
                    quote("run_id")
                ),
                &[],
            )
            .await
            .map_err(fail("reading the runs"))?;
        rows.iter()
            .map(|r| {
                let started: chrono::DateTime<chrono::Utc> = r.get(2);
                let finished: chrono::DateTime<chrono::Utc> = r.get(3);
                runs::Row {
                    run_id: r.get(0),
                    company: r.get(1),
                    status: r.get(4),
                    error: r.get(5),
                    records: r.get(6),
                    requests: r.get(7),
                    tokens: r.get(8),
                    responses_429: r.get(9),
                    burst_limit: r.get(10),
                    streams: r.get(11),
                    timeline: r.get(12),
                }
                .into_record(started.timestamp_micros(), finished.timestamp_micros())
            })
            .collect()
    }

    async fn reset_state(&mut self, stream: &str) -> Result<(), DestinationError> {
        self.client
            .execute(
                &format!(
                    "DELETE FROM {}.{} WHERE stream = $1",
                    quote(&self.state_schema),
                    quote(STATE_TABLE)
                ),
                &[&stream],
            )
            .await
            .map_err(fail("resetting state"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
