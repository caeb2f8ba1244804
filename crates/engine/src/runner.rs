//! The sync runner: every planned stream reads pages concurrently through one shared client
//! (so one rate budget), and one writer task owns the destination, committing each page
//! together with the stream state that it makes true.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt, TryStreamExt};
use pipedrive_client::{Client, ClientError, ErrorClass, PagePosition};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::catalog::{self, Fanout, Incremental, PagingKind, StreamDef};
use crate::source::{self, Source};
use crate::destination::{Batch, Destination, DestinationError, TableRef};
use crate::schema::{Column, ColumnType};
use crate::state::{FullRefreshProgress, StreamState};
use crate::transform::{FieldCatalog, RecordTransform, assign_columns};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncMode {
    Incremental,
    FullRefresh,
}

/// One stream as the user configured it, resolved against the catalog.
#[derive(Clone, Debug)]
pub struct StreamPlan {
    pub def: &'static StreamDef,
    pub mode: SyncMode,
    pub table: TableRef,
}

/// Everything `run` needs, validated.
#[derive(Clone, Debug)]
pub struct SyncPlan {
    pub streams: Vec<StreamPlan>,
    /// Lower bound on `update_time` for a stream's first incremental sync.
    pub start_date: Option<DateTime<Utc>>,
    /// Streams read at the same time. They share the client's rate budget.
    pub concurrency: usize,
}

/// What kind of trouble ended a stream early; it decides the process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Credentials rejected: nothing else can work either.
    Auth,
    /// The destination refused a write.
    Destination,
    /// Worth retrying later: daily budget, token cap, retries exhausted, a requested stop.
    Temporary,
    /// Anything else, e.g. a request Pipedrive rejected as invalid.
    Other,
}

/// How a stream's run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Complete,
    /// The endpoint is not available to this company or token (plan, add-on or permission).
    Skipped(String),
    /// Ended early; the committed state holds the progress, so the next run resumes there.
    Incomplete { failure: Failure, message: String },
}

#[derive(Clone, Debug)]
pub struct StreamReport {
    pub stream: &'static str,
    pub records: u64,
    pub requests: u64,
    pub tokens: u64,
    pub seconds: f64,
    pub outcome: Outcome,
}

#[derive(Debug)]
pub struct SyncReport {
    pub streams: Vec<StreamReport>,
}

impl SyncReport {
    /// The most serious failure of the run: auth over destination over other over temporary.
    pub fn worst_failure(&self) -> Option<(Failure, &str)> {
        let rank = |f: Failure| match f {
            Failure::Auth => 0,
            Failure::Destination => 1,
            Failure::Other => 2,
            Failure::Temporary => 3,
        };
        self.streams
            .iter()
            .filter_map(|r| match &r.outcome {
                Outcome::Incomplete { failure, message } => Some((*failure, message.as_str())),
                _ => None,
            })
            .min_by_key(|(f, _)| rank(*f))
    }
}

/// Progress callbacks, so the engine stays free of any UI.
pub trait Observer: Send + Sync {
    fn stream_started(&self, _stream: &str) {}
    fn page_committed(&self, _stream: &str, _records: usize) {}
    fn stream_finished(&self, _report: &StreamReport) {}
}

/// An observer that does nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// Asks a running sync to stop after the pages in flight are committed.
#[derive(Clone, Default)]
pub struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A write for the writer task, answered once committed.
enum WriteOp {
    Rows {
        stream: &'static str,
        table: TableRef,
        primary_key: &'static [&'static str],
        columns: Vec<Column>,
        rows: Vec<Vec<Value>>,
        /// Rows whose `.0` column holds one of `.1` are removed first.
        replace: Option<(&'static str, Vec<Value>)>,
        state: StreamState,
    },
    Replace {
        stream: &'static str,
        staging: TableRef,
        target: TableRef,
        state: StreamState,
    },
    Drop(TableRef),
}

type Ack = oneshot::Receiver<Result<(), String>>;

