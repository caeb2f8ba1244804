//! A page's rows as one Arrow record batch: the one place values become typed arrays. Every
//! destination reads the batch: DuckDB's appender and Parquet take the arrays as they are,
//! PostgreSQL's binary COPY and the JSON outputs (Singer, Airbyte, JSONL) read them value by
//! value.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder, new_null_array,
};
use arrow::datatypes::{
    DataType, Date32Type, Field, Float64Type, Int64Type, Schema, TimeUnit, TimestampMicrosecondType,
};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use crate::schema::{Column, ColumnType, Nested, ValueRef, parse_date, parse_timestamp};

/// Field metadata marking a Utf8 column that holds JSON text, so readers can parse it back.
pub const TYPE_METADATA: &str = "pipedrive_sync.type";

/// A value the engine typed a column for that the column cannot hold: a bug in the typing,
/// worth failing loudly on rather than loading something else.
#[derive(Debug, thiserror::Error)]
#[error("column {column} ({ty:?}) cannot hold {value}")]
pub struct Misfit {
    pub column: String,
    pub ty: ColumnType,
    pub value: String,
}

impl Misfit {
    fn new(column: &Column, value: impl std::fmt::Display) -> Misfit {
        Misfit {
            column: column.name.clone(),
            ty: column.ty,
            value: shorten(value.to_string()),
        }
    }
}

/// A value for a message: values can be long user text, so enough of it to recognise.
pub fn shorten(text: String) -> String {
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The Arrow type a column of `ty` is held as; JSON is its text.
pub fn data_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::BigInt => DataType::Int64,
        ColumnType::Double => DataType::Float64,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ColumnType::Json | ColumnType::Text | ColumnType::Null => DataType::Utf8,
    }
}

/// The Arrow field of a column; JSON text is marked as such.
pub fn field(column: &Column) -> Field {
    let field = Field::new(&column.name, data_type(column.ty), true);
    if column.ty == ColumnType::Json {
        field.with_metadata(HashMap::from([(
            TYPE_METADATA.to_owned(),
            "json".to_owned(),
        )]))
    } else {
        field
    }
}

/// Days since the epoch of a `YYYY-MM-DD` date.
fn days_since_epoch(date: NaiveDate) -> Option<i32> {
    i32::try_from(
        date.signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1)?)
            .num_days(),
    )
    .ok()
}

/// The date `days` after the epoch, as a `Date32` array holds it.
pub fn date_of_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(days.into()))
}

/// Microseconds since the epoch of any timestamp shape the engine types as one, or of a date.
pub fn timestamp_micros(text: &str) -> Option<i64> {
    parse_timestamp(text).map(|t| t.timestamp_micros())
}

