//! History (SCD2) rows: one row per version of a record, valid from `_valid_from` until the next
//! version's `_valid_from` (`_valid_to`), with exactly one `_is_current` row per key.
//!
//! A version is what a sync observed, or, for streams with a change log (deals and their flow),
//! a state rebuilt from the logged changes between two syncs: the newest record with the
//! changes after each instant undone. Pipedrive logs times in whole seconds, so changes inside
//! one second form one version.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use crate::catalog::{ChangeLog, StreamDef};
use crate::destination::columns::{IS_CURRENT, VALID_FROM, VALID_TO};
use crate::schema::normalize_timestamp;
use crate::schema::{Column, ColumnType, to_text};

/// What a stream's history rows are built from, beside its rows.
pub struct VersionInput<'a> {
    pub def: &'static StreamDef,
    pub columns: &'a [Column],
    pub rows: &'a [Vec<Value>],
    /// Change-log records of these rows (empty without a change log).
    pub changes: &'a [Map<String, Value>],
    /// The change log's column holding the changed record's key.
    pub change_key: Option<&'static str>,
    /// Custom field key → column, so a logged custom-field change finds its column.
    pub custom_columns: &'a BTreeMap<String, String>,
    /// Changes at or before this instant are already in the history table.
    pub since: Option<&'a str>,
    /// `_valid_from` of a row without a cursor value.
    pub observed_at: &'a str,
}

