//! What a run is asked to do and how it reports: the resolved plan of each stream, the units
//! a run walks, the observer and stop signal, and how a stream's records are transformed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use pipedrive_client::ClientError;
use serde_json::Value;

use crate::catalog::{self, StreamDef};
use crate::declared::assign_custom_columns;
use crate::destination::{DestinationError, TableRef};
use crate::report::{Failure, StreamReport, worst_failure};
use crate::runs::RunRecord;
use crate::schema::{Column, ColumnType};
use crate::state::StreamState;
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
