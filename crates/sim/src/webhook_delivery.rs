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
//!
//! This module makes the events; `webhook_sender` runs the queues and attempts, and
//! `webhook_outbox` holds what the company keeps between them.

use crate::json::J;
use crate::model::*;
use crate::render::{self, V2Opts};
use crate::respond::Ctx;
use crate::util::{Ms, Rng, date, hms, iso_ms};
use crate::webhook_outbox::*;
use serde::Serialize;
use serde_json::{Map, Value};

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
