//! Users: the v1 view, and `/users/me`, which adds the company.

use super::views::t1;
use crate::model::{Db, TIMEZONES, User};
use serde::Serialize;

#[derive(Serialize)]
pub struct UserV1<'a> {
    id: u64,
    name: &'a str,
    default_currency: &'static str,
    locale: &'static str,
    lang: u8,
    email: &'a str,
    phone: Option<&'a str>,
    activated: bool,
    last_login: String,
    created: String,
    modified: String,
    has_created_company: bool,
    access: Vec<Access>,
    active_flag: bool,
    timezone_name: &'static str,
    timezone_offset: &'static str,
    role_id: u64,
    icon_url: (),
    is_you: bool,
    is_deleted: bool,
}

#[derive(Serialize)]
struct Access {
    app: &'static str,
    admin: bool,
    permission_set_id: String,
}

/// `me` is the user asking, for `is_you`.
pub fn user_v1(u: &User, me: u64) -> UserV1<'_> {
    let (_, timezone_name) = TIMEZONES[u.timezone as usize % TIMEZONES.len()];
    let mut access = vec![Access {
        app: "sales",
        admin: u.is_admin,
        permission_set_id: perm_set_uuid(if u.is_admin { 1 } else { 2 }),
    }];
    if u.is_admin {
        access.push(Access {
            app: "global",
            admin: true,
            permission_set_id: perm_set_uuid(3),
        });
    }
    UserV1 {
        id: u.id,
        name: &u.name,
        default_currency: u.default_currency,
        locale: u.locale,
        lang: 1,
        email: &u.email,
        phone: u.phone.as_deref(),
        activated: u.active,
        last_login: t1(u.last_login),
        created: t1(u.add_time),
        modified: t1(u.update_time),
        has_created_company: u.id == 1,
        access,
        active_flag: u.active,
        timezone_name,
        timezone_offset: match timezone_name {
            "Europe/Berlin" => "+01:00",
            "America/New_York" => "-05:00",
            "Asia/Tokyo" => "+09:00",
            _ => "+00:00",
        },
        role_id: u.role_id,
        icon_url: (),
        is_you: u.id == me,
        is_deleted: u.deleted_time.is_some(),
    }
}

/// `/users/me`: the user, then the company it works in.
#[derive(Serialize)]
pub struct MeV1<'a> {
    #[serde(flatten)]
    user: UserV1<'a>,
    company_id: u64,
    company_name: &'a str,
    company_domain: &'a str,
    company_country: &'static str,
    company_industry: &'static str,
    language: Language,
}

#[derive(Serialize)]
struct Language {
    language_code: &'static str,
    country_code: &'static str,
}

pub fn me_v1<'a>(db: &'a Db, u: &'a User) -> MeV1<'a> {
    MeV1 {
        user: user_v1(u, u.id),
        company_id: db.company.id,
        company_name: &db.company.name,
        company_domain: &db.company.domain,
        company_country: "EE",
        company_industry: "IT Services",
        language: Language {
            language_code: "en",
            country_code: "US",
        },
    }
}

/// The UUID of permission set `n`.
pub fn perm_set_uuid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{:012x}", n)
}
