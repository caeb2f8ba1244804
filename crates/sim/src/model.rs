//! Compact in-memory records. Everything a response needs is either stored here or derived
//! deterministically from (seed, entity, id), so a million records fit in a few hundred MB.

use crate::util::{Ms, Rng};
use std::collections::{BTreeSet, HashMap, HashSet};

/// Deleted records stay visible (as deleted) for this long, then they are purged.
pub const PURGE_AFTER_MS: Ms = 30 * crate::util::DAY_MS;

pub trait Rec {
    fn id(&self) -> u64;
    fn add_time(&self) -> Ms;
    fn update_time(&self) -> Ms;
    /// When the record was soft-deleted, if it was.
    fn deleted_time(&self) -> Option<Ms> {
        None
    }
}

/// Rows sorted by id plus an `(update_time, id)` index for keyset paging by update time.
/// Ids only ever grow (new rows are appended), so `add_time` order equals id order.
pub struct Table<T> {
    pub rows: Vec<T>,
    pub by_update: BTreeSet<(Ms, u64)>,
    pub next_id: u64,
    /// While a write is watched for webhooks, what it touched (see [`Journal`]).
    journal: Option<Journal<T>>,
}

/// The rows one write touched, each with its state before the write (`None`: the write
/// created it), in the order the write first touched them. Webhook events are the difference
/// between these and the rows after the write.
struct Journal<T> {
    seen: HashSet<u64>,
    before: Vec<(u64, Option<T>)>,
}

impl<T> Journal<T> {
    fn note(&mut self, id: u64, before: impl FnOnce() -> Option<T>) {
        if self.seen.insert(id) {
            self.before.push((id, before()));
        }
    }
}

impl<T: Rec> Table<T> {
    pub fn new(rows: Vec<T>) -> Self {
        let by_update = rows.iter().map(|r| (r.update_time(), r.id())).collect();
        let next_id = rows.last().map(|r| r.id() + 1).unwrap_or(1);
        Table {
            rows,
            by_update,
            next_id,
            journal: None,
        }
    }
    pub fn pos(&self, id: u64) -> Option<usize> {
        self.rows.binary_search_by_key(&id, |r| r.id()).ok()
    }
    pub fn get(&self, id: u64) -> Option<&T> {
        self.pos(id).map(|p| &self.rows[p])
    }
    /// Physically removes rows soft-deleted at least 30 days before `now`.
    pub fn purge(&mut self, now: Ms) -> usize {
        let before = self.rows.len();
        let by_update = &mut self.by_update;
        self.rows.retain(|r| match r.deleted_time() {
            Some(t) if t + PURGE_AFTER_MS <= now => {
                by_update.remove(&(r.update_time(), r.id()));
                false
            }
            _ => true,
        });
        before - self.rows.len()
    }
}

impl<T: Rec + Clone> Table<T> {
    /// Starts recording what writes touch, until [`Table::take_journal`].
    pub fn start_journal(&mut self) {
        self.journal = Some(Journal {
            seen: HashSet::new(),
            before: Vec::new(),
        });
    }
    /// Stops recording; the rows touched since [`Table::start_journal`].
    pub fn take_journal(&mut self) -> Vec<(u64, Option<T>)> {
        self.journal.take().map(|j| j.before).unwrap_or_default()
    }
    pub fn insert(&mut self, row: T) {
        if let Some(journal) = &mut self.journal {
            journal.note(row.id(), || None);
        }
        self.next_id = self.next_id.max(row.id() + 1);
        self.by_update.insert((row.update_time(), row.id()));
        self.rows.push(row);
    }
    /// Physically removes a row (no soft delete, no 30-day window): merged-away records and
    /// deleted leads.
    pub fn remove(&mut self, id: u64) -> Option<T> {
        let p = self.pos(id)?;
        if let Some(journal) = &mut self.journal {
            journal.note(id, || Some(self.rows[p].clone()));
        }
        let row = self.rows.remove(p);
        self.by_update.remove(&(row.update_time(), id));
        Some(row)
    }
    /// Mutates one row, keeping the update index consistent.
    pub fn modify<R>(&mut self, id: u64, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let p = self.pos(id)?;
        if let Some(journal) = &mut self.journal {
            journal.note(id, || Some(self.rows[p].clone()));
        }
        let old = self.rows[p].update_time();
        let r = f(&mut self.rows[p]);
        let new = self.rows[p].update_time();
        if old != new {
            self.by_update.remove(&(old, id));
            self.by_update.insert((new, id));
        }
        Some(r)
    }
}

