//! Churn: a seeded stream of changes to the company, as its users would make them while a
//! sync runs. Each change is an API request (method, path, JSON body) handed to the same
//! write dispatcher client requests reach, so `update_time`, deal flow, soft deletes,
//! archiving and merges behave exactly as they do for API writes.
//!
//! `steps` apply changes synchronously; a rate (changes per second) runs them from a tokio
//! task. The changes depend only on the seed and on how many were applied before, so the same
//! seed and number of steps give the same changes.

use crate::list::Query;
use crate::model::*;
use crate::respond::Ctx;
use crate::util::{Ms, date, days_of};
use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Separates the churn stream from every other stream derived from the seed.
const STREAM: u64 = 0x6368_7572_6e5f_7631;
/// Draws per change before giving up on finding an applicable one (an empty company).
const ATTEMPTS: usize = 16;
/// The most changes one tick of the timed mode applies, however far behind it fell.
const MAX_BURST: f64 = 10_000.0;

/// What a change does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Create,
    Update,
    Delete,
    Archive,
    Unarchive,
    StageMove,
    Merge,
    FieldAdd,
    FieldRename,
    FieldDelete,
}

impl Kind {
    /// Kinds with their weights: most changes are edits, a few reshape the company.
    const WEIGHTED: [(Kind, u32); 10] = [
        (Kind::Update, 34),
        (Kind::Create, 18),
        (Kind::StageMove, 10),
        (Kind::Delete, 8),
        (Kind::Merge, 6),
        (Kind::Archive, 4),
        (Kind::Unarchive, 3),
        (Kind::FieldAdd, 3),
        (Kind::FieldRename, 2),
        (Kind::FieldDelete, 2),
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Create => "create",
            Kind::Update => "update",
            Kind::Delete => "delete",
            Kind::Archive => "archive",
            Kind::Unarchive => "unarchive",
            Kind::StageMove => "stage_move",
            Kind::Merge => "merge",
            Kind::FieldAdd => "field_add",
            Kind::FieldRename => "field_rename",
            Kind::FieldDelete => "field_delete",
        }
    }

    fn entities(self) -> &'static [Entity] {
        use Entity::*;
        match self {
            Kind::Create | Kind::Update | Kind::Delete => &Entity::ALL,
            Kind::Archive | Kind::Unarchive => &[Deals, Leads],
            Kind::StageMove => &[Deals],
            Kind::Merge => &[Persons, Organizations, Deals],
            Kind::FieldAdd | Kind::FieldRename | Kind::FieldDelete => {
                &[Deals, Persons, Organizations, Products, Activities]
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entity {
    Deals,
    Persons,
    Organizations,
    Activities,
    Products,
    Notes,
    Leads,
}

impl Entity {
    const ALL: [Entity; 7] = [
        Entity::Deals,
        Entity::Persons,
        Entity::Organizations,
        Entity::Activities,
        Entity::Products,
        Entity::Notes,
        Entity::Leads,
    ];

    fn name(self) -> &'static str {
        match self {
            Entity::Deals => "deals",
            Entity::Persons => "persons",
            Entity::Organizations => "organizations",
            Entity::Activities => "activities",
            Entity::Products => "products",
            Entity::Notes => "notes",
            Entity::Leads => "leads",
        }
    }

    /// The v2 fields endpoint of an entity with custom fields written through v2.
    fn fields_path(self) -> Option<(&'static str, FieldEntity)> {
        match self {
            Entity::Deals => Some(("dealFields", FieldEntity::Deal)),
            Entity::Persons => Some(("personFields", FieldEntity::Person)),
            Entity::Organizations => Some(("organizationFields", FieldEntity::Org)),
            Entity::Products => Some(("productFields", FieldEntity::Product)),
            Entity::Activities => Some(("activityFields", FieldEntity::Activity)),
            Entity::Notes | Entity::Leads => None,
        }
    }
}

/// One change as the API request that makes it.
struct Request {
    kind: Kind,
    entity: Entity,
    version: u8,
    method: &'static str,
    path: String,
    body: Value,
}

impl Request {
    fn new(kind: Kind, entity: Entity, method: &'static str, path: String, body: Value) -> Self {
        let version = if matches!(entity, Entity::Notes | Entity::Leads) || kind == Kind::Merge {
            1
        } else {
            2
        };
        Request {
            kind,
            entity,
            version,
            method,
            path,
            body,
        }
    }
}

/// `GET /__sim/churn`: the rate and the changes applied so far.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChurnReport {
    pub per_second: f64,
    /// Changes applied (their request succeeded).
    pub applied: u64,
    /// Changes whose request the API refused; expected to stay 0.
    pub rejected: u64,
    /// The last refusal, `METHOD path: status body`, to debug a nonzero `rejected`.
    pub last_rejection: Option<String>,
    /// Applied changes by kind, then by entity: `{"update": {"deals": 12}}`.
    pub by_kind: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
}

