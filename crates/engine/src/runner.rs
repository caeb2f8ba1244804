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
use rustc_hash::FxHashMap;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::catalog::{self, Deletes, Fanout, Incremental, Origin, PagingKind, StreamDef};
use crate::declared::{self, FieldDefinitions, assign_custom_columns};
use crate::destination::columns::{DELETED, DELETED_AT, delete_marks};
use crate::destination::{Batch, Destination, DestinationError, Missing, Present, TableRef};
use crate::history::{self, VersionInput};
use crate::report::{Failure, Outcome, StreamReport, worst_failure};
use crate::runs::{RunRecord, RunStart};
use crate::schema::{Column, ColumnType, normalize_timestamp};
use crate::source::{self, Source};
use crate::state::{FullRefreshProgress, StreamState, SyncState};
use crate::transform::{FieldCatalog, RecordTransform};

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
    /// Keep `{table}_history` with one row per version (streams with a version field only).
    pub history: bool,
    /// How often an incremental stream lists its ids to find deleted records: `None` never,
    /// zero on every run. Costs one full listing of the stream.
    pub reconcile_every: Option<std::time::Duration>,
    pub controls: crate::controls::Controls,
    /// The first (backfill) sync reads the newest records first.
    pub recent_first: bool,
}

impl StreamPlan {
    /// Whether the stream is read by its changes since a bookmark, not in full.
    pub fn reads_changes(&self) -> bool {
        self.mode == SyncMode::Incremental && self.def.supports_incremental()
    }
}

/// Why a run did not start. Stream failures are in the [`SyncReport`] instead.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// The first request, which asks who the token belongs to, failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// `/v1/users/me`, which every company has, answered 404: the base URL is wrong.
    #[error("{0}")]
    NotPipedrive(String),
    /// The target holds another company's data.
    #[error("{0}")]
    OtherCompany(String),
    /// The config asks for something the company's streams cannot do (a column that does not
    /// exist, a filter that can never match).
    #[error("{0}")]
    Config(String),
}

/// Everything `run` needs, validated.
#[derive(Clone, Debug)]
pub struct SyncPlan {
    /// The company's name in the config: runs and reports are told apart by it.
    pub company: String,
    pub streams: Vec<StreamPlan>,
    /// Lower bound on `update_time` for a stream's first incremental sync.
    pub start_date: Option<DateTime<Utc>>,
    /// How far before its bookmark an incremental read starts again. Pipedrive stamps a
    /// change with the second it began, so a change can show in a list after changes stamped
    /// later (same-second ties behind the cursor, replication lag); re-reading this window
    /// catches it. Records re-read unchanged are merged again, at no other cost.
    pub lookback: std::time::Duration,
    /// Streams read at the same time. They share the client's rate budget.
    pub concurrency: usize,
    /// Load into a target whose state names another Pipedrive company (`--allow-other-company`).
    pub allow_other_company: bool,
}

#[derive(Debug)]
pub struct SyncReport {
    pub streams: Vec<StreamReport>,
    /// The run's record, as written to the destination's `_sync_runs`.
    pub run: RunRecord,
}

impl SyncReport {
    /// The most serious failure of the run: auth over destination over other over temporary.
    pub fn worst_failure(&self) -> Option<(Failure, &str)> {
        worst_failure(&self.streams)
    }
}

/// Progress callbacks, so the engine stays free of any UI.
pub trait Observer: Send + Sync {
    fn stream_started(&self, _stream: &str) {}
    fn page_committed(&self, _stream: &str, _records: usize) {}
    fn stream_finished(&self, _report: &StreamReport) {}
}

/// Asks a running sync to stop after the pages in flight are committed.
#[derive(Clone, Default)]
pub struct StopSignal {
    own: Arc<AtomicBool>,
    /// The signals this one was derived from: stopping any of them stops this one.
    enclosing: Vec<Arc<AtomicBool>>,
}

impl StopSignal {
    pub fn stop(&self) {
        self.own.store(true, Ordering::SeqCst);
    }
    pub fn is_stopped(&self) -> bool {
        std::iter::once(&self.own)
            .chain(&self.enclosing)
            .any(|flag| flag.load(Ordering::SeqCst))
    }
    /// A signal stopped whenever this one is, whose own stop leaves this one running: a run
    /// that gives up (say, on rejected credentials) stops its own streams, not other
    /// companies' runs or a schedule.
    pub fn child(&self) -> StopSignal {
        StopSignal {
            own: Arc::default(),
            enclosing: std::iter::once(self.own.clone())
                .chain(self.enclosing.iter().cloned())
                .collect(),
        }
    }
}

/// One table's share of a commit.
struct TableWrite {
    stream: &'static str,
    table: TableRef,
    primary_key: &'static [&'static str],
    columns: Vec<Column>,
    rows: Vec<Vec<Value>>,
    /// Rows whose `.0` column holds one of `.1` are removed first.
    replace: Option<(&'static str, Vec<Value>)>,
    state: StreamState,
    /// Versions for a history table.
    history: bool,
}

/// A write for the writer task, answered once committed.
enum WriteOp {
    /// Rows and states of one or more tables, committed in one transaction.
    Rows(Vec<TableWrite>),
    Replace {
        stream: &'static str,
        staging: TableRef,
        target: TableRef,
        state: StreamState,
    },
    Drop(TableRef),
    /// The finished run's record.
    RecordRun(Box<RunRecord>),
    KeepDeleted {
        stream: &'static str,
        table: TableRef,
        key: &'static str,
        present: PresentRows,
        deleted_at: String,
        state: StreamState,
    },
}

/// `Present`, owned for the trip to the writer.
enum PresentRows {
    Keys(Vec<Value>),
    Reloaded(TableRef),
}

type Ack = oneshot::Receiver<Result<(), String>>;

#[derive(Clone)]
struct Writer {
    tx: mpsc::Sender<(WriteOp, oneshot::Sender<Result<(), String>>)>,
}

/// Writers at most, each with its own handle on the destination (see
/// [`Destination::fork`]).
const WRITERS: usize = 2;

