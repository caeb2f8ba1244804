//! `sim`: the simulator, served until interrupted.

use clap::Args;
use pipedrive_sim::{Plan, Scale, SimOptions};

use crate::fail::{Fail, exit};
use crate::signals::shutdown_signal;

#[derive(Args)]
pub(crate) struct SimArgs {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value = "tiny")]
    scale: Scale,
    #[arg(long, default_value = "premium")]
    plan: Plan,
    /// Users in the company (the daily budget grows with seats).
    #[arg(long)]
    seats: Option<u32>,
    /// The API token the simulator accepts (default: derived from the seed).
    #[arg(long)]
    token: Option<String>,
    /// Added to every response, to model the network.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Changes per second the company makes while it is read (creates, updates, deletes,
    /// archives, stage moves, merges, custom fields), seeded by `--seed`; 0 = it holds still.
    #[arg(long, default_value_t = 0.0, value_name = "PER_SECOND")]
    churn: f64,
}

pub(crate) async fn sim(args: SimArgs) -> Result<(), Fail> {
    let options = SimOptions {
        seed: args.seed,
        scale: args.scale,
        plan: args.plan,
        seats: args.seats,
        api_token: args.token,
        latency_ms: args.latency_ms,
        jitter_ms: args.jitter_ms,
        churn_per_second: args.churn,
        ..SimOptions::default()
    };
    let handle = pipedrive_sim::start(options, args.port)
        .await
        .map_err(|e| Fail {
            code: exit::OTHER,
            message: format!(
                "the simulator cannot listen on 127.0.0.1:{}: {e}; pick another --port",
                args.port
            ),
        })?;
    println!(
        "{}",
        serde_json::json!({"url": handle.url, "api_token": handle.api_token, "company_domain": handle.company_domain})
    );
    shutdown_signal().await;
    handle.shutdown().await;
    Ok(())
}
