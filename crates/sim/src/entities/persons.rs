//! Persons: the v2 and v1 views.

use super::views::V2Opts;
use super::views::{
    AddrV2, ContactV1, ContactV2, CustomFieldsV1, CustomFieldsV2, OrgRef, Ref, UserRef,
    contacts_v1, contacts_v2, odate, org_ref, t1, t2, user_ref,
};
use crate::model::{Db, FieldEntity, Person};
use serde::Serialize;

#[derive(Serialize)]
pub struct PersonV2<'a> {
    id: u64,
    name: String,
    first_name: &'a str,
    last_name: &'a str,
    owner_id: u64,
    org_id: Option<u64>,
    add_time: String,
    update_time: String,
    emails: Vec<ContactV2<'a>>,
    phones: Vec<ContactV2<'a>>,
    is_deleted: bool,
    visible_to: u8,
    label_ids: &'a [u32],
    picture_id: (),
    custom_fields: CustomFieldsV2<'a>,
    im: [(); 0],
    birthday: Option<String>,
    job_title: Option<&'a str>,
    postal_address: Option<AddrV2<'a>>,
}

pub fn person_v2<'a>(db: &'a Db, p: &'a Person, o: &'a V2Opts) -> PersonV2<'a> {
    PersonV2 {
        id: p.id,
        name: p.name(),
        first_name: &p.first_name,
        last_name: &p.last_name,
        owner_id: p.owner_id,
        org_id: p.org_id,
        add_time: t2(p.add_time),
        update_time: t2(p.update_time),
        emails: contacts_v2(&p.emails),
        phones: contacts_v2(&p.phones),
        is_deleted: p.deleted_time.is_some(),
        visible_to: p.visible_to,
        label_ids: &p.label_ids,
        picture_id: (),
        custom_fields: CustomFieldsV2 {
            db,
            entity: FieldEntity::Person,
            id: p.id,
            cf: &p.cf,
            opts: o,
        },
        im: [],
        birthday: odate(p.birthday),
        job_title: p.job_title.as_deref(),
        postal_address: AddrV2::of_opt(p.postal_address.as_deref()),
    }
}

#[derive(Serialize)]
pub struct PersonV1<'a> {
    id: u64,
    owner_id: UserRef<'a>,
    org_id: OrgRef<'a>,
    name: String,
    first_name: &'a str,
    last_name: &'a str,
    phone: Vec<ContactV1<'a>>,
    email: Vec<ContactV1<'a>>,
    add_time: String,
    update_time: String,
    visible_to: String,
    active_flag: bool,
    job_title: Option<&'a str>,
    birthday: Option<String>,
    org_name: Option<&'a str>,
    owner_name: Option<&'a str>,
    cc_email: String,
    #[serde(flatten)]
    custom_fields: CustomFieldsV1<'a>,
}

pub fn person_v1<'a>(db: &'a Db, p: &'a Person, flat: bool) -> PersonV1<'a> {
    let style = if flat { Ref::Flat } else { Ref::ObjIntPic };
    PersonV1 {
        id: p.id,
        owner_id: user_ref(db, p.owner_id, style),
        org_id: org_ref(db, p.org_id, style),
        name: p.name(),
        first_name: &p.first_name,
        last_name: &p.last_name,
        phone: contacts_v1(&p.phones),
        email: contacts_v1(&p.emails),
        add_time: t1(p.add_time),
        update_time: t1(p.update_time),
        visible_to: p.visible_to.to_string(),
        active_flag: p.deleted_time.is_none(),
        job_title: p.job_title.as_deref(),
        birthday: odate(p.birthday),
        org_name: p.org_id.and_then(|id| db.orgs.get(id)).map(|o| &*o.name),
        owner_name: db.user_name(p.owner_id),
        cc_email: format!("{}+person{}@pipedrivemail.com", db.company.domain, p.id),
        custom_fields: CustomFieldsV1 {
            db,
            entity: FieldEntity::Person,
            id: p.id,
            cf: &p.cf,
        },
    }
}