/// A timestamp as the JSON outputs write it: RFC 3339 in UTC, a fraction only when there is one.
pub fn rfc3339(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

/// One column's values as they arrive, a row at a time, typed by the column.
pub enum ColumnBuilder {
    Boolean(BooleanBuilder),
    BigInt(Int64Builder),
    Double(Float64Builder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    /// Text; a JSON column holds each value's JSON text.
    Text {
        values: StringBuilder,
        json: bool,
    },
}

impl ColumnBuilder {
    pub fn new(ty: ColumnType, capacity: usize) -> ColumnBuilder {
        match ty {
            ColumnType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(capacity)),
            ColumnType::BigInt => ColumnBuilder::BigInt(Int64Builder::with_capacity(capacity)),
            ColumnType::Double => ColumnBuilder::Double(Float64Builder::with_capacity(capacity)),
            ColumnType::Date => ColumnBuilder::Date(Date32Builder::with_capacity(capacity)),
            ColumnType::Timestamp => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            ),
            ColumnType::Json | ColumnType::Text | ColumnType::Null => ColumnBuilder::Text {
                values: StringBuilder::with_capacity(capacity, capacity * 8),
                json: ty == ColumnType::Json,
            },
        }
    }

    /// Appends `value`, which must fit `column` (the column this builder was made for).
    pub fn append(&mut self, column: &Column, value: &Value) -> Result<(), Misfit> {
        self.append_ref(column, &ValueRef::from(value))
    }

    /// [`ColumnBuilder::append`], for a value however it is held.
    pub fn append_ref(&mut self, column: &Column, value: &ValueRef<'_>) -> Result<(), Misfit> {
        let misfit = || Misfit::new(column, value);
        match (self, value) {
            (ColumnBuilder::Boolean(b), ValueRef::Null) => b.append_null(),
            (ColumnBuilder::BigInt(b), ValueRef::Null) => b.append_null(),
            (ColumnBuilder::Double(b), ValueRef::Null) => b.append_null(),
            (ColumnBuilder::Date(b), ValueRef::Null) => b.append_null(),
            (ColumnBuilder::Timestamp(b), ValueRef::Null) => b.append_null(),
            (ColumnBuilder::Text { values, .. }, ValueRef::Null) => values.append_null(),
            (ColumnBuilder::Boolean(b), ValueRef::Bool(flag)) => b.append_value(*flag),
            (ColumnBuilder::BigInt(b), ValueRef::Number(n)) => {
                b.append_value(n.as_i64().ok_or_else(misfit)?)
            }
            (ColumnBuilder::Double(b), ValueRef::Number(n)) => {
                b.append_value(n.as_f64().ok_or_else(misfit)?)
            }
            (ColumnBuilder::Date(b), ValueRef::Text(text)) => b.append_value(
                parse_date(text)
                    .and_then(days_since_epoch)
                    .ok_or_else(misfit)?,
            ),
            (ColumnBuilder::Timestamp(b), ValueRef::Text(text)) => {
                b.append_value(timestamp_micros(text).ok_or_else(misfit)?)
            }
            (
                ColumnBuilder::Text {
                    values,
                    json: false,
                },
                ValueRef::Text(text),
            ) => values.append_value(text),
            // Text holds an object as the general path writes it, keys in order; a JSON
            // column keeps the page's text, the same JSON.
            (
                ColumnBuilder::Text {
                    values,
                    json: false,
                },
                ValueRef::Nested(Nested::Raw(raw)),
            ) => {
                let value: Value = serde_json::from_str(raw.get()).map_err(|_| misfit())?;
                write!(values, "{value}").expect("writing to memory does not fail");
                values.append_value("");
            }
            (ColumnBuilder::Text { values, .. }, other) => {
                // Written straight into the array's buffer, then closed as one value.
                write!(values, "{other}").expect("writing to memory does not fail");
                values.append_value("");
            }
            (
                ColumnBuilder::Boolean(_)
                | ColumnBuilder::BigInt(_)
                | ColumnBuilder::Double(_)
                | ColumnBuilder::Date(_)
                | ColumnBuilder::Timestamp(_),
                _,
            ) => return Err(misfit()),
        }
        Ok(())
    }

    /// `count` nulls, for rows read before the column first appeared.
    pub fn append_nulls(&mut self, count: usize) {
        match self {
            ColumnBuilder::Boolean(b) => b.append_nulls(count),
            ColumnBuilder::BigInt(b) => b.append_nulls(count),
            ColumnBuilder::Double(b) => b.append_nulls(count),
            ColumnBuilder::Date(b) => b.append_nulls(count),
            ColumnBuilder::Timestamp(b) => b.append_nulls(count),
            ColumnBuilder::Text { values, .. } => values.append_nulls(count),
        }
    }

    pub fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::BigInt(b) => Arc::new(b.finish()),
            ColumnBuilder::Double(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
            ColumnBuilder::Text { values, .. } => Arc::new(values.finish()),
        }
    }
}

/// The rows as one record batch, a column per `columns` entry in its order. Rows shorter than
/// `columns` are null in the columns they lack. Read row by row, as rows are laid out.
pub fn record_batch(columns: &[Column], rows: &[Vec<Value>]) -> Result<RecordBatch, Misfit> {
    let mut builders: Vec<ColumnBuilder> = columns
        .iter()
        .map(|column| ColumnBuilder::new(column.ty, rows.len()))
        .collect();
    for row in rows {
        for (index, (builder, column)) in builders.iter_mut().zip(columns).enumerate() {
            builder.append(column, row.get(index).unwrap_or(&Value::Null))?;
        }
    }
    let fields: Vec<Field> = columns.iter().map(field).collect();
    let arrays: Vec<ArrayRef> = builders.iter_mut().map(ColumnBuilder::finish).collect();
    let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
    Ok(
        RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)
            .expect("one array per field, each as long as the rows"),
    )
}

