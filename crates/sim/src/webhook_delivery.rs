//! Webhooks v2 delivery, as `WEBHOOKS.md` (shared Pipedrive notes) describes it.
//!
//! **Events.** [`observe`] wraps every write (API requests, churn, merges, the admin archive
//! and custom-field calls): the tables journal the rows the write touches, and afterwards each
//! touched row of a covered entity becomes at most one event: `create` (a new live row),
//! `delete` (a row gone or soft-deleted; `data: null`, `previous` its last full state) or
//! `change` (`previous` holding only the changed keys with their old values). A merge deletes
//! the merged-away record with `meta.merged_to_id` first, then changes the survivor with
//! `meta.merged_from_id`; the moved children follow as their own `change` events.
//!
//! **Queue.** The write path only renders the payloads and hands them to an unbounded channel
//! ([`Outbox`]); a tokio task routes them to one queue per subscription, whose first attempts
//! go out one at a time in write order. A failed first attempt is retried beside the queue at
//! +3 s, +30 s and +150 s (`attempt` 2 to 4); no answer within 10 s is a failure. Ten failed
//! first attempts ban the subscription for 30 minutes of simulated time (events meanwhile are
//! lost); three days without a successful delivery deactivate it. [`WebhookOptions::time_scale`]
//! shrinks every one of these waits for tests.
//!
//! **Faults** ([`WebhookFaults`], `/__sim/webhooks/faults`) are drawn per delivery from the seed
//! and the delivery's sequence number: duplicates, reordering, drops and slow deliveries.

use crate::entities::webhooks::Subscription;
use crate::json::J;
use crate::model::*;
use crate::render::{self, V2Opts};
use crate::respond::Ctx;
use crate::state::State;
use crate::util::{DAY_MS, Ms, Rng, date, hms, iso_ms};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// No answer within this long is a failed attempt (G2).
const TIMEOUT: Duration = Duration::from_secs(10);
/// Waits before attempts 2, 3 and 4 (G2).
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(3),
    Duration::from_secs(30),
    Duration::from_secs(150),
];
/// Failed first attempts that ban a subscription (G2).
const BAN_AFTER_FAILURES: u32 = 10;
/// How long a ban lasts, in simulated time (G2).
const BAN_MS: Ms = 30 * 60 * 1000;
/// A subscription with no successful delivery for this long is deactivated (G2, APP).
const DEACTIVATE_AFTER_MS: Ms = 3 * DAY_MS;
/// `remove_reason` of a deactivated subscription; Pipedrive's wording is not documented.
const DEACTIVATED_REASON: &str = "no successful delivery in 3 days";
/// The longest a reordered delivery waits for the next one to overtake it.
const REORDER_HOLD: Duration = Duration::from_secs(2);

// ------------------------------------------------------------------------------ settings

/// Webhook delivery timing and faults: `SimOptions::webhooks`, then `/__sim/webhooks/*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookOptions {
    /// Multiplies every delivery wait: the 10-s timeout, the 3/30/150-s retry delays and the
    /// 30-minute ban. 1.0 is Pipedrive's timing; tests use 0.01 or less.
    pub time_scale: f64,
    pub faults: WebhookFaults,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            time_scale: 1.0,
            faults: WebhookFaults::default(),
        }
    }
}

/// Delivery faults, each a probability (0.0..=1.0) per delivery.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookFaults {
    /// A delivery the receiver accepted is sent once more, byte for byte (same `meta.id`,
    /// same `attempt`), as when an answer reaches Pipedrive too late.
    pub duplicate_rate: f64,
    /// A delivery is held back and sent right after the next delivery of its subscription.
    pub reorder_rate: f64,
    /// A delivery is never sent.
    pub drop_rate: f64,
    /// A delivery waits `slow_ms` before its first attempt, holding up its subscription's queue.
    pub slow_rate: f64,
    pub slow_ms: u64,
}

impl WebhookFaults {
    fn validate(&self) -> Result<(), String> {
        let rates = [
            ("duplicate_rate", self.duplicate_rate),
            ("reorder_rate", self.reorder_rate),
            ("drop_rate", self.drop_rate),
            ("slow_rate", self.slow_rate),
        ];
        match rates.iter().find(|(_, r)| !(0.0..=1.0).contains(r)) {
            Some((name, _)) => Err(format!("{name} must be between 0 and 1")),
            None => Ok(()),
        }
    }
}

pub use crate::respond::ChangeSource;

// ------------------------------------------------------------------------------ payload

/// The JSON body of one delivery (G2 §"payload"): `previous` is `null` on create, only the
/// changed keys on change, the last full state on delete; `data` is `null` on delete.
#[derive(Clone, Debug, Serialize)]
pub struct Payload {
    pub meta: Meta,
    pub data: Option<Value>,
    pub previous: Option<Value>,
}

