//! What a destination's settings are to the rest of the program: each destination's folder
//! owns them (its `config.rs`: what it reads from the config's `target:` section and checks,
//! and how it opens), and `registry.rs` lists the folders. The settings compile without the
//! destination's feature, so a config naming a destination this build lacks still parses, and
//! opening it says how to get one that has it.

use std::any::Any;
use std::fmt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use pipedrive_engine::{Destination, DestinationError};

use crate::sql::views::{Inputs, Outcome};

/// The `target:` keys a destination reads, as the config file gave them.
pub struct Section<'a> {
    /// `target.path`, environment variables expanded; it may hold `{company}`.
    pub path: Option<&'a str>,
    /// `target.url`, environment variables expanded; it may hold a password.
    pub url: Option<&'a str>,
    /// The config file's directory: a relative path is relative to it.
    pub base_dir: &'a Path,
    /// The company's name, for `{company}` in a path.
    pub company: &'a str,
    /// Whether the config names several companies.
    pub several: bool,
}

impl Section<'_> {
    /// `target.path` (else `default`), `{company}` filled in, relative to the config file.
    pub fn path_or(&self, default: &str) -> PathBuf {
        self.base_dir.join(
            self.path
                .unwrap_or(default)
                .replace("{company}", self.company),
        )
    }
}

/// Why a destination could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The config asks for something this destination, or this build, cannot do: the fix is
    /// in the config or the build, not in the database.
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Destination(#[from] DestinationError),
}

/// A destination as a config names it: its settings, read and checked, and how it opens.
#[async_trait]
pub trait TargetConfig: fmt::Debug + Send + Sync + SamePlace {
    /// The destination's name for messages, e.g. `PostgreSQL`.
    fn name(&self) -> &'static str;

    /// The `object` template used when neither `defaults.object` nor `target.schema` names
    /// one; `None`: the config's own default.
    fn default_object(&self) -> Option<&'static str> {
        None
    }

    /// The longest schema or table name it keeps, in bytes; `None`: no limit.
    fn name_limit(&self) -> Option<usize> {
        None
    }

    /// Whether it reads rows back, which follow mode needs so that a late event never replaces
    /// a newer row.
    fn reads_back(&self) -> bool;

    /// Opens it for a company whose state lives in `state_schema`. `opened` holds what this
    /// run has opened already, for companies that share one database.
    async fn open(
        &self,
        state_schema: &str,
        opened: &mut Opened,
    ) -> Result<Box<dyn Destination>, TargetError>;

    /// Installs the analytics views over the tables a sync made.
    async fn install_models(
        &self,
        state_schema: &str,
        inputs: &Inputs,
    ) -> Result<Vec<Outcome>, TargetError>;
}

/// Whether two targets write to the same place (two companies there would share a state
/// table), for every target whose settings compare.
pub trait SamePlace {
    fn same_place(&self, other: &dyn TargetConfig) -> bool;
    fn as_any(&self) -> &dyn Any;
}

impl<T: PartialEq + Any> SamePlace for T {
    fn same_place(&self, other: &dyn TargetConfig) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// What a run has opened, by path: one process must not open a DuckDB file twice, so
/// companies that share one share its database.
#[derive(Default)]
pub struct Opened {
    handles: Vec<(PathBuf, Box<dyn Any + Send>)>,
}

impl Opened {
    /// The handle of type `T` opened at `path`, if any.
    pub fn get<T: Any>(&self, path: &Path) -> Option<&T> {
        self.handles
            .iter()
            .filter(|(opened, _)| opened == path)
            .find_map(|(_, handle)| handle.downcast_ref())
    }

    /// Keeps `handle`, opened at `path`, until the run ends.
    pub fn keep<T: Any + Send>(&mut self, path: PathBuf, handle: T) {
        self.handles.push((path, Box::new(handle)));
    }
}

/// What a build without `feature` says when a config names the destination it brings.
pub fn not_built(destination: &str, feature: &str) -> TargetError {
    TargetError::Unsupported(format!(
        "this build has no {destination} support: rebuild with the default features (or `--features {feature}`)"
    ))
}
