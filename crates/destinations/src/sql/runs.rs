//! `_sync_runs` in the SQL destinations: one row per run, scalar columns for what a query
//! filters or sums, JSON for the per-stream figures and the per-second timeline.

use pipedrive_engine::{DestinationError, RunRecord, RunStatus};

/// The table, in the state schema beside the state table.
pub const RUNS_TABLE: &str = "_sync_runs";

/// Columns in insert order with their types; `TEXT` and `JSON` stand for the dialect's names.
pub const COLUMNS: [(&str, &str); 13] = [
    ("run_id", "TEXT PRIMARY KEY"),
    ("company", "TEXT NOT NULL"),
    ("started_at", "TIMESTAMPTZ NOT NULL"),
    ("finished_at", "TIMESTAMPTZ NOT NULL"),
    ("status", "TEXT NOT NULL"),
    ("error", "TEXT"),
    ("records", "BIGINT NOT NULL"),
    ("requests", "BIGINT NOT NULL"),
    ("tokens", "BIGINT NOT NULL"),
    ("responses_429", "BIGINT NOT NULL"),
    ("burst_limit", "BIGINT"),
    ("streams", "JSON NOT NULL"),
    ("timeline", "JSON NOT NULL"),
];

/// The quoted column list.
pub fn names() -> String {
    select_list(|column, _| crate::sql::quote(column))
}

/// Every column as `read` renders it (given its name and type), comma-separated.
pub fn select_list(read: impl Fn(&str, &str) -> String) -> String {
    COLUMNS
        .iter()
        .map(|(column, ty)| read(column, ty))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The table's column definitions, with the dialect's text and JSON type names.
pub fn definitions(text: &str, json: &str) -> String {
    select_list(|column, ty| {
        format!(
            "{} {}",
            crate::sql::quote(column),
            ty.replace("TEXT", text).replace("JSON", json)
        )
    })
}

/// A run's values as SQL parameters (timestamps are bound by each destination its own way).
pub struct Row {
    pub run_id: String,
    pub company: String,
    pub status: String,
    pub error: Option<String>,
    pub records: i64,
    pub requests: i64,
    pub tokens: i64,
    pub responses_429: i64,
    pub burst_limit: Option<i64>,
    /// JSON text.
    pub streams: String,
    pub timeline: String,
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn json_fail(error: serde_json::Error) -> DestinationError {
    DestinationError::new(format!("the run record cannot be encoded: {error}"))
}

impl Row {
    pub fn of(run: &RunRecord) -> Result<Row, DestinationError> {
        Ok(Row {
            run_id: run.run_id.clone(),
            company: run.company.clone(),
            status: run.status.as_str().to_owned(),
            error: run.error.clone(),
            records: count(run.records),
            requests: count(run.requests),
            tokens: count(run.tokens),
            responses_429: count(run.responses_429),
            burst_limit: run.burst_limit.map(i64::from),
            streams: serde_json::to_string(&run.streams).map_err(json_fail)?,
            timeline: serde_json::to_string(&run.timeline).map_err(json_fail)?,
        })
    }

    /// The record back, with its start and end as microseconds since the epoch.
    pub fn into_record(
        self,
        started_us: i64,
        finished_us: i64,
    ) -> Result<RunRecord, DestinationError> {
        let unreadable = |what: &str, detail: String| {
            DestinationError::new(format!(
                "{RUNS_TABLE}: the {what} of run {} is unreadable ({detail}); delete that row",
                self.run_id
            ))
        };
        let time = |what: &str, micros: i64| {
            pipedrive_engine::runs::utc_from_micros(micros)
                .ok_or_else(|| unreadable(what, format!("{micros} µs")))
        };
        Ok(RunRecord {
            started_at: time("start", started_us)?,
            finished_at: time("end", finished_us)?,
            status: RunStatus::parse(&self.status)
                .ok_or_else(|| unreadable("status", self.status.clone()))?,
            streams: serde_json::from_str(&self.streams)
                .map_err(|e| unreadable("streams", e.to_string()))?,
            timeline: serde_json::from_str(&self.timeline)
                .map_err(|e| unreadable("timeline", e.to_string()))?,
            records: self.records.max(0) as u64,
            requests: self.requests.max(0) as u64,
            tokens: self.tokens.max(0) as u64,
            responses_429: self.responses_429.max(0) as u64,
            burst_limit: self.burst_limit.and_then(|b| u32::try_from(b).ok()),
            error: self.error,
            company: self.company,
            run_id: self.run_id,
        })
    }
}