/// `meta`: ids are strings, `timestamp` RFC 3339 with milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Meta {
    pub action: Action,
    pub entity: &'static str,
    pub entity_id: String,
    /// The event's UUID: the same in every attempt, duplicate and subscription.
    pub id: String,
    /// One UUID per write: the events one request caused share it.
    pub correlation_id: String,
    pub company_id: String,
    /// Who made the change.
    pub user_id: String,
    pub webhook_id: String,
    pub webhook_owner_id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub version: &'static str,
    pub change_source: ChangeSource,
    pub is_bulk_edit: bool,
    pub attempt: u32,
    pub host: String,
    pub permitted_user_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_to_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_from_id: Option<String>,
    pub timestamp: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Change,
    Delete,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Change => "change",
            Action::Delete => "delete",
        }
    }
}

/// A custom field value as webhooks v2 carry it: typed, option ids only (MG).
#[derive(Serialize)]
struct TypedField {
    #[serde(rename = "type")]
    field_type: &'static str,
    #[serde(flatten)]
    content: TypedContent,
}

#[derive(Serialize)]
#[serde(untagged)]
enum TypedContent {
    Value {
        value: Value,
    },
    Monetary {
        value: Value,
        currency: String,
    },
    Id {
        id: u64,
    },
    Set {
        values: Vec<OptionId>,
    },
    Time {
        value: String,
        timezone_id: u32,
    },
    Range {
        from: String,
        until: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        timezone_id: Option<u32>,
    },
    Address(Box<AddressParts>),
}

#[derive(Serialize)]
struct OptionId {
    id: u32,
}

#[derive(Serialize)]
struct AddressParts {
    value: String,
    formatted_address: String,
    country: String,
    locality: String,
    sublocality: Option<String>,
    route: String,
    street_number: String,
    subpremise: Option<String>,
    postal_code: String,
    admin_area_level_1: String,
    admin_area_level_2: Option<String>,
}

/// A number as the API writes it: whole values without a fraction (`1200`, not `1200.0`).
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        Value::from(n)
    }
}

fn typed(field: &FieldDef, value: &CfVal) -> TypedField {
    let field_type = field.cf.map_or("varchar", CfType::name);
    let timezone = |tz: u8| TIMEZONES[tz as usize % TIMEZONES.len()].0;
    let content = match value {
        CfVal::Str(s) => TypedContent::Value {
            value: Value::from(&**s),
        },
        CfVal::Num(n) => TypedContent::Value { value: number(*n) },
        CfVal::Date(d) => TypedContent::Value {
            value: Value::from(date(*d)),
        },
        CfVal::Money(value, currency) => TypedContent::Monetary {
            value: number(*value),
            currency: currency.to_string(),
        },
        CfVal::Opt(id) => TypedContent::Id { id: u64::from(*id) },
        CfVal::Id(id) => TypedContent::Id { id: *id },
        CfVal::Set(ids) => TypedContent::Set {
            values: ids.iter().map(|id| OptionId { id: *id }).collect(),
        },
        CfVal::Time(seconds, tz) => TypedContent::Time {
            value: hms(*seconds),
            timezone_id: timezone(*tz),
        },
        CfVal::TimeRange(from, until, tz) => TypedContent::Range {
            from: hms(*from),
            until: hms(*until),
            timezone_id: Some(timezone(*tz)),
        },
        CfVal::DateRange(from, until) => TypedContent::Range {
            from: date(*from),
            until: date(*until),
            timezone_id: None,
        },
        CfVal::Addr(a) => TypedContent::Address(Box::new(AddressParts {
            value: a.formatted(),
            formatted_address: a.formatted(),
            country: a.country.to_string(),
            locality: a.locality.to_string(),
            sublocality: a.sublocality.as_deref().map(str::to_string),
            route: a.route.to_string(),
            street_number: a.street_number.to_string(),
            subpremise: a.subpremise.as_deref().map(str::to_string),
            postal_code: a.postal_code.to_string(),
            admin_area_level_1: a.admin_area_level_1.to_string(),
            admin_area_level_2: a.admin_area_level_2.as_deref().map(str::to_string),
        })),
    };
    TypedField {
        field_type,
        content,
    }
}

/// `data.custom_fields`: the record's non-empty custom fields by hash, typed.
fn typed_custom_fields(db: &Db, entity: FieldEntity, rec_id: u64, cf: &Cf) -> Value {
    let fields: Map<String, Value> = db
        .custom_fields(entity)
        .filter_map(|f| {
            let value = crate::seed::cf_value(db, entity, rec_id, cf, f)?;
            let typed = serde_json::to_value(typed(f, &value)).ok()?;
            Some((f.key.clone(), typed))
        })
        .collect();
    Value::Object(fields)
}

// ------------------------------------------------------------------------------ entities

