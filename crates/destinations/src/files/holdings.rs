//! What a table's files show a reader, kept only as far as a run needs it to write removals.
//!
//! A batch that replaces the children of some parents must write a removal for each child a
//! reader sees now that the batch does not have again. Reading that back means holding every
//! row's key, which for a first sync of a large company is most of the run's memory. A table
//! that had no files when this run first wrote it needs less: only the parents this run has
//! replaced already can have children to remove, so it keeps them (integer ids in a compressed
//! bitmap, other keys hashed) until one comes back.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use pipedrive_engine::schema::{Column, ColumnType};
use pipedrive_engine::{Batch, DestinationError};
use roaring::RoaringTreemap;
use serde_json::Value;

use super::read::table_files;
use super::{Files, REMOVED, key_text, read_table, record_batch};

/// Per table, whether this run has followed every row written to it since it started.
pub(super) enum Followed {
    /// The table had no files when this run first wrote it, and every batch since replaced
    /// the children of the parents it named: no other parent has rows to remove.
    Fresh(Parents),
    /// The table holds rows this run has not followed: read back when a replace needs them.
    Stored,
}

/// Parents whose children a run has replaced. Parent ids are integers almost always, and
/// nearly dense: a bitmap holds them in a few bytes each, where a hash set of a large
/// company's parents took megabytes.
#[derive(Default)]
pub(super) struct Parents {
    ids: RoaringTreemap,
    /// Parents whose key is not a non-negative integer, hashed.
    other: HashSet<u64>,
}

impl Parents {
    fn contains(&self, parent: &Value) -> bool {
        match integer_id(parent) {
            Some(id) => self.ids.contains(id),
            None => self.other.contains(&parent_hash(parent)),
        }
    }

    fn insert(&mut self, parent: &Value) {
        match integer_id(parent) {
            Some(id) => {
                self.ids.insert(id);
            }
            None => {
                self.other.insert(parent_hash(parent));
            }
        }
    }
}

/// A parent's key as a non-negative integer, from a number or from text spelling one as a
/// number would (parents are matched by their key's text, so `7` and `"7"` are one parent).
fn integer_id(parent: &Value) -> Option<u64> {
    match parent {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.parse().ok().filter(|id: &u64| id.to_string() == *text),
        _ => None,
    }
}

/// The rows a table's files show a reader now (the latest row of each key, unless it is
/// marked removed): each key's values and, when the table's rows hang off a parent, the parent.
#[derive(Default)]
pub(super) struct Holdings {
    rows: HashMap<String, Held>,
}

struct Held {
    key: Vec<Value>,
    parent: Option<String>,
}

