//! Lower-priority entities: files, call logs, mailbox, roles, permission sets, legacy teams,
//! goals, projects and tasks. They are derived from the seeded company at startup, are
//! read-only, and small relative to the core tables.

use crate::entities::users::perm_set_uuid;
use crate::json::J;
use crate::model::{CallLog, Db, File, MailThread, Project, Task, purged};
use crate::respond::{Ctx, Resp, err, ok_data, unknown_route, v1_envelope, v2_envelope};
use crate::util::{DAY_MS, Ms, Rng, date, days_of, iso_ms, v1ts};

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

pub fn file_v1(j: &mut J, db: &Db, f: &File) {
    j.obj();
    j.ki("id", f.id as i64)
        .ki("user_id", f.user_id as i64)
        .ki("deal_id", f.deal_id as i64);
    j.koi("person_id", f.person_id.map(|x| x as i64))
        .koi("org_id", f.org_id.map(|x| x as i64));
    j.knull("product_id")
        .knull("activity_id")
        .knull("lead_id")
        .knull("project_id")
        .knull("log_id");
    j.ks("add_time", &v1ts(f.add_time))
        .ks("update_time", &v1ts(f.add_time));
    j.ks("file_name", &f.name)
        .ks("file_type", "pdf")
        .ki("file_size", f.size as i64);
    j.kb("active_flag", true)
        .kb("inline_flag", false)
        .ks("remote_location", "s3")
        .ks("remote_id", "");
    j.ks("cid", "")
        .ks("s3_bucket", "")
        .ks("mail_message_id", "")
        .ks("mail_template_id", "");
    j.ks(
        "deal_name",
        db.deals.get(f.deal_id).map(|d| &*d.title).unwrap_or(""),
    );
    j.ks(
        "person_name",
        &f.person_id
            .and_then(|p| db.persons.get(p))
            .map(|p| p.name())
            .unwrap_or_default(),
    );
    j.ks(
        "org_name",
        f.org_id
            .and_then(|o| db.orgs.get(o))
            .map(|o| &*o.name)
            .unwrap_or(""),
    );
    j.ks("product_name", "")
        .ks("lead_name", "")
        .ks("project_name", "");
    j.ks(
        "url",
        &format!(
            "https://{}.pipedrive.com/v1/files/{}/download",
            db.company.domain, f.id
        ),
    );
    j.ks("name", &f.name).ks("description", "");
    j.end_obj();
}

pub fn call_log_v1(j: &mut J, db: &Db, c: &CallLog) {
    j.obj();
    j.ks("id", &c.id).ki("activity_id", c.activity_id as i64);
    j.koi("person_id", c.person_id.map(|x| x as i64))
        .koi("org_id", c.org_id.map(|x| x as i64));
    j.koi("deal_id", c.deal_id.map(|x| x as i64));
    j.ks("subject", "Call")
        .ks("duration", &c.duration.to_string())
        .ks("outcome", c.outcome);
    j.ks("from_phone_number", "+372 600 0000")
        .ks("to_phone_number", &c.to)
        .kb("has_recording", false);
    j.ks("start_time", &iso_ms(c.start))
        .ks("end_time", &iso_ms(c.start + c.duration as i64 * 1000));
    j.ki("user_id", c.user_id as i64)
        .ki("company_id", db.company.id as i64)
        .ks("note", "");
    j.end_obj();
}

fn party(j: &mut J, db: &Db, id: u64, email: &str, person: Option<u64>) {
    j.obj()
        .ki("id", id as i64)
        .ks("name", "")
        .kb("latest_sent", false)
        .ks("email_address", email);
    j.ki("message_time", 0);
    j.koi("linked_person_id", person.map(|x| x as i64));
    j.ks(
        "linked_person_name",
        &person
            .and_then(|p| db.persons.get(p))
            .map(|p| p.name())
            .unwrap_or_default(),
    );
    j.knull("linked_organization_id")
        .ki("mail_message_party_id", id as i64)
        .end_obj();
}

fn person_email(db: &Db, p: Option<u64>) -> String {
    p.and_then(|p| db.persons.get(p))
        .and_then(|p| p.emails.first())
        .map(|e| e.value.to_string())
        .unwrap_or_else(|| "unknown@example.com".into())
}

