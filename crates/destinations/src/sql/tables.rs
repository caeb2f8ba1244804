//! Tables as the database has them: read once, then created, given new columns and widened
//! as pages bring them.

use pipedrive_engine::schema::{Column, ColumnType};
use pipedrive_engine::{Batch, DestinationError, TableRef};

use super::session::{Session, SqlValue, Statement};
use super::{SYNCED_AT, SqlDestination, quote};

impl<S: Session> SqlDestination<S> {
    /// `table` under the names the database stores.
    pub(crate) fn stored(&self, table: &TableRef) -> TableRef {
        TableRef {
            schema: S::stored_name(&table.schema),
            name: S::stored_name(&table.name),
        }
    }

    /// The columns of `table` (stored names), `None` when it does not exist.
    pub(crate) async fn columns_of(
        &mut self,
        table: &TableRef,
    ) -> Result<Option<Vec<Column>>, DestinationError> {
        if let Some(columns) = self.tables.get(table) {
            return Ok(Some(columns.clone()));
        }
        let mut statement = Statement::default();
        let text = S::sql_type(ColumnType::Text);
        statement.sql = format!(
            "SELECT CAST(column_name AS {text}), CAST(data_type AS {text}) \
             FROM information_schema.columns WHERE table_catalog = current_database() \
             AND table_schema = {} AND table_name = {} ORDER BY ordinal_position",
            statement.text::<S>(Some(&table.schema), text),
            statement.text::<S>(Some(&table.name), text),
        );
        let rows = self.session.query("reading columns", statement).await?;
        let columns: Vec<Column> = rows
            .into_iter()
            .filter_map(|row| {
                let mut values = row.into_iter().map(SqlValue::text);
                let name = values.next()??;
                let declared = values.next()??;
                Some(Column::new(&name, S::column_type(&declared)))
            })
            .collect();
        if columns.is_empty() {
            return Ok(None);
        }
        self.tables.insert(table.clone(), columns.clone());
        Ok(Some(columns))
    }

    /// Creates the table, adds new columns and widens changed ones, so that every column of
    /// `wanted` with a known type has a place. A new table gets an index on each of `indexed`
    /// where the dialect wants one. Returns the table's columns.
    pub(crate) async fn evolve(
        &mut self,
        table: &TableRef,
        wanted: &[Column],
        indexed: &[&[String]],
    ) -> Result<Vec<Column>, DestinationError> {
        let name = self.session.table_sql(table);
        let wanted = wanted.iter().filter(|c| c.ty != ColumnType::Null);
        let Some(mut existing) = self.columns_of(table).await? else {
            let mut columns: Vec<Column> = wanted.cloned().collect();
            if !columns.iter().any(|c| c.name == SYNCED_AT) {
                columns.push(Column::new(SYNCED_AT, ColumnType::Timestamp));
            }
            let definitions: Vec<String> = columns
                .iter()
                .map(|c| format!("{} {}", quote(&c.name), S::sql_type(c.ty)))
                .collect();
            let mut sql = format!(
                "CREATE SCHEMA IF NOT EXISTS {}; CREATE TABLE {name} ({});",
                self.session.schema_sql(&table.schema),
                definitions.join(", ")
            );
            // Plain (not unique) indexes keep each merge's deletes, by key and by parent, from
            // scanning the whole table; unnamed, so the database picks a free name even after
            // staging tables are renamed.
            if S::INDEXES_KEYS {
                for keys in indexed {
                    if !keys.is_empty() && keys.iter().all(|k| columns.iter().any(|c| &c.name == k))
                    {
                        let keys: Vec<String> = keys.iter().map(|k| quote(k)).collect();
                        sql.push_str(&format!(" CREATE INDEX ON {name} ({});", keys.join(", ")));
                    }
                }
            }
            self.session.execute("creating the table", &sql).await?;
            self.session.created(table, columns.len())?;
            self.tables.insert(table.clone(), columns.clone());
            return Ok(columns);
        };
        let width_before = existing.len();
        for column in wanted {
            match existing.iter_mut().find(|e| e.name == column.name) {
                None => {
                    let sql = format!(
                        "ALTER TABLE {name} ADD COLUMN {} {}",
                        quote(&column.name),
                        S::sql_type(column.ty)
                    );
                    self.session.execute("adding a column", &sql).await?;
                    existing.push(column.clone());
                }
                Some(current) => {
                    let widened = current.ty.widen(column.ty);
                    if S::sql_type(widened) != S::sql_type(current.ty) {
                        let sql = S::change_type(&name, &quote(&column.name), S::sql_type(widened));
                        self.session.execute("widening a column", &sql).await?;
                        current.ty = widened;
                    }
                }
            }
        }
        if existing.len() > width_before {
            self.session.widened(existing.len())?;
        }
        self.tables.insert(table.clone(), existing.clone());
        Ok(existing)
    }
}

/// The batch's loadable columns (a type known): the index into a row and the column under its
/// stored name. Two names stored alike are refused, since one would overwrite the other.
pub(crate) fn loaded_columns<S: Session>(
    batch: &Batch<'_>,
) -> Result<Vec<(usize, Column)>, DestinationError> {
    let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    let mut loaded = Vec::new();
    for (i, column) in batch.columns.iter().enumerate() {
        let stored = S::stored_name(&column.name);
        if let Some(other) = seen.insert(stored.clone(), &column.name) {
            return Err(DestinationError::new(format!(
                "stream {}: columns {other:?} and {:?} are both stored as {stored:?} in {}; rename one",
                batch.stream,
                column.name,
                S::PRODUCT
            )));
        }
        if column.ty != ColumnType::Null && column.name != SYNCED_AT {
            loaded.push((i, Column::new(&stored, column.ty)));
        }
    }
    Ok(loaded)
}