#[derive(Clone)]
struct Writer {
    tx: mpsc::Sender<(WriteOp, oneshot::Sender<Result<(), String>>)>,
}

impl Writer {
    /// Queues a write; the returned receiver resolves when it is committed.
    async fn submit(&self, op: WriteOp) -> Result<Ack, String> {
        let (ack_tx, ack_rx) = oneshot::channel();
        self.tx
            .send((op, ack_tx))
            .await
            .map_err(|_| "the destination writer stopped".to_owned())?;
        Ok(ack_rx)
    }

    async fn commit(&self, op: WriteOp) -> Result<(), String> {
        wait(self.submit(op).await?).await
    }
}

async fn wait(ack: Ack) -> Result<(), String> {
    ack.await
        .unwrap_or_else(|_| Err("the destination writer stopped".to_owned()))
}

/// Runs a sync to completion (or to a stop), returning what happened per stream.
pub async fn run(
    client: &Client,
    mut destination: Box<dyn Destination>,
    plan: SyncPlan,
    observer: Arc<dyn Observer>,
    stop: StopSignal,
) -> Result<SyncReport, DestinationError> {
    let mut states = destination.read_state().await?;
    let synced_at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);

    let (tx, mut rx) = mpsc::channel::<(WriteOp, oneshot::Sender<Result<(), String>>)>(8);
    let writer_synced_at = synced_at.clone();
    let writer_task = tokio::spawn(async move {
        while let Some((op, ack)) = rx.recv().await {
            let result = apply(destination.as_mut(), op, &writer_synced_at).await;
            let failed = result.is_err();
            let _ = ack.send(result.map_err(|e| e.message));
            if failed {
                break;
            }
        }
    });
    let writer = Writer { tx };

    let definitions = fetch_field_definitions(client, &plan).await;
    let start_date = plan.start_date;
    let mut reports: Vec<StreamReport> = futures::stream::iter(plan.streams.into_iter().map(|stream| {
        let state = states.remove(stream.def.name).unwrap_or_default();
        let fields = stream
            .def
            .custom_fields
            .and_then(|custom| definitions.get(custom.defined_by).cloned());
        let prefetched = definitions.get(stream.def.name).cloned();
        let worker = StreamWorker {
            client,
            writer: writer.clone(),
            observer: observer.clone(),
            stop: stop.clone(),
            start_date,
        };
        async move { worker.run(stream, state, fields, prefetched).await }
    }))
    .buffer_unordered(plan.concurrency.max(1))
    .collect()
    .await;
    drop(writer);
    let _ = writer_task.await;

    reports.sort_by_key(|r| catalog::CATALOG.iter().position(|s| s.name == r.stream));
    Ok(SyncReport { streams: reports })
}

async fn apply(
    destination: &mut dyn Destination,
    op: WriteOp,
    synced_at: &str,
) -> Result<(), DestinationError> {
    match op {
        WriteOp::Rows {
            stream,
            table,
            primary_key,
            columns,
            rows,
            replace,
            state,
        } => {
            destination
                .write(Batch {
                    stream,
                    table: &table,
                    primary_key,
                    columns: &columns,
                    rows: &rows,
                    replace_parents: replace.as_ref().map(|(column, values)| (*column, values.as_slice())),
                    state: &state,
                    synced_at,
                })
                .await
        }
        WriteOp::Replace {
            stream,
            staging,
            target,
            state,
        } => destination.replace(stream, &staging, &target, &state).await,
        WriteOp::Drop(table) => destination.drop_table(&table).await,
    }
}