pub fn thread_v1(j: &mut J, db: &Db, t: &MailThread) {
    let user_email = db
        .users
        .get(t.user_id)
        .map(|u| u.email.to_string())
        .unwrap_or_default();
    let pe = person_email(db, t.person_id);
    j.obj();
    j.ki("id", t.id as i64);
    j.key("parties").obj().key("to").arr();
    party(j, db, t.id * 10 + 1, &pe, t.person_id);
    j.end_arr().key("from").arr();
    party(j, db, t.id * 10 + 2, &user_email, None);
    j.end_arr().end_obj();
    j.key("drafts_parties").arr().end_arr();
    j.key("folders").arr().s(t.folder).end_arr();
    j.ks("account_id", &format!("acc{}", t.user_id))
        .ki("user_id", t.user_id as i64)
        .ki("version", 1);
    j.ks("subject", &t.subject)
        .ks("snippet", "Thanks for the call today")
        .knull("snippet_draft");
    j.ks("snippet_sent", "");
    for k in [
        "has_attachments_flag",
        "has_inline_attachments_flag",
        "has_real_attachments_flag",
        "has_draft_flag",
    ] {
        j.ki(k, 0);
    }
    j.ki("has_sent_flag", (t.folder == "sent") as i64);
    j.ki("archived_flag", (t.folder == "archive") as i64);
    j.ki("deleted_flag", 0)
        .ki("shared_flag", 1)
        .ki("synced_flag", 1)
        .ki("external_deleted_flag", 0);
    j.ki("smart_bcc_flag", 0)
        .ki("first_message_to_me_flag", 1)
        .ki("mail_link_tracking_enabled_flag", 0);
    j.ks("last_message_timestamp", &iso_ms(t.last))
        .ks("first_message_timestamp", &iso_ms(t.first));
    j.knull("last_message_sent_timestamp")
        .ks("last_message_received_timestamp", &iso_ms(t.last));
    j.ks("add_time", &iso_ms(t.first + 1000))
        .ks("update_time", &iso_ms(t.last + 1000));
    j.ki("deal_id", t.deal_id as i64);
    j.ks(
        "deal_status",
        db.deals
            .get(t.deal_id)
            .map(|d| d.status.name())
            .unwrap_or("open"),
    );
    j.ki("all_messages_sent_flag", 0);
    j.ki("message_count", t.messages as i64);
    j.end_obj();
}

fn message_time(t: &MailThread, k: u32) -> Ms {
    t.first + (t.last - t.first) * k as i64 / t.messages.max(1) as i64
}

fn message_v1(j: &mut J, db: &Db, t: &MailThread, k: u32) {
    let time = message_time(t, k);
    let pe = person_email(db, t.person_id);
    j.obj();
    j.ki("id", (t.id * 10 + k as u64) as i64);
    j.key("from").arr();
    j.obj().ki("id", 1).ks("email_address", &pe).ks("name", "");
    j.koi("linked_person_id", t.person_id.map(|x| x as i64))
        .ks("linked_person_name", "")
        .ki("mail_message_party_id", 1)
        .end_obj();
    j.end_arr();
    j.key("to")
        .arr()
        .end_arr()
        .key("cc")
        .arr()
        .end_arr()
        .key("bcc")
        .arr()
        .end_arr();
    j.ks(
        "body_url",
        &format!("https://mail.example.com/{}/{}", t.id, k),
    );
    j.ks("account_id", &format!("acc{}", t.user_id))
        .ki("user_id", t.user_id as i64);
    j.ki("mail_thread_id", t.id as i64)
        .ks("subject", &t.subject)
        .ks("snippet", "Thanks for the call today");
    j.knull("mail_tracking_status")
        .ki("mail_link_tracking_enabled_flag", 0)
        .ki("read_flag", 1);
    j.knull("draft")
        .ki("draft_flag", 0)
        .ki("synced_flag", 1)
        .ki("deleted_flag", 0)
        .ki("has_body_flag", 1);
    j.ki("sent_flag", 0)
        .ki("sent_from_pipedrive_flag", 0)
        .ki("smart_bcc_flag", 0);
    j.ks("message_time", &iso_ms(time))
        .ks("add_time", &iso_ms(time + 1000))
        .ks("update_time", &iso_ms(time + 1000));
    j.ki("has_attachments_flag", 0)
        .ki("has_inline_attachments_flag", 0)
        .ki("has_real_attachments_flag", 0);
    j.end_obj();
}

const ROLES: &[(u64, Option<u64>, &str, u64)] = &[
    (1, None, "(Unassigned users)", 1),
    (2, Some(1), "Sales managers", 1),
    (3, Some(2), "Account executives", 2),
];