/// The history table's columns and rows for one page: the page's columns plus the three
/// validity columns, versions of one key ordered oldest first.
pub fn versions(input: &VersionInput<'_>) -> (Vec<Column>, Vec<Vec<Value>>) {
    let def = input.def;
    let position = |name: &str| input.columns.iter().position(|c| c.name == name);
    let key = def.primary_key.first().and_then(|k| position(k));
    let cursor = def.version_field().and_then(position);
    let log = def.change_log;

    let mut changes_by_key: HashMap<String, Vec<&Map<String, Value>>> = HashMap::new();
    if let (Some(log), Some(change_key)) = (log, input.change_key) {
        for change in input.changes {
            let after_since = change
                .get(log.time)
                .and_then(Value::as_str)
                .and_then(normalize_timestamp)
                .is_some_and(|t| input.since.is_none_or(|s| t.as_str() > s));
            if let (true, Some(parent)) = (after_since, change.get(change_key)) {
                changes_by_key
                    .entry(to_text(parent).unwrap_or_default())
                    .or_default()
                    .push(change);
            }
        }
    }

    let mut out_columns = input.columns.to_vec();
    out_columns.extend([
        Column::new(VALID_FROM, ColumnType::Timestamp),
        Column::new(VALID_TO, ColumnType::Timestamp),
        Column::new(IS_CURRENT, ColumnType::Boolean),
    ]);
    let mut out_rows = Vec::new();
    for row in input.rows {
        let observed = cursor
            .and_then(|c| row[c].as_str())
            .and_then(normalize_timestamp)
            .unwrap_or_else(|| input.observed_at.to_owned());
        let changes = key
            .and_then(|k| changes_by_key.get(&to_text(&row[k]).unwrap_or_default()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut chain = match log {
            Some(log) if !changes.is_empty() => rebuild(log, input, row, changes, cursor),
            _ => Vec::new(),
        };
        if chain.last().is_none_or(|(from, _)| *from < observed) {
            chain.push((observed, row.clone()));
        }
        // One version per instant, the latest state of it.
        chain.dedup_by(|later, earlier| {
            if later.0 == earlier.0 {
                std::mem::swap(later, earlier);
                true
            } else {
                false
            }
        });
        let last = chain.len() - 1;
        for (i, (from, mut values)) in chain.iter().cloned().enumerate() {
            let to = chain.get(i + 1).map(|(next, _)| Value::from(next.as_str()));
            values.push(Value::from(from));
            values.push(to.unwrap_or(Value::Null));
            values.push(Value::Bool(i == last));
            out_rows.push(values);
        }
    }
    (out_columns, out_rows)
}

/// The versions of one record rebuilt from its changes: oldest first, each with its instant.
fn rebuild(
    log: ChangeLog,
    input: &VersionInput<'_>,
    row: &[Value],
    changes: &[&Map<String, Value>],
    cursor: Option<usize>,
) -> Vec<(String, Vec<Value>)> {
    let column_of = |field: &str| -> Option<usize> {
        let renamed = log
            .renamed
            .iter()
            .find(|(from, _)| *from == field)
            .map(|(_, to)| *to);
        let name = renamed
            .or_else(|| input.custom_columns.get(field).map(String::as_str))
            .unwrap_or(field);
        input.columns.iter().position(|c| c.name == name)
    };
    let mut by_time: BTreeMap<String, Vec<&Map<String, Value>>> = BTreeMap::new();
    for change in changes {
        if let Some(time) = change
            .get(log.time)
            .and_then(Value::as_str)
            .and_then(normalize_timestamp)
        {
            by_time.entry(time).or_default().push(change);
        }
    }
    // Walk back from the newest state, undoing each instant's changes.
    let mut state = row.to_vec();
    let mut chain = Vec::new();
    for (time, changes) in by_time.iter().rev() {
        let mut version = state.clone();
        if let Some(c) = cursor {
            version[c] = Value::from(time.as_str());
        }
        chain.push((time.clone(), version));
        for change in changes {
            let Some(field) = change.get(log.field).and_then(Value::as_str) else {
                continue;
            };
            if let Some(column) = column_of(field) {
                let old = change.get(log.old_value).unwrap_or(&Value::Null);
                state[column] = coerce(old, input.columns[column].ty);
            }
        }
    }
    // The state before the first logged change, from the record's creation, unless an earlier
    // sync already holds it.
    if input.since.is_none()
        && let Some(created) = input
            .columns
            .iter()
            .position(|c| c.name == log.created)
            .and_then(|c| state[c].as_str())
            .and_then(normalize_timestamp)
        && by_time.keys().next().is_some_and(|first| created < *first)
    {
        if let Some(c) = cursor {
            state[c] = Value::from(created.as_str());
        }
        chain.push((created, state));
    }
    chain.reverse();
    chain
}

/// A logged value (text, as change logs keep them) in the column's type. A monetary value is
/// logged with its currency (`"32593 SEK"`): its number is the column's value. A value that
/// still does not fit the column is null, the one rule for values that do not fit their type
/// (see [`crate::declared::fits`]), rather than a write the destination refuses.
fn coerce(old: &Value, ty: ColumnType) -> Value {
    let value = coerce_text(old, ty);
    if crate::declared::fits(&value, ty) {
        value
    } else {
        tracing::warn!(column_type = ?ty, "a logged value that does not fit its column is loaded as null");
        Value::Null
    }
}

fn coerce_text(old: &Value, ty: ColumnType) -> Value {
    let Some(text) = old.as_str() else {
        return old.clone();
    };
    let number = |t: &str| -> Option<Value> {
        t.parse::<i64>().map(Value::from).ok().or_else(|| {
            t.parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
        })
    };
    let coerced = match ty {
        ColumnType::BigInt | ColumnType::Double => number(text).or_else(|| {
            let (amount, currency) = text.split_once(' ')?;
            let is_currency =
                currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase());
            is_currency.then(|| number(amount)).flatten()
        }),
        ColumnType::Boolean => match text {
            "true" | "1" => Some(Value::Bool(true)),
            "false" | "0" | "" => Some(Value::Bool(false)),
            _ => None,
        },
        // Arrays (label ids) are logged comma-separated.
        ColumnType::Json if text.is_empty() => Some(Value::Array(Vec::new())),
        ColumnType::Json => Some(Value::Array(
            text.split(',')
                .map(|part| number(part.trim()).unwrap_or_else(|| Value::from(part.trim())))
                .collect(),
        )),
        _ => None,
    };
    coerced.unwrap_or_else(|| Value::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;
    use serde_json::json;

    #[test]
    fn logged_values_take_their_column_type_or_null() {
        assert_eq!(
            coerce(&json!("32593 SEK"), ColumnType::BigInt),
            json!(32593)
        );
        assert_eq!(coerce(&json!("12.5 EUR"), ColumnType::Double), json!(12.5));
        assert_eq!(coerce(&json!("12.5"), ColumnType::BigInt), Value::Null);
        assert_eq!(coerce(&json!("n/a"), ColumnType::Double), Value::Null);
        assert_eq!(coerce(&json!("10 apples"), ColumnType::BigInt), Value::Null);
        assert_eq!(
            coerce(&json!("32593 SEK"), ColumnType::Text),
            json!("32593 SEK")
        );
        assert_eq!(coerce(&json!("1,2"), ColumnType::Json), json!([1, 2]));
    }

    #[test]
    fn changes_between_syncs_rebuild_one_version_per_instant() {
        let def = catalog::find("deals").unwrap();
        let columns = [
            Column::new("id", ColumnType::BigInt),
            Column::new("stage_id", ColumnType::BigInt),
            Column::new("value", ColumnType::Double),
            Column::new("label_ids", ColumnType::Json),
            Column::new("update_time", ColumnType::Timestamp),
            Column::new("add_time", ColumnType::Timestamp),
        ];
        let rows = [vec![
            json!(7),
            json!(4),
            json!(9.5),
            json!([1, 2]),
            json!("2026-11-02T10:03:00Z"),
            json!("2026-10-01T00:00:00Z"),
        ]];
        let change = |field: &str, old: &str, time: &str| {
            json!({"deal_id": 7, "field_key": field, "old_value": old, "log_time": time})
                .as_object()
                .cloned()
                .unwrap()
        };
        let changes = [
            change("stage_id", "3", "2026-11-02 10:03:00"),
            change("value", "1.5", "2026-11-02 10:03:00"),
            change("stage_id", "2", "2026-11-02 10:02:00"),
            change("label", "1", "2026-11-02 10:01:00"),
            // Already in the history table from the previous sync.
            change("stage_id", "1", "2026-11-01 00:00:00"),
        ];
        let custom = BTreeMap::new();
        let (out_columns, out) = versions(&VersionInput {
            def,
            columns: &columns,
            rows: &rows,
            changes: &changes,
            change_key: Some("deal_id"),
            custom_columns: &custom,
            since: Some("2026-11-01T00:00:00Z"),
            observed_at: "2026-11-03T00:00:00Z",
        });
        assert_eq!(out_columns.len(), columns.len() + 3);
        let picked: Vec<(Value, Value, Value, Value, Value)> = out
            .iter()
            .map(|r| {
                (
                    r[1].clone(),
                    r[2].clone(),
                    r[3].clone(),
                    r[6].clone(),
                    r[8].clone(),
                )
            })
            .collect();
        assert_eq!(
            picked,
            [
                (
                    json!(2),
                    json!(1.5),
                    json!([1, 2]),
                    json!("2026-11-02T10:01:00Z"),
                    json!(false)
                ),
                (
                    json!(3),
                    json!(1.5),
                    json!([1, 2]),
                    json!("2026-11-02T10:02:00Z"),
                    json!(false)
                ),
                (
                    json!(4),
                    json!(9.5),
                    json!([1, 2]),
                    json!("2026-11-02T10:03:00Z"),
                    json!(true)
                ),
            ]
        );
        // Each version ends where the next begins.
        assert_eq!(out[0][7], out[1][6]);
        assert_eq!(out[1][7], out[2][6]);
        assert_eq!(out[2][7], Value::Null);
    }

    #[test]
    fn without_changes_a_row_is_one_current_version_from_its_cursor() {
        let def = catalog::find("persons").unwrap();
        let columns = [
            Column::new("id", ColumnType::BigInt),
            Column::new("update_time", ColumnType::Timestamp),
        ];
        let rows = [vec![json!(1), json!("2026-11-02 10:00:00")]];
        let (_, out) = versions(&VersionInput {
            def,
            columns: &columns,
            rows: &rows,
            changes: &[],
            change_key: None,
            custom_columns: &BTreeMap::new(),
            since: None,
            observed_at: "2026-11-03T00:00:00Z",
        });
        assert_eq!(out.len(), 1);
        assert_eq!(out[0][2], json!("2026-11-02T10:00:00Z"));
        assert_eq!(out[0][4], json!(true));
    }
}
