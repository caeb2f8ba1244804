//! The record each sync run leaves in its destination (`_sync_runs`): when it ran, how it
//! ended, and what it cost, overall, per stream and per second. Reports are drawn from it.

use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use pipedrive_client::{Client, ClientStats, RequestTimeline, SecondCounts, normalise_path};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog;
use crate::report::{Failure, Outcome, StreamReport};

/// How a run ended, as its exit code tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Every stream complete, or skipped because the company's plan or permissions do not
    /// offer it (exit 0).
    Succeeded,
    /// Some stream ended early for a temporary reason (daily budget, `max_tokens`, retries
    /// exhausted, a stop signal) and none failed otherwise; the next run resumes (exit 75).
    Stopped,
    /// Some stream failed: credentials, the destination, or a request Pipedrive rejected
    /// (exit 1, 3 or 4).
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Stopped => "stopped",
            RunStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<RunStatus> {
        [RunStatus::Succeeded, RunStatus::Stopped, RunStatus::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One stream's share of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamRun {
    pub stream: String,
    /// Rows loaded (a record re-read at the bookmark's second counts again).
    pub records: u64,
    /// Pages read for the stream (retried attempts are counted in the run's `requests`).
    pub requests: u64,
    /// Tokens those pages cost.
    pub tokens: u64,
    /// 429 responses on the stream's endpoint.
    pub responses_429: u64,
    pub seconds: f64,
    /// `complete`, `skipped` (not offered to this company), `stopped` (temporary; resumes)
    /// or `failed`.
    pub outcome: String,
    /// Why it was skipped, stopped or failed.
    pub error: Option<String>,
}

/// Requests sent (every attempt) and 429s per second, second 0 holding the run's start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    pub requests: Vec<u32>,
    pub responses_429: Vec<u32>,
}

impl Timeline {
    fn from_seconds(seconds: &[SecondCounts]) -> Timeline {
        Timeline {
            requests: seconds.iter().map(|s| s.requests).collect(),
            responses_429: seconds.iter().map(|s| s.responses_429).collect(),
        }
    }
}

/// A sync run as kept in the destination's `_sync_runs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Unique per run: the start time and a hash of the company and process.
    pub run_id: String,
    pub company: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub status: RunStatus,
    /// The most serious failure's message, when the run did not succeed.
    pub error: Option<String>,
    pub records: u64,
    /// HTTP requests sent during the run, every attempt (field definitions and retries too).
    pub requests: u64,
    /// Tokens the server charged for them.
    pub tokens: u64,
    pub responses_429: u64,
    /// Requests allowed per 2-second window, as learned from the server; `None` when it
    /// reported none (no limit).
    pub burst_limit: Option<u32>,
    pub streams: Vec<StreamRun>,
    pub timeline: Timeline,
}

impl RunRecord {
    pub fn seconds(&self) -> f64 {
        (self.finished_at - self.started_at).num_milliseconds() as f64 / 1000.0
    }
}

/// The client's counters when a run began, to tell the run's own requests from earlier ones
/// (a client may serve several runs).
pub struct RunStart {
    company: String,
    started_at: DateTime<Utc>,
    instant: Instant,
    stats: ClientStats,
    timeline: RequestTimeline,
}

impl RunStart {
    pub fn now(client: &Client, company: &str) -> RunStart {
        RunStart {
            company: company.to_owned(),
            started_at: Utc::now(),
            instant: Instant::now(),
            stats: client.stats(),
            timeline: client.timeline(),
        }
    }

