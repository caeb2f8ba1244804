//! Read endpoints of the v1 and v2 APIs.

use crate::entities::deal_relations as relations;
use crate::json::J;
use crate::list::*;
use crate::model::*;
use crate::render::*;
use crate::respond::*;
use crate::seed::{FlowItem, flow_items};
use crate::util::{Ms, parse_iso, parse_rfc3339_strict, parse_v1, v1ts};
use std::collections::HashSet;

fn parse_id(s: &str) -> Option<u64> {
    s.parse().ok()
}

fn csv_ids(c: &Ctx, k: &str) -> Result<Option<HashSet<u64>>, Resp> {
    let v = c.q.csv(k);
    if v.is_empty() {
        return Ok(None);
    }
    if v.len() > 100 {
        return Err(v2_invalid(&format!(
            "{k}: Array must contain at most 100 element(s)"
        )));
    }
    v.iter()
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| v2_invalid(&format!("{k}: Expected number")))
        })
        .collect::<Result<HashSet<_>, _>>()
        .map(Some)
}

fn opt_id(c: &Ctx, k: &str) -> Result<Option<u64>, Resp> {
    match c.q.val(k) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| v2_invalid(&format!("{k}: Expected number, received string"))),
    }
}

/// Shared v2 list parameters.
struct V2Params {
    sort: SortBy,
    desc: bool,
    after: Option<Pos>,
    limit: usize,
    window: Window,
    ids: Option<HashSet<u64>>,
}

fn v2_params(c: &Ctx, sorts: &[SortBy], window_ok: (bool, bool)) -> Result<V2Params, Resp> {
    let limit = parse_limit(c, 2, 500)?;
    let sort = match c.q.val("sort_by") {
        None => SortBy::Id,
        Some(s) => match SortBy::parse(s).filter(|x| sorts.contains(x)) {
            Some(x) => x,
            None => {
                let opts: Vec<_> = sorts.iter().map(|s| format!("'{}'", s.name())).collect();
                return Err(v2_invalid(&format!(
                    "sort_by: Invalid enum value. Expected {}, received '{s}'",
                    opts.join(" | ")
                )));
            }
        },
    };
    let desc = match c.q.val("sort_direction") {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(s) => {
            return Err(v2_invalid(&format!(
                "sort_direction: Invalid enum value. Expected 'asc' | 'desc', received '{s}'"
            )));
        }
    };
    let mut window = Window {
        since: None,
        until: None,
    };
    for (k, ok, slot) in [
        ("updated_since", window_ok.0, 0),
        ("updated_until", window_ok.1, 1),
    ] {
        if let Some(v) = c.q.get(k) {
            if !ok {
                return Err(v2_invalid(&format!("Unrecognized key(s) in object: '{k}'")));
            }
            let Some(t) = parse_rfc3339_strict(v) else {
                return Err(v2_invalid(&format!(
                    "{k}: Invalid datetime. Expected RFC3339 format without fractional seconds, e.g. 2025-01-01T10:20:00Z"
                )));
            };
            if slot == 0 {
                window.since = Some(t);
            } else {
                window.until = Some(t);
            }
        }
    }
    let after = match c.q.val("cursor") {
        None => None,
        Some(s) => match decode_cursor(s, sort, desc) {
            Some(p) => Some(p),
            None => return Err(v2_invalid("cursor: Invalid cursor")),
        },
    };
    let ids = csv_ids(c, "ids")?;
    Ok(V2Params {
        sort,
        desc,
        after,
        limit,
        window,
        ids,
    })
}

fn v2_opts(c: &Ctx) -> V2Opts {
    V2Opts {
        cf_keys: {
            let v = c.q.csv("custom_fields");
            (!v.is_empty()).then_some(v)
        },
        option_labels: c.q.flag("include_option_labels"),
        include_fields: c.q.csv("include_fields"),
    }
}

#[allow(clippy::too_many_arguments)]
fn v2_list<T: Rec>(
    c: &Ctx,
    t: &Table<T>,
    sorts: &[SortBy],
    window_ok: (bool, bool),
    keep: &dyn Fn(&T) -> bool,
    due: &dyn Fn(&T) -> i64,
    render: &dyn Fn(&mut J, &T),
) -> Resp {
    let p = match v2_params(c, sorts, window_ok) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let now = c.now;
    let ids = p.ids.as_ref();
    let k = |r: &T| !purged(r, now) && ids.is_none_or(|s| s.contains(&r.id())) && keep(r);
    let page = v2_page(t, p.sort, p.desc, p.after, p.limit, &p.window, &k, due);
    let next = page.next.map(|pos| encode_cursor(p.sort, p.desc, pos));
    v2_envelope(&page.rows, next, |j, r| render(j, r))
}

