//! Call logs: the v1 view.

use crate::model::{CallLog, Db};
use crate::util::iso_ms;
use serde::Serialize;

#[derive(Serialize)]
pub struct CallLogV1<'a> {
    id: &'a str,
    activity_id: u64,
    person_id: Option<u64>,
    org_id: Option<u64>,
    deal_id: Option<u64>,
    subject: &'static str,
    /// Seconds, as a string.
    duration: String,
    outcome: &'static str,
    from_phone_number: &'static str,
    to_phone_number: &'a str,
    has_recording: bool,
    start_time: String,
    end_time: String,
    user_id: u64,
    company_id: u64,
    note: &'static str,
}

pub fn call_log_v1<'a>(db: &Db, c: &'a CallLog) -> CallLogV1<'a> {
    CallLogV1 {
        id: &c.id,
        activity_id: c.activity_id,
        person_id: c.person_id,
        org_id: c.org_id,
        deal_id: c.deal_id,
        subject: "Call",
        duration: c.duration.to_string(),
        outcome: c.outcome,
        from_phone_number: "+372 600 0000",
        to_phone_number: &c.to,
        has_recording: false,
        start_time: iso_ms(c.start),
        end_time: iso_ms(c.start + i64::from(c.duration) * 1000),
        user_id: c.user_id,
        company_id: db.company.id,
        note: "",
    }
}
