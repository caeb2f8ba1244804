//! Paging: v2 keyset cursors and v1 offsets over [`Table`]s, plus query-string helpers.

use crate::model::{Rec, Table};
use crate::util::Ms;
use base64::Engine;
use std::ops::Bound;

pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }
    /// Non-empty value.
    pub fn val(&self, k: &str) -> Option<&str> {
        self.get(k).filter(|v| !v.is_empty())
    }
    pub fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }
    /// CSV values across repeated keys.
    pub fn csv(&self, k: &str) -> Vec<String> {
        self.all(k)
            .iter()
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortBy {
    Id,
    Update,
    Add,
    /// Activities only: due date.
    Due,
}

impl SortBy {
    pub fn name(self) -> &'static str {
        match self {
            SortBy::Id => "id",
            SortBy::Update => "update_time",
            SortBy::Add => "add_time",
            SortBy::Due => "due_date",
        }
    }
    pub fn parse(s: &str) -> Option<SortBy> {
        match s {
            "id" => Some(SortBy::Id),
            "update_time" => Some(SortBy::Update),
            "add_time" => Some(SortBy::Add),
            "due_date" => Some(SortBy::Due),
            _ => None,
        }
    }
}

/// A keyset position: the sort value and id of the last row of the previous page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub value: i64,
    pub id: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CursorJson {
    field: String,
    #[serde(rename = "fieldValue")]
    field_value: i64,
    #[serde(rename = "sortDirection")]
    sort_direction: String,
    id: u64,
}

pub fn encode_cursor(sort: SortBy, desc: bool, p: Pos) -> String {
    let c = CursorJson {
        field: sort.name().into(),
        field_value: p.value,
        sort_direction: if desc { "desc" } else { "asc" }.into(),
        id: p.id,
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&c).unwrap_or_default())
}

/// Decodes a cursor; it must have been issued for the same sort.
pub fn decode_cursor(s: &str, sort: SortBy, desc: bool) -> Option<Pos> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()?;
    let c: CursorJson = serde_json::from_slice(&raw).ok()?;
    let dir = if desc { "desc" } else { "asc" };
    (c.field == sort.name() && c.sort_direction == dir).then_some(Pos {
        value: c.field_value,
        id: c.id,
    })
}

pub struct Page<'a, T> {
    pub rows: Vec<&'a T>,
    pub next: Option<Pos>,
}

fn key_of<T: Rec>(r: &T, sort: SortBy, due: &dyn Fn(&T) -> i64) -> Pos {
    let value = match sort {
        SortBy::Id => r.id() as i64,
        SortBy::Update => r.update_time(),
        SortBy::Add => r.add_time(),
        SortBy::Due => due(r),
    };
    Pos { value, id: r.id() }
}

/// Filters every paged list applies: visibility, `updated_since` (>=), `updated_until` (<).
pub struct Window {
    pub since: Option<Ms>,
    pub until: Option<Ms>,
}

