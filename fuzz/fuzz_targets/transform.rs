//! Arbitrary records, custom-field definitions and data controls (row filter, excluded and
//! hashed columns) through the record transform and `build_rows`: never a panic, the same
//! input always yields the same columns, and the rows always become an Arrow record batch.
//! The same records as a page's text, decoded straight into a batch (`decode_page`), give
//! what the general path gives, value by value, whenever the decode takes the page.

#![no_main]

use std::collections::{BTreeMap, HashSet};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pipedrive_engine::catalog::{self, CustomFieldLayout, FieldDefinitions, StreamDef};
use pipedrive_engine::columnar;
use pipedrive_engine::controls::{Controls, RowFilter};
use pipedrive_engine::declared::{self, assign_custom_columns};
use pipedrive_engine::runner::build_rows;
use pipedrive_engine::runner::decode::{Decoded, decode_page};
use pipedrive_engine::source;
use pipedrive_engine::transform::{FieldCatalog, RecordTransform};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A few real-looking 40-hex keys, so definitions and records refer to the same fields.
const KEYS: [&str; 4] = [
    "d4de1c1518b4531717c676029a45911c340390a6",
    "0123456789abcdef0123456789abcdef01234567",
    "89abcdef0123456789abcdef0123456789abcdef",
    "ffffffffffffffffffffffffffffffffffffffff",
];

/// Keys records and controls share: the primary key, built-in fields, the v2 wrapper.
const KNOWN: [&str; 6] = [
    "id",
    "title",
    "value",
    "update_time",
    "custom_fields",
    "currency",
];

/// Text as characters: arbitrary `char`s are mostly multi-byte, which is where byte-indexed
/// slicing breaks.
type Text = Vec<char>;

fn text(chars: &[char]) -> String {
    chars.iter().collect()
}

#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Custom(u8),
    /// A v1 subfield such as `<hash>_currency`, with any suffix.
    CustomWithSuffix(u8, Text),
    /// A custom key cut short and continued with other characters.
    CustomPrefix(u8, u8, Text),
    Other(Text),
}

impl Key {
    fn text(&self) -> String {
        match self {
            Key::Known(i) => KNOWN[usize::from(*i) % KNOWN.len()].to_owned(),
            Key::Custom(i) => KEYS[usize::from(*i) % KEYS.len()].to_owned(),
            Key::CustomWithSuffix(i, suffix) => {
                format!("{}{}", KEYS[usize::from(*i) % KEYS.len()], text(suffix))
            }
            Key::CustomPrefix(i, length, rest) => {
                let key = KEYS[usize::from(*i) % KEYS.len()];
                format!("{}{}", &key[..usize::from(*length) % key.len()], text(rest))
            }
            Key::Other(key) => text(key),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Shapes the type inference looks for (dates, timestamps), then any characters.
    Text(Option<Stamp>, Text),
    Array(Vec<Json>),
    Object(Vec<(Key, Json)>),
}

impl Json {
    fn value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(n) => Value::from(*n),
            Json::Float(x) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
            Json::Text(stamp, rest) => {
                let prefix = stamp.map_or("", Stamp::text);
                Value::String(format!("{prefix}{}", text(rest)))
            }
            Json::Array(items) => Value::Array(items.iter().map(Json::value).collect()),
            Json::Object(entries) => Value::Object(object(entries)),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Stamp {
    Date,
    Timestamp,
    TimestampUtc,
    Partial,
}

impl Stamp {
    fn text(self) -> &'static str {
        match self {
            Stamp::Date => "2024-01-02",
            Stamp::Timestamp => "2024-01-02 10:11:12",
            Stamp::TimestampUtc => "2024-01-02T10:11:12.5+02:00",
            Stamp::Partial => "2024-01-0",
        }
    }
}

fn object(entries: &[(Key, Json)]) -> Map<String, Value> {
    entries.iter().map(|(k, v)| (k.text(), v.value())).collect()
}

#[derive(Arbitrary, Debug)]
struct Field {
    key: Key,
    name: Option<Text>,
    field_type: FieldType,
    options: Vec<(Json, Json)>,
}

#[derive(Arbitrary, Debug)]
enum FieldType {
    Missing,
    Enum,
    Set,
    Monetary,
    Other(Text),
}

#[derive(Arbitrary, Debug)]
struct Input {
    nested: bool,
    fields: Vec<Field>,
    /// How many fields an earlier sync already knew (their columns are in the state).
    known_before: u8,
    records: Vec<Vec<(Key, Json)>>,
    controls: FuzzControls,
}

#[derive(Arbitrary, Debug)]
struct FuzzControls {
    exclude: Vec<Key>,
    hash: Vec<Key>,
    salt: Text,
    /// Filter text, parsed as the config parses `filter:`; a parse error means no filter.
    filter: Option<Text>,
}

impl FuzzControls {
    fn controls(&self) -> Controls {
        Controls {
            exclude: self.exclude.iter().map(Key::text).collect(),
            hash: self.hash.iter().map(Key::text).collect(),
            salt: text(&self.salt),
            filter: self
                .filter
                .as_ref()
                .and_then(|filter| text(filter).parse::<RowFilter>().ok()),
            keys: Vec::new(),
        }
    }
}

fn stream(layout: CustomFieldLayout) -> (&'static StreamDef, FieldDefinitions) {
    catalog::CATALOG
        .iter()
        .find_map(|def| {
            let custom = def.custom_fields.filter(|c| c.layout == layout)?;
            let shape = catalog::find(custom.defined_by)?.field_definitions?;
            Some((def, shape))
        })
        .expect("the catalog has a stream with custom fields in each layout")
}

fn definitions(fields: &[Field], shape: FieldDefinitions) -> Vec<Value> {
    fields
        .iter()
        .map(|field| {
            let mut record = Map::new();
            record.insert(shape.key.to_owned(), Value::String(field.key.text()));
            if let Some(name) = &field.name {
                record.insert(shape.name.to_owned(), Value::String(text(name)));
            }
            let field_type = match &field.field_type {
                FieldType::Missing => None,
                FieldType::Enum => Some("enum".to_owned()),
                FieldType::Set => Some("set".to_owned()),
                FieldType::Monetary => Some("monetary".to_owned()),
                FieldType::Other(other) => Some(text(other)),
            };
            if let Some(field_type) = field_type {
                record.insert("field_type".to_owned(), Value::String(field_type));
            }
            let options = field
                .options
                .iter()
                .map(|(id, label)| serde_json::json!({"id": id.value(), "label": label.value()}))
                .collect();
            record.insert("options".to_owned(), Value::Array(options));
            Value::Object(record)
        })
        .collect()
}

fn columns_for(
    input: &Input,
    def: &StreamDef,
    shape: FieldDefinitions,
) -> (FieldCatalog, BTreeMap<String, String>) {
    let known = usize::from(input.known_before).min(input.fields.len());
    let earlier =
        FieldCatalog::from_definitions(&definitions(&input.fields[..known], shape), shape);
    let mut columns = BTreeMap::new();
    assign_custom_columns(def, &earlier, &mut columns);
    let before = columns.clone();

    let fields = FieldCatalog::from_definitions(&definitions(&input.fields, shape), shape);
    assign_custom_columns(def, &fields, &mut columns);
    for (key, column) in &before {
        assert_eq!(&columns[key], column, "an assigned column changed");
    }
    let distinct: HashSet<&String> = columns.values().collect();
    assert_eq!(
        distinct.len(),
        columns.len(),
        "two fields share a column: {columns:?}"
    );
    for (key, column) in &columns {
        if !before.contains_key(key) {
            assert!(
                !fields.builtin.contains(column) && column != "id" && column != "custom_fields",
                "{key} took the built-in column {column}"
            );
        }
    }
    (fields, columns)
}

fuzz_target!(|input: Input| {
    let layout = if input.nested {
        CustomFieldLayout::Nested
    } else {
        CustomFieldLayout::Flat
    };
    let (def, shape) = stream(layout);
    let (fields, columns) = columns_for(&input, def, shape);
    assert_eq!(
        columns_for(&input, def, shape).1,
        columns,
        "the same fields got different columns"
    );

    let transform = RecordTransform {
        layout: Some(layout),
        fields,
        columns,
        controls: input.controls.controls(),
        declared: Default::default(),
    };
    let records: Vec<Map<String, Value>> = input.records.iter().map(|r| object(r)).collect();
    let built = build_rows(def, &transform, records.clone());
    let again = build_rows(def, &transform, records);
    assert_eq!(
        built.columns, again.columns,
        "the same records got different columns"
    );
    assert_eq!(built.rows, again.rows);
    assert_eq!(built.filtered_out, again.filtered_out);
    let names: HashSet<&str> = built.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), built.columns.len(), "a column appears twice");
    assert!(
        built
            .rows
            .iter()
            .all(|row| row.len() == built.columns.len())
    );
    // Every value fits the type its column was given, so the page always becomes arrays.
    if let Err(misfit) = columnar::record_batch(&built.columns, &built.rows) {
        panic!("{misfit}");
    }

    decodes_as_the_general_path(&input, def, shape, transform);
});

