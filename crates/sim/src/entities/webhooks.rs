//! Webhook subscriptions (`/v1/webhooks`; there is no v2 management API): what the real API
//! stores, validates and answers. `crate::webhook_delivery` sends the events to them.

use crate::model::Db;
use crate::respond::{Ctx, Resp};
use crate::util::iso_ms;
use crate::webhook_outbox::WebhookView;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Webhooks one user may hold; one more is refused with 422.
pub const PER_USER_LIMIT: usize = 40;

const ACTIONS: &[&str] = &["create", "change", "delete", "*"];
/// Webhooks v1's action names, still accepted with `version: "1.0"`.
const ACTIONS_V1: &[&str] = &["added", "updated", "merged", "deleted", "*"];
const OBJECTS: &[&str] = &[
    "activity",
    "activityType",
    "deal",
    "lead",
    "note",
    "organization",
    "person",
    "pipeline",
    "product",
    "stage",
    "user",
    "project",
    "task",
    "board",
    "phase",
    "deal_installment",
    "deal_product",
    "*",
];

/// The management API writes `status` before `success`.
#[derive(Serialize)]
struct Answer<'a, T> {
    status: &'static str,
    success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a T>,
}

fn ok<T: Serialize>(status: u16, data: Option<&T>) -> Resp {
    Resp {
        status,
        body: serde_json::to_vec(&Answer {
            status: "ok",
            success: true,
            data,
        })
        .unwrap_or_default(),
    }
}

/// Webhook errors name the field: `{"status":"error","success":false,"errors":{"id":["not found"]}}`.
fn field_error(status: u16, field: &str, message: &str) -> Resp {
    #[derive(Serialize)]
    struct Errors<'a> {
        status: &'static str,
        success: bool,
        errors: BTreeMap<&'a str, [&'a str; 1]>,
    }
    Resp {
        status,
        body: serde_json::to_vec(&Errors {
            status: "error",
            success: false,
            errors: BTreeMap::from([(field, [message])]),
        })
        .unwrap_or_default(),
    }
}

/// `GET /v1/webhooks`: every webhook of the company's users (not paged).
pub fn list(db: &Db) -> Resp {
    ok(200, Some(&db.webhooks.hooks))
}

#[derive(Deserialize)]
struct NewWebhook {
    subscription_url: Option<String>,
    event_action: Option<String>,
    event_object: Option<String>,
    name: Option<String>,
    user_id: Option<u64>,
    http_auth_user: Option<String>,
    http_auth_password: Option<String>,
    version: Option<String>,
}

/// Clients send JSON (the official SDKs) or a form (older integrations).
fn parse_body(body: &[u8]) -> Option<NewWebhook> {
    serde_json::from_slice(body).ok().or_else(|| {
        let form: BTreeMap<String, String> =
            url::form_urlencoded::parse(body).into_owned().collect();
        serde_json::to_value(form).ok().and_then(|mut v| {
            if let Some(u) = v.get("user_id").and_then(|u| u.as_str()) {
                v["user_id"] = u.parse::<u64>().ok().into();
            }
            serde_json::from_value(v).ok()
        })
    })
}

fn valid_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some_and(|h| !h.ends_with("pipedrive.com"))
    })
}

/// `POST /v1/webhooks`.
pub fn create(c: &Ctx, db: &mut Db, body: &[u8]) -> Resp {
    let Some(new) = parse_body(body) else {
        return field_error(400, "body", "invalid JSON");
    };
    let version = new.version.unwrap_or_else(|| "2.0".into());
    if version != "1.0" && version != "2.0" {
        return field_error(400, "version", "must be one of 1.0, 2.0");
    }
    let url = new.subscription_url.unwrap_or_default();
    if !valid_url(&url) {
        return field_error(400, "subscription_url", "invalid or non-reachable URL");
    }
    let actions = if version == "1.0" {
        ACTIONS_V1
    } else {
        ACTIONS
    };
    let Some(action) = new.event_action.filter(|a| actions.contains(&a.as_str())) else {
        return field_error(
            400,
            "event_action",
            &format!("must be one of {}", actions.join(", ")),
        );
    };
    let Some(object) = new.event_object.filter(|o| OBJECTS.contains(&o.as_str())) else {
        return field_error(400, "event_object", "invalid event object");
    };
    let name = new.name.unwrap_or_default();
    if name.chars().count() > 255 {
        return field_error(400, "name", "must be at most 255 characters");
    }
    let user_id = new.user_id.unwrap_or(c.me);
    if db.users.get(user_id).is_none() {
        return field_error(400, "user_id", "user not found");
    }
    let reg = &mut db.webhooks;
    if reg.hooks.iter().filter(|h| h.owner_id == c.me).count() >= PER_USER_LIMIT {
        return field_error(422, "subscription_url", "webhooks limit reached");
    }
    reg.next_id += 1;
    let hook = WebhookView {
        id: reg.next_id,
        company_id: db.company.id,
        owner_id: c.me,
        user_id,
        event_action: action,
        event_object: object,
        subscription_url: url,
        version,
        is_active: 1,
        add_time: iso_ms(c.now - c.now.rem_euclid(1000)),
        remove_time: None,
        kind: "general",
        http_auth_user: new.http_auth_user,
        http_auth_password: new.http_auth_password,
        remove_reason: None,
        last_delivery_time: None,
        last_http_status: None,
        admin_id: c.me,
        name,
        added_ms: c.now,
    };
    reg.hooks.push(hook.clone());
    ok(201, Some(&hook))
}

/// `DELETE /v1/webhooks/{id}`.
pub fn delete(db: &mut Db, id: &str) -> Resp {
    let hooks = &mut db.webhooks.hooks;
    match hooks.iter().position(|h| h.id.to_string() == id) {
        Some(at) => {
            hooks.remove(at);
            ok::<()>(200, None)
        }
        None => field_error(404, "id", "not found"),
    }
}

pub fn truth(db: &Db) -> Vec<u8> {
    crate::envelope::truth(&db.webhooks.hooks)
}