/// Deal products with an index by deal: reading one deal's attachments must not scan every
/// attachment (a sync's deal-product reads would turn quadratic in deals), and a merge moves
/// attachments between deals, so id order alone cannot give one deal's range.
pub struct DealProducts {
    pub table: Table<DealProduct>,
    by_deal: BTreeSet<(u64, u64)>,
}

impl DealProducts {
    pub fn new(rows: Vec<DealProduct>) -> Self {
        let by_deal = rows.iter().map(|p| (p.deal_id, p.id)).collect();
        DealProducts {
            table: Table::new(rows),
            by_deal,
        }
    }
    /// One deal's attachments, in id order.
    pub fn of_deal(&self, deal: u64) -> impl Iterator<Item = &DealProduct> {
        self.by_deal
            .range((deal, 0)..=(deal, u64::MAX))
            .filter_map(|(_, id)| self.table.get(*id))
    }
    /// Moves every attachment of deal `from` to deal `to`, stamping each with `t`.
    pub fn move_to_deal(&mut self, from: u64, to: u64, t: Ms) {
        let moved: Vec<u64> = self
            .by_deal
            .range((from, 0)..=(from, u64::MAX))
            .map(|(_, id)| *id)
            .collect();
        for id in moved {
            self.by_deal.remove(&(from, id));
            self.by_deal.insert((to, id));
            self.table.modify(id, |p| {
                p.deal_id = to;
                p.update_time = t;
            });
        }
    }
    pub fn purge(&mut self, now: Ms) {
        self.table.purge(now);
        let table = &self.table;
        self.by_deal.retain(|(_, id)| table.get(*id).is_some());
    }
}

pub fn purged<T: Rec>(r: &T, now: Ms) -> bool {
    matches!(r.deleted_time(), Some(t) if t + PURGE_AFTER_MS <= now)
}

