//! What a config's `target:` says for files (`type: parquet` or `jsonl`, `path`), and how they
//! open.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use pipedrive_engine::Destination;

use crate::sql::views::{Inputs, Outcome};
use crate::target::{Opened, Section, TargetConfig, TargetError};

/// How tables are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Parquet,
    Jsonl,
}

/// A directory of Parquet or gzipped JSONL files, a directory per table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilesConfig {
    pub format: Format,
    pub dir: PathBuf,
}

pub(crate) fn resolve(section: &Section<'_>, kind: &str) -> Result<Arc<dyn TargetConfig>, String> {
    let format = match kind {
        "jsonl" => Format::Jsonl,
        _ => Format::Parquet,
    };
    let dir = section.path_or("pipedrive-data");
    // Tables are directories: each company needs its own.
    let shared = section.several && !section.path.is_some_and(|path| path.contains("{company}"));
    Ok(Arc::new(FilesConfig {
        format,
        dir: if shared {
            dir.join(section.company)
        } else {
            dir
        },
    }))
}

#[async_trait]
impl TargetConfig for FilesConfig {
    fn name(&self) -> &'static str {
        match self.format {
            Format::Parquet => "Parquet",
            Format::Jsonl => "JSONL",
        }
    }

    fn reads_back(&self) -> bool {
        false
    }

    #[cfg(feature = "files")]
    async fn open(
        &self,
        _state_schema: &str,
        _opened: &mut Opened,
    ) -> Result<Box<dyn Destination>, TargetError> {
        Ok(Box::new(super::Files::open(&self.dir, self.format)?))
    }

    #[cfg(not(feature = "files"))]
    async fn open(&self, _: &str, _: &mut Opened) -> Result<Box<dyn Destination>, TargetError> {
        Err(crate::target::not_built("Parquet and JSONL", "files"))
    }

    async fn install_models(&self, _: &str, _: &Inputs) -> Result<Vec<Outcome>, TargetError> {
        Err(TargetError::Unsupported(
            "models install creates SQL views, which a parquet or jsonl target cannot hold: \
             use a duckdb or postgres target (or query the files with DuckDB's read_parquet)"
                .to_owned(),
        ))
    }
}