/// A row's key, as text: its key columns' values joined.
pub(super) fn row_key<'a>(values: impl Iterator<Item = Option<&'a Value>>) -> String {
    values
        .map(|v| v.map(key_text).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

fn parent_hash(value: &Value) -> u64 {
    let mut hasher = DefaultHasher::new();
    key_text(value).hash(&mut hasher);
    hasher.finish()
}

impl Files {
    /// Forgets what this run knew of a table whose directory was swapped or dropped.
    pub(super) fn forget(&mut self, table: &str) {
        self.holdings.remove(table);
        self.followed.remove(table);
    }

    /// Rows went into `table` that this run did not follow: a later replace reads them back.
    pub(super) fn lose_track(&mut self, table: &str) {
        if let Some(followed) = self.followed.get_mut(table) {
            *followed = Followed::Stored;
        }
    }

    /// Writes one batch, preceded by the removals its replace calls for, and keeps what the
    /// run knows of the table up to date.
    pub(super) fn write_with_removals(
        &mut self,
        batch: &Batch<'_>,
    ) -> Result<(), DestinationError> {
        let table = batch.table.name.as_str();
        if self.holdings.contains_key(table) {
            return self.write_removals_then(batch);
        }
        if !self.followed.contains_key(table) {
            let followed = if table_files(&self.dir, table)?.is_empty() {
                Followed::Fresh(Parents::default())
            } else {
                Followed::Stored
            };
            self.followed.insert(table.to_owned(), followed);
        }
        let followed = self.followed.get_mut(table).expect("inserted above");
        match (batch.replace_parents, followed) {
            (Some((column, parents)), Followed::Fresh(replaced))
                if batch.primary_key != [column] =>
            {
                if parents.iter().any(|parent| replaced.contains(parent)) {
                    // A parent came back: its earlier rows are read back to be removed.
                    return self.write_removals_then(batch);
                }
                for parent in parents {
                    replaced.insert(parent);
                }
                self.write_batch(batch)
            }
            (Some(_), _) => self.write_removals_then(batch),
            (None, followed) => {
                *followed = Followed::Stored;
                self.write_batch(batch)
            }
        }
    }

    /// Writes the removals a replacing batch calls for, the batch, and holds its rows.
    fn write_removals_then(&mut self, batch: &Batch<'_>) -> Result<(), DestinationError> {
        if let Some((column, parents)) = batch.replace_parents {
            self.write_removals(batch, column, parents)?;
        }
        self.write_batch(batch)?;
        self.hold(batch);
        Ok(())
    }

    /// What `table`'s files hold now, read from them once per run.
    fn holdings(
        &mut self,
        table: &str,
        primary_key: &[&str],
        parent_column: Option<&str>,
    ) -> Result<&mut Holdings, DestinationError> {
        if !self.holdings.contains_key(table) {
            let mut holdings = Holdings::default();
            for row in read_table(&self.dir, table)? {
                let key = row_key(primary_key.iter().map(|k| row.get(*k)));
                if row.get(REMOVED) == Some(&Value::Bool(true)) {
                    holdings.rows.remove(&key);
                    continue;
                }
                let held = Held {
                    key: primary_key
                        .iter()
                        .map(|k| row.get(*k).cloned().unwrap_or(Value::Null))
                        .collect(),
                    parent: parent_column.and_then(|c| row.get(c)).map(key_text),
                };
                holdings.rows.insert(key, held);
            }
            self.holdings.insert(table.to_owned(), holdings);
        }
        Ok(self.holdings.get_mut(table).expect("inserted above"))
    }

    /// Records a written batch's rows in the table's holdings, if they are kept this run.
    fn hold(&mut self, batch: &Batch<'_>) {
        let Some(holdings) = self.holdings.get_mut(&batch.table.name) else {
            return;
        };
        let position = |name: &str| batch.columns.iter().position(|c| c.name == name);
        let keys: Vec<Option<usize>> = batch.primary_key.iter().map(|k| position(k)).collect();
        let parent = batch
            .replace_parents
            .map(|(column, _)| column)
            .filter(|column| !batch.primary_key.contains(column))
            .and_then(position);
        for row in 0..batch.len() {
            let key: Vec<Value> = keys
                .iter()
                .map(|i| i.map_or(Value::Null, |i| batch.value(row, i)))
                .collect();
            holdings.rows.insert(
                row_key(key.iter().map(Some)),
                Held {
                    key,
                    parent: parent.map(|i| key_text(&batch.value(row, i))),
                },
            );
        }
    }

    /// Before a batch that replaces rows (the children of `parents` in `column`, or, when
    /// `column` is the key, records the filter now rejects), writes a removal for each row a
    /// reader sees now that the batch does not have again.
    fn write_removals(
        &mut self,
        batch: &Batch<'_>,
        column: &str,
        parents: &[Value],
    ) -> Result<(), DestinationError> {
        let by_key = batch.primary_key == [column];
        let parent_column = (!by_key).then_some(column);
        let position = |name: &str| batch.columns.iter().position(|c| c.name == name);
        let keys: Vec<Option<usize>> = batch.primary_key.iter().map(|k| position(k)).collect();
        let rewritten: std::collections::HashSet<String> = (0..batch.len())
            .map(|row| {
                let key: Vec<Option<Value>> = keys
                    .iter()
                    .map(|i| i.map(|i| batch.value(row, i)))
                    .collect();
                row_key(key.iter().map(Option::as_ref))
            })
            .collect();
        let parents: std::collections::HashSet<String> = parents.iter().map(key_text).collect();
        let holdings = self.holdings(&batch.table.name, batch.primary_key, parent_column)?;
        let mut gone: Vec<String> = holdings
            .rows
            .iter()
            .filter(|(key, held)| {
                let replaced = if by_key {
                    parents.contains(*key)
                } else {
                    held.parent.as_ref().is_some_and(|p| parents.contains(p))
                };
                replaced && !rewritten.contains(*key)
            })
            .map(|(key, _)| key.clone())
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        gone.sort_unstable();
        let removed: Vec<Held> = gone
            .iter()
            .filter_map(|key| holdings.rows.remove(key))
            .collect();
        let mut columns: Vec<Column> = batch
            .primary_key
            .iter()
            .map(|k| {
                position(k).map_or_else(
                    || Column::new(k, ColumnType::Text),
                    |i| batch.columns[i].clone(),
                )
            })
            .collect();
        columns.push(Column::new(REMOVED, ColumnType::Boolean));
        let rows: Vec<Vec<Value>> = removed
            .into_iter()
            .map(|held| {
                let mut row = held.key;
                row.push(Value::Bool(true));
                row
            })
            .collect();
        let records = record_batch(&columns, &rows)?;
        self.write_batch(&Batch {
            columns: &columns,
            records: &records,
            replace_parents: None,
            history: false,
            ..*batch
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Parents;

    /// Integer ids, text keys (lead ids are UUIDs) and what is neither are each found again,
    /// and nothing else is.
    #[test]
    fn parents_are_found_again_whatever_their_key() {
        let mut parents = Parents::default();
        let kept = [
            json!(7),
            json!(u64::MAX),
            json!("b2c0-uuid"),
            json!(-3),
            json!(1.5),
        ];
        for parent in &kept {
            parents.insert(parent);
        }
        for parent in &kept {
            assert!(parents.contains(parent), "{parent}");
        }
        // Matched by their key's text, as removals are.
        assert!(parents.contains(&json!("7")));
        for other in [json!(8), json!("07"), json!("b2c0"), json!(3), json!(null)] {
            assert!(!parents.contains(&other), "{other}");
        }
    }
}