/// A v2 list over a small derived vector, paged by index.
fn v2_small<T>(c: &Ctx, items: &[T], render: &dyn Fn(&mut J, &T)) -> Resp {
    match crate::envelope::cursor_window(c, items.len()) {
        Ok(w) => {
            let rows: Vec<&T> = w.of(items).iter().collect();
            v2_envelope(&rows, w.next_cursor(), |j, r| render(j, r))
        }
        Err(e) => e,
    }
}

fn v1_list<T: Rec>(
    c: &Ctx,
    t: &Table<T>,
    max: usize,
    null_when_empty: bool,
    keep: &dyn Fn(&T) -> bool,
    render: &dyn Fn(&mut J, &T),
) -> Resp {
    v1_list_since(c, t, (max, null_when_empty), None, keep, render)
}

/// [`v1_list`] of a list with `updated_since`, which `keep` applies too.
fn v1_list_since<T: Rec>(
    c: &Ctx,
    t: &Table<T>,
    (max, null_when_empty): (usize, bool),
    since: Option<Ms>,
    keep: &dyn Fn(&T) -> bool,
    render: &dyn Fn(&mut J, &T),
) -> Resp {
    let limit = match parse_limit(c, 1, max) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let start = match v1_start(c) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let (sort, desc) = parse_v1_sort(c.q.val("sort"));
    let now = c.now;
    let k = |r: &T| !purged(r, now) && keep(r);
    let (rows, more) = v1_page(t, sort, desc, (start, limit), since, &k);
    v1_envelope(
        &rows,
        start,
        limit,
        more,
        null_when_empty,
        |j, r| render(j, r),
        |_| {},
    )
}

/// A v1 offset list over a small derived vector.
fn v1_small<T>(c: &Ctx, items: &[T], max: usize, render: &dyn Fn(&mut J, &T)) -> Resp {
    match crate::envelope::offset_window(c, max, items.len()) {
        Ok(w) => {
            let rows: Vec<&T> = w.of(items).iter().collect();
            v1_envelope(
                &rows,
                w.start,
                w.limit,
                w.more(),
                true,
                |j, r| render(j, r),
                |_| {},
            )
        }
        Err(e) => e,
    }
}

/// Plain `{"success":true,"data":[...]}` (unpaginated v1 lists).
fn v1_all<T>(items: &[T], render: impl Fn(&mut J, &T)) -> Resp {
    ok_data(|j| {
        j.arr();
        for x in items {
            render(j, x);
        }
        j.end_arr();
    })
}

const V2_SORTS: &[SortBy] = &[SortBy::Id, SortBy::Update, SortBy::Add];

fn no_due<T>(_: &T) -> i64 {
    0
}

/// Deal `status` filter: the statuses asked for, default all not deleted.
fn deal_status_filter(c: &Ctx) -> Result<(HashSet<&'static str>, bool), Resp> {
    let v = c.q.csv("status");
    if v.is_empty() {
        return Ok((["open", "won", "lost"].into_iter().collect(), false));
    }
    let mut set = HashSet::new();
    for s in &v {
        match s.as_str() {
            "open" => set.insert("open"),
            "won" => set.insert("won"),
            "lost" => set.insert("lost"),
            "deleted" => set.insert("deleted"),
            _ => {
                return Err(v2_invalid(&format!(
                    "status: Invalid enum value. Expected 'open' | 'won' | 'lost' | 'deleted', received '{s}'"
                )));
            }
        };
    }
    let del = set.contains("deleted");
    Ok((set, del))
}

fn deal_keep<'a>(c: &'a Ctx, archived: bool) -> Result<impl Fn(&Deal) -> bool + 'a, Resp> {
    let (statuses, _) = deal_status_filter(c)?;
    let owner = opt_id(c, "owner_id")?;
    let person = opt_id(c, "person_id")?;
    let org = opt_id(c, "org_id")?;
    let pipeline = opt_id(c, "pipeline_id")?;
    let stage = opt_id(c, "stage_id")?;
    Ok(move |d: &Deal| {
        let st = if d.deleted_time.is_some() {
            "deleted"
        } else {
            d.status.name()
        };
        statuses.contains(st)
            && d.archive_time.is_some() == archived
            && owner.is_none_or(|x| d.owner_id == x)
            && person.is_none_or(|x| d.person_id == Some(x))
            && org.is_none_or(|x| d.org_id == Some(x))
            && pipeline.is_none_or(|x| d.pipeline_id == x)
            && stage.is_none_or(|x| d.stage_id == x)
    })
}

/// The attachments of the given deals, as a table of their own (in id order, as the full
/// table): scanning every attachment per request made a sync's deal-product reads quadratic
/// in deals.
fn attachments_of(all: &DealProducts, deals: &HashSet<u64>) -> Table<DealProduct> {
    let mut rows: Vec<DealProduct> = deals
        .iter()
        .flat_map(|deal| all.of_deal(*deal).cloned())
        .collect();
    rows.sort_unstable_by_key(|p| p.id);
    Table::new(rows)
}

