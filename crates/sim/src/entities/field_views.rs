//! Field definitions (`/dealFields` and the like): the v2 and v1 views.

use super::views::{t1, v1_subkeys};
use crate::fields::v2_code;
use crate::model::{CfType, FieldDef, FieldEntity};
use serde::Serialize;

#[derive(Serialize)]
pub struct FieldV2<'a> {
    field_name: &'a str,
    field_code: &'a str,
    description: &'a str,
    field_type: &'static str,
    /// `null` for a field without options.
    options: Option<Vec<OptionView<'a>>>,
    /// `null` for a field without parts.
    subfields: Option<Vec<SubfieldV2>>,
    is_custom_field: bool,
    is_optional_response_field: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    ui_visibility: Option<UiVisibility>,
    #[serde(skip_serializing_if = "Option::is_none")]
    important_fields: Option<Important>,
    #[serde(skip_serializing_if = "Option::is_none")]
    required_fields: Option<Required>,
}

#[derive(Serialize)]
pub struct OptionView<'a> {
    id: u32,
    label: &'a str,
}

#[derive(Serialize)]
pub struct SubfieldV2 {
    field_code: &'static str,
    field_name: String,
    field_type: &'static str,
}

#[derive(Serialize)]
pub struct UiVisibility {
    add_visible_flag: bool,
    details_visible_flag: bool,
    show_in_pipelines: ShowInPipelines,
}

#[derive(Serialize)]
pub struct ShowInPipelines {
    show_in_all: bool,
    pipeline_ids: [u64; 0],
}

#[derive(Serialize)]
pub struct Important {
    enabled: bool,
    stage_ids: [u64; 0],
}

#[derive(Serialize)]
pub struct Required {
    enabled: bool,
    stage_ids: [u64; 0],
    statuses: Empty,
}

/// `{}`.
#[derive(Serialize)]
pub struct Empty {}

fn options(f: &FieldDef) -> Vec<OptionView<'_>> {
    f.options
        .iter()
        .map(|(id, label)| OptionView { id: *id, label })
        .collect()
}

/// The parts of a composite custom field, as v2 describes them.
fn subfields_v2(t: Option<CfType>) -> &'static [(&'static str, &'static str, &'static str)] {
    match t {
        Some(CfType::Monetary) => &[
            ("value", "Amount", "double"),
            ("currency", "Currency", "varchar"),
        ],
        Some(CfType::DateRange) => &[
            ("value", "Start date", "date"),
            ("until", "End date", "date"),
        ],
        Some(CfType::Time) => &[
            ("value", "Time", "time"),
            ("timezone_id", "Timezone", "int"),
        ],
        Some(CfType::TimeRange) => &[
            ("value", "Start time", "time"),
            ("until", "End time", "time"),
            ("timezone_id", "Timezone", "int"),
        ],
        Some(CfType::Address) => &[
            ("street_number", "Street/building number", "varchar"),
            ("route", "Street/road name", "varchar"),
            ("locality", "City/town/village/locality", "varchar"),
            ("country", "Country", "varchar"),
            ("postal_code", "ZIP/Postal code", "varchar"),
            ("formatted_address", "Full/combined address", "varchar"),
        ],
        _ => &[],
    }
}

/// `include` is the request's `include_fields`.
pub fn field_v2<'a>(e: FieldEntity, f: &'a FieldDef, include: &[String]) -> FieldV2<'a> {
    let has = |k: &str| include.iter().any(|x| x == k);
    let subs = subfields_v2(f.cf);
    FieldV2 {
        field_name: &f.name,
        field_code: if f.is_custom() {
            &f.key
        } else {
            v2_code(e, &f.key)
        },
        description: &f.description,
        field_type: f.field_type,
        options: (!f.options.is_empty()).then(|| options(f)),
        subfields: (!subs.is_empty()).then(|| {
            subs.iter()
                .map(|(code, name, kind)| SubfieldV2 {
                    field_code: code,
                    field_name: format!("{} of {}", name, f.name),
                    field_type: kind,
                })
                .collect()
        }),
        is_custom_field: f.is_custom(),
        is_optional_response_field: false,
        ui_visibility: has("ui_visibility").then_some(UiVisibility {
            add_visible_flag: true,
            details_visible_flag: true,
            show_in_pipelines: ShowInPipelines {
                show_in_all: true,
                pipeline_ids: [],
            },
        }),
        important_fields: has("important_fields").then_some(Important {
            enabled: false,
            stage_ids: [],
        }),
        required_fields: has("required_fields").then_some(Required {
            enabled: f.mandatory,
            stage_ids: [],
            statuses: Empty {},
        }),
    }
}

/// A v1 field. Note fields carry fewer keys; `options` is left out for a field without
/// options (the real API omits it, and clients iterate it).
#[derive(Serialize)]
pub struct FieldV1<'a> {
    id: u32,
    key: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_nr: Option<u32>,
    field_type: &'static str,
    #[serde(flatten)]
    full: Option<FullV1>,
    #[serde(flatten)]
    note_flags: Option<NoteFlags>,
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<Vec<OptionView<'a>>>,
    mandatory_flag: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    subfields: Option<Vec<SubfieldV1>>,
}

/// The keys every v1 field but a note field has, between `field_type` and `options`.
#[derive(Serialize)]
pub struct FullV1 {
    add_time: String,
    update_time: String,
    last_updated_by_user_id: u64,
    created_by_user_id: u64,
    active_flag: bool,
    edit_flag: bool,
    index_visible_flag: bool,
    details_visible_flag: bool,
    add_visible_flag: bool,
    important_flag: bool,
    bulk_edit_allowed: bool,
    searchable_flag: bool,
    filtering_allowed: bool,
    sortable_flag: bool,
}

/// A note field's flags, flattened in place of [`FullV1`].
#[derive(Serialize)]
pub struct NoteFlags {
    active_flag: bool,
    edit_flag: bool,
    bulk_edit_allowed: bool,
}

#[derive(Serialize)]
pub struct SubfieldV1 {
    key: String,
    name: String,
    field_type: &'static str,
}

pub fn field_v1(e: FieldEntity, f: &FieldDef) -> FieldV1<'_> {
    let note = e == FieldEntity::Note;
    let subs = f.cf.map(v1_subkeys).unwrap_or(&[]);
    FieldV1 {
        id: f.id,
        key: &f.key,
        name: &f.name,
        order_nr: (!note).then_some(f.order_nr),
        field_type: f.field_type,
        full: (!note).then(|| FullV1 {
            add_time: t1(f.add_time),
            update_time: t1(f.update_time),
            last_updated_by_user_id: 1,
            created_by_user_id: 1,
            active_flag: f.active,
            edit_flag: f.is_custom(),
            index_visible_flag: true,
            details_visible_flag: true,
            add_visible_flag: true,
            important_flag: false,
            bulk_edit_allowed: true,
            searchable_flag: false,
            filtering_allowed: true,
            sortable_flag: true,
        }),
        note_flags: note.then_some(NoteFlags {
            active_flag: f.active,
            edit_flag: f.is_custom(),
            bulk_edit_allowed: true,
        }),
        options: (!f.options.is_empty()).then(|| options(f)),
        mandatory_flag: f.mandatory,
        subfields: (!note && !subs.is_empty()).then(|| {
            subs.iter()
                .map(|s| SubfieldV1 {
                    key: format!("{}_{}", f.key, s),
                    name: format!("{} - {}", f.name, s.replace('_', " ")),
                    field_type: if *s == "timezone_id" {
                        "int"
                    } else {
                        "varchar"
                    },
                })
                .collect()
        }),
    }
}
