//! Every destination a config can name, by its `target.type`: a new destination is its folder
//! and one row here.

use std::sync::Arc;

use crate::target::{Section, TargetConfig};

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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::target::Section;

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

/// A build without a destination's feature still reads a config naming it, and says how to get
/// a build that has it when the destination is opened (CI runs these without any feature).
#[cfg(all(
    test,
    not(feature = "duckdb"),
    not(feature = "postgres"),
    not(feature = "files")
))]
mod without_features {
    use std::path::Path;

    use super::*;
    use crate::target::{Opened, TargetError};

    #[tokio::test]
    async fn opening_a_destination_this_build_lacks_names_the_feature() {
        let section = Section {
            path: Some("x"),
            url: Some("postgres://h/db"),
            base_dir: Path::new("/configs"),
            company: "acme",
            several: false,
        };
        for (kind, says) in [
            (
                "duckdb",
                "no DuckDB support: rebuild with the default features (or `--features duckdb`)",
            ),
            ("postgres", "no PostgreSQL support"),
            ("parquet", "no Parquet and JSONL support"),
        ] {
            let target = resolve(kind, &section).unwrap();
            match target.open("main", &mut Opened::default()).await {
                Err(TargetError::Unsupported(message)) => {
                    assert!(message.contains(says), "{kind}: {message}")
                }
                Err(other) => panic!("{kind}: {other}"),
                Ok(_) => panic!("{kind} opened in a build without it"),
            }
        }
    }
}
