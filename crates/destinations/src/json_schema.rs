//! What the Singer and Airbyte destinations share: column types as JSON Schema, rows as JSON
//! records that match that schema, and the schema a stream is announced with before any data.

use pipedrive_engine::StreamDef;
use pipedrive_engine::schema::{Column, ColumnType};
use serde_json::{Map, Value, json};

/// The JSON Schema of one column. Every column is nullable: Pipedrive omits or nulls any field.
pub fn column_schema(ty: ColumnType) -> Value {
    match ty {
        ColumnType::Null | ColumnType::Text => json!({"type": ["null", "string"]}),
        ColumnType::Boolean => json!({"type": ["null", "boolean"]}),
        ColumnType::BigInt => json!({"type": ["null", "integer"]}),
        ColumnType::Double => json!({"type": ["null", "number"]}),
        ColumnType::Date => json!({"type": ["null", "string"], "format": "date"}),
        ColumnType::Timestamp => json!({"type": ["null", "string"], "format": "date-time"}),
        // Nested objects and arrays: any JSON.
        ColumnType::Json => json!({}),
    }
}

/// The schema a stream is declared with by `discover`, before any record was seen: its key and
/// cursor, with every other field allowed (columns are inferred from the data as it arrives).
pub fn discovered_schema(def: &StreamDef) -> Value {
    let mut properties = Map::new();
    for key in def.primary_key {
        properties.insert((*key).to_owned(), json!({}));
    }
    if let Some(cursor) = def.cursor_field {
        properties.insert(cursor.to_owned(), column_schema(ColumnType::Timestamp));
    }
    json!({"type": "object", "properties": properties, "additionalProperties": true})
}

/// The columns of one stream as announced to the consumer so far, widened as batches arrive.
#[derive(Clone, Debug, Default)]
pub struct StreamColumns {
    columns: Vec<Column>,
}

