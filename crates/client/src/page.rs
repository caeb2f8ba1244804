//! Requests, pages and envelope parsing. Records stay as raw JSON: the envelope is parsed
//! with borrowed `RawValue`s and the `data` array is split into one raw slice per record, so no
//! `serde_json::Value` tree is built for records.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{ClientError, truncate};

/// One endpoint call, with how it pages.
#[derive(Clone, Debug)]
pub struct Request {
    /// GET for every read; the few writes a connector makes (its own webhooks) say otherwise.
    pub method: reqwest::Method,
    /// Path appended to the base URL, e.g. `/api/v2/deals` or `/api/v1/users/me`.
    pub path: String,
    /// A JSON body, for writes.
    pub body: Option<serde_json::Value>,
    /// Query parameters other than paging ones (`start`, `cursor`, `limit` are added here).
    pub query: Vec<(String, String)>,
    pub paging: Paging,
    /// The endpoint's `x-token-cost`: pre-checks the daily budget and counts spend.
    pub token_cost: u32,
    /// Where the records are: `None` = `data` (array, null = empty, object = one record);
    /// `Some("goals")` = `data.goals`; dots walk nested objects.
    pub items_path: Option<String>,
    /// Where to start (resume).
    pub start: PagePosition,
}

impl Request {
    /// A GET of `path` with no paging, cost 1, records at `data`, starting at the beginning.
    pub fn new(path: impl Into<String>) -> Request {
        Request {
            method: reqwest::Method::GET,
            path: path.into(),
            body: None,
            query: Vec::new(),
            paging: Paging::None,
            token_cost: 1,
            items_path: None,
            start: PagePosition::First,
        }
    }
}

/// How an endpoint pages.
#[derive(Clone, Debug)]
pub enum Paging {
    /// One response holds everything.
    None,
    /// v1 `start`/`limit`, continued via `additional_data.pagination.next_start`.
    Offset { limit: u32 },
    /// v2 (and some v1) `cursor`/`limit`, continued via `additional_data.next_cursor`.
    Cursor { limit: u32 },
}

/// A position in a paged listing; persisted by the engine to resume.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PagePosition {
    First,
    Offset(u64),
    Cursor(String),
}

/// One response's records and paging metadata.
pub struct Page {
    /// Records, kept raw; the engine parses them.
    pub items: Vec<Box<RawValue>>,
    /// Where the next page starts; `None` = this was the last page.
    pub next: Option<PagePosition>,
    pub additional_data: Option<Box<RawValue>>,
    pub related_objects: Option<Box<RawValue>>,
    /// An offset walk found that the list moved under it by more than its overlap between
    /// the previous page and this one: records may have been skipped (see `overlap`).
    pub shifted: bool,
}

impl fmt::Debug for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Page")
            .field("items", &self.items.len())
            .field("next", &self.next)
            .field(
                "additional_data",
                &self.additional_data.as_deref().map(RawValue::get),
            )
            .field("related_objects", &self.related_objects.is_some())
            .field("shifted", &self.shifted)
            .finish()
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    success: Option<bool>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    additional_data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    related_objects: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
}

/// Paging fields of `additional_data`; both the nested (`pagination`) and the flat
/// spec-quirk forms are read.
#[derive(Deserialize, Default)]
struct Additional {
    #[serde(default)]
    pagination: Option<OffsetPagination>,
    #[serde(default)]
    more_items_in_collection: Option<bool>,
    #[serde(default)]
    next_start: Option<Number>,
    #[serde(default)]
    next_cursor: Option<String>,
}

#[derive(Deserialize, Default)]
struct OffsetPagination {
    #[serde(default)]
    more_items_in_collection: Option<bool>,
    #[serde(default)]
    next_start: Option<Number>,
}

/// A count sent as a number or, defensively, as a numeric string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Int(u64),
    Text(String),
}

impl Number {
    fn get(&self) -> Option<u64> {
        match self {
            Number::Int(n) => Some(*n),
            Number::Text(s) => s.trim().parse().ok(),
        }
    }
}

/// The text of an error field, which may be a string or any JSON value.
fn raw_text(raw: &RawValue) -> String {
    match serde_json::from_str::<String>(raw.get()) {
        Ok(s) => s,
        Err(_) => raw.get().to_owned(),
    }
}

/// Best-effort error text of a (possibly non-JSON) error body, bounded in length.
pub(crate) fn error_text(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<Envelope<'_>>(body) {
        Ok(env) => {
            let mut parts = Vec::new();
            if let Some(e) = env.error.filter(|e| e.get() != "null") {
                parts.push(raw_text(e));
            }
            if let Some(m) = env.message.filter(|m| m.get() != "null") {
                parts.push(raw_text(m));
            }
            if parts.is_empty() {
                String::from_utf8_lossy(body).into_owned()
            } else {
                parts.join(": ")
            }
        }
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    truncate(text.trim(), 300)
}