/// `POST /__sim/churn`: `{"per_second": N}` sets the timed rate (0 stops it); `{"steps": N}`
/// applies N changes before answering.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChurnRequest {
    pub per_second: Option<f64>,
    pub steps: Option<u64>,
}

struct Engine {
    rng: ChaCha8Rng,
    report: ChurnReport,
}

/// What churn needs of the served company: its data, the clock writes are stamped by, and
/// its churn. The server's state provides it; churn names no type above itself.
pub trait Company: Send + Sync + 'static {
    fn db(&self) -> &std::sync::RwLock<Db>;
    /// The time a write made now is stamped with.
    fn write_now(&self) -> Ms;
    fn churn(&self) -> &Churn;
}

/// The churn of one simulator: its seeded stream, its counters and its timed driver.
pub struct Churn {
    engine: Mutex<Engine>,
    rate: watch::Sender<f64>,
    driver: Mutex<Option<JoinHandle<()>>>,
}

impl Churn {
    pub fn new(seed: u64) -> Churn {
        Churn {
            engine: Mutex::new(Engine {
                rng: ChaCha8Rng::seed_from_u64(seed ^ STREAM),
                report: ChurnReport::default(),
            }),
            rate: watch::Sender::new(0.0),
            driver: Mutex::new(None),
        }
    }

    pub fn report(&self) -> ChurnReport {
        let mut report = self.lock_engine().report.clone();
        report.per_second = *self.rate.borrow();
        report
    }

    fn lock_engine(&self) -> std::sync::MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `n` changes now, each stamped with the clock as it is applied.
    pub fn apply(&self, company: &impl Company, n: u64) {
        let mut engine = self.lock_engine();
        for _ in 0..n {
            let now = company.write_now();
            let mut db = company.db().write().unwrap_or_else(|e| e.into_inner());
            engine.step(&mut db, now);
        }
    }

    /// Sets the timed rate, starting the driver task if it is not running. Needs a tokio
    /// runtime when `per_second` > 0.
    pub fn set_rate<C: Company>(company: &Arc<C>, per_second: f64) {
        let per_second = if per_second.is_finite() {
            per_second.max(0.0)
        } else {
            0.0
        };
        let churn = company.churn();
        churn.rate.send_replace(per_second);
        if per_second > 0.0 {
            let mut driver = churn.driver.lock().unwrap_or_else(|e| e.into_inner());
            if driver.as_ref().is_none_or(JoinHandle::is_finished) {
                *driver = Some(tokio::spawn(drive(company.clone(), churn.rate.subscribe())));
            }
        }
    }