/// One v2 page in keyset order after `after`. `keep` filters rows. Sorting by `add_time`
/// walks id order: ids are assigned in creation order, so both orders agree.
#[allow(clippy::too_many_arguments)]
pub fn v2_page<'a, T: Rec>(
    t: &'a Table<T>,
    sort: SortBy,
    desc: bool,
    after: Option<Pos>,
    limit: usize,
    w: &Window,
    keep: &dyn Fn(&T) -> bool,
    due: &dyn Fn(&T) -> i64,
) -> Page<'a, T> {
    let mut out: Vec<&T> = Vec::with_capacity(limit + 1);
    let in_window = |r: &T| {
        let u = r.update_time();
        w.since.is_none_or(|s| u >= s) && w.until.is_none_or(|e| u < e)
    };
    let want = limit + 1;
    match sort {
        SortBy::Id | SortBy::Add => {
            if !desc {
                let start = after
                    .map(|p| t.rows.partition_point(|r| r.id() <= p.id))
                    .unwrap_or(0);
                for r in &t.rows[start..] {
                    if in_window(r) && keep(r) {
                        out.push(r);
                        if out.len() == want {
                            break;
                        }
                    }
                }
            } else {
                let end = after
                    .map(|p| t.rows.partition_point(|r| r.id() < p.id))
                    .unwrap_or(t.rows.len());
                for r in t.rows[..end].iter().rev() {
                    if in_window(r) && keep(r) {
                        out.push(r);
                        if out.len() == want {
                            break;
                        }
                    }
                }
            }
        }
        SortBy::Update => {
            let lo = match (after, desc) {
                (Some(p), false) => Bound::Excluded((p.value, p.id)),
                _ => match w.since {
                    Some(s) => Bound::Included((s, 0)),
                    None => Bound::Unbounded,
                },
            };
            let hi = match (after, desc) {
                (Some(p), true) => Bound::Excluded((p.value, p.id)),
                _ => match w.until {
                    Some(u) => Bound::Excluded((u, 0)),
                    None => Bound::Unbounded,
                },
            };
            if !matches!((lo, hi), (Bound::Excluded(a) | Bound::Included(a), Bound::Excluded(b)) if a >= b)
            {
                let range = t.by_update.range((lo, hi));
                let iter: Box<dyn Iterator<Item = &(Ms, u64)>> = if desc {
                    Box::new(range.rev())
                } else {
                    Box::new(range)
                };
                for (_, id) in iter {
                    let Some(r) = t.get(*id) else { continue };
                    if in_window(r) && keep(r) {
                        out.push(r);
                        if out.len() == want {
                            break;
                        }
                    }
                }
            }
        }
        SortBy::Due => {
            let mut all: Vec<(Pos, &T)> = t
                .rows
                .iter()
                .filter(|r| in_window(r) && keep(r))
                .map(|r| (key_of(r, sort, due), r))
                .filter(|(k, _)| match after {
                    None => true,
                    Some(p) if !desc => (k.value, k.id) > (p.value, p.id),
                    Some(p) => (k.value, k.id) < (p.value, p.id),
                })
                .collect();
            all.sort_by_key(|(k, _)| (k.value, k.id));
            if desc {
                all.reverse();
            }
            out = all.into_iter().take(want).map(|(_, r)| r).collect();
        }
    }
    let next = if out.len() > limit {
        out.truncate(limit);
        out.last().map(|r| key_of(*r, sort, due))
    } else {
        None
    };
    Page { rows: out, next }
}

/// One v1 page by offset. Returns the rows and whether more exist. `since` is the list's
/// `updated_since`: `keep` must reject older rows too; here it only narrows the walk of an
/// update-time sort to the rows that can pass, so each page is not a scan of the table.
pub fn v1_page<'a, T: Rec>(
    t: &'a Table<T>,
    sort: SortBy,
    desc: bool,
    (start, limit): (usize, usize),
    since: Option<Ms>,
    keep: &dyn Fn(&T) -> bool,
) -> (Vec<&'a T>, bool) {
    let want = limit + 1;
    let mut out = Vec::with_capacity(want.min(1024));
    let mut skipped = 0usize;
    let mut push = |r: &'a T| -> bool {
        if !keep(r) {
            return false;
        }
        if skipped < start {
            skipped += 1;
            return false;
        }
        out.push(r);
        out.len() == want
    };
    match sort {
        SortBy::Update => {
            let from = since.map_or(Bound::Unbounded, |s| Bound::Included((s, 0)));
            let range = t.by_update.range((from, Bound::Unbounded));
            let it: Box<dyn Iterator<Item = &(Ms, u64)>> = if desc {
                Box::new(range.rev())
            } else {
                Box::new(range)
            };
            for (_, id) in it {
                if let Some(r) = t.get(*id)
                    && push(r)
                {
                    break;
                }
            }
        }
        _ => {
            let it: Box<dyn Iterator<Item = &T>> = if desc {
                Box::new(t.rows.iter().rev())
            } else {
                Box::new(t.rows.iter())
            };
            for r in it {
                if push(r) {
                    break;
                }
            }
        }
    }
    let more = out.len() > limit;
    out.truncate(limit);
    (out, more)
}

/// v1 `sort` parameter, e.g. `update_time DESC`. Unknown fields fall back to id.
pub fn parse_v1_sort(s: Option<&str>) -> (SortBy, bool) {
    let Some(s) = s else {
        return (SortBy::Id, false);
    };
    let first = s.split(',').next().unwrap_or("").trim();
    let mut it = first.split_whitespace();
    let field = it.next().unwrap_or("id");
    let desc = it.next().is_some_and(|d| d.eq_ignore_ascii_case("desc"));
    (
        SortBy::parse(field)
            .filter(|s| *s != SortBy::Due)
            .unwrap_or(SortBy::Id),
        desc,
    )
}