impl Writer {
    /// A task that applies the writes queued to it, one at a time, until the first failure.
    fn start(
        mut destination: Box<dyn Destination>,
        synced_at: String,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        // Pages waiting for the writers are most of the memory a sync holds: keep the queues
        // short, four pages across all of them.
        let (tx, mut rx) =
            mpsc::channel::<(WriteOp, oneshot::Sender<Result<(), String>>)>(4 / WRITERS);
        let task = tokio::spawn(async move {
            while let Some((op, ack)) = rx.recv().await {
                let result = apply(destination.as_mut(), op, &synced_at).await;
                let failed = result.is_err();
                let _ = ack.send(result.map_err(|e| e.message));
                if failed {
                    break;
                }
            }
        });
        (Writer { tx }, task)
    }

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

/// Streams read in one walk: a root list and the selected streams fanned out from it. The
/// root is walked once whatever the number of children, and every page's rows for all of them
/// are committed in one transaction.
pub(crate) struct Unit {
    pub(crate) root: &'static StreamDef,
    pub(crate) members: Vec<StreamPlan>,
}

/// Groups the plan into units, in catalog order.
pub(crate) fn units(plan: &SyncPlan) -> Vec<Unit> {
    let mut units: Vec<Unit> = Vec::new();
    for stream in &plan.streams {
        let root = stream
            .def
            .fanout
            .parent()
            .and_then(catalog::find)
            .unwrap_or(stream.def);
        match units.iter_mut().find(|u| u.root.name == root.name) {
            Some(unit) => unit.members.push(stream.clone()),
            None => units.push(Unit {
                root,
                members: vec![stream.clone()],
            }),
        }
    }
    for unit in &mut units {
        // The root first, so its rows are written before its children's.
        unit.members.sort_by_key(|m| m.def.name != unit.root.name);
    }
    units
}

/// Runs a sync to completion (or to a stop), returning what happened per stream.
pub async fn run(
    client: &Client,
    destination: Box<dyn Destination>,
    plan: SyncPlan,
    observer: Arc<dyn Observer>,
    stop: StopSignal,
) -> Result<SyncReport, RunError> {
    run_with_definitions(client, destination, plan, observer, stop, None).await
}

/// [`run`] with the field definitions already read (by a protocol that declared its schemas
/// from them), so they are not requested twice.
pub async fn run_with_definitions(
    client: &Client,
    mut destination: Box<dyn Destination>,
    plan: SyncPlan,
    observer: Arc<dyn Observer>,
    stop: StopSignal,
    definitions: Option<FieldDefinitions>,
) -> Result<SyncReport, RunError> {
    let run_start = RunStart::now(client, &plan.company);
    let mut states = destination.read_state().await?;
    // A stream an earlier run loaded that is now opt-in and not selected would silently stop
    // updating: say so.
    for def in catalog::CATALOG.iter().filter(|def| def.opt_in) {
        if states.contains_key(def.name) && !plan.streams.iter().any(|s| s.def.name == def.name) {
            tracing::warn!(
                stream = def.name,
                "an earlier run loaded this stream, but it is opt-in and not selected, so its table is no longer updated; name it under `streams` to keep it in sync"
            );
        }
    }
    // Before any stream starts: rejected credentials or a wrong address fail once, here,
    // rather than once per stream.
    let company = match company_of(client).await {
        Ok(company) => company,
        Err(error) => {
            record_refused_run(destination.as_mut(), client, &run_start, &plan, &error).await;
            return Err(error);
        }
    };
    if let Some(company_id) = company.id {
        refuse_another_company(
            &states,
            company_id,
            &company.domain,
            &plan,
            destination.describe(),
        )?;
        for state in states.values_mut() {
            state.company_id = Some(company_id);
        }
    }
    let definitions = match definitions {
        Some(definitions) => definitions,
        None => read_field_definitions(client, definitions_wanted(&plan)).await,
    };
    let mut declared = declared_columns(&plan, &definitions, &states)?;
    let synced_at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let keeps_deleted = destination.keeps_deleted();
    let observed_at = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);

    // One connection's transaction runs at a time (in a database server while this process
    // waits, or in DuckDB on one core): a second handle overlaps them.
    let mut destinations = vec![destination];
    while destinations.len() < WRITERS {
        match destinations[0].fork().await {
            Ok(Some(another)) => destinations.push(another),
            Ok(None) => break,
            Err(error) => {
                tracing::warn!(%error, "a second writer is not available; writing with one");
                break;
            }
        }
    }
    let (writers, writer_tasks): (Vec<Writer>, Vec<_>) = destinations
        .into_iter()
        .map(|destination| Writer::start(destination, synced_at.clone()))
        .unzip();

