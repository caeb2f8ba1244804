//! Response envelopes for views that derive `Serialize`: one object, an unpaged list, a v1
//! offset page or a v2 cursor page over a derived list. The view structs keep the real API's
//! field order and leave out what it leaves out; these functions only wrap them.

use crate::api::{Ctx, Resp, err, v2_invalid};
use crate::list::{Pos, SortBy, decode_cursor, encode_cursor};
use serde::Serialize;

fn json<T: Serialize>(status: u16, body: &T) -> Resp {
    Resp {
        status,
        // Serialising these plain structs cannot fail.
        body: serde_json::to_vec(body).unwrap_or_default(),
    }
}

#[derive(Serialize)]
struct Data<'a, T> {
    success: bool,
    data: &'a T,
}

/// `{"success":true,"data":…}`.
pub fn data<T: Serialize>(value: &T) -> Resp {
    json(
        200,
        &Data {
            success: true,
            data: value,
        },
    )
}

#[derive(Serialize)]
struct Unpaged<'a, T> {
    success: bool,
    data: &'a [T],
    additional_data: Option<()>,
}

/// An unpaged list (v2 `/boards`, `/phases`): `additional_data` is `null`.
pub fn unpaged<T: Serialize>(items: &[T]) -> Resp {
    json(
        200,
        &Unpaged {
            success: true,
            data: items,
            additional_data: None,
        },
    )
}

#[derive(Serialize)]
struct V1Page<'a, T> {
    success: bool,
    /// v1 lists answer `null` rather than `[]` when empty.
    data: Option<&'a [T]>,
    additional_data: V1Additional,
}

#[derive(Serialize)]
struct V1Additional {
    pagination: V1Pagination,
}

#[derive(Serialize)]
struct V1Pagination {
    start: usize,
    limit: usize,
    more_items_in_collection: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_start: Option<usize>,
}

/// One v1 offset page (`start`, `limit` up to `max`) of a derived list.
pub fn v1_page<T: Serialize>(c: &Ctx, items: &[T], max: usize) -> Resp {
    let limit = match c.q.val("limit") {
        None => 100.min(max),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => return err(400, &format!("Limit must be between 1 and {max}")),
        },
    };
    let start = match c.q.val("start").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(s)) => s,
        Some(Err(_)) => return err(400, "Invalid start"),
    };
    let end = (start.saturating_add(limit)).min(items.len());
    let page = items.get(start.min(end)..end).unwrap_or(&[]);
    let more = end < items.len();
    json(
        200,
        &V1Page {
            success: true,
            data: (!page.is_empty()).then_some(page),
            additional_data: V1Additional {
                pagination: V1Pagination {
                    start,
                    limit,
                    more_items_in_collection: more,
                    next_start: more.then_some(end),
                },
            },
        },
    )
}

#[derive(Serialize)]
struct V2Page<'a, T> {
    success: bool,
    data: &'a [T],
    additional_data: V2Additional,
}

#[derive(Serialize)]
struct V2Additional {
    next_cursor: Option<String>,
}

/// One v2 cursor page (`cursor`, `limit` up to 500) of a derived list in id order.
pub fn v2_page<T: Serialize>(c: &Ctx, items: &[T]) -> Resp {
    let limit = match c.q.val("limit").map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        _ => return v2_invalid("limit: Number must be less than or equal to 500"),
    };
    let start = match c.q.val("cursor") {
        None => 0,
        Some(s) => match decode_cursor(s, SortBy::Id, false) {
            Some(p) => p.id as usize,
            None => return v2_invalid("cursor: Invalid cursor"),
        },
    };
    let end = (start.saturating_add(limit)).min(items.len());
    let page = items.get(start.min(end)..end).unwrap_or(&[]);
    let next_cursor = (end < items.len()).then(|| {
        encode_cursor(
            SortBy::Id,
            false,
            Pos {
                value: end as i64,
                id: end as u64,
            },
        )
    });
    json(
        200,
        &V2Page {
            success: true,
            data: page,
            additional_data: V2Additional { next_cursor },
        },
    )
}

/// The records of a ground-truth listing (`GET /__sim/truth/{entity}`).
pub fn truth<T: Serialize>(records: &[T]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Truth<'a, T> {
        records: &'a [T],
    }
    serde_json::to_vec(&Truth { records }).unwrap_or_default()
}
