//! Opening a company's destination from its config; companies that share a DuckDB file share
//! one open database.

use pipedrive_config::Config;
use pipedrive_destinations::target::Opened;
use pipedrive_engine::Destination;

use crate::fail::Fail;

/// Opens a company's destination on its own.
pub(crate) async fn open_destination(config: &Config) -> Result<Box<dyn Destination>, Fail> {
    open_shared(config, &mut Opened::default()).await
}

/// Opens a company's destination; a database already open in `opened` is shared.
pub(crate) async fn open_shared(
    config: &Config,
    opened: &mut Opened,
) -> Result<Box<dyn Destination>, Fail> {
    Ok(config.target.open(&config.state_schema, opened).await?)
}
