//! `pipedrive-sync report`: the runs recorded in the destination (`_sync_runs`) as one
//! self-contained HTML file. Charts are inline SVG drawn here (no scripts or styles from the
//! network), so the file opens anywhere, offline, and can be mailed or archived as is.
//!
//! A small inline script (`report.js`) measures the drawn charts after load and writes the
//! verdict into the body's `data-rendered` attribute ("ok" or what is wrong); the end-to-end
//! test reads it back from headless Chromium.

use crate::progress::thousands;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::Args;
use pipedrive_engine::RunRecord;

use crate::{ConfigArg, Fail, exit};

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The HTML file to write.
    #[arg(short, long, default_value = "report.html")]
    output: PathBuf,
    /// How many of the latest runs the table of runs lists.
    #[arg(long, default_value_t = 20)]
    runs: usize,
}

pub async fn run(args: ReportArgs) -> Result<(), Fail> {
    let mut runs: Vec<RunRecord> = Vec::new();
    let mut empty = Vec::new();
    for config in args.config.companies()? {
        // One destination open at a time: companies may share a DuckDB file.
        let mut destination = crate::targets::open_destination(&config).await?;
        let found = destination.read_runs().await?;
        if found.is_empty() {
            empty.push(format!("{} ({})", config.company, destination.describe()));
        }
        runs.extend(found);
    }
    runs.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    runs.dedup_by(|a, b| a.run_id == b.run_id);
    if runs.is_empty() {
        return Err(Fail {
            code: exit::OTHER,
            message: format!(
                "no sync runs are recorded for {} yet: run `pipedrive-sync sync` first",
                empty.join(", ")
            ),
        });
    }
    for company in &empty {
        eprintln!("no runs recorded for {company} yet");
    }
    let companies = group_by_company(runs);
    let html = render(&companies, args.runs.max(1), Utc::now());
    std::fs::write(&args.output, html).map_err(|e| Fail {
        code: exit::OTHER,
        message: format!(
            "cannot write the report to {}: {e}; check --output",
            args.output.display()
        ),
    })?;
    let total: usize = companies.iter().map(|(_, runs)| runs.len()).sum();
    eprintln!(
        "report of {total} run(s) of {} written to {}",
        companies
            .iter()
            .map(|(c, _)| c.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        args.output.display()
    );
    Ok(())
}

/// Runs per company (by name), each oldest first.
pub fn group_by_company(runs: Vec<RunRecord>) -> Vec<(String, Vec<RunRecord>)> {
    let mut companies: BTreeMap<String, Vec<RunRecord>> = BTreeMap::new();
    for run in runs {
        companies.entry(run.company.clone()).or_default().push(run);
    }
    for runs in companies.values_mut() {
        runs.sort_by(|a, b| (a.started_at, &a.run_id).cmp(&(b.started_at, &b.run_id)));
    }
    companies.into_iter().collect()
}

/// The whole page: one section per company, each on its latest run, with the last `last_runs`
/// runs listed. `companies` holds each company's runs oldest first.
pub fn render(
    companies: &[(String, Vec<RunRecord>)],
    last_runs: usize,
    generated_at: DateTime<Utc>,
) -> String {
    let mut html = String::with_capacity(64 * 1024);
    html.push_str(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        "<title>pipedrive-sync run report</title>\n<style>\n",
        include_str!("report.css"),
        "</style>\n</head>\n<body>\n<h1>pipedrive-sync run report</h1>\n",
    ));
    let _ = writeln!(
        html,
        "<p class=\"generated\">Generated {}.</p>",
        esc(&time(generated_at))
    );
    for (company, runs) in companies {
        if let Some(latest) = runs.last() {
            company_section(&mut html, company, runs, latest, last_runs);
        }
    }
    html.push_str("<script>\n");
    html.push_str(include_str!("report.js"));
    html.push_str("</script>\n</body>\n</html>\n");
    html
}

