//! The YAML config file, parsed once into resolved, validated types. Nothing downstream reads
//! raw config.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use pipedrive_client::{ClientConfig, Credentials, OAuthCredentials, SecretString};
use pipedrive_destinations::registry;
use pipedrive_destinations::target::{Section, TargetConfig};
use pipedrive_engine::controls::{Controls, RowFilter};
use pipedrive_engine::{SyncMode, TableRef, catalog};
use secrecy::ExposeSecret;
use serde::Deserialize;

/// A config problem: the message names the key, the cause and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn error(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The one company to sync; `sources` lists several instead.
    #[serde(default)]
    pub source: Option<RawSource>,
    /// Several companies, each loaded into its own schema with its own state.
    #[serde(default)]
    pub sources: Option<Vec<RawSource>>,
    #[serde(default)]
    pub target: RawTarget,
    #[serde(default)]
    pub defaults: RawStreamOptions,
    /// Stream name (or `*`) → options; absent means every stream. A list of names is taken
    /// too: it is what people write first, and it can only mean those streams.
    #[serde(default, deserialize_with = "stream_selection")]
    pub streams: Option<BTreeMap<String, Option<RawStreamOptions>>>,
    /// Streams read at once (they share one rate budget).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Salt of `hash_columns` (keep it secret, e.g. `${PDS_HASH_SALT}`).
    #[serde(default)]
    pub hash_salt: Option<SecretString>,
}

type StreamSelection = BTreeMap<String, Option<RawStreamOptions>>;

/// `streams:` as a mapping (name → options) or as a list of names (each with no options).
fn stream_selection<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<StreamSelection>, D::Error> {
    struct Selection;
    impl<'de> serde::de::Visitor<'de> for Selection {
        type Value = Option<StreamSelection>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("stream names, each on a line of its own ending in `:` (e.g. `deals:`), or a list such as [deals, persons]")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            StreamSelection::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                .map(Some)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut selection = StreamSelection::new();
            while let Some(name) = seq.next_element::<String>()? {
                selection.insert(name, None);
            }
            Ok(Some(selection))
        }
    }
    deserializer.deserialize_any(Selection)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// The company's name in schemas, state, summaries and run records (`{company}` in
    /// `object`, `target.schema` and `target.path`). Default: the company domain.
    pub name: Option<String>,
    /// Secrets are `SecretString`s from the moment they are read: a `{:?}` of the raw config
    /// prints them redacted.
    pub api_token: Option<SecretString>,
    pub oauth: Option<RawOAuth>,
    pub company_domain: Option<String>,
    pub base_url: Option<String>,
    pub start_date: Option<String>,
    /// How far before its bookmark an incremental read starts again (e.g. `5m`, `0s`).
    pub lookback: Option<String>,
    /// The most tokens one run may spend from the company's daily budget.
    pub max_tokens: Option<u64>,
    /// Percent of the daily budget a run leaves unspent for the company's other integrations.
    pub budget_reserve_percent: Option<u8>,
    /// Seconds before one request is abandoned and retried.
    pub request_timeout_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOAuth {
    pub client_id: String,
    pub client_secret: SecretString,
    pub refresh_token: SecretString,
    pub token_url: Option<String>,
    /// Where the rotated refresh token is kept (Pipedrive rotates it on use); relative paths
    /// are relative to the config file. Default: `.pipedrive-sync-refresh-token` beside it.
    pub token_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// DuckDB file, or the directory of a parquet or jsonl target.
    pub path: Option<String>,
    /// PostgreSQL connection URL (it may hold a password).
    pub url: Option<SecretString>,
    /// Schema for the tables and the state table (default `pipedrive`).
    pub schema: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStreamOptions {
    pub mode: Option<SyncMode>,
    /// `schema.table`, where `{stream_name}` is replaced by the stream's name.
    pub object: Option<String>,
    /// Keep `{table}_history`, one row per version (SCD2).
    pub history: Option<bool>,
    /// How often an incremental stream lists every id to find deleted records (`24h`, `30m`,
    /// `0s` for every run, `never`). Costs one full listing of the stream.
    pub reconcile_deletes_every: Option<String>,
    /// How long a stream read in full every run (no change filter: pipelines, currencies,
    /// mail threads, ...) is used as last read before it is read again (`6h`, `1d`). Unset:
    /// every run.
    pub refresh_every: Option<String>,
    /// Columns (destination names) never loaded.
    pub exclude_columns: Option<Vec<String>>,
    /// Columns loaded as the hex SHA-256 of `hash_salt` and the value.
    pub hash_columns: Option<Vec<String>>,
    /// Only records matching this are loaded, e.g. `pipeline_id = 3 and status != 'lost'`.
    pub filter: Option<String>,
    /// `recent-first` loads a stream's newest records first on its first sync.
    pub priority: Option<String>,
}

/// Where rows go: the destination the config names, its settings read by the destination
/// itself (`pipedrive_destinations::target`). Its `Debug` leaves a URL's password out.
pub type Target = Arc<dyn TargetConfig>;

/// One selected stream with its resolved options.
#[derive(Clone, Debug)]
pub struct StreamChoice {
    pub def: &'static catalog::StreamDef,
    pub mode: SyncMode,
    pub table: TableRef,
    pub history: bool,
    pub reconcile_deletes_every: Option<Duration>,
    /// For a stream read in full every run: how long its last complete read stands. `None`:
    /// read every run.
    pub refresh_every: Option<Duration>,
    pub controls: Controls,
    pub recent_first: bool,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// The company's name: `sources[].name`, else its domain, else `pipedrive`.
    pub company: String,
    pub client: ClientConfig,
    pub target: Target,
    /// Schema of the state table: the schema of the default `object` template.
    pub state_schema: String,
    pub streams: Vec<StreamChoice>,
    pub start_date: Option<DateTime<Utc>>,
    pub lookback: Duration,
    pub concurrency: usize,
    /// Set by `sync --allow-other-company`: load although the target's state names another
    /// Pipedrive company.
    pub allow_other_company: bool,
}

/// How far an incremental read looks back before its bookmark unless `source.lookback` says
/// otherwise: long enough for replication lag and a change that commits minutes after it began.
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(5 * 60);

/// The share of the company's daily token budget (percent) a run leaves for the company's other
/// integrations, unless `source.budget_reserve_percent` says otherwise.
pub const DEFAULT_BUDGET_RESERVE_PERCENT: u8 = 20;

const DEFAULT_OBJECT: &str = "pipedrive.{stream_name}";
/// With several companies each gets a schema of its own.
const SEVERAL_OBJECT: &str = "{company}_pipedrive.{stream_name}";

/// How long a stream read in full every run stands: its own `refresh_every` over `'*'` over
/// `defaults`. Streams read by their changes cost a page when nothing changed, so the key is
/// refused on one of them and not applied to them from `'*'` or `defaults`.
fn refresh_every(
    def: &catalog::StreamDef,
    mode: SyncMode,
    own: Option<&RawStreamOptions>,
    wildcard: &RawStreamOptions,
    defaults: &RawStreamOptions,
) -> Result<Option<Duration>, ConfigError> {
    let own = own.and_then(|options| options.refresh_every.as_ref());
    let reads_changes = mode == SyncMode::Incremental && def.supports_incremental();
    if reads_changes {
        return match own {
            Some(_) => Err(error(format!(
                "streams.{0}.refresh_every: {0} is read by its changes, so a run costs a page when nothing changed; refresh_every is for streams read in full every run (e.g. pipelines, stages, currencies, mail_threads): remove it",
                def.name
            ))),
            None => Ok(None),
        };
    }
    let (text, key) = match (own, &wildcard.refresh_every, &defaults.refresh_every) {
        (Some(text), _, _) => (text, format!("streams.{}.refresh_every", def.name)),
        (None, Some(text), _) => (text, "streams.'*'.refresh_every".to_owned()),
        (None, None, Some(text)) => (text, "defaults.refresh_every".to_owned()),
        (None, None, None) => return Ok(None),
    };
    match parse_every(text, &key)? {
        Some(every) => Ok(Some(every).filter(|every| !every.is_zero())),
        None => Err(error(format!(
            "{key}: `never` would keep the first read for good; write an interval (e.g. `6h`, `1d`), or remove it to read the stream every run"
        ))),
    }
}

/// A stream's data controls: its own options over `'*'` over `defaults`.
fn controls(
    def: &catalog::StreamDef,
    options: &RawStreamOptions,
    wildcard: &RawStreamOptions,
    defaults: &RawStreamOptions,
    salt: Option<&str>,
) -> Result<Controls, ConfigError> {
    let pick = |get: fn(&RawStreamOptions) -> &Option<Vec<String>>| {
        get(options)
            .clone()
            .or_else(|| get(wildcard).clone())
            .or_else(|| get(defaults).clone())
            .unwrap_or_default()
    };
    let exclude = pick(|o| &o.exclude_columns);
    let hash = pick(|o| &o.hash_columns);
    for (key, columns) in [("exclude_columns", &exclude), ("hash_columns", &hash)] {
        if let Some(column) = columns
            .iter()
            .find(|c| def.primary_key.contains(&c.as_str()))
        {
            return Err(error(format!(
                "streams.{}.{key}: `{column}` is the stream's primary key, which rows are merged on; remove it from {key}",
                def.name
            )));
        }
    }
    let salt = match (hash.is_empty(), salt) {
        (true, _) => String::new(),
        (false, Some(salt)) if !salt.is_empty() => salt.to_owned(),
        (false, _) => {
            return Err(error(format!(
                "streams.{}.hash_columns needs a salt: set `hash_salt: ${{PDS_HASH_SALT}}` at the top of the config and keep the value secret",
                def.name
            )));
        }
    };
    let filter = options
        .filter
        .as_ref()
        .or(wildcard.filter.as_ref())
        .or(defaults.filter.as_ref())
        .map(|text| {
            text.parse::<RowFilter>()
                .map_err(|e| error(format!("streams.{}.filter `{text}`: {e}", def.name)))
        })
        .transpose()?;
    Ok(Controls {
        exclude,
        hash,
        salt,
        filter,
        keys: def.primary_key.iter().map(|&key| key.to_owned()).collect(),
    })
}

/// Deletes of streams that cannot list deleted records are looked for once a day.
/// Streams read at once when the config does not say: on two cores, 8 was no faster than 4
/// and held more pages in memory (PostgreSQL at `large`: 61.2 s and 154 MB peak at 8, 59.0 s
/// and 124 MB at 4).
pub const DEFAULT_CONCURRENCY: usize = 4;

const DEFAULT_RECONCILE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// An interval such as `30m`, `24h`, `7d` or `90s`; `never` is `None`.
pub fn parse_every(text: &str, key: &str) -> Result<Option<Duration>, ConfigError> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds_per_unit = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if seconds_per_unit > 0 => Ok(Some(Duration::from_secs(
            n.saturating_mul(seconds_per_unit),
        ))),
        _ => Err(error(format!(
            "{key}: `{text}` is not an interval; write a number with s, m, h or d (e.g. `30m`, `24h`), or `never`"
        ))),
    }
}

