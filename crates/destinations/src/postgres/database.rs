//! Connecting to PostgreSQL: TLS, the writer lock, and the views installed in it.

use std::collections::HashMap;
use std::time::Duration;

use pipedrive_engine::DestinationError;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config};

use super::names::stored_name;
use super::session::PostgresSession;
use super::tls;
use crate::sql::{SqlDestination, models};

/// A PostgreSQL database as a destination.
pub type Postgres = SqlDestination<PostgresSession>;

/// How long one connection attempt may take when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A table filled faster than autovacuum analyses it keeps the planner's first idea of it
/// (empty), and the merge's delete then sorts the whole table instead of using the key index:
/// at `large` that made each page cost more than the one before. Analysing at each doubling
/// keeps the statistics current for a logarithmic number of `ANALYZE`s.
#[derive(Clone, Copy, Debug)]
pub(super) struct Growth {
    pub(super) copied: u64,
    pub(super) analyze_at: u64,
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

pub(super) fn fail(context: &str) -> impl Fn(tokio_postgres::Error) -> DestinationError + '_ {
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
    let session = PostgresSession {
        client,
        url: url.to_owned(),
        description,
        growth: HashMap::new(),
        prepared: HashMap::new(),
    };
    SqlDestination::new(session, schema_for_state).await
}

/// One connection to `url`, its session set up.
pub(super) async fn session(url: &str) -> Result<(Client, Config), DestinationError> {
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

impl Postgres {
    /// Releases the writer lock now rather than when the server notices the closed connection.
    pub async fn close(self) -> Result<(), DestinationError> {
        self.session
            .client
            .batch_execute("SELECT pg_advisory_unlock_all()")
            .await
            .map_err(fail("releasing the writer lock"))
    }
}

/// Installs the analytics views in PostgreSQL. Connecting takes the writer lock of
/// `state_schema`, so views are not replaced under a running sync.
pub async fn install_models(
    url: &str,
    state_schema: &str,
    inputs: &models::Inputs,
) -> Result<Vec<models::Outcome>, DestinationError> {
    let mut db = connect(url, state_schema).await?;
    let installed = models::install(&mut db, inputs).await;
    db.close().await?;
    installed
}
