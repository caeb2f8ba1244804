//! A batch's arrays as typed PostgreSQL values for binary COPY. The engine has already typed
//! each column and the core widened it to its table's type, so every value reads as that type.

use std::borrow::Cow;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use chrono::{DateTime, NaiveDate, Utc};
use pipedrive_engine::columnar;
use pipedrive_engine::schema::ColumnType;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio_postgres::types::{Json, ToSql, Type};

/// One value as COPY sends it; `None` is SQL NULL, typed so binary COPY accepts it.
#[derive(Debug)]
pub(super) enum Cell<'a> {
    Boolean(Option<bool>),
    BigInt(Option<i64>),
    Double(Option<f64>),
    Date(Option<NaiveDate>),
    Timestamp(Option<DateTime<Utc>>),
    /// JSON text sent as it is.
    Json(Option<Json<&'a RawValue>>),
    /// A JSON value rebuilt without NUL characters.
    JsonOwned(Option<Value>),
    Text(Option<Cow<'a, str>>),
}

impl Cell<'_> {
    pub(super) fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Cell::Boolean(v) => v,
            Cell::BigInt(v) => v,
            Cell::Double(v) => v,
            Cell::Date(v) => v,
            Cell::Timestamp(v) => v,
            Cell::Json(v) => v,
            Cell::JsonOwned(v) => v,
            Cell::Text(v) => v,
        }
    }
}

/// The PostgreSQL type a column of `ty` is created with.
pub(super) fn sql_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Boolean => "boolean",
        ColumnType::BigInt => "bigint",
        ColumnType::Double => "double precision",
        ColumnType::Date => "date",
        ColumnType::Timestamp => "timestamptz",
        ColumnType::Json => "jsonb",
        ColumnType::Null | ColumnType::Text => "text",
    }
}

/// The wire type binary COPY is told for a column of `ty`.
pub(super) fn wire_type(ty: ColumnType) -> Type {
    match ty {
        ColumnType::Boolean => Type::BOOL,
        ColumnType::BigInt => Type::INT8,
        ColumnType::Double => Type::FLOAT8,
        ColumnType::Date => Type::DATE,
        ColumnType::Timestamp => Type::TIMESTAMPTZ,
        ColumnType::Json => Type::JSONB,
        ColumnType::Null | ColumnType::Text => Type::TEXT,
    }
}

/// The engine type of a column as `information_schema.columns.data_type` reports it. Types our
/// own tables never have (a table made by hand) map to the nearest type that casts into them.
pub(super) fn column_type(data_type: &str) -> ColumnType {
    match data_type {
        "boolean" => ColumnType::Boolean,
        "bigint" | "integer" | "smallint" => ColumnType::BigInt,
        "double precision" | "real" | "numeric" => ColumnType::Double,
        "date" => ColumnType::Date,
        "timestamp with time zone" | "timestamp without time zone" => ColumnType::Timestamp,
        "jsonb" | "json" => ColumnType::Json,
        _ => ColumnType::Text,
    }
}

/// The value at `row` of `array`, a column of type `ty`; `None` when the array is not of
/// that type, or holds a date or JSON text PostgreSQL cannot take.
pub(super) fn encode(array: &dyn Array, ty: ColumnType, row: usize) -> Option<Cell<'_>> {
    let null = array.is_null(row);
    Some(match ty {
        ColumnType::Boolean => Cell::Boolean(
            (!null)
                .then(|| array.as_boolean_opt().map(|a| a.value(row)))
                .flatten(),
        ),
        ColumnType::BigInt => Cell::BigInt(if null {
            None
        } else {
            Some(array.as_primitive_opt::<Int64Type>()?.value(row))
        }),
        ColumnType::Double => Cell::Double(if null {
            None
        } else {
            Some(array.as_primitive_opt::<Float64Type>()?.value(row))
        }),
        ColumnType::Date => Cell::Date(if null {
            None
        } else {
            Some(columnar::date_of_days(
                array.as_primitive_opt::<Date32Type>()?.value(row),
            )?)
        }),
        ColumnType::Timestamp => Cell::Timestamp(if null {
            None
        } else {
            let micros = array
                .as_primitive_opt::<TimestampMicrosecondType>()?
                .value(row);
            Some(DateTime::<Utc>::from_timestamp_micros(micros)?)
        }),
        ColumnType::Json if null => Cell::Json(None),
        ColumnType::Json => {
            let text = array.as_string_opt::<i32>()?.value(row);
            // jsonb rejects `\u0000` in strings, so NULs are dropped there (copying only then).
            if text.contains("\\u0000") {
                Cell::JsonOwned(Some(without_nul_json(&serde_json::from_str(text).ok()?)))
            } else {
                Cell::Json(Some(Json(serde_json::from_str(text).ok()?)))
            }
        }
        ColumnType::Null | ColumnType::Text => Cell::Text(if null {
            None
        } else {
            Some(without_nul(array.as_string_opt::<i32>()?.value(row)))
        }),
    })
}

