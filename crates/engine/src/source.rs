//! Where a stream's records come from, as a sequence of chunks: a page of a list, a page of
//! recent changes, or the children of one page of parents. The runner commits one chunk at a
//! time together with the state it makes true; it never looks at which kind it reads.

use std::borrow::Cow;

use futures::{StreamExt, TryStreamExt};
use pipedrive_client::{ClientError, Page, PagePosition, Paging, Request};
use serde::de::DeserializeSeed;
use serde_json::{Map, Value};

use crate::catalog::{self, Fanout, Incremental, PagingKind, StreamDef};
use crate::pages::Pages;
use crate::schema::normalize_timestamp;

/// Child requests in flight at once for one fanned-out stream; the shared limiter paces them.
const CHILD_CONCURRENCY: usize = 4;

/// One unit of work for the writer.
pub struct Chunk {
    /// The records, once parsed: read them through [`Chunk::records`].
    records: Vec<Map<String, Value>>,
    /// A list page's records still as the API sent them, parsed when first asked for.
    unparsed: Option<Unparsed>,
    /// The newest cursor value this chunk covers, once worked out: read it through
    /// [`Chunk::newest`].
    newest: Option<Option<String>>,
    /// For children: the parents whose rows these records replace as a whole.
    pub replace_parents: Option<Vec<Value>>,
    /// Where a resumed full refresh continues after this chunk (`None`: cannot resume mid-way).
    pub next: Option<PagePosition>,
    pub requests: u64,
    pub tokens: u64,
    /// The list moved under an offset walk by more than its overlap before this page: records
    /// may have been skipped, so the walk proves neither completeness nor a bookmark.
    pub shifted: bool,
}

/// A page's records kept as raw JSON. Pages read ahead wait in this form: a parsed record
/// (a `String` per key, a B-tree node per few of them) takes several times the memory of its
/// text, and every stream holds pages waiting for its walk.
struct Unparsed {
    def: &'static StreamDef,
    items: Vec<Box<serde_json::value::RawValue>>,
    unwrap: Option<&'static str>,
    keep_wrapper: bool,
}

impl Chunk {
    /// A chunk of parsed records that is not a page of a list.
    fn of(records: Vec<Map<String, Value>>) -> Chunk {
        Chunk {
            records,
            unparsed: None,
            newest: None,
            replace_parents: None,
            next: None,
            requests: 0,
            tokens: 0,
            shifted: false,
        }
    }

