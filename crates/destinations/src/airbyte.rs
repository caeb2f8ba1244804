//! Airbyte source output (the Airbyte protocol's messages on stdout), so Airbyte can run
//! pipedrive-sync as a custom source connector. The state of each stream travels in STREAM
//! state messages and comes back through `--state`.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use pipedrive_engine::{
    Batch, Destination, DestinationError, StreamDef, StreamState, SyncState, TableRef, catalog,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use std::collections::{BTreeSet, HashMap};

use pipedrive_engine::schema::Column;

use crate::json_schema::{DeclaredStream, Flavour, automatic, object_schema, warn_misfits};

/// One line of Airbyte output.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Message<'a> {
    Spec {
        spec: Spec,
    },
    ConnectionStatus {
        #[serde(rename = "connectionStatus")]
        connection_status: ConnectionStatus,
    },
    Catalog {
        catalog: Catalog,
    },
    Record {
        record: Record<'a>,
    },
    State {
        state: StateMessage<'a>,
    },
    Log {
        log: Log,
    },
    Trace {
        trace: Trace,
    },
}

impl Message<'_> {
    /// The message as one line of JSON, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).expect("messages serialise");
        line.push(b'\n');
        line
    }
}

#[derive(Debug, Serialize)]
pub struct Spec {
    #[serde(rename = "connectionSpecification")]
    pub connection_specification: Value,
    #[serde(rename = "supportsIncremental")]
    pub supports_incremental: bool,
}

/// The connector's spec: the JSON Schema of the config Airbyte asks the user for.
pub fn spec() -> Spec {
    Spec {
        connection_specification: json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "title": "Pipedrive (pipedrive-sync)",
            "type": "object",
            "required": ["api_token"],
            "additionalProperties": true,
            "properties": {
                "api_token": {
                    "type": "string",
                    "title": "API token",
                    "description": "Pipedrive → Personal preferences → API.",
                    "airbyte_secret": true,
                    "order": 0
                },
                "company_domain": {
                    "type": "string",
                    "title": "Company domain",
                    "description": "The part before .pipedrive.com in your Pipedrive address. Required unless base_url is set.",
                    "examples": ["mycompany"],
                    "order": 1
                },
                "base_url": {
                    "type": "string",
                    "title": "Base URL",
                    "description": "The API's address, instead of company_domain (e.g. a proxy or a test server).",
                    "examples": ["https://mycompany.pipedrive.com"],
                    "order": 2
                },
                "start_date": {
                    "type": "string",
                    "title": "Start date",
                    "description": "Incremental streams start with records changed on or after this date (YYYY-MM-DD or RFC 3339). Empty: everything.",
                    "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}(T.*)?$",
                    "examples": ["2024-01-01"],
                    "order": 3
                },
                "max_tokens": {
                    "type": "integer",
                    "title": "Token cap",
                    "description": "The most API tokens one sync may spend from the company's daily budget; the next sync resumes where it stopped.",
                    "minimum": 1,
                    "order": 4
                },
                "concurrency": {
                    "type": "integer",
                    "title": "Concurrency",
                    "description": "Streams read at once; they share one rate budget.",
                    "minimum": 1,
                    "maximum": 32,
                    "default": 4,
                    "order": 5
                }
            }
        }),
        supports_incremental: true,
    }
}

#[derive(Debug, Serialize)]
pub struct ConnectionStatus {
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Succeeded,
    Failed,
}

#[derive(Debug, Serialize)]
pub struct Catalog {
    pub streams: Vec<Stream>,
}

#[derive(Debug, Serialize)]
pub struct Stream {
    pub name: String,
    pub json_schema: Value,
    pub supported_sync_modes: Vec<SyncMode>,
    pub source_defined_cursor: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub default_cursor_field: Vec<String>,
    pub source_defined_primary_key: Vec<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    FullRefresh,
    Incremental,
}

/// Every stream of the catalog, as `discover` announces it, with its declared columns
/// (`columns` gives them per stream).
pub fn discover(columns: impl Fn(&StreamDef) -> Vec<Column>) -> Catalog {
    Catalog {
        streams: catalog::CATALOG
            .iter()
            .map(|def| stream(def, &columns(def)))
            .collect(),
    }
}

fn stream(def: &StreamDef, columns: &[Column]) -> Stream {
    let incremental = def.supports_incremental();
    Stream {
        name: def.name.to_owned(),
        json_schema: object_schema(columns, Flavour::Airbyte),
        supported_sync_modes: if incremental {
            vec![SyncMode::FullRefresh, SyncMode::Incremental]
        } else {
            vec![SyncMode::FullRefresh]
        },
        source_defined_cursor: incremental,
        default_cursor_field: def
            .cursor_field
            .map(|c| vec![c.to_owned()])
            .unwrap_or_default(),
        source_defined_primary_key: def
            .primary_key
            .iter()
            .map(|k| vec![(*k).to_owned()])
            .collect(),
    }
}

