//! Persons: the v2 view.

use super::views::{AddrV2, ContactV2, CustomFieldsV2, contacts_v2, odate, t2};
use crate::model::{Db, FieldEntity, Person};
use crate::render::V2Opts;
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