/// A record type webhooks v2 report (G2 §"event_object"). Users are covered too, but nothing
/// in the simulator writes them.
trait Covered: Rec + Clone {
    const ENTITY: &'static str;
    fn table(db: &Db) -> &Table<Self>;
    fn table_mut(db: &mut Db) -> &mut Table<Self>;
    /// `data` as webhooks carry it: the entity's canonical API object (as
    /// `/__sim/truth/{entity}` renders it) with related objects as ids and typed custom fields.
    fn data(&self, db: &Db) -> Value;
    fn public_id(&self) -> String {
        self.id().to_string()
    }
    /// Who owns the record (sees it even when it is private).
    fn owner(&self) -> Option<u64> {
        None
    }
    /// `visible_to: 1`: the owner and admins only.
    fn private(&self) -> bool {
        false
    }
}

fn rendered(render: impl FnOnce(&mut J)) -> Value {
    let mut j = J::with_capacity(2048);
    render(&mut j);
    serde_json::from_slice(&j.buf).unwrap_or(Value::Null)
}

/// Replaces the API's custom fields (v2 `custom_fields`, or v1 top-level hash keys with their
/// `_currency`-style siblings) by the typed webhook form.
fn with_typed_custom_fields(mut v: Value, custom_fields: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.retain(|k, _| k != "custom_fields" && !is_field_hash(k));
        o.insert("custom_fields".into(), custom_fields);
    }
    v
}

fn is_field_hash(key: &str) -> bool {
    key.len() >= 40 && key.as_bytes()[..40].iter().all(u8::is_ascii_hexdigit)
}

/// `impl Covered` with `ENTITY` and the record's table in the `Db`; `owned` adds the owner and
/// `visible_to` of the records that have both.
macro_rules! covered {
    // Records with custom fields, whose `data` is their v2 object.
    (v2 $ty:ty, $entity:literal, $table:ident, $fields:expr, $render:path) => {
        covered!(owned $ty, $entity, $table;
            fn data(&self, db: &Db) -> Value {
                with_custom_fields(db, $fields, self.id, &self.cf, |j| {
                    $render(j, db, self, &V2Opts::default())
                })
            }
        );
    };
    (owned $ty:ty, $entity:literal, $($table:ident).+; $($items:tt)*) => {
        covered!($ty, $entity, $($table).+;
            $($items)*
            fn owner(&self) -> Option<u64> {
                Some(self.owner_id)
            }
            fn private(&self) -> bool {
                self.visible_to == 1
            }
        );
    };
    ($ty:ty, $entity:literal, $($table:ident).+; $($items:tt)*) => {
        impl Covered for $ty {
            const ENTITY: &'static str = $entity;
            fn table(db: &Db) -> &Table<Self> {
                &db.$($table).+
            }
            fn table_mut(db: &mut Db) -> &mut Table<Self> {
                &mut db.$($table).+
            }
            $($items)*
        }
    };
}

/// The record's rendered object with its custom fields in the typed webhook form.
fn with_custom_fields(
    db: &Db,
    entity: FieldEntity,
    rec_id: u64,
    cf: &Cf,
    render: impl FnOnce(&mut J),
) -> Value {
    with_typed_custom_fields(
        rendered(render),
        typed_custom_fields(db, entity, rec_id, cf),
    )
}

covered!(v2 Deal, "deal", deals, FieldEntity::Deal, render::deal_v2);

covered!(v2 Person, "person", persons, FieldEntity::Person, render::person_v2);

covered!(v2 Org, "organization", orgs, FieldEntity::Org, render::org_v2);

covered!(v2 Product, "product", products, FieldEntity::Product, render::product_v2);

covered!(Activity, "activity", activities;
    fn data(&self, db: &Db) -> Value {
        rendered(|j| render::activity_v2(j, db, self))
    }
    fn owner(&self) -> Option<u64> {
        Some(self.owner_id)
    }
);

covered!(Pipeline, "pipeline", pipelines;
    fn data(&self, _db: &Db) -> Value {
        rendered(|j| render::pipeline_v2(j, self))
    }
);

covered!(Stage, "stage", stages;
    fn data(&self, _db: &Db) -> Value {
        rendered(|j| render::stage_v2(j, self))
    }
);

covered!(DealProduct, "deal_product", deal_products.table;
    fn data(&self, _db: &Db) -> Value {
        rendered(|j| render::deal_product_v2(j, self))
    }
);

/// The related objects notes' v1 form nests; webhooks carry their ids only (MG: "slim").
const NOTE_RELATED_OBJECTS: [&str; 5] = ["deal", "organization", "person", "project", "user"];

covered!(Note, "note", notes;
    fn data(&self, db: &Db) -> Value {
        let mut v = rendered(|j| render::note_v1(j, db, self, self.user_id));
        if let Some(o) = v.as_object_mut() {
            o.retain(|k, _| !NOTE_RELATED_OBJECTS.contains(&k.as_str()));
        }
        v
    }
    fn owner(&self) -> Option<u64> {
        Some(self.user_id)
    }
);

