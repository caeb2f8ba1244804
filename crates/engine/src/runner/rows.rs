//! Records into rows: custom fields named, data controls applied, declared types kept, delete
//! marks added; and each stream's declared columns, checked against its controls.

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use super::plan::{RunError, SyncPlan};
use crate::catalog::{Deletes, StreamDef};
use crate::declared::{self, FieldDefinitions};
use crate::destination::columns::{DELETED, DELETED_AT, delete_marks};
use crate::schema::{Column, ColumnType, ValueRef, normalize_timestamp};
use crate::state::SyncState;
use crate::transform::RecordTransform;

/// A page's records as rows.
#[derive(Debug, Default)]
pub struct Rows {
    /// In order of first appearance, types widened over all rows.
    pub columns: Vec<Column>,
    /// Aligned with `columns`; one per key, the last occurrence winning.
    pub rows: Vec<Vec<Value>>,
    /// First key column of the records the stream's filter rejected: rows loaded with those
    /// keys before are removed.
    pub filtered_out: Vec<Value>,
}

/// Each planned stream's declared columns as it loads them (excluded columns gone, hashed ones
/// text), its data controls checked against them first: a typo in one stream's options stops
/// the run before any stream writes, while every table is as the last run left it.
pub(crate) fn declared_columns(
    plan: &SyncPlan,
    definitions: &FieldDefinitions,
    states: &SyncState,
) -> Result<HashMap<&'static str, Vec<Column>>, RunError> {
    let mut declared = HashMap::new();
    for stream in &plan.streams {
        let def = stream.def;
        let state = states.get(def.name);
        let columns = declared::stream_columns(def, definitions, state);
        let controls = &stream.controls;
        if !controls.is_empty() {
            let field_names = declared::custom_field_names(def, definitions, state);
            controls
                .check(&columns, &field_names)
                .map_err(|problem| RunError::Config(format!("streams.{}.{problem}", def.name)))?;
        }
        declared.insert(def.name, controls.declare(columns));
    }
    Ok(declared)
}

/// Transforms records into rows: custom fields named, data controls applied, delete marks
/// added.
pub fn build_rows(
    def: &StreamDef,
    transform: &RecordTransform,
    records: Vec<Map<String, Value>>,
) -> Rows {
    let mut columns: Vec<Column> = Vec::new();
    // Aligned with `columns`: the type is declared, not widened by the values.
    let mut declared: Vec<bool> = Vec::new();
    let mut misfits = 0;
    let mut index: FxHashMap<String, usize> = FxHashMap::default();
    let mut rows: Vec<Vec<Value>> = Vec::with_capacity(records.len());
    let mut by_key: FxHashMap<String, usize> = FxHashMap::default();
    let mut filtered_out = Vec::new();
    for mut record in records {
        transform.apply(&mut record);
        if !transform.controls.keeps(&record) {
            if let Some(key) = def.primary_key.first().and_then(|k| record.get(*k)) {
                filtered_out.push(key.clone());
            }
            continue;
        }
        let marks = def.deletes.map(|deletes| {
            let flag = deletes
                .flag
                .and_then(|(field, _)| record.get(field))
                .map(ValueRef::from);
            let changed_at = def
                .cursor_field
                .and_then(|cursor| record.get(cursor))
                .and_then(Value::as_str);
            deleted_marks(deletes, flag.as_ref(), changed_at)
        });
        let key: String = def
            .primary_key
            .iter()
            .map(|k| record.get(*k).map(Value::to_string).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\u{1f}");
        transform.controls.apply(&mut record);
        let mut row = vec![Value::Null; columns.len()];
        // The record's fields, then the delete marks after them.
        let fields = record
            .into_iter()
            .chain(marks.into_iter().flatten().map(|(n, v)| (n.to_owned(), v)));
        for (name, mut value) in fields {
            // Looked up by reference: a page's records share their keys, so a new column (and
            // its name's copy) is the exception.
            let position = match index.get(&name) {
                Some(&position) => position,
                None => {
                    let ty = transform.declared.get(&name).copied();
                    declared.push(ty.is_some());
                    index.insert(name.clone(), columns.len());
                    columns.push(Column {
                        name,
                        ty: ty.unwrap_or(ColumnType::Null),
                    });
                    columns.len() - 1
                }
            };
            let column = &mut columns[position];
            if !declared[position] {
                column.ty = column.ty.widen(ColumnType::of(&value));
            } else if !declared::fits(&value, column.ty) {
                // The one rule for a value that does not fit its declared type.
                value = Value::Null;
                misfits += 1;
            }
            if position >= row.len() {
                row.resize(position + 1, Value::Null);
            }
            row[position] = value;
        }
        match by_key.get(&key) {
            Some(&existing) => rows[existing] = row,
            None => {
                by_key.insert(key, rows.len());
                rows.push(row);
            }
        }
    }
    for row in &mut rows {
        row.resize(columns.len(), Value::Null);
    }
    // Delete marks keep their types when every value of the page is null.
    for mark in delete_marks() {
        if let Some(column) = columns.iter_mut().find(|c| c.name == mark.name) {
            column.ty = mark.ty;
        }
    }
    warn_of_misfits(def, misfits);
    Rows {
        columns,
        rows,
        filtered_out,
    }
}

/// The one warning for values loaded as null because they do not fit their declared type.
pub(super) fn warn_of_misfits(def: &StreamDef, misfits: usize) {
    if misfits > 0 {
        tracing::warn!(
            stream = def.name,
            values = misfits,
            "values that do not fit their column's declared type were loaded as null"
        );
    }
}

/// `_deleted` from the record's deleted flag (`flag`, the value of the field `deletes` names)
/// and `_deleted_at` from its cursor (`changed_at`, the time it changed, which for a deleted
/// record is its deletion).
pub(super) fn deleted_marks(
    deletes: Deletes,
    flag: Option<&ValueRef<'_>>,
    changed_at: Option<&str>,
) -> [(&'static str, Value); 2] {
    let deleted = deletes.flag.is_some_and(|(_, when)| {
        match flag {
            Some(ValueRef::Bool(flag)) => *flag == when,
            // v1 sometimes sends flags as 0/1.
            Some(ValueRef::Number(n)) => (n.as_i64() != Some(0)) == when,
            _ => false,
        }
    });
    let deleted_at = changed_at.filter(|_| deleted).and_then(normalize_timestamp);
    [
        (DELETED, Value::Bool(deleted)),
        (DELETED_AT, deleted_at.map_or(Value::Null, Value::from)),
    ]
}