/// The field definitions of every `*_fields` stream a planned stream takes its custom-field
/// names from (or that is itself planned), read once per run. A stream whose definitions cannot
/// be read keeps raw keys rather than failing.
async fn fetch_field_definitions(client: &Client, plan: &SyncPlan) -> HashMap<&'static str, Arc<Vec<Value>>> {
    let mut wanted: Vec<&'static StreamDef> = plan
        .streams
        .iter()
        .filter_map(|s| s.def.custom_fields.and_then(|c| catalog::find(c.defined_by)))
        .chain(plan.streams.iter().map(|s| s.def).filter(|d| d.field_definitions.is_some()))
        .collect();
    wanted.sort_by_key(|d| d.name);
    wanted.dedup_by_key(|d| d.name);
    let mut out = HashMap::new();
    for def in wanted {
        let pages: Result<Vec<_>, _> = client.pages(source::request(def, def.path.to_owned(), Vec::new(), PagePosition::First)).try_collect().await;
        match pages {
            Ok(pages) => {
                let records = pages
                    .iter()
                    .flat_map(|p| p.items.iter())
                    .filter_map(|raw| serde_json::from_str::<Value>(raw.get()).ok())
                    .collect();
                out.insert(def.name, Arc::new(records));
            }
            Err(error) => tracing::warn!(stream = def.name, %error, "field definitions unavailable; custom fields keep their keys"),
        }
    }
    out
}

/// Parses a Pipedrive timestamp in any of its formats into whole-second UTC RFC 3339.
pub fn normalize_timestamp(value: &str) -> Option<String> {
    let parsed = DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S%.f").map(|t| t.and_utc())
        })
        .ok()?;
    Some(parsed.to_rfc3339_opts(SecondsFormat::Secs, true))
}

struct StreamWorker<'a> {
    client: &'a Client,
    writer: Writer,
    observer: Arc<dyn Observer>,
    stop: StopSignal,
    start_date: Option<DateTime<Utc>>,
}

/// Counters for one stream's report.
struct Tally {
    started: Instant,
    records: u64,
    requests: u64,
    tokens: u64,
}

