//! Entities written the way the whole simulator is meant to read: one module per entity holding
//! its seed (derived from the company), its views (`#[derive(Serialize)]` structs in the real
//! field order), its routes and its ground truth. [`get`], [`write`] and [`truth`] are their
//! route tables; the server asks them before the older hand-written handlers.

mod boards;
mod followers;
mod merges;
mod note_comments;
mod product_variations;
mod project_templates;
pub mod webhooks;

use crate::model::Db;
use crate::respond::{Ctx, Resp};

/// Answers a GET this module serves, or `None` to leave it to the older handlers.
pub fn get(c: &Ctx, db: &Db, ver: u8, segs: &[&str]) -> Option<Resp> {
    match (ver, segs) {
        (2, ["boards", rest @ ..]) => Some(boards::get_boards(db, rest, boards::Format::V2)),
        (2, ["phases", rest @ ..]) => Some(boards::get_phases(c, db, rest, boards::Format::V2)),
        (1, ["projects", "boards", rest @ ..]) => {
            Some(boards::get_boards(db, rest, boards::Format::V1))
        }
        (1, ["projects", "phases", rest @ ..]) => {
            Some(boards::get_phases(c, db, rest, boards::Format::V1))
        }
        (_, ["projectTemplates", rest @ ..]) => Some(project_templates::get(c, db, ver, rest)),
        (2, ["products", id, "variations"]) => Some(product_variations::get(c, db, id)),
        (1, ["notes", id, "comments", rest @ ..]) => Some(note_comments::get(c, db, id, rest)),
        (1, ["webhooks"]) => Some(webhooks::list(db)),
        (_, [entity, id, "followers"]) => {
            followers::Followed::of_path(entity).map(|kind| followers::get(c, db, ver, kind, id))
        }
        _ => None,
    }
}

/// Answers a write this module serves, or `None` to leave it to the older handlers.
pub fn write(
    c: &Ctx,
    db: &mut Db,
    ver: u8,
    method: &str,
    segs: &[&str],
    body: &[u8],
) -> Option<Resp> {
    match (ver, method, segs) {
        (1, "POST", ["webhooks"]) => Some(webhooks::create(c, db, body)),
        (1, "DELETE", ["webhooks", id]) => Some(webhooks::delete(db, id)),
        (1, "PUT", [entity, id, "merge"]) => {
            merges::Merged::of_path(entity).map(|kind| merges::merge(c, db, kind, id, body))
        }
        _ => None,
    }
}

/// Ground truth of an entity this module owns, as `{"records":[...]}`.
pub fn truth(db: &Db, entity: &str, now: crate::util::Ms) -> Option<Vec<u8>> {
    match entity {
        "boards" => Some(boards::truth_boards()),
        "phases" => Some(boards::truth_phases()),
        "project_templates" => Some(project_templates::truth()),
        "product_variations" => Some(product_variations::truth(db, now)),
        "note_comments" => Some(note_comments::truth(db, now)),
        "webhooks" => Some(webhooks::truth(db)),
        "person_followers" => Some(followers::truth(db, followers::Followed::Person, now)),
        "organization_followers" => {
            Some(followers::truth(db, followers::Followed::Organization, now))
        }
        "product_followers" => Some(followers::truth(db, followers::Followed::Product, now)),
        _ => None,
    }
}