/// `/deals/products`.
pub fn v2_deals_products(c: &Ctx, db: &Db) -> Resp {
    let ids = match csv_ids(c, "deal_ids") {
        Ok(Some(ids)) => ids,
        Ok(None) => return v2_invalid("deal_ids: Required"),
        Err(e) => return e,
    };
    let attached = attachments_of(&db.deal_products, &ids);
    let keep = |p: &DealProduct| p.deleted_time.is_none();
    v2_list(
        c,
        &attached,
        V2_SORTS,
        (false, false),
        &keep,
        &no_due,
        &|j, p| deal_product_v2(j, p),
    )
}

/// `/deals/installments`.
pub fn v2_deals_installments(c: &Ctx, db: &Db) -> Resp {
    let ids = match csv_ids(c, "deal_ids") {
        Ok(Some(ids)) => ids,
        Ok(None) => return v2_invalid("deal_ids: Required"),
        Err(e) => return e,
    };
    let mut sorted: Vec<u64> = ids.into_iter().collect();
    sorted.sort();
    let items: Vec<_> = sorted
        .iter()
        .filter_map(|id| db.deals.get(*id))
        .filter(|d| !purged(*d, c.now))
        .flat_map(relations::installments)
        .collect();
    v2_small(c, &items, &|j, i| {
        j.ser(i);
    })
}

/// `/deals/{id}`.
pub fn v2_deals_by_id(c: &Ctx, db: &Db, id: &str) -> Resp {
    let o = v2_opts(c);
    by_id(&db.deals, id, c.now, "Deal", |j, d| deal_v2(j, db, d, &o))
}

/// `/deals/{id}/products`.
pub fn v2_deals_by_id_products(c: &Ctx, db: &Db, id: &str) -> Resp {
    let Some(deal) = parse_id(id).and_then(|id| db.deals.get(id)) else {
        return not_found(2, "Deal");
    };
    let attached = attachments_of(&db.deal_products, &HashSet::from([deal.id]));
    let keep = |p: &DealProduct| p.deleted_time.is_none();
    v2_list(
        c,
        &attached,
        V2_SORTS,
        (false, false),
        &keep,
        &no_due,
        &|j, p| deal_product_v2(j, p),
    )
}

/// `/deals/{id}/followers`.
pub fn v2_deals_by_id_followers(c: &Ctx, db: &Db, id: &str) -> Resp {
    let Some(deal) = parse_id(id)
        .and_then(|id| db.deals.get(id))
        .filter(|d| !purged(*d, c.now))
    else {
        return not_found(2, "Deal");
    };
    let items = followers(deal);
    v2_small(c, &items, &|j, f| {
        j.ser(&relations::follower_v2(f));
    })
}

/// `/persons`.
pub fn v2_persons(c: &Ctx, db: &Db) -> Resp {
    let o = v2_opts(c);
    let alive = |del: Option<Ms>| del.is_none();
    let owner = opt_id(c, "owner_id");
    let org = opt_id(c, "org_id");
    let (Ok(owner), Ok(org)) = (owner, org) else {
        return v2_invalid("Expected number");
    };
    let keep = |p: &Person| {
        alive(p.deleted_time)
            && owner.is_none_or(|x| p.owner_id == x)
            && org.is_none_or(|x| p.org_id == Some(x))
    };
    v2_list(
        c,
        &db.persons,
        V2_SORTS,
        (true, true),
        &keep,
        &no_due,
        &|j, p| person_v2(j, db, p, &o),
    )
}

/// `/persons/{id}`.
pub fn v2_persons_by_id(c: &Ctx, db: &Db, id: &str) -> Resp {
    let o = v2_opts(c);
    by_id(&db.persons, id, c.now, "Person", |j, p| {
        person_v2(j, db, p, &o)
    })
}

/// `/organizations`.
pub fn v2_organizations(c: &Ctx, db: &Db) -> Resp {
    let o = v2_opts(c);
    let alive = |del: Option<Ms>| del.is_none();
    let Ok(owner) = opt_id(c, "owner_id") else {
        return v2_invalid("owner_id: Expected number");
    };
    let keep = |p: &Org| alive(p.deleted_time) && owner.is_none_or(|x| p.owner_id == x);
    v2_list(
        c,
        &db.orgs,
        V2_SORTS,
        (true, true),
        &keep,
        &no_due,
        &|j, p| org_v2(j, db, p, &o),
    )
}

/// `/organizations/{id}`.
pub fn v2_organizations_by_id(c: &Ctx, db: &Db, id: &str) -> Resp {
    let o = v2_opts(c);
    by_id(&db.orgs, id, c.now, "Organization", |j, p| {
        org_v2(j, db, p, &o)
    })
}

