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
//!
//! ```no_run
//! # async fn run() -> Result<(), pipedrive_client::ClientError> {
//! use futures::StreamExt;
//! use pipedrive_client::{Client, ClientConfig, Credentials, Paging, Request, SecretString};
//!
//! let client = Client::new(ClientConfig::new(
//!     "https://mycompany.pipedrive.com".parse().unwrap(),
//!     Credentials::ApiToken(SecretString::from("…".to_owned())),
//! ))?;
//! let deals = Request {
//!     paging: Paging::Cursor { limit: 500 },
//!     token_cost: 10,
//!     ..Request::new("/api/v2/deals")
//! };
//! let mut pages = std::pin::pin!(client.pages(deals));
//! while let Some(page) = pages.next().await {
//!     let page = page?;
//!     // page.items: raw records; page.next: where to resume.
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod auth;
mod budget;
mod client;
mod config;
mod error;
mod limiter;
mod overlap;
mod page;
mod stats;

pub use budget::BudgetSnapshot;
pub use client::Client;
pub use config::{
    Backoff, ClientConfig, Credentials, OAuthCredentials, RotateCallback, default_user_agent,
};
pub use error::{ClientError, ErrorClass};
pub use overlap::OVERLAP;
pub use page::{Page, PagePosition, Paging, Request};
pub use secrecy::SecretString;
pub use stats::{ClientStats, PathStats, RequestTimeline, SecondCounts, normalise_path};
