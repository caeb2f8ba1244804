//! Webhooks v2 delivery against a real HTTP receiver: the payloads of creates, changes,
//! deletes and merges (value by value against the ground truth), Basic auth, the timeout,
//! retry schedule and ban, the delivery faults, and churn replayed from its deliveries.

mod common;
use axum::Router;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode};
use common::*;
use pipedrive_sim::{Plan, SimOptions, WebhookFaults, WebhookOptions};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ------------------------------------------------------------------------------ receiver

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    body: Value,
    authorization: Option<String>,
    at: Instant,
}

/// How the receiver answers: this status, after `delay_ms` when the request's
/// `meta.attempt` is at most `delay_attempts_up_to`.
#[derive(Clone, Copy, Debug)]
struct Answer {
    status: u16,
    delay_ms: u64,
    delay_attempts_up_to: u64,
}

impl Answer {
    fn ok() -> Answer {
        Answer::status(200)
    }
    fn status(status: u16) -> Answer {
        Answer {
            status,
            delay_ms: 0,
            delay_attempts_up_to: 0,
        }
    }
}

#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    answer: Arc<Mutex<Answer>>,
}

impl Receiver {
    async fn start(answer: Answer) -> Receiver {
        let got = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(answer));
        let state = (got.clone(), answer.clone());
        let app = Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, got, answer }
    }
    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }
    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
    fn bodies(&self) -> Vec<Value> {
        self.received().into_iter().map(|r| r.body).collect()
    }
}

type ReceiverState = (Arc<Mutex<Vec<Received>>>, Arc<Mutex<Answer>>);

async fn receive(
    AxumState((got, answer)): AxumState<ReceiverState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let at = Instant::now();
    let body: Value = serde_json::from_slice(&body).expect("the payload is JSON");
    let answer = *answer.lock().unwrap();
    got.lock().unwrap().push(Received {
        authorization: headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string()),
        at,
        body: body.clone(),
    });
    if body["meta"]["attempt"].as_u64().unwrap_or(0) <= answer.delay_attempts_up_to {
        tokio::time::sleep(Duration::from_millis(answer.delay_ms)).await;
    }
    StatusCode::from_u16(answer.status).unwrap()
}

// ------------------------------------------------------------------------------ helpers

async fn sim_with(seed: u64, webhooks: WebhookOptions) -> Sim {
    sim(SimOptions {
        seed,
        plan: Plan::Unlimited,
        webhooks,
        ..Default::default()
    })
    .await
}

/// A simulator with one receiver subscribed to every event.
async fn listening(seed: u64, webhooks: WebhookOptions) -> (Sim, Receiver) {
    let s = sim_with(seed, webhooks).await;
    let receiver = Receiver::start(Answer::ok()).await;
    subscribe(&s, &receiver.url, "*", "*", None).await;
    (s, receiver)
}

/// [`listening`], with the delivery faults `set` sets (the others off).
async fn listening_with_faults(seed: u64, set: impl FnOnce(&mut WebhookFaults)) -> (Sim, Receiver) {
    let (s, receiver) = listening(seed, WebhookOptions::default()).await;
    let mut faults = WebhookFaults::default();
    set(&mut faults);
    set_faults(&s, faults).await;
    (s, receiver)
}

/// Registers a v2 webhook; returns its id.
async fn subscribe(
    s: &Sim,
    url: &str,
    action: &str,
    object: &str,
    auth: Option<(&str, &str)>,
) -> u64 {
    let mut body = json!({
        "subscription_url": url, "event_action": action, "event_object": object,
        "name": "test", "version": "2.0",
    });
    if let Some((user, password)) = auth {
        body["http_auth_user"] = json!(user);
        body["http_auth_password"] = json!(password);
    }
    let (status, v) = s.send("POST", "/api/v1/webhooks", body).await;
    assert_eq!(status, 201, "{v}");
    v["data"]["id"].as_u64().expect("webhook id")
}

async fn stats(s: &Sim) -> Value {
    s.admin("GET", "/__sim/webhooks/stats", Value::Null).await
}

