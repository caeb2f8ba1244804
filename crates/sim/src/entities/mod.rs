//! Entities written the way the whole simulator is meant to read: one module per entity holding
//! its seed (derived from the company), its views (`#[derive(Serialize)]` structs in the real
//! field order), its reads (named in `routes`), its writes and its ground truth. [`truth`]
//! dispatches to them.

pub mod activities;
pub mod activity_types;
pub mod boards;
pub mod call_logs;
pub mod currencies;
pub mod deal_products;
pub mod deal_relations;
pub mod deals;
pub mod field_views;
pub mod files;
pub mod filters;
pub mod followers;
pub mod goals;
pub mod lead_labels;
pub mod leads;
pub mod legacy_teams;
pub mod mailbox;
pub mod merges;
pub mod note_comments;
pub mod notes;
pub mod organizations;
pub mod persons;
pub mod pipelines;
pub mod product_variations;
pub mod products;
pub mod project_templates;
pub mod projects;
pub mod roles;
pub mod users;
pub mod views;
pub mod webhooks;

use crate::model::Db;

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
