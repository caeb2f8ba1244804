//! `sync --follow`: a company kept seconds behind by webhooks, polled as a safety net.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pipedrive_client::Client;
use pipedrive_config::Config;
use pipedrive_engine::follow::receiver::Credentials;
use pipedrive_engine::follow::{
    FollowError, FollowOptions, FollowReport, OpenDestination, follow as follow_company,
};
use pipedrive_engine::{Destination, DestinationError};
use tokio::sync::Mutex;

use crate::fail::{Fail, exit};
use crate::progress::{self, thousands};
use crate::signals::stop_on_signal;
use crate::targets::open_destination;

/// How often the safety-net sync runs unless `--every` says otherwise.
pub(crate) const DEFAULT_EVERY: Duration = Duration::from_secs(3600);
/// The user deliveries authenticate as.
const WEBHOOK_USER: &str = "pipedrive-sync";
/// Sets the webhooks' HTTP Basic password; without it each start makes up a new one.
const PASSWORD_ENV: &str = "PIPEDRIVE_WEBHOOK_PASSWORD";

pub(crate) struct FollowArgs {
    pub(crate) listen: Option<String>,
    pub(crate) public_url: Option<String>,
    pub(crate) every: Option<Duration>,
}

fn usage(message: String) -> Fail {
    Fail {
        code: exit::USAGE,
        message,
    }
}

/// Each safety-net sync and the applier get a handle of their own, forked from one opened
/// first: it holds the target's one-writer lock for the whole session.
struct Opener {
    primary: Mutex<Box<dyn Destination>>,
}

#[async_trait]
impl OpenDestination for Opener {
    async fn open(&self) -> Result<Box<dyn Destination>, DestinationError> {
        let mut primary = self.primary.lock().await;
        let describe = primary.describe();
        primary.fork().await?.ok_or_else(|| {
            DestinationError::new(format!(
                "{describe} cannot be opened twice, which follow mode needs"
            ))
        })
    }
}

pub(crate) async fn follow(companies: Vec<Config>, args: FollowArgs) -> Result<(), Fail> {
    let [config]: [Config; 1] = companies.try_into().map_err(|companies: Vec<Config>| {
        usage(format!(
            "--follow follows one company, and the config has {}: name one with --company",
            companies.len()
        ))
    })?;
    if !config.target.reads_back() {
        return Err(usage(format!(
            "--follow writes to DuckDB or PostgreSQL, which it reads back so that a late event never replaces a newer row, and {} cannot be read back; set target.type to duckdb or postgres",
            config.target.name()
        )));
    }
    let listen: SocketAddr = args
        .listen
        .as_deref()
        .ok_or_else(|| usage("--follow needs --listen ADDRESS:PORT, where the receiver listens (e.g. 0.0.0.0:8787)".to_owned()))?
        .parse()
        .map_err(|e| usage(format!("--listen: {e}; write an address and port such as 0.0.0.0:8787")))?;
    let public_url = args.public_url.ok_or_else(|| {
        usage("--follow needs --public-url, the https address Pipedrive delivers to (a reverse proxy or tunnel in front of --listen)".to_owned())
    })?;
    if !url::Url::parse(&public_url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
        return Err(usage(format!(
            "--public-url `{public_url}` is not an http(s) address; write the full address Pipedrive should call, e.g. https://sync.example.com/pipedrive"
        )));
    }
    let password = std::env::var(PASSWORD_ENV)
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
    let options = FollowOptions {
        listen,
        public_url,
        every: args.every.unwrap_or(DEFAULT_EVERY),
        credentials: Credentials {
            user: WEBHOOK_USER.to_owned(),
            password,
        },
    };
    let client = Client::new(config.client.clone())?;
    let plan = config.plan();
    let opener = Opener {
        primary: Mutex::new(open_destination(&config).await?),
    };
    let observer = Arc::new(progress::Progress::new(
        client.clone(),
        None,
        Default::default(),
    ));
    let stop = stop_on_signal("applying the queued events, then removing the webhooks");
    let report = follow_company(&client, &opener, plan, options, observer, stop)
        .await
        .map_err(|error| match error {
            FollowError::Listen(message) => usage(message),
            FollowError::Register(error) => {
                let mut fail = Fail::from(error);
                fail.message = format!("registering the webhooks: {}", fail.message);
                fail
            }
            FollowError::Run(error) => error.into(),
            FollowError::Destination(error) => error.into(),
        })?;
    if let Some(last) = report.syncs.last() {
        eprint!("{}", progress::summary(last, &client));
    }
    eprint!("{}", summary(&report));
    Ok(())
}

/// The session's events, latency and tokens.
fn summary(report: &FollowReport) -> String {
    let status = &report.status;
    let applied = &status.applied;
    let latency = &status.latency;
    format!(
        "follow: {} events received, {} rows applied ({} deletes, {} of them merges), {} duplicate or stale, {} ignored, {} refused, {} rejected\n\
         latency from the change in Pipedrive to the committed row: p50 {} ms, p99 {} ms, max {} ms ({} events)\n\
         safety-net syncs: {}; tokens spent: {} (deliveries cost none)\n",
        thousands(status.received),
        thousands(applied.rows),
        thousands(applied.deletes),
        thousands(applied.merges),
        thousands(applied.stale),
        thousands(applied.ignored),
        thousands(status.refused),
        thousands(status.rejected),
        latency.p50_ms,
        latency.p99_ms,
        latency.max_ms,
        thousands(latency.events),
        report.syncs.len(),
        thousands(report.tokens),
    )
}
