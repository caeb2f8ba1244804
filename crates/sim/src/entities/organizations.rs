//! Organizations: the v2 and v1 views.

use super::views::V2Opts;
use super::views::{AddrV2, CustomFieldsV1, CustomFieldsV2, Ref, UserRef, t1, t2, user_ref};
use crate::model::{Db, FieldEntity, Org};
use serde::Serialize;

#[derive(Serialize)]
pub struct OrgV2<'a> {
    id: u64,
    name: &'a str,
    owner_id: u64,
    add_time: String,
    update_time: String,
    address: Option<AddrV2<'a>>,
    is_deleted: bool,
    visible_to: u8,
    label_ids: &'a [u32],
    website: Option<&'a str>,
    linkedin: (),
    industry: Option<u32>,
    annual_revenue: Option<i64>,
    employee_count: Option<i64>,
    custom_fields: CustomFieldsV2<'a>,
}

pub fn org_v2<'a>(db: &'a Db, r: &'a Org, o: &'a V2Opts) -> OrgV2<'a> {
    OrgV2 {
        id: r.id,
        name: &r.name,
        owner_id: r.owner_id,
        add_time: t2(r.add_time),
        update_time: t2(r.update_time),
        address: AddrV2::of_opt(r.address.as_deref()),
        is_deleted: r.deleted_time.is_some(),
        visible_to: r.visible_to,
        label_ids: &r.label_ids,
        website: r.website.as_deref(),
        linkedin: (),
        industry: r.industry,
        annual_revenue: r.annual_revenue,
        employee_count: r.employee_count,
        custom_fields: CustomFieldsV2 {
            db,
            entity: FieldEntity::Org,
            id: r.id,
            cf: &r.cf,
            opts: o,
        },
    }
}

/// The v1 organization: its owner as the related object in the lists and in `/recents` alike.
#[derive(Serialize)]
pub struct OrgV1<'a> {
    id: u64,
    owner_id: UserRef<'a>,
    name: &'a str,
    active_flag: bool,
    add_time: String,
    update_time: String,
    visible_to: String,
    address: Option<String>,
    owner_name: Option<&'a str>,
    cc_email: String,
    #[serde(flatten)]
    custom_fields: CustomFieldsV1<'a>,
}

pub fn org_v1<'a>(db: &'a Db, o: &'a Org) -> OrgV1<'a> {
    OrgV1 {
        id: o.id,
        owner_id: user_ref(db, o.owner_id, Ref::ObjIntPic),
        name: &o.name,
        active_flag: o.deleted_time.is_none(),
        add_time: t1(o.add_time),
        update_time: t1(o.update_time),
        visible_to: o.visible_to.to_string(),
        address: o.address.as_ref().map(|a| a.formatted()),
        owner_name: db.user_name(o.owner_id),
        cc_email: format!("{}+org{}@pipedrivemail.com", db.company.domain, o.id),
        custom_fields: CustomFieldsV1 {
            db,
            entity: FieldEntity::Org,
            id: o.id,
            cf: &o.cf,
        },
    }
}
