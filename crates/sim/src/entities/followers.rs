//! Followers of persons, organizations and products: a record's owner follows it from the
//! moment it was added. (The v1 spec's person example names the parent `deal_id`, a slip the
//! organization and product examples do not make: persons answer `person_id`.)

use crate::envelope;
use crate::model::{Db, Rec, Table, purged};
use crate::respond::{Ctx, Resp, err, unknown_route};
use crate::util::{Ms, rfc3339, v1ts};
use serde::Serialize;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    Person,
    Organization,
    Product,
}

impl Followed {
    fn what(self) -> &'static str {
        match self {
            Followed::Person => "Person",
            Followed::Organization => "Organization",
            Followed::Product => "Product",
        }
    }
}

struct Follow {
    record: u64,
    user_id: u64,
    since: Ms,
}

#[derive(Serialize)]
struct FollowerV2 {
    user_id: u64,
    add_time: String,
}

/// v1 names the followed record by its kind.
#[derive(Serialize)]
struct FollowerV1 {
    user_id: u64,
    id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    person_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    product_id: Option<u64>,
    add_time: String,
}

fn follows<T: Rec>(table: &Table<T>, now: Ms, owner: impl Fn(&T) -> u64) -> Vec<Follow> {
    table
        .rows
        .iter()
        .filter(|r| !purged(*r, now))
        .map(|r| Follow {
            record: r.id(),
            user_id: owner(r),
            since: r.add_time(),
        })
        .collect()
}

fn all(db: &Db, kind: Followed, now: Ms) -> Vec<Follow> {
    match kind {
        Followed::Person => follows(&db.persons, now, |p| p.owner_id),
        Followed::Organization => follows(&db.orgs, now, |o| o.owner_id),
        Followed::Product => follows(&db.products, now, |p| p.owner_id),
    }
}

fn v1_view(kind: Followed, f: &Follow) -> FollowerV1 {
    let parent = |k: Followed| (kind == k).then_some(f.record);
    FollowerV1 {
        user_id: f.user_id,
        // One follower a record: the record's id names the follow too.
        id: f.record,
        person_id: parent(Followed::Person),
        org_id: parent(Followed::Organization),
        product_id: parent(Followed::Product),
        add_time: v1ts(f.since),
    }
}

/// `GET /{persons,organizations,products}/{id}/followers`, v1 offset-paged, v2 cursor-paged.
pub fn get(c: &Ctx, db: &Db, ver: u8, kind: Followed, id: &str) -> Resp {
    let Ok(id) = id.parse::<u64>() else {
        return unknown_route();
    };
    let mine: Vec<Follow> = all(db, kind, c.now)
        .into_iter()
        .filter(|f| f.record == id)
        .collect();
    if mine.is_empty() {
        return err(404, &format!("{} not found", kind.what()));
    }
    if ver == 1 {
        let views: Vec<FollowerV1> = mine.iter().map(|f| v1_view(kind, f)).collect();
        envelope::v1_page(c, &views, 500)
    } else {
        let views: Vec<FollowerV2> = mine
            .iter()
            .map(|f| FollowerV2 {
                user_id: f.user_id,
                add_time: rfc3339(f.since),
            })
            .collect();
        envelope::v2_page(c, &views)
    }
}

/// Every follow of one kind, as v1 lists it (it names the record followed).
pub fn truth(db: &Db, kind: Followed, now: Ms) -> Vec<u8> {
    let views: Vec<FollowerV1> = all(db, kind, now)
        .iter()
        .map(|f| v1_view(kind, f))
        .collect();
    envelope::truth(&views)
}

/// Deal followers are derived: the owner, plus the creator when different.
pub fn deal_followers(d: &crate::model::Deal) -> Vec<(u64, crate::util::Ms)> {
    let mut v = vec![(d.owner_id, d.add_time)];
    if d.creator_user_id != d.owner_id {
        v.push((d.creator_user_id, d.add_time));
    }
    v
}