impl StreamColumns {
    /// Adds a batch's new columns and widens changed ones; true when the schema changed.
    pub fn merge(&mut self, batch: &[Column]) -> bool {
        let mut changed = false;
        for column in batch {
            match self.columns.iter_mut().find(|c| c.name == column.name) {
                Some(known) => {
                    let widened = known.ty.widen(column.ty);
                    if column_schema(widened) != column_schema(known.ty) {
                        changed = true;
                    }
                    known.ty = widened;
                }
                None => {
                    self.columns.push(column.clone());
                    changed = true;
                }
            }
        }
        changed
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// `{"type": "object", "properties": {column: schema}}` of every column seen.
    pub fn json_schema(&self) -> Value {
        let properties: Map<String, Value> = self
            .columns
            .iter()
            .map(|c| (c.name.clone(), column_schema(c.ty)))
            .collect();
        json!({"type": "object", "properties": properties})
    }

    /// One row as a record of column → value, each value shaped to its announced column type.
    pub fn record(&self, columns: &[Column], row: &[Value]) -> Map<String, Value> {
        columns
            .iter()
            .zip(row)
            .map(|(column, value)| {
                let ty = self
                    .columns
                    .iter()
                    .find(|c| c.name == column.name)
                    .map_or(column.ty, |c| c.ty);
                (column.name.clone(), conform(value, ty))
            })
            .collect()
    }
}

/// A value as its column's schema describes it: timestamps in RFC 3339, and anything in a
/// column widened to text as its text (a consumer validating against the schema accepts it).
pub fn conform(value: &Value, ty: ColumnType) -> Value {
    match (ty, value) {
        (_, Value::Null) => Value::Null,
        (ColumnType::Timestamp, Value::String(s))
            if matches!(
                ColumnType::of(value),
                ColumnType::Timestamp | ColumnType::Date
            ) =>
        {
            Value::String(rfc3339(s))
        }
        (ColumnType::Null | ColumnType::Text, Value::String(_)) => value.clone(),
        (ColumnType::Null | ColumnType::Text, other) => Value::String(match other {
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            nested => nested.to_string(),
        }),
        _ => value.clone(),
    }
}

/// `2024-01-02 10:11:12` (Pipedrive v1, UTC) → `2024-01-02T10:11:12Z`; a bare date becomes its
/// midnight; RFC 3339 input is kept, with `+HH` or `+HHMM` offsets written `+HH:MM`.
pub fn rfc3339(text: &str) -> String {
    if text.len() == 10 {
        return format!("{text}T00:00:00Z");
    }
    let mut out = String::with_capacity(text.len() + 1);
    out.push_str(&text[..10]);
    out.push('T');
    out.push_str(&text[11..19]);
    let rest = &text[19..];
    let fraction_len = rest
        .strip_prefix('.')
        .map_or(0, |f| 1 + f.bytes().take_while(u8::is_ascii_digit).count());
    out.push_str(&rest[..fraction_len]);
    let zone = &rest[fraction_len..];
    match zone.len() {
        0 => out.push('Z'),
        3 => {
            out.push_str(zone);
            out.push_str(":00");
        }
        5 => {
            out.push_str(&zone[..3]);
            out.push(':');
            out.push_str(&zone[3..]);
        }
        _ => out.push_str(zone),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, ty: ColumnType) -> Column {
        Column {
            name: name.to_owned(),
            ty,
        }
    }

    #[test]
    fn timestamps_become_rfc3339() {
        assert_eq!(rfc3339("2024-01-02 10:11:12"), "2024-01-02T10:11:12Z");
        assert_eq!(
            rfc3339("2024-01-02 10:11:12.250"),
            "2024-01-02T10:11:12.250Z"
        );
        assert_eq!(rfc3339("2024-01-02T10:11:12Z"), "2024-01-02T10:11:12Z");
        assert_eq!(
            rfc3339("2024-01-02T10:11:12+02:00"),
            "2024-01-02T10:11:12+02:00"
        );
        assert_eq!(
            rfc3339("2024-01-02T10:11:12+0200"),
            "2024-01-02T10:11:12+02:00"
        );
        assert_eq!(
            rfc3339("2024-01-02T10:11:12-05"),
            "2024-01-02T10:11:12-05:00"
        );
        assert_eq!(rfc3339("2024-01-02"), "2024-01-02T00:00:00Z");
    }

    #[test]
    fn merging_reports_new_and_widened_columns_only() {
        let mut known = StreamColumns::default();
        assert!(known.merge(&[
            column("id", ColumnType::BigInt),
            column("note", ColumnType::Null)
        ]));
        assert!(!known.merge(&[
            column("id", ColumnType::BigInt),
            column("note", ColumnType::Null)
        ]));
        // Null and Text share a schema: a first real string changes nothing announced.
        assert!(!known.merge(&[column("note", ColumnType::Text)]));
        assert!(known.merge(&[column("id", ColumnType::Double)]));
        assert!(known.merge(&[column("extra", ColumnType::Json)]));
        assert_eq!(
            known.json_schema(),
            json!({"type": "object", "properties": {
                "id": {"type": ["null", "number"]},
                "note": {"type": ["null", "string"]},
                "extra": {}
            }})
        );
    }

    #[test]
    fn records_conform_to_the_widened_schema() {
        let mut known = StreamColumns::default();
        known.merge(&[
            column("when", ColumnType::Timestamp),
            column("mixed", ColumnType::Text),
        ]);
        let batch = [
            column("when", ColumnType::Timestamp),
            column("mixed", ColumnType::Json),
            column("flag", ColumnType::Boolean),
        ];
        known.merge(&batch);
        let record = known.record(
            &batch,
            &[json!("2024-01-02 10:11:12"), json!({"a": 1}), json!(true)],
        );
        assert_eq!(
            Value::Object(record),
            json!({"when": "2024-01-02T10:11:12Z", "mixed": "{\"a\":1}", "flag": true})
        );
    }

    #[test]
    fn discovered_schema_names_key_and_cursor() {
        let deals = pipedrive_engine::catalog::find("deals").expect("deals");
        assert_eq!(
            discovered_schema(deals),
            json!({"type": "object", "additionalProperties": true, "properties": {
                "id": {},
                "update_time": {"type": ["null", "string"], "format": "date-time"}
            }})
        );
    }
}
