//! What an operator sees on stderr: a progress line per stream on a terminal, plain log lines
//! otherwise, and a summary table at the end. stdout stays free for data protocols.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pipedrive_client::{BudgetSnapshot, Client};
use pipedrive_engine::{Observer, Outcome, Remaining, StreamReport, SyncReport};

pub struct Progress {
    client: Client,
    /// With several companies synced at once, the company each line is about.
    company: Option<String>,
    bars: Option<(MultiProgress, Mutex<HashMap<String, ProgressBar>>)>,
    /// When each stream last logged a progress line (plain mode), to keep logs calm.
    last_line: Mutex<HashMap<String, (Instant, u64)>>,
    /// Each failure message logged so far and the stream that had it first: a failure every
    /// stream shares (a rejected token) is written out once.
    failures: Mutex<HashMap<String, String>>,
    /// The run's total line under the active streams' bars (finished streams leave theirs, so
    /// many streams never outgrow the terminal).
    total: Option<ProgressBar>,
    /// Records each stream read in full is expected to bring, as the last run that completed
    /// it loaded (`estimate::last_full_reads`): its bar shows the share done and an ETA.
    expected: HashMap<String, u64>,
}

impl Progress {
    /// `company` names the company when several are synced at once; their progress is then
    /// logged line by line, as bars of concurrent companies would overwrite each other.
    pub fn new(
        client: Client,
        company: Option<String>,
        expected: HashMap<String, u64>,
    ) -> Progress {
        let bars = draws_bars(company.is_some()).then(|| {
            (
                MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                Mutex::new(HashMap::new()),
            )
        });
        let total = bars.as_ref().map(|(multi, _)| {
            let total = multi.add(ProgressBar::new_spinner());
            total.set_style(
                ProgressStyle::with_template("  {prefix:<28} {pos:>9} records {msg}")
                    .expect("static template"),
            );
            total.set_prefix("total");
            total
        });
        Progress {
            client,
            company,
            bars,
            last_line: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            total,
            expected,
        }
    }

    fn budget_left(&self) -> String {
        match self.client.budget().daily_remaining {
            Some(left) => format!("{left} tokens left today"),
            None => "budget unknown".to_owned(),
        }
    }
}

impl Observer for Progress {
    fn stream_started(&self, stream: &str) {
        if let Some((multi, bars)) = &self.bars {
            let expected = self.expected.get(stream).copied();
            let new_bar = match expected {
                Some(records) => ProgressBar::new(records),
                None => ProgressBar::new_spinner(),
            };
            let bar = match &self.total {
                Some(total) => multi.insert_before(total, new_bar),
                None => multi.add(new_bar),
            };
            let template = match expected {
                Some(_) => {
                    "{spinner} {prefix:<28} {pos:>9} of ~{len} records {rate:>9} eta {eta} {msg}"
                }
                None => "{spinner} {prefix:<28} {pos:>9} records {rate:>9} {msg}",
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("static template")
                    .with_key(
                        "rate",
                        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = w.write_str(&rate_text(state.per_sec()));
                        },
                    ),
            );
            bar.set_prefix(stream.to_owned());
            bar.enable_steady_tick(Duration::from_millis(200));
            bars.lock()
                .expect("progress lock")
                .insert(stream.to_owned(), bar);
        } else {
            tracing::info!(company = self.company.as_deref(), stream, "stream started");
        }
    }

    fn page_committed(&self, stream: &str, records: usize) {
        if let Some((_, bars)) = &self.bars {
            if let Some(bar) = bars.lock().expect("progress lock").get(stream) {
                bar.inc(records as u64);
                bar.set_message(self.budget_left());
            }
            if let Some(total) = &self.total {
                total.inc(records as u64);
                total.set_message(self.budget_left());
            }
            return;
        }
        let mut lines = self.last_line.lock().expect("progress lock");
        let entry = lines
            .entry(stream.to_owned())
            .or_insert((Instant::now(), 0));
        entry.1 += records as u64;
        if entry.0.elapsed() >= Duration::from_secs(10) {
            tracing::info!(company = self.company.as_deref(), stream, records = entry.1, budget = %self.budget_left(), "progress");
            entry.0 = Instant::now();
        }
    }

    fn stream_finished(&self, report: &StreamReport) {
        if let Some((multi, bars)) = &self.bars {
            if let Some(bar) = bars.lock().expect("progress lock").remove(report.stream) {
                bar.finish_and_clear();
                multi.remove(&bar);
            }
            return;
        }
        let mut outcome = outcome_text(&report.outcome);
        if !matches!(report.outcome, Outcome::Complete) {
            let mut failures = self.failures.lock().expect("progress lock");
            match failures.get(&outcome) {
                Some(first) => outcome = format!("as {first}"),
                None => {
                    failures.insert(outcome.clone(), report.stream.to_owned());
                }
            }
        }
        tracing::info!(
            company = self.company.as_deref(),
            stream = report.stream,
            records = report.records,
            requests = report.requests,
            seconds = format!("{:.1}", report.seconds),
            outcome = %outcome,
            "stream finished"
        );
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(total) = &self.total {
            total.finish_and_clear();
        }
    }
}

/// Whether progress is drawn as bars: on a terminal, for one company at a time (concurrent
/// companies' bars would overwrite each other, so theirs go line by line).
pub fn draws_bars(several_companies: bool) -> bool {
    !several_companies && std::io::stderr().is_terminal()
}

