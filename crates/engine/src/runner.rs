//! The sync runner: every planned stream reads pages concurrently through one shared client
//! (so one rate budget), and one writer task owns the destination, committing each page
//! together with the stream state that it makes true.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt, TryStreamExt};
use pipedrive_client::{Client, ClientError, ErrorClass, PagePosition, Paging, Request};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::catalog::{self, Incremental, PagingKind, StreamDef};
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
            state,
        } => {
            destination
                .write(Batch {
                    stream,
                    table: &table,
                    primary_key,
                    columns: &columns,
                    rows: &rows,
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
        let pages: Result<Vec<_>, _> = client.pages(request(def, Vec::new(), PagePosition::First)).try_collect().await;
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

fn request(def: &StreamDef, query: Vec<(String, String)>, start: PagePosition) -> Request {
    let mut full_query: Vec<(String, String)> = def
        .fixed_query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    full_query.extend(query);
    Request {
        path: def.path.to_owned(),
        query: full_query,
        paging: match def.paging {
            PagingKind::None => Paging::None,
            PagingKind::Offset { limit } => Paging::Offset { limit },
            PagingKind::Cursor { limit } => Paging::Cursor { limit },
        },
        token_cost: def.token_cost,
        items_path: def.items_path.map(str::to_owned),
        start,
    }
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
            match state.full_refresh.take() {
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
        let keyset = matches!(def.paging, PagingKind::Offset { .. }) && def.supports_incremental();
        let since = if incremental || keyset { bookmark.clone() } else { None }
            .or_else(|| self.start_date.map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true)));
        let mut pages = match prefetched {
            Some(records) => Pager::Stream(
                futures::stream::once(async move { Ok::<_, ClientError>(prefetched_page(&records)) }).boxed(),
            ),
            None => Pager::new(self.client, def, since, start.clone()),
        };
        let mut pending: Option<Ack> = None;
        let mut position = start.clone();
        while let Some(page) = pages.next().await {
            let page = page?;
            tally.requests += 1;
            tally.tokens += u64::from(def.token_cost);
            let (columns, rows, newest) = build_rows(def, transform, &page.items);
            pages.advance(page.items.len(), newest.as_deref(), page.next.is_some());
            if let Some(newest) = newest {
                if bookmark.as_deref().is_none_or(|b| newest.as_str() > b) {
                    bookmark = Some(newest);
                }
            }
            let records = rows.len();
            let mut next_state = state.clone();
            if incremental {
                next_state.bookmark = bookmark.clone();
            } else {
                // A crash after this commit resumes at the following page; the last page is
                // re-read (merging on the key makes that harmless) and then swapped in.
                next_state.full_refresh = Some(FullRefreshProgress {
                    next: page.next.clone().unwrap_or_else(|| position.clone()),
                    bookmark: bookmark.clone(),
                });
            }
            if let Some(ack) = pending.take() {
                wait(ack).await.map_err(StreamError::Write)?;
                self.observer.page_committed(def.name, 0);
            }
            pending = Some(
                self.writer
                    .submit(WriteOp::Rows {
                        stream: def.name,
                        table: target.clone(),
                        primary_key: def.primary_key,
                        columns,
                        rows,
                        state: next_state.clone(),
                    })
                    .await
                    .map_err(StreamError::Write)?,
            );
            *state = next_state;
            tally.records += records as u64;
            self.observer.page_committed(def.name, records);
            if let Some(next) = page.next {
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
        if incremental {
            // Also creates the table of a stream that had no rows.
            self.writer
                .commit(WriteOp::Rows {
                    stream: def.name,
                    table: target,
                    primary_key: def.primary_key,
                    columns: Vec::new(),
                    rows: Vec::new(),
                    state: final_state.clone(),
                })
                .await?;
        } else {
            // Make sure the staging table exists even for an empty stream, then swap it in.
            self.writer
                .commit(WriteOp::Rows {
                    stream: def.name,
                    table: target.clone(),
                    primary_key: def.primary_key,
                    columns: Vec::new(),
                    rows: Vec::new(),
                    state: state.clone(),
                })
                .await?;
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

/// Where a stream's pages come from.
enum Pager<'a> {
    /// The client's own paging (cursor, offset or a single response).
    Stream(futures::stream::BoxStream<'static, Result<pipedrive_client::Page, ClientError>>),
    /// v1 offset lists read incrementally: each page restarts the query at the newest
    /// `update_time` seen instead of advancing an offset, because records updated mid-sync
    /// move to the end of an `update_time`-sorted list and would shift unread ones past a plain
    /// offset. The boundary second is re-read and merged on the key; the offset is used only
    /// within a second that fills whole pages.
    Keyset {
        client: &'a Client,
        def: &'static StreamDef,
        param: &'static str,
        since: Option<String>,
        skip: u64,
        done: bool,
    },
}

impl<'a> Pager<'a> {
    fn new(client: &'a Client, def: &'static StreamDef, since: Option<String>, start: PagePosition) -> Pager<'a> {
        let Incremental::UpdatedSince { param, sort } = def.incremental else {
            return Pager::Stream(client.pages(request(def, Vec::new(), start)).boxed());
        };
        if matches!(def.paging, PagingKind::Offset { .. }) {
            return Pager::Keyset {
                client,
                def,
                param,
                since,
                skip: 0,
                done: false,
            };
        }
        let mut query: Vec<(String, String)> = since.into_iter().map(|since| (param.to_owned(), since)).collect();
        query.extend(sort.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Pager::Stream(client.pages(request(def, query, start)).boxed())
    }

    async fn next(&mut self) -> Option<Result<pipedrive_client::Page, ClientError>> {
        match self {
            Pager::Stream(stream) => stream.next().await,
            Pager::Keyset { done: true, .. } => None,
            Pager::Keyset {
                client,
                def,
                param,
                since,
                skip,
                ..
            } => {
                let mut query: Vec<(String, String)> =
                    since.iter().map(|since| ((*param).to_owned(), since.clone())).collect();
                if let Incremental::UpdatedSince { sort, .. } = def.incremental {
                    query.extend(sort.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
                }
                let start = if *skip == 0 { PagePosition::First } else { PagePosition::Offset(*skip) };
                Some(client.get(&request(def, query, start)).await)
            }
        }
    }

    /// Moves a keyset walk past the page just read.
    fn advance(&mut self, read: usize, newest: Option<&str>, more: bool) {
        if let Pager::Keyset { since, skip, done, .. } = self {
            match newest {
                _ if !more => *done = true,
                Some(newest) if since.as_deref().is_none_or(|s| newest > s) => {
                    *since = Some(newest.to_owned());
                    *skip = 0;
                }
                _ => *skip += read as u64,
            }
        }
    }
}

fn prefetched_page(records: &[Value]) -> pipedrive_client::Page {
    pipedrive_client::Page {
        items: records
            .iter()
            .filter_map(|r| serde_json::value::to_raw_value(r).ok())
            .collect(),
        next: None,
        additional_data: None,
        related_objects: None,
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

/// Parses and transforms one page: columns in order of first appearance with widened types,
/// rows aligned to them, duplicate keys collapsed to their last occurrence, and the newest
/// cursor value seen.
pub fn build_rows(
    def: &StreamDef,
    transform: &RecordTransform,
    items: &[Box<serde_json::value::RawValue>],
) -> (Vec<Column>, Vec<Vec<Value>>, Option<String>) {
    let mut columns: Vec<Column> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut rows: Vec<Vec<Value>> = Vec::with_capacity(items.len());
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    let mut newest: Option<String> = None;
    for raw in items {
        let mut record = match serde_json::from_str::<Value>(raw.get()) {
            Ok(Value::Object(map)) => map,
            Ok(other) => {
                let mut map = Map::new();
                map.insert("value".to_owned(), other);
                map
            }
            Err(error) => {
                tracing::warn!(stream = def.name, %error, "skipped a record that is not JSON");
                continue;
            }
        };
        transform.apply(&mut record);
        if let Some(cursor) = def.cursor_field {
            if let Some(ts) = record.get(cursor).and_then(Value::as_str).and_then(normalize_timestamp) {
                if newest.as_deref().is_none_or(|n| ts.as_str() > n) {
                    newest = Some(ts);
                }
            }
        }
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
    (columns, rows, newest)
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
        let (columns, rows, newest) = build_rows(def, &RecordTransform::default(), &items);
        let names: Vec<_> = columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "title", "update_time", "value"]);
        assert_eq!(columns[3].ty, ColumnType::Double);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][1], Value::from("b"));
        assert_eq!(newest.as_deref(), Some("2024-01-03T00:00:00Z"));
    }
}
