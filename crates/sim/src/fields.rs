//! Built-in and seeded custom field definitions for the `*Fields` endpoints.

use crate::model::{CfType, FieldDef, FieldEntity};
use crate::util::{ANCHOR_MS, DAY_MS, Rng};
use std::collections::HashMap;

const FIELDS_TIME: i64 = ANCHOR_MS - 4 * 365 * DAY_MS - 50 * DAY_MS;

/// `(v1 key, name, field_type)` of built-in fields.
fn builtins(e: FieldEntity) -> &'static [(&'static str, &'static str, &'static str)] {
    match e {
        FieldEntity::Deal => &[
            ("id", "ID", "int"),
            ("title", "Title", "varchar"),
            ("creator_user_id", "Creator", "user"),
            ("user_id", "Owner", "user"),
            ("value", "Value", "monetary"),
            ("probability", "Probability", "double"),
            ("org_id", "Organization", "org"),
            ("pipeline", "Pipeline", "double"),
            ("person_id", "Contact person", "people"),
            ("stage_id", "Stage", "stage"),
            ("status", "Status", "status"),
            ("add_time", "Deal created", "date"),
            ("update_time", "Update time", "date"),
            ("stage_change_time", "Last stage change", "date"),
            ("won_time", "Won time", "date"),
            ("lost_time", "Lost time", "date"),
            ("close_time", "Deal closed on", "date"),
            ("lost_reason", "Lost reason", "varchar_options"),
            ("visible_to", "Visible to", "visible_to"),
            ("expected_close_date", "Expected close date", "date"),
            ("label", "Label", "set"),
            ("origin", "Source origin", "varchar"),
        ],
        FieldEntity::Person => &[
            ("id", "ID", "int"),
            ("name", "Name", "varchar"),
            ("first_name", "First name", "varchar"),
            ("last_name", "Last name", "varchar"),
            ("owner_id", "Owner", "user"),
            ("org_id", "Organization", "org"),
            ("email", "Email", "varchar"),
            ("phone", "Phone", "phone"),
            ("label", "Label", "set"),
            ("visible_to", "Visible to", "visible_to"),
            ("job_title", "Job title", "varchar"),
            ("birthday", "Birthday", "date"),
            ("postal_address", "Postal address", "address"),
            ("add_time", "Person created", "date"),
            ("update_time", "Update time", "date"),
        ],
        FieldEntity::Org => &[
            ("id", "ID", "int"),
            ("name", "Name", "varchar"),
            ("owner_id", "Owner", "user"),
            ("address", "Address", "address"),
            ("label", "Label", "set"),
            ("visible_to", "Visible to", "visible_to"),
            ("website", "Website", "varchar"),
            ("industry", "Industry", "enum"),
            ("annual_revenue", "Annual revenue", "monetary"),
            ("employee_count", "Number of employees", "int"),
            ("add_time", "Organization created", "date"),
            ("update_time", "Update time", "date"),
        ],
        FieldEntity::Product => &[
            ("id", "ID", "int"),
            ("name", "Name", "varchar"),
            ("code", "Product code", "varchar"),
            ("description", "Description", "text"),
            ("unit", "Unit", "varchar"),
            ("prices", "Unit price", "double"),
            ("tax", "Tax", "double"),
            ("category", "Category", "enum"),
            ("owner_id", "Owner", "user"),
            ("visible_to", "Visible to", "visible_to"),
            (
                "billing_frequency",
                "Billing frequency",
                "billing_frequency",
            ),
            ("add_time", "Product created", "date"),
            ("update_time", "Update time", "date"),
        ],
        FieldEntity::Activity => &[
            ("id", "ID", "int"),
            ("subject", "Subject", "varchar"),
            ("type", "Type", "varchar"),
            ("due_date", "Due date", "date"),
            ("due_time", "Due time", "time"),
            ("duration", "Duration", "time"),
            ("user_id", "Assigned to user", "user"),
            ("deal_id", "Deal", "deal"),
            ("lead_id", "Lead", "lead"),
            ("person_id", "Contact person", "people"),
            ("org_id", "Organization", "org"),
            ("note", "Note", "text"),
            ("done", "Done", "enum"),
            ("busy_flag", "Free/busy", "enum"),
            ("public_description", "Public description", "text"),
            ("location", "Location", "address"),
            ("add_time", "Add time", "date"),
            ("update_time", "Update time", "date"),
            ("marked_as_done_time", "Marked as done time", "date"),
        ],
        FieldEntity::Lead => &[
            ("title", "Title", "varchar"),
            ("owner_id", "Owner", "user"),
            ("person_id", "Person", "people"),
            ("organization_id", "Organization", "org"),
            ("value", "Value", "monetary"),
            ("expected_close_date", "Expected close date", "date"),
            ("label_ids", "Labels", "set"),
            ("visible_to", "Visible to", "visible_to"),
            ("source_name", "Source", "varchar"),
            ("add_time", "Lead created", "date"),
            ("update_time", "Update time", "date"),
        ],
        FieldEntity::Note => &[
            ("content", "Content", "text"),
            ("pinned_to_deal_flag", "Note is pinned to deal", "enum"),
            ("pinned_to_person_flag", "Note is pinned to person", "enum"),
            (
                "pinned_to_organization_flag",
                "Note is pinned to organization",
                "enum",
            ),
            ("pinned_to_lead_flag", "Note is pinned to lead", "enum"),
            ("user_id", "Author", "user"),
            ("add_time", "Add time", "date"),
            ("update_time", "Update time", "date"),
        ],
        FieldEntity::Project => &[
            ("title", "Title", "varchar"),
            ("description", "Description", "text"),
            ("status", "Status", "status"),
            ("owner_id", "Owner", "user"),
            ("start_date", "Start date", "date"),
            ("end_date", "End date", "date"),
            ("add_time", "Add time", "date"),
            ("update_time", "Update time", "date"),
        ],
    }
}