/// The configured catalog `read` gets: which streams, in which mode.
#[derive(Debug, Deserialize)]
pub struct ConfiguredCatalog {
    pub streams: Vec<ConfiguredStream>,
}

#[derive(Debug, Deserialize)]
pub struct ConfiguredStream {
    pub stream: StreamName,
    pub sync_mode: SyncMode,
}

#[derive(Debug, Deserialize)]
pub struct StreamName {
    pub name: String,
    /// The discovered schema, pruned to the columns the user selected.
    #[serde(default)]
    pub json_schema: Value,
}

impl ConfiguredStream {
    /// The declared columns the configured schema leaves out (never the key or cursor). A
    /// schema without properties selects every column.
    pub fn excluded(&self, def: &StreamDef, declared: &[Column]) -> BTreeSet<String> {
        let Some(selected) = self
            .stream
            .json_schema
            .get("properties")
            .and_then(Value::as_object)
            .filter(|p| !p.is_empty())
        else {
            return BTreeSet::new();
        };
        declared
            .iter()
            .map(|c| c.name.as_str())
            .filter(|name| !selected.contains_key(*name) && !automatic(def).any(|a| a == *name))
            .map(str::to_owned)
            .collect()
    }
}

#[derive(Debug, Serialize)]
pub struct Record<'a> {
    pub stream: &'a str,
    pub data: Map<String, Value>,
    /// Milliseconds since the epoch.
    pub emitted_at: i64,
}

#[derive(Debug, Serialize)]
pub struct StateMessage<'a> {
    #[serde(rename = "type")]
    pub kind: StateType,
    pub stream: StreamStateMessage<'a>,
    #[serde(rename = "sourceStats")]
    pub source_stats: Stats,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StateType {
    Stream,
}

#[derive(Debug, Serialize)]
pub struct StreamStateMessage<'a> {
    pub stream_descriptor: StreamDescriptor<'a>,
    pub stream_state: &'a StreamState,
}

#[derive(Debug, Serialize)]
pub struct StreamDescriptor<'a> {
    pub name: &'a str,
}

#[derive(Debug, Serialize)]
pub struct Stats {
    /// Records emitted for this stream since its previous state message (a double, as the
    /// protocol defines it).
    #[serde(rename = "recordCount")]
    pub record_count: f64,
}

#[derive(Debug, Serialize)]
pub struct Log {
    pub level: Level,
    pub message: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    Error,
    Warn,
    Info,
}

