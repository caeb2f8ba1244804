//! The webhooks follow mode registers: one per followed object, all actions (`*`), so a
//! company's 40 webhooks per user (WEBHOOKS.md §1) are not spent on one connector. Each is
//! named after the company and object, so a restart finds and reuses its own; they are
//! removed on a clean exit.

use pipedrive_client::{Client, ClientError, Request};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::receiver::Credentials;

/// `x-token-cost` of the management endpoints (WEBHOOKS.md §1).
const LIST_COST: u32 = 10;
const CREATE_COST: u32 = 10;
const DELETE_COST: u32 = 6;
const PATH: &str = "/api/v1/webhooks";

#[derive(Deserialize)]
struct Webhook {
    id: u64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    subscription_url: String,
    #[serde(default)]
    event_action: String,
    #[serde(default)]
    event_object: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    is_active: Option<serde_json::Value>,
    #[serde(default)]
    http_auth_user: Option<String>,
    #[serde(default)]
    http_auth_password: Option<String>,
}

impl Webhook {
    fn active(&self) -> bool {
        match &self.is_active {
            Some(serde_json::Value::Bool(active)) => *active,
            Some(serde_json::Value::Number(n)) => n.as_u64() == Some(1),
            _ => true,
        }
    }
}

/// The name follow mode gives the webhook of `object` for `company`.
pub fn name(company: &str, object: &str) -> String {
    let name = format!("pipedrive-sync {company} {object}");
    name.chars().take(255).collect()
}

/// Webhooks registered (or reused) for this session.
#[derive(Debug, Default)]
pub struct Registered {
    pub ids: Vec<u64>,
    /// How many were already there and reused.
    pub reused: usize,
}

/// Makes sure each object has one active webhook of ours delivering to `url` with
/// `credentials`: ours that match are reused, ours that differ (another password, inactive
/// after a ban, v1 payloads) are replaced, everyone else's are left alone.
pub async fn register(
    client: &Client,
    company: &str,
    objects: &[&'static str],
    url: &str,
    credentials: &Credentials,
) -> Result<Registered, ClientError> {
    let existing = list(client).await?;
    let mut registered = Registered::default();
    for object in objects {
        let wanted = name(company, object);
        let ours: Vec<&Webhook> = existing
            .iter()
            .filter(|w| w.name.as_deref() == Some(wanted.as_str()) && w.subscription_url == url)
            .collect();
        let reusable = ours.iter().find(|w| {
            w.active()
                && w.event_object == *object
                && w.event_action == "*"
                && w.version.as_deref().unwrap_or("2.0") == "2.0"
                && w.http_auth_user.as_deref() == Some(credentials.user.as_str())
                && w.http_auth_password.as_deref() == Some(credentials.password.as_str())
        });
        for stale in ours
            .iter()
            .filter(|w| reusable.is_none_or(|keep| keep.id != w.id))
        {
            remove(client, stale.id).await?;
        }
        match reusable {
            Some(webhook) => {
                registered.ids.push(webhook.id);
                registered.reused += 1;
            }
            None => {
                let page = client
                    .send(&Request {
                        method: Method::POST,
                        body: Some(json!({
                            "subscription_url": url,
                            "event_action": "*",
                            "event_object": object,
                            "name": wanted,
                            "version": "2.0",
                            "http_auth_user": credentials.user,
                            "http_auth_password": credentials.password,
                        })),
                        token_cost: CREATE_COST,
                        ..Request::new(PATH)
                    })
                    .await?;
                let created: Webhook = page
                    .items
                    .first()
                    .and_then(|raw| serde_json::from_str(raw.get()).ok())
                    .ok_or_else(|| ClientError::Api {
                        path: PATH.to_owned(),
                        message: "the created webhook was not in the answer".to_owned(),
                    })?;
                registered.ids.push(created.id);
            }
        }
    }
    Ok(registered)
}

async fn list(client: &Client) -> Result<Vec<Webhook>, ClientError> {
    let page = client
        .send(&Request {
            token_cost: LIST_COST,
            ..Request::new(PATH)
        })
        .await?;
    Ok(page
        .items
        .iter()
        .filter_map(|raw| serde_json::from_str(raw.get()).ok())
        .collect())
}

/// Deletes one webhook; one already gone counts as removed.
pub async fn remove(client: &Client, id: u64) -> Result<(), ClientError> {
    let removed = client
        .send(&Request {
            method: Method::DELETE,
            token_cost: DELETE_COST,
            ..Request::new(format!("{PATH}/{id}"))
        })
        .await;
    match removed {
        Ok(_) | Err(ClientError::NotFound { .. }) => Ok(()),
        Err(error) => Err(error),
    }
}
