//! Record → JSON renderers, one per entity and API version, following the spec's field order.

use crate::fields::v2_code;
use crate::json::J;
use crate::model::*;
use crate::seed::cf_value;
use crate::util::{Ms, date, hms, iso_ms, v1ts};

/// Per-request options of v2 list/get endpoints that change the rendered shape.
#[derive(Default, Clone)]
pub struct V2Opts {
    /// `custom_fields=` restriction.
    pub cf_keys: Option<Vec<String>>,
    pub option_labels: bool,
    pub include_fields: Vec<String>,
}

fn ts1(j: &mut J, k: &str, t: Ms) {
    j.ks(k, &v1ts(t));
}
fn ots1(j: &mut J, k: &str, t: Option<Ms>) {
    match t {
        Some(t) => j.ks(k, &v1ts(t)),
        None => j.knull(k),
    };
}
fn odate(j: &mut J, k: &str, d: Option<i32>) {
    match d {
        Some(d) => j.ks(k, &date(d)),
        None => j.knull(k),
    };
}
fn oid(j: &mut J, k: &str, v: Option<u64>) {
    j.koi(k, v.map(|v| v as i64));
}
/// Suffixes of the extra top-level keys a v1 custom field of this type produces.
pub fn v1_subkeys(t: CfType) -> &'static [&'static str] {
    match t {
        CfType::Monetary => &["currency"],
        CfType::DateRange => &["until"],
        CfType::Time => &["timezone_id"],
        CfType::TimeRange => &["until", "timezone_id"],
        CfType::Address => &[
            "subpremise",
            "street_number",
            "route",
            "sublocality",
            "locality",
            "admin_area_level_1",
            "admin_area_level_2",
            "country",
            "postal_code",
            "formatted_address",
        ],
        _ => &[],
    }
}

