//! Lower-priority entities: files, call logs, mailbox, roles, permission sets, legacy teams,
//! goals, projects and tasks. They are derived from the seeded company at startup, are
//! read-only, and small relative to the core tables.

use crate::entities::goals::{Found, Results, goal_id, goal_type, goal_view, goals_envelope};
use crate::entities::roles::{
    PERMISSION_SETS, PermissionSet, ROLES, Role, assignment_v1, set_members,
};
use crate::entities::users::perm_set_uuid;
use crate::entities::{call_logs, files, legacy_teams, mailbox, projects, roles};
use crate::envelope;
use crate::json::J;
use crate::model::{CallLog, Db, File, MailThread, Project, Task, purged};
use crate::respond::{Ctx, Resp, err, ok_data, unknown_route, v1_envelope, v2_envelope};

/// Offset page over a slice.
fn v1_page<T>(c: &Ctx, items: &[&T], max: usize, render: impl FnMut(&mut J, &T)) -> Resp {
    match crate::envelope::offset_window(c, max, items.len()) {
        Ok(w) => v1_envelope(
            w.of(items),
            w.start,
            w.limit,
            w.more(),
            true,
            render,
            |_| {},
        ),
        Err(e) => e,
    }
}

fn v2_page<T>(c: &Ctx, items: &[&T], render: impl FnMut(&mut J, &T)) -> Resp {
    match crate::envelope::cursor_window(c, items.len()) {
        Ok(w) => v2_envelope(w.of(items), w.next_cursor(), render),
        Err(e) => e,
    }
}

fn file_v1(j: &mut J, db: &Db, f: &File) {
    j.ser(&files::file_v1(db, f));
}

fn call_log_v1(j: &mut J, db: &Db, c: &CallLog) {
    j.ser(&call_logs::call_log_v1(db, c));
}

fn thread_v1(j: &mut J, db: &Db, t: &MailThread) {
    j.ser(&mailbox::thread_v1(db, t));
}

fn role_v1(j: &mut J, db: &Db, r: &Role) {
    j.ser(&roles::role_v1(db, r));
}

fn perm_set_v1(j: &mut J, db: &Db, p: &PermissionSet) {
    j.ser(&roles::permission_set_v1(db, p));
}

fn project_v2(j: &mut J, p: &Project) {
    j.ser(&projects::project_v2(p));
}

fn task_v2(j: &mut J, t: &Task) {
    j.ser(&projects::task_v2(t));
}

fn project_v1(j: &mut J, p: &Project) {
    j.ser(&projects::project_v1(p));
}

fn task_v1(j: &mut J, t: &Task) {
    j.ser(&projects::task_v1(t));
}

fn id_of(s: &str) -> Option<u64> {
    s.parse().ok()
}

/// `/projects/{id}`.
/// A segment that is no id names another operation (`/projects/search`).
pub fn v2_projects_by_id(db: &Db, id: &str) -> Resp {
    let x = &db.extra;
    let Some(id) = id_of(id) else {
        return unknown_route();
    };
    match Some(id).and_then(|id| x.projects.iter().find(|p| p.id == id)) {
        Some(p) => ok_data(|j| project_v2(j, p)),
        None => err(404, "Project not found"),
    }
}

/// `/tasks`.
pub fn v2_tasks(c: &Ctx, db: &Db) -> Resp {
    let x = &db.extra;
    let project = c.q.val("project_id").and_then(id_of);
    let done = c.q.val("is_done").map(|v| v == "true" || v == "1");
    let v: Vec<&Task> = x
        .tasks
        .iter()
        .filter(|t| {
            project.is_none_or(|p| t.project_id == p) && done.is_none_or(|d| t.done.is_some() == d)
        })
        .collect();
    v2_page(c, &v, task_v2)
}

/// `/tasks/{id}`.
/// A segment that is no id names another operation (`/tasks/search`).
pub fn v2_tasks_by_id(db: &Db, id: &str) -> Resp {
    let x = &db.extra;
    let Some(id) = id_of(id) else {
        return unknown_route();
    };
    match Some(id).and_then(|id| x.tasks.iter().find(|t| t.id == id)) {
        Some(t) => ok_data(|j| task_v2(j, t)),
        None => err(404, "Task not found"),
    }
}

