//! Pipedrive API simulator: a seeded, deterministic company served over the real v1/v2 paths,
//! with the real envelopes, paging, auth, token-based rate limits and injectable faults.
//!
//! Start it with [`start`]; tests drive its clock, faults and ground truth through `/__sim/`.
//!
//! # Paths and auth
//! `/api/v2/...` (v2), `/api/v1/...` and `/v1/...` (v1); `/v2/...` is 404. Credentials:
//! `x-api-token` header, `?api_token=` (v1 and v2 paths), or `Authorization: Bearer` with a token from
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

#![forbid(unsafe_code)]

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
mod options;
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

pub use options::{
    FaultSettings, OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET, ParseError, Plan, Scale, SimOptions,
};
pub use webhook_outbox::{WebhookFaults, WebhookOptions};

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
