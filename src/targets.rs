//! Opening a company's destination from its config; companies that share a DuckDB file share
//! one open database.

#[cfg(feature = "duckdb")]
use std::path::PathBuf;

use pipedrive_config::{Config, FileFormat, Target};
use pipedrive_engine::Destination;

use crate::fail::Fail;
#[cfg(not(feature = "duckdb"))]
use crate::fail::exit;

/// Opens a company's destination on its own.
pub(crate) async fn open_destination(config: &Config) -> Result<Box<dyn Destination>, Fail> {
    open_shared(config, &mut DuckDbFiles::default()).await
}

/// DuckDB files open in this run: companies that share a file share its database.
#[derive(Default)]
pub(crate) struct DuckDbFiles {
    #[cfg(feature = "duckdb")]
    open: Vec<(PathBuf, pipedrive_destinations::duckdb::DuckDb)>,
}

impl DuckDbFiles {
    /// Closes the files this run opened, once every company's run sharing them has ended.
    pub(crate) fn close(self) {
        #[cfg(feature = "duckdb")]
        drop(self.open);
    }
}

/// Opens a company's destination; a DuckDB file already open in `files` is shared.
#[cfg_attr(not(feature = "duckdb"), allow(unused_variables))]
pub(crate) async fn open_shared(
    config: &Config,
    files: &mut DuckDbFiles,
) -> Result<Box<dyn Destination>, Fail> {
    match &config.target {
        #[cfg(feature = "duckdb")]
        Target::DuckDb { path } => {
            use pipedrive_destinations::duckdb::DuckDb;
            if let Some((_, database)) = files.open.iter().find(|(open, _)| open == path) {
                return Ok(Box::new(database.share(&config.state_schema).await?));
            }
            let database = DuckDb::open(path, &config.state_schema).await?;
            let handle = database.share(&config.state_schema).await?;
            files.open.push((path.clone(), database));
            Ok(Box::new(handle))
        }
        #[cfg(not(feature = "duckdb"))]
        Target::DuckDb { .. } => Err(Fail {
            code: exit::USAGE,
            message: "this build has no DuckDB support: rebuild with the default features"
                .to_owned(),
        }),
        Target::Postgres { url } => Ok(Box::new(
            pipedrive_destinations::postgres::connect(url, &config.state_schema).await?,
        )),
        Target::Files { format, dir } => {
            let format = match format {
                FileFormat::Parquet => pipedrive_destinations::files::Format::Parquet,
                FileFormat::Jsonl => pipedrive_destinations::files::Format::Jsonl,
            };
            Ok(Box::new(pipedrive_destinations::files::Files::open(
                dir, format,
            )?))
        }
    }
}
