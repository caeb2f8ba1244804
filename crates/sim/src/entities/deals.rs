//! Deals: the v2 and v1 views.

use super::followers::deal_followers as followers;
use super::views::V2Opts;
use super::views::{
    CustomFieldsV1, CustomFieldsV2, Included, OrgRef, PersonRef, Ref, UserRef, num, odate, opt_num,
    org_ref, ot1, ot2, person_ref, t1, t2, user_ref,
};
use crate::model::{Db, Deal, FieldEntity};
use crate::util::days_of;
use serde::Serialize;
use serde_json::Value;

#[derive(Serialize)]
pub struct DealV2<'a> {
    id: u64,
    title: &'a str,
    creator_user_id: u64,
    owner_id: u64,
    #[serde(serialize_with = "num")]
    value: f64,
    person_id: Option<u64>,
    org_id: Option<u64>,
    stage_id: u64,
    pipeline_id: u64,
    currency: &'a str,
    archive_time: Option<String>,
    add_time: String,
    update_time: String,
    stage_change_time: Option<String>,
    status: &'static str,
    is_archived: bool,
    is_deleted: bool,
    probability: Option<u32>,
    lost_reason: Option<&'a str>,
    visible_to: u8,
    close_time: Option<String>,
    won_time: Option<String>,
    lost_time: Option<String>,
    local_won_date: Option<String>,
    local_lost_date: Option<String>,
    local_close_date: Option<String>,
    expected_close_date: Option<String>,
    label_ids: &'a [u32],
    origin: &'static str,
    origin_id: (),
    channel: (),
    channel_id: (),
    /// Recurring revenue: only defined when recurring products are attached, which the
    /// simulator never seeds.
    #[serde(serialize_with = "opt_num")]
    acv: Option<f64>,
    #[serde(serialize_with = "opt_num")]
    arr: Option<f64>,
    #[serde(serialize_with = "opt_num")]
    mrr: Option<f64>,
    #[serde(flatten)]
    included: Included,
    custom_fields: CustomFieldsV2<'a>,
}

pub fn deal_v2<'a>(db: &'a Db, d: &'a Deal, o: &'a V2Opts) -> DealV2<'a> {
    DealV2 {
        id: d.id,
        title: &d.title,
        creator_user_id: d.creator_user_id,
        owner_id: d.owner_id,
        value: d.value,
        person_id: d.person_id,
        org_id: d.org_id,
        stage_id: d.stage_id,
        pipeline_id: d.pipeline_id,
        currency: &d.currency,
        archive_time: ot2(d.archive_time),
        add_time: t2(d.add_time),
        update_time: t2(d.update_time),
        stage_change_time: ot2(d.stage_change_time),
        status: if d.deleted_time.is_some() {
            "deleted"
        } else {
            d.status.name()
        },
        is_archived: d.archive_time.is_some(),
        is_deleted: d.deleted_time.is_some(),
        probability: d.probability,
        lost_reason: d.lost_reason.as_deref(),
        visible_to: d.visible_to,
        close_time: ot2(d.close_time),
        won_time: ot2(d.won_time),
        lost_time: ot2(d.lost_time),
        local_won_date: odate(d.won_time.map(days_of)),
        local_lost_date: odate(d.lost_time.map(days_of)),
        local_close_date: odate(d.close_time.map(days_of)),
        expected_close_date: odate(d.expected_close_date),
        label_ids: &d.label_ids,
        origin: d.origin,
        origin_id: (),
        channel: (),
        channel_id: (),
        acv: None,
        arr: None,
        mrr: None,
        included: included(db, d, o),
        custom_fields: CustomFieldsV2 {
            db,
            entity: FieldEntity::Deal,
            id: d.id,
            cf: &d.cf,
            opts: o,
        },
    }
}

