//! Lead labels: the v1 view.

use crate::model::LeadLabel;
use crate::util::iso_ms;
use serde::Serialize;

#[derive(Serialize)]
pub struct LeadLabelV1<'a> {
    id: &'a str,
    name: &'a str,
    color: &'static str,
    add_time: String,
    update_time: String,
}

pub fn lead_label_v1(l: &LeadLabel) -> LeadLabelV1<'_> {
    LeadLabelV1 {
        id: &l.id,
        name: &l.name,
        color: l.color,
        add_time: iso_ms(l.add_time),
        update_time: iso_ms(l.update_time),
    }
}
