//! Per-stream sync state. Destinations store it beside the data, in the same transaction as the
//! rows it covers, so it can never run ahead of what was committed.

use std::collections::BTreeMap;

use pipedrive_client::PagePosition;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamState {
    /// The newest cursor value (RFC 3339, UTC, whole seconds) among committed rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bookmark: Option<String>,
    /// Set while a full refresh loads into its staging table: where the next page starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_refresh: Option<FullRefreshProgress>,
    /// Custom field key → column name, fixed once chosen.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_columns: BTreeMap<String, String>,
    /// When the last reconciliation listed the stream's ids (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_at: Option<String>,
    /// When the last complete pass over the stream ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// The Pipedrive company (`company_id` of `/v1/users/me`) the rows belong to: a run with
    /// another company's credentials is refused rather than mixing two companies' rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_id: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FullRefreshProgress {
    pub next: PagePosition,
    /// The bookmark to keep once the reload completes (newest cursor value loaded so far).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bookmark: Option<String>,
}

/// All streams' states, keyed by stream name.
pub type SyncState = BTreeMap<String, StreamState>;