impl StreamWorker<'_> {
    async fn run(
        self,
        stream: StreamPlan,
        mut state: StreamState,
        fields: Option<Arc<Vec<Value>>>,
        prefetched: Option<Arc<Vec<Value>>>,
    ) -> StreamReport {
        let def = stream.def;
        self.observer.stream_started(def.name);
        let mut transform = RecordTransform {
            layout: def.custom_fields.map(|c| c.layout),
            ..RecordTransform::default()
        };
        if let (Some(custom), Some(records)) = (def.custom_fields, fields) {
            if let Some(shape) = catalog::find(custom.defined_by).and_then(|d| d.field_definitions) {
                transform.fields = FieldCatalog::from_definitions(&records, shape);
                assign_columns(&transform.fields, &mut state.custom_columns);
            }
        }
        transform.columns = state.custom_columns.clone();

        let mut tally = Tally {
            started: Instant::now(),
            records: 0,
            requests: 0,
            tokens: 0,
        };
        let incomplete = |failure, message: String| Outcome::Incomplete { failure, message };
        let outcome = match self
            .load(&stream, &mut state, &transform, prefetched, &mut tally)
            .await
        {
            Ok(()) => Outcome::Complete,
            Err(StreamError::Client(error)) => match error.exit_class() {
                ErrorClass::NotAvailable => {
                    tracing::warn!(stream = def.name, %error, "stream skipped");
                    Outcome::Skipped(error.to_string())
                }
                ErrorClass::Auth => incomplete(Failure::Auth, error.to_string()),
                ErrorClass::Temporary => incomplete(Failure::Temporary, error.to_string()),
                ErrorClass::Permanent => incomplete(Failure::Other, error.to_string()),
            },
            Err(StreamError::Stopped) => incomplete(Failure::Temporary, "stopped on request".to_owned()),
            Err(StreamError::Write(message)) => incomplete(Failure::Destination, message),
        };
        // Out of budget, out of credentials or out of a destination: the other streams would
        // only fail the same way, so they stop after their pages in flight.
        if let Outcome::Incomplete { failure, .. } = &outcome {
            if *failure != Failure::Other {
                self.stop.stop();
            }
        }
        let report = StreamReport {
            stream: def.name,
            records: tally.records,
            requests: tally.requests,
            tokens: tally.tokens,
            seconds: tally.started.elapsed().as_secs_f64(),
            outcome,
        };
        self.observer.stream_finished(&report);
        report
    }

    async fn load(
        &self,
        stream: &StreamPlan,
        state: &mut StreamState,
        transform: &RecordTransform,
        prefetched: Option<Arc<Vec<Value>>>,
        tally: &mut Tally,
    ) -> Result<(), StreamError> {
        let def = stream.def;
        let incremental = stream.mode == SyncMode::Incremental && def.supports_incremental();
        let target = if incremental {
            stream.table.clone()
        } else {
            stream.table.staging()
        };
        let mut start = PagePosition::First;
        let mut bookmark = state.bookmark.clone();
        if !incremental {
            // Only plain lists can resume a full refresh mid-way; the others start over.
            let resumable = def.fanout == Fanout::None;
            match state.full_refresh.take().filter(|_| resumable) {
                Some(progress) => {
                    start = progress.next;
                    bookmark = progress.bookmark;
                }
                None => {
                    self.writer.commit(WriteOp::Drop(target.clone())).await?;
                    bookmark = None;
                }
            }
        }
        // A keyset walk resumes a full refresh from its bookmark; cursors resume by position.
        let keyset = matches!(def.paging, PagingKind::Offset { .. })
            && matches!(def.incremental, Incremental::UpdatedSince { .. });
        let since = if incremental || keyset { bookmark.clone() } else { None }
            .or_else(|| self.start_date.map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true)));
        let mut source = match prefetched {
            Some(records) => Source::Prefetched(Some(
                records.iter().filter_map(|r| r.as_object().cloned()).collect(),
            )),
            None => Source::open(self.client, def, since, start.clone()).await?,
        };

        let mut pending: Option<Ack> = None;
        let mut position = start;
        while let Some(chunk) = source.next().await {
            let chunk = chunk?;
            tally.requests += chunk.requests;
            tally.tokens += chunk.tokens;
            if let Some(newest) = chunk.newest {
                if bookmark.as_deref().is_none_or(|b| newest.as_str() > b) {
                    bookmark = Some(newest);
                }
            }
            let (columns, rows) = build_rows(def, transform, chunk.records);
            let records = rows.len();
            let mut next_state = state.clone();
            if incremental {
                next_state.bookmark = bookmark.clone();
            } else {
                // A crash after this commit resumes at the following page; the last page is
                // re-read (merging on the key makes that harmless) and then swapped in.
                next_state.full_refresh = Some(FullRefreshProgress {
                    next: chunk.next.clone().unwrap_or_else(|| position.clone()),
                    bookmark: bookmark.clone(),
                });
            }
            if let Some(ack) = pending.take() {
                wait(ack).await.map_err(StreamError::Write)?;
            }
            pending = Some(
                self.writer
                    .submit(WriteOp::Rows {
                        stream: def.name,
                        table: target.clone(),
                        primary_key: def.primary_key,
                        columns,
                        rows,
                        replace: def.parent_column.zip(chunk.replace_parents),
                        state: next_state.clone(),
                    })
                    .await
                    .map_err(StreamError::Write)?,
            );
            *state = next_state;
            tally.records += records as u64;
            self.observer.page_committed(def.name, records);
            if let Some(next) = chunk.next {
                position = next;
            }
            if self.stop.is_stopped() {
                if let Some(ack) = pending.take() {
                    wait(ack).await.map_err(StreamError::Write)?;
                }
                return Err(StreamError::Stopped);
            }
        }
        if let Some(ack) = pending.take() {
            wait(ack).await.map_err(StreamError::Write)?;
        }

        let mut final_state = state.clone();
        final_state.full_refresh = None;
        final_state.bookmark = bookmark;
        final_state.completed_at = Some(Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true));
        // The empty write creates the table of a stream that had no rows.
        let empty = |table: TableRef, state: StreamState| WriteOp::Rows {
            stream: def.name,
            table,
            primary_key: def.primary_key,
            columns: Vec::new(),
            rows: Vec::new(),
            replace: None,
            state,
        };
        if incremental {
            self.writer.commit(empty(target, final_state.clone())).await?;
        } else {
            self.writer.commit(empty(target.clone(), state.clone())).await?;
            self.writer
                .commit(WriteOp::Replace {
                    stream: def.name,
                    staging: target,
                    target: stream.table.clone(),
                    state: final_state.clone(),
                })
                .await?;
        }
        *state = final_state;
        Ok(())
    }
}