/// `/projects` and `/projects/archived`.
pub fn v2_projects(c: &Ctx, db: &Db, archived: bool) -> Resp {
    let x = &db.extra;
    let status = c.q.val("status");
    let deal = c.q.val("deal_id").and_then(id_of);
    let v: Vec<&Project> = x
        .projects
        .iter()
        .filter(|p| p.archive_time.is_some() == archived && status.is_none_or(|s| p.status == s))
        .filter(|p| deal.is_none_or(|d| p.deal_id == d))
        .collect();
    v2_page(c, &v, project_v2)
}

/// `/files`.
pub fn v1_files(c: &Ctx, db: &Db) -> Resp {
    let x = &db.extra;
    let now = c.now;
    let v: Vec<&File> = x
        .files
        .iter()
        .filter(|f| db.deals.get(f.deal_id).is_some_and(|d| !purged(d, now)))
        .collect();
    v1_page(c, &v, 100, |j, f| file_v1(j, db, f))
}

/// `/files/{id}`.
pub fn v1_files_by_id(db: &Db, id: &str) -> Resp {
    let x = &db.extra;
    match id_of(id).and_then(|id| x.files.iter().find(|f| f.id == id)) {
        Some(f) => ok_data(|j| file_v1(j, db, f)),
        None => err(404, "File not found"),
    }
}

/// `/deals/{id}/files`.
pub fn v1_deals_by_id_files(c: &Ctx, db: &Db, id: &str) -> Resp {
    let x = &db.extra;
    let now = c.now;
    let Some(deal) = db.live_deal(id, now) else {
        return err(404, "Deal not found");
    };
    let v: Vec<&File> = x.files.iter().filter(|f| f.deal_id == deal.id).collect();
    v1_page(c, &v, 100, |j, f| file_v1(j, db, f))
}

/// `/deals/{id}/mailMessages`.
pub fn v1_deals_by_id_mail_messages(c: &Ctx, db: &Db, id: &str) -> Resp {
    let x = &db.extra;
    let now = c.now;
    let Some(deal) = db.live_deal(id, now) else {
        return err(404, "Deal not found");
    };
    let v: Vec<(&MailThread, u32)> = x
        .threads
        .iter()
        .filter(|t| t.deal_id == deal.id)
        .flat_map(|t| (0..t.messages).map(move |k| (t, k)))
        .collect();
    let v: Vec<&(&MailThread, u32)> = v.iter().collect();
    v1_page(c, &v, 500, |j, (t, k)| {
        j.ser(&mailbox::deal_message_v1(db, t, *k));
    })
}

/// `/callLogs`.
pub fn v1_call_logs(c: &Ctx, db: &Db) -> Resp {
    let x = &db.extra;
    let v: Vec<&CallLog> = x.call_logs.iter().collect();
    v1_page(c, &v, 500, |j, l| call_log_v1(j, db, l))
}

/// `/callLogs/{id}`.
pub fn v1_call_logs_by_id(db: &Db, id: &str) -> Resp {
    let x = &db.extra;
    match x.call_logs.iter().find(|l| l.id == id) {
        Some(l) => ok_data(|j| call_log_v1(j, db, l)),
        None => err(410, "The call log is not found"),
    }
}

/// `/mailbox/mailThreads`.
pub fn v1_mailbox_mail_threads(c: &Ctx, db: &Db) -> Resp {
    let x = &db.extra;
    let Some(folder) = c.q.val("folder") else {
        return err(400, "folder is required");
    };
    if !["inbox", "drafts", "sent", "archive"].contains(&folder) {
        return err(400, "folder must be one of inbox, drafts, sent, archive");
    }
    let v: Vec<&MailThread> = x.threads.iter().filter(|t| t.folder == folder).collect();
    v1_page(c, &v, 500, |j, t| thread_v1(j, db, t))
}

/// `/mailbox/mailMessages/{id}`.
pub fn v1_mailbox_mail_messages_by_id(db: &Db, id: &str) -> Resp {
    let x = &db.extra;
    // Message ids are the thread's id times ten plus the message's place in it.
    let found = id_of(id).and_then(|id| {
        let t = x.threads.iter().find(|t| t.id == id / 10)?;
        let k = (id % 10) as u32;
        (k < t.messages).then_some((t, k))
    });
    match found {
        Some((t, k)) => ok_data(|j| {
            j.ser(&mailbox::message_v1(db, t, k));
        }),
        None => err(404, "Mail message not found"),
    }
}

