//! What a run is asked to do and how it reports: the resolved plan of each stream, the units
//! a run walks, the observer and stop signal, and how a stream's records are transformed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use pipedrive_client::ClientError;
use serde_json::Value;

use crate::catalog::{self, Origin, StreamDef};
use crate::declared::assign_custom_columns;
use crate::destination::{DestinationError, TableRef};
use crate::report::{Failure, Outcome, Remaining, StreamReport, worst_failure};
use crate::runs::RunRecord;
use crate::schema::{Column, ColumnType};
use crate::state::{StreamState, SyncState};
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
    /// For a stream read in full every run: how long its last complete read stands before it
    /// is read again. `None`: every run.
    pub refresh_every: Option<std::time::Duration>,
    pub controls: crate::controls::Controls,
    /// The first (backfill) sync reads the newest records first.
    pub recent_first: bool,
}

impl StreamPlan {
    /// Whether the stream is read by its changes since a bookmark, not in full.
    pub fn reads_changes(&self) -> bool {
        self.mode == SyncMode::Incremental && self.def.supports_incremental()
    }

    /// How long ago the stream's last complete read ended, if that read still stands at `now`
    /// (`refresh_every`): the run leaves the stream as it is.
    pub fn fresh(
        &self,
        state: Option<&StreamState>,
        now: DateTime<Utc>,
    ) -> Option<chrono::Duration> {
        let every = chrono::Duration::from_std(self.refresh_every?).ok()?;
        let state = state?;
        if state.full_refresh.is_some() || self.reads_changes() {
            return None;
        }
        let completed = DateTime::parse_from_rfc3339(state.completed_at.as_deref()?).ok()?;
        let age = now.signed_duration_since(completed);
        (age >= chrono::Duration::zero() && age < every).then_some(age)
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
    /// For a run stopped at the daily budget's reserve: what it leaves for the next runs.
    pub remaining: Option<Remaining>,
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

/// Takes the streams whose last complete read still stands at `now` (`refresh_every`) out of
/// the plan: the run leaves them as they are, reported skipped with the reason. Streams the
/// run has for free (`free`: read with the field definitions, or derived) are kept.
pub(crate) fn take_fresh(
    plan: &mut SyncPlan,
    states: &SyncState,
    now: DateTime<Utc>,
    free: impl Fn(&StreamDef) -> bool,
) -> Vec<StreamReport> {
    let mut fresh = Vec::new();
    plan.streams.retain(|stream| {
        let (Some(age), Some(every)) = (
            stream.fresh(states.get(stream.def.name), now),
            stream.refresh_every,
        ) else {
            return true;
        };
        if free(stream.def) {
            return true;
        }
        fresh.push(StreamReport {
            stream: stream.def.name,
            records: 0,
            requests: 0,
            tokens: 0,
            seconds: 0.0,
            outcome: Outcome::Skipped(format!(
                "read in full {} ago, and refresh_every is {}",
                minutes_or_hours(age.num_minutes()),
                minutes_or_hours((every.as_secs() / 60) as i64)
            )),
        });
        false
    });
    fresh
}

/// `95m`, `6h`, `30h`: a duration as a config writes it.
fn minutes_or_hours(minutes: i64) -> String {
    if minutes < 120 || minutes % 60 != 0 && minutes < 600 {
        format!("{minutes}m")
    } else {
        format!("{}h", minutes / 60)
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::state::FullRefreshProgress;

    fn plan(stream: &str, mode: SyncMode, refresh_every: Option<Duration>) -> StreamPlan {
        StreamPlan {
            def: catalog::find(stream).unwrap(),
            mode,
            table: TableRef {
                schema: "main".to_owned(),
                name: stream.to_owned(),
            },
            history: false,
            reconcile_every: None,
            refresh_every,
            controls: Default::default(),
            recent_first: false,
        }
    }

    #[test]
    fn a_full_read_stands_for_refresh_every_from_when_it_completed() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let completed = |at: &str| StreamState {
            completed_at: Some(at.to_owned()),
            ..StreamState::default()
        };
        let six_hours = Some(Duration::from_secs(6 * 3600));
        let pipelines = plan("pipelines", SyncMode::Incremental, six_hours);
        let two_hours_ago = completed("2026-12-07T10:00:00Z");
        assert_eq!(
            pipelines.fresh(Some(&two_hours_ago), now),
            Some(chrono::Duration::hours(2))
        );
        assert_eq!(
            pipelines.fresh(Some(&completed("2026-12-07T06:00:00Z")), now),
            None
        );
        // Never read, a reload under way, a clock that went back: read.
        assert_eq!(pipelines.fresh(None, now), None);
        let reloading = StreamState {
            full_refresh: Some(FullRefreshProgress {
                next: pipedrive_client::PagePosition::First,
                bookmark: None,
            }),
            ..two_hours_ago.clone()
        };
        assert_eq!(pipelines.fresh(Some(&reloading), now), None);
        assert_eq!(
            pipelines.fresh(Some(&completed("2026-12-07T13:00:00Z")), now),
            None
        );
        // Without the option, and for a stream read by its changes, every run reads.
        let every_run = plan("pipelines", SyncMode::Incremental, None);
        assert_eq!(every_run.fresh(Some(&two_hours_ago), now), None);
        let deals = plan("deals", SyncMode::Incremental, six_hours);
        assert_eq!(deals.fresh(Some(&two_hours_ago), now), None);
        // A stream that could read changes, reloaded by choice, is read in full: it may stand.
        let reloaded_deals = plan("deals", SyncMode::FullRefresh, six_hours);
        assert!(reloaded_deals.fresh(Some(&two_hours_ago), now).is_some());
    }
}
