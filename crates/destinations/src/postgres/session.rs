//! PostgreSQL's dialect and session for the SQL core: numbered parameters, key lists as one
//! array parameter (cast to the key column's type, so its index serves), and transactions on
//! one connection.

use std::collections::HashMap;

use async_trait::async_trait;
use pipedrive_engine::schema::ColumnType;
use pipedrive_engine::{DestinationError, TableRef};
use tokio_postgres::Client;
use tokio_postgres::types::{ToSql, Type};

use super::encode::{column_type, sql_type};
use super::{Growth, fail, session, stored_name};
use crate::sql::session::{Bound, Keys, Load, Param, Session, SqlValue, Statement};
use crate::sql::{literal, quote, quote_table};

/// One connection to PostgreSQL.
pub struct PostgresSession {
    pub(super) client: Client,
    /// The connection URL as configured, password included, for [`Session::fork`]: never
    /// printed.
    pub(super) url: String,
    /// `postgres://user@host:port/db`: never the password.
    pub(super) description: String,
    /// Rows copied into each table by this session, and the count at which it is analysed next.
    pub(super) growth: HashMap<TableRef, Growth>,
    /// Statements prepared on this connection by their text: the state row and the other
    /// per-page statements are parsed once, not at every page.
    pub(super) prepared: HashMap<String, tokio_postgres::Statement>,
}

/// Prepared statements kept per connection before the cache starts over.
const PREPARED_KEPT: usize = 256;

impl PostgresSession {
    async fn prepare(
        &mut self,
        context: &str,
        sql: &str,
    ) -> Result<tokio_postgres::Statement, DestinationError> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await.map_err(fail(context))?;
        if self.prepared.len() >= PREPARED_KEPT {
            self.prepared.clear();
        }
        self.prepared.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

fn parameters<'s>(statement: &'s Statement<'_>) -> Vec<&'s (dyn ToSql + Sync)> {
    statement
        .bound
        .iter()
        .map(|bound| match bound {
            Bound::Param(Param::Text(text)) => text as &(dyn ToSql + Sync),
            Bound::Param(Param::Int(n)) => n,
            Bound::Keys(Keys::Int(ids)) => ids,
            Bound::Keys(Keys::Text(texts)) => texts,
        })
        .collect()
}

fn read_row(row: &tokio_postgres::Row) -> Result<Vec<SqlValue>, DestinationError> {
    (0..row.len())
        .map(|i| {
            let ty = row.columns()[i].type_();
            let value = if *ty == Type::BOOL {
                row.try_get::<_, Option<bool>>(i)
                    .map(|v| v.map(SqlValue::Bool))
            } else if *ty == Type::INT8 {
                row.try_get::<_, Option<i64>>(i)
                    .map(|v| v.map(SqlValue::Int))
            } else if *ty == Type::INT4 {
                row.try_get::<_, Option<i32>>(i)
                    .map(|v| v.map(|n| SqlValue::Int(n.into())))
            } else {
                row.try_get::<_, Option<String>>(i)
                    .map(|v| v.map(SqlValue::Text))
            };
            value
                .map(|v| v.unwrap_or(SqlValue::Null))
                .map_err(fail("reading a value back"))
        })
        .collect()
}

#[async_trait]
impl Session for PostgresSession {
    const PRODUCT: &'static str = "PostgreSQL";
    const INDEXES_KEYS: bool = true;

    fn sql_type(ty: ColumnType) -> &'static str {
        sql_type(ty)
    }

    fn column_type(declared: &str) -> ColumnType {
        column_type(declared)
    }

    fn stored_name(name: &str) -> String {
        stored_name(name)
    }

    fn placeholder(number: usize, param: Param<'_>, sql_type: &str) -> String {
        match param {
            Param::Int(_) => format!("${number}::bigint"),
            Param::Text(_) if sql_type == "text" => format!("${number}::text"),
            Param::Text(_) => format!("${number}::text::{sql_type}"),
        }
    }

    fn one_of(expr: &str, number: usize, _list: usize, keys: &Keys, sql_type: &str) -> String {
        match keys {
            Keys::Int(_) => format!("{expr} = ANY(${number}::bigint[])"),
            Keys::Text(_) => format!("{expr} = ANY(${number}::text[]::{sql_type}[])"),
        }
    }

