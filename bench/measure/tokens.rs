//! The tokens scenario: what a new user's syncs cost on a company of `scale` at plan growth,
//! with the default selection (no `streams`): a first sync, then a run with nothing changed,
//! once reading the lists Pipedrive serves only in full on every run and once with
//! `defaults: {refresh_every: 6h}`. Tokens are the simulator's count of each endpoint's
//! official cost.

use std::path::Path;

use pipedrive_sim::{Plan, Scale, SimOptions};
use serde::Serialize;

use super::{World, duckdb_target, number};

#[derive(Clone, Debug, Serialize)]
pub struct TokensMeasurement {
    pub scale: String,
    pub runs: Vec<TokenRun>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TokenRun {
    /// The config's `defaults` beyond the default selection.
    pub defaults: String,
    pub run: String,
    pub requests: u64,
    pub tokens: u64,
}

/// Runs the scenario at `scale`, in a simulator and a DuckDB file of its own per config.
pub async fn measure_tokens(scale: Scale, work: &Path) -> anyhow::Result<TokensMeasurement> {
    let mut runs = Vec::new();
    for (label, defaults) in [
        ("none", ""),
        ("refresh_every: 6h", "defaults:\n  refresh_every: 6h\n"),
    ] {
        let world = World::start(
            work.join(format!("tokens-{scale}-{}", runs.len())),
            SimOptions {
                scale,
                plan: Plan::Growth,
                ..SimOptions::default()
            },
        )
        .await?;
        let config = world.dir.join("bench.yaml");
        std::fs::write(
            &config,
            format!(
                "source:\n  api_token: ${{PDS_BENCH_TOKEN}}\n  base_url: {}\ntarget:\n{}{defaults}",
                world.sim.url,
                duckdb_target(&world.dir.join("bench.duckdb"))
            ),
        )?;
        for run in ["first sync", "nothing changed"] {
            world.reset_stats().await?;
            world.sync(&config).await?;
            let stats = world.stats().await?;
            runs.push(TokenRun {
                defaults: label.to_owned(),
                run: run.to_owned(),
                requests: number(&stats["requests"]),
                tokens: number(&stats["tokens_spent"]),
            });
        }
        world.shutdown().await;
    }
    Ok(TokensMeasurement {
        scale: scale.to_string(),
        runs,
    })
}

pub fn render_tokens(m: &TokensMeasurement) -> String {
    let mut out = format!(
        "tokens at {}, plan growth, default selection\n| defaults | run | requests | tokens |\n|---|---|---:|---:|\n",
        m.scale
    );
    for run in &m.runs {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            run.defaults, run.run, run.requests, run.tokens
        ));
    }
    out
}