fn role_v1(j: &mut J, db: &Db, r: &(u64, Option<u64>, &str, u64)) {
    let assigned = db.users.rows.iter().filter(|u| u.role_id == r.0).count();
    let subs = ROLES.iter().filter(|x| x.1 == Some(r.0)).count();
    j.obj()
        .koi("parent_role_id", r.1.map(|x| x as i64))
        .ks("name", r.2)
        .ki("id", r.0 as i64);
    j.kb("active_flag", true)
        .ks("assignment_count", &assigned.to_string())
        .ks("sub_role_count", &subs.to_string());
    j.ki("level", r.3 as i64).end_obj();
}

/// `(uuid seq, name, app, type)`; ids match the `access[].permission_set_id` of users.
const PERMISSION_SETS: &[(u64, &str, &str, &str)] = &[
    (1, "Deals admin", "sales", "admin"),
    (2, "Deals regular user", "sales", "regular"),
    (3, "Global admin", "global", "admin"),
    (4, "Global regular user", "global", "regular"),
    (5, "Account settings", "account_settings", "admin"),
];

fn set_members(db: &Db, seq: u64) -> Vec<u64> {
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

fn perm_set_v1(j: &mut J, db: &Db, p: &(u64, &str, &str, &str)) {
    j.obj()
        .ks("id", &perm_set_uuid(p.0))
        .ks("name", p.1)
        .ks("description", &format!("{} permissions", p.1));
    j.ks("app", p.2)
        .ks("type", p.3)
        .ki("assignment_count", set_members(db, p.0).len() as i64)
        .end_obj();
}

fn goal_id(seed: u64, k: u64) -> String {
    Rng::for_item(seed, "goal", k).hex(32)
}

fn goal(j: &mut J, db: &Db, k: u64) {
    let (name, metric, interval) = [
        ("deals_won", "sum", "monthly"),
        ("activities_completed", "quantity", "weekly"),
        ("deals_started", "quantity", "quarterly"),
    ][k as usize % 3];
    j.obj()
        .ks("id", &goal_id(db.seed, k))
        .ki("owner_id", 1)
        .ks("title", &format!("Goal: {}", name.replace('_', " ")));
    j.key("type")
        .obj()
        .ks("name", name)
        .key("params")
        .obj()
        .key("pipeline_id")
        .arr()
        .i(1)
        .end_arr()
        .end_obj()
        .end_obj();
    j.key("assignee")
        .obj()
        .ks("type", "company")
        .ki("id", db.company.id as i64)
        .end_obj();
    j.ks("interval", interval);
    let start = days_of(crate::util::ANCHOR_MS) - 300;
    j.key("duration")
        .obj()
        .ks("start", &date(start))
        .ks("end", &date(start + 365))
        .end_obj();
    j.key("expected_outcome")
        .obj()
        .ki("target", 100)
        .ks("tracking_metric", metric);
    if metric == "sum" {
        j.ki("currency_id", 1);
    }
    j.end_obj();
    j.kb("is_active", k != 2)
        .key("report_ids")
        .arr()
        .s(&Rng::for_item(db.seed, "goal_report", k).hex(32))
        .end_arr();
    j.end_obj();
}

fn project_v2(j: &mut J, p: &Project) {
    j.obj();
    j.ki("id", p.id as i64)
        .ks("title", &p.title)
        .ks("description", "Customer onboarding project");
    j.ks("status", p.status)
        .ki("board_id", 1)
        .ki("phase_id", p.phase_id as i64)
        .ki("owner_id", p.owner_id as i64);
    j.ks("start_date", &date(p.start))
        .ks("end_date", &date(p.end));
    j.key("deal_ids").arr().i(p.deal_id as i64).end_arr();
    j.key("person_ids").arr();
    if let Some(x) = p.person_id {
        j.i(x as i64);
    }
    j.end_arr().key("org_ids").arr();
    if let Some(x) = p.org_id {
        j.i(x as i64);
    }
    j.end_arr()
        .key("label_ids")
        .arr()
        .end_arr()
        .knull("health_status");
    j.ks("add_time", &iso_ms(p.add_time))
        .ks("update_time", &iso_ms(p.update_time));
    j.ks("status_change_time", &iso_ms(p.add_time));
    match p.archive_time {
        Some(t) => j.ks("archive_time", &iso_ms(t)),
        None => j.knull("archive_time"),
    };
    j.key("custom_fields").obj().end_obj();
    j.end_obj();
}

fn task_v2(j: &mut J, t: &Task) {
    j.obj();
    j.ki("id", t.id as i64)
        .ks("title", &t.title)
        .ki("creator_id", t.creator_id as i64)
        .knull("description");
    j.ki("project_id", t.project_id as i64)
        .kb("is_done", t.done.is_some())
        .kb("is_milestone", false);
    j.ks("due_date", &date(t.due))
        .knull("start_date")
        .knull("parent_task_id");
    j.key("assignee_ids")
        .arr()
        .i(t.assignee as i64)
        .end_arr()
        .knull("priority");
    j.ks("add_time", &iso_ms(t.add_time))
        .ks("update_time", &iso_ms(t.done.unwrap_or(t.add_time)));
    match t.done {
        Some(d) => j.ks("marked_as_done_time", &iso_ms(d)),
        None => j.knull("marked_as_done_time"),
    };
    j.end_obj();
}

fn ts_ms(t: Ms) -> String {
    chrono::DateTime::from_timestamp_millis(t)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

fn project_v1(j: &mut J, p: &Project) {
    j.obj();
    j.ki("id", p.id as i64)
        .ks("title", &p.title)
        .ks("description", "Customer onboarding project");
    j.ks("status", p.status)
        .ks("status_change_time", &ts_ms(p.add_time));
    j.ks("start_date", &date(p.start))
        .ks("end_date", &date(p.end))
        .ki("owner_id", p.owner_id as i64);
    j.ks("add_time", &ts_ms(p.add_time))
        .ks("update_time", &ts_ms(p.update_time));
    j.key("labels").arr().end_arr().knull("health_status");
    match p.archive_time {
        Some(t) => j.ks("archive_time", &ts_ms(t)),
        None => j.knull("archive_time"),
    };
    j.key("deal_ids").arr().i(p.deal_id as i64).end_arr();
    j.koi("person_id", p.person_id.map(|x| x as i64))
        .koi("org_id", p.org_id.map(|x| x as i64));
    j.ki("board_id", 1).ki("phase_id", p.phase_id as i64);
    j.end_obj();
}

fn task_v1(j: &mut J, t: &Task) {
    j.obj();
    j.ki("id", t.id as i64)
        .ks("title", &t.title)
        .ki("creator_id", t.creator_id as i64)
        .knull("description");
    j.ki("done", t.done.is_some() as i64)
        .ks("due_date", &date(t.due))
        .knull("parent_task_id");
    j.ki("assignee_id", t.assignee as i64)
        .key("assignee_ids")
        .arr()
        .i(t.assignee as i64)
        .end_arr();
    j.ks("add_time", &ts_ms(t.add_time))
        .ks("update_time", &ts_ms(t.done.unwrap_or(t.add_time)));
    match t.done {
        Some(d) => j.ks("marked_as_done_time", &ts_ms(d)),
        None => j.knull("marked_as_done_time"),
    };
    j.ki("project_id", t.project_id as i64);
    j.end_obj();
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
        j.obj()
            .ks("object", "mailMessage")
            .ks("timestamp", &v1ts(message_time(t, *k)))
            .key("data");
        message_v1(j, db, t, *k);
        j.end_obj();
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
        Some((t, k)) => ok_data(|j| message_v1(j, db, t, k)),
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
                message_v1(j, db, t, k);
            }
            j.end_arr();
        }),
        None => err(404, "Mail thread not found"),
    }
}

