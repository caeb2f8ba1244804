//! Leads: the v1 view (leads have no v2 list).

use super::views::{CustomFieldsV1, num, odate};
use crate::model::{Db, FieldEntity, Lead};
use crate::util::iso_ms;
use serde::Serialize;

#[derive(Serialize)]
pub struct LeadV1<'a> {
    id: &'a str,
    title: &'a str,
    owner_id: u64,
    creator_id: u64,
    /// Label UUIDs; a label the company no longer has is left out.
    label_ids: Vec<&'a str>,
    person_id: Option<u64>,
    organization_id: Option<u64>,
    source_name: &'static str,
    origin: &'static str,
    origin_id: (),
    channel: (),
    channel_id: (),
    is_archived: bool,
    was_seen: bool,
    value: Option<LeadValue<'a>>,
    expected_close_date: Option<String>,
    next_activity_id: (),
    add_time: String,
    update_time: String,
    visible_to: String,
    cc_email: String,
    #[serde(flatten)]
    custom_fields: CustomFieldsV1<'a>,
}

#[derive(Serialize)]
struct LeadValue<'a> {
    #[serde(serialize_with = "num")]
    amount: f64,
    currency: &'a str,
}

pub fn lead_v1<'a>(db: &'a Db, l: &'a Lead) -> LeadV1<'a> {
    LeadV1 {
        id: &l.uuid,
        title: &l.title,
        owner_id: l.owner_id,
        creator_id: l.creator_id,
        label_ids: l
            .label_ids
            .iter()
            .filter_map(|seq| {
                db.simple
                    .lead_labels
                    .iter()
                    .find(|x| x.seq == *seq)
                    .map(|lab| &*lab.id)
            })
            .collect(),
        person_id: l.person_id,
        organization_id: l.org_id,
        source_name: l.source_name,
        origin: l.origin,
        origin_id: (),
        channel: (),
        channel_id: (),
        is_archived: l.archive_time.is_some(),
        was_seen: l.was_seen,
        value: l.value.as_ref().map(|(amount, currency)| LeadValue {
            amount: *amount,
            currency,
        }),
        expected_close_date: odate(l.expected_close_date),
        next_activity_id: (),
        add_time: iso_ms(l.add_time),
        update_time: iso_ms(l.update_time),
        visible_to: l.visible_to.to_string(),
        cc_email: format!(
            "{}+{}+lead{}@pipedrivemail.com",
            db.company.domain, db.company.id, l.id
        ),
        custom_fields: CustomFieldsV1 {
            db,
            entity: FieldEntity::Lead,
            id: l.id,
            cf: &l.cf,
        },
    }
}

/// A lead source: only its name.
#[derive(Serialize)]
pub struct LeadSource<'a> {
    pub name: &'a str,
}