/// v1 custom fields: flat top-level keys, subfields as `<hash>_<suffix>`.
pub fn custom_fields_v1(j: &mut J, db: &Db, e: FieldEntity, rec_id: u64, cf: &Cf) {
    for f in db.custom_fields(e) {
        let Some(t) = f.cf else { continue };
        let v = cf_value(db, e, rec_id, cf, f);
        let sub = |j: &mut J, s: &str| {
            j.key(&format!("{}_{}", f.key, s));
        };
        j.key(&f.key);
        match &v {
            None => {
                j.null();
                for s in v1_subkeys(t) {
                    sub(j, s);
                    j.null();
                }
            }
            Some(CfVal::Str(s)) => {
                j.s(s);
            }
            Some(CfVal::Num(n)) => {
                j.f(*n);
            }
            Some(CfVal::Money(n, c)) => {
                j.f(*n);
                sub(j, "currency");
                j.s(c);
            }
            Some(CfVal::Opt(id)) => {
                j.s(&id.to_string());
            }
            Some(CfVal::Set(v)) => {
                j.s(&v
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(","));
            }
            Some(CfVal::Id(id)) => {
                j.i(*id as i64);
            }
            Some(CfVal::Date(d)) => {
                j.s(&date(*d));
            }
            Some(CfVal::DateRange(a, b)) => {
                j.s(&date(*a));
                sub(j, "until");
                j.s(&date(*b));
            }
            Some(CfVal::Time(s, tz)) => {
                j.s(&hms(*s));
                sub(j, "timezone_id");
                j.i(TIMEZONES[*tz as usize % TIMEZONES.len()].0 as i64);
            }
            Some(CfVal::TimeRange(a, b, tz)) => {
                j.s(&hms(*a));
                sub(j, "until");
                j.s(&hms(*b));
                sub(j, "timezone_id");
                j.i(TIMEZONES[*tz as usize % TIMEZONES.len()].0 as i64);
            }
            Some(CfVal::Addr(a)) => {
                j.s(&a.formatted());
                let parts: [(&str, Option<&str>); 10] = [
                    ("subpremise", a.subpremise.as_deref()),
                    ("street_number", Some(&a.street_number)),
                    ("route", Some(&a.route)),
                    ("sublocality", a.sublocality.as_deref()),
                    ("locality", Some(&a.locality)),
                    ("admin_area_level_1", Some(&a.admin_area_level_1)),
                    ("admin_area_level_2", a.admin_area_level_2.as_deref()),
                    ("country", Some(&a.country)),
                    ("postal_code", Some(&a.postal_code)),
                    ("formatted_address", None),
                ];
                for (s, v) in parts {
                    sub(j, s);
                    if s == "formatted_address" {
                        j.s(&a.formatted());
                    } else {
                        j.os(v);
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------ v2

pub fn deal_v2(j: &mut J, db: &Db, d: &Deal, o: &V2Opts) {
    j.ser(&crate::entities::deals::deal_v2(db, d, o));
}

/// Deal followers are derived: the owner, plus the creator when different.
pub fn followers(d: &Deal) -> Vec<(u64, Ms)> {
    let mut v = vec![(d.owner_id, d.add_time)];
    if d.creator_user_id != d.owner_id {
        v.push((d.creator_user_id, d.add_time));
    }
    v
}

pub fn person_v2(j: &mut J, db: &Db, p: &Person, o: &V2Opts) {
    j.ser(&crate::entities::persons::person_v2(db, p, o));
}

pub fn org_v2(j: &mut J, db: &Db, r: &Org, o: &V2Opts) {
    j.ser(&crate::entities::organizations::org_v2(db, r, o));
}

pub fn activity_v2(j: &mut J, db: &Db, a: &Activity) {
    j.ser(&crate::entities::activities::activity_v2(db, a));
}

pub fn product_v2(j: &mut J, db: &Db, p: &Product, o: &V2Opts) {
    j.ser(&crate::entities::products::product_v2(db, p, o));
}

pub fn pipeline_v2(j: &mut J, p: &Pipeline) {
    j.ser(&crate::entities::pipelines::pipeline_v2(p));
}

pub fn stage_v2(j: &mut J, s: &Stage) {
    j.ser(&crate::entities::pipelines::stage_v2(s));
}

pub fn deal_product_v2(j: &mut J, p: &DealProduct) {
    j.ser(&crate::entities::deal_products::deal_product_v2(p));
}

/// Installments are derived for every seventh deal that has a value.
pub fn installments(d: &Deal) -> Vec<(u64, f64, i32, &'static str)> {
    if !d.id.is_multiple_of(7) || d.value <= 0.0 {
        return Vec::new();
    }
    let day = crate::util::days_of(d.add_time);
    vec![
        (
            d.id * 10 + 1,
            (d.value / 2.0).floor(),
            day + 30,
            "First installment",
        ),
        (
            d.id * 10 + 2,
            d.value - (d.value / 2.0).floor(),
            day + 60,
            "Second installment",
        ),
    ]
}

pub fn v2_field(j: &mut J, e: FieldEntity, f: &FieldDef, inc: &[String]) {
    j.obj();
    j.ks("field_name", &f.name);
    let code = if f.is_custom() {
        f.key.as_str()
    } else {
        v2_code(e, &f.key)
    };
    j.ks("field_code", code);
    j.ks("description", &f.description);
    j.ks("field_type", f.field_type);
    j.key("options");
    if f.options.is_empty() {
        j.null();
    } else {
        j.arr();
        for (id, l) in &f.options {
            j.obj().ki("id", *id as i64).ks("label", l).end_obj();
        }
        j.end_arr();
    }
    j.key("subfields");
    let subs: &[(&str, &str, &str)] = match f.cf {
        Some(CfType::Monetary) => &[
            ("value", "Amount", "double"),
            ("currency", "Currency", "varchar"),
        ],
        Some(CfType::DateRange) => &[
            ("value", "Start date", "date"),
            ("until", "End date", "date"),
        ],
        Some(CfType::Time) => &[
            ("value", "Time", "time"),
            ("timezone_id", "Timezone", "int"),
        ],
        Some(CfType::TimeRange) => &[
            ("value", "Start time", "time"),
            ("until", "End time", "time"),
            ("timezone_id", "Timezone", "int"),
        ],
        Some(CfType::Address) => &[
            ("street_number", "Street/building number", "varchar"),
            ("route", "Street/road name", "varchar"),
            ("locality", "City/town/village/locality", "varchar"),
            ("country", "Country", "varchar"),
            ("postal_code", "ZIP/Postal code", "varchar"),
            ("formatted_address", "Full/combined address", "varchar"),
        ],
        _ => &[],
    };
    if subs.is_empty() {
        j.null();
    } else {
        j.arr();
        for (c, n, t) in subs {
            j.obj()
                .ks("field_code", c)
                .ks("field_name", &format!("{} of {}", n, f.name))
                .ks("field_type", t)
                .end_obj();
        }
        j.end_arr();
    }
    j.kb("is_custom_field", f.is_custom());
    j.kb("is_optional_response_field", false);
    let has = |k: &str| inc.iter().any(|x| x == k);
    if has("ui_visibility") {
        j.key("ui_visibility").obj();
        j.kb("add_visible_flag", true)
            .kb("details_visible_flag", true);
        j.key("show_in_pipelines")
            .obj()
            .kb("show_in_all", true)
            .key("pipeline_ids")
            .arr()
            .end_arr()
            .end_obj();
        j.end_obj();
    }
    if has("important_fields") {
        j.key("important_fields")
            .obj()
            .kb("enabled", false)
            .key("stage_ids")
            .arr()
            .end_arr()
            .end_obj();
    }
    if has("required_fields") {
        j.key("required_fields")
            .obj()
            .kb("enabled", f.mandatory)
            .key("stage_ids")
            .arr()
            .end_arr();
        j.key("statuses").obj().end_obj().end_obj();
    }
    j.end_obj();
}

// ------------------------------------------------------------------------------------------ v1

pub fn v1_field(j: &mut J, e: FieldEntity, f: &FieldDef) {
    j.obj();
    j.ki("id", f.id as i64);
    j.ks("key", &f.key);
    j.ks("name", &f.name);
    if e == FieldEntity::Note {
        j.ks("field_type", f.field_type);
        j.kb("active_flag", f.active);
        j.kb("edit_flag", f.is_custom());
        j.kb("bulk_edit_allowed", true);
        if !f.options.is_empty() {
            options_v1(j, f);
        }
        j.kb("mandatory_flag", f.mandatory);
        j.end_obj();
        return;
    }
    j.ki("order_nr", f.order_nr as i64);
    j.ks("field_type", f.field_type);
    ts1(j, "add_time", f.add_time);
    ts1(j, "update_time", f.update_time);
    j.ki("last_updated_by_user_id", 1);
    j.ki("created_by_user_id", 1);
    j.kb("active_flag", f.active);
    j.kb("edit_flag", f.is_custom());
    j.kb("index_visible_flag", true);
    j.kb("details_visible_flag", true);
    j.kb("add_visible_flag", true);
    j.kb("important_flag", false);
    j.kb("bulk_edit_allowed", true);
    j.kb("searchable_flag", false);
    j.kb("filtering_allowed", true);
    j.kb("sortable_flag", true);
    // The real API leaves `options` out for fields without options (clients iterate it).
    if !f.options.is_empty() {
        options_v1(j, f);
    }
    j.kb("mandatory_flag", f.mandatory);
    if let Some(t) = f.cf {
        let subs = v1_subkeys(t);
        if !subs.is_empty() {
            j.key("subfields").arr();
            for s in subs {
                j.obj()
                    .ks("key", &format!("{}_{}", f.key, s))
                    .ks("name", &format!("{} - {}", f.name, s.replace('_', " ")))
                    .ks(
                        "field_type",
                        if *s == "timezone_id" {
                            "int"
                        } else {
                            "varchar"
                        },
                    )
                    .end_obj();
            }
            j.end_arr();
        }
    }
    j.end_obj();
}

fn options_v1(j: &mut J, f: &FieldDef) {
    j.key("options").arr();
    for (id, l) in &f.options {
        j.obj().ki("id", *id as i64).ks("label", l).end_obj();
    }
    j.end_arr();
}

pub fn user_v1(j: &mut J, u: &User, me: u64) {
    j.obj();
    user_v1_fields(j, u, me);
    j.end_obj();
}

pub fn user_v1_fields(j: &mut J, u: &User, me: u64) {
    let (tzid, tzn) = TIMEZONES[u.timezone as usize % TIMEZONES.len()];
    let _ = tzid;
    j.ki("id", u.id as i64);
    j.ks("name", &u.name);
    j.ks("default_currency", u.default_currency);
    j.ks("locale", u.locale);
    j.ki("lang", 1);
    j.ks("email", &u.email);
    j.kos("phone", u.phone.as_deref());
    j.kb("activated", u.active);
    ts1(j, "last_login", u.last_login);
    ts1(j, "created", u.add_time);
    ts1(j, "modified", u.update_time);
    j.kb("has_created_company", u.id == 1);
    j.key("access").arr();
    j.obj()
        .ks("app", "sales")
        .kb("admin", u.is_admin)
        .ks(
            "permission_set_id",
            &perm_set_uuid(if u.is_admin { 1 } else { 2 }),
        )
        .end_obj();
    if u.is_admin {
        j.obj()
            .ks("app", "global")
            .kb("admin", true)
            .ks("permission_set_id", &perm_set_uuid(3))
            .end_obj();
    }
    j.end_arr();
    j.kb("active_flag", u.active);
    j.ks("timezone_name", tzn);
    j.ks(
        "timezone_offset",
        match tzn {
            "Europe/Berlin" => "+01:00",
            "America/New_York" => "-05:00",
            "Asia/Tokyo" => "+09:00",
            _ => "+00:00",
        },
    );
    j.ki("role_id", u.role_id as i64);
    j.knull("icon_url");
    j.kb("is_you", u.id == me);
    j.kb("is_deleted", u.deleted_time.is_some());
}

pub fn perm_set_uuid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{:012x}", n)
}

pub fn note_v1(j: &mut J, db: &Db, n: &Note, me: u64) {
    j.obj();
    j.ki("id", n.id as i64);
    j.kb("active_flag", n.deleted_time.is_none());
    ts1(j, "add_time", n.add_time);
    j.ks("content", &n.content);
    j.key("deal");
    match n.deal_id.and_then(|id| db.deals.get(id)) {
        Some(d) => {
            j.obj().ks("title", &d.title).end_obj();
        }
        None => {
            j.null();
        }
    }
    j.kos("lead_id", n.lead_id.as_deref());
    oid(j, "deal_id", n.deal_id);
    j.ki("last_update_user_id", n.last_update_user_id as i64);
    oid(j, "org_id", n.org_id);
    j.key("organization");
    match n.org_id.and_then(|id| db.orgs.get(id)) {
        Some(o) => {
            j.obj().ks("name", &o.name).end_obj();
        }
        None => {
            j.null();
        }
    }
    j.key("person");
    match n.person_id.and_then(|id| db.persons.get(id)) {
        Some(p) => {
            j.obj().ks("name", &p.name()).end_obj();
        }
        None => {
            j.null();
        }
    }
    oid(j, "person_id", n.person_id);
    j.knull("project_id");
    j.knull("project");
    j.kb("pinned_to_lead_flag", n.pinned_to_lead);
    j.kb("pinned_to_deal_flag", n.pinned_to_deal);
    j.kb("pinned_to_organization_flag", n.pinned_to_org);
    j.kb("pinned_to_person_flag", n.pinned_to_person);
    j.kb("pinned_to_project_flag", false);
    ts1(j, "update_time", n.update_time);
    j.key("user");
    match db.users.get(n.user_id) {
        Some(u) => {
            j.obj()
                .ks("email", &u.email)
                .knull("icon_url")
                .kb("is_you", u.id == me)
                .ks("name", &u.name)
                .end_obj();
        }
        None => {
            j.null();
        }
    }
    j.ki("user_id", n.user_id as i64);
    j.end_obj();
}

pub fn lead_v1(j: &mut J, db: &Db, l: &Lead) {
    j.obj();
    j.ks("id", &l.uuid);
    j.ks("title", &l.title);
    j.ki("owner_id", l.owner_id as i64);
    j.ki("creator_id", l.creator_id as i64);
    j.key("label_ids").arr();
    for seq in &l.label_ids {
        if let Some(lab) = db.simple.lead_labels.iter().find(|x| x.seq == *seq) {
            j.s(&lab.id);
        }
    }
    j.end_arr();
    oid(j, "person_id", l.person_id);
    oid(j, "organization_id", l.org_id);
    j.ks("source_name", l.source_name);
    j.ks("origin", l.origin);
    j.knull("origin_id");
    j.knull("channel");
    j.knull("channel_id");
    j.kb("is_archived", l.archive_time.is_some());
    j.kb("was_seen", l.was_seen);
    j.key("value");
    match &l.value {
        Some((a, c)) => {
            j.obj().kf("amount", *a).ks("currency", c).end_obj();
        }
        None => {
            j.null();
        }
    }
    odate(j, "expected_close_date", l.expected_close_date);
    j.knull("next_activity_id");
    j.ks("add_time", &iso_ms(l.add_time));
    j.ks("update_time", &iso_ms(l.update_time));
    j.ks("visible_to", &l.visible_to.to_string());
    j.ks(
        "cc_email",
        &format!(
            "{}+{}+lead{}@pipedrivemail.com",
            db.company.domain, db.company.id, l.id
        ),
    );
    custom_fields_v1(j, db, FieldEntity::Lead, l.id, &l.cf);
    j.end_obj();
}

pub fn lead_label_v1(j: &mut J, l: &LeadLabel) {
    j.obj()
        .ks("id", &l.id)
        .ks("name", &l.name)
        .ks("color", l.color)
        .ks("add_time", &iso_ms(l.add_time))
        .ks("update_time", &iso_ms(l.update_time))
        .end_obj();
}

pub fn activity_type_v1(j: &mut J, a: &ActivityType) {
    j.obj();
    j.ki("id", a.id as i64);
    j.ki("order_nr", a.order_nr as i64);
    j.ks("name", a.name);
    j.ks("key_string", a.key);
    j.ks("icon_key", a.icon);
    j.kb("active_flag", true);
    j.ks("color", a.color);
    j.kb("is_custom_flag", a.is_custom);
    ts1(j, "add_time", a.add_time);
    ts1(j, "update_time", a.update_time);
    j.end_obj();
}

pub fn currency_v1(j: &mut J, c: &Currency) {
    j.obj()
        .ki("id", c.id as i64)
        .ks("code", c.code)
        .ks("name", c.name)
        .ki("decimal_points", c.decimals as i64)
        .ks("symbol", c.symbol)
        .kb("active_flag", true)
        .kb("is_custom_flag", false)
        .end_obj();
}

pub fn filter_v1(j: &mut J, f: &Filter) {
    j.obj();
    j.ki("id", f.id as i64);
    j.ks("name", &f.name);
    j.knull("filter_code");
    j.kb("is_editable", true);
    j.kb("active_flag", true);
    j.ks("type", f.kind);
    j.knull("temporary_flag");
    j.ki("user_id", f.user_id as i64);
    ts1(j, "add_time", f.add_time);
    ts1(j, "update_time", f.update_time);
    j.ks("visible_to", "7");
    j.knull("last_used_time");
    j.knull("custom_view_id");
    j.end_obj();
}

// Legacy v1 entity shapes (deprecated list endpoints, recents).

/// How legacy v1 renders references: the specs differ per endpoint (the deprecated lists use
/// related objects, `/recents` uses plain ids; persons/orgs use an integer `has_pic`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Ref {
    Obj,
    ObjIntPic,
    Flat,
}

/// v1 related-object form of a user reference: `{id, name, email, has_pic, pic_hash, active_flag, value}`.
pub fn user_ref(j: &mut J, db: &Db, k: &str, id: u64, style: Ref) {
    j.key(k);
    match db.users.get(id).filter(|_| style != Ref::Flat) {
        Some(u) => {
            j.obj()
                .ki("id", u.id as i64)
                .ks("name", &u.name)
                .ks("email", &u.email);
            if style == Ref::ObjIntPic {
                j.ki("has_pic", 0);
            } else {
                j.kb("has_pic", false);
            }
            j.knull("pic_hash")
                .kb("active_flag", u.active)
                .ki("value", u.id as i64)
                .end_obj();
        }
        None => {
            j.i(id as i64);
        }
    }
}

/// v1 related-object form of a person reference.
pub fn person_ref(j: &mut J, db: &Db, k: &str, id: Option<u64>, style: Ref) {
    j.key(k);
    match id
        .and_then(|id| db.persons.get(id))
        .filter(|_| style != Ref::Flat)
    {
        Some(p) => {
            j.obj()
                .kb("active_flag", p.deleted_time.is_none())
                .ks("name", &p.name());
            contacts_v1(j, "email", &p.emails);
            contacts_v1(j, "phone", &p.phones);
            j.ki("owner_id", p.owner_id as i64)
                .ki("value", p.id as i64)
                .end_obj();
        }
        None => {
            j.oi(id.map(|x| x as i64));
        }
    }
}

/// v1 related-object form of an organization reference.
pub fn org_ref(j: &mut J, db: &Db, k: &str, id: Option<u64>, style: Ref) {
    j.key(k);
    match id
        .and_then(|id| db.orgs.get(id))
        .filter(|_| style != Ref::Flat)
    {
        Some(o) => {
            j.obj()
                .ks("name", &o.name)
                .ki("people_count", 0)
                .ki("owner_id", o.owner_id as i64);
            j.kos(
                "address",
                o.address.as_ref().map(|a| a.formatted()).as_deref(),
            );
            j.kb("active_flag", o.deleted_time.is_none());
            j.ks(
                "cc_email",
                &format!("{}+org{}@pipedrivemail.com", db.company.domain, o.id),
            );
            j.ki("value", o.id as i64).end_obj();
        }
        None => {
            j.oi(id.map(|x| x as i64));
        }
    }
}

pub fn deal_v1(j: &mut J, db: &Db, d: &Deal, flat: bool) {
    let st = if flat { Ref::Flat } else { Ref::Obj };
    j.obj();
    j.ki("id", d.id as i64);
    user_ref(j, db, "creator_user_id", d.creator_user_id, st);
    user_ref(j, db, "user_id", d.owner_id, st);
    person_ref(j, db, "person_id", d.person_id, st);
    org_ref(j, db, "org_id", d.org_id, st);
    j.ki("stage_id", d.stage_id as i64);
    j.ks("title", &d.title);
    j.kf("value", d.value);
    j.ks("currency", &d.currency);
    ts1(j, "add_time", d.add_time);
    ts1(j, "update_time", d.update_time);
    ots1(j, "stage_change_time", d.stage_change_time);
    j.kb("active", d.deleted_time.is_none());
    j.kb("deleted", d.deleted_time.is_some());
    j.ks(
        "status",
        if d.deleted_time.is_some() {
            "deleted"
        } else {
            d.status.name()
        },
    );
    j.koi("probability", d.probability.map(|p| p as i64));
    j.knull("next_activity_date");
    j.knull("next_activity_time");
    j.knull("next_activity_id");
    j.knull("last_activity_id");
    j.knull("last_activity_date");
    j.kos("lost_reason", d.lost_reason.as_deref());
    j.ks("visible_to", &d.visible_to.to_string());
    ots1(j, "close_time", d.close_time);
    j.ki("pipeline_id", d.pipeline_id as i64);
    ots1(j, "won_time", d.won_time);
    ots1(j, "first_won_time", d.won_time);
    ots1(j, "lost_time", d.lost_time);
    odate(j, "expected_close_date", d.expected_close_date);
    j.kos(
        "label",
        (!d.label_ids.is_empty())
            .then(|| {
                d.label_ids
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .as_deref(),
    );
    j.kb("is_archived", d.archive_time.is_some());
    ots1(j, "archive_time", d.archive_time);
    j.ks("origin", d.origin);
    j.kos(
        "person_name",
        d.person_id
            .and_then(|id| db.persons.get(id))
            .map(|p| p.name())
            .as_deref(),
    );
    j.kos(
        "org_name",
        d.org_id.and_then(|id| db.orgs.get(id)).map(|o| &*o.name),
    );
    j.kos("owner_name", db.user_name(d.owner_id));
    j.ks(
        "cc_email",
        &format!("{}+deal{}@pipedrivemail.com", db.company.domain, d.id),
    );
    custom_fields_v1(j, db, FieldEntity::Deal, d.id, &d.cf);
    j.end_obj();
}

fn contacts_v1(j: &mut J, k: &str, v: &[Contact]) {
    j.key(k).arr();
    if v.is_empty() {
        j.obj().ks("value", "").kb("primary", true).end_obj();
    }
    for c in v {
        j.obj()
            .ks("label", c.label)
            .ks("value", &c.value)
            .kb("primary", c.primary)
            .end_obj();
    }
    j.end_arr();
}

pub fn person_v1(j: &mut J, db: &Db, p: &Person, flat: bool) {
    let st = if flat { Ref::Flat } else { Ref::ObjIntPic };
    j.obj();
    j.ki("id", p.id as i64);
    user_ref(j, db, "owner_id", p.owner_id, st);
    org_ref(j, db, "org_id", p.org_id, st);
    j.ks("name", &p.name());
    j.ks("first_name", &p.first_name);
    j.ks("last_name", &p.last_name);
    contacts_v1(j, "phone", &p.phones);
    contacts_v1(j, "email", &p.emails);
    ts1(j, "add_time", p.add_time);
    ts1(j, "update_time", p.update_time);
    j.ks("visible_to", &p.visible_to.to_string());
    j.kb("active_flag", p.deleted_time.is_none());
    j.kos("job_title", p.job_title.as_deref());
    odate(j, "birthday", p.birthday);
    j.kos(
        "org_name",
        p.org_id.and_then(|id| db.orgs.get(id)).map(|o| &*o.name),
    );
    j.kos("owner_name", db.user_name(p.owner_id));
    j.ks(
        "cc_email",
        &format!("{}+person{}@pipedrivemail.com", db.company.domain, p.id),
    );
    custom_fields_v1(j, db, FieldEntity::Person, p.id, &p.cf);
    j.end_obj();
}

pub fn org_v1(j: &mut J, db: &Db, o: &Org, flat: bool) {
    // Both the legacy list and `/recents` specs use the related-object owner here.
    let _ = flat;
    let st = Ref::ObjIntPic;
    j.obj();
    j.ki("id", o.id as i64);
    user_ref(j, db, "owner_id", o.owner_id, st);
    j.ks("name", &o.name);
    j.kb("active_flag", o.deleted_time.is_none());
    ts1(j, "add_time", o.add_time);
    ts1(j, "update_time", o.update_time);
    j.ks("visible_to", &o.visible_to.to_string());
    j.kos(
        "address",
        o.address.as_ref().map(|a| a.formatted()).as_deref(),
    );
    j.kos("owner_name", db.user_name(o.owner_id));
    j.ks(
        "cc_email",
        &format!("{}+org{}@pipedrivemail.com", db.company.domain, o.id),
    );
    custom_fields_v1(j, db, FieldEntity::Org, o.id, &o.cf);
    j.end_obj();
}

pub fn activity_v1(j: &mut J, a: &Activity) {
    j.obj();
    j.ki("id", a.id as i64);
    j.ki("user_id", a.owner_id as i64);
    j.kb("done", a.done);
    j.ks("type", &a.type_key);
    odate(j, "due_date", a.due_date);
    j.ks(
        "due_time",
        &a.due_time.map(crate::util::hm).unwrap_or_default(),
    );
    j.ks(
        "duration",
        &a.duration.map(crate::util::hm).unwrap_or_default(),
    );
    ts1(j, "add_time", a.add_time);
    ots1(j, "marked_as_done_time", a.marked_as_done_time);
    j.ks("subject", &a.subject);
    oid(j, "deal_id", a.deal_id);
    oid(j, "org_id", a.org_id);
    oid(j, "person_id", a.person_id);
    j.kos("lead_id", a.lead_id.as_deref());
    j.kb("active_flag", a.deleted_time.is_none());
    ts1(j, "update_time", a.update_time);
    j.kos("note", a.note.as_deref());
    j.ki("created_by_user_id", a.creator_user_id as i64);
    j.kb("busy_flag", a.busy);
    j.end_obj();
}

pub fn product_v1(j: &mut J, db: &Db, p: &Product, flat: bool) {
    j.obj();
    j.ki("id", p.id as i64);
    j.ks("name", &p.name);
    j.ks("code", &p.code);
    j.kos("description", p.description.as_deref());
    j.ks("unit", &p.unit);
    j.kf("tax", p.tax);
    j.kos("category", p.category.as_deref());
    j.kb("active_flag", p.deleted_time.is_none());
    j.kb("selectable", p.is_linkable);
    if flat {
        j.ki("visible_to", p.visible_to as i64);
    } else {
        j.ks("visible_to", &p.visible_to.to_string());
    }
    user_ref(
        j,
        db,
        "owner_id",
        p.owner_id,
        if flat { Ref::Flat } else { Ref::Obj },
    );
    ts1(j, "add_time", p.add_time);
    ts1(j, "update_time", p.update_time);
    j.ks("billing_frequency", p.billing_frequency);
    j.koi(
        "billing_frequency_cycles",
        p.billing_frequency_cycles.map(|x| x as i64),
    );
    j.key("prices").arr();
    for (k, pr) in p.prices.iter().enumerate() {
        j.obj()
            .ki("id", (p.id * 10 + k as u64) as i64)
            .ki("product_id", p.id as i64)
            .kf("price", pr.price)
            .ks("currency", &pr.currency)
            .kf("cost", pr.cost)
            .knull("overhead_cost")
            .end_obj();
    }
    j.end_arr();
    custom_fields_v1(j, db, FieldEntity::Product, p.id, &p.cf);
    j.end_obj();
}

pub fn pipeline_v1(j: &mut J, p: &Pipeline) {
    j.obj();
    j.ki("id", p.id as i64);
    j.ks("name", &p.name);
    j.ks("url_title", &p.name.to_lowercase().replace(' ', "-"));
    j.ki("order_nr", p.order_nr as i64);
    j.kb("active", p.deleted_time.is_none());
    j.kb("deal_probability", p.probability_enabled);
    ts1(j, "add_time", p.add_time);
    ts1(j, "update_time", p.update_time);
    j.end_obj();
}

pub fn stage_v1(j: &mut J, s: &Stage) {
    j.obj();
    j.ki("id", s.id as i64);
    j.ki("order_nr", s.order_nr as i64);
    j.ks("name", &s.name);
    j.kb("active_flag", s.deleted_time.is_none());
    j.ki("deal_probability", s.probability as i64);
    j.ki("pipeline_id", s.pipeline_id as i64);
    j.kb("rotten_flag", s.rotten_days.is_some());
    j.koi("rotten_days", s.rotten_days.map(|x| x as i64));
    ts1(j, "add_time", s.add_time);
    ts1(j, "update_time", s.update_time);
    j.end_obj();
}
