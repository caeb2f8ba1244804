//! A list page's records decoded straight from the JSON text the API sent into one record
//! batch: each value goes into its column's builder as it is read, with no map per record, no
//! copy of each key and no rows in between. Custom fields are named on the way.
//!
//! It gives exactly what the general path gives (records parsed into maps, then
//! [`build_rows`](super::rows::build_rows), then a record batch): the same columns in the same
//! order, the same values, the same warnings. A page it does not take (data controls, a record
//! that is not an object, the same column twice in one record, ...) goes the general way.

use std::borrow::Cow;

use arrow::array::{ArrayRef, UInt32Array};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use rustc_hash::FxHashMap;
use serde::de::{DeserializeSeed, Error as _, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::rows::{deleted_marks, warn_of_misfits};
use crate::catalog::{CustomFieldLayout, StreamDef};
use crate::columnar::{self, ColumnBuilder};
use crate::declared::fits_ref;
use crate::destination::columns::delete_marks;
use crate::schema::{Column, ColumnType, ValueRef, normalize_timestamp};
use crate::transform::{NESTED_CUSTOM_FIELDS, RecordTransform};

/// One page's rows as a record batch, with the columns it holds.
pub struct Decoded {
    pub columns: Vec<Column>,
    pub records: RecordBatch,
}

/// The page's records as the general path would load them, with the newest cursor value among
/// them (see [`crate::source::newest_cursor`]); `None` when the page needs that path.
pub fn decode_page(
    def: &StreamDef,
    transform: &RecordTransform,
    items: &[Box<RawValue>],
) -> Option<(Decoded, Option<String>)> {
    if !transform.controls.is_empty() {
        return None;
    }
    let mut page = PageColumns::new(def, transform, items.len());
    for raw in items {
        let mut parser = serde_json::Deserializer::from_str(raw.get());
        let record = EachField {
            page: &mut page,
            read: PageColumns::field,
        };
        record.deserialize(&mut parser).ok()?;
        page.end_record()?;
    }
    page.finish()
}

/// Records already parsed (a child stream's: rows made of a parent's array, or a fan-out's
/// pages) as the general path would load them, so they skip the rows in between; `None` when
/// they need that path (data controls, custom fields to name).
pub fn decode_records(
    def: &StreamDef,
    transform: &RecordTransform,
    records: &[Map<String, Value>],
) -> Option<Decoded> {
    if !transform.controls.is_empty() || transform.layout.is_some() {
        return None;
    }
    let mut page = PageColumns::new(def, transform, records.len());
    for record in records {
        for (name, value) in record {
            page.put(name, &ValueRef::from(value), false).ok()?;
        }
        page.end_record()?;
    }
    page.finish().map(|(decoded, _)| decoded)
}

/// Each column's values so far, as the page's records are read.
struct PageColumns<'t> {
    def: &'t StreamDef,
    transform: &'t RecordTransform,
    capacity: usize,
    columns: Vec<Values>,
    index: FxHashMap<String, usize>,
    /// Records read so far.
    records: usize,
    misfits: usize,
    /// The record being read: its key's values, deleted flag and cursor.
    key: Vec<String>,
    flag: Option<ValueRef<'static>>,
    changed_at: Option<String>,
    /// Each key's first record and its last (which wins, at the first one's place).
    by_key: FxHashMap<String, usize>,
    winners: Vec<u32>,
    newest: Option<String>,
}

/// One column's values.
struct Values {
    column: Column,
    /// What orders the columns as the general path does: the record the column first appears
    /// in, then the record's fields by name, then the delete marks.
    order: (usize, bool),
    /// The records it has a value for, the one being read included.
    filled: usize,
    role: Option<Role>,
    held: Held,
}

/// What else a column's value says about its record.
#[derive(Clone, Copy)]
enum Role {
    /// Part `.0` of the stream's primary key.
    Key(usize),
    /// The field that marks a deleted record.
    DeletedFlag,
    /// The stream's cursor: when the record changed.
    ChangedAt,
}

enum Held {
    /// A declared column: its values go straight into its array.
    Declared(ColumnBuilder),
    /// A column no definition declares: its type is the widest of its values, known once
    /// every record is read.
    Inferred(Vec<Value>),
}

/// The same column twice in one record, or a value its builder refuses: the general path
/// decides.
struct Unsupported;

