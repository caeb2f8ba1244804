//! Reading a directory back: a data file's rows as JSON objects, a table's files in write
//! order, the columns a file holds, and a table's keys.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType,
};
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pipedrive_engine::DestinationError;
use pipedrive_engine::schema::{Column, ColumnType};
use serde_json::{Map, Value};

use super::{io_fail, key_text, rfc3339};
use crate::arrow_rows::{SYNCED_AT, TYPE_METADATA};

/// Every row of one data file as JSON objects: dates as `YYYY-MM-DD`, timestamps as RFC 3339
/// UTC, JSON columns parsed back. For tests and tools that inspect a directory.
pub fn read_file(path: &Path) -> Result<Vec<Map<String, Value>>, DestinationError> {
    let name = path.to_string_lossy();
    let file = File::open(path).map_err(io_fail(format!("opening {name}")))?;
    if name.ends_with(".jsonl.gz") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .map_err(io_fail(format!("reading {name}")))?;
        return text
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .map_err(|e| DestinationError::new(format!("{name}: {e}")))
            })
            .collect();
    }
    let fail = |e: &dyn std::fmt::Display| DestinationError::new(format!("reading {name}: {e}"));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| fail(&e))?;
    let mut rows = Vec::new();
    for record_batch in reader {
        let record_batch = record_batch.map_err(|e| fail(&e))?;
        let start = rows.len();
        rows.resize_with(start + record_batch.num_rows(), Map::new);
        for (field, array) in record_batch
            .schema()
            .fields()
            .iter()
            .zip(record_batch.columns())
        {
            let json = field.metadata().get(TYPE_METADATA).map(String::as_str) == Some("json");
            for (i, row) in rows[start..].iter_mut().enumerate() {
                row.insert(
                    field.name().clone(),
                    cell(array, i, json).map_err(|e| fail(&e))?,
                );
            }
        }
    }
    Ok(rows)
}

fn cell(array: &ArrayRef, i: usize, json: bool) -> Result<Value, String> {
    if array.is_null(i) {
        return Ok(Value::Null);
    }
    Ok(match array.data_type() {
        DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
        DataType::Int64 => Value::from(array.as_primitive::<Int64Type>().value(i)),
        DataType::Float64 => Value::from(array.as_primitive::<Float64Type>().value(i)),
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(i);
            let date = NaiveDate::from_ymd_opt(1970, 1, 1)
                .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days(days.into())))
                .ok_or("date out of range")?;
            Value::String(date.format("%Y-%m-%d").to_string())
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => Value::String(rfc3339(
            array.as_primitive::<TimestampMicrosecondType>().value(i),
        )),
        DataType::Utf8 => {
            let text = array.as_string::<i32>().value(i);
            if json {
                serde_json::from_str(text).map_err(|e| e.to_string())?
            } else {
                Value::String(text.to_owned())
            }
        }
        other => return Err(format!("unexpected column type {other}")),
    })
}

/// The data files of a table, in write order.
pub(super) fn table_files(dir: &Path, table: &str) -> Result<Vec<PathBuf>, DestinationError> {
    let table_dir = dir.join(table);
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(&table_dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.'))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_fail(format!("listing {}", table_dir.display()))(e)),
    };
    paths.sort();
    Ok(paths)
}

/// The columns a data file holds (but `_synced_at`), typed as they were written: from the
/// Parquet schema, or from the values of a JSONL file, which has none.
pub(super) fn file_columns(
    path: &Path,
    rows: &[Map<String, Value>],
) -> Result<Vec<Column>, DestinationError> {
    if path.to_string_lossy().ends_with(".parquet") {
        let file = File::open(path).map_err(io_fail(format!("opening {}", path.display())))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| DestinationError::new(format!("reading {}: {e}", path.display())))?;
        return Ok(builder
            .schema()
            .fields()
            .iter()
            .filter(|field| field.name() != SYNCED_AT)
            .map(|field| {
                let json = field.metadata().get(TYPE_METADATA).map(String::as_str) == Some("json");
                let ty = match field.data_type() {
                    DataType::Boolean => ColumnType::Boolean,
                    DataType::Int64 => ColumnType::BigInt,
                    DataType::Float64 => ColumnType::Double,
                    DataType::Date32 => ColumnType::Date,
                    DataType::Timestamp(..) => ColumnType::Timestamp,
                    _ if json => ColumnType::Json,
                    _ => ColumnType::Text,
                };
                Column::new(field.name(), ty)
            })
            .collect());
    }
    let mut columns: Vec<Column> = Vec::new();
    for row in rows {
        for (name, value) in row {
            if name == SYNCED_AT {
                continue;
            }
            match columns.iter_mut().find(|c| c.name == *name) {
                Some(column) if column.ty == ColumnType::Null => column.ty = ColumnType::of(value),
                Some(_) => {}
                None => columns.push(Column::new(name, ColumnType::of(value))),
            }
        }
    }
    Ok(columns)
}

/// Every row of a table's directory, in write order (file names sort as they were written).
/// Every key in `table`'s files, as text: read a file at a time, so only one file's rows are
/// held at once.
pub(super) fn read_keys(
    dir: &Path,
    table: &str,
    key: &str,
) -> Result<std::collections::HashSet<String>, DestinationError> {
    let mut keys = std::collections::HashSet::new();
    for path in table_files(dir, table)? {
        keys.extend(
            read_file(&path)?
                .iter()
                .filter_map(|row| row.get(key).map(key_text)),
        );
    }
    Ok(keys)
}

pub fn read_table(dir: &Path, table: &str) -> Result<Vec<Map<String, Value>>, DestinationError> {
    let mut rows = Vec::new();
    for path in table_files(dir, table)? {
        rows.extend(read_file(&path)?);
    }
    Ok(rows)
}