covered!(owned Lead, "lead", leads;
    fn data(&self, db: &Db) -> Value {
        with_custom_fields(db, FieldEntity::Lead, self.id, &self.cf, |j| {
            render::lead_v1(j, db, self)
        })
    }
    fn public_id(&self) -> String {
        self.uuid.to_string()
    }
);

macro_rules! for_each_covered {
    ($f:ident ! ($($arg:tt)*)) => {
        $f!(Deal, $($arg)*);
        $f!(Person, $($arg)*);
        $f!(Org, $($arg)*);
        $f!(Product, $($arg)*);
        $f!(Activity, $($arg)*);
        $f!(Note, $($arg)*);
        $f!(Lead, $($arg)*);
        $f!(Pipeline, $($arg)*);
        $f!(Stage, $($arg)*);
        $f!(DealProduct, $($arg)*);
    };
}

// ------------------------------------------------------------------------------ events

/// Who made a write, and when.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    pub now: Ms,
    pub user_id: u64,
    pub source: ChangeSource,
}

impl Origin {
    pub fn of(c: &Ctx) -> Origin {
        Origin {
            now: c.now,
            user_id: c.me,
            source: c.source,
        }
    }
    /// A change the company's user 1 makes in the web app (the admin API's edits).
    pub fn app(now: Ms) -> Origin {
        Origin {
            now,
            user_id: 1,
            source: ChangeSource::App,
        }
    }
}

/// One merge a write performed, so its events carry `merged_to_id` / `merged_from_id`.
#[derive(Clone, Debug)]
struct MergeNote {
    entity: &'static str,
    merged: u64,
    survivor: u64,
}

/// What one write did to one record.
struct Event {
    action: Action,
    entity: &'static str,
    entity_id: String,
    data: Option<Value>,
    previous: Option<Value>,
    owner: Option<u64>,
    private: bool,
    merged_to_id: Option<String>,
    merged_from_id: Option<String>,
}

/// The old values of the keys that differ (MG: "only changed keys, old values"); custom
/// fields compare one by one, a previously empty one showing as `null`.
fn changed_keys(old: &Value, new: &Value) -> Map<String, Value> {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return Map::new();
    };
    let mut previous = Map::new();
    for (key, value) in new {
        let before = old.get(key).unwrap_or(&Value::Null);
        if key != "custom_fields" && before != value {
            previous.insert(key.clone(), before.clone());
        }
    }
    for (key, value) in old {
        if key != "custom_fields" && !new.contains_key(key) {
            previous.insert(key.clone(), value.clone());
        }
    }
    let empty = Map::new();
    let fields = |o: &Map<String, Value>| -> Map<String, Value> {
        o.get("custom_fields")
            .and_then(Value::as_object)
            .unwrap_or(&empty)
            .clone()
    };
    let (old_fields, new_fields) = (fields(old), fields(new));
    let mut fields_before = Map::new();
    for key in old_fields.keys().chain(new_fields.keys()) {
        let before = old_fields.get(key).unwrap_or(&Value::Null);
        if before != new_fields.get(key).unwrap_or(&Value::Null) {
            fields_before.insert(key.clone(), before.clone());
        }
    }
    if !fields_before.is_empty() {
        previous.insert("custom_fields".into(), Value::Object(fields_before));
    }
    previous
}

fn live<T: Rec>(row: Option<&T>) -> Option<&T> {
    row.filter(|r| r.deleted_time().is_none())
}

/// The events of one table's journal.
fn table_events<T: Covered>(
    db: &Db,
    journal: Vec<(u64, Option<T>)>,
    merges: &[MergeNote],
    out: &mut Vec<Event>,
) {
    for (id, before) in journal {
        let after = live(T::table(db).get(id));
        let merged_to_id = merges
            .iter()
            .find(|m| m.entity == T::ENTITY && m.merged == id)
            .map(|m| m.survivor.to_string());
        let merged_from_id = merges
            .iter()
            .find(|m| m.entity == T::ENTITY && m.survivor == id)
            .map(|m| m.merged.to_string());
        let event = |action, data, previous, row: &T| Event {
            action,
            entity: T::ENTITY,
            entity_id: row.public_id(),
            data,
            previous,
            owner: row.owner(),
            private: row.private(),
            merged_to_id: merged_to_id.clone(),
            merged_from_id: merged_from_id.clone(),
        };
        match (live(before.as_ref()), after) {
            (None, Some(row)) => out.push(event(Action::Create, Some(row.data(db)), None, row)),
            (Some(old), None) => out.push(event(Action::Delete, None, Some(old.data(db)), old)),
            (Some(old), Some(row)) => {
                let data = row.data(db);
                let previous = changed_keys(&old.data(db), &data);
                if !previous.is_empty() || merged_from_id.is_some() {
                    out.push(event(
                        Action::Change,
                        Some(data),
                        Some(Value::Object(previous)),
                        row,
                    ));
                }
            }
            (None, None) => {}
        }
    }
}

