//! `pipedrive-sync plan` (and `sync --dry-run`): what the next sync will cost, read from a few
//! probe pages, against the daily token budget left.

use pipedrive_client::Client;
use pipedrive_config::Config;
use pipedrive_engine::estimate::{self, Basis, Estimate, Purpose};

use crate::fail::Fail;
use crate::progress::{budget_text, thousands};

/// Estimates and prints the next sync of `config`'s selection.
pub async fn run(config: &Config) -> Result<(), Fail> {
    let client = Client::new(config.client.clone())?;
    let mut destination = crate::targets::open_destination(config).await?;
    let states = destination.read_state().await?;
    // A target that keeps no run records (stdout) has no last runs to go by.
    let runs = destination.read_runs().await.unwrap_or_default();
    drop(destination);
    let plan = config.plan();
    let last = estimate::last_full_reads(&plan, &runs);
    let estimate = estimate::estimate(&client, &plan, &states, &last, Purpose::NextRun).await?;
    eprint!("{}", table(&estimate));
    Ok(())
}

fn table(estimate: &Estimate) -> String {
    let mut out = format!(
        "{:<28} {:<12} {:>10} {:>9} {:>10}  basis\n",
        "stream", "read", "records", "requests", "tokens"
    );
    for stream in &estimate.streams {
        let records = match stream.basis {
            Basis::Free | Basis::OneResponse | Basis::Fresh => "-".to_owned(),
            _ => thousands(stream.records),
        };
        out.push_str(&format!(
            "{:<28} {:<12} {:>10} {:>9} {:>10}  {}\n",
            stream.stream,
            if stream.full { "in full" } else { "changes" },
            records,
            thousands(stream.requests),
            thousands(stream.tokens),
            stream.basis.describe(),
        ));
    }
    out.push_str(&format!(
        "{:<28} {:<12} {:>10} {:>9} {:>10}\n",
        "(field definitions, checks)",
        "",
        "",
        thousands(estimate.overhead_requests),
        thousands(estimate.overhead_tokens),
    ));
    out.push_str(&format!(
        "{:<28} {:<12} {:>10} {:>9} {:>10}\n",
        "total",
        "",
        "",
        thousands(estimate.total_requests()),
        thousands(estimate.total_tokens()),
    ));
    out.push_str(&format!(
        "this estimate cost {} requests and {} tokens\n",
        thousands(estimate.probe_requests),
        thousands(estimate.probe_tokens)
    ));
    match (budget_text(&estimate.budget), estimate.days()) {
        (Some(budget), Some(days)) => {
            let when = match days {
                1 => "the sync fits in what is left today".to_owned(),
                days => format!(
                    "the sync takes about {days} days: each run stops at the reserve (exit 75) and the next day's run continues"
                ),
            };
            out.push_str(&format!("{budget}; {when}\n"));
        }
        _ => out.push_str("daily token budget: not reported by the server\n"),
    }
    out
}

/// Prints each company's estimate, under its name when there are several.
pub(crate) async fn estimate_all(companies: &[Config]) -> Result<(), Fail> {
    for config in companies {
        if companies.len() > 1 {
            eprintln!("company {}:", config.company);
        }
        run(config).await?;
    }
    Ok(())
}