/// `/mailbox/mailThreads/{id}`.
pub fn v1_mailbox_mail_threads_by_id(db: &Db, id: &str) -> Resp {
    let x = &db.extra;
    match id_of(id).and_then(|id| x.threads.iter().find(|t| t.id == id)) {
        Some(t) => ok_data(|j| thread_v1(j, db, t)),
        None => err(404, "Mail thread not found"),
    }
}

/// `/mailbox/mailThreads/{id}/mailMessages`.
pub fn v1_mailbox_mail_threads_by_id_mail_messages(db: &Db, id: &str) -> Resp {
    let x = &db.extra;
    match id_of(id).and_then(|id| x.threads.iter().find(|t| t.id == id)) {
        Some(t) => ok_data(|j| {
            j.arr();
            for k in 0..t.messages {
                j.ser(&mailbox::message_v1(db, t, k));
            }
            j.end_arr();
        }),
        None => err(404, "Mail thread not found"),
    }
}

/// `/roles`.
pub fn v1_roles(c: &Ctx, db: &Db) -> Resp {
    let v: Vec<&Role> = ROLES.iter().collect();
    v1_page(c, &v, 500, |j, r| role_v1(j, db, r))
}

/// `/roles/{id}`.
pub fn v1_roles_by_id(db: &Db, id: &str) -> Resp {
    match id_of(id).and_then(|id| ROLES.iter().find(|r| r.0 == id)) {
        Some(r) => ok_data(|j| role_v1(j, db, r)),
        None => err(404, "Role not found"),
    }
}

/// `/permissionSets`.
pub fn v1_permission_sets(c: &Ctx, db: &Db) -> Resp {
    let app = c.q.val("app");
    ok_data(|j| {
        j.arr();
        for p in PERMISSION_SETS
            .iter()
            .filter(|p| app.is_none_or(|a| p.2 == a))
        {
            perm_set_v1(j, db, p);
        }
        j.end_arr();
    })
}

/// `/projects`.
pub fn v1_projects(c: &Ctx, db: &Db) -> Resp {
    let x = &db.extra;
    let status = c.q.val("status");
    let archived = c.q.flag("include_archived");
    let v: Vec<&Project> = x
        .projects
        .iter()
        .filter(|p| (archived || p.archive_time.is_none()) && status.is_none_or(|s| p.status == s))
        .collect();
    v2_page(c, &v, project_v1)
}

/// `/projects/{id}`.
pub fn v1_projects_by_id(db: &Db, id: &str) -> Resp {
    let x = &db.extra;
    match id_of(id).and_then(|id| x.projects.iter().find(|p| p.id == id)) {
        Some(p) => ok_data(|j| project_v1(j, p)),
        None => err(404, "Project not found"),
    }
}

/// `/tasks`.
pub fn v1_tasks(c: &Ctx, db: &Db) -> Resp {
    let x = &db.extra;
    let project = c.q.val("project_id").and_then(id_of);
    let done = c.q.val("done").map(|v| v == "1");
    let v: Vec<&Task> = x
        .tasks
        .iter()
        .filter(|t| {
            project.is_none_or(|p| t.project_id == p) && done.is_none_or(|d| t.done.is_some() == d)
        })
        .collect();
    v2_page(c, &v, task_v1)
}

/// `/tasks/{id}`.
pub fn v1_tasks_by_id(db: &Db, id: &str) -> Resp {
    let x = &db.extra;
    match id_of(id).and_then(|id| x.tasks.iter().find(|t| t.id == id)) {
        Some(t) => ok_data(|j| task_v1(j, t)),
        None => err(404, "Task not found"),
    }
}

/// `/deals/{id}/changelog`.
pub fn v1_deals_by_id_changelog(c: &Ctx, db: &Db, id: &str) -> Resp {
    let now = c.now;
    let Some(d) = id_of(id)
        .and_then(|id| db.deals.get(id))
        .filter(|d| !purged(*d, now))
    else {
        return err(404, "Deal not found");
    };
    let items = crate::seed::flow_items(db, d.id);
    let v: Vec<&crate::seed::FlowItem> = items.iter().collect();
    v2_page(c, &v, |j, f| {
        j.ser(&crate::entities::deal_relations::changelog_v1(f));
    })
}