/// The v2 `field_code` of a built-in v1 key.
pub fn v2_code(e: FieldEntity, key: &str) -> &str {
    match (e, key) {
        (FieldEntity::Deal, "user_id") | (FieldEntity::Activity, "user_id") => "owner_id",
        (FieldEntity::Deal, "label")
        | (FieldEntity::Person, "label")
        | (FieldEntity::Org, "label") => "label_ids",
        (FieldEntity::Activity, "busy_flag") => "busy",
        (FieldEntity::Person, "email") => "emails",
        (FieldEntity::Person, "phone") => "phones",
        _ => key,
    }
}

fn type_label(t: CfType) -> &'static str {
    match t {
        CfType::Varchar => "Text",
        CfType::VarcharAuto => "Autocomplete",
        CfType::Text => "Large text",
        CfType::Double => "Numeric",
        CfType::Monetary => "Budget",
        CfType::Enum => "Tier",
        CfType::Set => "Interests",
        CfType::User => "Account manager",
        CfType::Org => "Partner organization",
        CfType::People => "Referrer",
        CfType::Phone => "Hotline",
        CfType::Time => "Preferred call time",
        CfType::TimeRange => "Office hours",
        CfType::Date => "Renewal date",
        CfType::DateRange => "Contract period",
        CfType::Address => "Billing address",
    }
}

pub fn builtin_options(e: FieldEntity, key: &str) -> Vec<(u32, String)> {
    let o = |xs: &[(u32, &str)]| xs.iter().map(|(i, l)| (*i, l.to_string())).collect();
    match (e, key) {
        (FieldEntity::Deal, "status") => o(&[(1, "Open"), (2, "Won"), (3, "Lost"), (4, "Deleted")]),
        (_, "visible_to") => o(&[(1, "Owner & followers"), (3, "Entire company")]),
        (FieldEntity::Deal | FieldEntity::Person | FieldEntity::Org, "label") => {
            o(&[(1, "Hot"), (2, "Warm"), (3, "Cold"), (4, "Customer")])
        }
        (FieldEntity::Note, _) if key.starts_with("pinned") => o(&[(1, "Yes"), (0, "No")]),
        (FieldEntity::Activity, "done") => o(&[(0, "To do"), (1, "Done")]),
        (FieldEntity::Activity, "busy_flag") => o(&[(1, "Busy"), (0, "Free")]),
        (FieldEntity::Org, "industry") => (1..=20).map(|i| (i, format!("Industry {i}"))).collect(),
        (FieldEntity::Product, "category") => {
            o(&[(1, "Hardware"), (2, "Software"), (3, "Services")])
        }
        _ => Vec::new(),
    }
}

pub fn seed_fields(seed: u64) -> (HashMap<FieldEntity, Vec<FieldDef>>, u32, u32) {
    let mut next_id = 9000u32;
    let mut next_opt = 100u32;
    let mut map = HashMap::new();
    for e in [
        FieldEntity::Deal,
        FieldEntity::Person,
        FieldEntity::Org,
        FieldEntity::Product,
        FieldEntity::Activity,
        FieldEntity::Lead,
        FieldEntity::Note,
        FieldEntity::Project,
    ] {
        let mut v = Vec::new();
        for (k, (key, name, ft)) in builtins(e).iter().enumerate() {
            next_id += 1;
            v.push(FieldDef {
                id: next_id,
                key: key.to_string(),
                name: name.to_string(),
                field_type: ft,
                cf: None,
                options: builtin_options(e, key),
                order_nr: k as u32,
                add_time: FIELDS_TIME,
                update_time: FIELDS_TIME,
                active: true,
                generated: true,
                mandatory: matches!(*key, "title" | "name" | "subject" | "content"),
                description: format!("The {} of the {}", name.to_lowercase(), e.gen_name()),
            });
        }
        if matches!(
            e,
            FieldEntity::Deal | FieldEntity::Person | FieldEntity::Org | FieldEntity::Product
        ) {
            for (k, t) in CfType::ALL.into_iter().enumerate() {
                let mut r = Rng::for_item(seed, "field_key", (e as u64) * 100 + k as u64);
                next_id += 1;
                let options = match t {
                    CfType::Enum => ["Bronze", "Silver", "Gold", "Platinum"].as_slice(),
                    CfType::Set => {
                        ["Hardware", "Software", "Services", "Training", "Support"].as_slice()
                    }
                    _ => [].as_slice(),
                }
                .iter()
                .map(|l| {
                    next_opt += 1;
                    (next_opt, l.to_string())
                })
                .collect();
                let t0 = FIELDS_TIME + (k as i64 + 1) * DAY_MS;
                v.push(FieldDef {
                    id: next_id,
                    key: r.hex(40),
                    name: format!("{} {}", cap(e.gen_name()), type_label(t).to_lowercase()),
                    field_type: t.name(),
                    cf: Some(t),
                    options,
                    order_nr: (builtins(e).len() + k) as u32,
                    add_time: t0,
                    update_time: t0 + r.range(0, 365 * DAY_MS) / 1000 * 1000,
                    active: true,
                    generated: true,
                    mandatory: false,
                    description: String::new(),
                });
            }
        }
        map.insert(e, v);
    }
    (map, next_id + 1, next_opt + 1)
}

pub fn cap(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}
