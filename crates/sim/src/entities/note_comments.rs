//! Comments on notes: derived from each note and the seed (none to two per note).

use crate::envelope;
use crate::model::{Db, Note, purged};
use crate::respond::{Ctx, Resp, err};
use crate::util::{Ms, Rng, iso_ms};
use serde::Serialize;

const REMARKS: &[&str] = &[
    "Agreed, let's follow up next week.",
    "Sent the updated proposal.",
    "They asked for a discount on the annual plan.",
];

/// The real API writes these keys in alphabetical order.
#[derive(Serialize)]
struct CommentView {
    uuid: String,
    active_flag: bool,
    add_time: String,
    company_id: u64,
    content: &'static str,
    object_id: String,
    object_type: &'static str,
    update_time: String,
    updater_id: u64,
    user_id: u64,
}

fn comments(db: &Db, n: &Note) -> Vec<CommentView> {
    let mut r = Rng::for_item(db.seed, "note_comment", n.id);
    let count = r.below(3);
    (0..count)
        .map(|k| {
            let added = n.add_time + (k as Ms + 1) * 3_600_000;
            CommentView {
                uuid: r.uuid().to_string(),
                active_flag: true,
                add_time: iso_ms(added),
                company_id: db.company.id,
                content: r.pick_s(REMARKS),
                object_id: n.id.to_string(),
                object_type: "note",
                update_time: iso_ms(added + 9_000),
                updater_id: n.user_id,
                user_id: n.user_id,
            }
        })
        .collect()
}

fn live_note<'a>(db: &'a Db, id: &str, now: Ms) -> Option<&'a Note> {
    id.parse()
        .ok()
        .and_then(|id| db.notes.get(id))
        .filter(|n| !purged(*n, now))
}

/// `GET /v1/notes/{id}/comments` (offset-paged) and `/v1/notes/{id}/comments/{commentId}`.
pub fn get(c: &Ctx, db: &Db, id: &str, rest: &[&str]) -> Resp {
    let Some(note) = live_note(db, id, c.now) else {
        return err(404, "Note not found");
    };
    let all = comments(db, note);
    match rest {
        [] => envelope::v1_page(c, &all, 500),
        [uuid] => match all.iter().find(|x| x.uuid == *uuid) {
            Some(x) => envelope::data(x),
            None => err(404, "Comment not found"),
        },
        _ => crate::respond::unknown_route(),
    }
}

pub fn truth(db: &Db, now: Ms) -> Vec<u8> {
    let all: Vec<CommentView> = db
        .notes
        .rows
        .iter()
        .filter(|n| !purged(*n, now))
        .flat_map(|n| comments(db, n))
        .collect();
    envelope::truth(&all)
}