fn start_journals(db: &mut Db) {
    macro_rules! start {
        ($t:ty,) => {
            <$t as Covered>::table_mut(db).start_journal()
        };
    }
    for_each_covered!(start!());
}

fn collect_events(db: &mut Db) -> Vec<Event> {
    let merges = std::mem::take(&mut db.webhook_outbox.merges);
    let mut events = Vec::new();
    macro_rules! collect {
        ($t:ty,) => {{
            let journal = <$t as Covered>::table_mut(db).take_journal();
            table_events::<$t>(db, journal, &merges, &mut events);
        }};
    }
    for_each_covered!(collect!());
    // A merge reports the merged-away record's delete first, then the survivor's change.
    events.sort_by_key(|e| match (&e.merged_to_id, &e.merged_from_id, e.action) {
        (Some(_), _, Action::Delete) => 0,
        (_, Some(_), Action::Change) => 1,
        _ => 2,
    });
    events
}

/// Runs one write and queues the webhook events of what it changed. Without an active v2
/// subscription (or delivery running) it only runs the write.
pub fn observe<R>(db: &mut Db, origin: Origin, write: impl FnOnce(&mut Db) -> R) -> R {
    if db.webhook_outbox.observing || db.webhook_outbox.queue.is_none() || !db.webhooks.has_active()
    {
        return write(db);
    }
    db.webhook_outbox.observing = true;
    db.webhook_outbox.merges.clear();
    start_journals(db);
    let result = write(db);
    let events = collect_events(db);
    db.webhook_outbox.observing = false;
    publish(db, origin, events);
    result
}

/// The users who may see a record: everyone active, or only admins and the owner when it is
/// private.
fn permitted_users(db: &Db, event: &Event) -> Vec<u64> {
    db.users
        .rows
        .iter()
        .filter(|u| u.active && u.deleted_time.is_none())
        .filter(|u| !event.private || u.is_admin || Some(u.id) == event.owner)
        .map(|u| u.id)
        .collect()
}

fn publish(db: &mut Db, origin: Origin, events: Vec<Event>) {
    if events.is_empty() {
        return;
    }
    let seed = db.seed;
    let outbox = &mut db.webhook_outbox;
    // Two writes never share a timestamp, so newest-wins by `meta.timestamp` is well defined.
    let at = origin.now.max(outbox.last_timestamp + 1);
    outbox.last_timestamp = at;
    outbox.writes += 1;
    let correlation_id = Rng::for_item(seed, "webhook_correlation", outbox.writes)
        .uuid()
        .to_string();
    let first_event = outbox.events;
    outbox.events += events.len() as u64;
    let db: &Db = db;
    let mut queued = Vec::new();
    for (n, event) in events.into_iter().enumerate() {
        let permitted = permitted_users(db, &event);
        let meta = Meta {
            action: event.action,
            entity: event.entity,
            entity_id: event.entity_id.clone(),
            id: Rng::for_item(seed, "webhook_event", first_event + n as u64)
                .uuid()
                .to_string(),
            correlation_id: correlation_id.clone(),
            company_id: db.company.id.to_string(),
            user_id: origin.user_id.to_string(),
            webhook_id: String::new(),
            webhook_owner_id: String::new(),
            kind: "general",
            version: "2.0",
            change_source: origin.source,
            is_bulk_edit: false,
            attempt: 1,
            host: format!("{}.pipedrive.com", db.company.domain),
            permitted_user_ids: permitted.iter().map(u64::to_string).collect(),
            merged_to_id: event.merged_to_id.clone(),
            merged_from_id: event.merged_from_id.clone(),
            timestamp: iso_ms(at),
        };
        for subscription in db.webhooks.subscribed(event.action.name(), event.entity) {
            if !permitted.contains(&subscription.user_id) {
                continue;
            }
            let mut meta = meta.clone();
            meta.webhook_id = subscription.id.to_string();
            meta.webhook_owner_id = subscription.owner_id.to_string();
            queued.push(Queued {
                subscription,
                payload: Payload {
                    meta,
                    data: event.data.clone(),
                    previous: event.previous.clone(),
                },
            });
        }
    }
    db.webhook_outbox.send(queued);
}

// ------------------------------------------------------------------------------ outbox

/// One delivery waiting for its first attempt.
struct Queued {
    subscription: Subscription,
    payload: Payload,
}

/// The write side of delivery, kept in the [`Db`] so every write path reaches it under the
/// lock it already holds. Sending never waits.
#[derive(Default)]
pub struct Outbox {
    queue: Option<(mpsc::UnboundedSender<Queued>, Arc<Deliveries>)>,
    merges: Vec<MergeNote>,
    observing: bool,
    /// Writes and events so far: the inputs of their seeded UUIDs.
    writes: u64,
    events: u64,
    last_timestamp: Ms,
}

