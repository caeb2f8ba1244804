//! Follow mode: the destination kept seconds behind Pipedrive by webhooks v2, with polling as
//! the safety net.
//!
//! The receiver starts and the webhooks are registered first, so nothing that changes during
//! the first sync is missed: its events wait in the queue. Then, in one loop:
//! - a safety-net sync (an ordinary incremental run) at the start and every `every`, catching
//!   what a ban, a restart or a dropped delivery missed; while the receiver refused or lost
//!   nothing since the last one, deletes are reconciled only on the configured schedule,
//!   otherwise at once;
//! - between syncs, events applied in micro-batches ([`apply::Applier`]), each committed with
//!   the streams' states. Nothing is applied while a sync runs: the two never write at once.
//!
//! A stop (SIGINT/SIGTERM) stops the receiver, applies what it queued, removes the webhooks
//! and returns.

pub mod apply;
pub mod event;
pub mod receiver;
pub mod subscriptions;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use pipedrive_client::{Client, ClientError};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use self::apply::Applier;
use self::event::Event;
use self::receiver::{Credentials, Receiver};
use crate::destination::{Destination, DestinationError};
use crate::runner::{
    Observer, RunError, StopSignal, SyncPlan, SyncReport, definitions_wanted,
    read_field_definitions, run_with_definitions,
};

/// How long a micro-batch gathers events after its first one.
const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// The most events one micro-batch applies.
const BATCH_MAX: usize = 5_000;
/// How often the loop looks at the stop signal and the clock while no event comes.
const IDLE_TICK: Duration = Duration::from_millis(100);
/// Event-to-commit latencies are counted in milliseconds up to this; slower ones in the last
/// bucket.
const LATENCY_BUCKETS: usize = 600_000;

pub struct FollowOptions {
    /// Where the receiver listens.
    pub listen: SocketAddr,
    /// The address Pipedrive delivers to (a reverse proxy or tunnel in front of `listen`).
    pub public_url: String,
    /// How often the safety-net sync runs.
    pub every: Duration,
    pub credentials: Credentials,
}

/// Opens another handle on the destination: each safety-net sync takes one, the applier one.
#[async_trait]
pub trait OpenDestination: Send + Sync {
    async fn open(&self) -> Result<Box<dyn Destination>, DestinationError>;
}

/// Event-to-row latency: from the change in Pipedrive (`meta.timestamp`) to the commit.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub events: u64,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

/// What `/healthz` answers and the summary reports.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    /// Deliveries accepted into the queue.
    pub received: u64,
    /// Deliveries refused for bad credentials or a body that is no event.
    pub rejected: u64,
    /// Deliveries refused because the queue was full (Pipedrive retries them).
    pub refused: u64,
    pub applied: apply::Applied,
    pub latency: Latency,
    /// Now minus the time of the newest change applied, at its commit.
    pub lag_ms: Option<u64>,
    pub last_applied_at: Option<String>,
    pub safety_net_syncs: u64,
    /// When the last completed safety-net sync started: it holds every change made before.
    pub last_sync_started_at: Option<String>,
    pub webhooks: usize,
    /// Something may have been missed since the last safety-net sync: the receiver was not
    /// running before it started, or refused a delivery. The next sync reconciles deletes.
    pub gap: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The receiver could not listen.
    #[error("{0}")]
    Listen(String),
    #[error("registering the webhooks: {0}")]
    Register(ClientError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Destination(#[from] DestinationError),
}

#[derive(Debug)]
pub struct FollowReport {
    pub syncs: Vec<SyncReport>,
    pub status: Status,
    /// Tokens the whole session spent: registration, safety-net syncs, removal.
    pub tokens: u64,
}

fn lock(status: &Mutex<Status>) -> std::sync::MutexGuard<'_, Status> {
    status.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Follows the company until `stop`.
pub async fn follow(
    client: &Client,
    opener: &dyn OpenDestination,
    plan: SyncPlan,
    options: FollowOptions,
    observer: Arc<dyn Observer>,
    stop: StopSignal,
) -> Result<FollowReport, FollowError> {
    let tokens_before = client.stats().tokens_spent;
    let mut objects: Vec<&'static str> = plan
        .streams
        .iter()
        .filter_map(|s| s.def.webhook.map(|w| w.object))
        .collect();
    objects.sort_unstable();
    objects.dedup();
    if objects.is_empty() {
        return Err(RunError::Config(
            "none of the selected streams is reported by webhooks: follow deals, persons, organizations, activities, products, pipelines, stages, notes or leads".to_owned(),
        )
        .into());
    }
    let status = Arc::new(Mutex::new(Status {
        gap: true,
        ..Status::default()
    }));
    let (receiver, events) = Receiver::start(options.listen, &options.credentials, status.clone())
        .await
        .map_err(|error| {
            FollowError::Listen(format!(
                "--listen {}: {error}; pick a free address and port, e.g. 0.0.0.0:8787",
                options.listen
            ))
        })?;
    tracing::info!(listen = %receiver.address, public_url = %options.public_url, "receiving webhooks");
    let registered = subscriptions::register(
        client,
        &plan.company,
        &objects,
        &options.public_url,
        &options.credentials,
    )
    .await
    .map_err(FollowError::Register);
    let registered = match registered {
        Ok(registered) => registered,
        Err(error) => {
            receiver.shutdown().await;
            return Err(error);
        }
    };
    tracing::info!(
        webhooks = registered.ids.len(),
        reused = registered.reused,
        "webhooks registered"
    );
    lock(&status).webhooks = registered.ids.len();

    let mut session = Session {
        client,
        opener,
        plan: &plan,
        every: options.every,
        observer,
        stop: stop.clone(),
        status: status.clone(),
        latencies: vec![0; LATENCY_BUCKETS],
        syncs: Vec::new(),
        applier: None,
    };
    session.run(events, receiver).await?;
    for id in registered.ids {
        if let Err(error) = subscriptions::remove(client, id).await {
            tracing::warn!(webhook = id, %error, "a webhook was not removed; a restart reuses it, or delete it in Pipedrive");
        }
    }
    lock(&status).webhooks = 0;
    let status = lock(&status).clone();
    Ok(FollowReport {
        syncs: session.syncs,
        status,
        tokens: client.stats().tokens_spent.saturating_sub(tokens_before),
    })
}

struct Session<'a> {
    client: &'a Client,
    opener: &'a dyn OpenDestination,
    plan: &'a SyncPlan,
    every: Duration,
    observer: Arc<dyn Observer>,
    stop: StopSignal,
    status: Arc<Mutex<Status>>,
    /// Events applied per millisecond of latency.
    latencies: Vec<u64>,
    syncs: Vec<SyncReport>,
    applier: Option<Applier>,
}

