//! Activities: the v2 and v1 views.

use super::views::{AddrV2, odate, ot1, ot2, t1, t2};
use crate::model::{Activity, Db};
use crate::util::hm;
use serde::Serialize;

#[derive(Serialize)]
pub struct ActivityV2<'a> {
    id: u64,
    subject: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    owner_id: u64,
    creator_user_id: u64,
    is_deleted: bool,
    add_time: String,
    update_time: String,
    deal_id: Option<u64>,
    lead_id: Option<&'a str>,
    person_id: Option<u64>,
    org_id: Option<u64>,
    project_id: (),
    due_date: Option<String>,
    due_time: Option<String>,
    duration: Option<String>,
    busy: bool,
    done: bool,
    marked_as_done_time: Option<String>,
    location: Option<AddrV2<'a>>,
    participants: Vec<Participant>,
    attendees: Vec<Attendee<'a>>,
    conference_meeting_client: (),
    conference_meeting_url: (),
    conference_meeting_id: (),
    public_description: Option<&'a str>,
    priority: Option<u32>,
    note: Option<&'a str>,
}

#[derive(Serialize)]
struct Participant {
    person_id: u64,
    primary: bool,
}

/// The activity's person as an attendee; a person without an email has no `email` key.
#[derive(Serialize)]
struct Attendee<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    name: String,
    status: &'static str,
    is_organizer: bool,
    person_id: u64,
}

pub fn activity_v2<'a>(db: &'a Db, a: &'a Activity) -> ActivityV2<'a> {
    ActivityV2 {
        id: a.id,
        subject: &a.subject,
        kind: &a.type_key,
        owner_id: a.owner_id,
        creator_user_id: a.creator_user_id,
        is_deleted: a.deleted_time.is_some(),
        add_time: t2(a.add_time),
        update_time: t2(a.update_time),
        deal_id: a.deal_id,
        lead_id: a.lead_id.as_deref(),
        person_id: a.person_id,
        org_id: a.org_id,
        project_id: (),
        due_date: odate(a.due_date),
        due_time: a.due_time.map(hm),
        duration: a.duration.map(hm),
        busy: a.busy,
        done: a.done,
        marked_as_done_time: ot2(a.marked_as_done_time),
        location: AddrV2::of_opt(a.location.as_deref()),
        participants: a
            .person_id
            .map(|person_id| Participant {
                person_id,
                primary: true,
            })
            .into_iter()
            .collect(),
        attendees: a
            .person_id
            .and_then(|id| db.persons.get(id))
            .map(|p| Attendee {
                email: p.emails.first().map(|e| &*e.value),
                name: p.name(),
                status: if a.done { "accepted" } else { "noreply" },
                is_organizer: false,
                person_id: p.id,
            })
            .into_iter()
            .collect(),
        conference_meeting_client: (),
        conference_meeting_url: (),
        conference_meeting_id: (),
        public_description: a.public_description.as_deref(),
        priority: a.priority,
        note: a.note.as_deref(),
    }
}

#[derive(Serialize)]
pub struct ActivityV1<'a> {
    id: u64,
    user_id: u64,
    done: bool,
    #[serde(rename = "type")]
    kind: &'a str,
    due_date: Option<String>,
    due_time: String,
    duration: String,
    add_time: String,
    marked_as_done_time: Option<String>,
    subject: &'a str,
    deal_id: Option<u64>,
    org_id: Option<u64>,
    person_id: Option<u64>,
    lead_id: Option<&'a str>,
    active_flag: bool,
    update_time: String,
    note: Option<&'a str>,
    created_by_user_id: u64,
    busy_flag: bool,
}

pub fn activity_v1(a: &Activity) -> ActivityV1<'_> {
    ActivityV1 {
        id: a.id,
        user_id: a.owner_id,
        done: a.done,
        kind: &a.type_key,
        due_date: odate(a.due_date),
        due_time: a.due_time.map(hm).unwrap_or_default(),
        duration: a.duration.map(hm).unwrap_or_default(),
        add_time: t1(a.add_time),
        marked_as_done_time: ot1(a.marked_as_done_time),
        subject: &a.subject,
        deal_id: a.deal_id,
        org_id: a.org_id,
        person_id: a.person_id,
        lead_id: a.lead_id.as_deref(),
        active_flag: a.deleted_time.is_none(),
        update_time: t1(a.update_time),
        note: a.note.as_deref(),
        created_by_user_id: a.creator_user_id,
        busy_flag: a.busy,
    }
}