impl<'t> PageColumns<'t> {
    fn new(def: &'t StreamDef, transform: &'t RecordTransform, capacity: usize) -> Self {
        PageColumns {
            def,
            transform,
            capacity,
            columns: Vec::new(),
            index: FxHashMap::default(),
            records: 0,
            misfits: 0,
            key: vec![String::new(); def.primary_key.len()],
            flag: None,
            changed_at: None,
            by_key: FxHashMap::default(),
            winners: Vec::with_capacity(capacity),
            newest: None,
        }
    }

    /// A top-level field of the record as the API sent it.
    fn field(&mut self, name: &str, raw: &RawValue) -> Result<(), Unsupported> {
        match self.transform.layout {
            Some(CustomFieldLayout::Nested) if name == NESTED_CUSTOM_FIELDS => {
                return match raw.get().as_bytes().first() {
                    Some(b'{') => {
                        let mut parser = serde_json::Deserializer::from_str(raw.get());
                        let fields = EachField {
                            page: self,
                            read: PageColumns::nested_custom,
                        };
                        fields.deserialize(&mut parser).map_err(|_| Unsupported)
                    }
                    // Anything but an object has no fields.
                    _ => Ok(()),
                };
            }
            Some(CustomFieldLayout::Flat) if self.transform.is_flat_field(name) => {
                return self.custom(raw, |transform, value, out| {
                    transform.flat_field(name, value, out);
                });
            }
            _ => {}
        }
        let value = ValueRef::of_raw(raw).ok_or(Unsupported)?;
        self.put(name, &value, false)
    }

    /// One of v2's custom fields: a plain value as it is read, an array or an object (a
    /// monetary amount with its currency, an address, a set's options) parsed and spread
    /// into its columns by the stream's transform.
    fn nested_custom(&mut self, key: &str, raw: &RawValue) -> Result<(), Unsupported> {
        let value = ValueRef::of_raw(raw).ok_or(Unsupported)?;
        if let ValueRef::Nested(_) = value {
            return self.custom(raw, |transform, value, out| {
                transform.emit(key, value, out);
            });
        }
        let transform = self.transform;
        let (column, value) = transform.nested_scalar(key, value);
        self.put(column, &value, false)
    }

    /// A custom-field value, parsed and named by the stream's transform.
    fn custom(
        &mut self,
        raw: &RawValue,
        name: impl FnOnce(&RecordTransform, Value, &mut dyn FnMut(String, Value)),
    ) -> Result<(), Unsupported> {
        let value: Value = serde_json::from_str(raw.get()).map_err(|_| Unsupported)?;
        let transform = self.transform;
        let mut outcome = Ok(());
        name(transform, value, &mut |column, value| {
            if outcome.is_ok() {
                outcome = self.put(&column, &ValueRef::from(&value), false);
            }
        });
        outcome
    }

    fn put(&mut self, name: &str, value: &ValueRef<'_>, mark: bool) -> Result<(), Unsupported> {
        let position = match self.index.get(name) {
            Some(&position) => position,
            None => self.add(name, mark),
        };
        let values = &mut self.columns[position];
        if values.filled > self.records {
            return Err(Unsupported);
        }
        values.filled = self.records + 1;
        // Read by the column a value lands in, as the general path reads the record once
        // custom fields are named.
        match values.role {
            Some(Role::Key(part)) => self.key[part] = value.to_string(),
            Some(Role::DeletedFlag) => {
                self.flag = Some(match value {
                    ValueRef::Bool(flag) => ValueRef::Bool(*flag),
                    ValueRef::Number(n) => ValueRef::Number(n.clone()),
                    _ => ValueRef::Null,
                });
            }
            Some(Role::ChangedAt) => self.changed_at = value.as_str().map(str::to_owned),
            None => {}
        }
        match &mut values.held {
            Held::Declared(builder) => {
                if fits_ref(value, values.column.ty) {
                    builder
                        .append_ref(&values.column, value)
                        .map_err(|_| Unsupported)?;
                } else {
                    builder.append_nulls(1);
                    self.misfits += 1;
                }
            }
            Held::Inferred(held) => {
                values.column.ty = values.column.ty.widen(ColumnType::of_ref(value));
                held.push(value.to_value());
            }
        }
        Ok(())
    }