impl Session<'_> {
    async fn run(
        &mut self,
        mut events: mpsc::Receiver<Event>,
        receiver: Receiver,
    ) -> Result<(), FollowError> {
        let mut next_sync = Instant::now();
        while !self.stop.is_stopped() {
            if Instant::now() >= next_sync {
                self.safety_net().await?;
                next_sync = Instant::now() + self.every;
                continue;
            }
            let wait = next_sync.saturating_duration_since(Instant::now());
            let first = match tokio::time::timeout(wait.min(IDLE_TICK), events.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(_) => continue,
            };
            let mut batch = vec![first];
            let deadline = Instant::now() + BATCH_WINDOW;
            while batch.len() < BATCH_MAX {
                match tokio::time::timeout_at(deadline, events.recv()).await {
                    Ok(Some(event)) => batch.push(event),
                    _ => break,
                }
            }
            self.apply(batch).await?;
        }
        // Drain: no more deliveries are accepted; those queued are applied.
        receiver.shutdown().await;
        events.close();
        let mut rest = Vec::new();
        while let Ok(event) = events.try_recv() {
            rest.push(event);
        }
        if !rest.is_empty() {
            self.apply(rest).await?;
        }
        Ok(())
    }

    /// An incremental sync of the plan, then a fresh applier over the states it committed.
    async fn safety_net(&mut self) -> Result<(), FollowError> {
        let definitions = read_field_definitions(self.client, definitions_wanted(self.plan)).await;
        let mut plan = self.plan.clone();
        let gap = std::mem::replace(&mut lock(&self.status).gap, false);
        if gap {
            for stream in plan.streams.iter_mut().filter(|s| s.def.webhook.is_some()) {
                if stream.reconcile_every.is_some() {
                    stream.reconcile_every = Some(Duration::ZERO);
                }
            }
        }
        let started_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        tracing::info!(reconcile = gap, "safety-net sync started");
        let report = run_with_definitions(
            self.client,
            self.opener.open().await?,
            plan,
            self.observer.clone(),
            self.stop.child(),
            Some(definitions.clone()),
        )
        .await?;
        if let Some((failure, message)) = report.worst_failure() {
            tracing::warn!(
                ?failure,
                message,
                "the safety-net sync did not complete; events are still applied, and the next one catches up"
            );
            // The reconciliation it owed is still owed.
            lock(&self.status).gap |= gap;
        }
        let mut applier = Applier::new(self.opener.open().await?, self.plan, &definitions).await?;
        if let Some(previous) = self.applier.take() {
            applier.carry_over(previous);
        }
        self.applier = Some(applier);
        self.syncs.push(report);
        let mut status = lock(&self.status);
        status.safety_net_syncs += 1;
        status.last_sync_started_at = Some(started_at);
        Ok(())
    }

    async fn apply(&mut self, batch: Vec<Event>) -> Result<(), FollowError> {
        let Some(applier) = self.applier.as_mut() else {
            return Ok(());
        };
        let applied = applier.apply(batch).await?;
        let now_ms = Utc::now().timestamp_millis();
        let newest = applied.times.iter().max().copied();
        for at_ms in &applied.times {
            let latency = (now_ms - at_ms).max(0) as usize;
            self.latencies[latency.min(LATENCY_BUCKETS - 1)] += 1;
        }
        let latency = percentiles(&self.latencies);
        let mut status = lock(&self.status);
        status.applied.add(&applied);
        status.latency = latency;
        if let Some(newest) = newest {
            status.lag_ms = Some((now_ms - newest).max(0) as u64);
            status.last_applied_at = Some(now_text());
        }
        Ok(())
    }
}

/// p50, p99 and the maximum of a histogram with one bucket per millisecond.
fn percentiles(histogram: &[u64]) -> Latency {
    let events: u64 = histogram.iter().sum();
    let at = |share: f64| -> u64 {
        let rank = ((events as f64) * share).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (ms, count) in histogram.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return ms as u64;
            }
        }
        0
    };
    if events == 0 {
        return Latency::default();
    }
    Latency {
        events,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: histogram.iter().rposition(|&count| count > 0).unwrap_or(0) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_read_the_millisecond_histogram() {
        let mut histogram = vec![0; 10_000];
        for ms in 1..=100 {
            histogram[ms * 10] += 1;
        }
        let latency = percentiles(&histogram);
        assert_eq!(
            latency,
            Latency {
                events: 100,
                p50_ms: 500,
                p99_ms: 990,
                max_ms: 1000
            }
        );
        assert_eq!(percentiles(&[0; 10]), Latency::default());
    }
}
