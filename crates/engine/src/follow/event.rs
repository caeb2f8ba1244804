//! One webhooks v2 delivery (`{meta, data, previous}`, WEBHOOKS.md §3) read into what follow
//! mode applies: which record, what happened to it, when, and its state as a list shows it.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::schema::parse_timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    Change,
    Delete,
}

/// An event ready to apply.
#[derive(Clone, Debug)]
pub struct Event {
    pub action: Action,
    /// `meta.entity`, the webhook's `event_object`: `deal`, `person`, ...
    pub object: String,
    /// `meta.entity_id`: the record's key as text (a number, or a lead's UUID).
    pub key: String,
    /// `meta.timestamp` in milliseconds since the epoch: when the change happened. Two writes
    /// never share one, so the newest event of a record is well defined.
    pub at_ms: i64,
    /// The record after a create or change (`data`), before a delete (`previous`, its last
    /// full state); custom fields in the lists' v2 shape under `custom_fields`.
    pub record: Map<String, Value>,
    /// A delete caused by a merge into this record (`meta.merged_to_id`).
    pub merged_to: Option<String>,
}

#[derive(Deserialize)]
struct Delivery {
    meta: Meta,
    data: Option<Map<String, Value>>,
    previous: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct Meta {
    action: String,
    entity: String,
    entity_id: Value,
    timestamp: Value,
    merged_to_id: Option<Value>,
}

/// Why a body is not an event; the receiver answers 400 with it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

/// Reads one delivery's body.
pub fn parse(body: &[u8]) -> Result<Event, Malformed> {
    let delivery: Delivery = serde_json::from_slice(body)
        .map_err(|e| Malformed(format!("not a webhooks v2 payload: {e}")))?;
    let meta = delivery.meta;
    let action = match meta.action.as_str() {
        "create" | "added" => Action::Create,
        "change" | "updated" | "merged" => Action::Change,
        "delete" | "deleted" => Action::Delete,
        other => return Err(Malformed(format!("unknown meta.action `{other}`"))),
    };
    let key = text(&meta.entity_id)
        .ok_or_else(|| Malformed("meta.entity_id is neither a string nor a number".into()))?;
    let at_ms = timestamp_ms(&meta.timestamp).ok_or_else(|| {
        Malformed(format!(
            "meta.timestamp {} is not a time Pipedrive sends",
            meta.timestamp
        ))
    })?;
    let record = match action {
        Action::Delete => delivery.previous,
        Action::Create | Action::Change => delivery.data,
    }
    .ok_or_else(|| {
        Malformed(match action {
            Action::Delete => "a delete without `previous`".into(),
            _ => "a create or change without `data`".into(),
        })
    })?;
    Ok(Event {
        action,
        object: meta.entity,
        key,
        at_ms,
        record: with_list_custom_fields(record),
        merged_to: meta.merged_to_id.as_ref().and_then(text),
    })
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `meta.timestamp` in the three forms Pipedrive has sent (WEBHOOKS.md §3): RFC 3339 with
/// milliseconds, UNIX seconds (user events until 2025-06-30), and `YYYY-MM-DD HH:MM:SS`
/// (product events until 2026-04-01).
pub fn timestamp_ms(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_f64().map(|seconds| (seconds * 1000.0) as i64),
        Value::String(s) if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') => s
            .parse::<f64>()
            .ok()
            .map(|seconds| (seconds * 1000.0) as i64),
        Value::String(s) => parse_timestamp(s).map(|at| at.timestamp_millis()),
        _ => None,
    }
}

/// Webhooks type each custom-field value (`{"type": "enum", "id": 12}`); lists carry the
/// value itself (`12`). Turned into the list shape, the record goes through the same
/// transform as a polled one and lands in the same columns with the same types.
fn with_list_custom_fields(mut record: Map<String, Value>) -> Map<String, Value> {
    if let Some(Value::Object(typed)) = record.remove("custom_fields") {
        let fields = typed
            .into_iter()
            .map(|(key, value)| (key, list_value(value)))
            .collect();
        record.insert("custom_fields".into(), Value::Object(fields));
    }
    record
}

fn list_value(typed: Value) -> Value {
    let Value::Object(mut parts) = typed else {
        return typed;
    };
    let field_type = parts.remove("type");
    match field_type.as_ref().and_then(Value::as_str) {
        Some("set") => Value::Array(
            parts
                .remove("values")
                .and_then(|v| match v {
                    Value::Array(items) => Some(items),
                    _ => None,
                })
                .unwrap_or_default()
                .into_iter()
                .map(|mut item| item.get_mut("id").map(Value::take).unwrap_or(item))
                .collect(),
        ),
        _ if parts.contains_key("id") && !parts.contains_key("value") => {
            parts.remove("id").unwrap_or(Value::Null)
        }
        // A range's start is its value in lists: `{value, until}`.
        _ if parts.contains_key("from") => {
            let from = parts.remove("from").unwrap_or(Value::Null);
            parts.insert("value".into(), from);
            Value::Object(parts)
        }
        // One part left: the value itself (text, numbers, dates).
        _ if parts.len() == 1 => parts.remove("value").unwrap_or(Value::Null),
        // Money, times and addresses: `{value, ...}` as lists have them.
        _ => Value::Object(parts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(value: Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn a_change_carries_the_current_record_with_list_shaped_custom_fields() {
        let event = parse(&body(json!({
            "meta": {"action": "change", "entity": "deal", "entity_id": "42",
                     "timestamp": "2026-03-02T09:15:03.120Z"},
            "data": {"id": 42, "title": "Acme", "custom_fields": {
                "a": {"type": "enum", "id": 12},
                "b": {"type": "set", "values": [{"id": 1}, {"id": 3}]},
                "c": {"type": "monetary", "value": 5, "currency": "EUR"},
                "d": {"type": "varchar", "value": "x"},
                "e": {"type": "daterange", "from": "2026-01-01", "until": "2026-02-01"},
                "f": {"type": "double", "value": 2.5}
            }},
            "previous": {"title": "old"}
        })))
        .unwrap();
        assert_eq!(event.action, Action::Change);
        assert_eq!((event.object.as_str(), event.key.as_str()), ("deal", "42"));
        assert_eq!(event.at_ms, 1_772_442_903_120);
        assert_eq!(
            event.record["custom_fields"],
            json!({"a": 12, "b": [1, 3], "c": {"value": 5, "currency": "EUR"}, "d": "x",
                   "e": {"value": "2026-01-01", "until": "2026-02-01"}, "f": 2.5})
        );
    }

    #[test]
    fn a_delete_carries_the_last_state_and_the_merge_target() {
        let event = parse(&body(json!({
            "meta": {"action": "delete", "entity": "person", "entity_id": 18,
                     "merged_to_id": "17", "timestamp": "2026-03-02T10:00:01.004Z"},
            "data": null,
            "previous": {"id": 18, "name": "J. Smith"}
        })))
        .unwrap();
        assert_eq!(event.action, Action::Delete);
        assert_eq!(event.key, "18");
        assert_eq!(event.record["name"], "J. Smith");
        assert_eq!(event.merged_to.as_deref(), Some("17"));
    }

    #[test]
    fn every_timestamp_form_pipedrive_has_sent_is_read() {
        let expected = Some(1_772_442_903_000);
        assert_eq!(timestamp_ms(&json!("2026-03-02T09:15:03.000Z")), expected);
        assert_eq!(timestamp_ms(&json!("2026-03-02 09:15:03")), expected);
        assert_eq!(timestamp_ms(&json!(1_772_442_903)), expected);
        assert_eq!(timestamp_ms(&json!("1772442903")), expected);
        assert_eq!(timestamp_ms(&json!("yesterday")), None);
    }

    #[test]
    fn a_body_that_is_no_event_says_what_is_wrong() {
        let problem = |value: Value| parse(&body(value)).unwrap_err().to_string();
        assert!(problem(json!({"hello": 1})).contains("not a webhooks v2 payload"));
        assert!(
            problem(
                json!({"meta": {"action": "change", "entity": "deal", "entity_id": "1",
                   "timestamp": "2026-03-02T09:15:03Z"}, "data": null})
            )
            .contains("without `data`")
        );
        assert!(
            problem(
                json!({"meta": {"action": "rename", "entity": "deal", "entity_id": "1",
                   "timestamp": "2026-03-02T09:15:03Z"}})
            )
            .contains("unknown meta.action")
        );
        assert!(parse(b"not json").is_err());
    }
}