    let mapping = Arc::new(custom_field_rows(&definitions, &states));
    let start_date = plan.start_date;
    let lookback = plan.lookback;
    let work = units(&plan).into_iter().enumerate().map(|(index, unit)| {
        let members = unit
            .members
            .into_iter()
            .map(|stream| {
                let state = states
                    .remove(stream.def.name)
                    .unwrap_or_else(|| StreamState {
                        company_id: company.id,
                        ..StreamState::default()
                    });
                let fields = stream
                    .def
                    .custom_fields
                    .and_then(|custom| definitions.get(custom.defined_by).cloned());
                let declared = declared.remove(stream.def.name).unwrap_or_default();
                (stream, state, fields, declared)
            })
            .collect();
        let worker = UnitWorker {
            client,
            writer: writers[index % writers.len()].clone(),
            observer: observer.clone(),
            stop: stop.clone(),
            start_date,
            lookback,
            keeps_deleted,
            observed_at: observed_at.clone(),
        };
        let prefetched = match unit.root.origin {
            Origin::Api => definitions.get(unit.root.name).cloned(),
            Origin::CustomFieldColumns => Some(mapping.clone()),
        };
        async move { worker.run(unit.root, members, prefetched).await }
    });
    let mut reports: Vec<StreamReport> = futures::stream::iter(work)
        .buffer_unordered(plan.concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect();
    reports.sort_by_key(|r| catalog::CATALOG.iter().position(|s| s.name == r.stream));
    let worst = worst_failure(&reports);
    let run = run_start.finish(client, &reports, worst);
    // Through the first writer, after every page; a destination that failed keeps no record.
    if let Err(error) = writers[0]
        .commit(WriteOp::RecordRun(Box::new(run.clone())))
        .await
    {
        tracing::warn!(%error, "the run's record was not written");
    }
    drop(writers);
    for task in writer_tasks {
        let _ = task.await;
    }
    Ok(SyncReport {
        streams: reports,
        run,
    })
}

/// Records a run that ended at its first request, every planned stream failed with its
/// reason: the runs table shows failed runs too.
async fn record_refused_run(
    destination: &mut dyn Destination,
    client: &Client,
    run_start: &RunStart,
    plan: &SyncPlan,
    error: &RunError,
) {
    let failure = match error {
        RunError::Client(error) => match error.exit_class() {
            ErrorClass::Auth => Failure::Auth,
            ErrorClass::Temporary => Failure::Temporary,
            ErrorClass::Permanent | ErrorClass::NotAvailable => Failure::Other,
        },
        RunError::Destination(_) => Failure::Destination,
        RunError::NotPipedrive(_) | RunError::OtherCompany(_) => Failure::Other,
        RunError::Config(_) => Failure::Config,
    };
    let message = error.to_string();
    let reports: Vec<StreamReport> = plan
        .streams
        .iter()
        .map(|stream| StreamReport {
            stream: stream.def.name,
            records: 0,
            requests: 0,
            tokens: 0,
            seconds: 0.0,
            outcome: Outcome::Incomplete {
                failure,
                message: message.clone(),
            },
        })
        .collect();
    let run = run_start.finish(client, &reports, Some((failure, &message)));
    if let Err(error) = destination.record_run(&run).await {
        tracing::warn!(%error, "the run's record was not written");
    }
}

/// The Pipedrive company the client's credentials belong to.
pub(crate) struct Company {
    pub(crate) id: Option<u64>,
    pub(crate) domain: String,
}

pub(crate) async fn company_of(client: &Client) -> Result<Company, RunError> {
    let me = match client
        .send(&pipedrive_client::Request {
            token_cost: 2,
            ..pipedrive_client::Request::new("/api/v1/users/me")
        })
        .await
    {
        Ok(me) => me,
        Err(ClientError::NotFound { path }) => {
            return Err(RunError::NotPipedrive(format!(
                "Pipedrive answered 404 Not Found for {path}, which every company has: source.base_url ({}) does not lead to Pipedrive's API; write the address without a path (e.g. https://mycompany.pipedrive.com), or with the prefix a proxy serves it under",
                client.base_url()
            )));
        }
        Err(error) => return Err(error.into()),
    };
    let user: Value = me
        .items
        .first()
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .unwrap_or_default();
    Ok(Company {
        id: user.get("company_id").and_then(Value::as_u64),
        domain: user
            .get("company_domain")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned(),
    })
}

/// Refuses to load one company's data over another's: rows would merge by id across the two.
fn refuse_another_company(
    states: &SyncState,
    company_id: u64,
    domain: &str,
    plan: &SyncPlan,
    target: String,
) -> Result<(), RunError> {
    // Only the streams this run writes: another stream's table keeps its company's rows
    // untouched, and is refused when a run selects it.
    let Some((stream, other)) = plan
        .streams
        .iter()
        .filter_map(|stream| Some((stream.def.name, states.get(stream.def.name)?.company_id?)))
        .find(|(_, id)| *id != company_id)
    else {
        return Ok(());
    };
    if plan.allow_other_company {
        tracing::warn!(
            stream,
            previous = other,
            now = company_id,
            "loading another company's data into this target, as --allow-other-company asks"
        );
        return Ok(());
    }
    Err(RunError::OtherCompany(format!(
        "{target} holds the data of Pipedrive company {other} (stream `{stream}`), and the source's credentials belong to company {company_id} ({domain}.pipedrive.com): loading it would mix two companies in the same tables. Point target.path (or target.schema) at a target of its own, or pass --allow-other-company if this data should now follow the other company"
    )))
}

async fn apply(
    destination: &mut dyn Destination,
    op: WriteOp,
    synced_at: &str,
) -> Result<(), DestinationError> {
    match op {
        WriteOp::Rows(writes) => {
            let batches: Vec<Batch<'_>> = writes
                .iter()
                .map(|w| Batch {
                    stream: w.stream,
                    table: &w.table,
                    primary_key: w.primary_key,
                    columns: &w.columns,
                    rows: &w.rows,
                    replace_parents: w
                        .replace
                        .as_ref()
                        .map(|(column, values)| (*column, values.as_slice())),
                    state: &w.state,
                    synced_at,
                    history: w.history,
                })
                .collect();
            destination.write(&batches).await
        }
        WriteOp::KeepDeleted {
            stream,
            table,
            key,
            present,
            deleted_at,
            state,
        } => {
            let present = match &present {
                PresentRows::Keys(keys) => Present::Keys(keys),
                PresentRows::Reloaded(staging) => Present::Reloaded(staging),
            };
            let marked = destination
                .keep_deleted(&Missing {
                    stream,
                    table: &table,
                    key,
                    present,
                    deleted_at: &deleted_at,
                    state: &state,
                })
                .await?;
            if marked > 0 {
                tracing::info!(
                    stream,
                    rows = marked,
                    "rows no longer in Pipedrive marked deleted"
                );
            }
            Ok(())
        }
        WriteOp::Replace {
            stream,
            staging,
            target,
            state,
        } => destination.replace(stream, &staging, &target, &state).await,
        WriteOp::Drop(table) => destination.drop_table(&table).await,
        WriteOp::RecordRun(run) => destination.record_run(&run).await,
    }
}

/// The `*_fields` streams a planned stream takes its custom-field names from (or that are
/// themselves planned): their definitions are read once per run.
pub fn definitions_wanted(plan: &SyncPlan) -> Vec<&'static StreamDef> {
    let mapping = plan
        .streams
        .iter()
        .any(|s| s.def.origin == Origin::CustomFieldColumns);
    let mut wanted: Vec<&'static StreamDef> = plan
        .streams
        .iter()
        .map(|s| s.def)
        .chain(catalog::CATALOG.iter().filter(|_| mapping))
        .filter_map(|def| def.custom_fields.and_then(|c| catalog::find(c.defined_by)))
        .chain(
            plan.streams
                .iter()
                .map(|s| s.def)
                .filter(|d| d.field_definitions.is_some()),
        )
        .collect();
    wanted.sort_by_key(|d| d.name);
    wanted.dedup_by_key(|d| d.name);
    wanted
}

