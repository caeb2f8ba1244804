//! Notes: the v1 view.

use super::views::t1;
use crate::model::{Db, Note};
use serde::Serialize;

#[derive(Serialize)]
pub struct NoteV1<'a> {
    id: u64,
    active_flag: bool,
    add_time: String,
    content: &'a str,
    deal: Option<Titled<'a>>,
    lead_id: Option<&'a str>,
    deal_id: Option<u64>,
    last_update_user_id: u64,
    org_id: Option<u64>,
    organization: Option<Named<&'a str>>,
    person: Option<Named<String>>,
    person_id: Option<u64>,
    project_id: (),
    project: (),
    pinned_to_lead_flag: bool,
    pinned_to_deal_flag: bool,
    pinned_to_organization_flag: bool,
    pinned_to_person_flag: bool,
    pinned_to_project_flag: bool,
    update_time: String,
    user: Option<Author<'a>>,
    user_id: u64,
}

#[derive(Serialize)]
struct Titled<'a> {
    title: &'a str,
}

#[derive(Serialize)]
struct Named<T> {
    name: T,
}

#[derive(Serialize)]
struct Author<'a> {
    email: &'a str,
    icon_url: (),
    is_you: bool,
    name: &'a str,
}

/// `me` is the user asking, for the author's `is_you`.
pub fn note_v1<'a>(db: &'a Db, n: &'a Note, me: u64) -> NoteV1<'a> {
    NoteV1 {
        id: n.id,
        active_flag: n.deleted_time.is_none(),
        add_time: t1(n.add_time),
        content: &n.content,
        deal: n
            .deal_id
            .and_then(|id| db.deals.get(id))
            .map(|d| Titled { title: &d.title }),
        lead_id: n.lead_id.as_deref(),
        deal_id: n.deal_id,
        last_update_user_id: n.last_update_user_id,
        org_id: n.org_id,
        organization: n
            .org_id
            .and_then(|id| db.orgs.get(id))
            .map(|o| Named { name: &*o.name }),
        person: n
            .person_id
            .and_then(|id| db.persons.get(id))
            .map(|p| Named { name: p.name() }),
        person_id: n.person_id,
        project_id: (),
        project: (),
        pinned_to_lead_flag: n.pinned_to_lead,
        pinned_to_deal_flag: n.pinned_to_deal,
        pinned_to_organization_flag: n.pinned_to_org,
        pinned_to_person_flag: n.pinned_to_person,
        pinned_to_project_flag: false,
        update_time: t1(n.update_time),
        user: db.users.get(n.user_id).map(|u| Author {
            email: &u.email,
            icon_url: (),
            is_you: u.id == me,
            name: &u.name,
        }),
        user_id: n.user_id,
    }
}