/// Waits until every queued delivery has finished (accepted, failed, dropped or lost).
async fn settle(s: &Sim) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = stats(s).await;
        if v["pending"] == json!(0) {
            return v;
        }
        assert!(Instant::now() < deadline, "deliveries still pending: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An API write that must succeed; a `null` body sends none (as a DELETE has none).
async fn write(s: &Sim, method: &str, path: &str, body: Value) -> Value {
    let mut request =
        s.c.request(method.parse().unwrap(), s.url(path))
            .header("x-api-token", &s.h.api_token);
    if !body.is_null() {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let v: Value = response.json().await.unwrap_or(Value::Null);
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {v}"
    );
    v
}

async fn delete(s: &Sim, path: &str) -> Value {
    write(s, "DELETE", path, Value::Null).await
}

async fn create_deal(s: &Sim, title: &str) -> Value {
    write(s, "POST", "/api/v2/deals", json!({ "title": title })).await
}

async fn advance_clock(s: &Sim, seconds: f64) {
    s.admin(
        "POST",
        "/__sim/clock/advance",
        json!({ "seconds": seconds }),
    )
    .await;
}

fn is_deleted(record: &Value) -> bool {
    record["is_deleted"] == json!(true) || record["active_flag"] == json!(false)
}

fn truth_key(record: &Value) -> String {
    match &record["id"] {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// The records of `entity` in the truth that are not deleted, with their ids.
async fn live_records(s: &Sim, entity: &str) -> Vec<(String, Value)> {
    s.truth(entity)
        .await
        .into_iter()
        .filter(|r| !is_deleted(r))
        .map(|r| (truth_key(&r), r))
        .collect()
}

async fn first_live(s: &Sim, entity: &str) -> Value {
    s.truth(entity)
        .await
        .into_iter()
        .find(|r| !is_deleted(r))
        .unwrap_or_else(|| panic!("no live {entity}"))
}

async fn truth_record(s: &Sim, entity: &str, id: &str) -> Value {
    s.truth(entity)
        .await
        .into_iter()
        .find(|r| truth_key(r) == id)
        .unwrap_or_else(|| panic!("{entity} {id} not in the truth"))
}

/// Whether a webhook's typed custom field value says what the v2 API's value says.
fn typed_matches(typed: &Value, api: &Value) -> bool {
    match typed["type"].as_str().unwrap_or("") {
        "monetary" => typed["value"] == api["value"] && typed["currency"] == api["currency"],
        "enum" | "people" | "org" | "user" => typed["id"] == *api,
        "set" => {
            let ids: Vec<Value> = typed["values"]
                .as_array()
                .map(|a| a.iter().map(|v| v["id"].clone()).collect())
                .unwrap_or_default();
            json!(ids) == *api
        }
        "time" => typed["value"] == api["value"] && typed["timezone_id"] == api["timezone_id"],
        "timerange" => {
            typed["from"] == api["value"]
                && typed["until"] == api["until"]
                && typed["timezone_id"] == api["timezone_id"]
        }
        "daterange" => typed["from"] == api["value"] && typed["until"] == api["until"],
        "address" => typed["value"] == api["value"],
        _ => typed["value"] == *api,
    }
}

/// Related objects notes' v1 form nests, which webhooks leave out (their ids stay).
const RELATED_OBJECTS: [&str; 5] = ["deal", "organization", "person", "project", "user"];

fn is_field_key(key: &str) -> bool {
    key.len() >= 40 && key.as_bytes()[..40].iter().all(u8::is_ascii_hexdigit)
}

/// Keys whose API form repeats other records' current values (an activity's attendees carry
/// the persons' names and emails, a note nests its deal's title): compared by the ids they
/// hold, since changing the person changes them without an event of the record holding them.
fn linked_ids(key: &str, value: &Value) -> Value {
    match (key, value) {
        ("attendees", Value::Array(items)) => items
            .iter()
            .map(|a| json!([a["person_id"], a["user_id"]]))
            .collect(),
        (key, Value::Object(_)) if RELATED_OBJECTS.contains(&key) => json!("a related object"),
        _ => value.clone(),
    }
}

/// `data` against the record as `/__sim/truth` renders it: the same keys, each with the same
/// value; custom fields compared by meaning (typed in `data`, the API's form in the truth).
fn assert_data_matches_truth(what: &str, data: &Value, truth: &Value) {
    let data = data
        .as_object()
        .unwrap_or_else(|| panic!("{what}: data {data}"));
    let truth = truth.as_object().expect("truth object");
    for (key, value) in truth {
        if key == "custom_fields" {
            assert_custom_fields_match(what, &data["custom_fields"], value);
        } else if is_field_key(key) {
            // v1 custom field keys (leads): an empty one is empty in `data.custom_fields`.
            if value.is_null() && key.len() == 40 {
                assert!(data["custom_fields"][key].is_null(), "{what}: {key}");
            }
        } else {
            match data.get(key) {
                Some(v) => assert_eq!(
                    linked_ids(key, v),
                    linked_ids(key, value),
                    "{what}: data.{key}"
                ),
                None => assert!(
                    RELATED_OBJECTS.contains(&key.as_str()),
                    "{what}: data lacks {key} ({value})"
                ),
            }
        }
    }
    for key in data.keys() {
        assert!(
            key == "custom_fields" || truth.contains_key(key),
            "{what}: data.{key} is not in the API's object"
        );
    }
}

/// A record read before the churn against the truth after it, when no event touched it: only
/// custom fields added since (empty) or deleted since may differ.
fn assert_unchanged(what: &str, read: &Value, truth: &Value) {
    let (read, truth) = (read.as_object().unwrap(), truth.as_object().unwrap());
    for (key, value) in truth {
        if key == "custom_fields" {
            let before = read[key].as_object().unwrap();
            for (field, value) in value.as_object().unwrap() {
                assert_eq!(
                    before.get(field).unwrap_or(&Value::Null),
                    value,
                    "{what}: {field}"
                );
            }
        } else if is_field_key(key) {
            assert_eq!(
                read.get(key).unwrap_or(&Value::Null),
                value,
                "{what}: {key}"
            );
        } else {
            let before = read.get(key).map(|v| linked_ids(key, v));
            assert_eq!(before, Some(linked_ids(key, value)), "{what}: {key}");
        }
    }
}

/// Every field the API shows has the same value in the webhook's typed form; empty fields
/// are left out of the webhook's.
fn assert_custom_fields_match(what: &str, typed: &Value, api: &Value) {
    for (key, value) in api.as_object().expect("custom_fields") {
        let got = &typed[key];
        if value.is_null() {
            assert!(
                got.is_null(),
                "{what}: custom field {key} empty in the API, {got} in data"
            );
        } else {
            assert!(
                typed_matches(got, value),
                "{what}: custom field {key}: {got} in data, {value} in the API"
            );
        }
    }
}

fn assert_meta(what: &str, meta: &Value, expected: &Value) {
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&meta[key], value, "{what}: meta.{key}");
    }
    let uuid = |v: &Value| {
        v.as_str()
            .is_some_and(|s| s.len() == 36 && s.matches('-').count() == 4)
    };
    assert!(uuid(&meta["id"]), "{what}: meta.id {}", meta["id"]);
    assert!(uuid(&meta["correlation_id"]), "{what}: meta.correlation_id");
    let timestamp = meta["timestamp"].as_str().expect("timestamp");
    assert!(
        chrono::DateTime::parse_from_rfc3339(timestamp).is_ok()
            && timestamp.len() == 24
            && timestamp.ends_with('Z'),
        "{what}: meta.timestamp {timestamp} is not RFC 3339 with milliseconds"
    );
    let permitted = meta["permitted_user_ids"]
        .as_array()
        .expect("permitted_user_ids");
    assert!(permitted.contains(&json!("1")), "{what}: {permitted:?}");
}

/// Orders deliveries by their `meta.timestamp`.
fn sort_by_timestamp(bodies: &mut [Value]) {
    bodies.sort_by(|a, b| {
        a["meta"]["timestamp"]
            .as_str()
            .cmp(&b["meta"]["timestamp"].as_str())
    });
}

/// The deliveries of one entity record, in arrival order.
fn of_record<'a>(bodies: &'a [Value], entity: &str, id: &str) -> Vec<&'a Value> {
    bodies
        .iter()
        .filter(|b| b["meta"]["entity"] == json!(entity) && b["meta"]["entity_id"] == json!(id))
        .collect()
}