/// The records as a page's text (a key may repeat, as JSON allows), with the columns a run
/// declares: the direct decode, when it takes the page, agrees with the general path.
fn decodes_as_the_general_path(
    input: &Input,
    def: &'static StreamDef,
    shape: FieldDefinitions,
    transform: RecordTransform,
) {
    let custom = def.custom_fields.expect("a stream with custom fields");
    let definitions = std::collections::HashMap::from([(
        custom.defined_by,
        std::sync::Arc::new(definitions(&input.fields, shape)),
    )]);
    let plain = RecordTransform {
        controls: Controls::default(),
        declared: declared::stream_columns(def, &definitions, None)
            .into_iter()
            .map(|column| (column.name, column.ty))
            .collect(),
        ..transform
    };
    let items: Vec<Box<RawValue>> = input
        .records
        .iter()
        .map(|entries| {
            let fields: Vec<String> = entries
                .iter()
                .map(|(key, value)| {
                    let key = serde_json::to_string(&key.text()).expect("a string");
                    format!("{key}:{}", value.value())
                })
                .collect();
            RawValue::from_string(format!("{{{}}}", fields.join(","))).expect("JSON")
        })
        .collect();
    let Some((Decoded { columns, records }, newest)) = decode_page(def, &plain, &items) else {
        return;
    };
    let parsed = source::parse_records(def, &items, None, false);
    assert_eq!(newest, source::newest_cursor(def.cursor_field, &parsed));
    let general = build_rows(def, &plain, parsed);
    assert_eq!(columns, general.columns);
    let general = columnar::record_batch(&general.columns, &general.rows)
        .unwrap_or_else(|misfit| panic!("{misfit}"));
    assert_eq!(records.schema(), general.schema());
    assert_eq!(records.num_rows(), general.num_rows());
    for (index, column) in columns.iter().enumerate() {
        for row in 0..records.num_rows() {
            assert_eq!(
                columnar::json_value(column.ty, records.column(index), row),
                columnar::json_value(column.ty, general.column(index), row),
                "column {} row {row}",
                column.name
            );
        }
    }
}
