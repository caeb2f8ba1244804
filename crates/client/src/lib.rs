//! Pipedrive REST client for the sync engine.
//!
//! - Authenticates with an API token (`x-api-token` header only) or OAuth 2.0 (refreshing and
//!   rotating tokens).
//! - Paces requests inside Pipedrive's rolling 2-second burst window, shared by every clone and
//!   every concurrent stream, and tracks the company's daily token budget.
//! - Retries what can succeed on retry (429, 5xx, timeouts, network, malformed bodies) with
//!   jittered exponential backoff; fails at once on what cannot.
//! - Pages v1 offset and v2 cursor listings, keeping records as raw JSON.
//!
//! Secrets never appear in `Debug`/`Display` output, errors, logs or URLs.

mod auth;
mod budget;
mod client;
mod config;
mod error;
mod limiter;
mod page;
mod stats;

pub use budget::BudgetSnapshot;
pub use client::Client;
pub use config::{
    Backoff, ClientConfig, Credentials, OAuthCredentials, RotateCallback, default_user_agent,
};
pub use error::{ClientError, ErrorClass};
pub use page::{Page, PagePosition, Paging, Request};
pub use secrecy::SecretString;
pub use stats::{ClientStats, PathStats, normalise_path};
