//! Response envelopes for views that derive `Serialize`: one object, an unpaged list, a v1
//! offset page or a v2 cursor page over a derived list. The view structs keep the real API's
//! field order and leave out what it leaves out; these functions only wrap them.

use crate::list::{Pos, SortBy, decode_cursor, encode_cursor};
use crate::respond::{Ctx, Resp, parse_limit, v1_start, v2_invalid};
use serde::Serialize;

/// The items `[start, end)` of a derived list that a request's paging parameters select.
pub struct Window {
    pub start: usize,
    pub limit: usize,
    pub end: usize,
    total: usize,
}

impl Window {
    fn new(start: usize, limit: usize, total: usize) -> Window {
        let end = start.saturating_add(limit).min(total);
        Window {
            start: start.min(end),
            limit,
            end,
            total,
        }
    }

    pub fn of<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        items.get(self.start..self.end).unwrap_or(&[])
    }

    pub fn more(&self) -> bool {
        self.end < self.total
    }

    /// The v2 cursor of the next page; `None` on the last.
    pub fn next_cursor(&self) -> Option<String> {
        self.more().then(|| {
            encode_cursor(
                SortBy::Id,
                false,
                Pos {
                    value: self.end as i64,
                    id: self.end as u64,
                },
            )
        })
    }
}

/// v1 offset paging: `start` and `limit` (at most `max`).
pub fn offset_window(c: &Ctx, max: usize, total: usize) -> Result<Window, Resp> {
    let limit = parse_limit(c, 1, max)?;
    let start = v1_start(c)?;
    Ok(Window::new(start, limit, total))
}

/// v2 cursor paging over a derived list in id order: `cursor` and `limit` (at most 500).
pub fn cursor_window(c: &Ctx, total: usize) -> Result<Window, Resp> {
    let limit = parse_limit(c, 2, 500)?;
    let start = match c.q.val("cursor") {
        None => 0,
        Some(s) => match decode_cursor(s, SortBy::Id, false) {
            Some(p) => p.id as usize,
            None => return Err(v2_invalid("cursor: Invalid cursor")),
        },
    };
    Ok(Window::new(start, limit, total))
}

/// Any serde body as a response.
pub fn json<T: Serialize>(status: u16, body: &T) -> Resp {
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
    let w = match offset_window(c, max, items.len()) {
        Ok(w) => w,
        Err(e) => return e,
    };
    let page = w.of(items);
    json(
        200,
        &V1Page {
            success: true,
            data: (!page.is_empty()).then_some(page),
            additional_data: V1Additional {
                pagination: V1Pagination {
                    start: w.start,
                    limit: w.limit,
                    more_items_in_collection: w.more(),
                    next_start: w.more().then_some(w.end),
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
    let w = match cursor_window(c, items.len()) {
        Ok(w) => w,
        Err(e) => return e,
    };
    json(
        200,
        &V2Page {
            success: true,
            data: w.of(items),
            additional_data: V2Additional {
                next_cursor: w.next_cursor(),
            },
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