fn company_section(
    html: &mut String,
    company: &str,
    runs: &[RunRecord],
    latest: &RunRecord,
    last_runs: usize,
) {
    let seconds_with_429 = latest
        .timeline
        .responses_429
        .iter()
        .filter(|n| **n > 0)
        .count();
    let _ = writeln!(
        html,
        "<section class=\"company\" data-company=\"{}\" data-streams=\"{}\" data-burst-limit=\"{}\" data-seconds429=\"{}\">",
        esc(company),
        latest.streams.len(),
        latest
            .burst_limit
            .map(|b| b.to_string())
            .unwrap_or_default(),
        seconds_with_429,
    );
    let _ = writeln!(html, "<h2>{}</h2>", esc(company));
    let _ = writeln!(
        html,
        "<p class=\"summary\">Latest run <code>{}</code>: <span class=\"status {}\">{}</span>, \
         started {}, took {}. {} records, {} requests, {} tokens, {} answered 429; burst limit {}.</p>",
        esc(&latest.run_id),
        latest.status.as_str(),
        latest.status.as_str(),
        esc(&time(latest.started_at)),
        esc(&duration(latest.seconds())),
        thousands(latest.records),
        thousands(latest.requests),
        thousands(latest.tokens),
        thousands(latest.responses_429),
        latest
            .burst_limit
            .map_or("not reported".to_owned(), |b| format!(
                "{b} requests per 2 s"
            )),
    );
    if let Some(error) = &latest.error {
        let _ = writeln!(html, "<p class=\"error\">{}</p>", esc(error));
    }
    html.push_str("<h3>Requests per second</h3>\n");
    requests_chart(html, latest);
    html.push_str("<h3>Records per stream</h3>\n");
    records_chart(html, latest);
    html.push_str("<h3>Streams</h3>\n");
    streams_table(html, latest);
    let listed = runs.len().min(last_runs);
    let _ = writeln!(
        html,
        "<h3>Last {listed} run{}</h3>",
        if listed == 1 { "" } else { "s" }
    );
    runs_table(html, &runs[runs.len() - listed..]);
    html.push_str("</section>\n");
}

const WIDTH: f64 = 760.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 14.0;
/// More seconds than this are drawn in steps of several seconds (each step's busiest second).
const MAX_STEPS: usize = 1500;

/// Requests sent per second as a step line, the burst ceiling (`burst_limit / 2` per second)
/// as a dashed line, and each second with 429s as a red mark on the line.
fn requests_chart(html: &mut String, run: &RunRecord) {
    let height = 260.0;
    let bottom = 40.0;
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, height - TOP - bottom);
    let requests = &run.timeline.requests;
    let seconds = requests.len().max(1);
    let step = seconds.div_ceil(MAX_STEPS);
    let steps = seconds.div_ceil(step);
    let value = |i: usize| -> u32 {
        requests
            .iter()
            .skip(i * step)
            .take(step)
            .copied()
            .max()
            .unwrap_or(0)
    };
    let hits = |i: usize| -> u32 {
        run.timeline
            .responses_429
            .iter()
            .skip(i * step)
            .take(step)
            .sum()
    };
    let ceiling = run.burst_limit.map(|b| f64::from(b) / 2.0);
    let busiest = (0..steps).map(value).max().unwrap_or(0);
    let top = nice_ceiling(f64::from(busiest).max(ceiling.unwrap_or(0.0)).max(1.0) * 1.1);
    let x = |i: usize| LEFT + plot_w * i as f64 / steps as f64;
    let y = |v: f64| TOP + plot_h - plot_h * v / top;
    let _ = writeln!(
        html,
        "<svg class=\"chart requests-chart\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\" aria-label=\"Requests per second\">"
    );
    axes(html, height, bottom, top, y);
    // Time ticks: about eight, on round numbers of seconds.
    let tick = nice_step(seconds as f64 / 8.0).max(1.0) as usize;
    for t in (0..=seconds).step_by(tick) {
        let tx = LEFT + plot_w * t as f64 / seconds as f64;
        let _ = writeln!(
            html,
            "<line class=\"tick\" x1=\"{tx:.1}\" x2=\"{tx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/><text class=\"axis\" x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{t}</text>",
            TOP + plot_h,
            TOP + plot_h + 5.0,
            TOP + plot_h + 18.0
        );
    }
    let _ = writeln!(
        html,
        "<text class=\"axis-title\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">seconds since the run started{}</text>",
        LEFT + plot_w / 2.0,
        height - 6.0,
        if step > 1 {
            format!(" (each step: the busiest of {step} seconds)")
        } else {
            String::new()
        }
    );
    let mut path = format!("M{:.1} {:.1}", x(0), y(f64::from(value(0))));
    for i in 0..steps {
        let v = y(f64::from(value(i)));
        let _ = write!(path, " V{v:.1} H{:.1}", x(i + 1));
    }
    let _ = writeln!(
        html,
        "<path class=\"series requests\" d=\"{path}\"><title>requests sent per second</title></path>"
    );
    if let Some(ceiling) = ceiling {
        let cy = y(ceiling);
        let _ = writeln!(
            html,
            "<line class=\"ceiling\" x1=\"{LEFT:.1}\" x2=\"{:.1}\" y1=\"{cy:.1}\" y2=\"{cy:.1}\"><title>burst ceiling</title></line>\
             <text class=\"ceiling-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">burst ceiling {} per second ({} per 2 s)</text>",
            LEFT + plot_w,
            LEFT + plot_w - 4.0,
            cy - 5.0,
            number(ceiling),
            run.burst_limit.unwrap_or(0),
        );
    }
    for i in (0..steps).filter(|i| hits(*i) > 0) {
        let _ = writeln!(
            html,
            "<circle class=\"r429\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\"><title>second {}: {} answered 429</title></circle>",
            (x(i) + x(i + 1)) / 2.0,
            y(f64::from(value(i))),
            i * step,
            hits(i)
        );
    }
    html.push_str(
        "</svg>\n<p class=\"legend\"><span class=\"key requests\"></span> requests sent per second",
    );
    if ceiling.is_some() {
        html.push_str(" <span class=\"key ceiling\"></span> burst ceiling");
    }
    html.push_str(" <span class=\"key r429\"></span> seconds with 429 responses</p>\n");
}

