//! Record transforms: custom fields under human column names, enum and set options as labels,
//! subfields (monetary currency, date-range end, address parts) as sibling columns.
//!
//! Column names for custom fields are chosen once and remembered in the stream's state, so a
//! field renamed in Pipedrive keeps its column and a deleted field keeps its data.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value};

use crate::catalog::{CustomFieldLayout, FieldDefinitions};
use crate::schema::ValueRef;

/// The key v2 records hold their custom fields under.
pub const NESTED_CUSTOM_FIELDS: &str = "custom_fields";

/// Keys of Pipedrive custom fields are 40 lowercase hex characters.
pub fn is_custom_field_key(key: &str) -> bool {
    key.len() == 40
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What a custom field definition says about its values.
#[derive(Clone, Debug, Default)]
pub struct FieldInfo {
    pub name: String,
    pub field_type: String,
    /// Option id → label, for enum and set fields.
    pub options: HashMap<String, String>,
}

impl FieldInfo {
    /// The label of the option whose id is `id` (a number, or its text).
    fn label(&self, id: &ValueRef<'_>) -> Option<&str> {
        match id {
            ValueRef::Number(id) => self.options.get(&id.to_string()),
            ValueRef::Text(id) => self.options.get(id.as_ref()),
            _ => None,
        }
        .map(String::as_str)
    }
}

/// Custom field definitions of one entity, keyed by their 40-hex key, plus the built-in keys
/// a custom field's column must not collide with.
#[derive(Clone, Debug, Default)]
pub struct FieldCatalog {
    pub custom: BTreeMap<String, FieldInfo>,
    pub builtin: BTreeSet<String>,
}

impl FieldCatalog {
    /// Reads the records of a `*_fields` stream.
    pub fn from_definitions(records: &[Value], shape: FieldDefinitions) -> FieldCatalog {
        let mut catalog = FieldCatalog::default();
        for record in records {
            let Some(key) = record.get(shape.key).and_then(Value::as_str) else {
                continue;
            };
            if !is_custom_field_key(key) {
                catalog.builtin.insert(key.to_owned());
                continue;
            }
            let name = record
                .get(shape.name)
                .and_then(Value::as_str)
                .unwrap_or(key)
                .to_owned();
            let field_type = record
                .get("field_type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let options = record
                .get("options")
                .and_then(Value::as_array)
                .map(|options| {
                    options
                        .iter()
                        .filter_map(|option| {
                            let id = option.get("id")?;
                            let label = option.get("label")?.as_str()?;
                            Some((id_text(id)?, label.to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            catalog.custom.insert(
                key.to_owned(),
                FieldInfo {
                    name,
                    field_type,
                    options,
                },
            );
        }
        catalog
    }
}

fn id_text(id: &Value) -> Option<String> {
    match id {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Turns a human field name into a column name: lowercase ASCII words joined by `_`.
/// Non-ASCII letters are kept (destinations quote every identifier), punctuation is not.
pub fn column_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches('_');
    let mut column = if trimmed.is_empty() {
        "field".to_owned()
    } else {
        trimmed.to_owned()
    };
    if column.starts_with(|c: char| c.is_ascii_digit()) {
        column.insert_str(0, "f_");
    }
    column
}

/// Assigns columns to custom fields that have none yet, by one deterministic rule:
///
/// - a field takes its name's [`column_name`] together with the sibling columns its value
///   spreads into (`<column>_<part>`, from `parts_of` its type);
/// - if any of those is already taken (a built-in key the `*Fields` list names, a name in
///   `reserved`, or a column or sibling of another custom field), it tries `<name>_custom`,
///   then `<name>_custom_2`, `<name>_custom_3`, ...;
/// - fields are assigned in key order, so the result does not depend on listing order.
///
/// Existing assignments never change (a renamed field keeps its column), except one that
/// collides with a reserved name: it was overwriting a built-in column, and is assigned anew.
pub fn assign_columns(
    catalog: &FieldCatalog,
    reserved: &BTreeSet<String>,
    parts_of: impl Fn(&str) -> Vec<&'static str>,
    assigned: &mut BTreeMap<String, String>,
) {
    let claims = |column: &str, field_type: &str| -> Vec<String> {
        std::iter::once(column.to_owned())
            .chain(
                parts_of(field_type)
                    .iter()
                    .map(|part| format!("{column}_{part}")),
            )
            .collect()
    };
    let field_type = |key: &str| {
        catalog
            .custom
            .get(key)
            .map_or("", |field| field.field_type.as_str())
    };
    let mut taken: BTreeSet<String> = catalog.builtin.iter().chain(reserved).cloned().collect();
    taken.insert("id".to_owned());
    taken.insert("custom_fields".to_owned());
    assigned.retain(|key, column| {
        claims(column, field_type(key))
            .iter()
            .all(|claimed| !taken.contains(claimed))
    });
    for (key, column) in assigned.iter() {
        taken.extend(claims(column, field_type(key)));
    }
    for (key, field) in &catalog.custom {
        if assigned.contains_key(key) {
            continue;
        }
        let base = column_name(&field.name);
        let free = |column: &str| {
            claims(column, &field.field_type)
                .iter()
                .all(|claimed| !taken.contains(claimed))
        };
        let mut candidate = base.clone();
        let mut n = 1;
        while !free(&candidate) {
            candidate = match n {
                1 => format!("{base}_custom"),
                n => format!("{base}_custom_{n}"),
            };
            n += 1;
        }
        taken.extend(claims(&candidate, &field.field_type));
        assigned.insert(key.clone(), candidate);
    }
}

/// Everything needed to transform one stream's records.
#[derive(Clone, Debug, Default)]
pub struct RecordTransform {
    pub layout: Option<CustomFieldLayout>,
    pub fields: FieldCatalog,
    /// 40-hex key → column, from the stream's state.
    pub columns: BTreeMap<String, String>,
    /// Filter, excluded and hashed columns, applied after naming.
    pub controls: crate::controls::Controls,
    /// Each column's declared type (see `declared`): rows load as these types whatever a
    /// page holds, so a column's type never depends on which records a run happened to read.
    pub declared: HashMap<String, crate::schema::ColumnType>,
}

impl RecordTransform {
    /// Applies the custom-field transform to one record, in place.
    pub fn apply(&self, record: &mut Map<String, Value>) {
        match self.layout {
            None => {}
            Some(CustomFieldLayout::Nested) => {
                if let Some(custom) = record.remove(NESTED_CUSTOM_FIELDS) {
                    self.nested_fields(custom, &mut |column, value| {
                        record.insert(column, value);
                    });
                }
            }
            Some(CustomFieldLayout::Flat) => {
                let keys: Vec<String> = record
                    .keys()
                    .filter(|k| self.is_flat_field(k))
                    .cloned()
                    .collect();
                // Main values first so their subfield suffixes land next to them.
                let (mains, subfields): (Vec<_>, Vec<_>) =
                    keys.into_iter().partition(|k| k.len() == 40);
                for key in mains.into_iter().chain(subfields) {
                    let value = record.remove(&key).unwrap_or(Value::Null);
                    self.flat_field(&key, value, &mut |column, value| {
                        record.insert(column, value);
                    });
                }
            }
        }
    }

    /// v2's `custom_fields` object, each field as its columns and values. Anything but an
    /// object has no fields.
    pub fn nested_fields(&self, custom: Value, out: &mut dyn FnMut(String, Value)) {
        if let Value::Object(custom) = custom {
            for (key, value) in custom {
                self.emit(&key, value, out);
            }
        }
    }

    /// One of v2's custom fields whose value is not an array or an object, as its column and
    /// value: borrowed from the field's definitions, so nothing is copied.
    pub fn nested_scalar<'a>(
        &'a self,
        key: &'a str,
        value: ValueRef<'a>,
    ) -> (&'a str, ValueRef<'a>) {
        let column = self.column(key);
        let label = match self.fields.custom.get(key) {
            Some(field) if field.field_type == "enum" => field.label(&value),
            _ => None,
        };
        match label {
            Some(label) => (column, ValueRef::Text(Cow::Borrowed(label))),
            None => (column, value),
        }
    }

    /// Whether a key of a v1 record is a custom field's value (`<key>`) or one of its
    /// subfields (`<key>_currency`, ...).
    pub fn is_flat_field(&self, key: &str) -> bool {
        key.get(..40).is_some_and(is_custom_field_key)
    }

    /// One of a v1 record's custom-field keys (see [`RecordTransform::is_flat_field`]) as its
    /// columns and values.
    pub fn flat_field(&self, key: &str, value: Value, out: &mut dyn FnMut(String, Value)) {
        if key.len() == 40 {
            let value = self.flat_value(key, value);
            self.emit(key, value, out);
        } else {
            let (hash, suffix) = key.split_at(40);
            out(format!("{}{suffix}", self.column(hash)), value);
        }
    }

    fn column<'a>(&'a self, key: &'a str) -> &'a str {
        self.columns.get(key).map_or(key, String::as_str)
    }

    /// v1 sends enum ids as `"12"` and sets as `"1,2"`: turn them into the v2 shapes first.
    fn flat_value(&self, key: &str, value: Value) -> Value {
        let Some(field) = self.fields.custom.get(key) else {
            return value;
        };
        match (field.field_type.as_str(), value) {
            ("enum", Value::String(s)) => s.parse::<i64>().map_or(Value::String(s), Value::from),
            ("set", Value::String(s)) => Value::Array(
                s.split(',')
                    .map(|part| {
                        let part = part.trim();
                        part.parse::<i64>()
                            .map_or_else(|_| Value::String(part.to_owned()), Value::from)
                    })
                    .collect(),
            ),
            (_, value) => value,
        }
    }

    /// One custom value (a field of v2's `custom_fields`, or v1's once in v2's shape) under its
    /// column: option ids become labels, and an object value (`{value, currency}`,
    /// `{value, until}`, addresses) becomes the main column plus `<column>_<part>` columns.
    pub fn emit(&self, key: &str, value: Value, out: &mut dyn FnMut(String, Value)) {
        let column = self.column(key).to_owned();
        let field = self.fields.custom.get(key);
        let label = |id: &Value| -> Value {
            field
                .and_then(|f| f.label(&ValueRef::from(id)))
                .map_or_else(|| id.clone(), |label| Value::String(label.to_owned()))
        };
        match value {
            Value::Object(mut parts) if parts.contains_key("value") => {
                let main = parts.remove("value").unwrap_or(Value::Null);
                out(column.clone(), main);
                for (part, v) in parts {
                    out(format!("{column}_{part}"), v);
                }
            }
            Value::Object(option) if option.contains_key("label") && option.contains_key("id") => {
                // `include_option_labels=true` shape.
                out(column, option.get("label").cloned().unwrap_or(Value::Null));
            }
            Value::Array(ids) if field.is_some_and(|f| f.field_type == "set") => {
                out(column, Value::Array(ids.iter().map(label).collect()));
            }
            id if field.is_some_and(|f| f.field_type == "enum") && !id.is_null() => {
                out(column, label(&id));
            }
            other => out(column, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MONEY: &str = "d4de1c1518b4531717c676029a45911c340390a6";
    const COLOUR: &str = "0123456789abcdef0123456789abcdef01234567";
    const TAGS: &str = "89abcdef0123456789abcdef0123456789abcdef";

    fn fields() -> FieldCatalog {
        let records = vec![
            json!({"field_code": "title", "field_name": "Title"}),
            json!({"field_code": MONEY, "field_name": "Contract value", "field_type": "monetary"}),
            json!({"field_code": COLOUR, "field_name": "Title", "field_type": "enum",
                   "options": [{"id": 7, "label": "Red"}]}),
            json!({"field_code": TAGS, "field_name": "Tags; DROP TABLE x", "field_type": "set",
                   "options": [{"id": 1, "label": "a"}, {"id": 2, "label": "b"}]}),
        ];
        FieldCatalog::from_definitions(
            &records,
            FieldDefinitions {
                key: "field_code",
                name: "field_name",
            },
        )
    }

    fn no_parts(_: &str) -> Vec<&'static str> {
        Vec::new()
    }

    fn transform(layout: CustomFieldLayout) -> RecordTransform {
        let fields = fields();
        let mut columns = BTreeMap::new();
        assign_columns(&fields, &BTreeSet::new(), no_parts, &mut columns);
        RecordTransform {
            layout: Some(layout),
            fields,
            columns,
            ..RecordTransform::default()
        }
    }

    #[test]
    fn names_columns_without_collisions_and_keeps_them_on_rename() {
        let t = transform(CustomFieldLayout::Nested);
        assert_eq!(t.columns[MONEY], "contract_value");
        assert_eq!(t.columns[COLOUR], "title_custom");
        assert_eq!(t.columns[TAGS], "tags_drop_table_x");
        let mut renamed = t.fields.clone();
        renamed.custom.get_mut(MONEY).unwrap().name = "Renamed".into();
        let mut columns = t.columns.clone();
        assign_columns(&renamed, &BTreeSet::new(), no_parts, &mut columns);
        assert_eq!(columns[MONEY], "contract_value");
    }

    #[test]
    fn nested_values_become_labelled_columns() {
        let t = transform(CustomFieldLayout::Nested);
        let mut record = json!({"id": 1, "custom_fields": {
            MONEY: {"value": 10.5, "currency": "EUR"}, COLOUR: 7, TAGS: [1, 2],
            "ffffffffffffffffffffffffffffffffffffffff": "unknown field"
        }})
        .as_object()
        .unwrap()
        .clone();
        t.apply(&mut record);
        assert_eq!(
            Value::Object(record),
            json!({"id": 1, "contract_value": 10.5, "contract_value_currency": "EUR",
                   "title_custom": "Red", "tags_drop_table_x": ["a", "b"],
                   "ffffffffffffffffffffffffffffffffffffffff": "unknown field"})
        );
    }

    #[test]
    fn flat_v1_values_match_nested_ones() {
        let t = transform(CustomFieldLayout::Flat);
        let mut record = json!({"id": 1, MONEY: 10.5, format!("{MONEY}_currency"): "EUR",
                                COLOUR: "7", TAGS: "1,2"})
        .as_object()
        .unwrap()
        .clone();
        t.apply(&mut record);
        assert_eq!(
            Value::Object(record),
            json!({"id": 1, "contract_value": 10.5, "contract_value_currency": "EUR",
                   "title_custom": "Red", "tags_drop_table_x": ["a", "b"]})
        );
    }

    #[test]
    fn flat_keys_with_a_multibyte_character_at_byte_40_stay_as_they_are() {
        let t = transform(CustomFieldLayout::Flat);
        let key = format!("{}é", &MONEY[..39]);
        let mut record = json!({"id": 1, key.clone(): 5})
            .as_object()
            .unwrap()
            .clone();
        t.apply(&mut record);
        assert_eq!(Value::Object(record), json!({"id": 1, key: 5}));
    }

    #[test]
    fn column_names_are_tame() {
        assert_eq!(column_name("Deal – Größe (€)"), "deal_größe");
        assert_eq!(column_name("2nd phone"), "f_2nd_phone");
        assert_eq!(column_name("\"; --"), "field");
    }
}
