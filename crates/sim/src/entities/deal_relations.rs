//! What hangs off a deal without being a record of its own: followers, participants,
//! installments and the deal's flow and changelog. Views for the API and the ground truth.

use super::followers::deal_followers;
use super::persons::{PersonV1, person_v1};
use super::views::{num, t1, t2};
use crate::model::{Db, Deal, Person, User};
use crate::seed::FlowItem;
use crate::util::{Ms, date};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

#[derive(Serialize)]
pub struct FollowerV2 {
    user_id: u64,
    add_time: String,
}

pub fn follower_v2(&(user_id, at): &(u64, Ms)) -> FollowerV2 {
    FollowerV2 {
        user_id,
        add_time: t2(at),
    }
}

/// A v1 follower's id is the deal's times 100 plus the user's.
#[derive(Serialize)]
pub struct FollowerV1 {
    id: u64,
    user_id: u64,
    deal_id: u64,
    add_time: String,
}

pub fn follower_v1(d: &Deal, &(user_id, at): &(u64, Ms)) -> FollowerV1 {
    FollowerV1 {
        id: d.id * 100 + user_id,
        user_id,
        deal_id: d.id,
        add_time: t1(at),
    }
}

/// Ground truth of deal followers.
#[derive(Serialize)]
pub struct FollowerTruth {
    deal_id: u64,
    user_id: u64,
    add_time: String,
}

pub fn follower_truth(d: &Deal) -> Vec<FollowerTruth> {
    deal_followers(d)
        .into_iter()
        .map(|(user_id, at)| FollowerTruth {
            deal_id: d.id,
            user_id,
            add_time: t2(at),
        })
        .collect()
}

/// The deal's person as its one participant (id: the deal's times ten plus one).
#[derive(Serialize)]
pub struct ParticipantV1<'a> {
    id: u64,
    person_id: ParticipantPerson<'a>,
    add_time: String,
    active_flag: bool,
    related_item_data: RelatedDeal<'a>,
    person: PersonV1<'a>,
    added_by_user_id: AddedBy<'a>,
    related_item_type: &'static str,
    related_item_id: u64,
}

#[derive(Serialize)]
struct ParticipantPerson<'a> {
    name: String,
    email: Vec<Contact<'a>>,
    phone: Vec<Contact<'a>>,
    owner_id: u64,
    value: u64,
}

#[derive(Serialize)]
struct Contact<'a> {
    label: &'static str,
    value: &'a str,
    primary: bool,
}

#[derive(Serialize)]
struct RelatedDeal<'a> {
    deal_id: u64,
    title: &'a str,
}

#[derive(Serialize)]
struct AddedBy<'a> {
    id: u64,
    name: Option<&'a str>,
    value: u64,
}

pub fn participant_v1<'a>(db: &'a Db, d: &'a Deal, p: &'a Person) -> ParticipantV1<'a> {
    let contacts = |v: &'a [crate::model::Contact]| {
        v.iter()
            .map(|c| Contact {
                label: c.label,
                value: &c.value,
                primary: c.primary,
            })
            .collect()
    };
    ParticipantV1 {
        id: d.id * 10 + 1,
        person_id: ParticipantPerson {
            name: p.name(),
            email: contacts(&p.emails),
            phone: contacts(&p.phones),
            owner_id: p.owner_id,
            value: p.id,
        },
        add_time: t1(d.add_time),
        active_flag: true,
        related_item_data: RelatedDeal {
            deal_id: d.id,
            title: &d.title,
        },
        person: person_v1(db, p, false),
        added_by_user_id: AddedBy {
            id: d.creator_user_id,
            name: db.user_name(d.creator_user_id),
            value: d.creator_user_id,
        },
        related_item_type: "deal",
        related_item_id: d.id,
    }
}

/// Ground truth of deal participants.
#[derive(Serialize)]
pub struct ParticipantTruth {
    id: u64,
    deal_id: u64,
    person_id: u64,
    add_time: String,
}

pub fn participant_truth(d: &Deal) -> Option<ParticipantTruth> {
    d.person_id.map(|person_id| ParticipantTruth {
        id: d.id * 10 + 1,
        deal_id: d.id,
        person_id,
        add_time: t1(d.add_time),
    })
}