    /// The run's record, once its streams have finished; `worst` is the most serious failure
    /// among them ([`crate::SyncReport::worst_failure`]).
    pub fn finish(
        &self,
        client: &Client,
        streams: &[StreamReport],
        worst: Option<(Failure, &str)>,
    ) -> RunRecord {
        let stats = client.stats();
        let timeline = client.timeline();
        let path_429 = |path: &str| {
            let key = normalise_path(path);
            let now = stats.per_path.get(&key).map_or(0, |p| p.responses_429);
            let before = self.stats.per_path.get(&key).map_or(0, |p| p.responses_429);
            now.saturating_sub(before)
        };
        let streams: Vec<StreamRun> = streams
            .iter()
            .map(|report| {
                let (outcome, error) = match &report.outcome {
                    Outcome::Complete => ("complete", None),
                    Outcome::Skipped(reason) => ("skipped", Some(reason.clone())),
                    Outcome::Incomplete {
                        failure: Failure::Temporary,
                        message,
                    } => ("stopped", Some(message.clone())),
                    Outcome::Incomplete { message, .. } => ("failed", Some(message.clone())),
                };
                StreamRun {
                    stream: report.stream.to_owned(),
                    records: report.records,
                    requests: report.requests,
                    tokens: report.tokens,
                    responses_429: catalog::find(report.stream).map_or(0, |def| path_429(def.path)),
                    seconds: report.seconds,
                    outcome: outcome.to_owned(),
                    error,
                }
            })
            .collect();
        let (status, error) = match worst {
            None => (RunStatus::Succeeded, None),
            Some((Failure::Temporary, message)) => (RunStatus::Stopped, Some(message.to_owned())),
            Some((_, message)) => (RunStatus::Failed, Some(message.to_owned())),
        };
        // Through the run's last second, quiet seconds at the end included.
        let mut seconds = timeline.since(&self.timeline, self.instant);
        let first = self
            .instant
            .saturating_duration_since(timeline.origin)
            .as_secs();
        let last = timeline.origin.elapsed().as_secs();
        let span = usize::try_from(last.saturating_sub(first) + 1).unwrap_or(usize::MAX);
        if seconds.len() < span {
            seconds.resize(span, SecondCounts::default());
        }
        let finished_at = Utc::now();
        RunRecord {
            run_id: run_id(&self.company, self.started_at),
            company: self.company.clone(),
            started_at: self.started_at,
            finished_at,
            status,
            error,
            records: streams.iter().map(|s| s.records).sum(),
            requests: stats.requests.saturating_sub(self.stats.requests),
            tokens: stats.tokens_spent.saturating_sub(self.stats.tokens_spent),
            responses_429: stats.responses_429.saturating_sub(self.stats.responses_429),
            burst_limit: client.budget().burst_limit,
            streams,
            timeline: Timeline::from_seconds(&seconds),
        }
    }
}

/// An instant from microseconds since the epoch, as databases hand timestamps back.
pub fn utc_from_micros(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
}

/// `20261123T075015.123456Z-1a2b3c4d`: sorts by start; the hash tells apart companies (and
/// processes) that start in the same microsecond.
fn run_id(company: &str, started_at: DateTime<Utc>) -> String {
    let time = started_at.format("%Y%m%dT%H%M%S%.6fZ").to_string();
    let mut hash = Sha256::new();
    hash.update(company.as_bytes());
    hash.update([0]);
    hash.update(
        started_at
            .to_rfc3339_opts(SecondsFormat::Nanos, true)
            .as_bytes(),
    );
    hash.update(std::process::id().to_le_bytes());
    format!("{time}-{}", &hex::encode(hash.finalize())[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_as_json_and_statuses_parse() {
        let started_at = Utc::now();
        let record = RunRecord {
            run_id: run_id("acme", started_at),
            company: "acme".to_owned(),
            started_at,
            finished_at: started_at + chrono::Duration::milliseconds(1500),
            status: RunStatus::Stopped,
            error: Some("stopped on request".to_owned()),
            records: 3,
            requests: 4,
            tokens: 40,
            responses_429: 1,
            burst_limit: Some(20),
            streams: vec![StreamRun {
                stream: "deals".to_owned(),
                records: 3,
                requests: 3,
                tokens: 30,
                responses_429: 1,
                seconds: 1.2,
                outcome: "stopped".to_owned(),
                error: Some("stopped on request".to_owned()),
            }],
            timeline: Timeline {
                requests: vec![3, 1],
                responses_429: vec![1, 0],
            },
        };
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains(r#""status":"stopped""#), "{json}");
        assert_eq!(serde_json::from_str::<RunRecord>(&json).unwrap(), record);
        assert_eq!(record.seconds(), 1.5);
        for status in [RunStatus::Succeeded, RunStatus::Stopped, RunStatus::Failed] {
            assert_eq!(RunStatus::parse(status.as_str()), Some(status));
        }
        assert!(
            record
                .run_id
                .starts_with(&started_at.format("%Y%m%dT").to_string())
        );
        assert_ne!(record.run_id, run_id("other", started_at));
    }
}
