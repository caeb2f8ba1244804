//! Merges: `PUT /v1/{persons,organizations,deals}/{id}/merge` with `{"merge_with_id": N}`.
//!
//! As Pipedrive's merge tutorials describe them (pipedrive.readme.io/docs/merging-two-persons,
//! …/merging-two-deals, …/merging-two-organizations): the record named by `merge_with_id`
//! survives and keeps its values; the record in the path is removed, its values fill the
//! survivor's empty fields, and what hangs off it (deals, persons, activities, notes, leads,
//! deal products, participants) moves to the survivor. The merged-away record is removed
//! outright, not soft-deleted: the tutorials say it "will be removed from your Pipedrive
//! account", and Webhooks v2 report it as a `delete` carrying `merged_to_id`.
//!
//! Every record a merge touches gets the merge time as its `update_time`, so an incremental
//! reader sees the moved children and the survivor.

use crate::json::J;
use crate::model::push_change;
use crate::model::*;
use crate::respond::{Ctx, Resp, err};
use crate::util::Ms;
use crate::util::secs;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// What a merge endpoint merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merged {
    Person,
    Organization,
    Deal,
}

impl Merged {
    fn what(self) -> &'static str {
        match self {
            Merged::Person => "Person",
            Merged::Organization => "Organization",
            Merged::Deal => "Deal",
        }
    }
}

#[derive(Deserialize)]
struct MergeRequest {
    merge_with_id: u64,
}

/// JSON, or the form body older v1 clients send.
fn parse_request(body: &[u8]) -> Option<MergeRequest> {
    serde_json::from_slice(body).ok().or_else(|| {
        url::form_urlencoded::parse(body)
            .find(|(k, _)| k == "merge_with_id")
            .and_then(|(_, v)| v.parse().ok())
            .map(|merge_with_id| MergeRequest { merge_with_id })
    })
}

fn live<T: Rec>(table: &Table<T>, id: u64) -> bool {
    table.get(id).is_some_and(|r| r.deleted_time().is_none())
}