/// Reads the records of the `*_fields` streams `wanted` names. One whose read fails is left
/// out (with a warning), so the streams it defines keep raw custom-field keys.
pub async fn read_field_definitions(
    client: &Client,
    wanted: Vec<&'static StreamDef>,
) -> FieldDefinitions {
    // Read at once: no stream starts before they are in, so one at a time would idle the
    // burst window for a few round trips.
    futures::stream::iter(wanted)
        .map(|def| async move {
            let request =
                source::request(def, def.path.to_owned(), Vec::new(), PagePosition::First);
            (def, client.pages(request).try_collect::<Vec<_>>().await)
        })
        .buffer_unordered(FIELD_READS_AT_ONCE)
        .filter_map(|(def, read)| async move {
            match read {
                Ok(pages) => {
                    let records = pages
                        .iter()
                        .flat_map(|p| p.items.iter())
                        .filter_map(|raw| serde_json::from_str::<Value>(raw.get()).ok())
                        .collect();
                    Some((def.name, Arc::new(records)))
                }
                Err(error) => {
                    tracing::warn!(stream = def.name, %error, "field definitions unavailable; custom fields keep their keys");
                    None
                }
            }
        })
        .collect()
        .await
}

/// Field-definition lists requested at once at the start of a run.
const FIELD_READS_AT_ONCE: usize = 8;

/// One row per custom field of every stream that has them: the field's key, name, type and
/// options, and the column it lands in (as the stream's worker assigns it in this run).
fn custom_field_rows(definitions: &FieldDefinitions, states: &SyncState) -> Vec<Value> {
    let mut rows = Vec::new();
    for def in catalog::CATALOG {
        let Some(custom) = def.custom_fields else {
            continue;
        };
        let (Some(records), Some(shape)) = (
            definitions.get(custom.defined_by),
            catalog::find(custom.defined_by).and_then(|d| d.field_definitions),
        ) else {
            continue;
        };
        let fields = FieldCatalog::from_definitions(records, shape);
        let mut columns = states
            .get(def.name)
            .map(|s| s.custom_columns.clone())
            .unwrap_or_default();
        assign_custom_columns(def, &fields, &mut columns);
        for (key, field) in &fields.custom {
            let mut options: Vec<(&String, &String)> = field.options.iter().collect();
            options.sort();
            rows.push(serde_json::json!({
                "stream": def.name,
                "field_key": key,
                "field_name": field.name,
                "field_type": field.field_type,
                "column_name": columns.get(key),
                "options": options.into_iter().map(|(id, label)| serde_json::json!({"id": id, "label": label})).collect::<Vec<_>>(),
            }));
        }
    }
    rows
}

/// `bookmark` moved back by `lookback`, in the bookmark's own RFC 3339 form.
pub(crate) fn looked_back(bookmark: &str, lookback: std::time::Duration) -> String {
    match (
        crate::schema::parse_timestamp(bookmark),
        chrono::Duration::from_std(lookback),
    ) {
        (Some(at), Ok(back)) if !lookback.is_zero() => {
            (at - back).to_rfc3339_opts(SecondsFormat::Secs, true)
        }
        _ => bookmark.to_owned(),
    }
}

/// How a stream's records become rows: custom fields named from `fields` (new ones get
/// their columns in `state`), the stream's data controls, and its declared column types.
pub(crate) fn stream_transform(
    plan: &StreamPlan,
    state: &mut StreamState,
    fields: Option<Arc<Vec<Value>>>,
    declared: Vec<Column>,
) -> RecordTransform {
    let def = plan.def;
    let mut transform = RecordTransform {
        layout: def.custom_fields.map(|c| c.layout),
        ..RecordTransform::default()
    };
    if let (Some(custom), Some(records)) = (def.custom_fields, fields)
        && let Some(shape) = catalog::find(custom.defined_by).and_then(|d| d.field_definitions)
    {
        transform.fields = FieldCatalog::from_definitions(&records, shape);
        assign_custom_columns(def, &transform.fields, &mut state.custom_columns);
    }
    transform.columns = state.custom_columns.clone();
    transform.controls = plan.controls.clone();
    transform.declared = declared
        .into_iter()
        .filter(|column| column.ty != ColumnType::Null)
        .map(|column| (column.name, column.ty))
        .collect();
    transform
}

/// A stream of a unit as handed to its worker: plan, committed state, the field definitions
/// its custom fields are named from, and its declared columns.
type MemberInput = (
    StreamPlan,
    StreamState,
    Option<Arc<Vec<Value>>>,
    Vec<Column>,
);

struct UnitWorker<'a> {
    client: &'a Client,
    writer: Writer,
    observer: Arc<dyn Observer>,
    stop: StopSignal,
    start_date: Option<DateTime<Utc>>,
    lookback: std::time::Duration,
    /// The destination can mark rows Pipedrive no longer lists.
    keeps_deleted: bool,
    /// This run's start: `_valid_from` of versions without a cursor, `_deleted_at` of rows
    /// found missing.
    observed_at: String,
}

/// Counters for one stream's report.
struct Tally {
    started: Instant,
    records: u64,
    requests: u64,
    tokens: u64,
}

/// One stream of a unit while it runs.
struct Member {
    plan: StreamPlan,
    state: StreamState,
    transform: RecordTransform,
    /// Merging into the table (incremental) rather than loading a staging table.
    incremental: bool,
    target: TableRef,
    bookmark: Option<String>,
    /// Parents (or root records) older than this were already loaded by an earlier run.
    skip_before: Option<String>,
    /// The bookmark this run started from: changes after it are new to the history table.
    started_from: Option<String>,
    history_table: Option<TableRef>,
    tally: Tally,
    outcome: Option<Outcome>,
}

impl Member {
    fn def(&self) -> &'static StreamDef {
        self.plan.def
    }

    fn report(&mut self) -> StreamReport {
        StreamReport {
            stream: self.def().name,
            records: self.tally.records,
            requests: self.tally.requests,
            tokens: self.tally.tokens,
            seconds: self.tally.started.elapsed().as_secs_f64(),
            outcome: self.outcome.take().unwrap_or(Outcome::Complete),
        }
    }
}

fn outcome_of(error: StreamError, stream: &str) -> Outcome {
    let incomplete = |failure, message: String| Outcome::Incomplete { failure, message };
    match error {
        StreamError::Client(error) => match error.exit_class() {
            ErrorClass::NotAvailable if !catalog::find(stream).is_some_and(|def| def.gated) => {
                incomplete(
                    Failure::Other,
                    format!(
                        "{error}; every company has {stream}, so this points at source.base_url (a wrong path, or a proxy's prefix) or at the token's permissions"
                    ),
                )
            }
            ErrorClass::NotAvailable => {
                tracing::warn!(stream, %error, "stream skipped: not available to this company or token");
                Outcome::Skipped(error.to_string())
            }
            ErrorClass::Auth => incomplete(Failure::Auth, error.to_string()),
            ErrorClass::Temporary => incomplete(Failure::Temporary, error.to_string()),
            ErrorClass::Permanent => incomplete(Failure::Other, error.to_string()),
        },
        StreamError::Stopped => incomplete(Failure::Temporary, "stopped on request".to_owned()),
        StreamError::ReaderStopped => incomplete(
            Failure::Other,
            "reading the stream's pages stopped before its end (an internal error; the next run resumes from the committed state)".to_owned(),
        ),
        StreamError::Write(message) => incomplete(Failure::Destination, message),
    }
}