/// `/goals/find`.
pub fn v1_goals_find(c: &Ctx, db: &Db) -> Resp {
    let active = c.q.val("is_active").map(|v| v == "true" || v == "1");
    let ty = c.q.val("type.name");
    let goals = (0..3u64)
        .filter(|k| active.is_none_or(|a| a == (*k != 2)) && ty.is_none_or(|t| t == goal_type(*k)))
        .map(|k| goal_view(db, k))
        .collect();
    envelope::json(200, &goals_envelope(Found { goals }))
}

/// `/goals/{id}/results`.
pub fn v1_goals_by_id_results(c: &Ctx, db: &Db, id: &str) -> Resp {
    let Some(k) = (0..3u64).find(|k| goal_id(db.seed, *k) == id) else {
        return err(404, "Goal not found");
    };
    // Both period bounds are required by the spec.
    for bound in ["period.start", "period.end"] {
        if c.q.val(bound).is_none() {
            return err(400, &format!("{bound} is required"));
        }
    }
    let won = db
        .deals
        .rows
        .iter()
        .filter(|d| d.won_time.is_some())
        .count();
    envelope::json(
        200,
        &goals_envelope(Results {
            goal: goal_view(db, k),
            progress: (won as i64 + k as i64) % 100,
        }),
    )
}

/// `/permissionSets/{id}` and `/permissionSets/{id}/assignments`.
pub fn v1_permission_set(c: &Ctx, db: &Db, id: &str, assignments: bool) -> Resp {
    let Some(p) = PERMISSION_SETS.iter().find(|p| perm_set_uuid(p.0) == id) else {
        return err(404, "Permission set not found");
    };
    if !assignments {
        return ok_data(|j| perm_set_v1(j, db, p));
    }
    let members = set_members(db, p.0);
    let v: Vec<&u64> = members.iter().collect();
    v1_page(c, &v, 500, |j, u| {
        j.ser(&assignment_v1(p, *u));
    })
}

/// `/legacyTeams` and `/legacyTeams/{id}`.
pub fn v1_legacy_teams(db: &Db, id: Option<&str>) -> Resp {
    let teams = legacy_teams::teams(db);
    match id {
        Some(id) => match id_of(id).and_then(|id| teams.iter().find(|t| t.id == id)) {
            Some(t) => envelope::data(t),
            None => err(404, "Team not found"),
        },
        None => envelope::data(&teams),
    }
}

/// Ground truth for the derived entities.
pub fn truth(db: &Db, entity: &str, j: &mut J) -> bool {
    let x = &db.extra;
    match entity {
        "files" => x.files.iter().for_each(|f| file_v1(j, db, f)),
        "call_logs" => x.call_logs.iter().for_each(|l| call_log_v1(j, db, l)),
        "mail_threads" => x.threads.iter().for_each(|t| thread_v1(j, db, t)),
        "mail_messages" => x.threads.iter().for_each(|t| {
            (0..t.messages).for_each(|k| {
                j.ser(&mailbox::message_v1(db, t, k));
            })
        }),
        "roles" => ROLES.iter().for_each(|r| role_v1(j, db, r)),
        "permission_sets" => {
            let mut v: Vec<_> = PERMISSION_SETS.iter().collect();
            v.sort_by_key(|p| perm_set_uuid(p.0));
            v.into_iter().for_each(|p| perm_set_v1(j, db, p));
        }
        "permission_set_assignments" => PERMISSION_SETS.iter().for_each(|p| {
            for u in set_members(db, p.0) {
                j.ser(&assignment_v1(p, u));
            }
        }),
        "goals" => {
            let mut v: Vec<u64> = (0..3).collect();
            v.sort_by_key(|k| goal_id(db.seed, *k));
            v.into_iter().for_each(|k| {
                j.ser(&goal_view(db, k));
            });
        }
        "projects" => x.projects.iter().for_each(|p| project_v2(j, p)),
        "tasks" => x.tasks.iter().for_each(|t| task_v2(j, t)),
        _ => return false,
    }
    true
}
