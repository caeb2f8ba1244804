//! `sync` (once, or on a schedule) and `plan`: companies opened, run and summarised.

use crate::signals::stop_on_signal;
use crate::targets::open_shared;
use std::sync::Arc;
use std::time::Duration;

use pipedrive_client::Client;
use pipedrive_config::{Config, ConfigError, parse_every, parse_stream_list};
use pipedrive_destinations::target::Opened;
use pipedrive_engine::{Destination, StopSignal, SyncMode};

use crate::fail::{Fail, exit};
use crate::progress;

/// Applies `--streams` and `--full-refresh` to the configured selection.
pub(crate) fn select_streams(
    config: &mut Config,
    only: Option<&str>,
    full_refresh: Option<&str>,
) -> Result<(), ConfigError> {
    if let Some(only) = only {
        let wanted = parse_stream_list(only, "--streams")?;
        if let Some(missing) = wanted
            .iter()
            .find(|name| !config.streams.iter().any(|s| s.def.name == **name))
        {
            return Err(ConfigError(format!(
                "--streams: `{missing}` is not selected in the config's `streams`; add it there first"
            )));
        }
        config.streams.retain(|s| wanted.contains(&s.def.name));
    }
    if let Some(list) = full_refresh {
        let names = parse_stream_list(list, "--full-refresh")?;
        // Ignoring it would leave the table the user meant to rebuild as it was.
        if let Some(missing) = names
            .iter()
            .find(|name| !config.streams.iter().any(|s| s.def.name == **name))
        {
            return Err(ConfigError(format!(
                "--full-refresh: `{missing}` is not among the streams this sync reads; add it to the config's `streams` (or to --streams) first"
            )));
        }
        for stream in &mut config.streams {
            if names.contains(&stream.def.name) {
                stream.mode = SyncMode::FullRefresh;
            }
        }
    }
    Ok(())
}

/// An interval flag such as `30m`; `never` is not one.
pub(crate) fn interval(text: &str, flag: &str) -> Result<Duration, ConfigError> {
    match parse_every(text, flag)? {
        Some(every) if !every.is_zero() || flag == "--jitter" => Ok(every),
        _ => Err(ConfigError(format!(
            "{flag} `{text}`: write a positive interval such as `30m` or `1h`"
        ))),
    }
}

/// One run of every company, all at once, each after its random share of `jitter`. A company
/// that fails does not stop the others; the result is the most serious failure.
pub(crate) async fn sync(
    companies: Vec<Config>,
    jitter: Duration,
    stop: &StopSignal,
) -> Result<(), Fail> {
    let several = companies.len() > 1;
    let mut opened = Opened::default();
    let mut runs = Vec::new();
    // Tokens of one company share its daily budget; each token has its own burst window.
    let mut clients: Vec<Client> = Vec::new();
    for config in companies {
        let same_company = clients
            .iter()
            .find(|c| c.base_url() == &config.client.base_url);
        let client = match same_company {
            Some(other) => other.for_same_company(config.client.clone()),
            None => Client::new(config.client.clone()),
        };
        let prepared = match client {
            Ok(client) => {
                clients.push(client.clone());
                open_shared(&config, &mut opened)
                    .await
                    .map(|destination| (client, destination))
            }
            Err(error) => Err(Fail::from(error)),
        };
        let delay = jitter.mul_f64(rand::random::<f64>());
        runs.push(sync_company(config, prepared, delay, stop.clone(), several));
    }
    let results = futures::future::join_all(runs).await;
    // Databases companies shared close once every company's run has ended.
    drop(opened);
    let failed: Vec<(String, Fail)> = results
        .into_iter()
        .filter_map(|(company, result)| result.err().map(|fail| (company, fail)))
        .collect();
    let Some(code) = failed
        .iter()
        .map(|(_, fail)| fail.code)
        .min_by_key(|code| severity(*code))
    else {
        return Ok(());
    };
    let message = if several {
        failed
            .iter()
            .map(|(company, fail)| format!("company {company}: {}", fail.message))
            .collect::<Vec<_>>()
            .join("\nerror: ")
    } else {
        failed.into_iter().map(|(_, fail)| fail.message).collect()
    };
    Err(Fail { code, message })
}