    /// Stops the timed driver (with the server).
    pub fn stop(&self) {
        self.rate.send_replace(0.0);
        if let Some(task) = self.driver.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

/// Applies changes at the current rate: the changes owed since the last tick, so the rate
/// holds however the ticks fall.
async fn drive<C: Company>(company: Arc<C>, mut rate: watch::Receiver<f64>) {
    let mut owed = 0.0;
    let mut last = Instant::now();
    loop {
        let per_second = *rate.borrow_and_update();
        if per_second <= 0.0 {
            if rate.changed().await.is_err() {
                return;
            }
            owed = 0.0;
            last = Instant::now();
            continue;
        }
        let tick = Duration::from_secs_f64((1.0 / per_second).clamp(0.005, 0.1));
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            changed = rate.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        let now = Instant::now();
        owed = (owed + per_second * (now - last).as_secs_f64()).min(MAX_BURST);
        last = now;
        let due = owed.floor();
        owed -= due;
        if due >= 1.0 {
            company.churn().apply(&*company, due as u64);
        }
    }
}

impl Engine {
    fn step(&mut self, db: &mut Db, now: Ms) {
        for _ in 0..ATTEMPTS {
            let kind = self.kind();
            let entities = kind.entities();
            let entity = entities[self.rng.random_range(0..entities.len())];
            if let Some(request) = self.plan(db, kind, entity, now) {
                self.send(db, now, request);
                return;
            }
        }
    }

    fn kind(&mut self) -> Kind {
        let total: u32 = Kind::WEIGHTED.iter().map(|(_, w)| w).sum();
        let mut draw = self.rng.random_range(0..total);
        for (kind, weight) in Kind::WEIGHTED {
            if draw < weight {
                return kind;
            }
            draw -= weight;
        }
        Kind::Update
    }

    fn send(&mut self, db: &mut Db, now: Ms, request: Request) {
        let query = Query(Vec::new());
        // Churn stands for the company's users working in the app, not for an API client.
        let ctx = Ctx {
            now,
            q: &query,
            me: 1,
            source: crate::webhook_outbox::ChangeSource::App,
        };
        // A DELETE carries no body.
        let body = if request.body.is_null() {
            String::new()
        } else {
            request.body.to_string()
        };
        let segs: Vec<&str> = request.path.split('/').collect();
        let resp = crate::write::dispatch(
            &ctx,
            db,
            request.version,
            request.method,
            &segs,
            body.as_bytes(),
        );
        let report = &mut self.report;
        if (200..300).contains(&resp.status) {
            report.applied += 1;
            *report
                .by_kind
                .entry(request.kind.name())
                .or_default()
                .entry(request.entity.name())
                .or_default() += 1;
        } else {
            report.rejected += 1;
            report.last_rejection = Some(format!(
                "{} v{} {} {body}: {} {}",
                request.method,
                request.version,
                request.path,
                resp.status,
                String::from_utf8_lossy(&resp.body)
            ));
        }
    }

    fn plan(&mut self, db: &Db, kind: Kind, entity: Entity, now: Ms) -> Option<Request> {
        match kind {
            Kind::Create => self.create(db, entity, now),
            Kind::Update => self.update(db, entity, now),
            Kind::Delete => self.delete(db, entity, now),
            Kind::Archive | Kind::Unarchive => self.archive(db, entity, kind, now),
            Kind::StageMove => self.stage_move(db, now),
            Kind::Merge => self.merge(db, entity, now),
            Kind::FieldAdd | Kind::FieldRename | Kind::FieldDelete => {
                self.field_change(db, entity, kind)
            }
        }
    }

    /// A random row `ok` accepts: from a random position onwards, wrapping around.
    fn pick<'a, T: Rec>(&mut self, table: &'a Table<T>, ok: impl Fn(&T) -> bool) -> Option<&'a T> {
        let len = table.rows.len();
        if len == 0 {
            return None;
        }
        let start = self.rng.random_range(0..len);
        (0..len)
            .map(|k| &table.rows[(start + k) % len])
            .find(|r| ok(r))
    }

    fn live_id<T: Rec>(&mut self, table: &Table<T>, now: Ms) -> Option<u64> {
        self.pick(table, |r| live(r, now)).map(Rec::id)
    }

    /// Sometimes links `body` (as `key`) to a random live record, sometimes not.
    fn maybe_link<T: Rec>(&mut self, body: &mut Value, key: &str, table: &Table<T>, now: Ms) {
        let id = if self.rng.random_bool(0.5) {
            self.live_id(table, now)
        } else {
            None
        };
        if let Some(id) = id {
            body[key] = id.into();
        }
    }

