//! `pipedrive-sync models install`: the analytics views (README → Analytics models) over one
//! config's tables.

use clap::Subcommand;
use pipedrive_config::Config;
use pipedrive_destinations::sql::views::{Inputs, Outcome};

use crate::{ConfigArg, Fail};

#[derive(Subcommand)]
pub enum ModelsAction {
    /// Create or replace the analytics views (deals_enriched, deal_stage_funnel,
    /// deal_time_in_stage, activities_per_owner_week) beside the synced tables.
    Install(ConfigArg),
}

pub async fn run(action: ModelsAction) -> Result<(), Fail> {
    match action {
        // Every company of the config (or the one `--company` names), each in its schema.
        ModelsAction::Install(args) => {
            for config in args.companies()? {
                install(&config).await?;
            }
            Ok(())
        }
    }
}

/// Installs the views for one config's target and prints, per view, where it was created or
/// why it was skipped.
pub async fn install(config: &Config) -> Result<Vec<Outcome>, Fail> {
    let inputs = Inputs::new(
        config.streams.iter().map(|s| (s.def.name, &s.table)),
        &config.state_schema,
    );
    let outcomes = config
        .target
        .install_models(&config.state_schema, &inputs)
        .await?;
    for outcome in &outcomes {
        match outcome {
            Outcome::Created { at, .. } => println!("created {at}"),
            Outcome::Skipped { reason, .. } => println!("{reason}"),
        }
    }
    Ok(outcomes)
}
