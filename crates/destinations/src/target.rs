//! A config's `target:` section, read by the destination it names. Each destination's folder
//! owns its settings (its `config.rs`: what it reads from the section and checks, and how it
//! opens); this module only lists them, so a new destination is its folder and one row in
//! [`TARGETS`]. The settings compile without the destination's feature, so a config naming a
//! destination this build lacks still parses, and opening it says how to get one that has it.

use std::any::Any;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// How a destination reads its section.
type Resolve = fn(&Section<'_>, &str) -> Result<Arc<dyn TargetConfig>, String>;

/// One kind of destination a config can name.
struct Kind {
    /// The `target.type` values that name it; the first is the one messages suggest.
    names: &'static [&'static str],
    /// Reads its section, given the `target.type` it was named by.
    resolve: Resolve,
}

/// Every destination a config can name.
const TARGETS: &[Kind] = &[
    Kind {
        names: &["duckdb"],
        resolve: crate::duckdb::config::resolve,
    },
    Kind {
        names: &["postgres", "postgresql"],
        resolve: crate::postgres::config::resolve,
    },
    Kind {
        names: &["parquet"],
        resolve: crate::files::config::resolve,
    },
    Kind {
        names: &["jsonl"],
        resolve: crate::files::config::resolve,
    },
];

/// The destination `target.type` names, its section read and checked; an error is the message
/// for the user, naming the key at fault and the fix.
pub fn resolve(kind: &str, section: &Section<'_>) -> Result<Arc<dyn TargetConfig>, String> {
    match TARGETS.iter().find(|target| target.names.contains(&kind)) {
        Some(target) => (target.resolve)(section, kind),
        None => {
            let names: Vec<&str> = TARGETS.iter().map(|target| target.names[0]).collect();
            let (last, rest) = names.split_last().unwrap_or((&"", &[]));
            Err(format!(
                "target.type `{kind}` is not supported: use {} or {last}",
                rest.join(", ")
            ))
        }
    }
}

/// What a build without `feature` says when a config names the destination it brings.
pub fn not_built(destination: &str, feature: &str) -> TargetError {
    TargetError::Unsupported(format!(
        "this build has no {destination} support: rebuild with the default features (or `--features {feature}`)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section<'a>(path: Option<&'a str>, url: Option<&'a str>, several: bool) -> Section<'a> {
        Section {
            path,
            url,
            base_dir: Path::new("/configs"),
            company: "acme",
            several,
        }
    }

    #[test]
    fn each_destination_reads_its_own_settings() {
        let duckdb = resolve("duckdb", &section(Some("{company}.duckdb"), None, false)).unwrap();
        assert_eq!(
            format!("{duckdb:?}"),
            r#"DuckDbConfig { path: "/configs/acme.duckdb" }"#
        );
        assert_eq!(duckdb.default_object(), Some("main.{stream_name}"));
        // Tables are directories, so companies sharing a path each get one of their own.
        let shared = resolve("jsonl", &section(Some("out"), None, true)).unwrap();
        assert_eq!(
            format!("{shared:?}"),
            r#"FilesConfig { format: Jsonl, dir: "/configs/out/acme" }"#
        );
        assert!(!shared.reads_back());
        let own = resolve("parquet", &section(Some("out/{company}"), None, true)).unwrap();
        assert!(format!("{own:?}").ends_with(r#"dir: "/configs/out/acme" }"#));
        let postgres = resolve(
            "postgresql",
            &section(None, Some("postgres://u:hunter2@h/db"), false),
        )
        .unwrap();
        assert_eq!(postgres.name_limit(), Some(63));
        assert!(!format!("{postgres:?}").contains("hunter2"));
    }

    #[test]
    fn mistakes_name_the_fix() {
        let unknown = resolve("sqlite", &section(None, None, false)).unwrap_err();
        assert_eq!(
            unknown,
            "target.type `sqlite` is not supported: use duckdb, postgres, parquet or jsonl"
        );
        let no_url = resolve("postgres", &section(None, None, false)).unwrap_err();
        assert!(
            no_url.starts_with("target.url is required for postgres"),
            "{no_url}"
        );
    }

    #[test]
    fn targets_are_the_same_place_when_their_settings_are() {
        let a = resolve("duckdb", &section(Some("a.duckdb"), None, false)).unwrap();
        let again = resolve("duckdb", &section(Some("a.duckdb"), None, false)).unwrap();
        let b = resolve("duckdb", &section(Some("b.duckdb"), None, false)).unwrap();
        let files = resolve("parquet", &section(Some("a.duckdb"), None, false)).unwrap();
        assert!(a.same_place(&*again));
        assert!(!a.same_place(&*b));
        assert!(!a.same_place(&*files));
    }
}