    /// A column first seen in the record being read: null in the records before it.
    fn add(&mut self, name: &str, mark: bool) -> usize {
        let declared = self.transform.declared.get(name).copied();
        let held = match declared {
            Some(ty) => {
                let mut builder = ColumnBuilder::new(ty, self.capacity);
                builder.append_nulls(self.records);
                Held::Declared(builder)
            }
            None => {
                let mut held = Vec::with_capacity(self.capacity);
                held.resize(self.records, Value::Null);
                Held::Inferred(held)
            }
        };
        let def = self.def;
        let role = if mark {
            None
        } else if let Some(part) = def.primary_key.iter().position(|key| *key == name) {
            Some(Role::Key(part))
        } else if def
            .deletes
            .and_then(|deletes| deletes.flag)
            .is_some_and(|(flag, _)| flag == name)
        {
            Some(Role::DeletedFlag)
        } else if def.cursor_field == Some(name) {
            Some(Role::ChangedAt)
        } else {
            None
        };
        self.columns.push(Values {
            column: Column::new(name, declared.unwrap_or(ColumnType::Null)),
            order: (self.records, mark),
            filled: self.records,
            role,
            held,
        });
        self.index.insert(name.to_owned(), self.columns.len() - 1);
        self.columns.len() - 1
    }

    /// After a record's fields: its delete marks, nulls in the columns it lacks, and its key.
    fn end_record(&mut self) -> Option<()> {
        if let Some(deletes) = self.def.deletes {
            let flag = self.flag.take();
            let marks = deleted_marks(deletes, flag.as_ref(), self.changed_at.as_deref());
            for (name, value) in marks {
                self.put(name, &ValueRef::from(&value), true).ok()?;
            }
        }
        if let Some(changed_at) = self
            .changed_at
            .take()
            .as_deref()
            .and_then(normalize_timestamp)
            && self
                .newest
                .as_ref()
                .is_none_or(|newest| changed_at > *newest)
        {
            self.newest = Some(changed_at);
        }
        for values in &mut self.columns {
            if values.filled == self.records {
                values.filled += 1;
                match &mut values.held {
                    Held::Declared(builder) => builder.append_nulls(1),
                    Held::Inferred(held) => held.push(Value::Null),
                }
            }
        }
        let key = self.key.join("\u{1f}");
        self.key.iter_mut().for_each(String::clear);
        let record = u32::try_from(self.records).ok()?;
        match self.by_key.get(&key) {
            Some(&first) => self.winners[first] = record,
            None => {
                self.by_key.insert(key, self.winners.len());
                self.winners.push(record);
            }
        }
        self.records += 1;
        Some(())
    }

    fn finish(mut self) -> Option<(Decoded, Option<String>)> {
        // Delete marks keep their types when every value of the page is null.
        for mark in delete_marks() {
            if let Some(&position) = self.index.get(mark.name.as_str()) {
                let values = &mut self.columns[position];
                match values.held {
                    Held::Inferred(_) => values.column.ty = mark.ty,
                    Held::Declared(_) if values.column.ty != mark.ty => return None,
                    Held::Declared(_) => {}
                }
            }
        }
        warn_of_misfits(self.def, self.misfits);
        self.columns
            .sort_by(|a, b| (a.order, &a.column.name).cmp(&(b.order, &b.column.name)));
        let mut fields: Vec<Field> = Vec::with_capacity(self.columns.len());
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for values in &mut self.columns {
            fields.push(columnar::field(&values.column));
            arrays.push(match &mut values.held {
                Held::Declared(builder) => builder.finish(),
                Held::Inferred(held) => {
                    let mut builder = ColumnBuilder::new(values.column.ty, held.len());
                    for value in held.iter() {
                        builder.append(&values.column, value).ok()?;
                    }
                    builder.finish()
                }
            });
        }
        // Records of a key read again: the last one read, where the first one was.
        let rows = self.winners.len();
        if rows < self.records {
            let winners = UInt32Array::from(std::mem::take(&mut self.winners));
            arrays = arrays
                .iter()
                .map(|array| arrow::compute::take(array, &winners, None))
                .collect::<Result<_, _>>()
                .ok()?;
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let records =
            RecordBatch::try_new_with_options(Schema::new(fields).into(), arrays, &options).ok()?;
        let columns = self
            .columns
            .into_iter()
            .map(|values| values.column)
            .collect();
        Some((Decoded { columns, records }, self.newest))
    }
}

/// How an object's field goes into the page's columns: a record's
/// ([`PageColumns::field`]) or one of v2's custom fields ([`PageColumns::nested_custom`]).
type ReadField<'t> = fn(&mut PageColumns<'t>, &str, &RawValue) -> Result<(), Unsupported>;

/// Reads an object's fields into the page's columns, one at a time, as `read` says.
struct EachField<'p, 't> {
    page: &'p mut PageColumns<'t>,
    read: ReadField<'t>,
}