impl Outbox {
    /// Tells the events of the running write that `merged` was merged into `survivor`.
    pub fn note_merge(&mut self, entity: &'static str, merged: u64, survivor: u64) {
        if self.observing {
            self.merges.push(MergeNote {
                entity,
                merged,
                survivor,
            });
        }
    }
    fn send(&self, queued: Vec<Queued>) {
        let Some((queue, deliveries)) = &self.queue else {
            return;
        };
        for q in queued {
            deliveries.count(q.subscription.id, |c| {
                c.queued += 1;
                c.pending += 1;
            });
            if queue.send(q).is_err() {
                return;
            }
        }
    }
}

// ------------------------------------------------------------------------------ delivery

/// Delivery counters, per subscription and in total (`GET /__sim/webhooks/stats`).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct DeliveryCounts {
    /// Deliveries queued: one per event and matching subscription.
    pub queued: u64,
    /// HTTP requests sent: first attempts, retries and duplicates.
    pub attempted: u64,
    /// Deliveries a receiver accepted (2xx) on some attempt.
    pub succeeded: u64,
    /// Deliveries whose four attempts all failed.
    pub failed: u64,
    /// Retry requests sent (attempts 2 to 4).
    pub retried: u64,
    /// Deliveries the drop fault discarded.
    pub dropped: u64,
    /// Extra copies the duplicate fault sent.
    pub duplicated: u64,
    /// Deliveries the reorder fault held back behind the next one.
    pub reordered: u64,
    /// Deliveries the slow fault delayed.
    pub slowed: u64,
    /// Deliveries not sent because their subscription was banned.
    pub lost_to_ban: u64,
    /// Times the subscription was banned.
    pub bans: u64,
    /// Deliveries not finished yet (queued or waiting for a retry).
    pub pending: u64,
}

impl DeliveryCounts {
    fn add(&mut self, o: &DeliveryCounts) {
        self.queued += o.queued;
        self.attempted += o.attempted;
        self.succeeded += o.succeeded;
        self.failed += o.failed;
        self.retried += o.retried;
        self.dropped += o.dropped;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.slowed += o.slowed;
        self.lost_to_ban += o.lost_to_ban;
        self.bans += o.bans;
        self.pending += o.pending;
    }
}

#[derive(Default)]
struct SubscriptionState {
    counts: DeliveryCounts,
    /// Failed first attempts since the last ban or success.
    failed_first_attempts: u32,
    banned_until: Option<Ms>,
    last_success: Option<Ms>,
}

#[derive(Serialize)]
struct SubscriptionView {
    #[serde(flatten)]
    counts: DeliveryCounts,
    failed_first_attempts: u32,
    banned_until: Option<String>,
}

#[derive(Serialize)]
struct StatsView {
    #[serde(flatten)]
    totals: DeliveryCounts,
    subscriptions: BTreeMap<String, SubscriptionView>,
}

/// Delivery state shared by the write path, the delivery tasks and the admin API.
pub struct Deliveries {
    options: RwLock<WebhookOptions>,
    /// Deliveries routed since the faults were last set: the input of their fault draws.
    fault_sequence: AtomicU64,
    subscriptions: Mutex<HashMap<u64, SubscriptionState>>,
}