impl UnitWorker<'_> {
    async fn run(
        self,
        root: &'static StreamDef,
        streams: Vec<MemberInput>,
        prefetched: Option<Arc<Vec<Value>>>,
    ) -> Vec<StreamReport> {
        let mut members: Vec<Member> = streams
            .into_iter()
            .map(|(plan, mut state, fields, declared)| {
                let def = plan.def;
                self.observer.stream_started(def.name);
                let transform = stream_transform(&plan, &mut state, fields, declared);
                let incremental = plan.reads_changes();
                let target = if incremental {
                    plan.table.clone()
                } else {
                    plan.table.staging()
                };
                let history_table = plan
                    .history
                    .then(|| plan.table.history())
                    .filter(|_| def.version_field().is_some());
                Member {
                    bookmark: state.bookmark.clone().filter(|_| incremental),
                    started_from: state.bookmark.clone().filter(|_| incremental),
                    history_table,
                    skip_before: None,
                    plan,
                    state,
                    transform,
                    incremental,
                    target,
                    tally: Tally {
                        started: Instant::now(),
                        records: 0,
                        requests: 0,
                        tokens: 0,
                    },
                    outcome: None,
                }
            })
            .collect();

        if let Err(error) = self.walk(root, &mut members, prefetched).await {
            let failed = outcome_of(error, root.name);
            for member in members.iter_mut().filter(|m| m.outcome.is_none()) {
                member.outcome = Some(failed.clone());
            }
        }
        // Out of budget, out of credentials or out of a destination: the other units would
        // only fail the same way, so they stop after their pages in flight.
        let stop_all = members.iter().any(|m| {
            matches!(&m.outcome, Some(Outcome::Incomplete { failure, .. }) if *failure != Failure::Other)
        });
        if stop_all {
            self.stop.stop();
        }
        members
            .iter_mut()
            .map(|member| {
                let report = member.report();
                self.observer.stream_finished(&report);
                report
            })
            .collect()
    }

    /// Walks the root list once and commits every page's rows for all members.
    async fn walk(
        &self,
        root: &'static StreamDef,
        members: &mut [Member],
        prefetched: Option<Arc<Vec<Value>>>,
    ) -> Result<(), StreamError> {
        let start_date = self
            .start_date
            .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true));
        // Only a lone plain list resumes a full refresh mid-way; the others start over.
        let resumable = members.len() == 1 && members[0].def().fanout == Fanout::None;
        // A newest-first backfill keeps no bookmark until it ends (older records are still to
        // come); it resumes from its cursor like a full refresh.
        let newest_first = resumable
            && members[0].incremental
            && members[0].plan.recent_first
            && members[0].bookmark.is_none()
            && root.reads_newest_first();
        let mut start = PagePosition::First;
        for member in members.iter_mut() {
            if member.incremental {
                if let Some(progress) = member.state.full_refresh.take().filter(|_| newest_first) {
                    start = progress.next;
                    member.bookmark = progress.bookmark;
                }
                continue;
            }
            match member.state.full_refresh.take().filter(|_| resumable) {
                Some(progress) => {
                    start = progress.next;
                    member.bookmark = progress.bookmark;
                }
                None => {
                    self.writer
                        .commit(WriteOp::Drop(member.target.clone()))
                        .await?;
                }
            }
        }
        // The walk starts where the member furthest behind needs it; members further ahead
        // skip what they already have.
        let keyset = matches!(root.paging, PagingKind::Offset { .. })
            && matches!(root.incremental, Incremental::UpdatedSince { .. });
        let resumes_by_bookmark = |m: &Member| m.incremental || (keyset && resumable);
        let lookback = self.lookback;
        let since = if members.iter().all(resumes_by_bookmark)
            && members.iter().all(|m| m.bookmark.is_some())
        {
            members
                .iter()
                .filter_map(|m| m.bookmark.as_deref())
                .min()
                .map(|b| looked_back(b, lookback))
        } else {
            None
        }
        .or(start_date);
        let since = since.filter(|_| !newest_first);
        for member in members.iter_mut() {
            member.skip_before = member
                .bookmark
                .as_deref()
                .map(|b| looked_back(b, lookback))
                .filter(|b| since.as_ref().is_none_or(|s| b > s))
                .filter(|_| !newest_first);
        }
        let source = match prefetched {
            Some(records) => Source::Prefetched(Some(
                records
                    .iter()
                    .filter_map(|r| r.as_object().cloned())
                    .collect(),
            )),
            None if newest_first => Source::newest_first(self.client, root, start.clone()),
            None => Source::open(self.client, root, since, start.clone()).await?,
        };
        let root_selected = members[0].def().name == root.name;
        let child_reads = members
            .iter()
            .map(|member| {
                (member.def().name != root.name).then(|| source::ChildRead {
                    def: member.def(),
                    skip_before: member.skip_before.clone(),
                })
            })
            .collect();
        let mut pages = source::ReadAhead::start(self.client, root, source, child_reads);

        let mut pending: Option<Ack> = None;
        let mut position = start;
        // Once the list moved under the walk, its bookmark stays where the walk could prove
        // it, and the walk does not count as a complete listing.
        let mut shifted = false;
        while let Some(read) = pages.next().await {
            let source::PageRead {
                mut chunk,
                mut children,
            } = read?;
            if chunk.shifted && !shifted {
                shifted = true;
                tracing::warn!(
                    stream = root.name,
                    "the list moved under the walk by more than the page overlap; the bookmark stays and no row is marked deleted from this walk"
                );
            }
            if root_selected {
                members[0].tally.requests += chunk.requests;
                members[0].tally.tokens += chunk.tokens;
            }
            let mut writes: Vec<TableWrite> = Vec::with_capacity(members.len() + 1);
            let mut counts = Vec::with_capacity(members.len());
            // Children first: a change log read as a stream of its own also serves the root's
            // history, without a second request per parent.
            let mut change_log: Option<Vec<Map<String, Value>>> = None;
            let wanted_log = root
                .change_log
                .filter(|_| root_selected && members[0].history_table.is_some());
            for (member, read) in members.iter_mut().zip(children.iter_mut()).rev() {
                if member.outcome.is_some() {
                    continue;
                }
                let def = member.def();
                let skip_before = member.skip_before.as_deref();
                let (records, replace) = match read.take() {
                    // The root is the last member here (they go in reverse): unless its
                    // history still reads from them below, its rows take the chunk's records
                    // rather than copies.
                    None if member.history_table.is_none() => {
                        let mut records = std::mem::take(chunk.records());
                        records.retain(|r| source::is_selected(r, root.cursor_field, skip_before));
                        (records, None)
                    }
                    None => (
                        source::selected_parents(chunk.records(), root.cursor_field, skip_before)
                            .into_iter()
                            .cloned()
                            .collect(),
                        None,
                    ),
                    Some(read) => match read {
                        Ok(mut children) => {
                            member.tally.requests += children.requests;
                            member.tally.tokens += children.tokens;
                            // Children a shifted walk may have skipped are not replaced.
                            let replace = children
                                .replace_parents
                                .take()
                                .filter(|_| !children.shifted);
                            (children.into_records(), replace)
                        }
                        Err(error) if error.exit_class() == ErrorClass::NotAvailable => {
                            member.outcome = Some(outcome_of(StreamError::Client(error), def.name));
                            continue;
                        }
                        Err(error) => return Err(error.into()),
                    },
                };
                if wanted_log.is_some_and(|log| log.stream == def.name) {
                    change_log = Some(records.clone());
                }
                // A child of a list read in full goes by its parents' change time.
                let newest = match root.cursor_field {
                    None if def.name != root.name => {
                        source::newest_cursor(root.version_field(), chunk.records())
                    }
                    _ => chunk.newest().map(str::to_owned),
                };
                if !shifted
                    && let Some(newest) = newest
                    && member
                        .bookmark
                        .as_deref()
                        .is_none_or(|b| newest.as_str() > b)
                {
                    member.bookmark = Some(newest);
                }
                let Rows {
                    columns,
                    rows,
                    filtered_out,
                } = build_rows(def, &member.transform, records);
                // Rows the filter now rejects go, like children a parent no longer has.
                let replace = def.parent_column.zip(replace).or_else(|| {
                    (!filtered_out.is_empty()).then(|| (def.primary_key[0], filtered_out))
                });
                let mut next_state = member.state.clone();
                if member.incremental && !newest_first {
                    // A list walked by id, not by change time, proves its bookmark only once
                    // every parent has been seen: until the walk ends the committed one stays.
                    if root.cursor_field.is_some() {
                        next_state.bookmark = member.bookmark.clone();
                    }
                } else {
                    // A crash after this commit resumes at the following page; the last page
                    // is re-read (merging on the key makes that harmless) and then swapped in.
                    next_state.full_refresh = Some(FullRefreshProgress {
                        next: chunk.next.clone().unwrap_or_else(|| position.clone()),
                        bookmark: member.bookmark.clone(),
                    });
                }
                if let Some(history_table) = member.history_table.clone() {
                    let mut log_def = wanted_log.and_then(|log| catalog::find(log.stream));
                    // Between two syncs the changes come from the log (its cheapest endpoint
                    // when the log is not a selected stream); the first sync reads it only
                    // when it is selected (one request per record).
                    if let (None, Some(log), Some(_)) =
                        (&change_log, wanted_log, &member.started_from)
                    {
                        let parents = source::selected_parents(
                            chunk.records(),
                            root.cursor_field,
                            skip_before,
                        );
                        let source = log.between_syncs;
                        let read =
                            source::children(self.client, source.def, root, &parents).await?;
                        member.tally.requests += read.requests;
                        member.tally.tokens += read.tokens;
                        let mut records = read.into_records();
                        // Under the log's own names, which history reads.
                        for record in &mut records {
                            if let Some(time) = record.remove(source.time) {
                                record.insert(log.time.to_owned(), time);
                            }
                        }
                        change_log = Some(records);
                        log_def = Some(source.def);
                    }
                    let (columns, rows) = history::versions(&VersionInput {
                        def,
                        columns: &columns,
                        rows: &rows,
                        changes: change_log.as_deref().unwrap_or_default(),
                        change_key: log_def.and_then(|d| d.parent_column),
                        custom_columns: &member.transform.columns,
                        since: member.started_from.as_deref(),
                        observed_at: &self.observed_at,
                    });
                    writes.push(TableWrite {
                        stream: def.name,
                        table: history_table,
                        primary_key: def.primary_key,
                        columns,
                        rows,
                        replace: None,
                        state: next_state.clone(),
                        history: true,
                    });
                }
                counts.push((def.name, rows.len()));
                member.tally.records += rows.len() as u64;
                writes.push(TableWrite {
                    stream: def.name,
                    table: member.target.clone(),
                    primary_key: def.primary_key,
                    columns,
                    rows,
                    replace,
                    state: next_state.clone(),
                    history: false,
                });
                member.state = next_state;
            }
            // The root's rows first, each table before its history.
            writes.reverse();
            if let Some(ack) = pending.take() {
                wait(ack).await.map_err(StreamError::Write)?;
            }
            pending = Some(
                self.writer
                    .submit(WriteOp::Rows(writes))
                    .await
                    .map_err(StreamError::Write)?,
            );
            for (stream, records) in counts {
                self.observer.page_committed(stream, records);
            }
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
        if !pages.reached_the_end() {
            return Err(StreamError::ReaderStopped);
        }

        for member in members.iter_mut().filter(|m| m.outcome.is_none()) {
            let def = member.def();
            let mut final_state = member.state.clone();
            final_state.full_refresh = None;
            final_state.bookmark = member.bookmark.clone();
            final_state.completed_at = Some(Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true));
            if def.deletes.is_some()
                && member.incremental
                && member.started_from.is_none()
                && !shifted
            {
                // A first, complete walk listed every id: nothing to reconcile yet.
                final_state.reconciled_at = Some(self.observed_at.clone());
            }
            // The empty write creates the table of a stream that had no rows.
            let empty = |table: TableRef, state: StreamState| {
                WriteOp::Rows(vec![TableWrite {
                    stream: def.name,
                    table,
                    primary_key: def.primary_key,
                    columns: Vec::new(),
                    rows: Vec::new(),
                    replace: None,
                    state,
                    history: false,
                }])
            };
            if member.incremental {
                self.writer
                    .commit(empty(member.target.clone(), final_state.clone()))
                    .await?;
            } else if shifted {
                // A reload that may have skipped records never replaces the table: the old one
                // stays, and the next run reloads from the start.
                let mut restart = member.state.clone();
                restart.full_refresh = None;
                self.writer
                    .commit(empty(member.plan.table.clone(), restart.clone()))
                    .await?;
                self.writer
                    .commit(WriteOp::Drop(member.target.clone()))
                    .await?;
                member.state = restart;
                continue;
            } else {
                self.writer
                    .commit(empty(member.target.clone(), member.state.clone()))
                    .await?;
                if let (Some(_), true) = (def.deletes, self.keeps_deleted) {
                    // Rows the reload no longer has are deleted in Pipedrive (or purged): keep
                    // them, marked, rather than lose them with the old table.
                    self.writer
                        .commit(WriteOp::KeepDeleted {
                            stream: def.name,
                            table: member.plan.table.clone(),
                            key: def.primary_key[0],
                            present: PresentRows::Reloaded(member.target.clone()),
                            deleted_at: self.observed_at.clone(),
                            state: member.state.clone(),
                        })
                        .await?;
                    final_state.reconciled_at = Some(self.observed_at.clone());
                }
                self.writer
                    .commit(WriteOp::Replace {
                        stream: def.name,
                        staging: member.target.clone(),
                        target: member.plan.table.clone(),
                        state: final_state.clone(),
                    })
                    .await?;
            }
            member.state = final_state;
            if let Some(deletes) = def.deletes
                && member.incremental
                && self.keeps_deleted
                && reconciliation_due(&member.plan, &member.state)
            {
                self.reconcile(member, deletes).await?;
            }
        }
        Ok(())
    }

    /// Lists the stream's ids (and those of the lists its records move to, like archived
    /// deals) and marks the rows missing from them deleted.
    async fn reconcile(&self, member: &mut Member, deletes: Deletes) -> Result<(), StreamError> {
        let def = member.def();
        let key = def.primary_key[0];
        let started = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut present = Vec::new();
        let listed = std::iter::once(def).chain(
            deletes
                .also_present_in
                .iter()
                .filter_map(|name| catalog::find(name)),
        );
        for list in listed {
            // The list's own paging (the source advances it): keyset by update time where
            // offsets could shift when a record is deleted mid-walk and let a live record look
            // missing.
            let not_available = |error: &ClientError| {
                // Without every list, a missing id proves nothing.
                tracing::warn!(stream = def.name, list = list.name, %error, "deletes not reconciled: a list is not available");
            };
            let mut pages = match Source::open(self.client, list, None, PagePosition::First).await {
                Ok(pages) => pages,
                Err(error) if error.exit_class() == ErrorClass::NotAvailable => {
                    not_available(&error);
                    return Ok(());
                }
                Err(error) => return Err(error.into()),
            };
            while let Some(chunk) = pages.next().await {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(error) if error.exit_class() == ErrorClass::NotAvailable => {
                        not_available(&error);
                        return Ok(());
                    }
                    Err(error) => return Err(error.into()),
                };
                member.tally.requests += chunk.requests;
                member.tally.tokens += chunk.tokens;
                if chunk.shifted {
                    tracing::warn!(
                        stream = def.name,
                        list = list.name,
                        "deletes not reconciled: the list moved under the walk; the next run tries again"
                    );
                    return Ok(());
                }
                present.extend(
                    chunk
                        .into_records()
                        .into_iter()
                        .filter_map(|mut record| record.remove(key)),
                );
                if self.stop.is_stopped() {
                    return Err(StreamError::Stopped);
                }
            }
        }
        let mut state = member.state.clone();
        state.reconciled_at = Some(started.clone());
        self.writer
            .commit(WriteOp::KeepDeleted {
                stream: def.name,
                table: member.plan.table.clone(),
                key,
                present: PresentRows::Keys(present),
                deleted_at: started,
                state: state.clone(),
            })
            .await?;
        member.state = state;
        Ok(())
    }
}