/// What is left of the company's daily token budget and the share runs keep unspent, when
/// the server reported its budget.
pub(crate) fn budget_text(budget: &BudgetSnapshot) -> Option<String> {
    let (limit, left) = (budget.daily_limit?, budget.daily_remaining?);
    let kept = limit * u64::from(budget.reserve_percent) / 100;
    Some(format!(
        "daily token budget: {left} of {limit} left; runs leave {kept} ({}%) for the company's other integrations",
        budget.reserve_percent
    ))
}

/// What a run stopped at the reserve leaves, and how many days it takes.
fn remaining_text(remaining: &Remaining) -> String {
    match remaining {
        Remaining::Estimated {
            streams,
            requests,
            tokens,
            usable_per_day,
            ..
        } => {
            let streams = match streams.len() {
                1 => "1 stream".to_owned(),
                n => format!("{n} streams"),
            };
            // From the next budget day on: what is left of today is the reserve.
            let days = match usable_per_day {
                Some(per_day) => {
                    let days = tokens.div_ceil((*per_day).max(1));
                    format!(
                        "; at {} tokens a day above the reserve, {days} more day{} of runs",
                        thousands(*per_day),
                        if days == 1 { "" } else { "s" }
                    )
                }
                None => String::new(),
            };
            format!(
                "left for the next runs: about {} tokens ({} requests) to finish {streams}{days}",
                thousands(*tokens),
                thousands(*requests)
            )
        }
        Remaining::Unknown(reason) => {
            format!(
                "left for the next runs: not estimated ({reason}); `pipedrive-sync plan` estimates it once the budget renews"
            )
        }
    }
}

/// Records per second as people read them: whole numbers, thousands separated.
fn rate_text(per_second: f64) -> String {
    if !per_second.is_finite() || per_second < 0.5 {
        return "-".to_owned();
    }
    format!("{}/s", thousands(per_second.round() as u64))
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Complete => "done".to_owned(),
        Outcome::Skipped(reason) => format!("skipped: {reason}"),
        Outcome::Incomplete { message, .. } => format!("incomplete: {message}"),
    }
}

/// The end-of-run table, per stream: records, requests, tokens, seconds and outcome. A reason
/// shared by several streams is written once under the table, with their number.
pub fn summary(report: &SyncReport, client: &Client) -> String {
    let mut out = format!(
        "{:<28} {:>10} {:>9} {:>9} {:>8}  {}\n",
        "stream", "records", "requests", "tokens", "seconds", "outcome"
    );
    let (mut records, mut requests, mut tokens) = (0, 0, 0);
    // Each distinct reason, with how many streams gave it.
    let mut reasons: Vec<(String, usize)> = Vec::new();
    for stream in &report.streams {
        let outcome = match &stream.outcome {
            Outcome::Complete => "done".to_owned(),
            Outcome::Skipped(reason)
            | Outcome::Incomplete {
                message: reason, ..
            } => {
                let label = match &stream.outcome {
                    Outcome::Skipped(_) => "skipped",
                    _ => "incomplete",
                };
                let index = match reasons.iter().position(|(r, _)| r == reason) {
                    Some(index) => index,
                    None => {
                        reasons.push((reason.clone(), 0));
                        reasons.len() - 1
                    }
                };
                reasons[index].1 += 1;
                format!("{label} [{}]", index + 1)
            }
        };
        records += stream.records;
        requests += stream.requests;
        tokens += stream.tokens;
        out.push_str(&format!(
            "{:<28} {:>10} {:>9} {:>9} {:>8.1}  {}\n",
            stream.stream, stream.records, stream.requests, stream.tokens, stream.seconds, outcome
        ));
    }
    // The run's own totals, as `_sync_runs` records them: what no stream paid for (field
    // definitions, the token check) gets a row of its own, so the columns add up to them.
    let run = &report.run;
    if let Some(Remaining::Estimated {
        probe_requests,
        probe_tokens,
        ..
    }) = &report.remaining
    {
        out.push_str(&format!(
            "{:<28} {:>10} {:>9} {:>9}\n",
            "(estimate of what is left)", "", probe_requests, probe_tokens
        ));
        requests += probe_requests;
        tokens += probe_tokens;
    }
    let (other_requests, other_tokens) = (
        run.requests.saturating_sub(requests),
        run.tokens.saturating_sub(tokens),
    );
    if other_requests > 0 || other_tokens > 0 {
        out.push_str(&format!(
            "{:<28} {:>10} {:>9} {:>9}\n",
            "(field definitions, checks)", "", other_requests, other_tokens
        ));
    }
    let stats = client.stats();
    out.push_str(&format!(
        "{:<28} {:>10} {:>9} {:>9}           {} retries, {} answered 429\n",
        "total",
        records,
        requests + other_requests,
        tokens + other_tokens,
        stats.retries,
        run.responses_429
    ));
    if let Some(line) = budget_text(&client.budget()) {
        out.push_str(&line);
        out.push('\n');
    }
    if let Some(remaining) = &report.remaining {
        out.push_str(&remaining_text(remaining));
        out.push('\n');
    }
    for (index, (reason, streams)) in reasons.iter().enumerate() {
        let streams = if *streams == 1 {
            "1 stream".to_owned()
        } else {
            format!("{streams} streams")
        };
        out.push_str(&format!("[{}] {streams}: {reason}\n", index + 1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::rate_text;

    #[test]
    fn rates_are_whole_numbers_with_thousands_separated() {
        assert_eq!(rate_text(6_176.245_832_740_671), "6,176/s");
        assert_eq!(rate_text(1_234_567.5), "1,234,568/s");
        assert_eq!(rate_text(999.4), "999/s");
        assert_eq!(rate_text(0.1), "-");
        assert_eq!(rate_text(f64::NAN), "-");
    }
}
