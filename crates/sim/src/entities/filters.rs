//! Saved filters: the v1 view.

use super::views::t1;
use crate::model::Filter;
use serde::Serialize;

#[derive(Serialize)]
pub struct FilterV1<'a> {
    id: u64,
    name: &'a str,
    filter_code: (),
    is_editable: bool,
    active_flag: bool,
    #[serde(rename = "type")]
    kind: &'static str,
    temporary_flag: (),
    user_id: u64,
    add_time: String,
    update_time: String,
    visible_to: &'static str,
    last_used_time: (),
    custom_view_id: (),
}

pub fn filter_v1(f: &Filter) -> FilterV1<'_> {
    FilterV1 {
        id: f.id,
        name: &f.name,
        filter_code: (),
        is_editable: true,
        active_flag: true,
        kind: f.kind,
        temporary_flag: (),
        user_id: f.user_id,
        add_time: t1(f.add_time),
        update_time: t1(f.update_time),
        visible_to: "7",
        last_used_time: (),
        custom_view_id: (),
    }
}
