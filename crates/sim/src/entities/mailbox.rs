//! Mail threads and their messages: the v1 views.

use crate::model::{Db, MailThread};
use crate::util::{Ms, iso_ms};
use serde::Serialize;

/// Message `k` of a thread is sent at its share of the thread's span.
pub fn message_time(t: &MailThread, k: u32) -> Ms {
    t.first + (t.last - t.first) * i64::from(k) / i64::from(t.messages.max(1))
}

fn person_email(db: &Db, p: Option<u64>) -> String {
    p.and_then(|p| db.persons.get(p))
        .and_then(|p| p.emails.first())
        .map(|e| e.value.to_string())
        .unwrap_or_else(|| "unknown@example.com".into())
}

#[derive(Serialize)]
struct Party {
    id: u64,
    name: &'static str,
    latest_sent: bool,
    email_address: String,
    message_time: u8,
    linked_person_id: Option<u64>,
    linked_person_name: String,
    linked_organization_id: (),
    mail_message_party_id: u64,
}

fn party(db: &Db, id: u64, email: String, person: Option<u64>) -> Party {
    Party {
        id,
        name: "",
        latest_sent: false,
        email_address: email,
        message_time: 0,
        linked_person_id: person,
        linked_person_name: person
            .and_then(|p| db.persons.get(p))
            .map(|p| p.name())
            .unwrap_or_default(),
        linked_organization_id: (),
        mail_message_party_id: id,
    }
}

#[derive(Serialize)]
struct Parties {
    to: [Party; 1],
    from: [Party; 1],
}

#[derive(Serialize)]
pub struct ThreadV1<'a> {
    id: u64,
    parties: Parties,
    drafts_parties: [(); 0],
    folders: [&'static str; 1],
    account_id: String,
    user_id: u64,
    version: u8,
    subject: &'a str,
    snippet: &'static str,
    snippet_draft: (),
    snippet_sent: &'static str,
    has_attachments_flag: u8,
    has_inline_attachments_flag: u8,
    has_real_attachments_flag: u8,
    has_draft_flag: u8,
    has_sent_flag: u8,
    archived_flag: u8,
    deleted_flag: u8,
    shared_flag: u8,
    synced_flag: u8,
    external_deleted_flag: u8,
    smart_bcc_flag: u8,
    first_message_to_me_flag: u8,
    mail_link_tracking_enabled_flag: u8,
    last_message_timestamp: String,
    first_message_timestamp: String,
    last_message_sent_timestamp: (),
    last_message_received_timestamp: String,
    add_time: String,
    update_time: String,
    deal_id: u64,
    deal_status: &'static str,
    all_messages_sent_flag: u8,
    message_count: u32,
}

pub fn thread_v1<'a>(db: &Db, t: &'a MailThread) -> ThreadV1<'a> {
    let user_email = db
        .users
        .get(t.user_id)
        .map(|u| u.email.to_string())
        .unwrap_or_default();
    ThreadV1 {
        id: t.id,
        parties: Parties {
            to: [party(
                db,
                t.id * 10 + 1,
                person_email(db, t.person_id),
                t.person_id,
            )],
            from: [party(db, t.id * 10 + 2, user_email, None)],
        },
        drafts_parties: [],
        folders: [t.folder],
        account_id: format!("acc{}", t.user_id),
        user_id: t.user_id,
        version: 1,
        subject: &t.subject,
        snippet: "Thanks for the call today",
        snippet_draft: (),
        snippet_sent: "",
        has_attachments_flag: 0,
        has_inline_attachments_flag: 0,
        has_real_attachments_flag: 0,
        has_draft_flag: 0,
        has_sent_flag: u8::from(t.folder == "sent"),
        archived_flag: u8::from(t.folder == "archive"),
        deleted_flag: 0,
        shared_flag: 1,
        synced_flag: 1,
        external_deleted_flag: 0,
        smart_bcc_flag: 0,
        first_message_to_me_flag: 1,
        mail_link_tracking_enabled_flag: 0,
        last_message_timestamp: iso_ms(t.last),
        first_message_timestamp: iso_ms(t.first),
        last_message_sent_timestamp: (),
        last_message_received_timestamp: iso_ms(t.last),
        add_time: iso_ms(t.first + 1000),
        update_time: iso_ms(t.last + 1000),
        deal_id: t.deal_id,
        deal_status: db
            .deals
            .get(t.deal_id)
            .map(|d| d.status.name())
            .unwrap_or("open"),
        all_messages_sent_flag: 0,
        message_count: t.messages,
    }
}

#[derive(Serialize)]
struct Sender {
    id: u8,
    email_address: String,
    name: &'static str,
    linked_person_id: Option<u64>,
    linked_person_name: &'static str,
    mail_message_party_id: u8,
}

#[derive(Serialize)]
pub struct MessageV1<'a> {
    id: u64,
    from: [Sender; 1],
    to: [(); 0],
    cc: [(); 0],
    bcc: [(); 0],
    body_url: String,
    account_id: String,
    user_id: u64,
    mail_thread_id: u64,
    subject: &'a str,
    snippet: &'static str,
    mail_tracking_status: (),
    mail_link_tracking_enabled_flag: u8,
    read_flag: u8,
    draft: (),
    draft_flag: u8,
    synced_flag: u8,
    deleted_flag: u8,
    has_body_flag: u8,
    sent_flag: u8,
    sent_from_pipedrive_flag: u8,
    smart_bcc_flag: u8,
    message_time: String,
    add_time: String,
    update_time: String,
    has_attachments_flag: u8,
    has_inline_attachments_flag: u8,
    has_real_attachments_flag: u8,
}

/// Message `k` of thread `t`; its id is the thread's times ten plus `k`.
pub fn message_v1<'a>(db: &Db, t: &'a MailThread, k: u32) -> MessageV1<'a> {
    let time = message_time(t, k);
    MessageV1 {
        id: t.id * 10 + u64::from(k),
        from: [Sender {
            id: 1,
            email_address: person_email(db, t.person_id),
            name: "",
            linked_person_id: t.person_id,
            linked_person_name: "",
            mail_message_party_id: 1,
        }],
        to: [],
        cc: [],
        bcc: [],
        body_url: format!("https://mail.example.com/{}/{}", t.id, k),
        account_id: format!("acc{}", t.user_id),
        user_id: t.user_id,
        mail_thread_id: t.id,
        subject: &t.subject,
        snippet: "Thanks for the call today",
        mail_tracking_status: (),
        mail_link_tracking_enabled_flag: 0,
        read_flag: 1,
        draft: (),
        draft_flag: 0,
        synced_flag: 1,
        deleted_flag: 0,
        has_body_flag: 1,
        sent_flag: 0,
        sent_from_pipedrive_flag: 0,
        smart_bcc_flag: 0,
        message_time: iso_ms(time),
        add_time: iso_ms(time + 1000),
        update_time: iso_ms(time + 1000),
        has_attachments_flag: 0,
        has_inline_attachments_flag: 0,
        has_real_attachments_flag: 0,
    }
}

/// A message in a deal's mail list: wrapped with its object name and time.
#[derive(Serialize)]
pub struct DealMessageV1<'a> {
    object: &'static str,
    timestamp: String,
    data: MessageV1<'a>,
}

pub fn deal_message_v1<'a>(db: &Db, t: &'a MailThread, k: u32) -> DealMessageV1<'a> {
    DealMessageV1 {
        object: "mailMessage",
        timestamp: crate::util::v1ts(message_time(t, k)),
        data: message_v1(db, t, k),
    }
}