/// `/activities`.
pub fn v2_activities(c: &Ctx, db: &Db) -> Resp {
    let alive = |del: Option<Ms>| del.is_none();
    let parsed = (|| -> Result<_, Resp> {
        Ok((
            opt_id(c, "owner_id")?,
            opt_id(c, "deal_id")?,
            opt_id(c, "person_id")?,
            opt_id(c, "org_id")?,
        ))
    })();
    let Ok((owner, deal, person, org)) = parsed else {
        return v2_invalid("Expected number");
    };
    let lead = c.q.val("lead_id");
    let done = c.q.val("done").map(|v| v == "true" || v == "1");
    let keep = |a: &Activity| {
        alive(a.deleted_time)
            && owner.is_none_or(|x| a.owner_id == x)
            && deal.is_none_or(|x| a.deal_id == Some(x))
            && person.is_none_or(|x| a.person_id == Some(x))
            && org.is_none_or(|x| a.org_id == Some(x))
            && lead.is_none_or(|x| a.lead_id.as_deref() == Some(x))
            && done.is_none_or(|x| a.done == x)
    };
    let due = |a: &Activity| a.due_date.map(|d| d as i64).unwrap_or(i64::MIN);
    let sorts = [SortBy::Id, SortBy::Update, SortBy::Add, SortBy::Due];
    v2_list(
        c,
        &db.activities,
        &sorts,
        (true, true),
        &keep,
        &due,
        &|j, a| activity_v2(j, db, a),
    )
}

/// `/activities/{id}`.
pub fn v2_activities_by_id(c: &Ctx, db: &Db, id: &str) -> Resp {
    by_id(&db.activities, id, c.now, "Activity", |j, a| {
        activity_v2(j, db, a)
    })
}

/// `/products`.
pub fn v2_products(c: &Ctx, db: &Db) -> Resp {
    let o = v2_opts(c);
    let alive = |del: Option<Ms>| del.is_none();
    let Ok(owner) = opt_id(c, "owner_id") else {
        return v2_invalid("owner_id: Expected number");
    };
    let keep = |p: &Product| alive(p.deleted_time) && owner.is_none_or(|x| p.owner_id == x);
    v2_list(
        c,
        &db.products,
        V2_SORTS,
        (true, false),
        &keep,
        &no_due,
        &|j, p| product_v2(j, db, p, &o),
    )
}

/// `/products/{id}`.
pub fn v2_products_by_id(c: &Ctx, db: &Db, id: &str) -> Resp {
    let o = v2_opts(c);
    by_id(&db.products, id, c.now, "Product", |j, p| {
        product_v2(j, db, p, &o)
    })
}

/// `/pipelines`.
pub fn v2_pipelines(c: &Ctx, db: &Db) -> Resp {
    let alive = |del: Option<Ms>| del.is_none();
    let keep = |p: &Pipeline| alive(p.deleted_time);
    v2_list(
        c,
        &db.pipelines,
        V2_SORTS,
        (false, false),
        &keep,
        &no_due,
        &|j, p| pipeline_v2(j, p),
    )
}

/// `/pipelines/{id}`.
pub fn v2_pipelines_by_id(c: &Ctx, db: &Db, id: &str) -> Resp {
    by_id(&db.pipelines, id, c.now, "Pipeline", pipeline_v2)
}

/// `/stages`.
pub fn v2_stages(c: &Ctx, db: &Db) -> Resp {
    let alive = |del: Option<Ms>| del.is_none();
    let Ok(pipe) = opt_id(c, "pipeline_id") else {
        return v2_invalid("pipeline_id: Expected number");
    };
    let keep = |s: &Stage| alive(s.deleted_time) && pipe.is_none_or(|x| s.pipeline_id == x);
    v2_list(
        c,
        &db.stages,
        V2_SORTS,
        (false, false),
        &keep,
        &no_due,
        &|j, s| stage_v2(j, s),
    )
}

/// `/stages/{id}`.
pub fn v2_stages_by_id(c: &Ctx, db: &Db, id: &str) -> Resp {
    by_id(&db.stages, id, c.now, "Stage", stage_v2)
}

/// `/deals` and `/deals/archived`.
pub fn v2_deals(c: &Ctx, db: &Db, archived: bool) -> Resp {
    let o = v2_opts(c);
    let keep = match deal_keep(c, archived) {
        Ok(k) => k,
        Err(e) => return e,
    };
    v2_list(
        c,
        &db.deals,
        V2_SORTS,
        (true, true),
        &keep,
        &no_due,
        &|j, d| deal_v2(j, db, d, &o),
    )
}

/// `/{entity}Fields` and `/{entity}Fields/{field_code}` (not the lead and note fields, which
/// v2 does not have).
pub fn v2_fields(c: &Ctx, db: &Db, e: FieldEntity, code: Option<&str>) -> Resp {
    if matches!(e, FieldEntity::Lead | FieldEntity::Note) {
        return unknown_route();
    }
    let inc = c.q.csv("include_fields");
    let list: Vec<&FieldDef> = db.fields(e).iter().filter(|f| f.active).collect();
    if let Some(code) = code {
        return match list.iter().find(|f| {
            (if f.is_custom() {
                f.key.as_str()
            } else {
                crate::fields::v2_code(e, &f.key)
            }) == code
        }) {
            Some(f) => ok_data(|j| v2_field(j, e, f, &inc)),
            None => not_found(2, "Field"),
        };
    }
    v2_small(c, &list, &|j, f| v2_field(j, e, f, &inc))
}