/// Exit codes by how much they matter when several companies fail: credentials first, then
/// the destination, then anything else, then what a later run fixes by itself.
pub(crate) fn severity(code: u8) -> u8 {
    match code {
        exit::AUTH => 0,
        exit::DESTINATION => 1,
        exit::USAGE => 2,
        exit::OTHER => 3,
        _ => 4,
    }
}

/// One company's run; with several companies its summary is headed by its name.
pub(crate) async fn sync_company(
    config: Config,
    prepared: Result<(Client, Box<dyn Destination>), Fail>,
    delay: Duration,
    stop: StopSignal,
    several: bool,
) -> (String, Result<(), Fail>) {
    let company = config.company.clone();
    let result = async {
        let (client, mut destination) = prepared?;
        if !sleep_unless_stopped(delay, &stop).await {
            return Ok(());
        }
        let label = several.then(|| company.clone());
        let plan = config.plan();
        // What the bars expect, read only where bars are drawn: nothing when the target
        // keeps no runs.
        let expected = if progress::draws_bars(several) {
            let runs = destination.read_runs().await.unwrap_or_default();
            pipedrive_engine::estimate::last_full_reads(&plan, &runs)
                .into_iter()
                .filter(|(_, last)| last.records > 0)
                .map(|(stream, last)| (stream.to_owned(), last.records))
                .collect()
        } else {
            Default::default()
        };
        let observer = Arc::new(progress::Progress::new(client.clone(), label, expected));
        // The company's own signal: giving up on its credentials stops it, not the others.
        let report =
            pipedrive_engine::run(&client, destination, plan, observer, stop.child()).await?;
        if several {
            eprintln!("company {company}:");
        }
        eprint!("{}", progress::summary(&report, &client));
        crate::fail::outcome(&report)
    }
    .await;
    (company, result)
}

/// Sleeps `duration`; false if a stop was asked for meanwhile.
pub(crate) async fn sleep_unless_stopped(duration: Duration, stop: &StopSignal) -> bool {
    let until = tokio::time::Instant::now() + duration;
    while !stop.is_stopped() {
        let now = tokio::time::Instant::now();
        if now >= until {
            return true;
        }
        tokio::time::sleep((until - now).min(Duration::from_millis(100))).await;
    }
    false
}

/// `sync --every`: a run of every company per tick until SIGINT/SIGTERM. A stop finishes the
/// pages in flight and saves state, then ends the schedule (exit 0). A run that fails is
/// reported and the schedule goes on: the next tick may find the cause gone.
pub(crate) async fn schedule(
    companies: Vec<Config>,
    every: Duration,
    jitter: Duration,
) -> Result<(), Fail> {
    let stop = stop_on_signal("saving state; the schedule then ends");
    let start = tokio::time::Instant::now();
    for run in 1_u64.. {
        tracing::info!(run, "scheduled run started");
        match sync(companies.clone(), jitter, &stop).await {
            Ok(()) => tracing::info!(run, "scheduled run finished"),
            Err(fail) => tracing::error!(
                run,
                exit_code = fail.code,
                "scheduled run failed: {}",
                fail.message
            ),
        }
        // The next tick still ahead: ticks missed by a long run are skipped, never queued.
        let ticks = start.elapsed().as_nanos() / every.as_nanos().max(1) + 1;
        let next = start + every.mul_f64(ticks as f64);
        if stop.is_stopped()
            || !sleep_unless_stopped(
                next.saturating_duration_since(tokio::time::Instant::now()),
                &stop,
            )
            .await
        {
            break;
        }
    }
    Ok(())
}