    fn word(&mut self) -> &'static str {
        const WORDS: [&str; 12] = [
            "Alpine", "Harbor", "Quartz", "Meadow", "Copper", "Nimbus", "Summit", "Willow",
            "Cobalt", "Prairie", "Lantern", "Orchid",
        ];
        WORDS[self.rng.random_range(0..WORDS.len())]
    }

    fn name(&mut self, what: &str) -> String {
        let word = self.word();
        let n: u16 = self.rng.random_range(1..10_000);
        format!("{word} {what} {n}")
    }

    fn amount(&mut self) -> f64 {
        f64::from(self.rng.random_range(1u32..500)) * 100.0
    }

    fn create(&mut self, db: &Db, entity: Entity, now: Ms) -> Option<Request> {
        let body = match entity {
            Entity::Deals => {
                let stage = self.pick(&db.stages, |s| live(s, now))?.id;
                let mut body = json!({
                    "title": self.name("deal"),
                    "value": self.amount(),
                    "currency": "EUR",
                    "stage_id": stage,
                });
                self.maybe_link(&mut body, "person_id", &db.persons, now);
                self.maybe_link(&mut body, "org_id", &db.orgs, now);
                body
            }
            Entity::Persons => {
                let name = self.name("person");
                let mailbox = name.to_lowercase().replace(' ', ".");
                let mut body = json!({
                    "name": name,
                    "emails": [{"value": format!("{mailbox}@example.com"), "primary": true, "label": "work"}],
                });
                self.maybe_link(&mut body, "org_id", &db.orgs, now);
                body
            }
            Entity::Organizations => json!({ "name": self.name("organization") }),
            Entity::Activities => {
                let mut body = json!({
                    "subject": self.name("call"),
                    "type": "call",
                    "due_date": date(days_of(now) + self.rng.random_range(0..30)),
                });
                self.maybe_link(&mut body, "deal_id", &db.deals, now);
                self.maybe_link(&mut body, "person_id", &db.persons, now);
                body
            }
            Entity::Products => {
                let n: u32 = self.rng.random_range(1..100_000);
                json!({
                    "name": self.name("product"),
                    "code": format!("CH-{n:05}"),
                    "prices": [{"currency": "EUR", "price": self.amount()}],
                })
            }
            Entity::Notes => {
                let (key, id) = match self.rng.random_range(0..3) {
                    0 => ("deal_id", self.live_id(&db.deals, now)?),
                    1 => ("person_id", self.live_id(&db.persons, now)?),
                    _ => ("org_id", self.live_id(&db.orgs, now)?),
                };
                json!({ "content": format!("<p>{}</p>", self.name("note")), key: id })
            }
            Entity::Leads => {
                let (key, id) = if self.rng.random_bool(0.5) {
                    ("person_id", self.live_id(&db.persons, now)?)
                } else {
                    ("organization_id", self.live_id(&db.orgs, now)?)
                };
                json!({ "title": self.name("lead"), key: id })
            }
        };
        Some(Request::new(
            Kind::Create,
            entity,
            "POST",
            entity.name().to_string(),
            body,
        ))
    }

    fn update(&mut self, db: &Db, entity: Entity, now: Ms) -> Option<Request> {
        let (method, path, body) = match entity {
            Entity::Deals => {
                let id = self.pick(&db.deals, |d| editable_deal(d, now))?.id;
                let body = match self.rng.random_range(0..3) {
                    0 => json!({ "title": self.name("deal") }),
                    1 => json!({ "value": self.amount() }),
                    _ => self
                        .custom_value(db, FieldEntity::Deal, now)
                        .unwrap_or_else(|| json!({ "title": self.name("deal") })),
                };
                ("PATCH", format!("deals/{id}"), body)
            }
            Entity::Persons => self.patch_custom_value_or_name(
                db,
                &db.persons,
                FieldEntity::Person,
                "person",
                now,
            )?,
            Entity::Organizations => self.patch_custom_value_or_name(
                db,
                &db.orgs,
                FieldEntity::Org,
                "organization",
                now,
            )?,
            Entity::Activities => {
                let activity = self.pick(&db.activities, |a| live(a, now))?;
                let body = if self.rng.random_bool(0.5) {
                    json!({ "done": !activity.done })
                } else {
                    json!({ "subject": self.name("call") })
                };
                ("PATCH", format!("activities/{}", activity.id), body)
            }
            Entity::Products => self.patch_custom_value_or_name(
                db,
                &db.products,
                FieldEntity::Product,
                "product",
                now,
            )?,
            Entity::Notes => {
                let id = self.live_id(&db.notes, now)?;
                let body = json!({ "content": format!("<p>{}</p>", self.name("note")) });
                ("PUT", format!("notes/{id}"), body)
            }
            Entity::Leads => {
                let lead = self.pick(&db.leads, |l| editable_lead(l, now))?;
                let uuid = lead.uuid.to_string();
                let body = if self.rng.random_bool(0.5) {
                    json!({ "title": self.name("lead") })
                } else {
                    json!({ "value": {"amount": self.amount(), "currency": "EUR"} })
                };
                ("PATCH", format!("leads/{uuid}"), body)
            }
        };
        Some(Request::new(Kind::Update, entity, method, path, body))
    }

    /// A PATCH of a random live `what` (at `{what}s/{id}`, as organizations, persons and
    /// products are): half the time a new value for one of its custom fields (when it has one
    /// a churn writes), else a new name.
    fn patch_custom_value_or_name<T: Rec>(
        &mut self,
        db: &Db,
        table: &Table<T>,
        entity: FieldEntity,
        what: &str,
        now: Ms,
    ) -> Option<(&'static str, String, Value)> {
        let id = self.live_id(table, now)?;
        let body = if self.rng.random_bool(0.5) {
            self.custom_value(db, entity, now)
        } else {
            None
        };
        let body = body.unwrap_or_else(|| json!({ "name": self.name(what) }));
        Some(("PATCH", format!("{what}s/{id}"), body))
    }

    /// `{"custom_fields": {key: value}}` for a random custom field of a type churn writes.
    fn custom_value(&mut self, db: &Db, entity: FieldEntity, now: Ms) -> Option<Value> {
        let writable: Vec<&FieldDef> = db
            .custom_fields(entity)
            .filter(|f| match f.cf {
                Some(CfType::Enum) => !f.options.is_empty(),
                Some(t) => matches!(
                    t,
                    CfType::Varchar
                        | CfType::VarcharAuto
                        | CfType::Text
                        | CfType::Double
                        | CfType::Monetary
                        | CfType::Date
                ),
                None => false,
            })
            .collect();
        if writable.is_empty() {
            return None;
        }
        let field = writable[self.rng.random_range(0..writable.len())];
        let value = match field.cf? {
            CfType::Double => json!(f64::from(self.rng.random_range(0u32..10_000)) / 4.0),
            CfType::Monetary => json!({"value": self.amount(), "currency": "EUR"}),
            CfType::Enum => json!(field.options[self.rng.random_range(0..field.options.len())].0),
            CfType::Date => json!(date(days_of(now) + self.rng.random_range(-60..60))),
            _ => json!(self.name("value")),
        };
        Some(json!({ "custom_fields": { field.key.clone(): value } }))
    }

    fn delete(&mut self, db: &Db, entity: Entity, now: Ms) -> Option<Request> {
        let path = match entity {
            Entity::Deals => format!(
                "deals/{}",
                self.pick(&db.deals, |d| editable_deal(d, now))?.id
            ),
            Entity::Persons => format!("persons/{}", self.live_id(&db.persons, now)?),
            Entity::Organizations => format!("organizations/{}", self.live_id(&db.orgs, now)?),
            Entity::Activities => format!("activities/{}", self.live_id(&db.activities, now)?),
            Entity::Products => format!("products/{}", self.live_id(&db.products, now)?),
            Entity::Notes => format!("notes/{}", self.live_id(&db.notes, now)?),
            Entity::Leads => format!(
                "leads/{}",
                self.pick(&db.leads, |l| editable_lead(l, now))?.uuid
            ),
        };
        Some(Request::new(
            Kind::Delete,
            entity,
            "DELETE",
            path,
            Value::Null,
        ))
    }

    fn archive(&mut self, db: &Db, entity: Entity, kind: Kind, now: Ms) -> Option<Request> {
        let archiving = kind == Kind::Archive;
        let path = match entity {
            Entity::Deals => {
                let deal = self.pick(&db.deals, |d| {
                    live(d, now) && d.archive_time.is_some() != archiving
                })?;
                format!("deals/{}", deal.id)
            }
            Entity::Leads => {
                let lead = self.pick(&db.leads, |l| {
                    live(l, now) && l.archive_time.is_some() != archiving
                })?;
                format!("leads/{}", lead.uuid)
            }
            _ => return None,
        };
        let body = json!({ "is_archived": archiving });
        Some(Request::new(kind, entity, "PATCH", path, body))
    }

    fn stage_move(&mut self, db: &Db, now: Ms) -> Option<Request> {
        let deal = self.pick(&db.deals, |d| editable_deal(d, now))?;
        let stage = self.pick(&db.stages, |s| {
            live(s, now) && s.pipeline_id == deal.pipeline_id && s.id != deal.stage_id
        })?;
        let body = json!({ "stage_id": stage.id });
        Some(Request::new(
            Kind::StageMove,
            Entity::Deals,
            "PATCH",
            format!("deals/{}", deal.id),
            body,
        ))
    }

    /// Merges one live record into another: the first drawn goes, the second survives.
    fn merge(&mut self, db: &Db, entity: Entity, now: Ms) -> Option<Request> {
        let (merged, survivor) = match entity {
            Entity::Persons => (
                self.live_id(&db.persons, now)?,
                self.live_id(&db.persons, now)?,
            ),
            Entity::Organizations => (self.live_id(&db.orgs, now)?, self.live_id(&db.orgs, now)?),
            Entity::Deals => (
                self.pick(&db.deals, |d| editable_deal(d, now))?.id,
                self.pick(&db.deals, |d| editable_deal(d, now))?.id,
            ),
            _ => return None,
        };
        if merged == survivor {
            return None;
        }
        Some(Request::new(
            Kind::Merge,
            entity,
            "PUT",
            format!("{}/{merged}/merge", entity.name()),
            json!({ "merge_with_id": survivor }),
        ))
    }

    fn field_change(&mut self, db: &Db, entity: Entity, kind: Kind) -> Option<Request> {
        let (fields_path, field_entity) = entity.fields_path()?;
        if kind == Kind::FieldAdd {
            const TYPES: [&str; 5] = ["varchar", "double", "enum", "date", "monetary"];
            let field_type = TYPES[self.rng.random_range(0..TYPES.len())];
            let mut body = json!({ "field_name": self.name("field"), "field_type": field_type });
            if field_type == "enum" {
                body["options"] = json!([{"label": self.word()}, {"label": self.word()}]);
            }
            return Some(Request::new(kind, entity, "POST", fields_path.into(), body));
        }
        let custom: Vec<&FieldDef> = db
            .fields(field_entity)
            .iter()
            .filter(|f| f.active && f.is_custom())
            .collect();
        if custom.is_empty() {
            return None;
        }
        let key = custom[self.rng.random_range(0..custom.len())].key.clone();
        let path = format!("{fields_path}/{key}");
        if kind == Kind::FieldRename {
            let body = json!({ "field_name": self.name("field") });
            Some(Request::new(kind, entity, "PATCH", path, body))
        } else {
            Some(Request::new(kind, entity, "DELETE", path, Value::Null))
        }
    }
}

/// Not deleted (nor purged).
fn live<T: Rec>(r: &T, now: Ms) -> bool {
    r.deleted_time().is_none() && !purged(r, now)
}

/// Archived deals and leads cannot be edited through the API.
fn editable_deal(d: &Deal, now: Ms) -> bool {
    live(d, now) && d.archive_time.is_none()
}

fn editable_lead(l: &Lead, now: Ms) -> bool {
    live(l, now) && l.archive_time.is_none()
}