/// A record by id. A segment that is no id names another operation (`/deals/summary`,
/// `/users/find`), so it answers as an unknown route rather than as a missing record.
fn by_id<T: Rec>(t: &Table<T>, id: &str, now: Ms, what: &str, render: impl Fn(&mut J, &T)) -> Resp {
    let Some(id) = parse_id(id) else {
        return unknown_route();
    };
    match t.get(id).filter(|r| !purged(*r, now)) {
        Some(r) => ok_data(|j| render(j, r)),
        None => not_found(2, what),
    }
}

/// `/users`.
pub fn v1_users(c: &Ctx, db: &Db) -> Resp {
    v1_all(&db.users.rows, |j, u| user_v1(j, u, c.me))
}

/// `/users/me`.
pub fn v1_users_me(c: &Ctx, db: &Db) -> Resp {
    match db.users.get(c.me) {
        Some(u) => ok_data(|j| {
            j.ser(&crate::entities::users::me_v1(db, u));
        }),
        None => err(401, "unauthorized access"),
    }
}

/// `/users/{id}`.
pub fn v1_users_by_id(c: &Ctx, db: &Db, id: &str) -> Resp {
    match parse_id(id).map(|id| db.users.get(id)) {
        Some(Some(u)) => ok_data(|j| user_v1(j, u, c.me)),
        Some(None) => err(404, "User not found or not accessible."),
        None => unknown_route(),
    }
}

/// `/notes`.
pub fn v1_notes(c: &Ctx, db: &Db) -> Resp {
    let f = |k: &str| c.q.val(k).and_then(parse_id);
    let (user, deal, person, org) = (f("user_id"), f("deal_id"), f("person_id"), f("org_id"));
    let lead = c.q.val("lead_id");
    let since = match c.q.val("updated_since") {
        None => None,
        Some(s) => match parse_v1(s).or_else(|| parse_iso(s)) {
            Some(t) => Some(t),
            None => return err(400, "Invalid updated_since"),
        },
    };
    let start_date = c.q.val("start_date").and_then(crate::util::parse_date);
    let end_date = c.q.val("end_date").and_then(crate::util::parse_date);
    let keep = |n: &Note| {
        n.deleted_time.is_none()
            && user.is_none_or(|x| n.user_id == x)
            && deal.is_none_or(|x| n.deal_id == Some(x))
            && person.is_none_or(|x| n.person_id == Some(x))
            && org.is_none_or(|x| n.org_id == Some(x))
            && lead.is_none_or(|x| n.lead_id.as_deref() == Some(x))
            && since.is_none_or(|s| n.update_time >= s)
            && start_date.is_none_or(|d| crate::util::days_of(n.add_time) >= d)
            && end_date.is_none_or(|d| crate::util::days_of(n.add_time) <= d)
    };
    v1_list_since(c, &db.notes, (500, true), since, &keep, &|j, n| {
        note_v1(j, db, n, c.me)
    })
}

/// `/notes/{id}`.
pub fn v1_notes_by_id(c: &Ctx, db: &Db, id: &str) -> Resp {
    match parse_id(id)
        .and_then(|id| db.notes.get(id))
        .filter(|n| n.deleted_time.is_none())
    {
        Some(n) => ok_data(|j| note_v1(j, db, n, c.me)),
        None => err(404, "Note not found"),
    }
}

/// `/leads/{id}`.
/// A segment that is no UUID names another operation (`/leads/search`).
pub fn v1_leads_by_id(db: &Db, id: &str) -> Resp {
    if uuid::Uuid::parse_str(id).is_err() {
        return unknown_route();
    }
    match db.lead_by_uuid.get(id).and_then(|i| db.leads.get(*i)) {
        Some(l) => ok_data(|j| lead_v1(j, db, l)),
        None => crate::respond::lead_not_found(),
    }
}

/// `/leadLabels`.
pub fn v1_lead_labels(db: &Db) -> Resp {
    v1_all(&db.simple.lead_labels, lead_label_v1)
}

/// `/leadSources`.
pub fn v1_lead_sources() -> Resp {
    v1_all(crate::seed::LEAD_SOURCES, |j, name| {
        j.ser(&crate::entities::leads::LeadSource { name });
    })
}

/// `/activityTypes`.
pub fn v1_activity_types(db: &Db) -> Resp {
    v1_all(&db.simple.activity_types, activity_type_v1)
}

