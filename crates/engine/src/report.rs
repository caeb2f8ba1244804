//! How each stream of a run ended, as the CLI's summary, the run record and the exit code read
//! it.

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
    /// The config does not fit the data (a column the stream lacks): the user must fix it.
    Config,
}

/// How a stream's run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Complete,
    /// The endpoint is not available to this company or token (plan, add-on or permission).
    Skipped(String),
    /// Ended early; the committed state holds the progress, so the next run resumes there.
    Incomplete {
        failure: Failure,
        message: String,
    },
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

/// The most serious failure among `streams`: auth over config over destination over other
/// over temporary.
pub fn worst_failure(streams: &[StreamReport]) -> Option<(Failure, &str)> {
    let rank = |f: Failure| match f {
        Failure::Auth => 0,
        Failure::Config => 1,
        Failure::Destination => 2,
        Failure::Other => 3,
        Failure::Temporary => 4,
    };
    streams
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Incomplete { failure, message } => Some((*failure, message.as_str())),
            _ => None,
        })
        .min_by_key(|(f, _)| rank(*f))
}

/// What a run stopped at the daily budget's reserve leaves for the runs after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remaining {
    /// Estimated with a probe per unfinished list, paid from tokens held above the reserve.
    Estimated {
        /// The streams not finished.
        streams: Vec<&'static str>,
        requests: u64,
        tokens: u64,
        /// The daily budget less the reserve, when the server reported its budget.
        usable_per_day: Option<u64>,
        /// What the estimate's probes cost.
        probe_requests: u64,
        probe_tokens: u64,
    },
    /// The estimate failed; why.
    Unknown(String),
}
