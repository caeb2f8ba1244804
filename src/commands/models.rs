//! `pipedrive-sync models install`: the analytics views (README → Analytics models) over one
//! config's tables.

use clap::Subcommand;
use pipedrive_config::{Config, Target};
use pipedrive_destinations::sql::models::{Inputs, Outcome};

use crate::{ConfigArg, Fail, exit};

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
    let outcomes = match &config.target {
        #[cfg(feature = "duckdb")]
        Target::DuckDb { path } => {
            pipedrive_destinations::duckdb::install_models(path, &config.state_schema, &inputs)
                .await?
        }
        #[cfg(not(feature = "duckdb"))]
        Target::DuckDb { .. } => {
            return Err(Fail {
                code: exit::USAGE,
                message: "this build has no DuckDB support: rebuild with the default features"
                    .to_owned(),
            });
        }
        Target::Postgres { url } => {
            pipedrive_destinations::postgres::install_models(url, &config.state_schema, &inputs)
                .await?
        }
        Target::Files { .. } => {
            return Err(Fail {
                code: exit::USAGE,
                message: "models install creates SQL views, which a parquet or jsonl target cannot hold: \
                          use a duckdb or postgres target (or query the files with DuckDB's read_parquet)"
                    .to_owned(),
            });
        }
    };
    for outcome in &outcomes {
        match outcome {
            Outcome::Created { at, .. } => println!("created {at}"),
            Outcome::Skipped { reason, .. } => println!("{reason}"),
        }
    }
    Ok(outcomes)
}