/// `/currencies`.
pub fn v1_currencies(c: &Ctx, db: &Db) -> Resp {
    let term = c.q.val("term").map(|t| t.to_lowercase());
    let v: Vec<&Currency> = db
        .simple
        .currencies
        .iter()
        .filter(|x| {
            term.as_ref().is_none_or(|t| {
                x.code.to_lowercase().contains(t) || x.name.to_lowercase().contains(t)
            })
        })
        .collect();
    v1_all(&v, |j, x| currency_v1(j, x))
}

/// `/filters`.
pub fn v1_filters(c: &Ctx, db: &Db) -> Resp {
    let ty = c.q.val("type");
    let v: Vec<&Filter> = db
        .simple
        .filters
        .iter()
        .filter(|f| ty.is_none_or(|t| f.kind == t))
        .collect();
    v1_all(&v, |j, f| filter_v1(j, f))
}

/// `/filters/{id}`.
pub fn v1_filters_by_id(db: &Db, id: &str) -> Resp {
    match parse_id(id).map(|id| db.simple.filters.iter().find(|f| f.id == id)) {
        Some(Some(f)) => ok_data(|j| filter_v1(j, f)),
        Some(None) => err(404, "Filter not found"),
        None => unknown_route(),
    }
}

/// `/recents`.
pub fn v1_recents(c: &Ctx, db: &Db) -> Resp {
    recents(c, db)
}

/// `/deals/{id}/flow`.
pub fn v1_deals_by_id_flow(c: &Ctx, db: &Db, id: &str) -> Resp {
    deal_flow(c, db, id)
}

/// `/deals/{id}/participants`.
pub fn v1_deals_by_id_participants(c: &Ctx, db: &Db, id: &str) -> Resp {
    let now = c.now;
    let Some(d) = db.live_deal(id, now) else {
        return not_found(1, "Deal");
    };
    let items: Vec<&Person> = d
        .person_id
        .and_then(|p| db.persons.get(p))
        .into_iter()
        .collect();
    v1_small(c, &items, 500, &|j, p| {
        j.ser(&relations::participant_v1(db, d, p));
    })
}

/// `/deals/{id}/followers`.
pub fn v1_deals_by_id_followers(c: &Ctx, db: &Db, id: &str) -> Resp {
    let now = c.now;
    let Some(d) = db.live_deal(id, now) else {
        return not_found(1, "Deal");
    };
    let items = followers(d);
    v1_small(c, &items, 500, &|j, f| {
        j.ser(&relations::follower_v1(d, f));
    })
}

/// `/deals`. Deprecated v1 entity endpoints (2026-01-14 spec).
pub fn v1_deals(c: &Ctx, db: &Db) -> Resp {
    let st = c.q.val("status").unwrap_or("all_not_deleted");
    let user = c.q.val("user_id").and_then(parse_id);
    let stage = c.q.val("stage_id").and_then(parse_id);
    let keep = |d: &Deal| {
        let s = if d.deleted_time.is_some() {
            "deleted"
        } else {
            d.status.name()
        };
        d.archive_time.is_none()
            && (if st == "all_not_deleted" {
                s != "deleted"
            } else {
                s == st
            })
            && user.is_none_or(|u| d.owner_id == u)
            && stage.is_none_or(|x| d.stage_id == x)
    };
    v1_list(c, &db.deals, 500, true, &keep, &|j, d| {
        deal_v1(j, db, d, false)
    })
}

/// `/deals/archived`.
pub fn v1_deals_archived(c: &Ctx, db: &Db) -> Resp {
    let keep = |d: &Deal| d.archive_time.is_some() && d.deleted_time.is_none();
    v1_list(c, &db.deals, 500, true, &keep, &|j, d| {
        deal_v1(j, db, d, false)
    })
}

/// `/deals/{id}`.
pub fn v1_deals_by_id(c: &Ctx, db: &Db, id: &str) -> Resp {
    let now = c.now;
    by_id(&db.deals, id, now, "Deal", |j, d| deal_v1(j, db, d, false))
}

/// `/persons`.
pub fn v1_persons(c: &Ctx, db: &Db) -> Resp {
    v1_list(
        c,
        &db.persons,
        500,
        true,
        &|p: &Person| p.deleted_time.is_none(),
        &|j, p| person_v1(j, db, p, false),
    )
}

/// `/persons/{id}`.
pub fn v1_persons_by_id(c: &Ctx, db: &Db, id: &str) -> Resp {
    let now = c.now;
    by_id(&db.persons, id, now, "Person", |j, p| {
        person_v1(j, db, p, false)
    })
}

/// `/organizations`.
pub fn v1_organizations(c: &Ctx, db: &Db) -> Resp {
    v1_list(
        c,
        &db.orgs,
        500,
        true,
        &|p: &Org| p.deleted_time.is_none(),
        &|j, p| org_v1(j, db, p, false),
    )
}