/// A column's array as a column of type `to`, a widening of its own type `from` (the type its
/// table already has): integers to doubles, dates to timestamps, nulls to anything and anything
/// to text, which reads as the value's JSON text.
pub fn widen(array: &ArrayRef, from: &Column, to: ColumnType) -> Result<ArrayRef, Misfit> {
    if from.ty == to
        || (matches!(from.ty, ColumnType::Json | ColumnType::Null) && to == ColumnType::Text)
    {
        return Ok(Arc::clone(array));
    }
    if array.null_count() == array.len() {
        return Ok(new_null_array(&data_type(to), array.len()));
    }
    Ok(match (from.ty, to) {
        (ColumnType::BigInt, ColumnType::Double) => Arc::new(
            array
                .as_primitive::<Int64Type>()
                .unary::<_, Float64Type>(|n| n as f64),
        ),
        (ColumnType::Date, ColumnType::Timestamp) => Arc::new(
            array
                .as_primitive::<Date32Type>()
                .unary::<_, TimestampMicrosecondType>(|days| i64::from(days) * 86_400_000_000)
                .with_timezone("UTC"),
        ),
        (_, ColumnType::Text) => {
            let mut builder = StringBuilder::new();
            for row in 0..array.len() {
                match text(from.ty, array, row) {
                    Some(text) => builder.append_value(text),
                    None => builder.append_null(),
                }
            }
            Arc::new(builder.finish())
        }
        _ => {
            let value = (0..array.len())
                .map(|row| json_value(from.ty, array, row))
                .find(|v| !v.is_null())
                .unwrap_or(Value::Null);
            return Err(Misfit::new(&Column::new(&from.name, to), value));
        }
    })
}

/// The value at `row` as text: strings as they are, anything else as its JSON text (what a text
/// column holds of it); `None` for null.
pub fn text(ty: ColumnType, array: &dyn Array, row: usize) -> Option<String> {
    if array.is_null(row) {
        return None;
    }
    Some(match ty {
        ColumnType::Json | ColumnType::Text | ColumnType::Null => {
            array.as_string::<i32>().value(row).to_owned()
        }
        _ => match json_value(ty, array, row) {
            Value::String(s) => s,
            other => other.to_string(),
        },
    })
}

/// The value at `row` of a column of type `ty` as JSON: numbers and booleans as themselves,
/// dates as `YYYY-MM-DD`, timestamps in RFC 3339 UTC, JSON columns parsed back, text as strings.
pub fn json_value(ty: ColumnType, array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match ty {
        ColumnType::Boolean => Value::Bool(array.as_boolean().value(row)),
        ColumnType::BigInt => Value::from(array.as_primitive::<Int64Type>().value(row)),
        ColumnType::Double => Value::from(array.as_primitive::<Float64Type>().value(row)),
        ColumnType::Date => date_of_days(array.as_primitive::<Date32Type>().value(row))
            .map_or(Value::Null, |d| {
                Value::String(d.format("%Y-%m-%d").to_string())
            }),
        ColumnType::Timestamp => Value::String(rfc3339(
            array.as_primitive::<TimestampMicrosecondType>().value(row),
        )),
        ColumnType::Json => {
            let text = array.as_string::<i32>().value(row);
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
        }
        ColumnType::Text | ColumnType::Null => {
            Value::String(array.as_string::<i32>().value(row).to_owned())
        }
    }
}