#[derive(Debug, Serialize)]
pub struct Trace {
    #[serde(rename = "type")]
    pub kind: TraceType,
    /// Milliseconds since the epoch.
    pub emitted_at: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorTrace>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_status: Option<StreamStatusTrace>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TraceType {
    Error,
    StreamStatus,
}

#[derive(Debug, Serialize)]
pub struct ErrorTrace {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_message: Option<String>,
    pub failure_type: FailureType,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureType {
    /// The user must change the config (credentials, domain, catalog).
    ConfigError,
    /// A retry later can succeed (rate budget, network).
    TransientError,
    SystemError,
}

#[derive(Debug, Serialize)]
pub struct StreamStatusTrace {
    pub stream_descriptor: OwnedDescriptor,
    pub status: StreamStatus,
}

#[derive(Debug, Serialize)]
pub struct OwnedDescriptor {
    pub name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamStatus {
    Started,
    Complete,
    Incomplete,
}

/// Milliseconds since the epoch.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An error trace: how Airbyte learns why a command failed and whose move it is.
pub fn error_trace(message: String, failure_type: FailureType) -> Message<'static> {
    Message::Trace {
        trace: Trace {
            kind: TraceType::Error,
            emitted_at: now_millis() as f64,
            error: Some(ErrorTrace {
                message,
                internal_message: None,
                failure_type,
            }),
            stream_status: None,
        },
    }
}

/// A stream status trace (started, complete or incomplete).
pub fn status_trace(stream: &str, status: StreamStatus) -> Message<'static> {
    Message::Trace {
        trace: Trace {
            kind: TraceType::StreamStatus,
            emitted_at: now_millis() as f64,
            error: None,
            stream_status: Some(StreamStatusTrace {
                stream_descriptor: OwnedDescriptor {
                    name: stream.to_owned(),
                },
                status,
            }),
        },
    }
}

/// Parses `--state`: the list of state messages Airbyte kept from earlier syncs. STREAM states
/// are read (GLOBAL ones through their stream states); a LEGACY object or a plain
/// `{stream: state}` map is accepted too, and an empty file or list is no state.
pub fn parse_state(text: &str) -> Result<SyncState, DestinationError> {
    if text.trim().is_empty() {
        return Ok(SyncState::new());
    }
    let invalid = |detail: String| {
        DestinationError::new(format!(
            "the Airbyte state is not a list of STREAM state messages ({detail}); pass the state Airbyte saved"
        ))
    };
    let value: Value = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let messages = match value {
        Value::Array(items) => items,
        Value::Object(ref map) if map.contains_key("type") || map.contains_key("stream") => {
            vec![value]
        }
        Value::Object(map) => vec![json!({"type": "LEGACY", "data": map})],
        other => return Err(invalid(format!("found {other}"))),
    };
    let mut states = SyncState::new();
    let mut add = |name: &Value, state: &Value| -> Result<(), DestinationError> {
        let Some(name) = name.as_str() else {
            return Err(invalid("a stream_descriptor without a name".to_owned()));
        };
        if !state.is_null() {
            let parsed = serde_json::from_value(state.clone())
                .map_err(|e| invalid(format!("{name}: {e}")))?;
            states.insert(name.to_owned(), parsed);
        }
        Ok(())
    };
    for message in messages {
        // A whole AirbyteMessage is unwrapped to its state.
        let message = match message.get("type").and_then(Value::as_str) {
            Some("STATE") => message.get("state").cloned().unwrap_or(Value::Null),
            _ => message,
        };
        if let Some(stream) = message.get("stream") {
            add(
                &stream["stream_descriptor"]["name"],
                &stream["stream_state"],
            )?;
        } else if let Some(global) = message.get("global") {
            for stream in global["stream_states"].as_array().into_iter().flatten() {
                add(
                    &stream["stream_descriptor"]["name"],
                    &stream["stream_state"],
                )?;
            }
        } else if let Some(Value::Object(data)) = message.get("data") {
            for (name, state) in data {
                add(&Value::String(name.clone()), state)?;
            }
        } else {
            return Err(invalid(format!("unrecognised entry {message}")));
        }
    }
    Ok(states)
}

/// Writes Airbyte messages to `out` (stdout in production), one JSON object a line.
pub struct Airbyte<W> {
    out: W,
    state: SyncState,
    streams: HashMap<String, DeclaredStream>,
}

impl<W: Write + Send> Airbyte<W> {
    /// `state` is what `--state` held; the engine reads it back through `read_state`.
    /// `streams` holds each stream's declared columns and selection.
    pub fn new(out: W, state: SyncState, streams: HashMap<String, DeclaredStream>) -> Airbyte<W> {
        Airbyte {
            out,
            state,
            streams,
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn emit(&mut self, message: &Message<'_>) -> Result<(), DestinationError> {
        // One write per line, so nothing else on stdout can split a message.
        self.out
            .write_all(&message.to_line())
            .map_err(|e| DestinationError::new(format!("Airbyte: writing to stdout failed: {e}")))
    }

    fn emit_state(
        &mut self,
        stream: &str,
        state: &StreamState,
        records: usize,
    ) -> Result<(), DestinationError> {
        self.state.insert(stream.to_owned(), state.clone());
        self.emit(&Message::State {
            state: StateMessage {
                kind: StateType::Stream,
                stream: StreamStateMessage {
                    stream_descriptor: StreamDescriptor { name: stream },
                    stream_state: state,
                },
                source_stats: Stats {
                    record_count: records as f64,
                },
            },
        })
    }

    fn flush(&mut self) -> Result<(), DestinationError> {
        self.out
            .flush()
            .map_err(|e| DestinationError::new(format!("Airbyte: flushing stdout failed: {e}")))
    }
}

#[async_trait]
impl<W: Write + Send> Destination for Airbyte<W> {
    fn describe(&self) -> String {
        "Airbyte messages on stdout".to_owned()
    }

    async fn read_state(&mut self) -> Result<SyncState, DestinationError> {
        Ok(self.state.clone())
    }

    async fn write(&mut self, batches: &[Batch<'_>]) -> Result<(), DestinationError> {
        let emitted_at = now_millis();
        for batch in batches {
            let mut known = self.streams.remove(batch.stream).unwrap_or_default();
            // Airbyte has no schema message: the catalog is the schema; a column it lacked is
            // sent as text, which is what Airbyte makes of an undeclared field.
            known.admit(batch.columns);
            for data in known.records(batch) {
                self.emit(&Message::Record {
                    record: Record {
                        stream: batch.stream,
                        data,
                        emitted_at,
                    },
                })?;
            }
            warn_misfits(batch.stream, known.take_misfits());
            self.streams.insert(batch.stream.to_owned(), known);
        }
        // States follow all the records of the commit they belong to.
        for batch in batches {
            self.emit_state(batch.stream, batch.state, batch.len())?;
        }
        self.flush()
    }

    async fn replace(
        &mut self,
        stream: &str,
        _staging: &TableRef,
        _target: &TableRef,
        state: &StreamState,
    ) -> Result<(), DestinationError> {
        // The records already went out as they were read; completing the reload is a state change.
        self.emit_state(stream, state, 0)?;
        self.flush()
    }

    async fn drop_table(&mut self, _table: &TableRef) -> Result<(), DestinationError> {
        // No table here, and no state changes: a restarted full refresh re-sends its records.
        Ok(())
    }

    async fn reset_state(&mut self, stream: &str) -> Result<(), DestinationError> {
        self.emit_state(stream, &StreamState::default(), 0)?;
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipedrive_engine::schema::{Column, ColumnType};

    fn lines(out: Vec<u8>) -> Vec<Value> {
        String::from_utf8(out)
            .expect("UTF-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
            .collect()
    }

    fn line(message: &Message<'_>) -> Value {
        serde_json::from_slice(&message.to_line()).unwrap()
    }

    #[tokio::test]
    async fn batches_become_records_then_stream_states() {
        let table = TableRef {
            schema: "airbyte".to_owned(),
            name: "deals".to_owned(),
        };
        let columns = [
            Column {
                name: "id".to_owned(),
                ty: ColumnType::BigInt,
            },
            Column {
                name: "add_time".to_owned(),
                ty: ColumnType::Timestamp,
            },
        ];
        let rows = [vec![json!(7), json!("2024-01-02 10:11:12")]];
        let state = StreamState {
            bookmark: Some("2024-01-02T10:11:12Z".to_owned()),
            ..StreamState::default()
        };
        let declared = DeclaredStream::new(columns.to_vec(), BTreeSet::new());
        let mut airbyte = Airbyte::new(
            Vec::new(),
            SyncState::new(),
            [("deals".to_owned(), declared)].into(),
        );
        let records = pipedrive_engine::columnar::record_batch(&columns, &rows).unwrap();
        airbyte
            .write(&[Batch {
                stream: "deals",
                table: &table,
                primary_key: &["id"],
                columns: &columns,
                records: &records,
                replace_parents: None,
                state: &state,
                synced_at: "2024-02-01T00:00:00Z",
                history: false,
            }])
            .await
            .unwrap();
        airbyte
            .replace("deals", &table.staging(), &table, &state)
            .await
            .unwrap();
        assert_eq!(airbyte.read_state().await.unwrap()["deals"], state);
        let mut out = lines(airbyte.into_inner());
        let emitted_at = out[0]["record"]["emitted_at"].take();
        assert!(
            emitted_at.as_i64().is_some_and(|ms| ms > 1_700_000_000_000),
            "{emitted_at}"
        );
        let stream_state = json!({"type": "STATE", "state": {"type": "STREAM",
            "stream": {"stream_descriptor": {"name": "deals"}, "stream_state": {"bookmark": "2024-01-02T10:11:12Z"}},
            "sourceStats": {"recordCount": 1.0}}});
        let mut final_state = stream_state.clone();
        final_state["state"]["sourceStats"]["recordCount"] = json!(0.0);
        assert_eq!(
            out,
            [
                json!({"type": "RECORD", "record": {"stream": "deals", "data": {"id": 7, "add_time": "2024-01-02T10:11:12Z"}, "emitted_at": null}}),
                stream_state,
                final_state
            ]
        );
    }

    #[test]
    fn spec_catalog_status_and_traces_have_the_protocol_shape() {
        let spec = line(&Message::Spec { spec: spec() });
        assert_eq!(spec["type"], "SPEC");
        assert_eq!(spec["spec"]["supportsIncremental"], true);
        let properties = &spec["spec"]["connectionSpecification"]["properties"];
        assert_eq!(properties["api_token"]["airbyte_secret"], true);
        for key in [
            "company_domain",
            "base_url",
            "start_date",
            "max_tokens",
            "concurrency",
        ] {
            assert!(properties.get(key).is_some(), "{key}");
        }

        let catalog = line(&Message::Catalog {
            catalog: discover(|_| {
                vec![
                    Column::new("id", ColumnType::BigInt),
                    Column::new("update_time", ColumnType::Timestamp),
                ]
            }),
        });
        assert_eq!(catalog["type"], "CATALOG");
        assert_eq!(
            catalog["catalog"]["streams"][0],
            json!({"name": "deals", "supported_sync_modes": ["full_refresh", "incremental"],
                "source_defined_cursor": true, "default_cursor_field": ["update_time"],
                "source_defined_primary_key": [["id"]],
                "json_schema": {"type": "object", "properties": {
                    "id": {"type": ["null", "integer"]},
                    "update_time": {"type": ["null", "string"], "format": "date-time",
                        "airbyte_type": "timestamp_with_timezone"}}}})
        );
        let status = line(&Message::ConnectionStatus {
            connection_status: ConnectionStatus {
                status: Status::Failed,
                message: Some("no".to_owned()),
            },
        });
        assert_eq!(
            status,
            json!({"type": "CONNECTION_STATUS", "connectionStatus": {"status": "FAILED", "message": "no"}})
        );
        let log = line(&Message::Log {
            log: Log {
                level: Level::Warn,
                message: "careful".to_owned(),
            },
        });
        assert_eq!(
            log,
            json!({"type": "LOG", "log": {"level": "WARN", "message": "careful"}})
        );

        let mut error = line(&error_trace(
            "bad token".to_owned(),
            FailureType::ConfigError,
        ));
        assert!(error["trace"]["emitted_at"].take().as_f64().is_some());
        assert_eq!(
            error,
            json!({"type": "TRACE", "trace": {"type": "ERROR", "emitted_at": null,
                "error": {"message": "bad token", "failure_type": "config_error"}}})
        );
        let mut status = line(&status_trace("deals", StreamStatus::Complete));
        status["trace"]["emitted_at"].take();
        assert_eq!(
            status,
            json!({"type": "TRACE", "trace": {"type": "STREAM_STATUS", "emitted_at": null,
                "stream_status": {"stream_descriptor": {"name": "deals"}, "status": "COMPLETE"}}})
        );
    }

    #[test]
    fn state_reads_airbyte_state_lists() {
        let deals = json!({"bookmark": "2024-01-02T10:11:12Z"});
        let list = json!([
            {"type": "STREAM", "stream": {"stream_descriptor": {"name": "deals"}, "stream_state": deals}},
            {"type": "STREAM", "stream": {"stream_descriptor": {"name": "users"}, "stream_state": null}},
            {"type": "STATE", "state": {"type": "STREAM", "stream": {"stream_descriptor": {"name": "notes"}, "stream_state": {}}}}
        ]);
        let state = parse_state(&list.to_string()).unwrap();
        assert_eq!(state.keys().collect::<Vec<_>>(), ["deals", "notes"]);
        assert_eq!(
            state["deals"].bookmark.as_deref(),
            Some("2024-01-02T10:11:12Z")
        );
        let global = json!([{"type": "GLOBAL", "global": {"stream_states": [
            {"stream_descriptor": {"name": "deals"}, "stream_state": deals}]}}]);
        assert_eq!(
            parse_state(&global.to_string()).unwrap()["deals"],
            state["deals"]
        );
        let legacy = json!({"deals": deals});
        assert_eq!(
            parse_state(&legacy.to_string()).unwrap()["deals"],
            state["deals"]
        );
        assert!(parse_state("").unwrap().is_empty());
        assert!(parse_state("[]").unwrap().is_empty());
        assert!(parse_state("[1]").is_err());
        assert!(parse_state("nonsense").is_err());
    }

    #[test]
    fn configured_catalog_reads_stream_names_and_modes() {
        let catalog: ConfiguredCatalog = serde_json::from_value(json!({"streams": [
            {"stream": {"name": "deals", "json_schema": {}, "supported_sync_modes": ["incremental"]},
             "sync_mode": "incremental", "destination_sync_mode": "append_dedup", "cursor_field": ["update_time"]}
        ]}))
        .unwrap();
        assert_eq!(catalog.streams[0].stream.name, "deals");
        assert_eq!(catalog.streams[0].sync_mode, SyncMode::Incremental);
        let deals = catalog::find("deals").unwrap();
        let declared = [
            Column::new("id", ColumnType::BigInt),
            Column::new("title", ColumnType::Text),
        ];
        // No properties: every column.
        assert!(catalog.streams[0].excluded(deals, &declared).is_empty());
        let pruned: ConfiguredStream = serde_json::from_value(json!({
            "stream": {"name": "deals", "json_schema": {"properties": {"value": {}}}},
            "sync_mode": "incremental"}))
        .unwrap();
        assert_eq!(
            pruned.excluded(deals, &declared),
            ["title".to_owned()].into()
        );
    }
}