/// Whether the stream's last reconciliation is older than its cadence.
pub(crate) fn reconciliation_due(plan: &StreamPlan, state: &StreamState) -> bool {
    let Some(every) = plan.reconcile_every else {
        return false;
    };
    let last = state
        .reconciled_at
        .as_deref()
        .and_then(crate::schema::parse_timestamp);
    last.is_none_or(|last| {
        chrono::Duration::from_std(every).is_ok_and(|every| last + every <= Utc::now())
    })
}

enum StreamError {
    Client(ClientError),
    Write(String),
    Stopped,
    /// The task reading a stream's pages ahead ended before the list did (it panicked).
    ReaderStopped,
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

/// A page's records as rows.
#[derive(Debug, Default)]
pub struct Rows {
    /// In order of first appearance, types widened over all rows.
    pub columns: Vec<Column>,
    /// Aligned with `columns`; one per key, the last occurrence winning.
    pub rows: Vec<Vec<Value>>,
    /// First key column of the records the stream's filter rejected: rows loaded with those
    /// keys before are removed.
    pub filtered_out: Vec<Value>,
}

/// Each planned stream's declared columns as it loads them (excluded columns gone, hashed ones
/// text), its data controls checked against them first: a typo in one stream's options stops
/// the run before any stream writes, while every table is as the last run left it.
pub(crate) fn declared_columns(
    plan: &SyncPlan,
    definitions: &FieldDefinitions,
    states: &SyncState,
) -> Result<HashMap<&'static str, Vec<Column>>, RunError> {
    let mut declared = HashMap::new();
    for stream in &plan.streams {
        let def = stream.def;
        let state = states.get(def.name);
        let columns = declared::stream_columns(def, definitions, state);
        let controls = &stream.controls;
        if !controls.is_empty() {
            let field_names = declared::custom_field_names(def, definitions, state);
            controls
                .check(&columns, &field_names)
                .map_err(|problem| RunError::Config(format!("streams.{}.{problem}", def.name)))?;
        }
        declared.insert(def.name, controls.declare(columns));
    }
    Ok(declared)
}