impl<'de> DeserializeSeed<'de> for EachField<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EachField<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(name)) = map.next_key()? {
            let raw: &'de RawValue = map.next_value()?;
            (self.read)(self.page, &name, raw)
                .map_err(|Unsupported| A::Error::custom("left to the general path"))?;
        }
        Ok(())
    }
}

/// A key, borrowed from the page unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key")
            }

            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }

            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::catalog;
    use crate::controls::Controls;
    use crate::declared::{self, FieldDefinitions, assign_custom_columns};
    use crate::runner::rows::{Rows, build_rows};
    use crate::source;
    use crate::transform::FieldCatalog;

    const MONEY: &str = "d4de1c1518b4531717c676029a45911c340390a6";
    const COLOUR: &str = "0123456789abcdef0123456789abcdef01234567";
    const TAGS: &str = "89abcdef0123456789abcdef0123456789abcdef";

    /// A stream's transform as a run makes it (see `stream_transform`), for these fields.
    fn transform(stream: &str, key: &str, name: &str) -> (&'static StreamDef, RecordTransform) {
        let def = catalog::find(stream).unwrap();
        let custom = def.custom_fields.unwrap();
        let fields = vec![
            json!({key: "title", name: "Title"}),
            json!({key: MONEY, name: "Contract value", "field_type": "monetary"}),
            json!({key: COLOUR, name: "Colour", "field_type": "enum",
                   "options": [{"id": 7, "label": "Red"}]}),
            json!({key: TAGS, name: "Tags", "field_type": "set",
                   "options": [{"id": 1, "label": "a"}, {"id": 2, "label": "b"}]}),
        ];
        let shape = catalog::find(custom.defined_by)
            .and_then(|d| d.field_definitions)
            .unwrap();
        let mut transform = RecordTransform {
            layout: Some(custom.layout),
            fields: FieldCatalog::from_definitions(&fields, shape),
            ..RecordTransform::default()
        };
        assign_custom_columns(def, &transform.fields, &mut transform.columns);
        let definitions: FieldDefinitions = HashMap::from([(custom.defined_by, Arc::new(fields))]);
        transform.declared = declared::stream_columns(def, &definitions, None)
            .into_iter()
            .map(|column| (column.name, column.ty))
            .collect();
        (def, transform)
    }

    fn raw(page: &[&str]) -> Vec<Box<RawValue>> {
        page.iter()
            .map(|record| RawValue::from_string((*record).to_owned()).unwrap())
            .collect()
    }

    /// Decodes the page both ways and checks they agree, column by column and value by value;
    /// returns the decoded batch.
    fn decoded_as_general(
        def: &StreamDef,
        transform: &RecordTransform,
        page: &[&str],
    ) -> (Vec<Column>, RecordBatch) {
        let items = raw(page);
        let (Decoded { columns, records }, newest) =
            decode_page(def, transform, &items).expect("the page is decoded directly");
        let parsed = source::parse_records(def, &items, None, false);
        assert_eq!(newest, source::newest_cursor(def.cursor_field, &parsed));
        let Rows {
            columns: general_columns,
            rows,
            ..
        } = build_rows(def, transform, parsed);
        let general = columnar::record_batch(&general_columns, &rows).unwrap();
        assert_same_batch(&columns, &records, &general_columns, &general);
        (columns, records)
    }

    /// The decoded batch and the general path's agree, column by column and value by value.
    fn assert_same_batch(
        columns: &[Column],
        records: &RecordBatch,
        general_columns: &[Column],
        general: &RecordBatch,
    ) {
        assert_eq!(columns, general_columns);
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

    fn cell(records: &RecordBatch, columns: &[Column], name: &str, row: usize) -> Value {
        let index = columns.iter().position(|c| c.name == name).unwrap();
        columnar::json_value(columns[index].ty, records.column(index), row)
    }

    #[test]
    fn a_v2_page_decodes_as_the_general_path_loads_it() {
        let (def, transform) = transform("deals", "field_code", "field_name");
        let page = [
            &format!(
                r#"{{"id":1,"title":"a","value":10,"update_time":"2024-01-01T00:00:00Z","is_deleted":false,"label_ids":[3,1],"custom_fields":{{"{MONEY}":{{"value":10.5,"currency":"EUR"}},"{COLOUR}":7,"{TAGS}":[1,2],"ffffffffffffffffffffffffffffffffffffffff":"unknown"}},"extra":{{"b":1,"a":[2]}}}}"#
            ),
            // Escapes, a value that does not fit its declared type, a deleted record, an
            // offset, a column first seen here.
            r#"{"id":2,"title":"\u00dcn\"q\"","value":"abc","update_time":"2024-01-03T10:00:00+02:00","is_deleted":true,"late":5,"custom_fields":null}"#,
            // A key read again: its last record wins, in the first one's place.
            r#"{"id":1,"title":"b","update_time":"2024-01-02T00:00:00Z","\u0070robability":0.5}"#,
            r#"{"id":3,"late":2.5,"mixed":"text","expected_close_date":"2024-02-30"}"#,
            r#"{"id":4,"mixed":{"z":1,"a":null},"custom_fields":{}}"#,
        ];
        let page: Vec<&str> = page.iter().map(|record| record.as_ref()).collect();
        let (columns, records) = decoded_as_general(def, &transform, &page);
        assert_eq!(records.num_rows(), 4);
        assert_eq!(cell(&records, &columns, "title", 0), json!("b"));
        assert_eq!(cell(&records, &columns, "probability", 0), json!(0.5));
        assert_eq!(cell(&records, &columns, "contract_value", 0), json!(null));
        assert_eq!(cell(&records, &columns, "title", 1), json!("Ün\"q\""));
        assert_eq!(cell(&records, &columns, "value", 1), json!(null));
        assert_eq!(
            cell(&records, &columns, "_deleted_at", 1),
            json!("2024-01-03T08:00:00Z")
        );
        assert_eq!(cell(&records, &columns, "late", 2), json!(2.5));
        assert_eq!(
            cell(&records, &columns, "mixed", 3),
            json!(r#"{"a":null,"z":1}"#)
        );
        assert_eq!(
            cell(&records, &columns, "expected_close_date", 2),
            json!(null)
        );
    }

    #[test]
    fn custom_fields_of_a_v2_page_become_their_columns() {
        let (def, transform) = transform("deals", "field_code", "field_name");
        let record = format!(
            r#"{{"id":1,"custom_fields":{{"{MONEY}":{{"value":10.5,"currency":"EUR"}},"{COLOUR}":7,"{TAGS}":[1,2]}}}}"#
        );
        let (columns, records) = decoded_as_general(def, &transform, &[&record]);
        assert_custom_columns(&records, &columns);
    }

    /// The first record's money, enum and set fields under their columns, as labels.
    fn assert_custom_columns(records: &RecordBatch, columns: &[Column]) {
        assert_eq!(cell(records, columns, "contract_value", 0), json!(10.5));
        assert_eq!(
            cell(records, columns, "contract_value_currency", 0),
            json!("EUR")
        );
        assert_eq!(cell(records, columns, "colour", 0), json!("Red"));
        assert_eq!(cell(records, columns, "tags", 0), json!(["a", "b"]));
    }

    #[test]
    fn a_v1_page_with_flat_custom_fields_decodes_as_the_general_path_loads_it() {
        let (def, transform) = transform("leads", "key", "name");
        let first = format!(
            r#"{{"id":"a1","title":"t","{MONEY}":10.5,"{MONEY}_currency":"EUR","{COLOUR}":"7","{TAGS}":"1,2","value":{{"amount":3,"currency":"EUR"}},"update_time":"2024-01-01 10:00:00"}}"#
        );
        let page = [
            first.as_str(),
            r#"{"id":"a2","title":null,"value":null,"update_time":"2024-01-02 10:00:00"}"#,
        ];
        let (columns, records) = decoded_as_general(def, &transform, &page);
        assert_custom_columns(&records, &columns);
        assert_eq!(
            cell(&records, &columns, "value", 0),
            json!({"amount": 3, "currency": "EUR"})
        );
    }

    #[test]
    fn a_key_named_by_a_custom_field_is_the_key_the_general_path_merges_on() {
        // A custom field without a column of its own keeps its key as its column: here
        // `id`, which the general path then reads the record's key from.
        let (def, transform) = transform("deals", "field_code", "field_name");
        let page = [
            r#"{"title":"a","custom_fields":{"id":1}}"#,
            r#"{"title":"b","custom_fields":{"id":2}}"#,
        ];
        let (columns, records) = decoded_as_general(def, &transform, &page);
        assert_eq!(records.num_rows(), 2);
        assert_eq!(cell(&records, &columns, "id", 1), json!(2));
    }

    #[test]
    fn doubles_keep_the_value_the_page_wrote_in_either_path() {
        // serde_json's default float parser can be one unit in the last place off; both
        // paths parse with `float_roundtrip`, so a number and its JSON text agree.
        let (leads, of_leads) = transform("leads", "key", "name");
        let page = [r#"{"id":"a","value":[9.30955045386981e141,-3.1299514062942205e105]}"#];
        let (columns, records) = decoded_as_general(leads, &of_leads, &page);
        assert_eq!(
            cell(&records, &columns, "value", 0),
            json!([9.30955045386981e141, -3.1299514062942205e105])
        );
        let (deals, of_deals) = transform("deals", "field_code", "field_name");
        let page = [r#"{"id":1,"probability":9.30955045386981e141}"#];
        let (columns, records) = decoded_as_general(deals, &of_deals, &page);
        assert_eq!(
            cell(&records, &columns, "probability", 0),
            json!(9.30955045386981e141)
        );
    }

    /// A child stream's transform as a run makes it: its declared columns, no custom fields.
    fn child_transform(stream: &str) -> (&'static StreamDef, RecordTransform) {
        let def = catalog::find(stream).unwrap();
        let declared = declared::stream_columns(def, &FieldDefinitions::new(), None)
            .into_iter()
            .filter(|column| column.ty != ColumnType::Null)
            .map(|column| (column.name, column.ty))
            .collect();
        let transform = RecordTransform {
            declared,
            ..RecordTransform::default()
        };
        (def, transform)
    }

    #[test]
    fn child_records_decode_as_the_general_path_loads_them() {
        // Rows made of a parent's array: the records the fan-out builds from persons' emails.
        let (def, transform) = child_transform("person_emails");
        let records: Vec<Map<String, Value>> = [
            json!({"value": "a@x", "primary": true, "label": "work", "person_id": 1, "position": 0}),
            json!({"value": "b@x", "primary": false, "person_id": 1, "position": 1}),
            // A later element with a field the first ones lack, and its key read again.
            json!({"value": "c@x", "label": {"odd": 1}, "person_id": 2, "position": 0}),
            json!({"value": "d@x", "person_id": 2, "position": 0}),
        ]
        .into_iter()
        .map(|record| record.as_object().cloned().unwrap())
        .collect();
        let Decoded {
            columns,
            records: decoded,
        } = decode_records(def, &transform, &records).expect("the records are decoded");
        let Rows {
            columns: general_columns,
            rows,
            ..
        } = build_rows(def, &transform, records);
        let general = columnar::record_batch(&general_columns, &rows).unwrap();
        assert_same_batch(&columns, &decoded, &general_columns, &general);
        assert_eq!(decoded.num_rows(), 3);
        assert_eq!(cell(&decoded, &columns, "value", 2), json!("d@x"));
        assert_eq!(cell(&decoded, &columns, "label", 0), json!("work"));

        // A fan-out's page, read for a batch of deals: decoded from its text.
        let (def, transform) = child_transform("deal_products");
        let page = [
            r#"{"id":5,"deal_id":1,"product_id":9,"item_price":10.25,"quantity":2,"sum":20.5,"currency":"EUR"}"#,
            r#"{"id":6,"deal_id":2,"product_id":9,"item_price":"n/a","quantity":1,"discount_type":"percentage"}"#,
        ];
        let (columns, records) = decoded_as_general(def, &transform, &page);
        assert_eq!(records.num_rows(), 2);
        assert_eq!(cell(&records, &columns, "item_price", 0), json!(10.25));
    }

    #[test]
    fn pages_it_cannot_take_go_the_general_way() {
        let (def, transform) = transform("deals", "field_code", "field_name");
        let general_only = |page: &[&str], transform: &RecordTransform| {
            assert!(
                decode_page(def, transform, &raw(page)).is_none(),
                "{page:?}"
            );
        };
        // A record that is not an object.
        general_only(&[r#"{"id":1}"#, "7"], &transform);
        // A field twice in one record (the general path keeps the last).
        general_only(&[r#"{"id":1,"title":"a","title":"b"}"#], &transform);
        // A custom field under the name of a field the record has.
        let clash = format!(r#"{{"id":1,"colour":"x","custom_fields":{{"{COLOUR}":7}}}}"#);
        general_only(&[&clash], &transform);
        // Data controls.
        let controls = RecordTransform {
            controls: Controls {
                exclude: vec!["title".to_owned()],
                ..Controls::default()
            },
            ..transform.clone()
        };
        general_only(&[r#"{"id":1}"#], &controls);
    }
}