    fn change_type(table: &str, column: &str, sql_type: &str) -> String {
        format!(
            "ALTER TABLE {table} ALTER COLUMN {column} TYPE {sql_type} USING {column}::{sql_type}"
        )
    }

    fn convert(expr: &str, sql_type: &str) -> String {
        format!("{expr}::text::{sql_type}")
    }

    fn epoch_us(expr: &str) -> String {
        format!("(extract(epoch FROM {expr}) * 1000000)::bigint")
    }

    /// A view over a SQL function with a text body: PostgreSQL binds a plain view to the
    /// tables it reads and would then refuse to drop them (a full refresh swaps tables) or to
    /// widen their columns, while a function is re-planned per call (and inlined) without
    /// recording any dependency.
    fn create_view(
        &self,
        schema: &str,
        view: &str,
        select: &str,
        returns: &str,
        comment: &str,
    ) -> String {
        let schema = quote(schema);
        let function = format!("{schema}.{}()", quote(&format!("_pds_model_{view}")));
        let tag = dollar_tag(select);
        format!(
            "CREATE OR REPLACE FUNCTION {function} RETURNS TABLE ({returns}) LANGUAGE sql STABLE AS {tag}\n{select}\n{tag};\n\
             CREATE OR REPLACE VIEW {schema}.{view} AS SELECT * FROM {function};\n\
             COMMENT ON VIEW {schema}.{view} IS {};\n\
             COMMENT ON FUNCTION {function} IS {};\n",
            literal(comment),
            literal(&format!(
                "The body of the view {view}: a function, so syncs can still replace and widen the tables it reads (pipedrive-sync models)."
            )),
            view = quote(view),
        )
    }

    fn schema_sql(&self, schema: &str) -> String {
        quote(schema)
    }

    fn table_sql(&self, table: &TableRef) -> String {
        quote_table(&table.schema, &table.name)
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    async fn execute(&mut self, context: &str, sql: &str) -> Result<(), DestinationError> {
        self.client.batch_execute(sql).await.map_err(fail(context))
    }

    async fn run(
        &mut self,
        context: &str,
        statement: Statement<'_>,
    ) -> Result<u64, DestinationError> {
        let prepared = self.prepare(context, &statement.sql).await?;
        self.client
            .execute(&prepared, &parameters(&statement))
            .await
            .map_err(fail(context))
    }

    async fn query(
        &mut self,
        context: &str,
        statement: Statement<'_>,
    ) -> Result<Vec<Vec<SqlValue>>, DestinationError> {
        let prepared = self.prepare(context, &statement.sql).await?;
        let rows = self
            .client
            .query(&prepared, &parameters(&statement))
            .await
            .map_err(fail(context))?;
        rows.iter().map(read_row).collect()
    }

    async fn begin(&mut self) -> Result<(), DestinationError> {
        self.execute("starting a transaction", "BEGIN").await
    }

    async fn commit(&mut self) -> Result<(), DestinationError> {
        self.execute("committing", "COMMIT").await
    }

    async fn rollback(&mut self) {
        if let Err(error) = self.client.batch_execute("ROLLBACK").await {
            tracing::debug!("PostgreSQL: rolling back: {error}");
        }
    }

    /// A second connection: the server merges one page while the other's rows are encoded
    /// and sent. It takes no writer lock (the first connection holds it for both).
    async fn fork(&mut self) -> Result<Option<Self>, DestinationError> {
        let (client, _) = session(&self.url).await?;
        Ok(Some(PostgresSession {
            client,
            url: self.url.clone(),
            description: self.description.clone(),
            growth: HashMap::new(),
            prepared: HashMap::new(),
        }))
    }

    async fn merge(&mut self, load: &Load<'_>) -> Result<(), DestinationError> {
        self.copy_in(load).await
    }
}

/// A dollar-quote tag the body does not contain, so no identifier in it can end the body early.
fn dollar_tag(body: &str) -> String {
    let mut tag = "$pds$".to_owned();
    while body.contains(&tag) {
        tag.insert(tag.len() - 1, 'x');
    }
    tag
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_dollar_tag_never_occurs_in_the_body() {
        let body = "SELECT 1 FROM \"$pds$\".\"$pdsx$\"";
        let tag = super::dollar_tag(body);
        assert!(!body.contains(&tag), "{tag}");
        assert_eq!(super::dollar_tag("SELECT 1"), "$pds$");
    }
}
