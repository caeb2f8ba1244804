//! Files attached to deals: the v1 view.

use super::views::t1;
use crate::model::{Db, File};
use serde::Serialize;

#[derive(Serialize)]
pub struct FileV1<'a> {
    id: u64,
    user_id: u64,
    deal_id: u64,
    person_id: Option<u64>,
    org_id: Option<u64>,
    product_id: (),
    activity_id: (),
    lead_id: (),
    project_id: (),
    log_id: (),
    add_time: String,
    update_time: String,
    file_name: &'a str,
    file_type: &'static str,
    file_size: u64,
    active_flag: bool,
    inline_flag: bool,
    remote_location: &'static str,
    remote_id: &'static str,
    cid: &'static str,
    s3_bucket: &'static str,
    mail_message_id: &'static str,
    mail_template_id: &'static str,
    deal_name: &'a str,
    person_name: String,
    org_name: &'a str,
    product_name: &'static str,
    lead_name: &'static str,
    project_name: &'static str,
    url: String,
    name: &'a str,
    description: &'static str,
}

pub fn file_v1<'a>(db: &'a Db, f: &'a File) -> FileV1<'a> {
    FileV1 {
        id: f.id,
        user_id: f.user_id,
        deal_id: f.deal_id,
        person_id: f.person_id,
        org_id: f.org_id,
        product_id: (),
        activity_id: (),
        lead_id: (),
        project_id: (),
        log_id: (),
        add_time: t1(f.add_time),
        update_time: t1(f.add_time),
        file_name: &f.name,
        file_type: "pdf",
        file_size: f.size,
        active_flag: true,
        inline_flag: false,
        remote_location: "s3",
        remote_id: "",
        cid: "",
        s3_bucket: "",
        mail_message_id: "",
        mail_template_id: "",
        deal_name: db.deals.get(f.deal_id).map(|d| &*d.title).unwrap_or(""),
        person_name: f
            .person_id
            .and_then(|p| db.persons.get(p))
            .map(|p| p.name())
            .unwrap_or_default(),
        org_name: f
            .org_id
            .and_then(|o| db.orgs.get(o))
            .map(|o| &*o.name)
            .unwrap_or(""),
        product_name: "",
        lead_name: "",
        project_name: "",
        url: format!(
            "https://{}.pipedrive.com/v1/files/{}/download",
            db.company.domain, f.id
        ),
        name: &f.name,
        description: "",
    }
}
