//! Activity types: the v1 view.

use super::views::t1;
use crate::model::ActivityType;
use serde::Serialize;

#[derive(Serialize)]
pub struct ActivityTypeV1 {
    id: u64,
    order_nr: u32,
    name: &'static str,
    key_string: &'static str,
    icon_key: &'static str,
    active_flag: bool,
    color: &'static str,
    is_custom_flag: bool,
    add_time: String,
    update_time: String,
}

pub fn activity_type_v1(a: &ActivityType) -> ActivityTypeV1 {
    ActivityTypeV1 {
        id: a.id,
        order_nr: a.order_nr,
        name: a.name,
        key_string: a.key,
        icon_key: a.icon,
        active_flag: true,
        color: a.color,
        is_custom_flag: a.is_custom,
        add_time: t1(a.add_time),
        update_time: t1(a.update_time),
    }
}