// ------------------------------------------------------------------------------ payloads

/// How to create, change and delete one covered entity through the API.
struct Lifecycle {
    entity: &'static str,
    truth: &'static str,
    create: (String, Value),
    change_method: &'static str,
    /// `{id}` stands for the created record's id.
    record_path: String,
    change: Value,
    /// Whether the delete keeps the record (soft delete) in the truth.
    soft_delete: bool,
}

impl Lifecycle {
    /// A v2 entity: created at `/api/v2/{truth}`, changed with PATCH, soft-deleted.
    fn v2(entity: &'static str, truth: &'static str, create: Value, change: Value) -> Lifecycle {
        Lifecycle {
            entity,
            truth,
            create: (format!("/api/v2/{truth}"), create),
            change_method: "PATCH",
            record_path: format!("/api/v2/{truth}/{{id}}"),
            change,
            soft_delete: true,
        }
    }
}

#[tokio::test]
async fn create_change_delete_of_each_entity_deliver_the_documented_payloads() {
    let s = sim_with(31, WebhookOptions::default()).await;
    let receiver = Receiver::start(Answer::ok()).await;
    let hook = subscribe(&s, &receiver.url, "*", "*", None).await;
    let info = s.admin("GET", "/__sim/info", Value::Null).await;
    let company_id = info["company_id"].to_string();
    let host = format!("{}.pipedrive.com", info["company_domain"].as_str().unwrap());

    // Custom fields on deals, to see typed values and `previous.custom_fields`.
    let deal_field = |body: Value| s.admin("POST", "/__sim/custom_fields/deals", body);
    let varchar = deal_field(json!({"name": "Ref", "field_type": "varchar"})).await;
    let enumerated =
        deal_field(json!({"name": "Tier", "field_type": "enum", "options": ["Gold", "Silver"]}))
            .await;
    let monetary = deal_field(json!({"name": "Budget", "field_type": "monetary"})).await;
    let (varchar, enumerated, monetary) = (
        varchar["key"].as_str().unwrap().to_string(),
        enumerated.clone(),
        monetary["key"].as_str().unwrap().to_string(),
    );
    let enum_key = enumerated["key"].as_str().unwrap().to_string();
    let silver = enumerated["options"][1]["id"].clone();

    let deal = first_live(&s, "deals").await;
    let person = first_live(&s, "persons").await;
    let pipeline = s.truth("pipelines").await[0]["id"].clone();
    let lifecycles = [
        Lifecycle::v2(
            "deal",
            "deals",
            json!({"title": "Webhook deal", "value": 100}),
            json!({"title": "Webhook deal renamed", "custom_fields": {
                varchar.clone(): "R-1", enum_key.clone(): silver, monetary.clone(): {"value": 250, "currency": "USD"}}}),
        ),
        Lifecycle::v2(
            "person",
            "persons",
            json!({"name": "Hook Person"}),
            json!({"name": "Hook Person Renamed"}),
        ),
        Lifecycle::v2(
            "organization",
            "organizations",
            json!({"name": "Hook Org"}),
            json!({"name": "Hook Org Renamed"}),
        ),
        Lifecycle::v2(
            "activity",
            "activities",
            json!({"subject": "Hook call", "deal_id": deal["id"]}),
            json!({"done": true}),
        ),
        Lifecycle::v2(
            "product",
            "products",
            json!({"name": "Hook product", "code": "H-1"}),
            json!({"code": "H-2"}),
        ),
        Lifecycle::v2(
            "pipeline",
            "pipelines",
            json!({"name": "Hook pipeline"}),
            json!({"name": "Hook pipeline renamed"}),
        ),
        Lifecycle::v2(
            "stage",
            "stages",
            json!({"name": "Hook stage", "pipeline_id": pipeline}),
            json!({"deal_probability": 40}),
        ),
        Lifecycle {
            entity: "note",
            truth: "notes",
            create: (
                "/api/v1/notes".to_string(),
                json!({"content": "Hook note", "deal_id": deal["id"]}),
            ),
            change_method: "PUT",
            record_path: "/api/v1/notes/{id}".to_string(),
            change: json!({"content": "Hook note edited"}),
            soft_delete: true,
        },
        Lifecycle {
            entity: "lead",
            truth: "leads",
            create: (
                "/api/v1/leads".to_string(),
                json!({"title": "Hook lead", "person_id": person["id"]}),
            ),
            change_method: "PATCH",
            record_path: "/api/v1/leads/{id}".to_string(),
            change: json!({"title": "Hook lead renamed"}),
            soft_delete: false,
        },
    ];

    for l in &lifecycles {
        let created = write(&s, "POST", &l.create.0, l.create.1.clone()).await;
        let id = truth_key(&created["data"]);
        let after_create = truth_record(&s, l.truth, &id).await;
        let path = l.record_path.replace("{id}", &id);
        write(&s, l.change_method, &path, l.change.clone()).await;
        let after_change = truth_record(&s, l.truth, &id).await;
        delete(&s, &path).await;
        if l.soft_delete {
            assert!(
                is_deleted(&truth_record(&s, l.truth, &id).await),
                "{} {id}",
                l.entity
            );
        }
        settle(&s).await;

        let bodies = receiver.bodies();
        let events = of_record(&bodies, l.entity, &id);
        let actions: Vec<&Value> = events.iter().map(|b| &b["meta"]["action"]).collect();
        assert_eq!(
            actions,
            [&json!("create"), &json!("change"), &json!("delete")],
            "{}",
            l.entity
        );
        let expected_meta = json!({
            "entity": l.entity, "entity_id": id, "company_id": company_id, "user_id": "1",
            "webhook_id": hook.to_string(), "webhook_owner_id": "1", "type": "general",
            "version": "2.0", "change_source": "api", "is_bulk_edit": false, "attempt": 1,
            "host": host,
        });
        let (create, change, delete) = (events[0], events[1], events[2]);
        for (event, action) in [(create, "create"), (change, "change"), (delete, "delete")] {
            let what = format!("{action}.{} {id}", l.entity);
            assert_meta(&what, &event["meta"], &expected_meta);
            assert_eq!(event["meta"]["action"], json!(action), "{what}");
            assert!(event["meta"].get("merged_to_id").is_none(), "{what}");
        }
        let ids: BTreeSet<&str> = events
            .iter()
            .map(|e| e["meta"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 3, "{}: one event id per event", l.entity);
        let stamps: Vec<&str> = events
            .iter()
            .map(|e| e["meta"]["timestamp"].as_str().unwrap())
            .collect();
        assert!(
            stamps.windows(2).all(|w| w[0] < w[1]),
            "{}: {stamps:?}",
            l.entity
        );

        // create: `data` is the record, `previous` null.
        assert!(create["previous"].is_null(), "create.{}", l.entity);
        assert_data_matches_truth(
            &format!("create.{}", l.entity),
            &create["data"],
            &after_create,
        );

        // change: `data` the new state, `previous` the old values of exactly the changed keys.
        let what = format!("change.{}", l.entity);
        assert_data_matches_truth(&what, &change["data"], &after_change);
        let previous = change["previous"].as_object().expect("previous");
        assert!(!previous.is_empty(), "{what}: nothing changed?");
        let (old, new) = (&create["data"], &change["data"]);
        for (key, value) in new.as_object().unwrap() {
            if key == "custom_fields" {
                continue;
            }
            match previous.get(key) {
                Some(before) => {
                    assert_eq!(before, &old[key], "{what}: previous.{key}");
                    assert_ne!(before, value, "{what}: previous.{key} did not change");
                }
                None => assert_eq!(
                    &old[key], value,
                    "{what}: {key} changed but is not in previous"
                ),
            }
        }
        for (key, field) in previous
            .get("custom_fields")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            assert_eq!(
                field, &old["custom_fields"][key],
                "{what}: previous.custom_fields.{key}"
            );
        }

        // delete: `data` null, `previous` the last full state.
        assert!(delete["data"].is_null(), "delete.{}", l.entity);
        assert_eq!(
            delete["previous"], change["data"],
            "delete.{}: previous",
            l.entity
        );
    }

    // The deal's custom fields: typed, option ids only, `previous` null where they were empty.
    let bodies = receiver.bodies();
    let deal_change = bodies
        .iter()
        .find(|b| b["meta"]["entity"] == json!("deal") && b["meta"]["action"] == json!("change"))
        .unwrap();
    let fields = &deal_change["data"]["custom_fields"];
    assert_eq!(fields[&varchar], json!({"type": "varchar", "value": "R-1"}));
    assert_eq!(fields[&enum_key], json!({"type": "enum", "id": silver}));
    assert_eq!(
        fields[&monetary],
        json!({"type": "monetary", "value": 250, "currency": "USD"})
    );
    assert_eq!(
        deal_change["previous"]["custom_fields"],
        json!({varchar.clone(): null, enum_key.clone(): null, monetary.clone(): null})
    );
    assert_eq!(deal_change["previous"]["title"], json!("Webhook deal"));

    let totals = stats(&s).await;
    assert_eq!(totals["queued"], json!(lifecycles.len() * 3), "{totals}");
    assert_eq!(totals["succeeded"], totals["queued"], "{totals}");
    assert_eq!(totals["attempted"], totals["queued"], "{totals}");
}

