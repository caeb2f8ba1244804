//! Legacy teams (deprecated, read-only): two teams that split the users by id.

use super::views::t1;
use crate::model::Db;
use crate::util::{ANCHOR_MS, DAY_MS};
use serde::Serialize;

#[derive(Serialize)]
pub struct TeamV1 {
    pub id: u64,
    name: &'static str,
    description: String,
    manager_id: u64,
    users: Vec<u64>,
    active_flag: u8,
    deleted_flag: u8,
    add_time: String,
    created_by_user_id: u64,
}

/// "Closers" hold the users with odd ids, "Hunters" the even; each team's first user manages it.
pub fn teams(db: &Db) -> Vec<TeamV1> {
    [(1, "Closers", 1), (2, "Hunters", 0)]
        .into_iter()
        .map(|(id, name, parity)| {
            let users: Vec<u64> = db
                .users
                .rows
                .iter()
                .filter(|u| u.id % 2 == parity)
                .map(|u| u.id)
                .collect();
            TeamV1 {
                id,
                name,
                description: format!("{name} team"),
                manager_id: *users.first().unwrap_or(&1),
                users,
                active_flag: 1,
                deleted_flag: 0,
                add_time: t1(ANCHOR_MS - 900 * DAY_MS),
                created_by_user_id: 1,
            }
        })
        .collect()
}
