//! Singer tap and Airbyte source modes, so Meltano and Airbyte can run pipedrive-sync. Both
//! read a JSON config, build the same sync plan as `sync`, and hand the engine a destination
//! that writes protocol messages to stdout; everything meant for people goes to stderr.

use crate::fail::outcome;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use pipedrive_client::Client;
use pipedrive_config::{Config, RawConfig};
use pipedrive_destinations::json_schema::DeclaredStream;
use pipedrive_destinations::{airbyte, singer};
use pipedrive_engine::declared::{FieldDefinitions, stream_columns};
use pipedrive_engine::{Destination, Outcome, StreamDef, SyncMode, SyncReport, SyncState, catalog};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Fail, exit};

#[derive(Args)]
pub struct SingerArgs {
    /// Config JSON: api_token, company_domain or base_url, start_date, max_tokens, concurrency.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the catalog (every stream with its columns, key and replication metadata) and exit.
    /// With --config, custom fields are read from the company's field definitions.
    #[arg(long)]
    discover: bool,
    /// A catalog whose selected streams to sync (default: every stream that is not opt-in).
    #[arg(long, visible_alias = "properties")]
    catalog: Option<PathBuf>,
    /// The value of the last STATE message of an earlier run: `{"bookmarks": {...}}`.
    #[arg(long)]
    state: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum AirbyteCommand {
    /// Print the connector's spec (the config it takes).
    Spec,
    /// Check the credentials and company domain.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the catalog of streams with their columns.
    Discover {
        /// The company whose custom fields to declare; without it, built-in columns only.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Sync the streams of a configured catalog.
    Read {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        catalog: PathBuf,
        /// The state messages Airbyte kept from the previous sync.
        #[arg(long)]
        state: Option<PathBuf>,
    },
}

/// The config both protocols pass: the `source` keys of the YAML config, flattened.
#[derive(Debug, Deserialize)]
struct ProtocolConfig {
    api_token: Option<String>,
    company_domain: Option<String>,
    base_url: Option<String>,
    start_date: Option<String>,
    max_tokens: Option<u64>,
    concurrency: Option<usize>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

fn usage(message: String) -> Fail {
    Fail {
        code: exit::USAGE,
        message,
    }
}

fn read_file(path: &Path, what: &str) -> Result<String, Fail> {
    std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read the {what} {}: {e}", path.display())))
}

/// Resolves a protocol config file into the same `Config` the YAML file gives, with `streams`
/// selected in their modes. Table names are placeholders: no table is written.
fn load_config(path: &Path, streams: &[(&'static str, SyncMode)]) -> Result<Config, Fail> {
    let text = read_file(path, "config file")?;
    let config: ProtocolConfig = serde_json::from_str(&text).map_err(|e| {
        usage(format!(
            "the config file {} is not a JSON object of settings: {e}",
            path.display()
        ))
    })?;
    for key in config.other.keys() {
        tracing::warn!("config key `{key}` is not used by pipedrive-sync; it is ignored");
    }
    let present = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
    let selected: serde_json::Map<String, Value> = streams
        .iter()
        .map(|(name, mode)| ((*name).to_owned(), json!({ "mode": mode })))
        .collect();
    let raw = json!({
        "source": {
            "api_token": config.api_token,
            "company_domain": present(config.company_domain),
            "base_url": present(config.base_url),
            "start_date": present(config.start_date),
            "max_tokens": config.max_tokens,
        },
        "defaults": {"object": "protocol.{stream_name}"},
        "streams": selected,
        "concurrency": config.concurrency,
    });
    let raw: RawConfig = serde_json::from_value(raw).map_err(|e| usage(format!("config: {e}")))?;
    let base_dir = pipedrive_config::base_dir(path);
    // Messages name the YAML keys (`source.api_token`); here the keys stand at the top level.
    Config::resolve(raw, &base_dir).map_err(|e| {
        usage(
            e.to_string()
                .replace("source needs", "the config needs")
                .replace("source.", ""),
        )
    })
}

/// Runs the engine with a protocol destination, stopping cleanly on SIGINT/SIGTERM. The field
/// definitions are read first, so `destination` can declare every column before any record.
async fn run_sync(
    config: Config,
    destination: impl FnOnce(&FieldDefinitions) -> Box<dyn Destination>,
) -> Result<SyncReport, Fail> {
    let client = Client::new(config.client.clone())?;
    let plan = config.plan();
    let definitions = pipedrive_engine::read_field_definitions(
        &client,
        pipedrive_engine::definitions_wanted(&plan),
    )
    .await;
    let destination = destination(&definitions);
    let stop = crate::signals::stop_on_signal("emitting their state");
    let observer = Arc::new(crate::progress::Progress::new(
        client.clone(),
        None,
        Default::default(),
    ));
    let report = pipedrive_engine::run_with_definitions(
        &client,
        destination,
        plan,
        observer,
        stop,
        Some(definitions),
    )
    .await?;
    eprint!("{}", crate::progress::summary(&report, &client));
    Ok(report)
}

/// The field definitions `discover` declares custom fields from: every stream's, read with the
/// config's credentials; none without a config.
async fn discover_definitions(config: Option<&Path>) -> Result<FieldDefinitions, Fail> {
    let Some(path) = config else {
        tracing::warn!("no --config: custom fields are not declared (pass --config to read them)");
        return Ok(FieldDefinitions::new());
    };
    let config = load_config(path, &[])?;
    let client = Client::new(config.client.clone())?;
    let mut wanted: Vec<&'static StreamDef> = catalog::CATALOG
        .iter()
        .filter_map(|def| def.custom_fields.and_then(|c| catalog::find(c.defined_by)))
        .collect();
    wanted.sort_by_key(|d| d.name);
    wanted.dedup_by_key(|d| d.name);
    Ok(pipedrive_engine::read_field_definitions(&client, wanted).await)
}

/// Each selected stream's declared columns (custom ones named as `state` assigned them) and
/// the columns its consumer left out.
fn declared_streams(
    definitions: &FieldDefinitions,
    state: &SyncState,
    selected: &[(&'static str, BTreeSet<String>)],
) -> HashMap<String, DeclaredStream> {
    selected
        .iter()
        .filter_map(|(name, excluded)| {
            let def = catalog::find(name)?;
            let columns = stream_columns(def, definitions, state.get(*name));
            Some((
                (*name).to_owned(),
                DeclaredStream::new(columns, excluded.clone()),
            ))
        })
        .collect()
}

fn stream_name(name: &str, whence: &str) -> Result<&'static str, Fail> {
    catalog::find(name).map(|d| d.name).ok_or_else(|| {
        usage(format!(
            "{whence}: unknown stream `{name}`; run discover again for the current list of streams"
        ))
    })
}

/// `pipedrive-sync singer`: a Singer tap.
pub async fn singer(args: SingerArgs) -> Result<(), Fail> {
    if args.discover {
        let definitions = discover_definitions(args.config.as_deref()).await?;
        let catalog = singer::discover(|def| stream_columns(def, &definitions, None));
        let catalog = serde_json::to_string_pretty(&catalog).expect("the catalog is JSON");
        println!("{catalog}");
        return Ok(());
    }
    let config_path = args.config.ok_or_else(|| {
        usage("--config is required: a JSON file with api_token and company_domain".to_owned())
    })?;
    let selected: Vec<(&'static str, SyncMode, BTreeSet<String>)> = match &args.catalog {
        None => catalog::CATALOG
            .iter()
            .filter(|d| !d.opt_in)
            .map(|d| (d.name, SyncMode::Incremental, BTreeSet::new()))
            .collect(),
        Some(path) => {
            let text = read_file(path, "catalog")?;
            let parsed: singer::Catalog = serde_json::from_str(&text).map_err(|e| {
                usage(format!(
                    "the catalog {} is not a Singer catalog: {e}",
                    path.display()
                ))
            })?;
            parsed
                .selected()
                .into_iter()
                .map(|s| {
                    let mode = if s.full_table {
                        SyncMode::FullRefresh
                    } else {
                        SyncMode::Incremental
                    };
                    Ok((stream_name(&s.stream, "catalog")?, mode, s.excluded))
                })
                .collect::<Result<_, Fail>>()?
        }
    };
    let streams: Vec<(&'static str, SyncMode)> = selected
        .iter()
        .map(|(name, mode, _)| (*name, *mode))
        .collect();
    let excluded: Vec<(&'static str, BTreeSet<String>)> = selected
        .into_iter()
        .map(|(name, _, excluded)| (name, excluded))
        .collect();
    let state = match &args.state {
        Some(path) => singer::parse_state(&read_file(path, "state file")?)
            .map_err(|e| usage(e.to_string()))?,
        None => SyncState::new(),
    };
    let config = load_config(&config_path, &streams)?;
    if config.streams.is_empty() {
        tracing::warn!("no stream is selected in the catalog: nothing to sync");
    }
    let report = run_sync(config, |definitions| {
        let declared = declared_streams(definitions, &state, &excluded);
        Box::new(singer::Singer::new(std::io::stdout(), state, declared))
    })
    .await?;
    outcome(&report)
}

fn emit(message: &airbyte::Message<'_>) {
    let mut out = std::io::stdout().lock();
    // stdout gone means Airbyte stopped listening; there is no one left to tell.
    let _ = out.write_all(&message.to_line());
    let _ = out.flush();
}

fn log(level: airbyte::Level, message: String) {
    emit(&airbyte::Message::Log {
        log: airbyte::Log { level, message },
    });
}

/// Whose move a failure is, by its exit code.
fn failure_type(code: u8) -> airbyte::FailureType {
    match code {
        exit::USAGE | exit::AUTH => airbyte::FailureType::ConfigError,
        exit::TEMPORARY => airbyte::FailureType::TransientError,
        _ => airbyte::FailureType::SystemError,
    }
}

/// `pipedrive-sync airbyte ...`: an Airbyte source. A failure is also told as an error trace.
pub async fn airbyte(command: AirbyteCommand) -> Result<(), Fail> {
    let result = match command {
        AirbyteCommand::Spec => {
            emit(&airbyte::Message::Spec {
                spec: airbyte::spec(),
            });
            Ok(())
        }
        AirbyteCommand::Check { config } => {
            airbyte_check(&config).await;
            Ok(())
        }
        AirbyteCommand::Discover { config } => {
            match discover_definitions(config.as_deref()).await {
                Ok(definitions) => {
                    emit(&airbyte::Message::Catalog {
                        catalog: airbyte::discover(|def| stream_columns(def, &definitions, None)),
                    });
                    Ok(())
                }
                Err(fail) => Err(fail),
            }
        }
        AirbyteCommand::Read {
            config,
            catalog,
            state,
        } => airbyte_read(&config, &catalog, state.as_deref()).await,
    };
    if let Err(fail) = &result {
        emit(&airbyte::error_trace(
            fail.message.clone(),
            failure_type(fail.code),
        ));
    }
    result
}

/// Reports the outcome as a connection status: a failed check is an answer, not an error.
async fn airbyte_check(path: &Path) {
    let status = match check(path).await {
        Ok(who) => airbyte::ConnectionStatus {
            status: airbyte::Status::Succeeded,
            message: Some(who),
        },
        Err(fail) => airbyte::ConnectionStatus {
            status: airbyte::Status::Failed,
            message: Some(fail.message),
        },
    };
    emit(&airbyte::Message::ConnectionStatus {
        connection_status: status,
    });
}

async fn check(path: &Path) -> Result<String, Fail> {
    let config = load_config(path, &[])?;
    let client = Client::new(config.client.clone())?;
    let user = pipedrive_engine::current_user(&client).await?;
    let text = |key: &str| {
        user.get(key)
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    Ok(format!(
        "signed in as {} to {}",
        text("name"),
        text("company_name")
    ))
}

async fn airbyte_read(
    config: &Path,
    catalog_path: &Path,
    state: Option<&Path>,
) -> Result<(), Fail> {
    let text = read_file(catalog_path, "configured catalog")?;
    let configured: airbyte::ConfiguredCatalog = serde_json::from_str(&text).map_err(|e| {
        usage(format!(
            "the configured catalog {} is not an Airbyte configured catalog: {e}",
            catalog_path.display()
        ))
    })?;
    let streams: Vec<(&'static str, SyncMode)> = configured
        .streams
        .iter()
        .map(|s| {
            let mode = match s.sync_mode {
                airbyte::SyncMode::Incremental => SyncMode::Incremental,
                airbyte::SyncMode::FullRefresh => SyncMode::FullRefresh,
            };
            Ok((stream_name(&s.stream.name, "configured catalog")?, mode))
        })
        .collect::<Result<_, Fail>>()?;
    let state = match state {
        Some(path) => airbyte::parse_state(&read_file(path, "state file")?)
            .map_err(|e| usage(e.to_string()))?,
        None => SyncState::new(),
    };
    let config = load_config(config, &streams)?;
    for stream in &config.streams {
        emit(&airbyte::status_trace(
            stream.def.name,
            airbyte::StreamStatus::Started,
        ));
    }
    let report = run_sync(config, |definitions| {
        // The configured schema selects columns by name: compare it with the declared ones.
        let declared = configured
            .streams
            .iter()
            .filter_map(|configured| {
                let def = catalog::find(&configured.stream.name)?;
                let columns = stream_columns(def, definitions, state.get(def.name));
                let excluded = configured.excluded(def, &columns);
                Some((def.name.to_owned(), DeclaredStream::new(columns, excluded)))
            })
            .collect();
        Box::new(airbyte::Airbyte::new(std::io::stdout(), state, declared))
    })
    .await?;
    for stream in &report.streams {
        let status = match &stream.outcome {
            Outcome::Complete => airbyte::StreamStatus::Complete,
            Outcome::Skipped(reason) => {
                log(
                    airbyte::Level::Warn,
                    format!("{}: skipped: {reason}", stream.stream),
                );
                airbyte::StreamStatus::Complete
            }
            Outcome::Incomplete { message, .. } => {
                log(
                    airbyte::Level::Error,
                    format!("{}: incomplete: {message}", stream.stream),
                );
                airbyte::StreamStatus::Incomplete
            }
        };
        emit(&airbyte::status_trace(stream.stream, status));
    }
    let records: u64 = report.streams.iter().map(|s| s.records).sum();
    log(
        airbyte::Level::Info,
        format!(
            "read {records} records from {} streams",
            report.streams.len()
        ),
    );
    outcome(&report)
}