/// `PUT /v1/{entity}/{id}/merge`.
pub fn merge(c: &Ctx, db: &mut Db, kind: Merged, id: &str, body: &[u8]) -> Resp {
    let Some(MergeRequest {
        merge_with_id: survivor,
    }) = parse_request(body)
    else {
        return err(400, "merge_with_id is required");
    };
    let merged = id.parse::<u64>().unwrap_or(0);
    let exists = |id| match kind {
        Merged::Person => live(&db.persons, id),
        Merged::Organization => live(&db.orgs, id),
        Merged::Deal => live(&db.deals, id),
    };
    if !exists(merged) || !exists(survivor) {
        return err(404, &format!("{} not found", kind.what()));
    }
    if merged == survivor {
        return err(
            400,
            &format!("{} cannot be merged with itself", kind.what()),
        );
    }
    let t = secs(c.now);
    let entity = match kind {
        Merged::Person => "person",
        Merged::Organization => "organization",
        Merged::Deal => "deal",
    };
    db.webhook_outbox.note_merge(entity, merged, survivor);
    match kind {
        Merged::Person => {
            merge_persons(db, merged, survivor, t, c.me);
            match db.persons.get(survivor) {
                Some(p) => with_merge_what_id(
                    |j| {
                        j.ser(&super::persons::person_v1(db, p, true));
                    },
                    merged,
                ),
                None => err(500, "lost person"),
            }
        }
        Merged::Organization => {
            merge_orgs(db, merged, survivor, t, c.me);
            respond(&OrgMergeData { id: survivor })
        }
        Merged::Deal => {
            merge_deals(db, merged, survivor, t, c.me);
            match db.deals.get(survivor) {
                Some(d) => with_merge_what_id(
                    |j| {
                        j.ser(&super::deals::deal_v1(db, d, true));
                    },
                    merged,
                ),
                None => err(500, "lost deal"),
            }
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a, T: Serialize + ?Sized> {
    success: bool,
    data: &'a T,
}

#[derive(Serialize)]
struct OrgMergeData {
    id: u64,
}

fn respond<T: Serialize + ?Sized>(data: &T) -> Resp {
    match serde_json::to_vec(&Envelope {
        success: true,
        data,
    }) {
        Ok(body) => Resp { status: 200, body },
        Err(_) => err(500, "Internal server error"),
    }
}

/// The survivor as its v1 object, with `merge_what_id` (the merged-away id) as its last key,
/// as the spec's examples show it.
fn with_merge_what_id(render: impl FnOnce(&mut J), merged: u64) -> Resp {
    let mut j = J::with_capacity(2048);
    render(&mut j);
    let mut object = j.buf;
    if object.pop() != Some(b'}') {
        return err(500, "Internal server error");
    }
    object.extend_from_slice(format!(",\"merge_what_id\":{merged}}}").as_bytes());
    match String::from_utf8(object)
        .ok()
        .and_then(|s| RawValue::from_string(s).ok())
    {
        Some(data) => respond(&*data),
        None => err(500, "Internal server error"),
    }
}

/// Points every row `points_at` selects elsewhere with `repoint`; returns their ids.
fn repoint<T: Rec + Clone>(
    table: &mut Table<T>,
    points_at: impl Fn(&T) -> bool,
    repoint: impl Fn(&mut T),
) -> Vec<u64> {
    let ids: Vec<u64> = table
        .rows
        .iter()
        .filter(|r| points_at(r))
        .map(Rec::id)
        .collect();
    for id in &ids {
        table.modify(*id, &repoint);
    }
    ids
}

/// Moves the rows of `$table` whose `$link` names the merged record to the survivor, giving
/// them the merge time as their `update_time`.
macro_rules! move_children {
    ($table:expr, $link:ident, ($merged:expr, $survivor:expr), $t:expr) => {
        repoint(
            &mut $table,
            |r| r.$link == Some($merged),
            |r| {
                r.$link = Some($survivor);
                r.update_time = $t;
            },
        )
    };
}

/// Removes the merged record; returns it with the survivor as it was before the merge.
fn take_pair<T: Rec + Clone>(table: &mut Table<T>, merged: u64, survivor: u64) -> Option<(T, T)> {
    let gone = table.remove(merged)?;
    let kept = table.get(survivor).cloned()?;
    Some((gone, kept))
}

/// The survivor's custom field values, with its empty ones filled from the merged record's.
fn merged_custom_fields(
    db: &Db,
    entity: FieldEntity,
    survivor: (u64, &Cf),
    merged: (u64, &Cf),
) -> (Cf, Vec<(String, Option<String>)>) {
    let mut cf = survivor.1.clone();
    let mut filled = Vec::new();
    for f in db.custom_fields(entity) {
        let kept = crate::seed::cf_value(db, entity, survivor.0, survivor.1, f);
        let theirs = crate::seed::cf_value(db, entity, merged.0, merged.1, f);
        if kept.is_none()
            && let Some(v) = theirs
        {
            filled.push((f.key.clone(), Some(crate::model::cf_str(&v))));
            cf.set(f.id, Some(v));
        }
    }
    (cf, filled)
}

/// A deal's link to a record that can be merged away.
#[derive(Clone, Copy)]
enum DealLink {
    Person,
    Organization,
}

impl DealLink {
    fn of(self, d: &Deal) -> Option<u64> {
        match self {
            DealLink::Person => d.person_id,
            DealLink::Organization => d.org_id,
        }
    }
    fn of_mut(self, d: &mut Deal) -> &mut Option<u64> {
        match self {
            DealLink::Person => &mut d.person_id,
            DealLink::Organization => &mut d.org_id,
        }
    }
    fn field_key(self) -> &'static str {
        match self {
            DealLink::Person => "person_id",
            DealLink::Organization => "org_id",
        }
    }
}

/// Re-points the deals linked to a merged person or organization, logging each move in the
/// deal's flow as any edit of the link would be.
fn repoint_deals(db: &mut Db, link: DealLink, (merged, survivor): (u64, u64), t: Ms, me: u64) {
    let moved = repoint(
        &mut db.deals,
        |d| link.of(d) == Some(merged),
        |d| {
            *link.of_mut(d) = Some(survivor);
            d.update_time = t;
        },
    );
    for deal in moved {
        push_change(
            db,
            deal,
            me,
            link.field_key(),
            Some(merged.to_string()),
            Some(survivor.to_string()),
            t,
        );
    }
}

fn merge_persons(db: &mut Db, merged: u64, survivor: u64, t: Ms, me: u64) {
    let Some((gone, kept)) = take_pair(&mut db.persons, merged, survivor) else {
        return;
    };
    let (cf, _) = merged_custom_fields(
        db,
        FieldEntity::Person,
        (survivor, &kept.cf),
        (merged, &gone.cf),
    );
    db.persons.modify(survivor, |p| {
        p.org_id = p.org_id.or(gone.org_id);
        if p.emails.is_empty() {
            p.emails = gone.emails.clone();
        }
        if p.phones.is_empty() {
            p.phones = gone.phones.clone();
        }
        if p.label_ids.is_empty() {
            p.label_ids = gone.label_ids.clone();
        }
        p.job_title = p.job_title.take().or(gone.job_title.clone());
        p.birthday = p.birthday.or(gone.birthday);
        p.postal_address = p.postal_address.take().or(gone.postal_address.clone());
        p.cf = cf;
        p.update_time = t;
    });
    repoint_deals(db, DealLink::Person, (merged, survivor), t, me);
    move_children!(db.activities, person_id, (merged, survivor), t);
    move_children!(db.notes, person_id, (merged, survivor), t);
    move_children!(db.leads, person_id, (merged, survivor), t);
}

fn merge_orgs(db: &mut Db, merged: u64, survivor: u64, t: Ms, me: u64) {
    let Some((gone, kept)) = take_pair(&mut db.orgs, merged, survivor) else {
        return;
    };
    let (cf, _) = merged_custom_fields(
        db,
        FieldEntity::Org,
        (survivor, &kept.cf),
        (merged, &gone.cf),
    );
    db.orgs.modify(survivor, |o| {
        o.address = o.address.take().or(gone.address.clone());
        o.website = o.website.take().or(gone.website.clone());
        o.industry = o.industry.or(gone.industry);
        o.annual_revenue = o.annual_revenue.or(gone.annual_revenue);
        o.employee_count = o.employee_count.or(gone.employee_count);
        if o.label_ids.is_empty() {
            o.label_ids = gone.label_ids.clone();
        }
        o.cf = cf;
        o.update_time = t;
    });
    move_children!(db.persons, org_id, (merged, survivor), t);
    repoint_deals(db, DealLink::Organization, (merged, survivor), t, me);
    move_children!(db.activities, org_id, (merged, survivor), t);
    move_children!(db.notes, org_id, (merged, survivor), t);
    move_children!(db.leads, org_id, (merged, survivor), t);
}

fn merge_deals(db: &mut Db, merged: u64, survivor: u64, t: Ms, me: u64) {
    let Some((gone, kept)) = take_pair(&mut db.deals, merged, survivor) else {
        return;
    };
    db.deal_changes.remove(&merged);
    let (cf, filled_custom) = merged_custom_fields(
        db,
        FieldEntity::Deal,
        (survivor, &kept.cf),
        (merged, &gone.cf),
    );
    let mut after = kept.clone();
    after.person_id = kept.person_id.or(gone.person_id);
    after.org_id = kept.org_id.or(gone.org_id);
    after.expected_close_date = kept.expected_close_date.or(gone.expected_close_date);
    after.probability = kept.probability.or(gone.probability);
    if kept.label_ids.is_empty() {
        after.label_ids = gone.label_ids.clone();
    }
    after.cf = cf;
    after.update_time = t;
    let mut filled: Vec<(String, Option<String>, Option<String>)> = [
        ("person_id", kept.person_id, after.person_id),
        ("org_id", kept.org_id, after.org_id),
    ]
    .into_iter()
    .filter(|(_, a, b)| a != b)
    .map(|(k, a, b)| {
        (
            k.to_string(),
            a.map(|x| x.to_string()),
            b.map(|x| x.to_string()),
        )
    })
    .collect();
    if kept.expected_close_date != after.expected_close_date {
        filled.push((
            "expected_close_date".into(),
            None,
            after.expected_close_date.map(crate::util::date),
        ));
    }
    filled.extend(filled_custom.into_iter().map(|(k, v)| (k, None, v)));
    db.deals.modify(survivor, |d| *d = after);
    for (field, old, new) in filled {
        push_change(db, survivor, me, &field, old, new, t);
    }
    move_children!(db.activities, deal_id, (merged, survivor), t);
    move_children!(db.notes, deal_id, (merged, survivor), t);
    db.deal_products.move_to_deal(merged, survivor, t);
}