/// `/roles`.
pub fn v1_roles(c: &Ctx, db: &Db) -> Resp {
    let v: Vec<&(u64, Option<u64>, &str, u64)> = ROLES.iter().collect();
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
        j.obj()
            .ks("field_key", &f.field)
            .kos("old_value", f.old.as_deref())
            .kos("new_value", f.new.as_deref());
        j.ki("actor_user_id", f.user_id as i64)
            .ks("time", &v1ts(f.time))
            .ks("change_source", f.source);
        j.knull("change_source_user_agent")
            .kb("is_bulk_update_flag", false)
            .end_obj();
    })
}

/// `/goals/find`.
pub fn v1_goals_find(c: &Ctx, db: &Db) -> Resp {
    let active = c.q.val("is_active").map(|v| v == "true" || v == "1");
    let ty = c.q.val("type.name");
    let mut j = J::default();
    j.obj()
        .kb("success", true)
        .ki("statusCode", 20000)
        .ks("statusText", "OK")
        .ks("service", "statistics-goals-api");
    j.key("data").obj().key("goals").arr();
    for k in 0..3u64 {
        let name = ["deals_won", "activities_completed", "deals_started"][k as usize];
        if active.is_none_or(|a| a == (k != 2)) && ty.is_none_or(|t| t == name) {
            goal(&mut j, db, k);
        }
    }
    j.end_arr().end_obj().end_obj();
    Resp {
        status: 200,
        body: j.buf,
    }
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
    let mut j = J::default();
    j.obj()
        .kb("success", true)
        .ki("statusCode", 20000)
        .ks("statusText", "OK")
        .ks("service", "statistics-goals-api");
    j.key("data").obj().key("goal");
    goal(&mut j, db, k);
    j.ki("progress", (won as i64 + k as i64) % 100)
        .end_obj()
        .end_obj();
    Resp {
        status: 200,
        body: j.buf,
    }
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
        j.obj()
            .ki("user_id", *u as i64)
            .ks("permission_set_id", &perm_set_uuid(p.0))
            .ks("name", p.1)
            .end_obj();
    })
}