macro_rules! rec_impl {
    ($t:ty) => {
        impl Rec for $t {
            fn id(&self) -> u64 {
                self.id
            }
            fn add_time(&self) -> Ms {
                self.add_time
            }
            fn update_time(&self) -> Ms {
                self.update_time
            }
            fn deleted_time(&self) -> Option<Ms> {
                self.deleted_time
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Custom fields

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CfType {
    Varchar,
    VarcharAuto,
    Text,
    Double,
    Monetary,
    Enum,
    Set,
    User,
    Org,
    People,
    Phone,
    Time,
    TimeRange,
    Date,
    DateRange,
    Address,
}

impl CfType {
    pub const ALL: [CfType; 16] = [
        CfType::Varchar,
        CfType::VarcharAuto,
        CfType::Text,
        CfType::Double,
        CfType::Monetary,
        CfType::Enum,
        CfType::Set,
        CfType::User,
        CfType::Org,
        CfType::People,
        CfType::Phone,
        CfType::Time,
        CfType::TimeRange,
        CfType::Date,
        CfType::DateRange,
        CfType::Address,
    ];
    pub fn name(self) -> &'static str {
        match self {
            CfType::Varchar => "varchar",
            CfType::VarcharAuto => "varchar_auto",
            CfType::Text => "text",
            CfType::Double => "double",
            CfType::Monetary => "monetary",
            CfType::Enum => "enum",
            CfType::Set => "set",
            CfType::User => "user",
            CfType::Org => "org",
            CfType::People => "people",
            CfType::Phone => "phone",
            CfType::Time => "time",
            CfType::TimeRange => "timerange",
            CfType::Date => "date",
            CfType::DateRange => "daterange",
            CfType::Address => "address",
        }
    }
    pub fn parse(s: &str) -> Option<CfType> {
        CfType::ALL.into_iter().find(|t| t.name() == s)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum CfVal {
    Str(Box<str>),
    Num(f64),
    Money(f64, Box<str>),
    Opt(u32),
    Set(Vec<u32>),
    Id(u64),
    Date(i32),
    DateRange(i32, i32),
    /// Seconds of day and a timezone index into [`TIMEZONES`].
    Time(u32, u8),
    TimeRange(u32, u32, u8),
    Addr(Box<Addr>),
}

pub const TIMEZONES: [(u32, &str); 4] = [
    (1, "Europe/Berlin"),
    (2, "America/New_York"),
    (3, "Europe/London"),
    (4, "Asia/Tokyo"),
];

/// Explicit values by field id; `None` clears a seeded value.
pub type Overrides = Vec<(u32, Option<CfVal>)>;

/// Values of one record's custom fields: generated ones plus explicit overrides from writes.
#[derive(Clone, Debug, Default)]
pub struct Cf {
    /// Whether seeded values exist (records created through the API start empty).
    pub generated: bool,
    pub over: Option<Box<Overrides>>,
}

impl Cf {
    pub fn set(&mut self, field_id: u32, v: Option<CfVal>) {
        let over = self.over.get_or_insert_with(Default::default);
        if let Some(e) = over.iter_mut().find(|e| e.0 == field_id) {
            e.1 = v;
        } else {
            over.push((field_id, v));
        }
    }
    pub fn overridden(&self, field_id: u32) -> Option<&Option<CfVal>> {
        self.over
            .as_ref()?
            .iter()
            .find(|e| e.0 == field_id)
            .map(|e| &e.1)
    }
}

#[derive(Clone, Debug)]
pub struct FieldDef {
    /// v1 numeric id.
    pub id: u32,
    /// Built-in key (`title`) or 40-char hex hash for custom fields.
    pub key: String,
    pub name: String,
    pub field_type: &'static str,
    pub cf: Option<CfType>,
    pub options: Vec<(u32, String)>,
    pub order_nr: u32,
    pub add_time: Ms,
    pub update_time: Ms,
    pub active: bool,
    /// Seeded records carry values for this field.
    pub generated: bool,
    pub mandatory: bool,
    pub description: String,
}

impl FieldDef {
    pub fn is_custom(&self) -> bool {
        self.cf.is_some()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldEntity {
    Deal,
    Person,
    Org,
    Product,
    Activity,
    Lead,
    Note,
    Project,
}

impl FieldEntity {
    pub fn parse(s: &str) -> Option<FieldEntity> {
        Some(match s {
            "deal" | "deals" | "deal_fields" | "dealFields" => FieldEntity::Deal,
            "person" | "persons" | "person_fields" | "personFields" => FieldEntity::Person,
            "organization"
            | "organizations"
            | "org"
            | "organization_fields"
            | "organizationFields" => FieldEntity::Org,
            "product" | "products" | "product_fields" | "productFields" => FieldEntity::Product,
            "activity" | "activities" | "activity_fields" | "activityFields" => {
                FieldEntity::Activity
            }
            "lead" | "leads" | "lead_fields" | "leadFields" => FieldEntity::Lead,
            "note" | "notes" | "note_fields" | "noteFields" => FieldEntity::Note,
            "project" | "projects" | "project_fields" | "projectFields" => FieldEntity::Project,
            _ => return None,
        })
    }
    pub fn gen_name(self) -> &'static str {
        match self {
            FieldEntity::Deal => "deal",
            FieldEntity::Person => "person",
            FieldEntity::Org => "organization",
            FieldEntity::Product => "product",
            FieldEntity::Activity => "activity",
            FieldEntity::Lead => "lead",
            FieldEntity::Note => "note",
            FieldEntity::Project => "project",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Records

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Addr {
    pub street_number: Box<str>,
    pub route: Box<str>,
    pub subpremise: Option<Box<str>>,
    pub sublocality: Option<Box<str>>,
    pub locality: Box<str>,
    pub admin_area_level_1: Box<str>,
    pub admin_area_level_2: Option<Box<str>>,
    pub country: Box<str>,
    pub postal_code: Box<str>,
}

impl Addr {
    pub fn formatted(&self) -> String {
        format!(
            "{} {}, {} {}, {}",
            self.street_number, self.route, self.postal_code, self.locality, self.country
        )
    }
    /// A free-text address (writes) keeps only `value`/`formatted_address`.
    pub fn free(text: &str) -> Addr {
        Addr {
            route: text.into(),
            ..Default::default()
        }
    }
}

#[derive(Clone, Debug)]
pub struct User {
    pub id: u64,
    pub name: Box<str>,
    pub email: Box<str>,
    pub phone: Option<Box<str>>,
    pub is_admin: bool,
    pub active: bool,
    pub locale: &'static str,
    pub timezone: u8,
    pub default_currency: &'static str,
    pub role_id: u64,
    pub add_time: Ms,
    pub update_time: Ms,
    pub last_login: Ms,
    pub deleted_time: Option<Ms>,
}
rec_impl!(User);

#[derive(Clone, Debug)]
pub struct Pipeline {
    pub id: u64,
    pub name: Box<str>,
    pub order_nr: u32,
    pub probability_enabled: bool,
    pub add_time: Ms,
    pub update_time: Ms,
    pub deleted_time: Option<Ms>,
}
rec_impl!(Pipeline);

#[derive(Clone, Debug)]
pub struct Stage {
    pub id: u64,
    pub pipeline_id: u64,
    pub name: Box<str>,
    pub order_nr: u32,
    pub probability: u32,
    pub rotten_days: Option<u32>,
    pub add_time: Ms,
    pub update_time: Ms,
    pub deleted_time: Option<Ms>,
}
rec_impl!(Stage);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DealStatus {
    Open,
    Won,
    Lost,
}
impl DealStatus {
    pub fn name(self) -> &'static str {
        match self {
            DealStatus::Open => "open",
            DealStatus::Won => "won",
            DealStatus::Lost => "lost",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(DealStatus::Open),
            "won" => Some(DealStatus::Won),
            "lost" => Some(DealStatus::Lost),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Deal {
    pub id: u64,
    pub title: Box<str>,
    pub creator_user_id: u64,
    pub owner_id: u64,
    pub person_id: Option<u64>,
    pub org_id: Option<u64>,
    pub pipeline_id: u64,
    pub stage_id: u64,
    pub value: f64,
    pub currency: Box<str>,
    pub add_time: Ms,
    pub update_time: Ms,
    pub stage_change_time: Option<Ms>,
    pub status: DealStatus,
    pub probability: Option<u32>,
    pub lost_reason: Option<Box<str>>,
    pub visible_to: u8,
    pub won_time: Option<Ms>,
    pub lost_time: Option<Ms>,
    pub close_time: Option<Ms>,
    pub expected_close_date: Option<i32>,
    pub label_ids: Vec<u32>,
    pub origin: &'static str,
    pub archive_time: Option<Ms>,
    pub deleted_time: Option<Ms>,
    pub cf: Cf,
}
rec_impl!(Deal);

#[derive(Clone, Debug)]
pub struct Contact {
    pub value: Box<str>,
    pub label: &'static str,
    pub primary: bool,
}

#[derive(Clone, Debug)]
pub struct Person {
    pub id: u64,
    pub first_name: Box<str>,
    pub last_name: Box<str>,
    pub owner_id: u64,
    pub org_id: Option<u64>,
    pub emails: Vec<Contact>,
    pub phones: Vec<Contact>,
    pub visible_to: u8,
    pub label_ids: Vec<u32>,
    pub job_title: Option<Box<str>>,
    pub birthday: Option<i32>,
    pub postal_address: Option<Box<Addr>>,
    pub add_time: Ms,
    pub update_time: Ms,
    pub deleted_time: Option<Ms>,
    pub cf: Cf,
}
rec_impl!(Person);
impl Person {
    pub fn name(&self) -> String {
        match (self.first_name.is_empty(), self.last_name.is_empty()) {
            (false, false) => format!("{} {}", self.first_name, self.last_name),
            (true, _) => self.last_name.to_string(),
            (_, true) => self.first_name.to_string(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Org {
    pub id: u64,
    pub name: Box<str>,
    pub owner_id: u64,
    pub address: Option<Box<Addr>>,
    pub visible_to: u8,
    pub label_ids: Vec<u32>,
    pub website: Option<Box<str>>,
    pub industry: Option<u32>,
    pub annual_revenue: Option<i64>,
    pub employee_count: Option<i64>,
    pub add_time: Ms,
    pub update_time: Ms,
    pub deleted_time: Option<Ms>,
    pub cf: Cf,
}
rec_impl!(Org);

#[derive(Clone, Debug)]
pub struct Activity {
    pub id: u64,
    pub subject: Box<str>,
    pub type_key: Box<str>,
    pub owner_id: u64,
    pub creator_user_id: u64,
    pub deal_id: Option<u64>,
    pub lead_id: Option<Box<str>>,
    pub person_id: Option<u64>,
    pub org_id: Option<u64>,
    pub due_date: Option<i32>,
    pub due_time: Option<u32>,
    pub duration: Option<u32>,
    pub busy: bool,
    pub done: bool,
    pub marked_as_done_time: Option<Ms>,
    pub priority: Option<u32>,
    pub note: Option<Box<str>>,
    pub public_description: Option<Box<str>>,
    pub location: Option<Box<Addr>>,
    pub add_time: Ms,
    pub update_time: Ms,
    pub deleted_time: Option<Ms>,
}
rec_impl!(Activity);

#[derive(Clone, Debug)]
pub struct Price {
    pub currency: Box<str>,
    pub price: f64,
    pub cost: f64,
    pub direct_cost: f64,
}

#[derive(Clone, Debug)]
pub struct Product {
    pub id: u64,
    pub name: Box<str>,
    pub code: Box<str>,
    pub unit: Box<str>,
    pub tax: f64,
    pub description: Option<Box<str>>,
    pub category: Option<Box<str>>,
    pub owner_id: u64,
    pub visible_to: u8,
    pub is_linkable: bool,
    pub billing_frequency: &'static str,
    pub billing_frequency_cycles: Option<u32>,
    pub prices: Vec<Price>,
    pub add_time: Ms,
    pub update_time: Ms,
    pub deleted_time: Option<Ms>,
    pub cf: Cf,
}
rec_impl!(Product);

#[derive(Clone, Debug)]
pub struct Note {
    pub id: u64,
    pub content: Box<str>,
    pub user_id: u64,
    pub last_update_user_id: u64,
    pub deal_id: Option<u64>,
    pub person_id: Option<u64>,
    pub org_id: Option<u64>,
    pub lead_id: Option<Box<str>>,
    pub pinned_to_deal: bool,
    pub pinned_to_person: bool,
    pub pinned_to_org: bool,
    pub pinned_to_lead: bool,
    pub add_time: Ms,
    pub update_time: Ms,
    pub deleted_time: Option<Ms>,
}
rec_impl!(Note);

/// Leads are keyed internally by a creation sequence number (`id`); the public id is `uuid`.
#[derive(Clone, Debug)]
pub struct Lead {
    pub id: u64,
    pub uuid: Box<str>,
    pub title: Box<str>,
    pub owner_id: u64,
    pub creator_id: u64,
    pub label_ids: Vec<u32>,
    pub person_id: Option<u64>,
    pub org_id: Option<u64>,
    pub source_name: &'static str,
    pub origin: &'static str,
    pub was_seen: bool,
    pub value: Option<(f64, Box<str>)>,
    pub expected_close_date: Option<i32>,
    pub visible_to: u8,
    pub archive_time: Option<Ms>,
    pub add_time: Ms,
    pub update_time: Ms,
    pub deleted_time: Option<Ms>,
    pub cf: Cf,
}
rec_impl!(Lead);

#[derive(Clone, Debug)]
pub struct DealProduct {
    pub id: u64,
    pub deal_id: u64,
    pub product_id: u64,
    pub name: Box<str>,
    pub order_nr: u32,
    pub item_price: f64,
    pub quantity: f64,
    pub discount: f64,
    pub tax: f64,
    pub currency: Box<str>,
    pub billing_frequency: &'static str,
    pub billing_start_date: Option<i32>,
    pub add_time: Ms,
    pub update_time: Ms,
    pub deleted_time: Option<Ms>,
}
rec_impl!(DealProduct);
impl DealProduct {
    pub fn sum(&self) -> f64 {
        let gross = self.item_price * self.quantity;
        ((gross - gross * self.discount / 100.0) * 100.0).round() / 100.0
    }
}

/// One field change recorded by a write; the seeded history is derived, not stored.
#[derive(Clone, Debug)]
pub struct Change {
    pub id: u64,
    pub user_id: u64,
    pub field_key: Box<str>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub time: Ms,
}

pub struct Simple {
    pub lead_labels: Vec<LeadLabel>,
    pub activity_types: Vec<ActivityType>,
    pub currencies: Vec<Currency>,
    pub filters: Vec<Filter>,
}

#[derive(Clone, Debug)]
pub struct LeadLabel {
    pub seq: u32,
    pub id: Box<str>,
    pub name: Box<str>,
    pub color: &'static str,
    pub add_time: Ms,
    pub update_time: Ms,
}
#[derive(Clone, Debug)]
pub struct ActivityType {
    pub id: u64,
    pub name: &'static str,
    pub key: &'static str,
    pub icon: &'static str,
    pub color: &'static str,
    pub order_nr: u32,
    pub is_custom: bool,
    pub add_time: Ms,
    pub update_time: Ms,
}
#[derive(Clone, Debug)]
pub struct Currency {
    pub id: u64,
    pub code: &'static str,
    pub name: &'static str,
    pub symbol: &'static str,
    pub decimals: u32,
}
#[derive(Clone, Debug)]
pub struct Filter {
    pub id: u64,
    pub name: Box<str>,
    pub kind: &'static str,
    pub user_id: u64,
    pub add_time: Ms,
    pub update_time: Ms,
}

pub struct Company {
    pub id: u64,
    pub name: String,
    pub domain: String,
}

/// The whole company. One `RwLock<Db>` guards it; reads render under the read lock.
pub struct Db {
    pub seed: u64,
    pub company: Company,
    pub users: Table<User>,
    pub pipelines: Table<Pipeline>,
    pub stages: Table<Stage>,
    pub deals: Table<Deal>,
    pub persons: Table<Person>,
    pub orgs: Table<Org>,
    pub activities: Table<Activity>,
    pub products: Table<Product>,
    pub notes: Table<Note>,
    pub leads: Table<Lead>,
    pub deal_products: DealProducts,
    pub simple: Simple,
    pub fields: HashMap<FieldEntity, Vec<FieldDef>>,
    pub next_field_id: u32,
    pub next_option_id: u32,
    /// Changes made through the API, per deal, appended to the derived seeded flow.
    pub deal_changes: HashMap<u64, Vec<Change>>,
    pub next_change_id: u64,
    pub lead_by_uuid: HashMap<Box<str>, u64>,
    pub scale: crate::options::Scale,
    /// Seeded stage ids per pipeline and seat count: inputs of the derived deal history.
    pub seed_stages: Vec<Vec<u64>>,
    pub seed_users: u64,
    pub extra: Extra,
    pub webhooks: crate::webhook_outbox::Registry,
    /// Where writes leave their webhook events for delivery.
    pub webhook_outbox: crate::webhook_outbox::Outbox,
}

impl Db {
    /// Adds a custom field. New fields start empty on existing records.
    pub fn add_field(
        &mut self,
        e: FieldEntity,
        name: String,
        t: CfType,
        labels: Vec<String>,
        now: i64,
    ) -> FieldDef {
        let id = self.next_field_id;
        self.next_field_id += 1;
        let mut r = crate::util::Rng::for_item(self.seed, "new_field", id as u64);
        let mut options = Vec::new();
        if matches!(t, CfType::Enum | CfType::Set) {
            let labels = if labels.is_empty() {
                vec!["Option 1".to_string(), "Option 2".to_string()]
            } else {
                labels
            };
            for l in labels {
                options.push((self.next_option_id, l));
                self.next_option_id += 1;
            }
        }
        let list = self.fields.entry(e).or_default();
        let f = FieldDef {
            id,
            key: r.hex(40),
            name,
            field_type: t.name(),
            cf: Some(t),
            options,
            order_nr: list.len() as u32,
            add_time: now,
            update_time: now,
            active: true,
            generated: false,
            mandatory: false,
            description: String::new(),
        };
        list.push(f.clone());
        f
    }

    pub fn fields(&self, e: FieldEntity) -> &[FieldDef] {
        self.fields.get(&e).map(|v| v.as_slice()).unwrap_or(&[])
    }
    /// Custom fields whose values appear on records of `e`. Leads share the deal fields.
    pub fn custom_fields(&self, e: FieldEntity) -> impl Iterator<Item = &FieldDef> {
        let src = if e == FieldEntity::Lead {
            FieldEntity::Deal
        } else {
            e
        };
        self.fields(src)
            .iter()
            .filter(|f| f.active && f.is_custom())
    }
    /// A deal that has not been purged, by the id in a path.
    pub fn live_deal(&self, id: &str, now: Ms) -> Option<&Deal> {
        id.parse()
            .ok()
            .and_then(|id| self.deals.get(id))
            .filter(|d| !purged(*d, now))
    }
    pub fn user_name(&self, id: u64) -> Option<&str> {
        self.users.get(id).map(|u| &*u.name)
    }
    pub fn purge(&mut self, now: Ms) {
        self.deals.purge(now);
        self.persons.purge(now);
        self.orgs.purge(now);
        self.activities.purge(now);
        self.products.purge(now);
        self.notes.purge(now);
        self.pipelines.purge(now);
        self.stages.purge(now);
        self.deal_products.purge(now);
        let leads = &self.leads;
        self.lead_by_uuid.retain(|_, id| leads.get(*id).is_some());
    }
}

/// Derives a fresh rng for a custom value so values never depend on generation order.
pub fn cf_rng(seed: u64, entity: FieldEntity, rec_id: u64, field_id: u32) -> Rng {
    Rng::for_item(seed ^ ((field_id as u64) << 40), entity.gen_name(), rec_id)
}

/// Appends a change to a deal's flow.
/// Appends one `dealChange` to a deal's flow and changelog.
pub fn push_change(
    db: &mut Db,
    deal: u64,
    user: u64,
    field: &str,
    old: Option<String>,
    new: Option<String>,
    t: Ms,
) {
    db.next_change_id += 1;
    let id = db.next_change_id;
    db.deal_changes.entry(deal).or_default().push(Change {
        id,
        user_id: user,
        field_key: field.into(),
        old_value: old,
        new_value: new,
        time: t,
    });
}

/// A custom-field value as text, as a deal's flow records it.
pub fn cf_str(v: &CfVal) -> String {
    match v {
        CfVal::Str(s) => s.to_string(),
        CfVal::Num(n) => crate::util::fmt_num(*n),
        CfVal::Money(n, c) => format!("{} {}", crate::util::fmt_num(*n), c),
        CfVal::Opt(x) => x.to_string(),
        CfVal::Set(v) => v
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(","),
        CfVal::Id(x) => x.to_string(),
        CfVal::Date(d) => crate::util::date(*d),
        CfVal::DateRange(a, b) => format!("{} - {}", crate::util::date(*a), crate::util::date(*b)),
        CfVal::Time(a, _) => crate::util::hms(*a),
        CfVal::TimeRange(a, b, _) => format!("{} - {}", crate::util::hms(*a), crate::util::hms(*b)),
        CfVal::Addr(a) => a.formatted(),
    }
}

// ---------------------------------------------------------------------------------------------
// Lower-priority records, derived from the company at startup and read-only (see `extra`).

pub struct File {
    pub id: u64,
    pub user_id: u64,
    pub deal_id: u64,
    pub person_id: Option<u64>,
    pub org_id: Option<u64>,
    pub name: String,
    pub size: u64,
    pub add_time: Ms,
}

pub struct CallLog {
    pub id: String,
    pub activity_id: u64,
    pub user_id: u64,
    pub person_id: Option<u64>,
    pub org_id: Option<u64>,
    pub deal_id: Option<u64>,
    pub outcome: &'static str,
    pub duration: u32,
    pub start: Ms,
    pub to: String,
}

pub struct MailThread {
    pub id: u64,
    pub user_id: u64,
    pub deal_id: u64,
    pub person_id: Option<u64>,
    pub folder: &'static str,
    pub subject: String,
    pub messages: u32,
    pub first: Ms,
    pub last: Ms,
}

pub struct Project {
    pub id: u64,
    pub title: String,
    pub owner_id: u64,
    pub deal_id: u64,
    pub person_id: Option<u64>,
    pub org_id: Option<u64>,
    pub status: &'static str,
    pub phase_id: u64,
    pub start: i32,
    pub end: i32,
    pub add_time: Ms,
    pub update_time: Ms,
    pub archive_time: Option<Ms>,
}

pub struct Task {
    pub id: u64,
    pub project_id: u64,
    pub title: String,
    pub creator_id: u64,
    pub assignee: u64,
    pub done: Option<Ms>,
    pub due: i32,
    pub add_time: Ms,
}

#[derive(Default)]
pub struct Extra {
    pub files: Vec<File>,
    pub call_logs: Vec<CallLog>,
    pub threads: Vec<MailThread>,
    pub projects: Vec<Project>,
    pub tasks: Vec<Task>,
}
