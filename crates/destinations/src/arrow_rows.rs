//! A batch's arrays laid out as a table takes them: what Parquet files are written from and what
//! DuckDB's appender takes without a cast per value. The engine already made each page one
//! record batch ([`pipedrive_engine::columnar`]); this picks, widens and adds columns.

use std::sync::Arc;

use arrow::array::{ArrayRef, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use pipedrive_engine::columnar::{self, field};
use pipedrive_engine::schema::Column;
use pipedrive_engine::{Batch, DestinationError};

pub(crate) use crate::sql::SYNCED_AT;
pub(crate) use pipedrive_engine::columnar::TYPE_METADATA;

/// Microseconds since the epoch of any timestamp shape the engine types as one, or of a date.
pub use pipedrive_engine::columnar::timestamp_micros as parse_timestamp;

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
    let rows = batch.len();
    let mut fields = Vec::with_capacity(slots.len());
    let mut arrays = Vec::with_capacity(slots.len());
    for slot in slots {
        let (field, array) = match slot {
            Slot::Row(index, column) => (
                field(column),
                columnar::widen(
                    batch.records.column(*index),
                    &batch.columns[*index],
                    column.ty,
                )
                .map_err(|misfit| {
                    DestinationError::new(format!("stream {}: {misfit}", batch.stream))
                })?,
            ),
            Slot::Null(column) => {
                let field = field(column);
                let nulls = arrow::array::new_null_array(field.data_type(), rows);
                (field, nulls)
            }
            Slot::SyncedAt => {
                let mut stamps =
                    TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
                stamps.append_value_n(synced_at, rows);
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
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)
        .map_err(|e| DestinationError::new(format!("stream {}: {e}", batch.stream)))
}
