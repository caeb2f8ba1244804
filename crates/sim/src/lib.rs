//! Pipedrive API simulator: a seeded, deterministic company served over the real v1/v2 paths,
//! with the real envelopes, paging, auth, token-based rate limits and injectable faults.
//!
//! Start it with [`start`]; tests drive its clock, faults and ground truth through `/__sim/`.
//!
//! # Paths and auth
//! `/api/v2/...` (v2), `/api/v1/...` and `/v1/...` (v1); `/v2/...` is 404. Credentials:
//! `x-api-token` header, `?api_token=` on v1 paths, or `Authorization: Bearer` with a token from
//! `POST /oauth/token` (HTTP Basic [`OAUTH_CLIENT_ID`]:[`OAUTH_CLIENT_SECRET`], grants
//! `authorization_code` and `refresh_token`). Refresh tokens rotate: each use returns a new one
//! and the used token is invalid immediately; access tokens live 3599 s of sim time.
//!
//! # Clock
//! Sim time starts at the data anchor (2026-11-01T00:00:00Z) and runs with the wall clock;
//! `/__sim/clock/advance` moves it forward. The 30-day purge of soft-deleted records, the
//! one-month `/v1/recents` cap, OAuth expiry, burst windows and the daily budget (midnight UTC)
//! all follow it.
//!
//! # Admin API (`/__sim/`, no auth, no limits, no faults)
//! - `GET /__sim/stats` → `{"requests","tokens_spent","responses_429","responses_by_status":{"200":N},
//!   "paths":{"/api/v2/deals":{"requests","tokens_spent","responses_429"}}}` (ids → `{id}`);
//!   `POST /__sim/stats/reset`.
//! - `GET /__sim/truth/{entity}` → `{"records":[...]}`: every non-purged record (deleted and
//!   archived included) as its canonical list endpoint renders it, by primary key.
//! - `GET /__sim/clock` → `{"now","now_ms"}`; `POST /__sim/clock/advance` `{"seconds":N}`.
//! - `GET|POST /__sim/faults` ([`FaultSettings`] JSON; posting also restarts the fault sequence).
//! - `POST /__sim/oauth/authorize` → `{"code","client_id","redirect_uri"}`;
//!   `POST /__sim/oauth/refresh_token` → `{"refresh_token"}`;
//!   `GET /__sim/oauth/issued` → `{"access_tokens","refresh_tokens"}`: every token handed out.
//! - `POST /__sim/custom_fields/{entity}` `{"name","field_type","options":["a","b"]}` → `{"key",...}`;
//!   `PATCH /__sim/custom_fields/{entity}/{key}` `{"name"}`; `DELETE /__sim/custom_fields/{entity}/{key}`.
//!   (The spec'd v2 `POST/PATCH/DELETE /api/v2/{deal,person,...}Fields` work too.)
//! - `POST /__sim/custom_field_values/{deals|persons|organizations|products}/{id}`
//!   `{"key","value"}`: stores a string, number or null as the value, unchecked against the
//!   field's type (text in a number field, as old imports leave it).
//! - `POST /__sim/budget/reset` `{"remaining":N}?` → `{"limit","remaining"}`; `GET /__sim/budget`.
//! - `POST /__sim/archive/{deals|leads}/{id}`, `POST /__sim/unarchive/{deals|leads}/{id}`.
//! - `GET /__sim/info` → seed, scale, plan, company and record counts.
//! - `POST /__sim/churn` `{"per_second": N}` sets the rate of seeded changes (0 stops them);
//!   `{"steps": N}` applies N changes before answering. Both answer as
//!   `GET /__sim/churn` → `{"per_second","applied","rejected","last_rejection",
//!   "by_kind":{"update":{"deals":N}}}`. Kinds: create, update, delete, archive, unarchive,
//!   stage_move, merge, field_add, field_rename, field_delete.
//! - `GET /__sim/webhooks/stats` → `{"queued","attempted","succeeded","failed","retried",
//!   "dropped","duplicated","reordered","slowed","lost_to_ban","bans","pending",
//!   "subscriptions":{"7":{...the same counters,"failed_first_attempts","banned_until"}}}`;
//!   `pending` is 0 once every queued delivery has finished.
//! - `GET|POST /__sim/webhooks/faults` ([`WebhookFaults`] JSON: `duplicate_rate`,
//!   `reorder_rate`, `drop_rate`, `slow_rate`, `slow_ms`; posting restarts the fault sequence).
//! - `GET|POST /__sim/webhooks/timing` `{"time_scale": 0.01}` → the scaled waits
//!   (`timeout_ms`, `retry_delays_ms`, `ban_ms`, ...); [`WebhookOptions`] sets both at start.
//!
//! # Webhooks
//! Subscriptions made with `POST /api/v1/webhooks` (`version: "2.0"`) receive Webhooks v2
//! deliveries of every change to deals, persons, organizations, activities, products, notes,
//! leads, pipelines, stages and deal products, from API writes, churn, merges and the admin
//! archive and custom-field calls (see `webhook_delivery`).
//!
//! # Merges
//! `PUT /api/v1/{persons,organizations,deals}/{id}/merge` `{"merge_with_id": N}`: `N` survives,
//! `{id}` is removed outright and its children move to `N` (see `entities::merges`).

mod admin;
mod api;
mod churn;
mod costs;
mod entities;
mod envelope;
mod extra;
mod fields;
mod json;
mod limits;
mod list;
mod model;
mod render;
mod respond;
mod routes;
mod seed;
mod server;
mod state;
mod util;
mod webhook_delivery;
mod webhook_outbox;
mod webhook_sender;
mod write;