/// The non-null integers of an integer column, or `None` when the column is not one (an empty
/// list for a column of nulls).
pub fn integers(ty: ColumnType, array: &dyn Array) -> Option<Vec<i64>> {
    match ty {
        ColumnType::BigInt => Some(array.as_primitive::<Int64Type>().iter().flatten().collect()),
        _ if array.null_count() == array.len() => Some(Vec::new()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn column(name: &str, ty: ColumnType) -> Column {
        Column::new(name, ty)
    }

    /// Every type keeps its values through the arrays: read back as JSON they are the values
    /// the outputs write (timestamps in RFC 3339 UTC, non-strings of text columns as text).
    #[test]
    fn values_round_trip_through_their_arrays() {
        let columns = [
            column("b", ColumnType::Boolean),
            column("i", ColumnType::BigInt),
            column("f", ColumnType::Double),
            column("d", ColumnType::Date),
            column("t", ColumnType::Timestamp),
            column("j", ColumnType::Json),
            column("s", ColumnType::Text),
            column("n", ColumnType::Null),
        ];
        let rows = vec![
            vec![
                json!(true),
                json!(-7),
                json!(2.5),
                json!("1969-12-31"),
                json!("2024-01-02 10:11:12"),
                json!({"a": [1, "x"]}),
                json!("é"),
            ],
            vec![
                Value::Null,
                json!(i64::MAX),
                json!(3),
                Value::Null,
                json!("2024-01-02T10:11:12.5+02:00"),
                json!([]),
                json!(12),
                Value::Null,
            ],
        ];
        let batch = record_batch(&columns, &rows).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let read = |row: usize| -> Vec<Value> {
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| json_value(c.ty, batch.column(i).as_ref(), row))
                .collect()
        };
        assert_eq!(
            read(0),
            [
                json!(true),
                json!(-7),
                json!(2.5),
                json!("1969-12-31"),
                json!("2024-01-02T10:11:12Z"),
                json!({"a": [1, "x"]}),
                json!("é"),
                Value::Null,
            ]
        );
        assert_eq!(
            read(1),
            [
                Value::Null,
                json!(i64::MAX),
                json!(3.0),
                Value::Null,
                json!("2024-01-02T08:11:12.500Z"),
                json!([]),
                json!("12"),
                Value::Null,
            ]
        );
        let json_field = batch.schema().field(5).clone();
        assert_eq!(json_field.metadata()[TYPE_METADATA], "json");
    }

    /// A value its column cannot hold is refused, naming the column, not loaded as another.
    #[test]
    fn a_value_its_column_cannot_hold_is_refused() {
        for (ty, value) in [
            (ColumnType::BigInt, json!("1")),
            (ColumnType::BigInt, json!(1.5)),
            (ColumnType::BigInt, json!(u64::MAX)),
            (ColumnType::Boolean, json!("yes")),
            (ColumnType::Date, json!("02/01/2024")),
            (ColumnType::Timestamp, json!("2024-01-02 25:00:00")),
        ] {
            let error = record_batch(&[column("amount", ty)], &[vec![value.clone()]])
                .expect_err(&value.to_string());
            assert_eq!(error.column, "amount");
        }
        let long = record_batch(
            &[column("n", ColumnType::BigInt)],
            &[vec![json!("é".repeat(200))]],
        )
        .unwrap_err();
        assert!(long.value.ends_with('…'), "{}", long.value);
    }

    /// A page's column widens to its table's type: integers to doubles, dates to timestamps,
    /// anything to its text, nulls to anything.
    #[test]
    fn columns_widen_to_their_tables_types() {
        let columns = [
            column("i", ColumnType::BigInt),
            column("d", ColumnType::Date),
            column("b", ColumnType::Boolean),
            column("j", ColumnType::Json),
            column("n", ColumnType::Null),
        ];
        let rows = vec![vec![
            json!(3),
            json!("2024-01-02"),
            json!(false),
            json!({"k": 1}),
            Value::Null,
        ]];
        let batch = record_batch(&columns, &rows).unwrap();
        let widened = |i: usize, to: ColumnType| {
            let array = widen(batch.column(i), &columns[i], to).unwrap();
            json_value(to, array.as_ref(), 0)
        };
        assert_eq!(widened(0, ColumnType::Double), json!(3.0));
        assert_eq!(widened(0, ColumnType::Text), json!("3"));
        assert_eq!(
            widened(1, ColumnType::Timestamp),
            json!("2024-01-02T00:00:00Z")
        );
        assert_eq!(widened(1, ColumnType::Text), json!("2024-01-02"));
        assert_eq!(widened(2, ColumnType::Text), json!("false"));
        assert_eq!(widened(3, ColumnType::Text), json!(r#"{"k":1}"#));
        assert_eq!(widened(4, ColumnType::BigInt), Value::Null);
        assert!(widen(batch.column(0), &columns[0], ColumnType::Boolean).is_err());
    }
}
