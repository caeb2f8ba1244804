//! What a config's `target:` says for PostgreSQL (`type: postgres`, `url`), and how it opens.

use std::sync::Arc;

use async_trait::async_trait;
use pipedrive_engine::Destination;

use crate::sql::views::{Inputs, Outcome};
use crate::target::{Opened, Section, TargetConfig, TargetError};

/// PostgreSQL's identifier limit (NAMEDATALEN - 1), in bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// A PostgreSQL database. Its `Debug` leaves the URL's password out.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database?sslmode=...`
    pub url: String,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &without_password(&self.url))
            .finish()
    }
}

/// A connection URL with its password replaced, for messages and debug output.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "<a URL that does not parse>".to_owned(),
    }
}

pub(crate) fn resolve(section: &Section<'_>, _kind: &str) -> Result<Arc<dyn TargetConfig>, String> {
    let url = section.url.ok_or(
        "target.url is required for postgres, e.g. postgres://user@localhost:5432/db (add ?sslmode=require for TLS)",
    )?;
    Ok(Arc::new(PostgresConfig {
        url: url.to_owned(),
    }))
}

#[async_trait]
impl TargetConfig for PostgresConfig {
    fn name(&self) -> &'static str {
        "PostgreSQL"
    }

    fn name_limit(&self) -> Option<usize> {
        Some(MAX_IDENTIFIER_BYTES)
    }

    fn reads_back(&self) -> bool {
        true
    }

    #[cfg(feature = "postgres")]
    async fn open(
        &self,
        state_schema: &str,
        _opened: &mut Opened,
    ) -> Result<Box<dyn Destination>, TargetError> {
        Ok(Box::new(super::connect(&self.url, state_schema).await?))
    }

    #[cfg(not(feature = "postgres"))]
    async fn open(&self, _: &str, _: &mut Opened) -> Result<Box<dyn Destination>, TargetError> {
        Err(crate::target::not_built("PostgreSQL", "postgres"))
    }

    #[cfg(feature = "postgres")]
    async fn install_models(
        &self,
        state_schema: &str,
        inputs: &Inputs,
    ) -> Result<Vec<Outcome>, TargetError> {
        Ok(super::install_models(&self.url, state_schema, inputs).await?)
    }

    #[cfg(not(feature = "postgres"))]
    async fn install_models(&self, _: &str, _: &Inputs) -> Result<Vec<Outcome>, TargetError> {
        Err(crate::target::not_built("PostgreSQL", "postgres"))
    }
}
