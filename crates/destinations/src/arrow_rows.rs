//! Rows as Arrow record batches, typed by column: what Parquet files are written from and what
//! DuckDB's appender takes without a cast per value.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use pipedrive_engine::schema::{Column, ColumnType};
use pipedrive_engine::{Batch, DestinationError};
use serde_json::Value;

pub(crate) use crate::sql::SYNCED_AT;

/// Field metadata marking a Utf8 column that holds JSON text, so readers can parse it back.
pub(crate) const TYPE_METADATA: &str = "pipedrive_sync.type";

/// Microseconds since the epoch of any timestamp shape the engine types as one (see
/// [`pipedrive_engine::schema::parse_timestamp`]), or of a date.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    pipedrive_engine::schema::parse_timestamp(text).map(|t| t.timestamp_micros())
}

/// `batch.synced_at` in microseconds since the epoch.
pub(crate) fn synced_at(batch: &Batch<'_>) -> Result<i64, DestinationError> {
    parse_timestamp(batch.synced_at).ok_or_else(|| {
        DestinationError::new(format!("synced_at `{}` is not a time", batch.synced_at))
    })
}

/// Rows without any primary-key column could not be merged: refused rather than appended.
pub(crate) fn require_primary_key(
    batch: &Batch<'_>,
    loaded: &[(usize, &Column)],
) -> Result<(), DestinationError> {
    if loaded
        .iter()
        .all(|(_, c)| !batch.primary_key.contains(&c.name.as_str()))
    {
        return Err(DestinationError::new(format!(
            "stream {}: records have no primary key {:?}",
            batch.stream, batch.primary_key
        )));
    }
    Ok(())
}

fn days_since_epoch(text: &str) -> Option<i32> {
    let date = pipedrive_engine::schema::parse_date(text)?;
    i32::try_from(
        date.signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1)?)
            .num_days(),
    )
    .ok()
}

pub(crate) fn mismatch(column: &Column, value: &Value) -> DestinationError {
    DestinationError::new(format!(
        "column {} ({:?}) cannot hold {value}",
        column.name, column.ty
    ))
}

/// The Arrow field a column is written as; JSON text is marked as such.
fn field(column: &Column) -> Field {
    let data_type = match column.ty {
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::BigInt => DataType::Int64,
        ColumnType::Double => DataType::Float64,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ColumnType::Json | ColumnType::Text | ColumnType::Null => DataType::Utf8,
    };
    let field = Field::new(&column.name, data_type, true);
    if column.ty == ColumnType::Json {
        field.with_metadata(HashMap::from([(
            TYPE_METADATA.to_owned(),
            "json".to_owned(),
        )]))
    } else {
        field
    }
}

/// One Arrow column from one batch column.
fn to_array(
    column: &Column,
    rows: &[Vec<Value>],
    index: usize,
) -> Result<ArrayRef, DestinationError> {
    let values = rows.iter().map(|row| &row[index]);
    Ok(match column.ty {
        ColumnType::Boolean => {
            let mut builder = BooleanBuilder::with_capacity(rows.len());
            for value in values {
                match value {
                    Value::Null => builder.append_null(),
                    Value::Bool(b) => builder.append_value(*b),
                    other => return Err(mismatch(column, other)),
                }
            }
            Arc::new(builder.finish())
        }
        ColumnType::BigInt => {
            let mut builder = Int64Builder::with_capacity(rows.len());
            for value in values {
                match value {
                    Value::Null => builder.append_null(),
                    other => {
                        builder.append_value(other.as_i64().ok_or_else(|| mismatch(column, other))?)
                    }
                }
            }
            Arc::new(builder.finish())
        }
        ColumnType::Double => {
            let mut builder = Float64Builder::with_capacity(rows.len());
            for value in values {
                match value {
                    Value::Null => builder.append_null(),
                    other => {
                        builder.append_value(other.as_f64().ok_or_else(|| mismatch(column, other))?)
                    }
                }
            }
            Arc::new(builder.finish())
        }
        ColumnType::Date => {
            let mut builder = Date32Builder::with_capacity(rows.len());
            for value in values {
                match value {
                    Value::Null => builder.append_null(),
                    other => builder.append_value(
                        other
                            .as_str()
                            .and_then(days_since_epoch)
                            .ok_or_else(|| mismatch(column, other))?,
                    ),
                }
            }
            Arc::new(builder.finish())
        }
        ColumnType::Timestamp => {
            let mut builder =
                TimestampMicrosecondBuilder::with_capacity(rows.len()).with_timezone("UTC");
            for value in values {
                match value {
                    Value::Null => builder.append_null(),
                    other => builder.append_value(
                        other
                            .as_str()
                            .and_then(parse_timestamp)
                            .ok_or_else(|| mismatch(column, other))?,
                    ),
                }
            }
            Arc::new(builder.finish())
        }
        ColumnType::Json | ColumnType::Text | ColumnType::Null => {
            let mut builder = StringBuilder::new();
            for value in values {
                match value {
                    Value::Null => builder.append_null(),
                    Value::String(s) if column.ty != ColumnType::Json => builder.append_value(s),
                    other => builder.append_value(other.to_string()),
                }
            }
            Arc::new(builder.finish())
        }
    })
}

/// Where one column of a record batch comes from.
pub(crate) enum Slot<'a> {
    /// The batch's column at this index, written as this (possibly wider) column.
    Row(usize, &'a Column),
    /// A column the batch has no values for: all null.
    Null(&'a Column),
    /// `_synced_at`, the batch's sync time in every row.
    SyncedAt,
}

/// The batch's `loaded` columns, then `_synced_at`.
#[cfg_attr(not(feature = "duckdb"), allow(dead_code))]
pub(crate) fn to_record_batch(
    batch: &Batch<'_>,
    loaded: &[(usize, &Column)],
    synced_at: i64,
) -> Result<RecordBatch, DestinationError> {
    let slots: Vec<Slot<'_>> = loaded
        .iter()
        .map(|(index, column)| Slot::Row(*index, column))
        .chain([Slot::SyncedAt])
        .collect();
    record_batch_of(batch, &slots, synced_at)
}

/// One Arrow column per slot, in the slots' order.
pub(crate) fn record_batch_of(
    batch: &Batch<'_>,
    slots: &[Slot<'_>],
    synced_at: i64,
) -> Result<RecordBatch, DestinationError> {
    let in_stream =
        |e: DestinationError| DestinationError::new(format!("stream {}: {e}", batch.stream));
    let mut fields = Vec::with_capacity(slots.len());
    let mut arrays = Vec::with_capacity(slots.len());
    for slot in slots {
        let (field, array) = match slot {
            Slot::Row(index, column) => (
                field(column),
                to_array(column, batch.rows, *index).map_err(in_stream)?,
            ),
            Slot::Null(column) => {
                let field = field(column);
                let nulls = arrow::array::new_null_array(field.data_type(), batch.rows.len());
                (field, nulls)
            }
            Slot::SyncedAt => {
                let mut stamps = TimestampMicrosecondBuilder::with_capacity(batch.rows.len())
                    .with_timezone("UTC");
                stamps.append_value_n(synced_at, batch.rows.len());
                let field = Field::new(
                    SYNCED_AT,
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    false,
                );
                (field, Arc::new(stamps.finish()) as ArrayRef)
            }
        };
        fields.push(field);
        arrays.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| DestinationError::new(format!("stream {}: {e}", batch.stream)))
}