pub use webhook_outbox::{WebhookFaults, WebhookOptions};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The OAuth client the simulator's `/oauth/token` accepts (HTTP Basic credentials).
pub const OAUTH_CLIENT_ID: &str = "pipedrive-sim-client";
pub const OAUTH_CLIENT_SECRET: &str = "pipedrive-sim-secret-0123456789abcdef";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// A company that has just signed up: its one user and the default pipeline, no records.
    Empty,
    /// A few hundred records; for tests.
    #[default]
    Tiny,
    /// About 10k records.
    Small,
    /// About 250k records.
    Medium,
    /// More than 1M records.
    Large,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Lite,
    Growth,
    #[default]
    Premium,
    Ultimate,
    /// No burst window and no daily budget: for benchmarks.
    Unlimited,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct ParseError(String);

impl FromStr for Scale {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "empty" => Ok(Scale::Empty),
            "tiny" => Ok(Scale::Tiny),
            "small" => Ok(Scale::Small),
            "medium" => Ok(Scale::Medium),
            "large" => Ok(Scale::Large),
            _ => Err(ParseError(s.to_string())),
        }
    }
}
impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scale::Empty => "empty",
            Scale::Tiny => "tiny",
            Scale::Small => "small",
            Scale::Medium => "medium",
            Scale::Large => "large",
        })
    }
}
impl FromStr for Plan {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "lite" | "essential" => Ok(Plan::Lite),
            "growth" | "advanced" => Ok(Plan::Growth),
            "premium" | "professional" | "power" => Ok(Plan::Premium),
            "ultimate" | "enterprise" => Ok(Plan::Ultimate),
            "unlimited" => Ok(Plan::Unlimited),
            _ => Err(ParseError(s.to_string())),
        }
    }
}
impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Plan::Lite => "lite",
            Plan::Growth => "growth",
            Plan::Premium => "premium",
            Plan::Ultimate => "ultimate",
            Plan::Unlimited => "unlimited",
        })
    }
}

/// Fault probabilities (0.0..=1.0) per API request. Decided from the seed and a request
/// counter, so the same seed and request order give the same faults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultSettings {
    /// 500/502/503 with a JSON error body.
    pub error_rate: f64,
    /// Connection closed without a complete response.
    pub reset_rate: f64,
    /// Body cut short of its declared Content-Length.
    pub truncate_rate: f64,
    /// 200 with a body that is not valid JSON.
    pub malformed_rate: f64,
    /// Response delayed by more than `stall_ms`.
    pub stall_rate: f64,
    pub stall_ms: u64,
    /// 429 with no rate-limit headers and no Retry-After.
    pub rate_429_no_headers: f64,
    /// v1 offset pages after the first start this many records early, repeating the end of
    /// the previous page, as when records are added ahead of a reader mid-listing.
    pub page_overlap: u32,
    /// Writes are stamped this long before they show in lists: a change's `update_time` is
    /// when it began, and it commits (replication lag, a long transaction) this much later.
    pub write_lag_ms: u64,
}

#[derive(Clone, Debug)]
pub struct SimOptions {
    pub seed: u64,
    pub scale: Scale,
    pub plan: Plan,
    /// Seats (= users); `None` uses the scale's default.
    pub seats: Option<u32>,
    /// `None` derives a 40-hex token from the seed.
    pub api_token: Option<String>,
    pub latency_ms: u64,
    pub jitter_ms: u64,
    pub faults: FaultSettings,
    /// Seeded changes applied per second while serving (creates, edits, deletes, archiving,
    /// stage moves, merges, custom-field changes); 0 = none. See `/__sim/churn`.
    pub churn_per_second: f64,
    /// Webhook delivery timing and faults; see `/__sim/webhooks/*`.
    pub webhooks: WebhookOptions,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            seed: 1,
            scale: Scale::Tiny,
            plan: Plan::Premium,
            seats: None,
            api_token: None,
            latency_ms: 0,
            jitter_ms: 0,
            faults: FaultSettings::default(),
            churn_per_second: 0.0,
            webhooks: WebhookOptions::default(),
        }
    }
}

/// A running simulator.
pub struct SimHandle {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub api_token: String,
    pub company_domain: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    join: tokio::task::JoinHandle<()>,
}

impl SimHandle {
    /// Stops accepting connections and waits for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.join).await;
    }
    /// Serves until the server task ends.
    pub async fn wait(mut self) {
        let _ = (&mut self.join).await;
    }
}

/// Generates the company, binds `127.0.0.1:port` (0 = any free port) and serves on the current
/// tokio runtime. Returns once the socket is listening.
pub async fn start(opts: SimOptions, port: u16) -> std::io::Result<SimHandle> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let url = format!("http://127.0.0.1:{}", addr.port());
    let st = tokio::task::spawn_blocking({
        let url = url.clone();
        move || state::State::new(opts, url)
    })
    .await
    .map_err(std::io::Error::other)?;
    let st = std::sync::Arc::new(st);
    let api_token = st.api_token.clone();
    let company_domain = st
        .db
        .read()
        .map(|d| d.company.domain.clone())
        .unwrap_or_default();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    if st.opts.churn_per_second > 0.0 {
        churn::Churn::set_rate(&st, st.opts.churn_per_second);
    }
    webhook_sender::start(&st);
    // Paths are made canonical before the route table sees them.
    let app = tower::ServiceExt::map_request(server::router(st.clone()), server::canonical_path);
    let join = tokio::spawn(async move {
        let _ = axum::serve(listener, axum::ServiceExt::into_make_service(app))
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        // Churn and webhook delivery stop with the server.
        st.churn.stop();
        webhook_sender::stop(&st);
    });
    Ok(SimHandle {
        url,
        api_token,
        company_domain,
        shutdown: Some(tx),
        join,
    })
}