#[tokio::test]
async fn subscriptions_receive_only_the_actions_and_objects_they_name() {
    let s = sim_with(32, WebhookOptions::default()).await;
    let deals_changed = Receiver::start(Answer::ok()).await;
    let any_person = Receiver::start(Answer::ok()).await;
    let all_deletes = Receiver::start(Answer::ok()).await;
    subscribe(&s, &deals_changed.url, "change", "deal", None).await;
    subscribe(&s, &any_person.url, "*", "person", None).await;
    subscribe(&s, &all_deletes.url, "delete", "*", None).await;
    let deal = create_deal(&s, "Scoped").await;
    let deal_id = deal["data"]["id"].clone();
    write(
        &s,
        "PATCH",
        &format!("/api/v2/deals/{deal_id}"),
        json!({"title": "Scoped 2"}),
    )
    .await;
    let person = write(&s, "POST", "/api/v2/persons", json!({"name": "Scoped P"})).await;
    let person_id = person["data"]["id"].clone();
    delete(&s, &format!("/api/v2/persons/{person_id}")).await;
    delete(&s, &format!("/api/v2/deals/{deal_id}")).await;
    settle(&s).await;
    let seen = |r: &Receiver| -> Vec<String> {
        r.bodies()
            .iter()
            .map(|b| {
                format!(
                    "{}.{}",
                    b["meta"]["action"].as_str().unwrap(),
                    b["meta"]["entity"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(seen(&deals_changed), ["change.deal"]);
    assert_eq!(seen(&any_person), ["create.person", "delete.person"]);
    assert_eq!(seen(&all_deletes), ["delete.person", "delete.deal"]);
}

// ------------------------------------------------------------------------------ merges

#[tokio::test]
async fn merges_deliver_a_delete_with_merged_to_id_then_a_change_with_merged_from_id() {
    let (s, receiver) = listening(33, WebhookOptions::default()).await;
    for (entity, path, truth, link) in [
        ("person", "persons", "persons", "person_id"),
        ("organization", "organizations", "organizations", "org_id"),
        ("deal", "deals", "deals", "deal_id"),
    ] {
        let records = s.truth(truth).await;
        let activities = s.truth("activities").await;
        let live: Vec<&Value> = records.iter().filter(|r| !is_deleted(r)).collect();
        let gone = live
            .iter()
            .find(|r| {
                activities
                    .iter()
                    .any(|a| !is_deleted(a) && a[link] == r["id"])
            })
            .expect("a record with activities");
        let survivor = live.iter().find(|r| r["id"] != gone["id"]).unwrap();
        let (gone_id, survivor_id) = (truth_key(gone), truth_key(survivor));
        let moved: Vec<String> = activities
            .iter()
            .filter(|a| !is_deleted(a) && a[link] == gone["id"])
            .map(truth_key)
            .collect();
        let already = receiver.received().len();
        write(
            &s,
            "PUT",
            &format!("/api/v1/{path}/{gone_id}/merge"),
            json!({"merge_with_id": survivor["id"]}),
        )
        .await;
        settle(&s).await;
        let bodies: Vec<Value> = receiver.bodies().split_off(already);
        let what = format!("merge of {entity} {gone_id} into {survivor_id}");

        // First the merged-away record's delete, then the survivor's change.
        let first = &bodies[0];
        assert_eq!(first["meta"]["action"], json!("delete"), "{what}: {first}");
        assert_eq!(first["meta"]["entity"], json!(entity), "{what}");
        assert_eq!(first["meta"]["entity_id"], json!(gone_id), "{what}");
        assert_eq!(first["meta"]["merged_to_id"], json!(survivor_id), "{what}");
        assert!(first["data"].is_null(), "{what}");
        assert_data_matches_truth(&what, &first["previous"], gone);
        let second = &bodies[1];
        assert_eq!(
            second["meta"]["action"],
            json!("change"),
            "{what}: {second}"
        );
        assert_eq!(second["meta"]["entity_id"], json!(survivor_id), "{what}");
        assert_eq!(second["meta"]["merged_from_id"], json!(gone_id), "{what}");
        assert!(second["meta"].get("merged_to_id").is_none(), "{what}");
        assert_data_matches_truth(
            &what,
            &second["data"],
            &truth_record(&s, truth, &survivor_id).await,
        );
        let correlation = &first["meta"]["correlation_id"];
        assert!(
            bodies
                .iter()
                .all(|b| &b["meta"]["correlation_id"] == correlation),
            "{what}"
        );

        // The moved children: each a change from the merged-away record to the survivor.
        for activity in &moved {
            let events = of_record(&bodies, "activity", activity);
            assert_eq!(events.len(), 1, "{what}: activity {activity}");
            assert_eq!(events[0]["meta"]["action"], json!("change"));
            assert_eq!(
                events[0]["previous"][link], gone["id"],
                "{what}: activity {activity}"
            );
            assert_eq!(
                events[0]["data"][link], survivor["id"],
                "{what}: activity {activity}"
            );
        }
        assert!(
            of_record(&bodies, entity, &gone_id).len() == 1,
            "{what}: the merged-away record gets one event"
        );
    }
}

// ------------------------------------------------------------------------------ auth

#[tokio::test]
async fn basic_auth_is_sent_when_the_subscription_has_credentials() {
    let s = sim_with(34, WebhookOptions::default()).await;
    let with_auth = Receiver::start(Answer::ok()).await;
    let without = Receiver::start(Answer::ok()).await;
    subscribe(&s, &with_auth.url, "*", "*", Some(("pd", "s3cret"))).await;
    subscribe(&s, &without.url, "*", "*", None).await;
    write(&s, "POST", "/api/v2/persons", json!({"name": "Auth"})).await;
    settle(&s).await;
    use base64::Engine as _;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("pd:s3cret")
    );
    let got = with_auth.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].authorization.as_deref(), Some(expected.as_str()));
    let got = without.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].authorization, None);
}