/// `/legacyTeams` and `/legacyTeams/{id}`.
pub fn v1_legacy_teams(db: &Db, id: Option<&str>) -> Resp {
    let teams: Vec<(u64, &str, Vec<u64>)> = vec![
        (
            1,
            "Closers",
            db.users
                .rows
                .iter()
                .filter(|u| u.id % 2 == 1)
                .map(|u| u.id)
                .collect(),
        ),
        (
            2,
            "Hunters",
            db.users
                .rows
                .iter()
                .filter(|u| u.id % 2 == 0)
                .map(|u| u.id)
                .collect(),
        ),
    ];
    let render = |j: &mut J, t: &(u64, &str, Vec<u64>)| {
        j.obj()
            .ki("id", t.0 as i64)
            .ks("name", t.1)
            .ks("description", &format!("{} team", t.1));
        j.ki("manager_id", *t.2.first().unwrap_or(&1) as i64)
            .key("users")
            .arr();
        for u in &t.2 {
            j.i(*u as i64);
        }
        j.end_arr().ki("active_flag", 1).ki("deleted_flag", 0);
        j.ks("add_time", &v1ts(crate::util::ANCHOR_MS - 900 * DAY_MS))
            .ki("created_by_user_id", 1)
            .end_obj();
    };
    if let Some(id) = id {
        return match id_of(id).and_then(|id| teams.iter().find(|t| t.0 == id)) {
            Some(t) => ok_data(|j| render(j, t)),
            None => err(404, "Team not found"),
        };
    }
    ok_data(|j| {
        j.arr();
        for t in &teams {
            render(j, t);
        }
        j.end_arr();
    })
}

/// Ground truth for the derived entities.
pub fn truth(db: &Db, entity: &str, j: &mut J) -> bool {
    let x = &db.extra;
    match entity {
        "files" => x.files.iter().for_each(|f| file_v1(j, db, f)),
        "call_logs" => x.call_logs.iter().for_each(|l| call_log_v1(j, db, l)),
        "mail_threads" => x.threads.iter().for_each(|t| thread_v1(j, db, t)),
        "mail_messages" => x
            .threads
            .iter()
            .for_each(|t| (0..t.messages).for_each(|k| message_v1(j, db, t, k))),
        "roles" => ROLES.iter().for_each(|r| role_v1(j, db, r)),
        "permission_sets" => {
            let mut v: Vec<_> = PERMISSION_SETS.iter().collect();
            v.sort_by_key(|p| perm_set_uuid(p.0));
            v.into_iter().for_each(|p| perm_set_v1(j, db, p));
        }
        "permission_set_assignments" => PERMISSION_SETS.iter().for_each(|p| {
            for u in set_members(db, p.0) {
                j.obj()
                    .ki("user_id", u as i64)
                    .ks("permission_set_id", &perm_set_uuid(p.0))
                    .ks("name", p.1)
                    .end_obj();
            }
        }),
        "goals" => {
            let mut v: Vec<u64> = (0..3).collect();
            v.sort_by_key(|k| goal_id(db.seed, *k));
            v.into_iter().for_each(|k| goal(j, db, k));
        }
        "projects" => x.projects.iter().for_each(|p| project_v2(j, p)),
        "tasks" => x.tasks.iter().for_each(|t| task_v2(j, t)),
        _ => return false,
    }
    true
}
