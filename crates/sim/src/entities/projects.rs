//! Projects and their tasks (the Projects add-on, read-only): the v2 and v1 views.

use crate::model::{Project, Task};
use crate::util::{Ms, date, iso_ms};
use serde::Serialize;

/// v1 project times: `YYYY-MM-DD HH:MM:SS.mmm`.
fn ts_ms(t: Ms) -> String {
    chrono::DateTime::from_timestamp_millis(t)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

#[derive(Serialize)]
pub struct ProjectV2<'a> {
    id: u64,
    title: &'a str,
    description: &'static str,
    status: &'static str,
    board_id: u64,
    phase_id: u64,
    owner_id: u64,
    start_date: String,
    end_date: String,
    deal_ids: [u64; 1],
    person_ids: Vec<u64>,
    org_ids: Vec<u64>,
    label_ids: [u64; 0],
    health_status: (),
    add_time: String,
    update_time: String,
    status_change_time: String,
    archive_time: Option<String>,
    custom_fields: super::field_views::Empty,
}

pub fn project_v2(p: &Project) -> ProjectV2<'_> {
    ProjectV2 {
        id: p.id,
        title: &p.title,
        description: "Customer onboarding project",
        status: p.status,
        board_id: 1,
        phase_id: p.phase_id,
        owner_id: p.owner_id,
        start_date: date(p.start),
        end_date: date(p.end),
        deal_ids: [p.deal_id],
        person_ids: p.person_id.into_iter().collect(),
        org_ids: p.org_id.into_iter().collect(),
        label_ids: [],
        health_status: (),
        add_time: iso_ms(p.add_time),
        update_time: iso_ms(p.update_time),
        status_change_time: iso_ms(p.add_time),
        archive_time: p.archive_time.map(iso_ms),
        custom_fields: super::field_views::Empty {},
    }
}

#[derive(Serialize)]
pub struct ProjectV1<'a> {
    id: u64,
    title: &'a str,
    description: &'static str,
    status: &'static str,
    status_change_time: String,
    start_date: String,
    end_date: String,
    owner_id: u64,
    add_time: String,
    update_time: String,
    labels: [u64; 0],
    health_status: (),
    archive_time: Option<String>,
    deal_ids: [u64; 1],
    person_id: Option<u64>,
    org_id: Option<u64>,
    board_id: u64,
    phase_id: u64,
}

pub fn project_v1(p: &Project) -> ProjectV1<'_> {
    ProjectV1 {
        id: p.id,
        title: &p.title,
        description: "Customer onboarding project",
        status: p.status,
        status_change_time: ts_ms(p.add_time),
        start_date: date(p.start),
        end_date: date(p.end),
        owner_id: p.owner_id,
        add_time: ts_ms(p.add_time),
        update_time: ts_ms(p.update_time),
        labels: [],
        health_status: (),
        archive_time: p.archive_time.map(ts_ms),
        deal_ids: [p.deal_id],
        person_id: p.person_id,
        org_id: p.org_id,
        board_id: 1,
        phase_id: p.phase_id,
    }
}

#[derive(Serialize)]
pub struct TaskV2<'a> {
    id: u64,
    title: &'a str,
    creator_id: u64,
    description: (),
    project_id: u64,
    is_done: bool,
    is_milestone: bool,
    due_date: String,
    start_date: (),
    parent_task_id: (),
    assignee_ids: [u64; 1],
    priority: (),
    add_time: String,
    update_time: String,
    marked_as_done_time: Option<String>,
}

pub fn task_v2(t: &Task) -> TaskV2<'_> {
    TaskV2 {
        id: t.id,
        title: &t.title,
        creator_id: t.creator_id,
        description: (),
        project_id: t.project_id,
        is_done: t.done.is_some(),
        is_milestone: false,
        due_date: date(t.due),
        start_date: (),
        parent_task_id: (),
        assignee_ids: [t.assignee],
        priority: (),
        add_time: iso_ms(t.add_time),
        update_time: iso_ms(t.done.unwrap_or(t.add_time)),
        marked_as_done_time: t.done.map(iso_ms),
    }
}

#[derive(Serialize)]
pub struct TaskV1<'a> {
    id: u64,
    title: &'a str,
    creator_id: u64,
    description: (),
    done: u8,
    due_date: String,
    parent_task_id: (),
    assignee_id: u64,
    assignee_ids: [u64; 1],
    add_time: String,
    update_time: String,
    marked_as_done_time: Option<String>,
    project_id: u64,
}

pub fn task_v1(t: &Task) -> TaskV1<'_> {
    TaskV1 {
        id: t.id,
        title: &t.title,
        creator_id: t.creator_id,
        description: (),
        done: u8::from(t.done.is_some()),
        due_date: date(t.due),
        parent_task_id: (),
        assignee_id: t.assignee,
        assignee_ids: [t.assignee],
        add_time: ts_ms(t.add_time),
        update_time: ts_ms(t.done.unwrap_or(t.add_time)),
        marked_as_done_time: t.done.map(ts_ms),
        project_id: t.project_id,
    }
}