/// The directory relative paths in a config file are anchored to: the file's own. A bare file
/// name's parent is the empty path, which names no directory (a files target could not sync
/// `out`'s parent): it is the current directory.
pub fn base_dir(config_file: &Path) -> PathBuf {
    match config_file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Replaces `${NAME}` with the environment variable's value; a missing one is an error naming
/// the key that needs it.
fn expand(value: &str, key: &str) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| error(format!("{key}: `${{` without a closing `}}`")))?;
        let name = &after[..end];
        let resolved = std::env::var(name).map_err(|_| {
            error(format!(
                "{key} refers to the environment variable {name}, which is not set: export {name}=... or write the value into the config"
            ))
        })?;
        out.push_str(&resolved);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The OAuth token store holds `<fingerprint> <token>`: the newest refresh token, tagged with
/// a fingerprint of the configured token it was rotated from. A configured token with another
/// fingerprint is a new grant (the user re-authorised) and wins over the stored one.
fn fingerprint(token: &str) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(token.as_bytes()))[..16].to_owned()
}

/// A token store's `(fingerprint, token)`; stores written before fingerprints hold the token
/// alone. Only a regular file is read, and only its start: a FIFO or device named by mistake
/// would block or never end.
fn read_token_store(path: &Path) -> Option<(Option<String>, String)> {
    use std::io::Read;
    if !std::fs::metadata(path).ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(64 * 1024)
        .read_to_string(&mut text)
        .ok()?;
    let (fingerprint, token) = match text.trim().split_once(char::is_whitespace) {
        Some((fingerprint, token)) => (Some(fingerprint.to_owned()), token.trim()),
        None => (None, text.trim()),
    };
    (!token.is_empty()).then(|| (fingerprint, token.to_owned()))
}

/// Writes the token store atomically (temporary file, fsync, rename), readable by its owner
/// only.
fn write_token_store(
    path: &Path,
    fingerprint: Option<&str>,
    token: &SecretString,
) -> std::io::Result<()> {
    use secrecy::ExposeSecret;
    use std::io::Write;
    let temporary = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary)?;
        // `mode` applies to a new file only: a temporary left by a crash keeps its own.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        if let Some(fingerprint) = fingerprint {
            write!(file, "{fingerprint} ")?;
        }
        file.write_all(token.expose_secret().as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)
}