/// Transforms records into rows: custom fields named, data controls applied, delete marks
/// added.
pub fn build_rows(
    def: &StreamDef,
    transform: &RecordTransform,
    records: Vec<Map<String, Value>>,
) -> Rows {
    let mut columns: Vec<Column> = Vec::new();
    // Aligned with `columns`: the type is declared, not widened by the values.
    let mut declared: Vec<bool> = Vec::new();
    let mut misfits = 0;
    let mut index: FxHashMap<String, usize> = FxHashMap::default();
    let mut rows: Vec<Vec<Value>> = Vec::with_capacity(records.len());
    let mut by_key: FxHashMap<String, usize> = FxHashMap::default();
    let mut filtered_out = Vec::new();
    for mut record in records {
        transform.apply(&mut record);
        if !transform.controls.keeps(&record) {
            if let Some(key) = def.primary_key.first().and_then(|k| record.get(*k)) {
                filtered_out.push(key.clone());
            }
            continue;
        }
        let marks = def
            .deletes
            .map(|deletes| deleted_marks(def, deletes, &record));
        let key: String = def
            .primary_key
            .iter()
            .map(|k| record.get(*k).map(Value::to_string).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\u{1f}");
        transform.controls.apply(&mut record);
        let mut row = vec![Value::Null; columns.len()];
        // The record's fields, then the delete marks after them.
        let fields = record
            .into_iter()
            .chain(marks.into_iter().flatten().map(|(n, v)| (n.to_owned(), v)));
        for (name, mut value) in fields {
            // Looked up by reference: a page's records share their keys, so a new column (and
            // its name's copy) is the exception.
            let position = match index.get(&name) {
                Some(&position) => position,
                None => {
                    let ty = transform.declared.get(&name).copied();
                    declared.push(ty.is_some());
                    index.insert(name.clone(), columns.len());
                    columns.push(Column {
                        name,
                        ty: ty.unwrap_or(ColumnType::Null),
                    });
                    columns.len() - 1
                }
            };
            let column = &mut columns[position];
            if !declared[position] {
                column.ty = column.ty.widen(ColumnType::of(&value));
            } else if !declared::fits(&value, column.ty) {
                // The one rule for a value that does not fit its declared type.
                value = Value::Null;
                misfits += 1;
            }
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
    // Delete marks keep their types when every value of the page is null.
    for mark in delete_marks() {
        if let Some(column) = columns.iter_mut().find(|c| c.name == mark.name) {
            column.ty = mark.ty;
        }
    }
    if misfits > 0 {
        tracing::warn!(
            stream = def.name,
            values = misfits,
            "values that do not fit their column's declared type were loaded as null"
        );
    }
    Rows {
        columns,
        rows,
        filtered_out,
    }
}

/// `_deleted` from the record's deleted flag and `_deleted_at` from its cursor (the time it
/// changed, which for a deleted record is its deletion).
fn deleted_marks(
    def: &StreamDef,
    deletes: Deletes,
    record: &Map<String, Value>,
) -> [(&'static str, Value); 2] {
    let deleted = deletes.flag.is_some_and(|(field, when)| {
        match record.get(field) {
            Some(Value::Bool(flag)) => *flag == when,
            // v1 sometimes sends flags as 0/1.
            Some(Value::Number(n)) => (n.as_i64() != Some(0)) == when,
            _ => false,
        }
    });
    let deleted_at = def
        .cursor_field
        .filter(|_| deleted)
        .and_then(|cursor| record.get(cursor))
        .and_then(Value::as_str)
        .and_then(normalize_timestamp);
    [
        (DELETED, Value::Bool(deleted)),
        (DELETED_AT, deleted_at.map_or(Value::Null, Value::from)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookback_moves_the_bookmark_back_in_its_own_form() {
        let five_minutes = std::time::Duration::from_secs(300);
        assert_eq!(
            looked_back("2026-11-01T00:02:00Z", five_minutes),
            "2026-10-31T23:57:00Z"
        );
        assert_eq!(
            looked_back("2026-11-01T00:02:00Z", std::time::Duration::ZERO),
            "2026-11-01T00:02:00Z"
        );
        // A bookmark that is no timestamp is left as it is rather than guessed at.
        assert_eq!(looked_back("not a time", five_minutes), "not a time");
    }

    #[test]
    fn only_gated_streams_are_skipped_when_pipedrive_says_not_found() {
        let not_found = |stream| {
            outcome_of(
                StreamError::Client(ClientError::NotFound {
                    path: "/api/v1/x".to_owned(),
                }),
                stream,
            )
        };
        assert!(matches!(not_found("projects"), Outcome::Skipped(_)));
        assert!(matches!(not_found("goals"), Outcome::Skipped(_)));
        match not_found("currencies") {
            Outcome::Incomplete {
                failure: Failure::Other,
                message,
            } => assert!(message.contains("source.base_url"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            not_found("deal_fields"),
            Outcome::Incomplete { .. }
        ));
    }

    #[test]
    fn timestamps_normalise_to_whole_utc_seconds() {
        assert_eq!(
            normalize_timestamp("2024-01-02 03:04:05").as_deref(),
            Some("2024-01-02T03:04:05Z")
        );
        assert_eq!(
            normalize_timestamp("2024-01-02T03:04:05.678Z").as_deref(),
            Some("2024-01-02T03:04:05Z")
        );
        assert_eq!(
            normalize_timestamp("2024-01-02T05:04:05+02:00").as_deref(),
            Some("2024-01-02T03:04:05Z")
        );
        assert_eq!(normalize_timestamp("yesterday"), None);
    }

    #[test]
    fn a_child_stop_signal_stops_with_its_parents_but_not_them() {
        let process = StopSignal::default();
        let company = process.child();
        let other = process.child();
        let nested = company.child();
        company.stop();
        assert!(company.is_stopped() && nested.is_stopped());
        assert!(!process.is_stopped() && !other.is_stopped());
        process.stop();
        assert!(other.is_stopped());
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
        let Rows { columns, rows, .. } = build_rows(def, &RecordTransform::default(), records);
        let names: Vec<_> = columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "id",
                "title",
                "update_time",
                "_deleted",
                "_deleted_at",
                "value"
            ]
        );
        assert_eq!(columns[3].ty, ColumnType::Boolean);
        assert_eq!(columns[4].ty, ColumnType::Timestamp);
        assert_eq!(columns[5].ty, ColumnType::Double);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][1], Value::from("b"));
        assert_eq!(newest.as_deref(), Some("2024-01-03T00:00:00Z"));
    }
}
