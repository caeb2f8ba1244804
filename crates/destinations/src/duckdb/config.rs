//! What a config's `target:` says for DuckDB (`type: duckdb`, `path`), and how it opens.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use pipedrive_engine::Destination;

use crate::sql::views::{Inputs, Outcome};
use crate::target::{Opened, Section, TargetConfig, TargetError};

/// A DuckDB file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuckDbConfig {
    pub path: PathBuf,
}

pub(crate) fn resolve(section: &Section<'_>, _kind: &str) -> Result<Arc<dyn TargetConfig>, String> {
    Ok(Arc::new(DuckDbConfig {
        path: section.path_or("pipedrive.duckdb"),
    }))
}

#[async_trait]
impl TargetConfig for DuckDbConfig {
    fn name(&self) -> &'static str {
        "DuckDB"
    }

    /// DuckDB names the catalog after the file: a `pipedrive` schema in `pipedrive.duckdb` would
    /// make `pipedrive.deals` ambiguous, so tables go to `main` and read as `deals`.
    fn default_object(&self) -> Option<&'static str> {
        Some("main.{stream_name}")
    }

    fn reads_back(&self) -> bool {
        true
    }

    #[cfg(feature = "duckdb")]
    async fn open(
        &self,
        state_schema: &str,
        opened: &mut Opened,
    ) -> Result<Box<dyn Destination>, TargetError> {
        use super::DuckDb;
        use crate::sql::SqlDestination;
        // A connection of its own to the database this run opened first: a DuckDB handle is
        // not shared across threads, so none is borrowed across an await.
        let connection = match opened.get::<DuckDb>(&self.path) {
            Some(database) => database.session.share()?,
            None => {
                let database = DuckDb::open(&self.path, state_schema).await?;
                let connection = database.session.share()?;
                opened.keep(self.path.clone(), database);
                connection
            }
        };
        Ok(Box::new(
            SqlDestination::new(connection, state_schema).await?,
        ))
    }

    #[cfg(not(feature = "duckdb"))]
    async fn open(&self, _: &str, _: &mut Opened) -> Result<Box<dyn Destination>, TargetError> {
        Err(crate::target::not_built("DuckDB", "duckdb"))
    }

    #[cfg(feature = "duckdb")]
    async fn install_models(
        &self,
        state_schema: &str,
        inputs: &Inputs,
    ) -> Result<Vec<Outcome>, TargetError> {
        Ok(super::install_models(&self.path, state_schema, inputs).await?)
    }

    #[cfg(not(feature = "duckdb"))]
    async fn install_models(&self, _: &str, _: &Inputs) -> Result<Vec<Outcome>, TargetError> {
        Err(crate::target::not_built("DuckDB", "duckdb"))
    }
}
