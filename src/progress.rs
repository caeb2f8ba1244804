//! What an operator sees on stderr: a progress line per stream on a terminal, plain log lines
//! otherwise, and a summary table at the end. stdout stays free for data protocols.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pipedrive_client::Client;
use pipedrive_engine::{Observer, Outcome, StreamReport, SyncReport};

pub struct Progress {
    client: Client,
    /// With several companies synced at once, the company each line is about.
    company: Option<String>,
    bars: Option<(MultiProgress, Mutex<HashMap<String, ProgressBar>>)>,
    /// When each stream last logged a progress line (plain mode), to keep logs calm.
    last_line: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Progress {
    /// `company` names the company when several are synced at once; their progress is then
    /// logged line by line, as bars of concurrent companies would overwrite each other.
    pub fn new(client: Client, company: Option<String>) -> Progress {
        let bars = (company.is_none() && std::io::stderr().is_terminal()).then(|| {
            (
                MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                Mutex::new(HashMap::new()),
            )
        });
        Progress {
            client,
            company,
            bars,
            last_line: Mutex::new(HashMap::new()),
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
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix:<28} {pos:>9} records {per_sec:>12} {msg}",
                )
                .expect("static template"),
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
        if let Some((_, bars)) = &self.bars {
            if let Some(bar) = bars.lock().expect("progress lock").remove(report.stream) {
                bar.finish_with_message(outcome_text(&report.outcome));
            }
        } else {
            tracing::info!(
                company = self.company.as_deref(),
                stream = report.stream,
                records = report.records,
                requests = report.requests,
                seconds = format!("{:.1}", report.seconds),
                outcome = %outcome_text(&report.outcome),
                "stream finished"
            );
        }
    }
}

fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Complete => "done".to_owned(),
        Outcome::Skipped(reason) => format!("skipped: {reason}"),
        Outcome::Incomplete { message, .. } => format!("incomplete: {message}"),
    }
}

/// The end-of-run table, per stream: records, requests, tokens, seconds and outcome.
pub fn summary(report: &SyncReport, client: &Client) -> String {
    let mut out = format!(
        "{:<28} {:>10} {:>9} {:>9} {:>8}  {}\n",
        "stream", "records", "requests", "tokens", "seconds", "outcome"
    );
    let (mut records, mut requests, mut tokens) = (0, 0, 0);
    for stream in &report.streams {
        records += stream.records;
        requests += stream.requests;
        tokens += stream.tokens;
        out.push_str(&format!(
            "{:<28} {:>10} {:>9} {:>9} {:>8.1}  {}\n",
            stream.stream,
            stream.records,
            stream.requests,
            stream.tokens,
            stream.seconds,
            outcome_text(&stream.outcome)
        ));
    }
    // The run's own totals, as `_sync_runs` records them: what no stream paid for (field
    // definitions, the token check) gets a row of its own, so the columns add up to them.
    let run = &report.run;
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
    out
}
