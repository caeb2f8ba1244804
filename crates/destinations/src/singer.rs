//! Singer tap output (SCHEMA, RECORD and STATE lines on stdout), so Meltano and any Singer
//! target can run pipedrive-sync as a tap. Nothing is stored here: the state travels in STATE
//! messages and comes back through `--state`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;

use async_trait::async_trait;
use pipedrive_engine::{
    Batch, Destination, DestinationError, StreamDef, StreamState, SyncState, TableRef, catalog,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use pipedrive_engine::schema::Column;

use crate::json_schema::{DeclaredStream, Flavour, automatic, object_schema, warn_misfits};

/// One line of Singer output.
#[derive(Debug, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Message<'a> {
    Schema {
        stream: &'a str,
        schema: Value,
        key_properties: &'a [&'a str],
        #[serde(skip_serializing_if = "Vec::is_empty")]
        bookmark_properties: Vec<&'a str>,
    },
    Record {
        stream: &'a str,
        record: Map<String, Value>,
        time_extracted: &'a str,
    },
    State {
        value: StateValue<'a>,
    },
}

/// The value of a STATE message, and the shape `--state` reads back.
#[derive(Debug, Serialize, PartialEq)]
pub struct StateValue<'a> {
    pub bookmarks: &'a SyncState,
}

/// A Singer catalog, as `--discover` prints it and `--catalog` reads it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Catalog {
    pub streams: Vec<CatalogEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub tap_stream_id: String,
    #[serde(default)]
    pub stream: String,
    #[serde(default)]
    pub key_properties: Vec<String>,
    #[serde(default)]
    pub schema: Value,
    #[serde(default)]
    pub metadata: Vec<MetadataEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct MetadataEntry {
    pub breadcrumb: Vec<String>,
    pub metadata: Metadata,
}

/// The metadata keys of the Singer spec this tap writes or reads; others are kept as they are.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Metadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inclusion: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected_by_default: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_key_properties: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_replication_keys: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forced_replication_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_method: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// The catalog `--discover` prints: every stream, selected by default, with its declared
/// columns (`columns` gives them per stream), its key and cursor.
pub fn discover(columns: impl Fn(&StreamDef) -> Vec<Column>) -> Catalog {
    Catalog {
        streams: catalog::CATALOG
            .iter()
            .map(|def| catalog_entry(def, &columns(def)))
            .collect(),
    }
}

fn catalog_entry(def: &StreamDef, columns: &[Column]) -> CatalogEntry {
    let keys: Vec<String> = def.primary_key.iter().map(|k| (*k).to_owned()).collect();
    let stream = Metadata {
        inclusion: Some("available".to_owned()),
        selected_by_default: Some(!def.opt_in),
        table_key_properties: Some(keys.clone()),
        valid_replication_keys: def.cursor_field.map(|c| vec![c.to_owned()]),
        forced_replication_method: (!def.supports_incremental()).then(|| "FULL_TABLE".to_owned()),
        ..Metadata::default()
    };
    let mut metadata = vec![MetadataEntry {
        breadcrumb: Vec::new(),
        metadata: stream,
    }];
    // Keys and the cursor are always sent; every other column can be deselected.
    for column in columns {
        let always = automatic(def).any(|name| name == column.name);
        metadata.push(MetadataEntry {
            breadcrumb: vec!["properties".to_owned(), column.name.clone()],
            metadata: Metadata {
                inclusion: Some(if always { "automatic" } else { "available" }.to_owned()),
                ..Metadata::default()
            },
        });
    }
    CatalogEntry {
        tap_stream_id: def.name.to_owned(),
        stream: def.name.to_owned(),
        key_properties: keys,
        schema: object_schema(columns, Flavour::Singer),
        metadata,
    }
}

/// A stream chosen in a catalog, whether its metadata asks for full-table replication, and the
/// columns deselected (`selected: false` on a property that is not automatic).
#[derive(Debug, PartialEq, Eq)]
pub struct Selection {
    pub stream: String,
    pub full_table: bool,
    pub excluded: BTreeSet<String>,
}