impl Deliveries {
    pub fn new(options: WebhookOptions) -> Deliveries {
        Deliveries {
            options: RwLock::new(options),
            fault_sequence: AtomicU64::new(0),
            subscriptions: Mutex::new(HashMap::new()),
        }
    }
    fn options(&self) -> WebhookOptions {
        self.options
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    fn scaled(&self, d: Duration) -> Duration {
        d.mul_f64(self.options().time_scale)
    }
    fn with<R>(&self, id: u64, f: impl FnOnce(&mut SubscriptionState) -> R) -> R {
        let mut subs = self.subscriptions.lock().unwrap_or_else(|e| e.into_inner());
        f(subs.entry(id).or_default())
    }
    fn count(&self, id: u64, f: impl FnOnce(&mut DeliveryCounts)) {
        self.with(id, |s| f(&mut s.counts));
    }
    fn stats(&self, now: Ms) -> StatsView {
        let subs = self.subscriptions.lock().unwrap_or_else(|e| e.into_inner());
        let mut totals = DeliveryCounts::default();
        let mut subscriptions = BTreeMap::new();
        for (id, s) in subs.iter() {
            totals.add(&s.counts);
            subscriptions.insert(
                id.to_string(),
                SubscriptionView {
                    counts: s.counts,
                    failed_first_attempts: s.failed_first_attempts,
                    banned_until: s.banned_until.filter(|t| *t > now).map(iso_ms),
                },
            );
        }
        StatsView {
            totals,
            subscriptions,
        }
    }
}

/// The faults drawn for one delivery.
#[derive(Clone, Copy, Default)]
struct Faults {
    drop: bool,
    duplicate: bool,
    reorder: bool,
    slow: Option<Duration>,
}

impl Faults {
    fn draw(seed: u64, sequence: u64, f: &WebhookFaults) -> Faults {
        let mut r = Rng::for_item(seed, "webhook_fault", sequence);
        let (drop, duplicate, reorder, slow) = (r.unit(), r.unit(), r.unit(), r.unit());
        Faults {
            drop: drop < f.drop_rate,
            duplicate: duplicate < f.duplicate_rate,
            reorder: reorder < f.reorder_rate,
            slow: (slow < f.slow_rate).then(|| Duration::from_millis(f.slow_ms)),
        }
    }
}

struct Job {
    queued: Queued,
    faults: Faults,
}

/// Connects the company's writes to delivery and starts the routing task. Delivery stops when
/// [`stop`] drops the queue.
pub fn start(st: &Arc<State>) {
    let (tx, rx) = mpsc::unbounded_channel();
    st.db
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .webhook_outbox
        .queue = Some((tx, st.webhook_deliveries.clone()));
    tokio::spawn(route(st.clone(), rx));
}

/// Drops the queue: the routing task and the per-subscription tasks end once it drains.
pub fn stop(st: &State) {
    st.db
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .webhook_outbox
        .queue = None;
}

/// Draws each delivery's faults in queue order and hands it to its subscription's queue.
async fn route(st: Arc<State>, mut rx: mpsc::UnboundedReceiver<Queued>) {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("webhook delivery has no HTTP client: {e}");
            return;
        }
    };
    let mut queues: HashMap<u64, mpsc::UnboundedSender<Job>> = HashMap::new();
    while let Some(queued) = rx.recv().await {
        let deliveries = &st.webhook_deliveries;
        let sequence = deliveries.fault_sequence.fetch_add(1, Ordering::Relaxed);
        let faults = Faults::draw(st.opts.seed, sequence, &deliveries.options().faults);
        let id = queued.subscription.id;
        let queue = queues.entry(id).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(serve_subscription(st.clone(), client.clone(), rx));
            tx
        });
        let _ = queue.send(Job { queued, faults });
    }
}

/// One subscription's first attempts, one at a time in queue order.
async fn serve_subscription(
    st: Arc<State>,
    client: reqwest::Client,
    mut rx: mpsc::UnboundedReceiver<Job>,
) {
    let mut held: Option<Job> = None;
    loop {
        let next = match &held {
            None => rx.recv().await,
            Some(_) => {
                let hold = st.webhook_deliveries.scaled(REORDER_HOLD);
                match tokio::time::timeout(hold, rx.recv()).await {
                    Ok(next) => next,
                    Err(_) => {
                        if let Some(job) = held.take() {
                            first_attempt(&st, &client, job).await;
                        }
                        continue;
                    }
                }
            }
        };
        let Some(job) = next else {
            if let Some(job) = held.take() {
                first_attempt(&st, &client, job).await;
            }
            return;
        };
        if held.is_none() && job.faults.reorder && !job.faults.drop {
            st.webhook_deliveries
                .count(job.queued.subscription.id, |c| c.reordered += 1);
            held = Some(job);
            continue;
        }
        first_attempt(&st, &client, job).await;
        if let Some(job) = held.take() {
            first_attempt(&st, &client, job).await;
        }
    }
}

async fn first_attempt(st: &Arc<State>, client: &reqwest::Client, job: Job) {
    let deliveries = &st.webhook_deliveries;
    let id = job.queued.subscription.id;
    if job.faults.drop {
        deliveries.count(id, |c| {
            c.dropped += 1;
            c.pending = c.pending.saturating_sub(1);
        });
        return;
    }
    if let Some(delay) = job.faults.slow {
        deliveries.count(id, |c| c.slowed += 1);
        tokio::time::sleep(delay).await;
    }
    let now = st.clock.now();
    let banned = deliveries.with(id, |s| s.banned_until.is_some_and(|t| t > now));
    if banned {
        deliveries.count(id, |c| {
            c.lost_to_ban += 1;
            c.pending = c.pending.saturating_sub(1);
        });
        return;
    }
    let mut queued = job.queued;
    if attempt(st, client, &mut queued, 1).await {
        if job.faults.duplicate {
            deliveries.count(id, |c| c.duplicated += 1);
            post(st, client, &queued).await;
        }
        return;
    }
    let time_scale = deliveries.options().time_scale;
    deliveries.with(id, |s| {
        s.failed_first_attempts += 1;
        if s.failed_first_attempts >= BAN_AFTER_FAILURES {
            s.failed_first_attempts = 0;
            s.banned_until = Some(now + (BAN_MS as f64 * time_scale) as Ms);
            s.counts.bans += 1;
        }
    });
    tokio::spawn(retry(st.clone(), client.clone(), queued));
}