/// `/organizations/{id}`.
pub fn v1_organizations_by_id(c: &Ctx, db: &Db, id: &str) -> Resp {
    let now = c.now;
    by_id(&db.orgs, id, now, "Organization", |j, p| {
        org_v1(j, db, p, false)
    })
}

/// `/activities`.
pub fn v1_activities(c: &Ctx, db: &Db) -> Resp {
    v1_list(
        c,
        &db.activities,
        500,
        true,
        &|a: &Activity| a.deleted_time.is_none(),
        &|j, a| activity_v1(j, a),
    )
}

/// `/activities/{id}`.
pub fn v1_activities_by_id(c: &Ctx, db: &Db, id: &str) -> Resp {
    let now = c.now;
    by_id(&db.activities, id, now, "Activity", activity_v1)
}

/// `/products`.
pub fn v1_products(c: &Ctx, db: &Db) -> Resp {
    v1_list(
        c,
        &db.products,
        500,
        true,
        &|p: &Product| p.deleted_time.is_none(),
        &|j, p| product_v1(j, db, p, false),
    )
}

/// `/products/{id}`.
pub fn v1_products_by_id(c: &Ctx, db: &Db, id: &str) -> Resp {
    let now = c.now;
    by_id(&db.products, id, now, "Product", |j, p| {
        product_v1(j, db, p, false)
    })
}

/// `/pipelines`.
pub fn v1_pipelines(db: &Db) -> Resp {
    v1_all(
        &db.pipelines
            .rows
            .iter()
            .filter(|p| p.deleted_time.is_none())
            .collect::<Vec<_>>(),
        |j, p| pipeline_v1(j, p),
    )
}

/// `/pipelines/{id}`.
pub fn v1_pipelines_by_id(c: &Ctx, db: &Db, id: &str) -> Resp {
    let now = c.now;
    by_id(&db.pipelines, id, now, "Pipeline", pipeline_v1)
}

/// `/stages`.
pub fn v1_stages(c: &Ctx, db: &Db) -> Resp {
    let pipe = c.q.val("pipeline_id").and_then(parse_id);
    let v: Vec<&Stage> = db
        .stages
        .rows
        .iter()
        .filter(|s| s.deleted_time.is_none() && pipe.is_none_or(|p| s.pipeline_id == p))
        .collect();
    v1_all(&v, |j, s| stage_v1(j, s))
}

/// `/stages/{id}`.
pub fn v1_stages_by_id(c: &Ctx, db: &Db, id: &str) -> Resp {
    let now = c.now;
    by_id(&db.stages, id, now, "Stage", stage_v1)
}

/// `/leads` and `/leads/archived`.
pub fn v1_leads(c: &Ctx, db: &Db, archived: bool) -> Resp {
    let f = |k: &str| c.q.val(k).and_then(parse_id);
    let (owner, person, org) = (f("owner_id"), f("person_id"), f("organization_id"));
    let since = match c.q.val("updated_since").filter(|_| !archived) {
        None => None,
        Some(s) => match parse_iso(s) {
            Some(t) => Some(t),
            None => return err(400, "Invalid updated_since"),
        },
    };
    let keep = |l: &Lead| {
        l.archive_time.is_some() == archived
            && owner.is_none_or(|x| l.owner_id == x)
            && person.is_none_or(|x| l.person_id == Some(x))
            && org.is_none_or(|x| l.org_id == Some(x))
            && since.is_none_or(|s| l.update_time >= s)
    };
    v1_list_since(c, &db.leads, (500, false), since, &keep, &|j, l| {
        lead_v1(j, db, l)
    })
}

/// `/{entity}Fields` (v1 has no project fields).
pub fn v1_fields(c: &Ctx, db: &Db, e: FieldEntity) -> Resp {
    if e == FieldEntity::Project {
        return unknown_route();
    }
    let mut list: Vec<FieldDef> = db.fields(e).iter().filter(|f| f.active).cloned().collect();
    if e == FieldEntity::Lead {
        list.extend(db.custom_fields(FieldEntity::Lead).cloned());
    }
    v1_small(c, &list, 500, &|j, f| v1_field(j, e, f))
}

/// `/{entity}Fields/{id}`.
pub fn v1_fields_by_id(db: &Db, e: FieldEntity, id: &str) -> Resp {
    if e == FieldEntity::Project {
        return unknown_route();
    }
    let Some(id) = parse_id(id) else {
        return unknown_route();
    };
    match db
        .fields(e)
        .iter()
        .find(|f| f.active && u64::from(f.id) == id)
    {
        Some(f) => ok_data(|j| v1_field(j, e, f)),
        None => err(410, "The field is not found"),
    }
}

