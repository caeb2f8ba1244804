//! What the Singer and Airbyte destinations share: each stream's declared columns as JSON
//! Schema (the same on every run unless Pipedrive's field definitions change), and rows as
//! records that match it.

use std::collections::{BTreeMap, BTreeSet};

use pipedrive_engine::declared::fits;
use pipedrive_engine::schema::{Column, ColumnType};
use pipedrive_engine::{Batch, StreamDef};
use serde_json::{Map, Value, json};

/// Which protocol a schema is written for: Airbyte reads an `airbyte_type` on timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    Singer,
    Airbyte,
}

/// The JSON Schema of one column. Every column is nullable: Pipedrive omits or nulls any field.
pub fn column_schema(ty: ColumnType, flavour: Flavour) -> Value {
    match ty {
        ColumnType::Null | ColumnType::Text => json!({"type": ["null", "string"]}),
        ColumnType::Boolean => json!({"type": ["null", "boolean"]}),
        ColumnType::BigInt => json!({"type": ["null", "integer"]}),
        ColumnType::Double => json!({"type": ["null", "number"]}),
        ColumnType::Date => json!({"type": ["null", "string"], "format": "date"}),
        ColumnType::Timestamp if flavour == Flavour::Airbyte => {
            json!({"type": ["null", "string"], "format": "date-time", "airbyte_type": "timestamp_with_timezone"})
        }
        ColumnType::Timestamp => json!({"type": ["null", "string"], "format": "date-time"}),
        // Airbyte types a column by one JSON type; `object` is stored as JSON, which holds the
        // arrays such a column may carry too.
        ColumnType::Json if flavour == Flavour::Airbyte => json!({"type": ["null", "object"]}),
        ColumnType::Json => json!({"type": ["null", "object", "array"]}),
    }
}

/// `{"type": "object", "properties": {column: schema}}` of `columns`.
pub fn object_schema<'a>(columns: impl IntoIterator<Item = &'a Column>, flavour: Flavour) -> Value {
    let properties: Map<String, Value> = columns
        .into_iter()
        .map(|c| (c.name.clone(), column_schema(c.ty, flavour)))
        .collect();
    json!({"type": "object", "properties": properties})
}

/// A stream's declared columns while it is sent: the consumer's selection, columns the
/// declaration did not know (added as text), and values that did not fit their type.
#[derive(Clone, Debug, Default)]
pub struct DeclaredStream {
    columns: Vec<Column>,
    /// Columns the consumer deselected: left out of the schema and every record.
    excluded: BTreeSet<String>,
    announced: bool,
    /// Values sent as null because they did not fit their column's type, per column.
    misfits: BTreeMap<String, u64>,
}

impl DeclaredStream {
    pub fn new(columns: Vec<Column>, excluded: BTreeSet<String>) -> DeclaredStream {
        DeclaredStream {
            columns,
            excluded,
            ..DeclaredStream::default()
        }
    }

    /// Takes in a batch's columns: those not declared are added as text (which holds any
    /// value). True when the schema must be (re)announced: the first time, or a column was added.
    pub fn admit(&mut self, batch: &[Column]) -> bool {
        let mut changed = !self.announced;
        for column in batch {
            if !self.columns.iter().any(|c| c.name == column.name) {
                tracing::warn!(
                    column = column.name,
                    "a column no definition declares: announced as text"
                );
                self.columns
                    .push(Column::new(&column.name, ColumnType::Text));
                changed |= !self.excluded.contains(&column.name);
            }
        }
        self.announced = true;
        changed
    }

    /// The selected columns' JSON Schema.
    pub fn json_schema(&self, flavour: Flavour) -> Value {
        object_schema(
            self.columns
                .iter()
                .filter(|c| !self.excluded.contains(&c.name)),
            flavour,
        )
    }

