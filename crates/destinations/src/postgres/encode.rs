//! JSON values to typed PostgreSQL values for binary COPY. The engine has already widened each
//! column to hold its values, so a value that does not fit is a bug worth failing loudly on.

use chrono::{DateTime, NaiveDate, Utc};
use pipedrive_engine::schema::{ColumnType, parse_date, parse_timestamp, to_text};
use serde_json::Value;
use tokio_postgres::types::{ToSql, Type};

/// One value as COPY sends it; `None` is SQL NULL, typed so binary COPY accepts it.
#[derive(Debug)]
pub(super) enum Cell<'a> {
    Boolean(Option<bool>),
    BigInt(Option<i64>),
    Double(Option<f64>),
    Date(Option<NaiveDate>),
    Timestamp(Option<DateTime<Utc>>),
    Json(Option<&'a Value>),
    /// A JSON value rebuilt without NUL characters.
    JsonOwned(Option<Value>),
    Text(Option<String>),
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

/// Encodes `value` for a column of type `ty`; `None` when it does not fit.
pub(super) fn encode(value: &Value, ty: ColumnType) -> Option<Cell<'_>> {
    if value.is_null() {
        return Some(match ty {
            ColumnType::Boolean => Cell::Boolean(None),
            ColumnType::BigInt => Cell::BigInt(None),
            ColumnType::Double => Cell::Double(None),
            ColumnType::Date => Cell::Date(None),
            ColumnType::Timestamp => Cell::Timestamp(None),
            ColumnType::Json => Cell::Json(None),
            ColumnType::Null | ColumnType::Text => Cell::Text(None),
        });
    }
    Some(match ty {
        ColumnType::Boolean => Cell::Boolean(Some(value.as_bool()?)),
        ColumnType::BigInt => Cell::BigInt(Some(value.as_i64()?)),
        ColumnType::Double => Cell::Double(Some(value.as_f64()?)),
        ColumnType::Date => Cell::Date(Some(parse_date(value.as_str()?)?)),
        ColumnType::Timestamp => Cell::Timestamp(Some(parse_timestamp(value.as_str()?)?)),
        ColumnType::Json => match without_nul_json(value) {
            std::borrow::Cow::Borrowed(value) => Cell::Json(Some(value)),
            std::borrow::Cow::Owned(value) => Cell::JsonOwned(Some(value)),
        },
        ColumnType::Null | ColumnType::Text => Cell::Text(to_text(value).map(without_nul)),
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
        Cell::Json(v) => v.map(Value::to_string),
        Cell::JsonOwned(v) => v.as_ref().map(Value::to_string),
        Cell::Text(v) => v.clone(),
    }
}

/// PostgreSQL text cannot hold NUL characters; they are dropped rather than failing the sync.
fn without_nul(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "")
    } else {
        text
    }
}

/// jsonb rejects `\u0000` in strings, so NULs are dropped there too (copying only when present).
fn without_nul_json(value: &Value) -> std::borrow::Cow<'_, Value> {
    fn has_nul(value: &Value) -> bool {
        match value {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    fn strip(value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(s.replace('\0', "")),
            Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.replace('\0', ""), strip(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    if has_nul(value) {
        std::borrow::Cow::Owned(strip(value))
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

/// A value for an error message: its JSON text, cut short.
pub(super) fn show(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn values_that_do_not_fit_are_refused_not_nulled() {
        assert!(encode(&json!("1"), ColumnType::BigInt).is_none());
        assert!(encode(&json!(1.5), ColumnType::BigInt).is_none());
        assert!(encode(&json!(u64::MAX), ColumnType::BigInt).is_none());
        assert!(encode(&json!("yes"), ColumnType::Boolean).is_none());
        assert!(encode(&json!("02/01/2024"), ColumnType::Date).is_none());
        assert!(encode(&json!(3), ColumnType::Double).is_some());
        assert!(matches!(
            encode(&json!(null), ColumnType::BigInt),
            Some(Cell::BigInt(None))
        ));
        assert!(
            matches!(encode(&json!({"a": [1]}), ColumnType::Text), Some(Cell::Text(Some(t))) if t == r#"{"a":[1]}"#)
        );
        assert!(
            matches!(encode(&json!(true), ColumnType::Text), Some(Cell::Text(Some(t))) if t == "true")
        );
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        assert_eq!(show(&json!("short")), "\"short\"");
        assert!(show(&json!("é".repeat(200))).ends_with('…'));
    }
}
