//! Project templates (Projects add-on): a fixed pair, one per project board.

use crate::envelope;
use crate::model::Db;
use crate::respond::{Ctx, Resp, err};
use crate::util::{ANCHOR_MS, DAY_MS, Ms, iso_ms};
use serde::Serialize;

struct Template {
    id: u64,
    title: &'static str,
    description: &'static str,
    board_id: u64,
    owner_id: u64,
}

const TEMPLATES: &[Template] = &[
    Template {
        id: 1,
        title: "Implementation",
        description: "Kick-off, configuration and training for a new customer",
        board_id: 1,
        owner_id: 1,
    },
    Template {
        id: 2,
        title: "Quarterly business review",
        description: "Usage review and goals for the next quarter",
        board_id: 2,
        owner_id: 1,
    },
];

const ADDED: Ms = ANCHOR_MS - 700 * DAY_MS + 30_288;

#[derive(Serialize)]
struct TemplateView {
    id: u64,
    title: &'static str,
    description: &'static str,
    projects_board_id: u64,
    owner_id: u64,
    add_time: String,
    update_time: String,
}

fn view(t: &Template, ver: u8) -> TemplateView {
    // v1 project templates write `YYYY-MM-DD HH:MM:SS.mmm`, v2 RFC 3339 with milliseconds.
    let time = |ms: Ms| {
        if ver == 1 {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|d| d.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
                .unwrap_or_default()
        } else {
            iso_ms(ms)
        }
    };
    TemplateView {
        id: t.id,
        title: t.title,
        description: t.description,
        projects_board_id: t.board_id,
        owner_id: t.owner_id,
        add_time: time(ADDED),
        update_time: time(ADDED + t.id as Ms * DAY_MS),
    }
}

/// `/projectTemplates` (cursor-paged in v1 and v2) and `/projectTemplates/{id}`.
pub fn get(c: &Ctx, _db: &Db, ver: u8, rest: &[&str]) -> Resp {
    match rest {
        [] => envelope::v2_page(
            c,
            &TEMPLATES.iter().map(|t| view(t, ver)).collect::<Vec<_>>(),
        ),
        [id] => match TEMPLATES.iter().find(|t| t.id.to_string() == *id) {
            Some(t) => envelope::data(&view(t, ver)),
            None => err(404, "Project template not found"),
        },
        _ => crate::respond::unknown_route(),
    }
}

pub fn truth() -> Vec<u8> {
    envelope::truth(&TEMPLATES.iter().map(|t| view(t, 2)).collect::<Vec<_>>())
}