/// Attempts 2 to 4, each after its delay; all failing makes one failed delivery.
async fn retry(st: Arc<State>, client: reqwest::Client, mut queued: Queued) {
    let deliveries = &st.webhook_deliveries;
    let id = queued.subscription.id;
    for (n, delay) in RETRY_DELAYS.into_iter().enumerate() {
        tokio::time::sleep(deliveries.scaled(delay)).await;
        deliveries.count(id, |c| c.retried += 1);
        if attempt(&st, &client, &mut queued, n as u32 + 2).await {
            return;
        }
    }
    deliveries.count(id, |c| {
        c.failed += 1;
        c.pending = c.pending.saturating_sub(1);
    });
    let now = st.clock.now();
    let last_success = deliveries.with(id, |s| s.last_success);
    let mut db = st.db.write().unwrap_or_else(|e| e.into_inner());
    let since = last_success.or(db.webhooks.added(id));
    if since.is_some_and(|t| now - t >= DEACTIVATE_AFTER_MS) {
        db.webhooks.deactivate(id, now, DEACTIVATED_REASON);
    }
}

/// Sends attempt `n`; true if the receiver accepted it (which finishes the delivery).
async fn attempt(st: &State, client: &reqwest::Client, queued: &mut Queued, n: u32) -> bool {
    queued.payload.meta.attempt = n;
    let status = post(st, client, queued).await;
    let accepted = status.is_some_and(|s| (200..300).contains(&s));
    let id = queued.subscription.id;
    if accepted {
        let now = st.clock.now();
        st.webhook_deliveries.with(id, |s| {
            s.counts.succeeded += 1;
            s.counts.pending = s.counts.pending.saturating_sub(1);
            s.failed_first_attempts = 0;
            s.last_success = Some(now);
        });
    }
    accepted
}

/// One HTTP request: the status, or `None` when no answer came in time.
async fn post(st: &State, client: &reqwest::Client, queued: &Queued) -> Option<u16> {
    let deliveries = &st.webhook_deliveries;
    let sub = &queued.subscription;
    deliveries.count(sub.id, |c| c.attempted += 1);
    let mut request = client
        .post(&sub.url)
        .timeout(deliveries.scaled(TIMEOUT))
        .json(&queued.payload);
    if let Some((user, password)) = &sub.basic_auth {
        request = request.basic_auth(user, password.as_ref());
    }
    let status = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            // The answer counts only once its body has arrived within the timeout too.
            match response.bytes().await {
                Ok(_) => Some(status),
                Err(_) => None,
            }
        }
        Err(_) => None,
    };
    let now = st.clock.now();
    st.db
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .webhooks
        .record_attempt(sub.id, now, status);
    status
}

// ------------------------------------------------------------------------------ admin

/// `/__sim/webhooks/...`: `GET stats`, `GET|POST faults`, `GET|POST timing`.
pub fn admin(st: &State, method: &str, segs: &[&str], body: &[u8]) -> Option<(u16, Value)> {
    let deliveries = &st.webhook_deliveries;
    let json = |v: Result<Value, serde_json::Error>| match v {
        Ok(v) => (200, v),
        Err(e) => (500, serde_json::json!({ "error": e.to_string() })),
    };
    let bad = |message: String| (400, serde_json::json!({ "error": message }));
    Some(match (method, segs) {
        ("GET", ["stats"]) => json(serde_json::to_value(deliveries.stats(st.clock.now()))),
        ("GET", ["faults"]) => json(serde_json::to_value(deliveries.options().faults)),
        ("POST", ["faults"]) => match serde_json::from_slice::<WebhookFaults>(body) {
            Ok(faults) => match faults.validate() {
                Ok(()) => {
                    deliveries
                        .options
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .faults = faults.clone();
                    deliveries.fault_sequence.store(0, Ordering::Relaxed);
                    json(serde_json::to_value(faults))
                }
                Err(message) => bad(message),
            },
            Err(e) => bad(e.to_string()),
        },
        ("GET", ["timing"]) => json(Ok(timing(deliveries.options().time_scale))),
        ("POST", ["timing"]) => {
            #[derive(Deserialize)]
            struct Timing {
                time_scale: f64,
            }
            match serde_json::from_slice::<Timing>(body) {
                Ok(t) if t.time_scale > 0.0 && t.time_scale.is_finite() => {
                    deliveries
                        .options
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .time_scale = t.time_scale;
                    json(Ok(timing(t.time_scale)))
                }
                Ok(_) => bad("time_scale must be above 0".into()),
                Err(e) => bad(e.to_string()),
            }
        }
        _ => return None,
    })
}

/// The effective waits at a time scale, so a test can see what it set.
fn timing(time_scale: f64) -> Value {
    let ms = |d: Duration| d.mul_f64(time_scale).as_millis() as u64;
    serde_json::json!({
        "time_scale": time_scale,
        "timeout_ms": ms(TIMEOUT),
        "retry_delays_ms": RETRY_DELAYS.map(ms),
        "ban_after_failures": BAN_AFTER_FAILURES,
        "ban_ms": (BAN_MS as f64 * time_scale) as u64,
        "deactivate_after_ms": DEACTIVATE_AFTER_MS,
    })
}