/// The subdomain of whatever form of the Pipedrive address was written: `acme`,
/// `acme.pipedrive.com`, or the address copied from the browser (`https://acme.pipedrive.com/deals`).
fn subdomain(domain: &str) -> &str {
    let domain = domain.trim();
    let domain = domain
        .strip_prefix("https://")
        .or_else(|| domain.strip_prefix("http://"))
        .unwrap_or(domain);
    let host = domain.split('/').next().unwrap_or_default();
    host.strip_suffix(".pipedrive.com").unwrap_or(host)
}

/// `name`, else the company domain, else `pipedrive`; it becomes part of schema and file
/// names, so it is kept to letters, digits, `_` and `-`.
fn company_name(source: &RawSource, key: &str) -> Result<String, ConfigError> {
    let valid = |name: &str| {
        !name.is_empty()
            && name.len() <= 40
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    let name = match (&source.name, &source.company_domain) {
        (Some(name), _) => name.trim().to_owned(),
        // A domain that cannot name a company is reported as a bad domain later on.
        (None, Some(domain)) => Some(subdomain(domain))
            .filter(|name| valid(name))
            .unwrap_or("pipedrive")
            .to_owned(),
        (None, None) => "pipedrive".to_owned(),
    };
    if !valid(&name) {
        return Err(error(format!(
            "{key}.name `{name}` cannot name a company: use 1 to 40 letters, digits, `_` or `-` (e.g. `acme`)"
        )));
    }
    Ok(name)
}

/// Two streams loading into one table would merge each other's rows by id: refused before
/// anything is written. Names compare without case, as DuckDB's do. `objects[i]` is the key
/// stream `i`'s table comes from.
fn refuse_shared_tables(streams: &[StreamChoice], objects: &[String]) -> Result<(), ConfigError> {
    let tables = |stream: &StreamChoice| {
        let mut tables = vec![stream.table.clone()];
        if stream.history {
            tables.push(stream.table.history());
        }
        tables
    };
    let folded = |table: &TableRef| table.to_string().to_lowercase();
    for (index, stream) in streams.iter().enumerate() {
        for (earlier_index, earlier) in streams[..index].iter().enumerate() {
            let Some(table) = tables(stream)
                .into_iter()
                .find(|table| tables(earlier).iter().any(|t| folded(t) == folded(table)))
            else {
                continue;
            };
            let (key, earlier_key) = (&objects[index], &objects[earlier_index]);
            // One template for both: it lacks `{stream_name}`.
            let fix = if key == earlier_key && !key.starts_with("streams.")
                || key.ends_with("'*'.object")
            {
                format!(
                    "put `{{stream_name}}` in {key} (e.g. `{}.{{stream_name}}`)",
                    table.schema
                )
            } else {
                "give each stream an `object` of its own".to_owned()
            };
            let whence = if key == earlier_key {
                key.clone()
            } else {
                format!("{earlier_key} and {key}")
            };
            return Err(error(format!(
                "streams `{}` and `{}` would both load into the table {table} ({whence}), and one would overwrite the other's rows: {fix}",
                earlier.def.name, stream.def.name
            )));
        }
    }
    Ok(())
}

/// Rows made of an array field (`person_emails` of `persons.emails`) hold that field's values:
/// hashing or excluding the field in its parent covers every column of those rows but their
/// keys, so the values never land in clear.
fn cover_nested_rows(streams: &mut [StreamChoice]) {
    let covered: Vec<(usize, bool, bool, String)> = streams
        .iter()
        .enumerate()
        .filter_map(|(index, child)| {
            let catalog::Fanout::Nested { parent, field } = child.def.fanout else {
                return None;
            };
            let parent = streams.iter().find(|s| s.def.name == parent)?;
            let names = |list: &[String]| list.iter().any(|c| c == field);
            let hash = names(&parent.controls.hash);
            let exclude = names(&parent.controls.exclude);
            (hash || exclude).then(|| (index, hash, exclude, parent.controls.salt.clone()))
        })
        .collect();
    for (index, hash, exclude, salt) in covered {
        let controls = &mut streams[index].controls;
        let everything = || pipedrive_engine::controls::EVERY_COLUMN.to_owned();
        if exclude {
            controls.exclude.push(everything());
        } else if hash {
            controls.hash.push(everything());
            controls.salt = salt;
        }
    }
}

fn parse_table(template: &str, stream: &str) -> Result<TableRef, ConfigError> {
    let object = template.replace("{stream_name}", stream);
    match object.split_once('.') {
        Some((schema, name)) if !schema.is_empty() && !name.is_empty() && !name.contains('.') => {
            Ok(TableRef {
                schema: schema.to_owned(),
                name: name.to_owned(),
            })
        }
        _ => Err(error(format!(
            "object `{template}` must have the form schema.table, e.g. `pipedrive.{{stream_name}}`"
        ))),
    }
}

fn parse_start_date(value: &str) -> Result<DateTime<Utc>, ConfigError> {
    let parsed = NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        .or_else(|_| DateTime::parse_from_rfc3339(value).map(|t| t.with_timezone(&Utc)))
        .map_err(|_| {
            error(format!(
                "source.start_date `{value}` is not a date: write YYYY-MM-DD (e.g. 2024-01-01) or an RFC 3339 time"
            ))
        })?;
    if parsed > Utc::now() {
        return Err(error(format!(
            "source.start_date `{value}` is in the future, so nothing would be synced: use a past date or remove it"
        )));
    }
    Ok(parsed)
}

fn unknown_stream(name: &str, whence: &str) -> ConfigError {
    let suggestions = catalog::suggest(name);
    let hint = if suggestions.is_empty() {
        "run `pipedrive-sync discover` to list the streams".to_owned()
    } else {
        format!("did you mean {}?", suggestions.join(", "))
    };
    error(format!("{whence}: unknown stream `{name}`; {hint}"))
}

/// Stream names from a comma-separated command-line list, each checked against the catalog.
pub fn parse_stream_list(list: &str, flag: &str) -> Result<Vec<&'static str>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            catalog::find(name)
                .map(|d| d.name)
                .ok_or_else(|| unknown_stream(name, flag))
        })
        .collect()
}

impl Config {
    /// The engine's plan for the selected streams.
    pub fn plan(&self) -> pipedrive_engine::SyncPlan {
        pipedrive_engine::SyncPlan {
            company: self.company.clone(),
            streams: self
                .streams
                .iter()
                .map(|s| pipedrive_engine::StreamPlan {
                    def: s.def,
                    mode: s.mode,
                    table: s.table.clone(),
                    history: s.history,
                    reconcile_every: s.reconcile_deletes_every,
                    refresh_every: s.refresh_every,
                    controls: s.controls.clone(),
                    recent_first: s.recent_first,
                })
                .collect(),
            start_date: self.start_date,
            lookback: self.lookback,
            concurrency: self.concurrency,
            allow_other_company: self.allow_other_company,
        }
    }