impl Catalog {
    /// The selected streams: `selected` on the stream's `[]` breadcrumb (or the older
    /// `schema.selected`), else `selected-by-default`.
    pub fn selected(&self) -> Vec<Selection> {
        self.streams
            .iter()
            .filter_map(|entry| {
                let top = entry
                    .metadata
                    .iter()
                    .find(|m| m.breadcrumb.is_empty())
                    .map(|m| &m.metadata);
                let selected = top
                    .and_then(|m| m.selected)
                    .or_else(|| entry.schema.get("selected").and_then(Value::as_bool))
                    .or_else(|| top.and_then(|m| m.selected_by_default))
                    .unwrap_or(false);
                selected.then(|| Selection {
                    stream: if entry.stream.is_empty() {
                        entry.tap_stream_id.clone()
                    } else {
                        entry.stream.clone()
                    },
                    full_table: top
                        .and_then(|m| m.replication_method.as_deref())
                        .is_some_and(|method| method.eq_ignore_ascii_case("FULL_TABLE")),
                    excluded: entry
                        .metadata
                        .iter()
                        .filter_map(|m| match m.breadcrumb.as_slice() {
                            [properties, column]
                                if properties == "properties"
                                    && m.metadata.selected == Some(false)
                                    && m.metadata.inclusion.as_deref() != Some("automatic") =>
                            {
                                Some(column.clone())
                            }
                            _ => None,
                        })
                        .collect(),
                })
            })
            .collect()
    }
}

/// Parses `--state`: `{"bookmarks": {stream: state}}`, also wrapped as `{"value": ...}` (a
/// STATE message's value or a whole message); an empty file is no state.
pub fn parse_state(text: &str) -> Result<SyncState, DestinationError> {
    if text.trim().is_empty() {
        return Ok(SyncState::new());
    }
    let invalid = |e: serde_json::Error| {
        DestinationError::new(format!(
            "the Singer state is not {{\"bookmarks\": {{stream: state}}}} JSON ({e}); pass the value of the last STATE message"
        ))
    };
    let mut value: Value = serde_json::from_str(text).map_err(invalid)?;
    while let Some(inner) = value.get_mut("value").map(Value::take) {
        value = inner;
    }
    if value.as_object().is_some_and(Map::is_empty) {
        return Ok(SyncState::new());
    }
    let bookmarks = match value.get_mut("bookmarks") {
        Some(bookmarks) => bookmarks.take(),
        None => {
            return Err(DestinationError::new(
                "the Singer state has no `bookmarks`: pass the value of the last STATE message this tap emitted",
            ));
        }
    };
    serde_json::from_value(bookmarks).map_err(invalid)
}

/// Writes Singer messages to `out` (stdout in production), one JSON object a line.
pub struct Singer<W> {
    out: W,
    state: SyncState,
    streams: HashMap<String, DeclaredStream>,
}