enum StreamError {
    Client(ClientError),
    Write(String),
    Stopped,
}

impl From<ClientError> for StreamError {
    fn from(error: ClientError) -> Self {
        StreamError::Client(error)
    }
}

impl From<String> for StreamError {
    fn from(message: String) -> Self {
        StreamError::Write(message)
    }
}

/// Transforms records into rows: columns in order of first appearance with widened types,
/// rows aligned to them, duplicate keys collapsed to their last occurrence.
pub fn build_rows(
    def: &StreamDef,
    transform: &RecordTransform,
    records: Vec<Map<String, Value>>,
) -> (Vec<Column>, Vec<Vec<Value>>) {
    let mut columns: Vec<Column> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut rows: Vec<Vec<Value>> = Vec::with_capacity(records.len());
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for mut record in records {
        transform.apply(&mut record);
        let key: String = def
            .primary_key
            .iter()
            .map(|k| record.get(*k).map(Value::to_string).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\u{1f}");
        let mut row = vec![Value::Null; columns.len()];
        for (name, value) in record {
            let ty = ColumnType::of(&value);
            let position = *index.entry(name.clone()).or_insert_with(|| {
                columns.push(Column {
                    name,
                    ty: ColumnType::Null,
                });
                columns.len() - 1
            });
            columns[position].ty = columns[position].ty.widen(ty);
            if position >= row.len() {
                row.resize(position + 1, Value::Null);
            }
            row[position] = value;
        }
        match by_key.get(&key) {
            Some(&existing) => rows[existing] = row,
            None => {
                by_key.insert(key, rows.len());
                rows.push(row);
            }
        }
    }
    for row in &mut rows {
        row.resize(columns.len(), Value::Null);
    }
    (columns, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_normalise_to_whole_utc_seconds() {
        assert_eq!(normalize_timestamp("2024-01-02 03:04:05").as_deref(), Some("2024-01-02T03:04:05Z"));
        assert_eq!(normalize_timestamp("2024-01-02T03:04:05.678Z").as_deref(), Some("2024-01-02T03:04:05Z"));
        assert_eq!(normalize_timestamp("2024-01-02T05:04:05+02:00").as_deref(), Some("2024-01-02T03:04:05Z"));
        assert_eq!(normalize_timestamp("yesterday"), None);
    }

    #[test]
    fn rows_align_dedupe_and_track_the_newest_cursor() {
        let def = catalog::find("deals").unwrap();
        let items: Vec<Box<serde_json::value::RawValue>> = [
            r#"{"id":1,"title":"a","update_time":"2024-01-01T00:00:00Z"}"#,
            r#"{"id":2,"value":3.5,"update_time":"2024-01-03T00:00:00Z"}"#,
            r#"{"id":1,"title":"b","value":2,"update_time":"2024-01-02T00:00:00Z"}"#,
        ]
        .iter()
        .map(|s| serde_json::value::RawValue::from_string((*s).to_owned()).unwrap())
        .collect();
        let records = source::parse_records(def, &items, None, false);
        let newest = source::newest_cursor(def.cursor_field, &records);
        let (columns, rows) = build_rows(def, &RecordTransform::default(), records);
        let names: Vec<_> = columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "title", "update_time", "value"]);
        assert_eq!(columns[3].ty, ColumnType::Double);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][1], Value::from("b"));
        assert_eq!(newest.as_deref(), Some("2024-01-03T00:00:00Z"));
    }
}