    /// Reads and resolves a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::pick(Config::load_all(path)?, None)
    }

    /// Parses YAML text of one company; `origin` names it in messages, `base_dir` anchors
    /// relative paths.
    pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        Config::pick(Config::parse_all(text, origin, base_dir)?, None)
    }

    /// Resolves a config of one company; a config listing several under `sources` is refused
    /// (commands that work on one company pick it with [`Config::pick`]).
    pub fn resolve(raw: RawConfig, base_dir: &Path) -> Result<Config, ConfigError> {
        Config::pick(Config::resolve_all(raw, base_dir)?, None)
    }

    /// One company of a config: the one named `company`, or the only one.
    pub fn pick(mut companies: Vec<Config>, company: Option<&str>) -> Result<Config, ConfigError> {
        let names = || {
            companies
                .iter()
                .map(|c| c.company.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match company {
            Some(name) => match companies.iter().position(|c| c.company == name) {
                Some(index) => Ok(companies.swap_remove(index)),
                None => Err(error(format!(
                    "--company `{name}` is not in the config; its companies are: {}",
                    names()
                ))),
            },
            None if companies.len() == 1 => Ok(companies.remove(0)),
            None => Err(error(format!(
                "the config lists {} companies under `sources` ({}); pick one with --company NAME",
                companies.len(),
                names()
            ))),
        }
    }

    /// Reads a config file and resolves every company it lists.
    pub fn load_all(path: &Path) -> Result<Vec<Config>, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            error(format!(
                "cannot read the config file {}: {e}; pass an existing file with --config",
                path.display()
            ))
        })?;
        Config::parse_all(&text, &path.display().to_string(), &base_dir(path))
    }

    /// Parses YAML text listing one company or several.
    pub fn parse_all(
        text: &str,
        origin: &str,
        base_dir: &Path,
    ) -> Result<Vec<Config>, ConfigError> {
        let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| {
            let at = e.location().map_or_else(String::new, |at| {
                format!(" at line {} column {}", at.line(), at.column())
            });
            error(format!(
                "{origin}: {e}\nfix {origin}{at}: indent nested keys with spaces, close every quote and bracket, and use the keys README → Config reference lists"
            ))
        })?;
        Config::resolve_all(raw, base_dir)
    }

    /// Every company of the config, each with its own client, schema, state and tables.
    pub fn resolve_all(mut raw: RawConfig, base_dir: &Path) -> Result<Vec<Config>, ConfigError> {
        let (sources, several) = match (raw.source.take(), raw.sources.take()) {
            (Some(source), None) => (vec![source], false),
            (None, Some(sources)) if !sources.is_empty() => (sources, true),
            (Some(_), Some(_)) => {
                return Err(error(
                    "the config has both `source` and `sources`: list every company under `sources`",
                ));
            }
            (None, _) => {
                return Err(error(
                    "the config needs `source:` (one company) or `sources:` (a list of companies), each with api_token or oauth and company_domain",
                ));
            }
        };
        let mut companies: Vec<Config> = Vec::with_capacity(sources.len());
        for (index, source) in sources.into_iter().enumerate() {
            let key = if several {
                format!("sources[{index}]")
            } else {
                "source".to_owned()
            };
            let name = company_name(&source, &key)?;
            if let Some(other) = companies.iter().find(|c| c.company == name) {
                return Err(error(format!(
                    "{key}: the company name `{name}` is used twice ({} has it too); give each source a distinct `name`",
                    other.company
                )));
            }
            let config =
                Config::resolve_company(&raw, source, &name, several, base_dir).map_err(|e| {
                    ConfigError(e.0.replacen("source.", &format!("{key}."), 1).replacen(
                        "source ",
                        &format!("{key} "),
                        1,
                    ))
                })?;
            if let Some(other) = companies.iter().find(|c| {
                c.target.same_place(&*config.target) && c.state_schema == config.state_schema
            }) {
                return Err(error(format!(
                    "sources `{}` and `{name}` would load into the same schema `{}`: put `{{company}}` in target.schema, defaults.object or target.path",
                    other.company, config.state_schema
                )));
            }
            companies.push(config);
        }
        Ok(companies)
    }

    fn resolve_company(
        raw: &RawConfig,
        source: RawSource,
        company: &str,
        several: bool,
        base_dir: &Path,
    ) -> Result<Config, ConfigError> {
        let base_url = match (&source.base_url, &source.company_domain) {
            (Some(url), _) => expand(url, "source.base_url")?,
            (None, Some(domain)) => {
                let domain = expand(domain, "source.company_domain")?;
                let domain = subdomain(&domain);
                if domain.is_empty()
                    || !domain
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    return Err(error(format!(
                        "source.company_domain `{domain}` is not a Pipedrive subdomain: use the part before .pipedrive.com in your Pipedrive address, e.g. `mycompany`"
                    )));
                }
                format!("https://{domain}.pipedrive.com")
            }
            (None, None) => {
                return Err(error(
                    "source needs company_domain (e.g. `mycompany` for https://mycompany.pipedrive.com) or base_url",
                ));
            }
        };
        let mut base_url = url::Url::parse(&base_url).map_err(|e| {
            error(format!(
                "source.base_url `{base_url}` is not a URL ({e}): write e.g. http://127.0.0.1:8080"
            ))
        })?;
        // Request paths carry their API version (`/api/v2/deals`): a base URL copied with the
        // version would double it and make every request a 404.
        let path = base_url.path().trim_end_matches('/');
        if let Some(prefix) = ["/api/v1", "/api/v2"]
            .iter()
            .find_map(|version| path.strip_suffix(version))
        {
            let prefix = prefix.to_owned();
            base_url.set_path(&prefix);
        }
        // Where a rotated refresh token goes, and the fingerprint it is tagged with.
        let mut token_store: Option<(PathBuf, Option<String>)> = None;
        let credentials = match (&source.api_token, &source.oauth) {
            (Some(token), None) => {
                let token = expand(token.expose_secret(), "source.api_token")?;
                if token.trim().is_empty() {
                    return Err(error(
                        "source.api_token is empty: set PIPEDRIVE_API_TOKEN (Pipedrive → Personal preferences → API)",
                    ));
                }
                Credentials::ApiToken(SecretString::from(token.trim().to_owned()))
            }
            (None, Some(oauth)) => Credentials::OAuth(OAuthCredentials {
                client_id: expand(&oauth.client_id, "source.oauth.client_id")?,
                client_secret: SecretString::from(expand(
                    oauth.client_secret.expose_secret(),
                    "source.oauth.client_secret",
                )?),
                refresh_token: {
                    let store = base_dir.join(
                        oauth
                            .token_store
                            .as_deref()
                            .map(str::to_owned)
                            .unwrap_or_else(|| {
                                if several {
                                    format!(".pipedrive-sync-refresh-token-{company}")
                                } else {
                                    ".pipedrive-sync-refresh-token".to_owned()
                                }
                            }),
                    );
                    let configured = expand(
                        oauth.refresh_token.expose_secret(),
                        "source.oauth.refresh_token",
                    )
                    .map(|token| token.trim().to_owned());
                    let configured_fingerprint = configured.as_deref().ok().map(fingerprint);
                    let (token, root) = match (read_token_store(&store), configured) {
                        // A token rotated from the configured one (or stored before
                        // fingerprints were kept) is newer: Pipedrive rotated it.
                        (Some((stored_fingerprint, stored)), configured)
                            if stored_fingerprint.is_none()
                                || configured.is_err()
                                || stored_fingerprint == configured_fingerprint =>
                        {
                            (stored, stored_fingerprint.or(configured_fingerprint))
                        }
                        (_, configured) => (configured?, configured_fingerprint),
                    };
                    if token.is_empty() {
                        return Err(error(
                            "source.oauth.refresh_token is empty: authorise the app in Pipedrive and paste the refresh token it gives",
                        ));
                    }
                    token_store = Some((store, root));
                    SecretString::from(token)
                },
                token_url: {
                    let url = match &oauth.token_url {
                        Some(url) => expand(url, "source.oauth.token_url")?,
                        None => "https://oauth.pipedrive.com/oauth/token".to_owned(),
                    };
                    url::Url::parse(&url).map_err(|e| {
                        error(format!("source.oauth.token_url `{url}` is not a URL ({e})"))
                    })?
                },
                on_rotate: None,
            }),
            (Some(_), Some(_)) => {
                return Err(error("source has both api_token and oauth: keep one"));
            }
            (None, None) => {
                return Err(error(
                    "source needs api_token (e.g. `api_token: ${PIPEDRIVE_API_TOKEN}`) or oauth",
                ));
            }
        };
        let start_date = source
            .start_date
            .as_deref()
            .map(parse_start_date)
            .transpose()?;
        let lookback = match source.lookback.as_deref() {
            None => DEFAULT_LOOKBACK,
            Some(text) => parse_every(text, "source.lookback")?.unwrap_or_default(),
        };
        let mut credentials = credentials;
        if let (Credentials::OAuth(oauth), Some((store, root))) = (&mut credentials, token_store) {
            oauth.on_rotate = Some(Arc::new(move |token: &SecretString| {
                write_token_store(&store, root.as_deref(), token)
            }));
        }

        let path = raw
            .target
            .path
            .as_deref()
            .map(|path| expand(path, "target.path"))
            .transpose()?;
        let url = raw
            .target
            .url
            .as_ref()
            .map(|url| expand(url.expose_secret(), "target.url"))
            .transpose()?;
        let section = Section {
            path: path.as_deref(),
            url: url.as_deref(),
            base_dir,
            company,
            several,
        };
        let target = registry::resolve(raw.target.kind.as_deref().unwrap_or("duckdb"), &section)
            .map_err(error)?;

        if let Some(schema) = &raw.target.schema
            && (schema.is_empty() || schema.contains('.'))
        {
            return Err(error(format!(
                "target.schema `{schema}` is not a schema name: write one name without `.` (e.g. `pipedrive` or `crm_raw`); tables go to <schema>.<stream>"
            )));
        }
        // Which key each table's name comes from, so a message can blame what the user wrote.
        let default_object_key = match (&raw.defaults.object, &raw.target.schema) {
            (Some(_), _) => "defaults.object",
            (None, Some(_)) => "target.schema",
            (None, None) => "the default object",
        };
        let default_object = raw
            .defaults
            .object
            .clone()
            .unwrap_or_else(|| match &raw.target.schema {
                Some(schema) => format!("{schema}.{{stream_name}}"),
                None if several => SEVERAL_OBJECT.to_owned(),
                None => target.default_object().unwrap_or(DEFAULT_OBJECT).to_owned(),
            })
            .replace("{company}", company);
        let state_schema = parse_table(&default_object, "_")?.schema;
        let default_mode = raw.defaults.mode.unwrap_or(SyncMode::Incremental);

        let selected: BTreeMap<String, Option<RawStreamOptions>> = raw
            .streams
            .clone()
            .unwrap_or_else(|| BTreeMap::from([("*".to_owned(), None)]));
        let everything = selected.contains_key("*");
        let wildcard = selected.get("*").cloned().flatten().unwrap_or_default();
        for name in selected.keys().filter(|n| *n != "*") {
            if catalog::find(name).is_none() {
                return Err(unknown_stream(name, "streams"));
            }
        }
        let hash_salt = raw
            .hash_salt
            .as_ref()
            .map(|salt| expand(salt.expose_secret(), "hash_salt"))
            .transpose()?;
        let mut streams = Vec::new();
        let mut objects: Vec<String> = Vec::new();
        for def in catalog::CATALOG {
            let options = match selected.get(def.name) {
                Some(options) => options.clone().unwrap_or_default(),
                None if everything && !def.opt_in => wildcard.clone(),
                None => continue,
            };
            let mode = options.mode.or(wildcard.mode).unwrap_or(default_mode);
            let (object, object_key) = match (&options.object, &wildcard.object) {
                (Some(template), _) => (
                    template.replace("{company}", company),
                    format!("streams.{}.object", def.name),
                ),
                (None, Some(template)) => (
                    template.replace("{company}", company),
                    "streams.'*'.object".to_owned(),
                ),
                (None, None) => (default_object.clone(), default_object_key.to_owned()),
            };
            let history = options
                .history
                .or(wildcard.history)
                .or(raw.defaults.history)
                .unwrap_or(false);
            if history && def.version_field().is_none() && options.history == Some(true) {
                return Err(error(format!(
                    "streams.{}.history: {} has no change time to version its records by; remove `history` from it",
                    def.name, def.name
                )));
            }
            let reconcile = options
                .reconcile_deletes_every
                .clone()
                .or_else(|| wildcard.reconcile_deletes_every.clone())
                .or_else(|| raw.defaults.reconcile_deletes_every.clone());
            let reconcile_deletes_every = match reconcile {
                None => Some(DEFAULT_RECONCILE_EVERY),
                Some(text) => parse_every(
                    &text,
                    &format!("streams.{}.reconcile_deletes_every", def.name),
                )?,
            };
            let own = selected.contains_key(def.name).then_some(&options);
            let refresh_every = refresh_every(def, mode, own, &wildcard, &raw.defaults)?;
            let controls = controls(
                def,
                &options,
                &wildcard,
                &raw.defaults,
                hash_salt.as_deref(),
            )?;
            let priority = options
                .priority
                .as_deref()
                .or(wildcard.priority.as_deref())
                .or(raw.defaults.priority.as_deref());
            let recent_first = match priority {
                None | Some("oldest-first") => false,
                Some("recent-first") if def.reads_newest_first() => true,
                // A default for every stream applies where it can.
                Some("recent-first") if options.priority.is_none() => false,
                Some("recent-first") => {
                    return Err(error(format!(
                        "streams.{}.priority: {} cannot be read newest first (only v2 lists with a change filter can: deals, persons, organizations, activities, products, deals_archived); remove `priority`",
                        def.name, def.name
                    )));
                }
                Some(other) => {
                    return Err(error(format!(
                        "streams.{}.priority `{other}`: write `recent-first` or `oldest-first`",
                        def.name
                    )));
                }
            };
            let table =
                parse_table(&object, def.name).map_err(|e| error(format!("{object_key}: {e}")))?;
            // A longer name would be stored under another name than the one written.
            if let Some(limit) = target.name_limit() {
                for name in [&table.schema, &table.name] {
                    if name.len() > limit {
                        return Err(error(format!(
                            "{object_key}: `{name}` is {} bytes long, and {} keeps at most {limit} bytes of a name: use a shorter one",
                            name.len(),
                            target.name()
                        )));
                    }
                }
            }
            objects.push(object_key);
            streams.push(StreamChoice {
                recent_first,
                def,
                mode,
                table,
                history: history && def.version_field().is_some(),
                reconcile_deletes_every,
                refresh_every,
                controls,
            });
        }

        refuse_shared_tables(&streams, &objects)?;
        cover_nested_rows(&mut streams);

        let concurrency = raw.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if concurrency == 0 {
            return Err(error("concurrency must be at least 1"));
        }
        let request_timeout = source.request_timeout_seconds.unwrap_or(60);
        if !(1..=3600).contains(&request_timeout) {
            return Err(error(format!(
                "source.request_timeout_seconds is {request_timeout}: use 1 to 3600 seconds (default 60)"
            )));
        }
        let budget_reserve_percent = source
            .budget_reserve_percent
            .unwrap_or(DEFAULT_BUDGET_RESERVE_PERCENT);
        if budget_reserve_percent > 90 {
            return Err(error(format!(
                "source.budget_reserve_percent is {budget_reserve_percent}: use 0 to 90 (percent of the daily token budget left unspent; default {DEFAULT_BUDGET_RESERVE_PERCENT})"
            )));
        }
        Ok(Config {
            company: company.to_owned(),
            client: ClientConfig {
                base_url,
                credentials,
                request_timeout: Duration::from_secs(request_timeout),
                max_attempts: 8,
                max_tokens: source.max_tokens,
                budget_reserve_percent,
                user_agent: format!("pipedrive-sync/{}", env!("CARGO_PKG_VERSION")),
            },
            target,
            state_schema,
            streams,
            start_date,
            lookback,
            concurrency,
            allow_other_company: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Config, ConfigError> {
        Config::parse(yaml, "test.yaml", Path::new("."))
    }

    #[test]
    fn minimal_config_selects_every_stream_but_the_opt_in_ones() {
        let config = parse("source: {api_token: abc, company_domain: acme}\n").unwrap();
        assert_eq!(
            config.client.base_url.as_str(),
            "https://acme.pipedrive.com/"
        );
        let selected: Vec<&str> = config.streams.iter().map(|s| s.def.name).collect();
        let default: Vec<&str> = catalog::CATALOG
            .iter()
            .filter(|d| !d.opt_in)
            .map(|d| d.name)
            .collect();
        assert_eq!(selected, default);
        assert!(!selected.contains(&"deal_flow"));
        // Named, an opt-in stream is synced; `'*'` does not add it.
        let named = parse(
            "source: {api_token: abc, company_domain: acme}\nstreams: {'*': {}, deal_flow: {}}\n",
        )
        .unwrap();
        assert_eq!(named.streams.len(), default.len() + 1);
        assert_eq!(config.state_schema, "main");
        assert!(format!("{:?}", config.target).starts_with("DuckDbConfig"));
    }

    fn parse_all(yaml: &str) -> Result<Vec<Config>, ConfigError> {
        Config::parse_all(yaml, "test.yaml", Path::new("."))
    }

    #[test]
    fn several_companies_get_their_own_schema_state_and_client() {
        let companies = parse_all(
            "sources:\n  - {name: acme, api_token: a, company_domain: acme}\n  - {api_token: b, company_domain: globex, max_tokens: 10}\ntarget: {type: postgres, url: 'postgres://h/db'}\nstreams:\n  deals: {object: 'crm_{company}.pd_{stream_name}'}\n  persons:\n",
        )
        .unwrap();
        let seen: Vec<_> = companies
            .iter()
            .map(|c| {
                (
                    c.company.as_str(),
                    c.state_schema.as_str(),
                    c.streams
                        .iter()
                        .map(|s| s.table.to_string())
                        .collect::<Vec<_>>(),
                    c.client.max_tokens,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "acme",
                    "acme_pipedrive",
                    vec![
                        "crm_acme.pd_deals".to_owned(),
                        "acme_pipedrive.persons".to_owned()
                    ],
                    None
                ),
                (
                    "globex",
                    "globex_pipedrive",
                    vec![
                        "crm_globex.pd_deals".to_owned(),
                        "globex_pipedrive.persons".to_owned()
                    ],
                    Some(10)
                ),
            ]
        );
        // One company: `{company}` works too, and the single-company defaults are unchanged.
        let one = parse(
            "source: {api_token: a, company_domain: acme}\ntarget: {path: '{company}.duckdb'}\n",
        )
        .unwrap();
        assert_eq!(one.company, "acme");
        assert_eq!(one.state_schema, "main");
        assert!(format!("{:?}", one.target).contains("acme.duckdb"));
        // Files: a directory per company.
        let files = parse_all(
            "sources:\n  - {name: a, api_token: x, base_url: 'http://h:1'}\n  - {name: b, api_token: y, base_url: 'http://h:2'}\ntarget: {type: jsonl, path: out}\n",
        )
        .unwrap();
        assert!(format!("{:?}", files[1].target).contains("out/b"));
    }

    #[test]
    fn company_mistakes_name_the_fix() {
        let message = |yaml: &str| parse_all(yaml).unwrap_err().to_string();
        assert!(message("sources:\n  - {api_token: a, base_url: 'http://h:1'}\n  - {api_token: b, base_url: 'http://h:2'}\n").contains("distinct `name`"));
        assert!(message("sources:\n  - {name: a, api_token: x, company_domain: a}\n  - {name: b, api_token: y, company_domain: b}\ntarget: {schema: crm}\n").contains("{company}"));
        assert!(
            message("sources:\n  - {name: 'a b', api_token: x, company_domain: a}\n")
                .contains("letters, digits")
        );
        assert!(
            message("sources:\n  - {name: a, company_domain: a}\n")
                .contains("sources[0] needs api_token")
        );
        assert!(
            message("source: {api_token: a, company_domain: a}\nsources: []\n").contains("both")
        );
        assert!(message("sources: []\n").contains("`sources:`"));
        let two = parse_all("sources:\n  - {name: a, api_token: x, company_domain: a}\n  - {name: b, api_token: y, company_domain: b}\n").unwrap();
        assert!(
            Config::pick(two, None)
                .unwrap_err()
                .to_string()
                .contains("--company")
        );
    }

    #[test]
    fn refresh_every_applies_to_streams_read_in_full_and_is_refused_on_one_read_by_changes() {
        let config = parse(
            "source: {api_token: abc, base_url: 'http://127.0.0.1:1'}\n\
             defaults: {refresh_every: 6h}\n\
             streams:\n  deals:\n  pipelines:\n  currencies: {refresh_every: 30m}\n  persons: {mode: full-refresh}\n",
        )
        .unwrap();
        let every: Vec<_> = config
            .streams
            .iter()
            .map(|s| (s.def.name, s.refresh_every.map(|d| d.as_secs())))
            .collect();
        assert_eq!(
            every,
            [
                ("deals", None),
                ("persons", Some(6 * 3600)),
                ("pipelines", Some(6 * 3600)),
                ("currencies", Some(1800)),
            ]
        );
        let source = "source: {api_token: abc, base_url: 'http://127.0.0.1:1'}\n";
        for (yaml, expected) in [
            (
                "streams:\n  deals: {refresh_every: 6h}\n",
                "streams.deals.refresh_every: deals is read by its changes",
            ),
            (
                "defaults: {refresh_every: never}\n",
                "defaults.refresh_every: `never` would keep the first read for good",
            ),
            (
                "streams:\n  '*': {refresh_every: 6 hours}\n",
                "streams.'*'.refresh_every: `6 hours` is not an interval",
            ),
        ] {
            let message = parse(&format!("{source}{yaml}")).unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn relative_paths_are_anchored_beside_the_config_file() {
        assert_eq!(base_dir(Path::new("c.yaml")), Path::new("."));
        assert_eq!(base_dir(Path::new("conf/c.yaml")), Path::new("conf"));
        assert_eq!(base_dir(Path::new("/etc/c.yaml")), Path::new("/etc"));
    }

    #[test]
    fn per_stream_options_override_defaults() {
        let config = parse(
            "source: {api_token: abc, base_url: 'http://127.0.0.1:1'}\n\
             defaults: {mode: full-refresh, object: 'crm.pd_{stream_name}'}\n\
             streams:\n  deals: {mode: incremental}\n  pipelines:\n",
        )
        .unwrap();
        let names: Vec<_> = config
            .streams
            .iter()
            .map(|s| (s.def.name, s.mode, s.table.to_string()))
            .collect();
        assert_eq!(
            names,
            [
                ("deals", SyncMode::Incremental, "crm.pd_deals".to_owned()),
                (
                    "pipelines",
                    SyncMode::FullRefresh,
                    "crm.pd_pipelines".to_owned()
                )
            ]
        );
    }

    #[test]
    fn mistakes_name_their_cause() {
        let message = |yaml: &str| parse(yaml).unwrap_err().to_string();
        assert!(
            message("source: {api_token: a, company_domain: x}\nstreams: {dealz: }\n")
                .contains("did you mean deals")
        );
        assert!(
            message("source: {api_token: a, company_domain: x, colour: red}\n").contains("colour")
        );
        assert!(
            message("source: {api_token: a, company_domain: 'x y'}\n").contains("company_domain")
        );
        assert!(
            message("source: {api_token: '${PDS_TEST_UNSET_VARIABLE}', company_domain: x}\n")
                .contains("PDS_TEST_UNSET_VARIABLE")
        );
        assert!(
            message("source: {api_token: a, company_domain: x, start_date: 2999-01-01}\n")
                .contains("future")
        );
        assert!(
            message("source: {api_token: a, company_domain: x, start_date: 2024-13-01}\n")
                .contains("not a date")
        );
        assert!(message("source: {company_domain: x}\n").contains("api_token"));
        assert!(
            message("source: {api_token: a, company_domain: x}\ndefaults: {object: nodot}\n")
                .contains("schema.table")
        );
        let broken = message("source:\n  api_token: [unclosed\n");
        assert!(broken.contains("test.yaml"), "{broken}");
        assert!(
            broken.contains("fix test.yaml at line 2 column 14"),
            "{broken}"
        );
        assert!(
            message("source: {api_token: a, company_domain: x, request_timeout_seconds: 0}\n")
                .contains("1 to 3600")
        );
    }

    #[test]
    fn streams_sharing_a_table_are_refused_naming_the_key() {
        let message = |yaml: &str| parse(yaml).unwrap_err().to_string();
        let shared = message(
            "source: {api_token: a, company_domain: x}\nstreams:\n  deals: {object: main.crm}\n  persons: {object: main.crm}\n",
        );
        assert!(
            shared.contains("`deals` and `persons` would both load into the table main.crm"),
            "{shared}"
        );
        assert!(shared.contains("an `object` of its own"), "{shared}");
        let template = message(
            "source: {api_token: a, company_domain: x}\ndefaults: {object: crm.deals}\nstreams:\n  deals:\n  notes:\n",
        );
        assert!(
            template.contains("put `{stream_name}` in defaults.object"),
            "{template}"
        );
        // A history table counts too.
        let history = message(
            "source: {api_token: a, company_domain: x}\nstreams:\n  deals: {history: true}\n  notes: {object: 'main.DEALS_history'}\n",
        );
        assert!(history.contains("main.DEALS_history"), "{history}");
        // The same template without `{stream_name}` for one stream is fine.
        parse("source: {api_token: a, company_domain: x}\ndefaults: {object: crm.deals}\nstreams:\n  deals:\n").unwrap();
    }

    #[test]
    fn addresses_are_taken_as_people_copy_them() {
        for domain in [
            "acme",
            "acme.pipedrive.com",
            "http://acme.pipedrive.com",
            "https://acme.pipedrive.com/",
            "https://acme.pipedrive.com/pipeline/1",
        ] {
            let config = parse(&format!(
                "source: {{api_token: a, company_domain: '{domain}'}}\n"
            ))
            .unwrap();
            assert_eq!(
                config.client.base_url.as_str(),
                "https://acme.pipedrive.com/",
                "{domain}"
            );
            assert_eq!(config.company, "acme", "{domain}");
        }
        for (url, expected) in [
            ("http://127.0.0.1:9/api/v2", "http://127.0.0.1:9/"),
            ("http://127.0.0.1:9/api/v1/", "http://127.0.0.1:9/"),
            (
                "https://proxy.example/pd/api/v2",
                "https://proxy.example/pd",
            ),
            ("https://proxy.example/pd", "https://proxy.example/pd"),
        ] {
            let config = parse(&format!("source: {{api_token: a, base_url: '{url}'}}\n")).unwrap();
            assert_eq!(config.client.base_url.as_str(), expected, "{url}");
        }
    }

    #[test]
    fn streams_may_be_listed() {
        let config =
            parse("source: {api_token: a, company_domain: x}\nstreams: [deals, persons]\n")
                .unwrap();
        let names: Vec<_> = config.streams.iter().map(|s| s.def.name).collect();
        assert_eq!(names, ["deals", "persons"]);
        let config =
            parse("source: {api_token: a, company_domain: x}\nstreams:\n  - notes\n").unwrap();
        assert_eq!(config.streams.len(), 1);
        let unknown = parse("source: {api_token: a, company_domain: x}\nstreams: [dealz]\n")
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("did you mean deals"), "{unknown}");
        let bad_key = parse(
            "source: {api_token: a, company_domain: x}\nstreams:\n  deals: {moode: full-refresh}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(bad_key.contains("moode"), "{bad_key}");
    }

    #[test]
    fn schema_names_are_checked_where_they_are_written() {
        let message = |yaml: &str| parse(yaml).unwrap_err().to_string();
        let dotted = message(
            "source: {api_token: a, company_domain: x}\ntarget: {schema: Newb_Mixed.Case}\n",
        );
        assert!(
            dotted.starts_with("target.schema `Newb_Mixed.Case`"),
            "{dotted}"
        );
        let long = "s".repeat(75);
        let too_long = message(&format!(
            "source: {{api_token: a, company_domain: x}}\ntarget: {{type: postgres, url: 'postgres://h/db', schema: {long}}}\n"
        ));
        assert!(too_long.contains("target.schema"), "{too_long}");
        assert!(
            too_long.contains("75 bytes") && too_long.contains("at most 63"),
            "{too_long}"
        );
        // DuckDB has no such limit.
        parse(&format!(
            "source: {{api_token: a, company_domain: x}}\ntarget: {{schema: {long}}}\n"
        ))
        .unwrap();
    }

    #[test]
    fn hashing_an_array_field_covers_its_rows() {
        let config = parse(
            "source: {api_token: a, company_domain: x}\nhash_salt: pepper\nstreams:\n  persons: {hash_columns: [emails], exclude_columns: [phones]}\n  person_emails:\n  person_phones:\n",
        )
        .unwrap();
        let controls = |name: &str| {
            &config
                .streams
                .iter()
                .find(|s| s.def.name == name)
                .unwrap()
                .controls
        };
        assert_eq!(controls("person_emails").hash, ["*"]);
        assert_eq!(controls("person_emails").salt, "pepper");
        assert_eq!(controls("person_phones").exclude, ["*"]);
        assert_eq!(controls("person_phones").keys, ["person_id", "position"]);
    }

    /// Every config example of the README parses, the commented-out OAuth alternative too.
    #[test]
    fn the_documented_examples_parse() {
        // The README's examples, and the many-companies one in docs/operations.md.
        let readme = ["/../../README.md", "/../../docs/operations.md"]
            .iter()
            .map(|page| {
                // At run time: a shared target directory may reuse this binary for another
                // checkout, whose pages are the ones to read.
                let dir = std::env::var("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
                std::fs::read_to_string(format!("{dir}{page}")).unwrap()
            })
            .collect::<String>();
        // `${VAR}` needs the variable; any value will do here.
        let fill = |yaml: &str| {
            let mut out = String::new();
            let mut rest = yaml;
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let end = rest[start..].find('}').unwrap() + start;
                out.push_str("value");
                rest = &rest[end + 1..];
            }
            out + rest
        };
        let mut examples = 0;
        for block in readme.split("```yaml\n").skip(1) {
            let yaml = block.split("```").next().unwrap();
            if !(yaml.starts_with("source:") || yaml.starts_with("sources:")) {
                continue;
            }
            // As written (YAML is read before variables are expanded), then resolved.
            let parses = |yaml: &str| {
                serde_saphyr::from_str::<RawConfig>(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
                Config::parse_all(&fill(yaml), "README", Path::new("."))
                    .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
            };
            parses(yaml);
            examples += 1;
            for line in yaml
                .lines()
                .filter(|line| line.trim_start().starts_with("# oauth:"))
            {
                parses(&format!(
                    "source:\n  company_domain: x\n  {}\n",
                    line.trim_start().trim_start_matches("# ")
                ));
                examples += 1;
            }
        }
        assert_eq!(examples, 3);
    }

    fn refresh_token(dir: &Path, configured: &str) -> String {
        use secrecy::ExposeSecret;
        let yaml = format!(
            "source:\n  company_domain: x\n  oauth: {{client_id: c, client_secret: s, refresh_token: '{configured}', token_store: store}}\n"
        );
        let config = Config::parse(&yaml, "test.yaml", dir).unwrap();
        match config.client.credentials {
            Credentials::OAuth(oauth) => oauth.refresh_token.expose_secret().to_owned(),
            Credentials::ApiToken(_) => unreachable!("an OAuth config"),
        }
    }

    #[test]
    fn a_rotated_token_is_used_until_the_configured_one_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        assert_eq!(refresh_token(dir.path(), "first"), "first");
        write_token_store(
            &store,
            Some(&fingerprint("first")),
            &SecretString::from("rotated".to_owned()),
        )
        .unwrap();
        assert_eq!(refresh_token(dir.path(), "first"), "rotated");
        // Re-authorised: the new configured token wins over the one rotated from the old.
        assert_eq!(refresh_token(dir.path(), "second"), "second");
        std::fs::write(&store, "legacy\n").unwrap();
        assert_eq!(refresh_token(dir.path(), "first"), "legacy");
    }

    #[cfg(unix)]
    #[test]
    fn the_token_store_is_private_even_over_a_loose_leftover_temporary() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let leftover = store.with_extension("tmp");
        std::fs::write(&leftover, "old").unwrap();
        std::fs::set_permissions(&leftover, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_token_store(&store, None, &SecretString::from("token".to_owned())).unwrap();
        let mode = std::fs::metadata(&store).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&store).unwrap(), "token\n");
    }

    #[test]
    fn debug_output_of_raw_and_resolved_configs_holds_no_secret() {
        let secrets = ["tok-7f3a", "cs-91b2", "rt-5c8d", "pw-44e0", "salt-0d1e"];
        let token = format!(
            "source: {{api_token: {}, company_domain: acme}}\nhash_salt: {}\ntarget: {{type: postgres, url: 'postgres://loader:{}@db:5432/crm'}}\n",
            secrets[0], secrets[4], secrets[3]
        );
        let oauth = format!(
            "source: {{company_domain: acme, oauth: {{client_id: app, client_secret: {}, refresh_token: {}}}}}\n",
            secrets[1], secrets[2]
        );
        for yaml in [&token, &oauth] {
            let raw: RawConfig = serde_saphyr::from_str(yaml).unwrap();
            let printed = format!("{raw:?}");
            for secret in secrets {
                assert!(!printed.contains(secret), "{secret} in {printed}");
            }
        }
        let config = parse(&token).unwrap();
        let printed = format!("{:?}", config.target);
        assert!(!printed.contains(secrets[3]), "{printed}");
        assert!(printed.contains("loader:redacted@db"), "{printed}");
    }
}
