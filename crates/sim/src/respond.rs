//! What every handler answers with: the request's context, the response, Pipedrive's error
//! bodies and list envelopes, and the paging parameters they share.

use crate::json::J;
use crate::util::Ms;

#[derive(Clone)]
pub struct Resp {
    pub status: u16,
    pub body: Vec<u8>,
}

pub const ERROR_INFO: &str = "Please check developers.pipedrive.com";

pub fn err(status: u16, msg: &str) -> Resp {
    let mut j = J::default();
    j.obj()
        .kb("success", false)
        .ks("error", msg)
        .ks("error_info", ERROR_INFO);
    j.knull("data").knull("additional_data").end_obj();
    Resp {
        status,
        body: j.buf,
    }
}

/// v2 request validation error (400).
pub fn v2_invalid(msg: &str) -> Resp {
    let mut j = J::default();
    j.obj()
        .kb("success", false)
        .ks("error", &format!("Validation failed: {msg}"));
    j.ks("code", "ERR_SCHEMA_VALIDATION_FAILED")
        .ks("error_info", ERROR_INFO);
    j.knull("data").knull("additional_data").end_obj();
    Resp {
        status: 400,
        body: j.buf,
    }
}

pub fn not_found(ver: u8, what: &str) -> Resp {
    let _ = ver;
    err(404, &format!("{what} not found"))
}

const UNKNOWN_METHOD: &str = "Unknown method .";

/// A path that is no operation of the API (a typo, a wrong prefix).
pub fn unknown_route() -> Resp {
    err(404, UNKNOWN_METHOD)
}

pub fn is_unknown_route(r: &Resp) -> bool {
    r.status == 404 && r.body == unknown_route().body
}

/// A lead that is not there: leads answer 404 with their own wording and `error_info`.
pub fn lead_not_found() -> Resp {
    let mut j = J::default();
    j.obj()
        .kb("success", false)
        .ks("error", "requested lead not found");
    j.ks("error_info", "Object was not found.")
        .knull("data")
        .knull("additional_data")
        .end_obj();
    Resp {
        status: 404,
        body: j.buf,
    }
}

/// An operation the company's plan, add-ons or permissions do not include.
pub fn not_in_plan() -> Resp {
    err(403, "You do not have permissions to do this.")
}

pub fn ok_data(f: impl FnOnce(&mut J)) -> Resp {
    let mut j = J::with_capacity(1024);
    j.obj().kb("success", true).key("data");
    f(&mut j);
    j.end_obj();
    Resp {
        status: 200,
        body: j.buf,
    }
}

pub struct Ctx<'a> {
    pub now: Ms,
    pub q: &'a crate::list::Query,
    /// The authenticated user (the token owner).
    pub me: u64,
    /// Whether a write comes from an API client or from a user in the app (churn): webhooks
    /// report it as `meta.change_source`.
    pub source: crate::webhook_outbox::ChangeSource,
}

pub(crate) fn parse_limit(c: &Ctx, ver: u8, max: usize) -> Result<usize, Resp> {
    match c.q.val("limit") {
        None => Ok(100.min(max)),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n >= 1 && n as usize <= max => Ok(n as usize),
            Ok(n) if n > max as i64 => Err(if ver == 2 {
                v2_invalid(&format!(
                    "limit: Number must be less than or equal to {max}"
                ))
            } else {
                err(400, &format!("Limit must be {max} or less"))
            }),
            _ => Err(if ver == 2 {
                v2_invalid("limit: Expected a positive integer")
            } else {
                err(400, "Invalid limit")
            }),
        },
    }
}

/// Renders a v2 list envelope.
pub fn v2_envelope<T>(
    rows: &[&T],
    next: Option<String>,
    mut render: impl FnMut(&mut J, &T),
) -> Resp {
    let mut j = J::with_capacity(512 + rows.len() * 900);
    j.obj().kb("success", true).key("data").arr();
    for r in rows {
        render(&mut j, r);
    }
    j.end_arr();
    j.key("additional_data")
        .obj()
        .kos("next_cursor", next.as_deref())
        .end_obj();
    j.end_obj();
    Resp {
        status: 200,
        body: j.buf,
    }
}

pub fn v1_envelope<T>(
    rows: &[&T],
    start: usize,
    limit: usize,
    more: bool,
    null_when_empty: bool,
    mut render: impl FnMut(&mut J, &T),
    extra: impl FnOnce(&mut J),
) -> Resp {
    let mut j = J::with_capacity(512 + rows.len() * 900);
    j.obj().kb("success", true).key("data");
    if rows.is_empty() && null_when_empty {
        j.null();
    } else {
        j.arr();
        for r in rows {
            render(&mut j, r);
        }
        j.end_arr();
    }
    j.key("additional_data").obj();
    extra(&mut j);
    j.key("pagination").obj();
    j.ki("start", start as i64)
        .ki("limit", limit as i64)
        .kb("more_items_in_collection", more);
    if more {
        j.ki("next_start", (start + rows.len()) as i64);
    }
    j.end_obj().end_obj().end_obj();
    Resp {
        status: 200,
        body: j.buf,
    }
}

pub(crate) fn v1_start(c: &Ctx) -> Result<usize, Resp> {
    match c.q.val("start") {
        None => Ok(0),
        Some(s) => s.parse().map_err(|_| err(400, "Invalid start")),
    }
}

/// The content type of every API answer.
pub const JSON: &str = "application/json; charset=utf-8";

/// An API answer as an HTTP response.
pub fn json_response(status: u16, body: Vec<u8>) -> axum::http::Response<axum::body::Body> {
    let mut r = axum::http::Response::new(axum::body::Body::from(body));
    *r.status_mut() = axum::http::StatusCode::from_u16(status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(JSON),
    );
    r
}
