//! Roles and permission sets (account settings, read-only): their seeds and v1 views.

use super::users::perm_set_uuid;
use crate::model::Db;
use serde::Serialize;

/// `(id, parent, name, level)`.
pub type Role = (u64, Option<u64>, &'static str, u64);

pub const ROLES: &[Role] = &[
    (1, None, "(Unassigned users)", 1),
    (2, Some(1), "Sales managers", 1),
    (3, Some(2), "Account executives", 2),
];

#[derive(Serialize)]
pub struct RoleV1 {
    parent_role_id: Option<u64>,
    name: &'static str,
    id: u64,
    active_flag: bool,
    /// Counts are strings in v1.
    assignment_count: String,
    sub_role_count: String,
    level: u64,
}

pub fn role_v1(db: &Db, r: &Role) -> RoleV1 {
    RoleV1 {
        parent_role_id: r.1,
        name: r.2,
        id: r.0,
        active_flag: true,
        assignment_count: db
            .users
            .rows
            .iter()
            .filter(|u| u.role_id == r.0)
            .count()
            .to_string(),
        sub_role_count: ROLES
            .iter()
            .filter(|x| x.1 == Some(r.0))
            .count()
            .to_string(),
        level: r.3,
    }
}

/// `(uuid seq, name, app, type)`.
pub type PermissionSet = (u64, &'static str, &'static str, &'static str);

/// Ids match the `access[].permission_set_id` of users.
pub const PERMISSION_SETS: &[PermissionSet] = &[
    (1, "Deals admin", "sales", "admin"),
    (2, "Deals regular user", "sales", "regular"),
    (3, "Global admin", "global", "admin"),
    (4, "Global regular user", "global", "regular"),
    (5, "Account settings", "account_settings", "admin"),
];

/// The users a permission set is assigned to: admins get the admin sets.
pub fn set_members(db: &Db, seq: u64) -> Vec<u64> {
    db.users
        .rows
        .iter()
        .filter(|u| match seq {
            1 | 3 | 5 => u.is_admin,
            _ => !u.is_admin,
        })
        .map(|u| u.id)
        .collect()
}

#[derive(Serialize)]
pub struct PermissionSetV1 {
    id: String,
    name: &'static str,
    description: String,
    app: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    assignment_count: usize,
}

pub fn permission_set_v1(db: &Db, p: &PermissionSet) -> PermissionSetV1 {
    PermissionSetV1 {
        id: perm_set_uuid(p.0),
        name: p.1,
        description: format!("{} permissions", p.1),
        app: p.2,
        kind: p.3,
        assignment_count: set_members(db, p.0).len(),
    }
}

#[derive(Serialize)]
pub struct AssignmentV1 {
    user_id: u64,
    permission_set_id: String,
    name: &'static str,
}

pub fn assignment_v1(p: &PermissionSet, user_id: u64) -> AssignmentV1 {
    AssignmentV1 {
        user_id,
        permission_set_id: perm_set_uuid(p.0),
        name: p.1,
    }
}