    /// The batch's rows as records of their selected columns, each value shaped to its
    /// declared type. Which columns go, and as what, is settled once per batch.
    pub fn records(&mut self, batch: &Batch<'_>) -> Vec<Map<String, Value>> {
        let selected: Vec<(usize, &str, ColumnType)> = batch
            .columns
            .iter()
            .enumerate()
            .filter(|(_, column)| !self.excluded.contains(&column.name))
            .map(|(index, column)| {
                let declared = self
                    .columns
                    .iter()
                    .find(|c| c.name == column.name)
                    .map_or(ColumnType::Text, |c| c.ty);
                (index, column.name.as_str(), declared)
            })
            .collect();
        let mut misfits = vec![0_u64; selected.len()];
        let records = (0..batch.len())
            .map(|row| {
                let mut record = Map::new();
                for (&(index, name, ty), misfit) in selected.iter().zip(&mut misfits) {
                    let value = batch.value(row, index);
                    let value = if fits(&value, ty) {
                        conform(&value, ty)
                    } else {
                        *misfit += 1;
                        Value::Null
                    };
                    record.insert(name.to_owned(), value);
                }
                record
            })
            .collect();
        for ((_, name, _), count) in selected.iter().zip(misfits) {
            if count > 0 {
                *self.misfits.entry((*name).to_owned()).or_default() += count;
            }
        }
        records
    }

    /// Columns with values sent as null since the last call, and how many.
    pub fn take_misfits(&mut self) -> BTreeMap<String, u64> {
        std::mem::take(&mut self.misfits)
    }
}

/// Tells the user, on stderr, about values sent as null because they did not fit.
pub fn warn_misfits(stream: &str, misfits: BTreeMap<String, u64>) {
    for (column, count) in misfits {
        tracing::warn!(
            stream,
            column,
            count,
            "values that do not fit the column's declared type were sent as null"
        );
    }
}

/// The names a stream's key and cursor: always sent, whatever the selection.
pub fn automatic(def: &StreamDef) -> impl Iterator<Item = &'static str> {
    def.primary_key.iter().copied().chain(def.cursor_field)
}

/// A value as its column's schema describes it: timestamps in RFC 3339, and anything in a
/// text column as its text. Call only with values that [`fits`] the type.
pub fn conform(value: &Value, ty: ColumnType) -> Value {
    match (ty, value) {
        (_, Value::Null) => Value::Null,
        (ColumnType::Timestamp, Value::String(s)) => Value::String(rfc3339(s)),
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
    fn records_follow_the_declared_types_and_selection() {
        let mut stream = DeclaredStream::new(
            vec![
                column("id", ColumnType::BigInt),
                column("when", ColumnType::Timestamp),
                column("value", ColumnType::Double),
                column("secret", ColumnType::Text),
            ],
            ["secret".to_owned()].into(),
        );
        let batch = [
            column("id", ColumnType::BigInt),
            column("when", ColumnType::Timestamp),
            column("value", ColumnType::Text),
            column("secret", ColumnType::Text),
            column("surprise", ColumnType::BigInt),
        ];
        assert!(stream.admit(&batch));
        assert!(!stream.admit(&batch));
        assert_eq!(
            stream.json_schema(Flavour::Singer),
            json!({"type": "object", "properties": {
                "id": {"type": ["null", "integer"]},
                "when": {"type": ["null", "string"], "format": "date-time"},
                "value": {"type": ["null", "number"]},
                "surprise": {"type": ["null", "string"]}
            }})
        );
        let rows = [vec![
            json!(1),
            json!("2024-01-02 10:11:12"),
            json!("n/a"),
            json!("x"),
            json!(5),
        ]];
        let records = pipedrive_engine::columnar::record_batch(&batch, &rows).unwrap();
        let table = pipedrive_engine::TableRef {
            schema: "s".to_owned(),
            name: "deals".to_owned(),
        };
        let page = Batch {
            stream: "deals",
            table: &table,
            primary_key: &["id"],
            columns: &batch,
            records: &records,
            replace_parents: None,
            state: &pipedrive_engine::StreamState::default(),
            synced_at: "2024-02-01T00:00:00Z",
            history: false,
        };
        assert_eq!(
            stream
                .records(&page)
                .into_iter()
                .map(Value::Object)
                .collect::<Vec<_>>(),
            [json!({"id": 1, "when": "2024-01-02T10:11:12Z", "value": null, "surprise": "5"})]
        );
        assert_eq!(stream.take_misfits(), [("value".to_owned(), 1)].into());
        assert!(stream.take_misfits().is_empty());
    }
}