/// Installments are derived for every seventh deal that has a value: two halves, billed 30
/// and 60 days after the deal was added.
pub fn installments(d: &Deal) -> Vec<InstallmentV2> {
    if !d.id.is_multiple_of(7) || d.value <= 0.0 {
        return Vec::new();
    }
    let day = crate::util::days_of(d.add_time);
    let first = (d.value / 2.0).floor();
    vec![
        InstallmentV2 {
            id: d.id * 10 + 1,
            amount: first,
            billing_date: date(day + 30),
            description: "First installment",
            deal_id: d.id,
        },
        InstallmentV2 {
            id: d.id * 10 + 2,
            amount: d.value - first,
            billing_date: date(day + 60),
            description: "Second installment",
            deal_id: d.id,
        },
    ]
}

#[derive(Serialize)]
pub struct InstallmentV2 {
    id: u64,
    #[serde(serialize_with = "num")]
    amount: f64,
    billing_date: String,
    description: &'static str,
    deal_id: u64,
}

/// One entry of `/deals/{id}/flow`: a field change, wrapped with its object name and time.
#[derive(Serialize)]
pub struct FlowEntryV1<'a> {
    object: &'static str,
    timestamp: String,
    data: DealChangeV1<'a>,
}

#[derive(Serialize)]
struct DealChangeV1<'a> {
    id: u64,
    item_id: u64,
    user_id: u64,
    field_key: &'a str,
    old_value: Option<&'a str>,
    new_value: Option<&'a str>,
    is_bulk_update_flag: (),
    log_time: String,
    change_source: &'static str,
    change_source_user_agent: (),
    additional_data: super::field_views::Empty,
}

pub fn flow_entry_v1(deal: u64, f: &FlowItem) -> FlowEntryV1<'_> {
    FlowEntryV1 {
        object: "dealChange",
        timestamp: t1(f.time),
        data: DealChangeV1 {
            id: f.id,
            item_id: deal,
            user_id: f.user_id,
            field_key: &f.field,
            old_value: f.old.as_deref(),
            new_value: f.new.as_deref(),
            is_bulk_update_flag: (),
            log_time: t1(f.time),
            change_source: f.source,
            change_source_user_agent: (),
            additional_data: super::field_views::Empty {},
        },
    }
}

/// The flow's `related_objects`: the users its page names, by id.
#[derive(Serialize)]
pub struct FlowRelated<'a> {
    user: UsersById<'a>,
}

pub struct UsersById<'a>(Vec<&'a User>);

#[derive(Serialize)]
struct FlowUser<'a> {
    id: u64,
    name: &'a str,
    email: &'a str,
    has_pic: bool,
    pic_hash: (),
    active_flag: bool,
}

impl Serialize for UsersById<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for u in &self.0 {
            m.serialize_entry(
                &u.id.to_string(),
                &FlowUser {
                    id: u.id,
                    name: &u.name,
                    email: &u.email,
                    has_pic: false,
                    pic_hash: (),
                    active_flag: u.active,
                },
            )?;
        }
        m.end()
    }
}

/// `users` in id order, each once.
pub fn flow_related<'a>(db: &'a Db, mut users: Vec<u64>) -> FlowRelated<'a> {
    users.sort();
    users.dedup();
    FlowRelated {
        user: UsersById(users.iter().filter_map(|u| db.users.get(*u)).collect()),
    }
}

/// One entry of `/deals/{id}/changelog`.
#[derive(Serialize)]
pub struct ChangelogV1<'a> {
    field_key: &'a str,
    old_value: Option<&'a str>,
    new_value: Option<&'a str>,
    actor_user_id: u64,
    time: String,
    change_source: &'static str,
    change_source_user_agent: (),
    is_bulk_update_flag: bool,
}

pub fn changelog_v1(f: &FlowItem) -> ChangelogV1<'_> {
    ChangelogV1 {
        field_key: &f.field,
        old_value: f.old.as_deref(),
        new_value: f.new.as_deref(),
        actor_user_id: f.user_id,
        time: t1(f.time),
        change_source: f.source,
        change_source_user_agent: (),
        is_bulk_update_flag: false,
    }
}

/// Ground truth of a deal's flow.
#[derive(Serialize)]
pub struct FlowTruth<'a> {
    id: u64,
    item_id: u64,
    user_id: u64,
    field_key: &'a str,
    old_value: Option<&'a str>,
    new_value: Option<&'a str>,
    log_time: String,
}

pub fn flow_truth(deal: u64, f: &FlowItem) -> FlowTruth<'_> {
    FlowTruth {
        id: f.id,
        item_id: deal,
        user_id: f.user_id,
        field_key: &f.field,
        old_value: f.old.as_deref(),
        new_value: f.new.as_deref(),
        log_time: t1(f.time),
    }
}