/// The y axis with its grid, from 0 to `top`.
fn axes(html: &mut String, height: f64, bottom: f64, top: f64, y: impl Fn(f64) -> f64) {
    let plot_right = WIDTH - RIGHT;
    let step = nice_step(top / 5.0);
    let mut v = 0.0;
    while v <= top + 1e-9 {
        let gy = y(v);
        let _ = writeln!(
            html,
            "<line class=\"grid\" x1=\"{LEFT:.1}\" x2=\"{plot_right:.1}\" y1=\"{gy:.1}\" y2=\"{gy:.1}\"/><text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            gy + 4.0,
            number(v)
        );
        v += step;
    }
    let _ = writeln!(
        html,
        "<line class=\"frame\" x1=\"{LEFT:.1}\" x2=\"{LEFT:.1}\" y1=\"{TOP:.1}\" y2=\"{:.1}\"/>",
        height - bottom
    );
}

/// One horizontal bar per stream of the run, its length proportional to the records loaded.
fn records_chart(html: &mut String, run: &RunRecord) {
    let label_w = 190.0;
    let bar_h = 16.0;
    let gap = 6.0;
    let value_w = 90.0;
    let height = TOP * 2.0 + (bar_h + gap) * run.streams.len() as f64;
    let plot_w = WIDTH - label_w - value_w;
    let most = run
        .streams
        .iter()
        .map(|s| s.records)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let _ = writeln!(
        html,
        "<svg class=\"chart records-chart\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\" aria-label=\"Records per stream\" data-plot-width=\"{plot_w}\">"
    );
    for (i, stream) in run.streams.iter().enumerate() {
        let top = TOP + (bar_h + gap) * i as f64;
        let width = plot_w * stream.records as f64 / most;
        let _ = writeln!(
            html,
            "<text class=\"label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect class=\"bar {}\" data-stream=\"{}\" data-records=\"{}\" x=\"{label_w:.1}\" y=\"{top:.1}\" width=\"{width:.2}\" height=\"{bar_h}\"><title>{}: {} records</title></rect>\
             <text class=\"value\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            label_w - 8.0,
            top + bar_h - 4.0,
            esc(&stream.stream),
            esc(&stream.outcome),
            esc(&stream.stream),
            stream.records,
            esc(&stream.stream),
            stream.records,
            label_w + width + 6.0,
            top + bar_h - 4.0,
            thousands(stream.records),
        );
    }
    html.push_str("</svg>\n");
}