impl<W: Write + Send> Singer<W> {
    /// `state` is what `--state` held; the engine reads it back through `read_state`.
    /// `streams` holds each stream's declared columns and selection.
    pub fn new(out: W, state: SyncState, streams: HashMap<String, DeclaredStream>) -> Singer<W> {
        Singer {
            out,
            state,
            streams,
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn emit(&mut self, message: &Message<'_>) -> Result<(), DestinationError> {
        let mut line = serde_json::to_vec(message)
            .map_err(|e| DestinationError::new(format!("Singer: {e}")))?;
        line.push(b'\n');
        // One write per line, so nothing else on stdout can split a message.
        self.out
            .write_all(&line)
            .map_err(|e| DestinationError::new(format!("Singer: writing to stdout failed: {e}")))
    }

    fn emit_state(&mut self) -> Result<(), DestinationError> {
        let state = std::mem::take(&mut self.state);
        let result = self.emit(&Message::State {
            value: StateValue { bookmarks: &state },
        });
        self.state = state;
        result?;
        self.out
            .flush()
            .map_err(|e| DestinationError::new(format!("Singer: flushing stdout failed: {e}")))
    }
}

#[async_trait]
impl<W: Write + Send> Destination for Singer<W> {
    fn describe(&self) -> String {
        "Singer messages on stdout".to_owned()
    }

    async fn read_state(&mut self) -> Result<SyncState, DestinationError> {
        Ok(self.state.clone())
    }

    async fn write(&mut self, batches: &[Batch<'_>]) -> Result<(), DestinationError> {
        for batch in batches {
            let mut known = self.streams.remove(batch.stream).unwrap_or_default();
            // Announced before the stream's first record (or first empty commit, so a target
            // creates its table), and again only when a column no definition named turns up.
            if known.admit(batch.columns) {
                self.emit(&Message::Schema {
                    stream: batch.stream,
                    schema: known.json_schema(Flavour::Singer),
                    key_properties: batch.primary_key,
                    bookmark_properties: catalog::find(batch.stream)
                        .and_then(|d| d.cursor_field)
                        .into_iter()
                        .collect(),
                })?;
            }
            for record in known.records(batch) {
                self.emit(&Message::Record {
                    stream: batch.stream,
                    record,
                    time_extracted: batch.synced_at,
                })?;
            }
            warn_misfits(batch.stream, known.take_misfits());
            self.streams.insert(batch.stream.to_owned(), known);
            self.state
                .insert(batch.stream.to_owned(), batch.state.clone());
        }
        self.emit_state()
    }

    async fn replace(
        &mut self,
        stream: &str,
        _staging: &TableRef,
        _target: &TableRef,
        state: &StreamState,
    ) -> Result<(), DestinationError> {
        // The records already went out as they were read; completing the reload is a state change.
        self.state.insert(stream.to_owned(), state.clone());
        self.emit_state()
    }

    async fn drop_table(&mut self, _table: &TableRef) -> Result<(), DestinationError> {
        // No table here, and no state changes: a restarted full refresh re-sends its records.
        Ok(())
    }

    async fn reset_state(&mut self, stream: &str) -> Result<(), DestinationError> {
        self.state.remove(stream);
        self.emit_state()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipedrive_engine::schema::{Column, ColumnType};
    use serde_json::json;

    fn lines(out: Vec<u8>) -> Vec<Value> {
        String::from_utf8(out)
            .expect("UTF-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
            .collect()
    }

    fn column(name: &str, ty: ColumnType) -> Column {
        Column {
            name: name.to_owned(),
            ty,
        }
    }

    /// A `deals` batch loading a full refresh's staging table.
    fn batch<'a>(
        staging: &'a TableRef,
        columns: &'a [Column],
        rows: &'a [Vec<Value>],
        state: &'a StreamState,
    ) -> Batch<'a> {
        Batch {
            stream: "deals",
            table: staging,
            primary_key: &["id"],
            columns,
            // Leaked: a test's few pages live as long as the test anyway.
            records: Box::leak(Box::new(
                pipedrive_engine::columnar::record_batch(columns, rows).unwrap(),
            )),
            replace_parents: None,
            state,
            synced_at: "2024-02-01T00:00:00.000000Z",
            history: false,
        }
    }

    #[tokio::test]
    async fn batches_become_schema_record_and_state_lines() {
        let table = TableRef {
            schema: "singer".to_owned(),
            name: "deals".to_owned(),
        };
        let staging = table.staging();
        let declared = DeclaredStream::new(
            vec![
                column("id", ColumnType::BigInt),
                column("update_time", ColumnType::Timestamp),
                column("value", ColumnType::Double),
            ],
            BTreeSet::new(),
        );
        let mut singer = Singer::new(
            Vec::new(),
            SyncState::new(),
            [("deals".to_owned(), declared)].into(),
        );
        let first_columns = [
            column("id", ColumnType::BigInt),
            column("update_time", ColumnType::Timestamp),
        ];
        let first_state = StreamState {
            bookmark: Some("2024-01-02T10:11:12Z".to_owned()),
            ..StreamState::default()
        };
        let first_rows = [vec![json!(1), json!("2024-01-02 10:11:12")]];
        singer
            .write(&[batch(&staging, &first_columns, &first_rows, &first_state)])
            .await
            .unwrap();
        // The schema was declared whole: no new SCHEMA for later batches.
        singer
            .write(&[batch(&staging, &first_columns, &first_rows, &first_state)])
            .await
            .unwrap();
        let wider = [
            column("id", ColumnType::BigInt),
            column("value", ColumnType::Double),
        ];
        let wider_rows = [vec![json!(2), json!(2.5)]];
        singer
            .write(&[batch(&staging, &wider, &wider_rows, &first_state)])
            .await
            .unwrap();
        let done = StreamState {
            bookmark: Some("2024-01-02T10:11:12Z".to_owned()),
            completed_at: Some("2024-02-01T00:00:05Z".to_owned()),
            ..StreamState::default()
        };
        singer
            .replace("deals", &staging, &table, &done)
            .await
            .unwrap();
        singer.drop_table(&staging).await.unwrap();

        let schema = json!({"type": "SCHEMA", "stream": "deals", "key_properties": ["id"], "bookmark_properties": ["update_time"],
            "schema": {"type": "object", "properties": {
                "id": {"type": ["null", "integer"]},
                "update_time": {"type": ["null", "string"], "format": "date-time"},
                "value": {"type": ["null", "number"]}}}});
        let record = json!({"type": "RECORD", "stream": "deals", "time_extracted": "2024-02-01T00:00:00.000000Z",
            "record": {"id": 1, "update_time": "2024-01-02T10:11:12Z"}});
        let state = json!({"type": "STATE", "value": {"bookmarks": {"deals": {"bookmark": "2024-01-02T10:11:12Z"}}}});
        let expected = vec![
            schema,
            record.clone(),
            state.clone(),
            record,
            state.clone(),
            json!({"type": "RECORD", "stream": "deals", "time_extracted": "2024-02-01T00:00:00.000000Z",
                "record": {"id": 2, "value": 2.5}}),
            state,
            json!({"type": "STATE", "value": {"bookmarks": {"deals": {"bookmark": "2024-01-02T10:11:12Z", "completed_at": "2024-02-01T00:00:05Z"}}}}),
        ];
        assert_eq!(lines(singer.into_inner()), expected);
    }

    #[test]
    fn state_reads_every_documented_shape() {
        let expected: SyncState = [(
            "deals".to_owned(),
            StreamState {
                bookmark: Some("2024-01-02T10:11:12Z".to_owned()),
                ..StreamState::default()
            },
        )]
        .into();
        let plain = r#"{"bookmarks": {"deals": {"bookmark": "2024-01-02T10:11:12Z"}}}"#;
        assert_eq!(parse_state(plain).unwrap(), expected);
        assert_eq!(
            parse_state(&format!(r#"{{"value": {plain}}}"#)).unwrap(),
            expected
        );
        assert_eq!(
            parse_state(&format!(r#"{{"type": "STATE", "value": {plain}}}"#)).unwrap(),
            expected
        );
        assert!(parse_state("").unwrap().is_empty());
        assert!(parse_state(" {} ").unwrap().is_empty());
        assert!(
            parse_state(r#"{"deals": {}}"#)
                .unwrap_err()
                .to_string()
                .contains("bookmarks")
        );
        assert!(parse_state("[").is_err());
    }

    #[test]
    fn discovered_catalog_has_singer_metadata() {
        let catalog = discover(|def| {
            let mut columns = vec![column("id", ColumnType::BigInt)];
            if def.cursor_field == Some("update_time") {
                columns.push(column("update_time", ColumnType::Timestamp));
            }
            columns.push(column("title", ColumnType::Text));
            columns
        });
        let text = serde_json::to_value(&catalog).unwrap();
        let deals = &text["streams"][0];
        assert_eq!(
            deals,
            &json!({
                "tap_stream_id": "deals", "stream": "deals", "key_properties": ["id"],
                "schema": {"type": "object", "properties": {
                    "id": {"type": ["null", "integer"]},
                    "update_time": {"type": ["null", "string"], "format": "date-time"},
                    "title": {"type": ["null", "string"]}}},
                "metadata": [
                    {"breadcrumb": [], "metadata": {"inclusion": "available", "selected-by-default": true,
                        "table-key-properties": ["id"], "valid-replication-keys": ["update_time"]}},
                    {"breadcrumb": ["properties", "id"], "metadata": {"inclusion": "automatic"}},
                    {"breadcrumb": ["properties", "update_time"], "metadata": {"inclusion": "automatic"}},
                    {"breadcrumb": ["properties", "title"], "metadata": {"inclusion": "available"}}
                ]
            })
        );
        let pipelines = text["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stream"] == "pipelines")
            .unwrap();
        assert_eq!(
            pipelines["metadata"][0]["metadata"]["forced-replication-method"],
            "FULL_TABLE"
        );
        // Opt-in streams are listed but not selected by default.
        let selected = catalog.selected();
        assert_eq!(
            selected.len(),
            catalog::CATALOG.iter().filter(|d| !d.opt_in).count()
        );
        let deal_flow = text["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stream"] == "deal_flow")
            .unwrap();
        assert_eq!(
            deal_flow["metadata"][0]["metadata"]["selected-by-default"],
            false
        );
    }

    #[test]
    fn selection_follows_metadata() {
        let catalog: Catalog = serde_json::from_value(json!({"streams": [
            {"tap_stream_id": "deals", "stream": "deals", "schema": {}, "metadata": [
                {"breadcrumb": [], "metadata": {"selected": true, "replication-method": "FULL_TABLE", "selected-by-default": false}},
                {"breadcrumb": ["properties", "title"], "metadata": {"inclusion": "available", "selected": false}},
                {"breadcrumb": ["properties", "id"], "metadata": {"inclusion": "automatic", "selected": false}},
                {"breadcrumb": ["properties", "value"], "metadata": {"inclusion": "available", "selected": true}}]},
            {"tap_stream_id": "users", "stream": "users", "schema": {}, "metadata": [
                {"breadcrumb": [], "metadata": {"selected": false, "selected-by-default": true}}]},
            {"tap_stream_id": "stages", "schema": {"selected": true}, "metadata": []},
            {"tap_stream_id": "notes", "metadata": [{"breadcrumb": [], "metadata": {"replication-method": "INCREMENTAL", "custom": 1}}]}
        ]}))
        .unwrap();
        assert_eq!(
            catalog.selected(),
            [
                Selection {
                    stream: "deals".to_owned(),
                    full_table: true,
                    excluded: ["title".to_owned()].into(),
                },
                Selection {
                    stream: "stages".to_owned(),
                    full_table: false,
                    excluded: BTreeSet::new(),
                }
            ]
        );
    }
}