    /// The fields children are read by (see [`parent_fields`]) of each record, for reading
    /// children while the records themselves stay raw until the walk takes them. Records
    /// already parsed (or that the view cannot read) are lent whole rather than copied.
    fn parents_view(&mut self, fields: &[&str]) -> Cow<'_, [Map<String, Value>]> {
        if let Some(unparsed) = self.unparsed.as_ref().filter(|u| u.unwrap.is_none()) {
            let view: Result<Vec<_>, _> = unparsed
                .items
                .iter()
                .map(|raw| {
                    let mut parser = serde_json::Deserializer::from_str(raw.get());
                    FieldsOf(fields).deserialize(&mut parser)
                })
                .collect();
            // Records that are not all objects: the full parse says which to skip.
            if let Ok(view) = view {
                return Cow::Owned(view);
            }
        }
        Cow::Borrowed(self.records())
    }

    /// Parses the records if they are still raw; the newest cursor comes with them.
    fn parse(&mut self) {
        if let Some(unparsed) = self.unparsed.take() {
            let records = parse_records(
                unparsed.def,
                &unparsed.items,
                unparsed.unwrap,
                unparsed.keep_wrapper,
            );
            self.records.extend(records);
            if self.newest.is_none() {
                self.newest = Some(newest_cursor(unparsed.def.cursor_field, &self.records));
            }
        }
    }

    /// The records still as the API sent them, handed to `decode`: when it takes them (returns
    /// `Some`, with the newest cursor value among them), they are gone from the chunk.
    pub fn decode_raw<T>(
        &mut self,
        decode: impl FnOnce(&[Box<serde_json::value::RawValue>]) -> Option<(T, Option<String>)>,
    ) -> Option<T> {
        let unparsed = self.unparsed.as_ref().filter(|u| u.unwrap.is_none())?;
        let (decoded, newest) = decode(&unparsed.items)?;
        self.newest.get_or_insert(newest);
        self.unparsed = None;
        Some(decoded)
    }

    /// The newest value of `field` among the records, as whole-second UTC RFC 3339. Records
    /// still raw are read for that one field rather than parsed whole.
    pub fn newest_of(&mut self, field: Option<&str>) -> Option<String> {
        let field = field?;
        if let Some(unparsed) = self.unparsed.as_ref().filter(|u| u.unwrap.is_none()) {
            let fields = [field];
            let view: Result<Vec<_>, _> = unparsed
                .items
                .iter()
                .map(|raw| {
                    let mut parser = serde_json::Deserializer::from_str(raw.get());
                    FieldsOf(&fields).deserialize(&mut parser)
                })
                .collect();
            // Records that are not all objects: the full parse says which to skip.
            if let Ok(view) = view {
                return newest_cursor(Some(field), &view);
            }
        }
        newest_cursor(Some(field), self.records())
    }

    pub fn records(&mut self) -> &mut Vec<Map<String, Value>> {
        self.parse();
        &mut self.records
    }

    pub fn into_records(mut self) -> Vec<Map<String, Value>> {
        self.parse();
        self.records
    }

    /// The newest cursor value this chunk covers.
    pub fn newest(&mut self) -> Option<&str> {
        if self.newest.is_none() {
            let cursor = self.unparsed.as_ref().and_then(|u| u.def.cursor_field);
            self.newest = Some(self.newest_of(cursor));
        }
        self.newest.as_ref().and_then(Option::as_deref)
    }
}

pub fn request(
    def: &StreamDef,
    path: String,
    query: Vec<(String, String)>,
    start: PagePosition,
) -> Request {
    let mut full_query: Vec<(String, String)> = def
        .fixed_query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    full_query.extend(query);
    Request {
        query: full_query,
        paging: match def.paging {
            PagingKind::None => Paging::None,
            PagingKind::Offset { limit } => Paging::Offset { limit },
            PagingKind::Cursor { limit } => Paging::Cursor { limit },
        },
        token_cost: def.token_cost,
        items_path: def.items_path.map(str::to_owned),
        start,
        ..Request::new(path)
    }
}

/// Parses one page of raw items into records: a wrapped record (`unwrap`) is unwrapped,
/// keeping the wrapper's other keys where the record lacks them when `keep_wrapper` says so;
/// a non-object becomes `{value}`.
pub fn parse_records(
    def: &StreamDef,
    items: &[Box<serde_json::value::RawValue>],
    unwrap: Option<&str>,
    keep_wrapper: bool,
) -> Vec<Map<String, Value>> {
    let mut records = Vec::with_capacity(items.len());
    for raw in items {
        let mut record = match serde_json::from_str::<Value>(raw.get()) {
            Ok(Value::Object(map)) => map,
            Ok(other) => Map::from_iter([("value".to_owned(), other)]),
            Err(error) => {
                tracing::warn!(stream = def.name, %error, "skipped a record that is not JSON");
                continue;
            }
        };
        if let Some(key) = unwrap
            && let Some(Value::Object(mut inner)) = record.remove(key)
        {
            if keep_wrapper {
                for (k, v) in record {
                    inner.entry(k).or_insert(v);
                }
            }
            record = inner;
        }
        records.push(record);
    }
    records
}

/// The newest cursor value among records, as whole-second UTC RFC 3339.
pub fn newest_cursor(cursor: Option<&str>, records: &[Map<String, Value>]) -> Option<String> {
    let cursor = cursor?;
    records
        .iter()
        .filter_map(|r| {
            r.get(cursor)
                .and_then(Value::as_str)
                .and_then(normalize_timestamp)
        })
        .max()
}