// ------------------------------------------------------------------------------ retries, bans

const SCALE: f64 = 0.01;

fn scaled() -> WebhookOptions {
    WebhookOptions {
        time_scale: SCALE,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_failing_receiver_is_retried_on_the_schedule_then_banned() {
    let s = sim_with(35, scaled()).await;
    let timing = s.admin("GET", "/__sim/webhooks/timing", Value::Null).await;
    assert_eq!(
        timing["retry_delays_ms"],
        json!([30, 300, 1500]),
        "{timing}"
    );
    assert_eq!(timing["timeout_ms"], json!(100));
    let receiver = Receiver::start(Answer::status(500)).await;
    let hook = subscribe(&s, &receiver.url, "create", "deal", None).await;
    for n in 0..12 {
        create_deal(&s, &format!("Failing {n}")).await;
    }
    let v = settle(&s).await;
    // Ten failed first attempts ban the subscription; the two events after them are lost.
    assert_eq!(v["failed"], json!(10), "{v}");
    assert_eq!(v["bans"], json!(1), "{v}");
    assert_eq!(v["lost_to_ban"], json!(2), "{v}");
    assert_eq!(v["retried"], json!(30), "{v}");
    assert_eq!(v["attempted"], json!(40), "{v}");
    assert_eq!(v["succeeded"], json!(0), "{v}");
    let sub = &v["subscriptions"][hook.to_string()];
    assert!(sub["banned_until"].is_string(), "{v}");

    // Each delivery: attempts 1 to 4 with the same event id, +3 s, +30 s, +150 s apart (scaled).
    let got = receiver.received();
    let mut by_event: BTreeMap<String, Vec<&Received>> = BTreeMap::new();
    for r in &got {
        by_event
            .entry(r.body["meta"]["id"].as_str().unwrap().to_string())
            .or_default()
            .push(r);
    }
    assert_eq!(by_event.len(), 10);
    for (id, attempts) in &by_event {
        let numbers: Vec<&Value> = attempts
            .iter()
            .map(|r| &r.body["meta"]["attempt"])
            .collect();
        assert_eq!(
            numbers,
            [&json!(1), &json!(2), &json!(3), &json!(4)],
            "{id}"
        );
        for (pair, delay_ms) in attempts.windows(2).zip([30u64, 300, 1500]) {
            let gap = pair[1].at - pair[0].at;
            assert!(
                gap >= Duration::from_millis(delay_ms - 5)
                    && gap < Duration::from_millis(delay_ms + 1000),
                "{id}: {gap:?} between attempts, expected {delay_ms} ms"
            );
            let strip = |b: &Value| {
                let mut b = b.clone();
                b["meta"]["attempt"] = Value::Null;
                b
            };
            assert_eq!(
                strip(&pair[0].body),
                strip(&pair[1].body),
                "{id}: a retry resends the same event"
            );
        }
    }
    let (_, hooks) = s.get("/api/v1/webhooks").await;
    assert_eq!(hooks["data"][0]["last_http_status"], json!(500), "{hooks}");
    assert!(
        hooks["data"][0]["last_delivery_time"].is_string(),
        "{hooks}"
    );

    // The ban lasts 30 minutes of simulated time (scaled): after it, deliveries resume.
    receiver.set(Answer::ok());
    create_deal(&s, "During the ban").await;
    let v = settle(&s).await;
    assert_eq!(v["lost_to_ban"], json!(3), "{v}");
    advance_clock(&s, 30.0 * 60.0 * SCALE + 1.0).await;
    create_deal(&s, "After the ban").await;
    let v = settle(&s).await;
    assert_eq!(v["succeeded"], json!(1), "{v}");
    assert_eq!(v["lost_to_ban"], json!(3), "{v}");
    assert_eq!(
        receiver.bodies().last().unwrap()["data"]["title"],
        json!("After the ban")
    );
}

#[tokio::test]
async fn a_late_answer_is_a_failure_and_the_event_is_sent_again() {
    let s = sim_with(36, scaled()).await;
    // The first attempt is answered after 400 ms, past the (scaled) 100-ms timeout.
    let receiver = Receiver::start(Answer {
        status: 200,
        delay_ms: 400,
        delay_attempts_up_to: 1,
    })
    .await;
    subscribe(&s, &receiver.url, "*", "*", None).await;
    write(&s, "POST", "/api/v2/persons", json!({"name": "Late"})).await;
    let v = settle(&s).await;
    assert_eq!(v["succeeded"], json!(1), "{v}");
    assert_eq!(v["retried"], json!(1), "{v}");
    assert_eq!(v["failed"], json!(0), "{v}");
    let got = receiver.bodies();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["meta"]["id"], got[1]["meta"]["id"]);
    assert_eq!(
        (
            got[0]["meta"]["attempt"].clone(),
            got[1]["meta"]["attempt"].clone()
        ),
        (json!(1), json!(2))
    );
}

#[tokio::test]
async fn three_days_without_a_successful_delivery_deactivate_the_subscription() {
    let s = sim_with(37, scaled()).await;
    let receiver = Receiver::start(Answer::status(503)).await;
    subscribe(&s, &receiver.url, "*", "person", None).await;
    advance_clock(&s, (3 * 86_400 + 1) as f64).await;
    write(&s, "POST", "/api/v2/persons", json!({"name": "Unheard"})).await;
    settle(&s).await;
    let (_, hooks) = s.get("/api/v1/webhooks").await;
    let hook = &hooks["data"][0];
    assert_eq!(hook["is_active"], json!(0), "{hooks}");
    assert!(
        hook["remove_time"].is_string() && hook["remove_reason"].is_string(),
        "{hooks}"
    );
    write(&s, "POST", "/api/v2/persons", json!({"name": "Unsent"})).await;
    let v = settle(&s).await;
    assert_eq!(
        v["queued"],
        json!(1),
        "an inactive subscription gets nothing: {v}"
    );
}

// ------------------------------------------------------------------------------ faults

async fn set_faults(s: &Sim, faults: WebhookFaults) {
    s.admin(
        "POST",
        "/__sim/webhooks/faults",
        serde_json::to_value(faults).unwrap(),
    )
    .await;
}

async fn create_deals(s: &Sim, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for k in 0..n {
        let v = create_deal(s, &format!("Fault {k}")).await;
        ids.push(v["data"]["id"].to_string());
    }
    ids
}

fn entity_ids(bodies: &[Value]) -> Vec<String> {
    bodies
        .iter()
        .map(|b| b["meta"]["entity_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_duplicate_fault_sends_accepted_deliveries_twice() {
    let (s, receiver) = listening_with_faults(38, |f| f.duplicate_rate = 1.0).await;
    let ids = create_deals(&s, 4).await;
    let v = settle(&s).await;
    assert_eq!(v["duplicated"], json!(4), "{v}");
    assert_eq!(v["attempted"], json!(8), "{v}");
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 8);
    for pair in bodies.chunks(2) {
        assert_eq!(pair[0], pair[1], "a duplicate is the same body");
    }
    let unique: Vec<String> = entity_ids(&bodies).into_iter().step_by(2).collect();
    assert_eq!(unique, ids);
}

#[tokio::test]
async fn the_drop_fault_loses_deliveries_the_same_way_for_the_same_seed() {
    let mut delivered = Vec::new();
    for _ in 0..2 {
        let (s, receiver) = listening_with_faults(39, |f| f.drop_rate = 0.5).await;
        let ids = create_deals(&s, 20).await;
        let v = settle(&s).await;
        let got = entity_ids(&receiver.bodies());
        assert_eq!(v["dropped"].as_u64().unwrap() + got.len() as u64, 20, "{v}");
        assert!(!got.is_empty() && got.len() < 20, "{v}");
        assert!(got.iter().all(|id| ids.contains(id)));
        delivered.push(got);
    }
    assert_eq!(
        delivered[0], delivered[1],
        "the same seed drops the same deliveries"
    );

    let (s, receiver) = listening_with_faults(39, |f| f.drop_rate = 1.0).await;
    create_deals(&s, 5).await;
    let v = settle(&s).await;
    assert_eq!(v["dropped"], json!(5), "{v}");
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn the_reorder_fault_lets_the_next_delivery_overtake() {
    let (s, receiver) = listening_with_faults(40, |f| f.reorder_rate = 1.0).await;
    let ids = create_deals(&s, 6).await;
    let v = settle(&s).await;
    assert_eq!(v["reordered"], json!(3), "{v}");
    let expected: Vec<String> = ids
        .chunks(2)
        .flat_map(|p| [p[1].clone(), p[0].clone()])
        .collect();
    assert_eq!(entity_ids(&receiver.bodies()), expected);
    // The timestamps still tell the writes' order.
    let bodies = receiver.bodies();
    let mut by_time = bodies.clone();
    sort_by_timestamp(&mut by_time);
    assert_eq!(entity_ids(&by_time), ids);
}

#[tokio::test]
async fn the_slow_fault_delays_deliveries() {
    let (s, receiver) = listening_with_faults(41, |f| {
        f.slow_rate = 1.0;
        f.slow_ms = 300;
    })
    .await;
    let started = Instant::now();
    create_deals(&s, 3).await;
    let v = settle(&s).await;
    assert_eq!(v["slowed"], json!(3), "{v}");
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    // One at a time: the third waits for the two before it.
    assert!(got[0].at - started >= Duration::from_millis(300));
    assert!(
        got[2].at - started >= Duration::from_millis(900),
        "{:?}",
        got[2].at - started
    );
    let faults = s.admin("GET", "/__sim/webhooks/faults", Value::Null).await;
    assert_eq!(faults["slow_ms"], json!(300));
}

#[tokio::test]
async fn fault_settings_are_validated() {
    let s = sim_with(42, WebhookOptions::default()).await;
    let faults = json!({"drop_rate": 1.5});
    let status = s
        .admin_status("POST", "/__sim/webhooks/faults", faults)
        .await;
    assert_eq!(status, 400);
    let timing = json!({"time_scale": 0});
    let status = s
        .admin_status("POST", "/__sim/webhooks/timing", timing)
        .await;
    assert_eq!(status, 400);
}

// ------------------------------------------------------------------------------ churn replay

/// Entities churn changes, as `/__sim/truth` names them and as webhooks name them.
const REPLAYED: [(&str, &str); 8] = [
    ("deals", "deal"),
    ("persons", "person"),
    ("organizations", "organization"),
    ("activities", "activity"),
    ("products", "product"),
    ("notes", "note"),
    ("leads", "lead"),
    ("deal_products", "deal_product"),
];

/// A record as a consumer holds it: from the initial full read (the API's form) or from a
/// webhook's `data` (typed custom fields).
#[derive(Clone, Debug)]
enum Held {
    Read(Value),
    Delivered(Value),
}

#[tokio::test]
async fn churn_deliveries_replayed_by_timestamp_reproduce_the_truth() {
    // Reordered and duplicated deliveries must not matter to a newest-wins consumer.
    let (s, receiver) = listening_with_faults(43, |f| {
        f.reorder_rate = 0.2;
        f.duplicate_rate = 0.2;
    })
    .await;
    let mut held: BTreeMap<&str, BTreeMap<String, Held>> = BTreeMap::new();
    for (truth, entity) in REPLAYED {
        let read = live_records(&s, truth).await.into_iter();
        held.insert(entity, read.map(|(id, r)| (id, Held::Read(r))).collect());
    }
    let churn = s.admin("POST", "/__sim/churn", json!({"steps": 400})).await;
    assert!(churn["applied"].as_u64().unwrap() >= 300, "{churn}");
    let v = settle(&s).await;
    assert!(
        v["reordered"].as_u64().unwrap() > 0 && v["duplicated"].as_u64().unwrap() > 0,
        "{v}"
    );

    let mut bodies = receiver.bodies();
    assert!(bodies.len() >= 300, "{} deliveries", bodies.len());
    sort_by_timestamp(&mut bodies);
    let mut kinds = BTreeSet::new();
    for b in &bodies {
        let meta = &b["meta"];
        let entity = meta["entity"].as_str().unwrap();
        assert_eq!(
            meta["change_source"],
            json!("app"),
            "churn is users in the app"
        );
        let Some(records) = held.get_mut(entity) else {
            panic!("an event of an entity churn does not change: {b}");
        };
        let id = meta["entity_id"].as_str().unwrap().to_string();
        kinds.insert(format!("{}.{entity}", meta["action"].as_str().unwrap()));
        if meta["merged_to_id"].is_string() {
            kinds.insert(format!("merge.{entity}"));
        }
        match meta["action"].as_str().unwrap() {
            "delete" => {
                records.remove(&id);
            }
            _ => {
                records.insert(id, Held::Delivered(b["data"].clone()));
            }
        }
    }
    for expected in [
        "create.deal",
        "change.deal",
        "delete.deal",
        "merge.person",
        "change.activity",
    ] {
        assert!(kinds.contains(expected), "no {expected} among {kinds:?}");
    }

    for (truth, entity) in REPLAYED {
        let live: BTreeMap<String, Value> = live_records(&s, truth).await.into_iter().collect();
        let replayed = &held[entity];
        let missing: Vec<&String> = live.keys().filter(|k| !replayed.contains_key(*k)).collect();
        let extra: Vec<&String> = replayed.keys().filter(|k| !live.contains_key(*k)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{entity}: missing {missing:?}, extra {extra:?}"
        );
        for (id, record) in &live {
            let what = format!("{entity} {id}");
            match &replayed[id] {
                Held::Read(r) => assert_unchanged(&what, r, record),
                Held::Delivered(data) => assert_data_matches_truth(&what, data, record),
            }
        }
    }
}