/// Parses a 2xx body into a page. `position` is where this page started (to detect a server
/// that does not advance).
pub(crate) fn parse_page(
    body: &[u8],
    request: &Request,
    position: &PagePosition,
) -> Result<Page, ClientError> {
    let decode = |detail: String| ClientError::Decode {
        path: request.path.clone(),
        detail: truncate(&detail, 300),
    };
    let text = std::str::from_utf8(body).map_err(|e| decode(format!("body is not UTF-8: {e}")))?;
    let env: Envelope<'_> =
        serde_json::from_str(text).map_err(|e| decode(format!("malformed JSON envelope: {e}")))?;
    if env.success == Some(false) {
        let mut message = env
            .error
            .map(raw_text)
            .unwrap_or_else(|| "success: false".into());
        if let Some(m) = env.message {
            message = format!("{message}: {}", raw_text(m));
        }
        return Err(ClientError::Api {
            path: request.path.clone(),
            message: truncate(&message, 300),
        });
    }

    let records = match (&request.items_path, env.data) {
        (_, None) => None,
        (None, Some(data)) => Some(data),
        (Some(items_path), Some(data)) => walk(data, items_path).map_err(decode)?,
    };
    let items = match records {
        None => Vec::new(),
        Some(raw) => split_records(raw).map_err(decode)?,
    };

    let additional: Additional = match env.additional_data {
        Some(raw) if raw.get().trim_start().starts_with('{') => serde_json::from_str(raw.get())
            .map_err(|e| decode(format!("unexpected additional_data: {e}")))?,
        _ => Additional::default(),
    };
    let next = next_position(&request.paging, &additional, position, &request.path)?;

    Ok(Page {
        items,
        next,
        additional_data: env.additional_data.map(RawValue::to_owned),
        related_objects: env.related_objects.map(RawValue::to_owned),
        shifted: false,
    })
}

/// Follows `a.b.c` through nested objects. A missing key or `null` means no records.
fn walk<'a>(mut raw: &'a RawValue, items_path: &str) -> Result<Option<&'a RawValue>, String> {
    for key in items_path.split('.').filter(|k| !k.is_empty()) {
        if raw.get() == "null" {
            return Ok(None);
        }
        let map: BTreeMap<String, &'a RawValue> = serde_json::from_str(raw.get())
            .map_err(|e| format!("expected an object on the way to `{items_path}`: {e}"))?;
        match map.get(key) {
            Some(v) => raw = v,
            None => return Ok(None),
        }
    }
    Ok(Some(raw))
}

/// Array → one raw value per element; `null` → none; object → one record.
fn split_records(raw: &RawValue) -> Result<Vec<Box<RawValue>>, String> {
    let s = raw.get().trim_start();
    if s.starts_with('[') {
        let parts: Vec<&RawValue> =
            serde_json::from_str(raw.get()).map_err(|e| format!("malformed records array: {e}"))?;
        Ok(parts.into_iter().map(RawValue::to_owned).collect())
    } else if s == "null" {
        Ok(Vec::new())
    } else if s.starts_with('{') {
        Ok(vec![raw.to_owned()])
    } else {
        Err(format!(
            "expected records as an array or object, found `{}`",
            truncate(s, 40)
        ))
    }
}

fn next_position(
    paging: &Paging,
    additional: &Additional,
    position: &PagePosition,
    path: &str,
) -> Result<Option<PagePosition>, ClientError> {
    let stuck = |detail: String| ClientError::Decode {
        path: path.to_owned(),
        detail,
    };
    match paging {
        Paging::None => Ok(None),
        Paging::Offset { .. } => {
            let (more, next_start) = match &additional.pagination {
                Some(p) => (p.more_items_in_collection, p.next_start.as_ref()),
                None => (
                    additional.more_items_in_collection,
                    additional.next_start.as_ref(),
                ),
            };
            if more != Some(true) {
                return Ok(None);
            }
            let Some(next) = next_start.and_then(Number::get) else {
                tracing::debug!(
                    path,
                    "more_items_in_collection without next_start; treating as the last page"
                );
                return Ok(None);
            };
            let current = match position {
                PagePosition::Offset(n) => *n,
                _ => 0,
            };
            if next <= current {
                return Err(stuck(format!(
                    "next_start {next} does not advance past start {current}"
                )));
            }
            Ok(Some(PagePosition::Offset(next)))
        }
        Paging::Cursor { .. } => match additional.next_cursor.as_deref() {
            None | Some("") => Ok(None),
            Some(cursor) => {
                if matches!(position, PagePosition::Cursor(c) if c == cursor) {
                    return Err(stuck("next_cursor repeats the cursor just used".into()));
                }
                Ok(Some(PagePosition::Cursor(cursor.to_owned())))
            }
        },
    }
}