/// Pages of one list endpoint. It owns its page source (a shared handle), so a stream's pages can be
/// read ahead in a task of their own.
pub enum Pager {
    /// The page source's own paging (cursor, offset, a single response, or several lists in turn).
    Stream(futures::stream::BoxStream<'static, Result<Page, ClientError>>),
    /// v1 offset lists read by `update_time`: each page restarts the query at the newest
    /// `update_time` seen instead of advancing an offset, because records updated mid-sync
    /// move to the end of an `update_time`-sorted list and would shift unread ones past a
    /// plain offset. The boundary second is re-read and merged on the key; the offset is used
    /// only within a second that fills whole pages.
    Keyset {
        pages: Pages,
        def: &'static StreamDef,
        param: &'static str,
        since: Option<String>,
        skip: u64,
        done: bool,
    },
}

impl Pager {
    /// Pages of `def`'s own list, from `since` (server-side change filter, when it has one)
    /// or from `start`.
    pub fn list(
        pages: &Pages,
        def: &'static StreamDef,
        since: Option<String>,
        start: PagePosition,
    ) -> Pager {
        if let Fanout::PerValue { param, values } = def.fanout {
            let requests: Vec<Request> = values
                .iter()
                .map(|v| {
                    request(
                        def,
                        def.path.to_owned(),
                        vec![(param.to_owned(), (*v).to_owned())],
                        PagePosition::First,
                    )
                })
                .collect();
            let pages = pages.clone();
            return Pager::Stream(
                futures::stream::iter(requests)
                    .flat_map(move |r| pages.pages(r))
                    .boxed(),
            );
        }
        let Incremental::UpdatedSince { param, sort } = def.incremental else {
            return Pager::Stream(pages.pages(request(
                def,
                def.path.to_owned(),
                Vec::new(),
                start,
            )));
        };
        if matches!(def.paging, PagingKind::Offset { .. }) {
            return Pager::Keyset {
                pages: pages.clone(),
                def,
                param,
                since,
                skip: 0,
                done: false,
            };
        }
        let mut query: Vec<(String, String)> = since
            .into_iter()
            .map(|since| (param.to_owned(), since))
            .collect();
        query.extend(sort.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Pager::Stream(pages.pages(request(def, def.path.to_owned(), query, start)))
    }

    pub async fn next(&mut self) -> Option<Result<Page, ClientError>> {
        match self {
            Pager::Stream(stream) => stream.next().await,
            Pager::Keyset { done: true, .. } => None,
            Pager::Keyset {
                pages,
                def,
                param,
                since,
                skip,
                ..
            } => {
                let mut query: Vec<(String, String)> = since
                    .iter()
                    .map(|since| ((*param).to_owned(), since.clone()))
                    .collect();
                if let Incremental::UpdatedSince { sort, .. } = def.incremental {
                    query.extend(sort.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
                }
                let start = if *skip == 0 {
                    PagePosition::First
                } else {
                    PagePosition::Offset(*skip)
                };
                Some(
                    pages
                        .send(&request(def, def.path.to_owned(), query, start))
                        .await,
                )
            }
        }
    }

    /// Moves a keyset walk past the page just read.
    pub fn advance(&mut self, read: usize, newest: Option<&str>, more: bool) {
        if let Pager::Keyset {
            since, skip, done, ..
        } = self
        {
            match newest {
                _ if !more => *done = true,
                Some(newest) if since.as_deref().is_none_or(|s| newest > s) => {
                    *since = Some(newest.to_owned());
                    *skip = 0;
                }
                _ => *skip += read as u64,
            }
        }
    }
}

/// A stream's chunks.
pub enum Source {
    /// Records already fetched (field definitions read once at the start of the run).
    Prefetched(Option<Vec<Map<String, Value>>>),
    List {
        def: &'static StreamDef,
        pager: Pager,
        unwrap: Option<&'static str>,
        keep_wrapper: bool,
    },
}

impl Source {
    /// The source for `def`. `since` is where an incremental read starts; `start` resumes a
    /// full refresh mid-list.
    pub async fn open(
        pages: &Pages,
        def: &'static StreamDef,
        since: Option<String>,
        start: PagePosition,
    ) -> Result<Source, ClientError> {
        if let (Incremental::Recents { item }, Some(since)) = (def.incremental, &since) {
            if let Some(pager) = recents(pages, item, since).await? {
                return Ok(Source::List {
                    def,
                    pager,
                    unwrap: Some("data"),
                    keep_wrapper: false,
                });
            }
            tracing::info!(
                stream = def.name,
                bookmark = %since,
                "the bookmark is older than /v1/recents reaches back (one month): re-reading the stream in full"
            );
            return Ok(Source::List {
                def,
                pager: Pager::list(pages, def, None, PagePosition::First),
                unwrap: def.record_under,
                keep_wrapper: true,
            });
        }
        Ok(Source::List {
            def,
            pager: Pager::list(pages, def, since, start),
            unwrap: def.record_under,
            keep_wrapper: true,
        })
    }

    /// `def`'s whole list newest first, so an initial backfill makes recent data usable early.
    /// Only cursor lists sorted by their change time can be read this way.
    pub fn newest_first(pages: &Pages, def: &'static StreamDef, start: PagePosition) -> Source {
        let sort = match def.incremental {
            Incremental::UpdatedSince { sort, .. } => sort,
            _ => &[],
        };
        let query = sort
            .iter()
            .map(|(key, value)| {
                let value = if *value == "asc" { "desc" } else { value };
                ((*key).to_owned(), value.to_owned())
            })
            .collect();
        Source::List {
            def,
            pager: Pager::Stream(pages.pages(request(def, def.path.to_owned(), query, start))),
            unwrap: def.record_under,
            keep_wrapper: true,
        }
    }

    pub async fn next(&mut self) -> Option<Result<Chunk, ClientError>> {
        match self {
            Source::Prefetched(records) => records.take().map(|records| Ok(Chunk::of(records))),
            Source::List {
                def,
                pager,
                unwrap,
                keep_wrapper,
            } => {
                let page = match pager.next().await? {
                    Ok(page) => page,
                    Err(error) => return Some(Err(error)),
                };
                let read = page.items.len();
                let more = page.next.is_some();
                let mut chunk = Chunk {
                    records: Vec::new(),
                    unparsed: Some(Unparsed {
                        def,
                        items: page.items,
                        unwrap: *unwrap,
                        keep_wrapper: *keep_wrapper,
                    }),
                    newest: None,
                    replace_parents: None,
                    next: page.next,
                    requests: 1,
                    tokens: u64::from(def.token_cost),
                    shifted: page.shifted,
                };
                // A keyset walk names its next page by the newest record of this one.
                if let Pager::Keyset { .. } = pager {
                    pager.advance(read, chunk.newest(), more);
                }
                Some(Ok(chunk))
            }
        }
    }
}

/// Reads `/v1/recents` for one item type since the bookmark. `None` when Pipedrive no longer
/// reaches back that far: its `additional_data.since_timestamp` is later than asked.
async fn recents(
    pages: &Pages,
    item: &'static str,
    since: &str,
) -> Result<Option<Pager>, ClientError> {
    let Some(since_v1) = chrono::DateTime::parse_from_rfc3339(since).ok().map(|t| {
        t.with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    }) else {
        return Ok(None);
    };
    let recents_def: &'static StreamDef = &RECENTS;
    let first = request(
        recents_def,
        RECENTS.path.to_owned(),
        vec![
            ("since_timestamp".to_owned(), since_v1.clone()),
            ("items".to_owned(), item.to_owned()),
        ],
        PagePosition::First,
    );
    let mut first_pages = pages.pages(first);
    let Some(page) = first_pages.next().await else {
        return Ok(Some(Pager::Stream(futures::stream::empty().boxed())));
    };
    let page = page?;
    let answered_since = page
        .additional_data
        .as_ref()
        .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
        .and_then(|data| {
            data.get("since_timestamp")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    if answered_since.is_some_and(|answered| answered.as_str() > since_v1.as_str()) {
        return Ok(None);
    }
    Ok(Some(Pager::Stream(
        futures::stream::once(async move { Ok(page) })
            .chain(first_pages)
            .boxed(),
    )))
}

/// `/v1/recents`, paged like any v1 list.
static RECENTS: StreamDef = StreamDef {
    name: "recents",
    path: "/api/v1/recents",
    api: catalog::ApiVersion::V1,
    paging: PagingKind::Offset { limit: 500 },
    token_cost: 20,
    primary_key: &["id"],
    cursor_field: None,
    incremental: Incremental::None,
    fixed_query: &[],
    items_path: None,
    custom_fields: None,
    field_definitions: None,
    record_under: None,
    origin: catalog::Origin::Api,
    fanout: Fanout::None,
    parent_query: &[],
    parent_column: None,
    replace_children: false,
    deletes: None,
    change_log: None,
    changed_at: None,
    gated: false,
    opt_in: false,
    webhook: None,
};

/// Rows made of each selected parent's `field` array: `{<parent>_id, position, ...element}`
/// (an element that is not an object lands in `value`).
fn nested(def: &StreamDef, key: &str, field: &str, parents: &[&Map<String, Value>]) -> Chunk {
    let column = def.parent_column.unwrap_or("parent_id");
    let mut records = Vec::new();
    for parent in parents {
        let Some(Value::Array(elements)) = parent.get(field) else {
            continue;
        };
        for (position, element) in elements.iter().enumerate() {
            let mut record = match element {
                Value::Object(map) => map.clone(),
                other => Map::from_iter([("value".to_owned(), other.clone())]),
            };
            record.insert(column.to_owned(), parent[key].clone());
            record.insert("position".to_owned(), Value::from(position));
            records.push(record);
        }
    }
    Chunk::of(records)
}

/// The child records of one page of parents, with the parent's id added where records lack
/// it; `replace_parents` names the parents whose children they replace.
pub async fn children(
    pages: &Pages,
    def: &'static StreamDef,
    parent: &StreamDef,
    parents: &[&Map<String, Value>],
) -> Result<Chunk, ClientError> {
    let key = parent.primary_key[0];
    let ids: Vec<Value> = parents.iter().filter_map(|p| p.get(key).cloned()).collect();
    let mut chunk = match def.fanout {
        Fanout::Nested { field, .. } => nested(def, key, field, parents),
        _ => requested(pages, def, key, parents).await?,
    };
    chunk.replace_parents = def.replace_children.then_some(ids);
    Ok(chunk)
}

/// One parent (when the request was for a single one) and the pages of its children.
type ParentPages = (Option<Value>, Vec<Page>);

/// The value at a dotted path of a record, as query text.
fn path_text(record: &Map<String, Value>, path: &str) -> Option<String> {
    let mut parts = path.split('.');
    let mut value = record.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Children read by requests. A parent that vanished meanwhile (404/410) has none.
async fn requested(
    pages: &Pages,
    def: &'static StreamDef,
    key: &str,
    parents: &[&Map<String, Value>],
) -> Result<Chunk, ClientError> {
    let ids: Vec<Value> = parents.iter().filter_map(|p| p.get(key).cloned()).collect();
    let id_text = |id: &Value| match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let requests: Vec<(Option<Value>, Request)> = match def.fanout {
        Fanout::IdsParam { param, batch, .. } => ids
            .chunks(batch.max(1))
            .map(|chunk| {
                let csv = chunk.iter().map(id_text).collect::<Vec<_>>().join(",");
                (
                    None,
                    request(
                        def,
                        def.path.to_owned(),
                        vec![(param.to_owned(), csv)],
                        PagePosition::First,
                    ),
                )
            })
            .collect(),
        Fanout::PerParent { .. } => parents
            .iter()
            .filter_map(|parent| {
                let id = parent.get(key)?;
                let path = def.path.replace("{id}", &id_text(id));
                let query = def
                    .parent_query
                    .iter()
                    .filter_map(|(param, field)| {
                        Some(((*param).to_owned(), path_text(parent, field)?))
                    })
                    .collect();
                Some((
                    Some(id.clone()),
                    request(def, path, query, PagePosition::First),
                ))
            })
            .collect(),
        Fanout::None | Fanout::PerValue { .. } | Fanout::Nested { .. } => Vec::new(),
    };
    let results: Vec<Result<ParentPages, ClientError>> = futures::stream::iter(requests)
        .map(|(parent, request)| async move {
            match pages.pages(request).try_collect::<Vec<Page>>().await {
                Ok(pages) => Ok((parent, pages)),
                Err(ClientError::NotFound { .. } | ClientError::Gone { .. }) => {
                    Ok((parent, Vec::new()))
                }
                Err(error) => Err(error),
            }
        })
        .buffered(CHILD_CONCURRENCY)
        .collect()
        .await;
    let mut chunk = Chunk::of(Vec::new());
    // Records that need no parent added stay as the API sent them, for the walk to decode.
    let mut raw = Vec::new();
    for result in results {
        let (parent, pages) = result?;
        // A request that ended in an empty page still cost one request.
        let sent = pages.len().max(1) as u64;
        chunk.requests += sent;
        chunk.tokens += sent * u64::from(def.token_cost);
        for page in pages {
            chunk.shifted |= page.shifted;
            let (Some(column), Some(parent)) = (def.parent_column, &parent) else {
                raw.extend(page.items);
                continue;
            };
            let mut records = parse_records(def, &page.items, def.record_under, true);
            for record in &mut records {
                record
                    .entry(column.to_owned())
                    .or_insert_with(|| parent.clone());
            }
            chunk.records.extend(records);
        }
    }
    if !raw.is_empty() {
        chunk.unparsed = Some(Unparsed {
            def,
            items: raw,
            unwrap: def.record_under,
            keep_wrapper: true,
        });
    }
    Ok(chunk)
}

/// Whether a member reads a record of its root: all of them but those whose cursor is older
/// than `skip_before` (an earlier run loaded them).
pub fn is_selected(
    record: &Map<String, Value>,
    cursor: Option<&str>,
    skip_before: Option<&str>,
) -> bool {
    match (skip_before, cursor) {
        (Some(skip), Some(cursor)) => record
            .get(cursor)
            .and_then(Value::as_str)
            .and_then(normalize_timestamp)
            .is_none_or(|t| t.as_str() >= skip),
        _ => true,
    }
}

/// The parents of a chunk a member reads (see [`is_selected`]).
pub fn selected_parents<'r>(
    records: &'r [Map<String, Value>],
    cursor: Option<&str>,
    skip_before: Option<&str>,
) -> Vec<&'r Map<String, Value>> {
    records
        .iter()
        .filter(|r| is_selected(r, cursor, skip_before))
        .collect()
}

/// A member of a walk as the read-ahead task sees it.
pub struct ChildRead {
    pub def: &'static StreamDef,
    pub skip_before: Option<String>,
}

/// One chunk of a root list with the children its fanned-out members read for it.
pub struct PageRead {
    pub chunk: Chunk,
    /// One entry per member, in the order given to [`ReadAhead::start`]; `None` for the root
    /// itself, whose rows are the chunk's.
    pub children: Vec<Option<Result<Chunk, ClientError>>>,
}

/// Chunks read ahead of the writes that consume them, in a task of their own: the next page
/// (and its children, every member's at once) is requested while this one is transformed and
/// committed, so a stream keeps requests in flight instead of idling on its own writes.
/// Dropping it stops the task; pages read but not consumed are read again by the next run.
pub struct ReadAhead {
    /// `None` marks the end of the list, so a task that died (a panic) is not taken for one.
    pages: tokio::sync::mpsc::Receiver<Option<Result<PageRead, ClientError>>>,
    task: tokio::task::JoinHandle<()>,
    ended: bool,
}

/// Chunks read and waiting for the walk, beyond those being read.
const PAGES_AHEAD: usize = 1;
/// Chunks of a root with children being read at once: the next page is requested, and its
/// children too, while the previous page's children are still in flight, so a unit whose
/// requests are mostly children (deals with their products and installments) keeps the burst
/// window busy on its own once the other streams are done. A plain list reads one page at a
/// time (its next page is named by the last), so more would only hold memory.
const PAGES_IN_FLIGHT_WITH_CHILDREN: usize = 2;

impl ReadAhead {
    pub fn start(
        source_pages: &Pages,
        root: &'static StreamDef,
        source: Source,
        members: Vec<Option<ChildRead>>,
    ) -> ReadAhead {
        let (tx, read) = tokio::sync::mpsc::channel(PAGES_AHEAD);
        let pages = source_pages.clone();
        let in_flight = if members.iter().any(Option::is_some) {
            PAGES_IN_FLIGHT_WITH_CHILDREN
        } else {
            1
        };
        let task = tokio::spawn(async move {
            // The list itself is read in order (each page names the next); nothing is read
            // after a failed page.
            let chunks = futures::stream::unfold(Some(source), |source| async move {
                let mut source = source?;
                let chunk = source.next().await?;
                let more = chunk.is_ok().then_some(source);
                Some((chunk, more))
            });
            let reads = chunks
                .map(|chunk| {
                    let (pages, members) = (&pages, &members);
                    async move {
                        match chunk {
                            Ok(chunk) => Ok(read_children(pages, root, members, chunk).await),
                            Err(error) => Err(error),
                        }
                    }
                })
                .buffered(in_flight);
            futures::pin_mut!(reads);
            while let Some(read) = reads.next().await {
                let failed = read.is_err();
                if tx.send(Some(read)).await.is_err() || failed {
                    return;
                }
            }
            let _ = tx.send(None).await;
        });
        ReadAhead {
            pages: read,
            task,
            ended: false,
        }
    }

    /// The next chunk; `None` once the list has ended, or once the reading task stopped
    /// without reaching the end (see [`ReadAhead::reached_the_end`]).
    pub async fn next(&mut self) -> Option<Result<PageRead, ClientError>> {
        match self.pages.recv().await {
            Some(Some(read)) => Some(read),
            Some(None) => {
                self.ended = true;
                None
            }
            None => None,
        }
    }

    /// Whether the list was read to its end, rather than the reading task dying before it:
    /// only then may the stream's state say it is complete.
    pub fn reached_the_end(&self) -> bool {
        self.ended
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The top-level fields of a root's records its members' children are read by: the key, the
/// change time (which parents a member still needs), the fields per-parent requests name and the
/// nested arrays children are made of.
fn parent_fields(root: &StreamDef, members: &[Option<ChildRead>]) -> Vec<&'static str> {
    let mut fields: Vec<&'static str> = root.primary_key.to_vec();
    fields.extend(root.version_field());
    for member in members.iter().flatten() {
        let def = member.def;
        fields.extend(
            def.parent_query
                .iter()
                .filter_map(|(_, path)| path.split('.').next()),
        );
        if let Fanout::Nested { field, .. } = def.fanout {
            fields.push(field);
        }
    }
    fields.sort_unstable();
    fields.dedup();
    fields
}

/// Deserializes a JSON object keeping only the named keys; the others are skipped unparsed.
struct FieldsOf<'a>(&'a [&'a str]);

impl<'de> serde::de::DeserializeSeed<'de> for FieldsOf<'_> {
    type Value = Map<String, Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for FieldsOf<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a record object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut kept = Map::new();
        while let Some(key) = map.next_key_seed(WantedKey(self.0))? {
            match key {
                Some(key) => {
                    kept.insert(key, map.next_value()?);
                }
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(kept)
    }
}

/// A key, copied only when it is one of the wanted ones.
struct WantedKey<'a>(&'a [&'a str]);

impl<'de> serde::de::DeserializeSeed<'de> for WantedKey<'_> {
    type Value = Option<String>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for WantedKey<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.contains(&key).then(|| key.to_owned()))
    }
}

/// Every fanned-out member's children of one chunk, requested concurrently.
async fn read_children(
    pages: &Pages,
    root: &'static StreamDef,
    members: &[Option<ChildRead>],
    mut chunk: Chunk,
) -> PageRead {
    let children = if members.iter().any(Option::is_some) {
        // Children are read from the few parent fields they need; the records stay raw.
        let view = chunk.parents_view(&parent_fields(root, members));
        let reads = members.iter().map(|member| {
            let view = &view;
            async move {
                let member = member.as_ref()?;
                let parents =
                    selected_parents(view, root.version_field(), member.skip_before.as_deref());
                Some(children(pages, member.def, root, &parents).await)
            }
        });
        futures::future::join_all(reads).await
    } else {
        members.iter().map(|_| None).collect()
    };
    PageRead { chunk, children }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw_page(def: &'static StreamDef, items: &[&str]) -> Chunk {
        Chunk {
            unparsed: Some(Unparsed {
                def,
                items: items
                    .iter()
                    .map(|s| serde_json::value::RawValue::from_string((*s).to_owned()).unwrap())
                    .collect(),
                unwrap: None,
                keep_wrapper: true,
            }),
            ..Chunk::of(Vec::new())
        }
    }

    fn member(name: &str) -> Option<ChildRead> {
        Some(ChildRead {
            def: catalog::find(name).unwrap(),
            skip_before: None,
        })
    }

    #[test]
    fn children_read_the_parent_fields_they_need_and_the_records_stay_whole() {
        let persons = catalog::find("persons").unwrap();
        let members = [None, member("person_emails")];
        let fields = parent_fields(persons, &members);
        assert_eq!(fields, ["emails", "id", "update_time"]);
        let mut chunk = raw_page(
            persons,
            &[
                r#"{"id":1,"name":"A \"quoted\" name","emails":[{"value":"a@x"}],"update_time":"2024-01-02T00:00:00Z","custom_fields":{"k":{"value":1}}}"#,
                r#"{"name":"no id","id":2,"update_time":"2024-01-01T00:00:00Z","emails":null,"\u0069d":3}"#,
            ],
        );
        let view = chunk.parents_view(&fields);
        assert_eq!(
            Value::from(
                view.into_owned()
                    .into_iter()
                    .map(Value::Object)
                    .collect::<Vec<_>>()
            ),
            json!([
                {"id": 1, "emails": [{"value": "a@x"}], "update_time": "2024-01-02T00:00:00Z"},
                // An escaped key is still the key; the last of two equal keys wins, as when
                // the whole record is parsed.
                {"id": 3, "emails": null, "update_time": "2024-01-01T00:00:00Z"},
            ])
        );
        assert!(
            chunk.unparsed.is_some(),
            "the records were parsed for the view"
        );
        assert_eq!(chunk.newest(), Some("2024-01-02T00:00:00Z"));
        let records = chunk.into_records();
        assert_eq!(records[0]["name"], json!("A \"quoted\" name"));
        assert_eq!(records[1]["id"], json!(3));
    }

    #[test]
    fn a_page_with_records_that_are_not_objects_is_viewed_through_the_full_parse() {
        let deals = catalog::find("deals").unwrap();
        let fields = parent_fields(deals, &[None, member("deal_products")]);
        let mut chunk = raw_page(deals, &[r#"{"id":1,"title":"t"}"#, "7"]);
        let view = chunk.parents_view(&fields);
        assert_eq!(view.len(), 2);
        assert_eq!(view[0]["title"], json!("t"));
        assert_eq!(view[1]["value"], json!(7));
    }
}