/// The `include_fields` a deal knows; others are ignored.
fn included(db: &Db, d: &Deal, o: &V2Opts) -> Included {
    let mut out = Vec::new();
    for f in &o.include_fields {
        let (key, value): (&'static str, Value) = match f.as_str() {
            "products_count" => (
                "products_count",
                db.deal_products
                    .of_deal(d.id)
                    .filter(|p| p.deleted_time.is_none())
                    .count()
                    .into(),
            ),
            "first_won_time" => ("first_won_time", ot2(d.won_time).into()),
            "followers_count" => ("followers_count", followers(d).len().into()),
            "participants_count" => ("participants_count", u8::from(d.person_id.is_some()).into()),
            "source_lead_id" => ("source_lead_id", Value::Null),
            "smart_bcc_email" => ("smart_bcc_email", Value::Null),
            "next_activity_id" => ("next_activity_id", Value::Null),
            "last_activity_id" => ("last_activity_id", Value::Null),
            "last_incoming_mail_time" => ("last_incoming_mail_time", Value::Null),
            "last_outgoing_mail_time" => ("last_outgoing_mail_time", Value::Null),
            "files_count" => ("files_count", 0.into()),
            "notes_count" => ("notes_count", 0.into()),
            "email_messages_count" => ("email_messages_count", 0.into()),
            "activities_count" => ("activities_count", 0.into()),
            "done_activities_count" => ("done_activities_count", 0.into()),
            "undone_activities_count" => ("undone_activities_count", 0.into()),
            _ => continue,
        };
        out.push((key, value));
    }
    Included(out)
}

/// The v1 deal: related records as objects in the deprecated lists, as ids in `/recents`.
#[derive(Serialize)]
pub struct DealV1<'a> {
    id: u64,
    creator_user_id: UserRef<'a>,
    user_id: UserRef<'a>,
    person_id: PersonRef<'a>,
    org_id: OrgRef<'a>,
    stage_id: u64,
    title: &'a str,
    #[serde(serialize_with = "num")]
    value: f64,
    currency: &'a str,
    add_time: String,
    update_time: String,
    stage_change_time: Option<String>,
    active: bool,
    deleted: bool,
    status: &'static str,
    probability: Option<u32>,
    next_activity_date: (),
    next_activity_time: (),
    next_activity_id: (),
    last_activity_id: (),
    last_activity_date: (),
    lost_reason: Option<&'a str>,
    visible_to: String,
    close_time: Option<String>,
    pipeline_id: u64,
    won_time: Option<String>,
    first_won_time: Option<String>,
    lost_time: Option<String>,
    expected_close_date: Option<String>,
    label: Option<String>,
    is_archived: bool,
    archive_time: Option<String>,
    origin: &'static str,
    person_name: Option<String>,
    org_name: Option<&'a str>,
    owner_name: Option<&'a str>,
    cc_email: String,
    #[serde(flatten)]
    custom_fields: CustomFieldsV1<'a>,
}

pub fn deal_v1<'a>(db: &'a Db, d: &'a Deal, flat: bool) -> DealV1<'a> {
    let style = if flat { Ref::Flat } else { Ref::Obj };
    DealV1 {
        id: d.id,
        creator_user_id: user_ref(db, d.creator_user_id, style),
        user_id: user_ref(db, d.owner_id, style),
        person_id: person_ref(db, d.person_id, style),
        org_id: org_ref(db, d.org_id, style),
        stage_id: d.stage_id,
        title: &d.title,
        value: d.value,
        currency: &d.currency,
        add_time: t1(d.add_time),
        update_time: t1(d.update_time),
        stage_change_time: ot1(d.stage_change_time),
        active: d.deleted_time.is_none(),
        deleted: d.deleted_time.is_some(),
        status: if d.deleted_time.is_some() {
            "deleted"
        } else {
            d.status.name()
        },
        probability: d.probability,
        next_activity_date: (),
        next_activity_time: (),
        next_activity_id: (),
        last_activity_id: (),
        last_activity_date: (),
        lost_reason: d.lost_reason.as_deref(),
        visible_to: d.visible_to.to_string(),
        close_time: ot1(d.close_time),
        pipeline_id: d.pipeline_id,
        won_time: ot1(d.won_time),
        first_won_time: ot1(d.won_time),
        lost_time: ot1(d.lost_time),
        expected_close_date: odate(d.expected_close_date),
        label: (!d.label_ids.is_empty()).then(|| {
            d.label_ids
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }),
        is_archived: d.archive_time.is_some(),
        archive_time: ot1(d.archive_time),
        origin: d.origin,
        person_name: d
            .person_id
            .and_then(|id| db.persons.get(id))
            .map(|p| p.name()),
        org_name: d.org_id.and_then(|id| db.orgs.get(id)).map(|o| &*o.name),
        owner_name: db.user_name(d.owner_id),
        cc_email: format!("{}+deal{}@pipedrivemail.com", db.company.domain, d.id),
        custom_fields: CustomFieldsV1 {
            db,
            entity: FieldEntity::Deal,
            id: d.id,
            cf: &d.cf,
        },
    }
}