fn streams_table(html: &mut String, run: &RunRecord) {
    html.push_str(
        "<table class=\"streams\">\n<thead><tr><th>stream</th><th>outcome</th><th>records</th>\
         <th>requests</th><th>tokens</th><th>429s</th><th>seconds</th><th>error</th></tr></thead>\n<tbody>\n",
    );
    for s in &run.streams {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td class=\"outcome {}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td><td class=\"error\">{}</td></tr>",
            esc(&s.stream),
            esc(&s.outcome),
            esc(&s.outcome),
            thousands(s.records),
            thousands(s.requests),
            thousands(s.tokens),
            thousands(s.responses_429),
            s.seconds,
            esc(s.error.as_deref().unwrap_or("")),
        );
    }
    html.push_str("</tbody>\n</table>\n");
}

/// The runs, newest first.
fn runs_table(html: &mut String, runs: &[RunRecord]) {
    html.push_str(
        "<table class=\"runs\">\n<thead><tr><th>started</th><th>duration</th><th>status</th>\
         <th>records</th><th>requests</th><th>tokens</th><th>429s</th><th>error</th></tr></thead>\n<tbody>\n",
    );
    for run in runs.iter().rev() {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"status {}\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"error\">{}</td></tr>",
            esc(&time(run.started_at)),
            esc(&duration(run.seconds())),
            run.status.as_str(),
            run.status.as_str(),
            thousands(run.records),
            thousands(run.requests),
            thousands(run.tokens),
            thousands(run.responses_429),
            esc(run.error.as_deref().unwrap_or("")),
        );
    }
    html.push_str("</tbody>\n</table>\n");
}

/// Text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let whole = seconds.round() as u64;
    let (h, m, s) = (whole / 3600, whole / 60 % 60, whole % 60);
    if h > 0 {
        format!("{h} h {m:02} min")
    } else {
        format!("{m} min {s:02} s")
    }
}

/// A number without a needless fraction: `10`, `2.5`.
fn number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw - 1e-9)
        .unwrap_or(10.0 * power)
}

/// The axis top: the smallest multiple of a nice step (a fifth of the range) at least `v`.
fn nice_ceiling(v: f64) -> f64 {
    let step = nice_step(v / 5.0);
    (v / step).ceil() * step
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipedrive_engine::{RunStatus, StreamRun, Timeline};

    fn run(company: &str, stream: &str, error: Option<&str>) -> RunRecord {
        let started_at = DateTime::parse_from_rfc3339("2026-11-23T07:50:00Z")
            .unwrap()
            .with_timezone(&Utc);
        RunRecord {
            run_id: "r1".to_owned(),
            company: company.to_owned(),
            started_at,
            finished_at: started_at + chrono::Duration::seconds(3),
            status: RunStatus::Failed,
            error: error.map(str::to_owned),
            records: 7,
            requests: 9,
            tokens: 90,
            responses_429: 2,
            burst_limit: Some(40),
            streams: vec![StreamRun {
                stream: stream.to_owned(),
                records: 7,
                requests: 9,
                tokens: 90,
                responses_429: 2,
                seconds: 2.5,
                outcome: "failed".to_owned(),
                error: error.map(str::to_owned),
            }],
            timeline: Timeline {
                requests: vec![5, 3, 1],
                responses_429: vec![2, 0, 0],
            },
        }
    }

    #[test]
    fn text_is_escaped_everywhere() {
        let hostile = "<script>alert('x')</script>&\"";
        let html = render(
            &[(
                hostile.to_owned(),
                vec![run(hostile, hostile, Some(hostile))],
            )],
            20,
            Utc::now(),
        );
        assert!(!html.contains(hostile), "unescaped text in the page");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"));
        // The page's own script is the only one.
        assert_eq!(html.matches("<script>").count(), 1);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(duration(3.25), "3.2 s");
        assert_eq!(duration(125.0), "2 min 05 s");
        assert_eq!(duration(7260.0), "2 h 01 min");
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_ceiling(55.0), 60.0);
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(20.0), "20");
    }

    #[test]
    fn the_page_needs_nothing_from_the_network() {
        let html = render(
            &[("acme".to_owned(), vec![run("acme", "deals", None)])],
            20,
            Utc::now(),
        );
        for needle in ["http://", "https://", "src=", "<link", "@import", "url("] {
            assert!(!html.contains(needle), "{needle} in the page");
        }
    }
}
