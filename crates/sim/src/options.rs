//! The simulator's options: what a caller chooses when starting it (seed, scale, plan, faults,
//! webhook timing) and the OAuth client it accepts. The crate root re-exports them.

use crate::webhook_outbox::WebhookOptions;
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