/// A key value as text, for the key arrays a merge matches on (cast back to the column's type in
/// SQL, so the text must be what PostgreSQL reads back as the same value).
pub(super) fn key_text(cell: &Cell<'_>) -> Option<String> {
    match cell {
        Cell::Boolean(v) => v.map(|b| b.to_string()),
        Cell::BigInt(v) => v.map(|i| i.to_string()),
        // Rust prints the shortest text that reads back as the same f64.
        Cell::Double(v) => v.map(|f| f.to_string()),
        Cell::Date(v) => v.map(|d| d.format("%Y-%m-%d").to_string()),
        Cell::Timestamp(v) => v.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        Cell::Json(v) => v.as_ref().map(|json| json.0.get().to_owned()),
        Cell::JsonOwned(v) => v.as_ref().map(Value::to_string),
        Cell::Text(v) => v.as_deref().map(str::to_owned),
    }
}

/// PostgreSQL text cannot hold NUL characters; they are dropped rather than failing the sync.
fn without_nul(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', ""))
    } else {
        Cow::Borrowed(text)
    }
}

/// A JSON value without NUL characters in its strings and keys.
fn without_nul_json(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace('\0', "")),
        Value::Array(items) => Value::Array(items.iter().map(without_nul_json).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.replace('\0', ""), without_nul_json(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipedrive_engine::schema::parse_timestamp;
    use serde_json::json;

    #[test]
    fn malformed_timestamps_are_refused() {
        for bad in [
            "2024-01-02 10:11",
            "2024-01-02X10:11:12",
            "2024-01-02 25:11:12",
            "2024-01-02 10:11:12.",
            "2024-01-02 10:11:12+2",
            "2024-01-02 10:11:12+02:0",
            "2024-01-02 10:11:12+24:00",
            "2024-01-02 10:11:12 UTC",
            "2024-13-02 10:11:12",
            "2024-01-02 10:11:12é",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
        assert_eq!(
            parse_timestamp("2024-01-02t10:11:12z")
                .unwrap()
                .to_rfc3339(),
            "2024-01-02T10:11:12+00:00"
        );
    }

    /// Each type reads from its array; text and JSON lose their NULs, nothing else changes.
    #[test]
    fn cells_read_their_arrays_and_drop_nuls() {
        use pipedrive_engine::columnar;
        use pipedrive_engine::schema::Column;
        let columns = [
            Column::new("t", ColumnType::Text),
            Column::new("j", ColumnType::Json),
            Column::new("n", ColumnType::BigInt),
        ];
        let rows = vec![
            vec![json!("a\u{0}b"), json!({"k\u{0}": ["x\u{0}"]}), json!(7)],
            vec![json!(true), json!([1]), Value::Null],
        ];
        let batch = columnar::record_batch(&columns, &rows).unwrap();
        let cell = |column: usize, row| {
            encode(batch.column(column).as_ref(), columns[column].ty, row).unwrap()
        };
        assert!(matches!(cell(0, 0), Cell::Text(Some(t)) if t == "ab"));
        assert!(matches!(cell(0, 1), Cell::Text(Some(t)) if t == "true"));
        assert!(matches!(cell(1, 0), Cell::JsonOwned(Some(v)) if v == json!({"k": ["x"]})));
        assert!(matches!(cell(1, 1), Cell::Json(Some(Json(raw))) if raw.get() == "[1]"));
        assert!(matches!(cell(2, 0), Cell::BigInt(Some(7))));
        assert!(matches!(cell(2, 1), Cell::BigInt(None)));
        // An array of another type is refused, not read as something else.
        assert!(encode(batch.column(0).as_ref(), ColumnType::BigInt, 0).is_none());
    }
}