/// Query pairs for the paging of `request` at `position`.
pub(crate) fn paging_query(
    request: &Request,
    position: &PagePosition,
) -> Result<Vec<(&'static str, String)>, ClientError> {
    let mismatch = || ClientError::InvalidRequest {
        message: format!(
            "{}: start position {position:?} does not fit paging {:?}",
            request.path, request.paging
        ),
    };
    Ok(match (&request.paging, position) {
        (Paging::None, PagePosition::First) => Vec::new(),
        (Paging::None, _) => return Err(mismatch()),
        (Paging::Offset { limit }, PagePosition::First) => {
            vec![("start", "0".into()), ("limit", limit.to_string())]
        }
        (Paging::Offset { limit }, PagePosition::Offset(start)) => {
            vec![("start", start.to_string()), ("limit", limit.to_string())]
        }
        (Paging::Cursor { limit }, PagePosition::First) => vec![("limit", limit.to_string())],
        (Paging::Cursor { limit }, PagePosition::Cursor(c)) => {
            vec![("cursor", c.clone()), ("limit", limit.to_string())]
        }
        _ => return Err(mismatch()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(paging: Paging, items_path: Option<&str>) -> Request {
        Request {
            items_path: items_path.map(str::to_owned),
            paging,
            ..Request::new("/api/v1/x")
        }
    }

    #[test]
    fn offset_nested_and_flat() {
        let r = req(Paging::Offset { limit: 2 }, None);
        let body = br#"{"success":true,"data":[{"id":1},{"id":2}],"additional_data":{"pagination":{"start":0,"limit":2,"more_items_in_collection":true,"next_start":2}}}"#;
        let p = parse_page(body, &r, &PagePosition::First).unwrap();
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.items[1].get(), r#"{"id":2}"#);
        assert_eq!(p.next, Some(PagePosition::Offset(2)));

        let flat = br#"{"success":true,"data":[{"id":3}],"additional_data":{"start":2,"more_items_in_collection":true,"next_start":3}}"#;
        let p = parse_page(flat, &r, &PagePosition::Offset(2)).unwrap();
        assert_eq!(p.next, Some(PagePosition::Offset(3)));

        let no_next = br#"{"success":true,"data":[{"id":3}],"additional_data":{"pagination":{"more_items_in_collection":true}}}"#;
        assert_eq!(
            parse_page(no_next, &r, &PagePosition::Offset(2))
                .unwrap()
                .next,
            None
        );

        let null = br#"{"success":true,"data":null,"additional_data":{"pagination":{"more_items_in_collection":false}}}"#;
        let p = parse_page(null, &r, &PagePosition::First).unwrap();
        assert!(p.items.is_empty() && p.next.is_none());
    }

    #[test]
    fn cursor_items_path_and_single_object() {
        let r = req(Paging::Cursor { limit: 2 }, None);
        let body = br#"{"success":true,"data":[{"id":1}],"additional_data":{"next_cursor":"abc"}}"#;
        assert_eq!(
            parse_page(body, &r, &PagePosition::First).unwrap().next,
            Some(PagePosition::Cursor("abc".into()))
        );
        let last = br#"{"success":true,"data":[],"additional_data":{"next_cursor":null}}"#;
        assert_eq!(
            parse_page(last, &r, &PagePosition::First).unwrap().next,
            None
        );
        assert!(parse_page(body, &r, &PagePosition::Cursor("abc".into())).is_err());

        let g = req(Paging::None, Some("goals"));
        let body = br#"{"success":true,"data":{"goals":[{"id":"a"},{"id":"b"}]}}"#;
        assert_eq!(
            parse_page(body, &g, &PagePosition::First)
                .unwrap()
                .items
                .len(),
            2
        );

        let one = req(Paging::None, None);
        let body = br#"{"success":true,"data":{"id":7,"name":"me"}}"#;
        let p = parse_page(body, &one, &PagePosition::First).unwrap();
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.items[0].get(), r#"{"id":7,"name":"me"}"#);
    }

    #[test]
    fn failures() {
        let r = req(Paging::None, None);
        assert!(matches!(
            parse_page(
                br#"{"success":true,"data":[{"id":1}"#,
                &r,
                &PagePosition::First
            ),
            Err(ClientError::Decode { .. })
        ));
        assert!(matches!(
            parse_page(br#"{"success":false,"error":"nope"}"#, &r, &PagePosition::First),
            Err(ClientError::Api { message, .. }) if message == "nope"
        ));
        assert_eq!(
            error_text(br#"{"success":false,"error":"unauthorized access","errorCode":401}"#),
            "unauthorized access"
        );
        assert_eq!(error_text(b"<html>blocked</html>"), "<html>blocked</html>");
    }
}
