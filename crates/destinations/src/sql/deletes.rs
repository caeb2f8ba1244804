//! Rows that go away: children replaced as a whole when their parent is read again, and rows
//! Pipedrive no longer lists, which are kept and marked deleted.

use pipedrive_engine::destination::columns::{DELETED, DELETED_AT, delete_marks};
use pipedrive_engine::schema::{ColumnType, to_text};
use pipedrive_engine::{DestinationError, Missing, Present, TableRef};
use serde_json::Value;

use super::session::{Keys, Session, Statement};
use super::{SqlDestination, quote};

impl<S: Session> SqlDestination<S> {
    /// Deletes the rows of `table` (stored names) whose `column` is one of `parents` (their
    /// children are re-read as a whole). Integer ids compare as integers within the page's
    /// range, so an index or the row groups' bounds serve; anything else compares as text.
    pub(crate) async fn delete_children(
        &mut self,
        table: &TableRef,
        column: &str,
        parents: &[Value],
    ) -> Result<(), DestinationError> {
        let column = S::stored_name(column);
        let column_type = self
            .columns_of(table)
            .await?
            .and_then(|columns| columns.into_iter().find(|c| c.name == column))
            .map(|c| c.ty);
        let Some(column_type) = column_type.filter(|_| !parents.is_empty()) else {
            return Ok(());
        };
        let name = self.session.table_sql(table);
        let quoted = quote(&column);
        let integers: Option<Vec<i64>> = parents.iter().map(Value::as_i64).collect();
        let mut statement = Statement::default();
        statement.sql = match integers {
            Some(ids) if column_type == ColumnType::BigInt => {
                if !self.session.may_hold(table, &column, &ids) {
                    return Ok(());
                }
                let (low, high) = (
                    ids.iter().min().copied().unwrap_or_default(),
                    ids.iter().max().copied().unwrap_or_default(),
                );
                let bigint = S::sql_type(ColumnType::BigInt);
                format!(
                    "DELETE FROM {name} WHERE {quoted} BETWEEN {low} AND {high} AND {}",
                    statement.one_of::<S>(&quoted, Keys::Int(ids), bigint)
                )
            }
            _ => {
                let text = S::sql_type(ColumnType::Text);
                let ids = Keys::Text(parents.iter().filter_map(to_text).collect());
                format!(
                    "DELETE FROM {name} WHERE {}",
                    statement.one_of::<S>(&format!("CAST({quoted} AS {text})"), ids, text)
                )
            }
        };
        self.session
            .run("deleting replaced children", statement)
            .await?;
        Ok(())
    }

    /// Marks the rows Pipedrive no longer lists deleted, or carries them into a reload.
    /// Returns how many rows were marked or carried.
    pub(crate) async fn keep_missing(
        &mut self,
        missing: &Missing<'_>,
    ) -> Result<u64, DestinationError> {
        let table = self.stored(missing.table);
        let key_name = S::stored_name(missing.key);
        let target_columns = self
            .columns_of(&table)
            .await?
            .filter(|columns| columns.iter().any(|c| c.name == key_name));
        let Some(target_columns) = target_columns else {
            // No table, or one that never had a row: nothing to keep.
            return Ok(0);
        };
        let text = S::sql_type(ColumnType::Text);
        let timestamp = S::sql_type(ColumnType::Timestamp);
        let key = quote(&key_name);
        let (deleted, deleted_at) = (quote(DELETED), quote(DELETED_AT));
        let marks = delete_marks();
        let target = self.session.table_sql(&table);
        let mut statement = Statement::default();
        match missing.present {
            Present::Keys(keys) => {
                self.evolve(&table, &marks, &[]).await?;
                let keys = Keys::Text(keys.iter().filter_map(to_text).collect());
                statement.sql = format!(
                    "UPDATE {target} SET {deleted} = true, {deleted_at} = {} \
                     WHERE coalesce({deleted}, false) = false AND NOT ({})",
                    statement.text::<S>(Some(missing.deleted_at), timestamp),
                    statement.one_of::<S>(&format!("CAST({key} AS {text})"), keys, text),
                );
                self.session.run("marking deleted rows", statement).await
            }
            Present::Reloaded(staging) => {
                // The reload gets every column the old rows have, widened where they differ.
                let staging = self.stored(staging);
                let mut wanted = target_columns.clone();
                wanted.extend(marks);
                let staging_columns = self.evolve(&staging, &wanted, &[]).await?;
                let has_deleted_at = target_columns.iter().any(|c| c.name == DELETED_AT);
                let mut names = Vec::new();
                let mut values = Vec::new();
                for column in &target_columns {
                    if column.name == DELETED || column.name == DELETED_AT {
                        continue;
                    }
                    let quoted = quote(&column.name);
                    let staging_type = staging_columns
                        .iter()
                        .find(|c| c.name == column.name)
                        .map_or(text, |c| S::sql_type(c.ty));
                    values.push(if S::sql_type(column.ty) == staging_type {
                        format!("t.{quoted}")
                    } else {
                        S::convert(&format!("t.{quoted}"), staging_type)
                    });
                    names.push(quoted);
                }
                let now = statement.text::<S>(Some(missing.deleted_at), timestamp);
                names.push(deleted);
                values.push("true".to_owned());
                names.push(deleted_at.clone());
                values.push(if has_deleted_at {
                    format!("coalesce(t.{deleted_at}, {now})")
                } else {
                    now
                });
                statement.sql = format!(
                    "INSERT INTO {staged} ({}) SELECT {} FROM {target} AS t \
                     WHERE NOT EXISTS (SELECT 1 FROM {staged} AS s \
                     WHERE CAST(s.{key} AS {text}) = CAST(t.{key} AS {text}))",
                    names.join(", "),
                    values.join(", "),
                    staged = self.session.table_sql(&staging),
                );
                let copied = self.session.run("keeping deleted rows", statement).await?;
                // Its keys are no longer known to the session.
                self.session.forget(&staging);
                Ok(copied)
            }
        }
    }
}