/// `/v1/recents`: changes since `since_timestamp`, capped at one month before the sim clock.
fn recents(c: &Ctx, db: &Db) -> Resp {
    let Some(since) = c.q.val("since_timestamp") else {
        return err(400, "since_timestamp is required");
    };
    let Some(since) = parse_v1(since) else {
        return err(400, "since_timestamp must be in format YYYY-MM-DD HH:MM:SS");
    };
    let cap = chrono::DateTime::from_timestamp_millis(c.now)
        .and_then(|d| d.checked_sub_months(chrono::Months::new(1)))
        .map(|d| d.timestamp_millis())
        .unwrap_or(c.now);
    let eff = since.max(cap);
    let items: Vec<String> = c.q.csv("items");
    let want = |k: &str| items.is_empty() || items.iter().any(|x| x == k);
    let mut all: Vec<(Ms, &'static str, u64)> = Vec::new();
    fn collect<T: Rec>(
        out: &mut Vec<(Ms, &'static str, u64)>,
        t: &Table<T>,
        kind: &'static str,
        from: Ms,
        now: Ms,
    ) {
        for (u, id) in t.by_update.range((from, 0)..) {
            if t.get(*id).is_some_and(|r| !purged(r, now)) {
                out.push((*u, kind, *id));
            }
        }
    }
    let now = c.now;
    if want("deal") {
        collect(&mut all, &db.deals, "deal", eff, now);
    }
    if want("person") {
        collect(&mut all, &db.persons, "person", eff, now);
    }
    if want("organization") {
        collect(&mut all, &db.orgs, "organization", eff, now);
    }
    if want("activity") {
        collect(&mut all, &db.activities, "activity", eff, now);
    }
    if want("product") {
        collect(&mut all, &db.products, "product", eff, now);
    }
    if want("note") {
        collect(&mut all, &db.notes, "note", eff, now);
    }
    if want("pipeline") {
        collect(&mut all, &db.pipelines, "pipeline", eff, now);
    }
    if want("stage") {
        collect(&mut all, &db.stages, "stage", eff, now);
    }
    if want("user") {
        collect(&mut all, &db.users, "user", eff, now);
    }
    all.sort();
    let limit = match parse_limit(c, 1, 500) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let start = match v1_start(c) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let end = (start + limit).min(all.len());
    let page: Vec<&(Ms, &str, u64)> = all
        .get(start.min(all.len())..end)
        .unwrap_or(&[])
        .iter()
        .collect();
    let last = page.last().map(|x| x.0);
    v1_envelope(
        &page,
        start,
        limit,
        end < all.len(),
        true,
        |j, (_, kind, id)| {
            j.obj().ks("item", kind).ki("id", *id as i64).key("data");
            match *kind {
                "deal" => db.deals.get(*id).map(|r| deal_v1(j, db, r, true)),
                "person" => db.persons.get(*id).map(|r| person_v1(j, db, r, true)),
                "organization" => db.orgs.get(*id).map(|r| org_v1(j, db, r, true)),
                "activity" => db.activities.get(*id).map(|r| activity_v1(j, r)),
                "product" => db.products.get(*id).map(|r| product_v1(j, db, r, true)),
                "note" => db.notes.get(*id).map(|r| note_v1(j, db, r, c.me)),
                "pipeline" => db.pipelines.get(*id).map(|r| pipeline_v1(j, r)),
                "stage" => db.stages.get(*id).map(|r| stage_v1(j, r)),
                _ => db.users.get(*id).map(|r| user_v1(j, r, c.me)),
            };
            j.end_obj();
        },
        |j| {
            j.ks("since_timestamp", &v1ts(eff));
            j.kos("last_timestamp_on_page", last.map(v1ts).as_deref());
        },
    )
}

/// One entry of a deal's flow: seeded history plus API changes, newest first.
fn deal_flow(c: &Ctx, db: &Db, id: &str) -> Resp {
    let Some(d) = parse_id(id)
        .and_then(|id| db.deals.get(id))
        .filter(|d| !purged(*d, c.now))
    else {
        return not_found(1, "Deal");
    };
    let items = c.q.csv("items");
    let mut v = flow_items(db, d.id);
    if !items.is_empty() && !items.iter().any(|x| x == "dealChange") {
        v.clear();
    }
    let limit = match parse_limit(c, 1, 500) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let start = match v1_start(c) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let end = (start + limit).min(v.len());
    let page: Vec<&FlowItem> = v
        .get(start.min(v.len())..end)
        .unwrap_or(&[])
        .iter()
        .collect();
    let users: Vec<u64> = page.iter().map(|f| f.user_id).collect();
    let mut r = v1_envelope(
        &page,
        start,
        limit,
        end < v.len(),
        true,
        |j, f| {
            j.ser(&relations::flow_entry_v1(d.id, f));
        },
        |_| {},
    );
    // Append related_objects.user after additional_data.
    r.body.pop();
    let mut j = J::default();
    j.ser(&relations::flow_related(db, users));
    r.body.extend_from_slice(b",\"related_objects\":");
    r.body.extend_from_slice(&j.buf);
    r.body.push(b'}');
    r
}
