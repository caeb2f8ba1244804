//! What the next run will cost, before paying for it (`pipedrive-sync plan`).
//!
//! Pipedrive gives no totals, so lists are probed: a list that fits one page is counted
//! exactly; a longer full read is extrapolated from the density of ids on its first page
//! (sorted by id) up to the largest id; changes since a bookmark are read as the run reads them
//! for a few pages, and extrapolated over time beyond. Streams read in full on every run cost
//! what the last run that completed them cost, without a probe; fanned-out streams follow from
//! their parent's estimate.
//!
//! A run stopped at the budget's reserve estimates what it has left the same way, more
//! cheaply (see [`Purpose::RestOfRun`]), with tokens it kept above the reserve for it.

use std::collections::HashMap;

use chrono::Utc;
use pipedrive_client::{
    BudgetSnapshot, Client, ClientError, ErrorClass, PagePosition, Paging, Request,
};
use serde_json::Value;

use super::plan::{StreamPlan, SyncPlan, Unit, definitions_wanted, looked_back, units};
use super::walk::reconciliation_due;
use crate::catalog::{self, ApiVersion, Fanout, Incremental, Origin, PagingKind, StreamDef};
use crate::pages;
use crate::runs::{RunRecord, StreamRun};
use crate::source::{self, Source};
use crate::state::{StreamState, SyncState};

/// How a stream's figure was reached, so a reader knows how far to trust it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basis {
    /// Every record fits the probed page(s).
    Counted,
    /// Extrapolated from the ids on a first page sorted by id and the largest id.
    IdDensity,
    /// Extrapolated from how much of the time since the bookmark the first page covers.
    ChangeDensity,
    /// One request per parent (or per batch of parents) of the parent's estimate.
    Parents,
    /// One request per parent changed since the child's bookmark, counted by listing them.
    ChangedParents,
    /// Read with the run's field definitions, or derived without a request.
    Free,
    /// A list that comes in one response, not probed: its records are not counted.
    OneResponse,
    /// What the last run that completed the stream read: it is read in full every run.
    LastRun,
    /// The list is longer than a page and cannot be sorted by id: at least this much.
    AtLeast,
    /// Read in full more recently than its `refresh_every`: not read.
    Fresh,
}

impl Basis {
    pub fn describe(self) -> &'static str {
        match self {
            Basis::Counted => "counted",
            Basis::IdDensity => "id density",
            Basis::ChangeDensity => "changes since bookmark",
            Basis::Parents => "from parents",
            Basis::ChangedParents => "changed parents",
            Basis::Free => "no request",
            Basis::OneResponse => "one response",
            Basis::LastRun => "as the last run",
            Basis::AtLeast => "at least",
            Basis::Fresh => "refresh_every: not due",
        }
    }
}

#[derive(Clone, Debug)]
pub struct StreamEstimate {
    pub stream: &'static str,
    /// Records the run will read (for a fanned-out stream: its parents'); 0 where the basis
    /// counts none (`Free`, `OneResponse`).
    pub records: u64,
    pub requests: u64,
    pub tokens: u64,
    /// Whether the run reads the stream in full (first run, full refresh, reconciliation).
    pub full: bool,
    pub basis: Basis,
}

#[derive(Clone, Debug)]
pub struct Estimate {
    pub streams: Vec<StreamEstimate>,
    /// The identity check and the field definitions every run reads first.
    pub overhead_requests: u64,
    pub overhead_tokens: u64,
    /// What the probes behind this estimate cost.
    pub probe_requests: u64,
    pub probe_tokens: u64,
    pub budget: BudgetSnapshot,
}

impl Estimate {
    pub fn total_requests(&self) -> u64 {
        self.overhead_requests + self.streams.iter().map(|s| s.requests).sum::<u64>()
    }

    pub fn total_tokens(&self) -> u64 {
        self.overhead_tokens + self.streams.iter().map(|s| s.tokens).sum::<u64>()
    }

    /// Days the run takes at the budget runs may spend (the daily budget less the reserve),
    /// today included: `None` when the server did not say its budget.
    pub fn days(&self) -> Option<u64> {
        Some(1 + self.days_after_today()?)
    }

    /// Days after today the work still needs, once what is left of today's budget above the
    /// reserve is spent: 0 when it fits today.
    fn days_after_today(&self) -> Option<u64> {
        let limit = self.budget.daily_limit?;
        let usable_per_day = self.usable_per_day()?;
        let reserve = limit - usable_per_day;
        let usable_today = self
            .budget
            .daily_remaining
            .unwrap_or(limit)
            .saturating_sub(reserve);
        let total = self.total_tokens();
        Some(
            total
                .saturating_sub(usable_today)
                .div_ceil(usable_per_day.max(1)),
        )
    }

    /// Tokens a day's runs may spend: the daily budget less the reserve.
    pub fn usable_per_day(&self) -> Option<u64> {
        let limit = self.budget.daily_limit?;
        Some(limit * u64::from(100 - self.budget.reserve_percent.min(99)) / 100)
    }
}

/// What an estimate is for, which decides how much it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// `plan`: the next run, read closely (a few pages of changes, the parents whose children
    /// a run reads again, the listings that find deletes).
    NextRun,
    /// What a run stopped at the reserve leaves for the next ones, paid from the tokens it
    /// held above the reserve (at most [`rest_probe_cost`]): a page of changes or a full
    /// read's probe per list (with the listings that find deletes where they are due), and
    /// children from their parents' figures.
    RestOfRun,
}

impl Purpose {
    /// Pages of changes read before extrapolating.
    fn change_pages(self) -> usize {
        match self {
            Purpose::NextRun => 4,
            Purpose::RestOfRun => 1,
        }
    }
}

/// The most [`Purpose::RestOfRun`] can spend probing a unit: a full read of its root, and of
/// each list a member's deletes are found by (where it reconciles them at all). A root whose records come with the field
/// definitions costs nothing.
pub(crate) fn rest_probe_cost(unit: &Unit, prefetched: bool) -> u64 {
    let root = unit.root;
    let walk = if prefetched || root.origin == Origin::CustomFieldColumns {
        0
    } else {
        full_read_probe_cost(root)
    };
    let listings: u64 = unit
        .members
        .iter()
        .filter(|member| member.reads_changes() && member.reconcile_every.is_some())
        .filter_map(|member| member.def.deletes.map(|deletes| (member.def, deletes)))
        .flat_map(|(def, deletes)| {
            std::iter::once(def).chain(
                deletes
                    .also_present_in
                    .iter()
                    .filter_map(|name| catalog::find(name)),
            )
        })
        .map(full_read_probe_cost)
        .sum();
    walk + listings
}

/// What [`full_read`] can cost: the first page sorted by id, the largest id, and the unsorted
/// page an endpoint that refuses to sort is read by, for each value a per-value list is read
/// with.
fn full_read_probe_cost(def: &StreamDef) -> u64 {
    let values = match def.fanout {
        Fanout::PerValue { values, .. } => values.len() as u64,
        _ => 1,
    };
    let per_value = match def.paging {
        PagingKind::None => 1,
        _ if def.primary_key == ["id"] => 3,
        _ => 2,
    };
    values * per_value * u64::from(def.token_cost)
}

/// What one read of a list costs, and how many records it brings.
#[derive(Clone, Copy, Debug)]
struct Read {
    records: u64,
    requests: u64,
    tokens: u64,
    basis: Basis,
}

/// What the last run that completed each stream read of it, for the streams every run reads
/// in full (Pipedrive offers no change filter for them): their next read costs about the same,
/// and is known without a probe. A stream reloaded by choice (`--full-refresh`) is not among
/// them: its last run may have read only changes.
pub fn last_full_reads(plan: &SyncPlan, runs: &[RunRecord]) -> HashMap<&'static str, StreamRun> {
    let mut last = HashMap::new();
    for stream in &plan.streams {
        if stream.def.supports_incremental() {
            continue;
        }
        let run = runs
            .iter()
            .rev()
            .filter(|run| run.company == plan.company)
            .find_map(|run| {
                run.streams
                    .iter()
                    .find(|s| s.stream == stream.def.name && s.outcome == "complete")
            });
        if let Some(run) = run {
            last.insert(stream.def.name, run.clone());
        }
    }
    last
}

/// Estimates the next run of `plan` against a target whose state is `states` and whose
/// streams read in full last cost `last` (see [`last_full_reads`]).
pub async fn estimate(
    client: &Client,
    plan: &SyncPlan,
    states: &SyncState,
    last: &HashMap<&'static str, StreamRun>,
    purpose: Purpose,
) -> Result<Estimate, ClientError> {
    let before = client.stats();
    let definitions = definitions_wanted(plan);
    // The identity check (2 tokens), then one page of each field definition list.
    let overhead_requests = 1 + definitions.len() as u64;
    let overhead_tokens = 2 + definitions
        .iter()
        .map(|def| u64::from(def.token_cost))
        .sum::<u64>();
    let mut streams = Vec::new();
    let no_state = StreamState::default();
    for unit in units(plan) {
        let root = unit.root;
        let bookmarks: Option<Vec<&str>> = unit
            .members
            .iter()
            .map(|m| {
                states
                    .get(m.def.name)
                    .and_then(|s| s.bookmark.as_deref())
                    .filter(|_| m.reads_changes())
            })
            .collect();
        let since = bookmarks
            .and_then(|b| b.into_iter().min())
            .map(|b| looked_back(b, plan.lookback))
            .or_else(|| {
                plan.start_date
                    .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            });
        let prefetched = definitions.iter().any(|d| d.name == root.name)
            || root.origin == Origin::CustomFieldColumns;
        // Known without a probe: a stream whose last read still stands costs nothing (one
        // the run has for free is read all the same), one read in full every run what it
        // cost last time.
        let from_last_run = |member: &StreamPlan| {
            if !prefetched
                && member
                    .fresh(states.get(member.def.name), Utc::now())
                    .is_some()
            {
                return Some(Read {
                    records: 0,
                    requests: 0,
                    tokens: 0,
                    basis: Basis::Fresh,
                });
            }
            let last = last.get(member.def.name)?;
            Some(Read {
                records: last.records,
                requests: last.requests,
                tokens: last.tokens,
                basis: Basis::LastRun,
            })
        };
        let walked = unit.members.iter().any(|m| from_last_run(m).is_none());
        let walk = if prefetched || !walked {
            Read {
                records: 0,
                requests: 0,
                tokens: 0,
                basis: Basis::Free,
            }
        } else if since.is_none() && root.paging == PagingKind::None && !counts_parents(&unit) {
            // One response whatever it holds, and no child counts on its records: no probe.
            let requests = match root.fanout {
                Fanout::PerValue { values, .. } => values.len() as u64,
                _ => 1,
            };
            Read {
                records: 0,
                requests,
                tokens: requests * u64::from(root.token_cost),
                basis: Basis::OneResponse,
            }
        } else {
            match &since {
                Some(since) => changes(client, root, since, purpose.change_pages()).await?,
                None => full_read(client, root).await?,
            }
        };
        // A root no member is walked all the same; its first member pays for the walk.
        let mut unpaid_walk = unit.members.iter().all(|m| m.def.name != root.name);
        for member in &unit.members {
            let def = member.def;
            let changed_since = parents_changed_since(member, root, states, plan.lookback)
                .filter(|_| purpose == Purpose::NextRun);
            let mut read = if let Some(read) = from_last_run(member) {
                read
            } else if def.name == root.name {
                walk
            } else if let Some(since) = &changed_since {
                let changed = changed_records(client, root, since).await?;
                Read {
                    basis: Basis::ChangedParents,
                    ..children(
                        def,
                        Read {
                            records: changed,
                            ..walk
                        },
                    )
                }
            } else {
                children(def, walk)
            };
            if std::mem::take(&mut unpaid_walk) {
                read.requests += walk.requests;
                read.tokens += walk.tokens;
            }
            let full = (since.is_none() && changed_since.is_none()) || !member.reads_changes();
            // An incremental stream's deletes are found by listing every id now and then.
            if !full
                && let Some(deletes) = def.deletes
                && reconciliation_due(member, states.get(def.name).unwrap_or(&no_state))
            {
                for list in std::iter::once(def).chain(
                    deletes
                        .also_present_in
                        .iter()
                        .filter_map(|name| catalog::find(name)),
                ) {
                    let listing = full_read(client, list).await?;
                    read.requests += listing.requests;
                    read.tokens += listing.tokens;
                }
            }
            // History between syncs: one change-log request per re-read record.
            if member.history
                && !full
                && let Some(log) = def.change_log
                && !plan.streams.iter().any(|s| s.def.name == log.stream)
            {
                read.requests += walk.records;
                read.tokens += walk.records * u64::from(log.between_syncs.def.token_cost);
            }
            streams.push(StreamEstimate {
                stream: def.name,
                records: read.records,
                requests: read.requests,
                tokens: read.tokens,
                full,
                basis: read.basis,
            });
        }
    }
    streams.sort_by_key(|s| catalog::CATALOG.iter().position(|d| d.name == s.stream));
    let after = client.stats();
    Ok(Estimate {
        streams,
        overhead_requests,
        overhead_tokens,
        probe_requests: after.requests - before.requests,
        probe_tokens: after.tokens_spent - before.tokens_spent,
        budget: client.budget(),
    })
}

/// Where a child that goes by its parent's changes starts re-reading: a child read once per
/// parent, of a list Pipedrive offers only in full but whose records carry a change time, with
/// a bookmark. The run re-reads the children of the parents changed since (see the walk's
/// `skip_before`), so its cost is one request per such parent, not per parent.
fn parents_changed_since(
    member: &StreamPlan,
    root: &StreamDef,
    states: &SyncState,
    lookback: std::time::Duration,
) -> Option<String> {
    let def = member.def;
    let by_parent = def.name != root.name
        && member.reads_changes()
        && matches!(def.fanout, Fanout::PerParent { .. })
        && matches!(root.incremental, Incremental::None)
        && root.version_field().is_some();
    let bookmark = states.get(def.name)?.bookmark.as_deref()?;
    by_parent.then(|| looked_back(bookmark, lookback))
}

/// How many records of `root`, listed in full as a run lists it, changed at or after `since`.
async fn changed_records(
    client: &Client,
    root: &'static StreamDef,
    since: &str,
) -> Result<u64, ClientError> {
    let mut source =
        Source::open(&pages::of_client(client), root, None, PagePosition::First).await?;
    let mut changed = 0;
    while let Some(chunk) = source.next().await {
        let mut chunk = chunk?;
        changed += source::selected_parents(chunk.records(), root.version_field(), Some(since))
            .len() as u64;
    }
    Ok(changed)
}

/// Whether a member of the unit makes requests per record of the root.
fn counts_parents(unit: &Unit) -> bool {
    unit.members.iter().any(|m| {
        matches!(
            m.def.fanout,
            Fanout::IdsParam { .. } | Fanout::PerParent { .. }
        )
    })
}

/// A fanned-out stream's requests, from its parent's read.
fn children(def: &StreamDef, parents: Read) -> Read {
    let requests = match def.fanout {
        Fanout::IdsParam { batch, .. } => parents.records.div_ceil(batch as u64),
        Fanout::PerParent { .. } => parents.records,
        Fanout::Nested { .. } | Fanout::None | Fanout::PerValue { .. } => 0,
    };
    Read {
        records: parents.records,
        requests,
        tokens: requests * u64::from(def.token_cost),
        basis: if requests == 0 {
            Basis::Free
        } else {
            Basis::Parents
        },
    }
}

fn page_limit(def: &StreamDef) -> Option<u64> {
    match def.paging {
        PagingKind::None => None,
        PagingKind::Offset { limit } | PagingKind::Cursor { limit } => Some(u64::from(limit)),
    }
}

/// Requests to read `records` of `def` in pages.
fn pages(def: &StreamDef, records: u64) -> u64 {
    match page_limit(def) {
        None => 1,
        Some(limit) => records.div_ceil(limit).max(1),
    }
}

fn read_of(def: &StreamDef, records: u64, basis: Basis) -> Read {
    let requests = pages(def, records);
    Read {
        records,
        requests,
        tokens: requests * u64::from(def.token_cost),
        basis,
    }
}

/// The changes since `since`: the run's own first pages, extrapolated over time if more
/// follow.
async fn changes(
    client: &Client,
    def: &'static StreamDef,
    since: &str,
    pages_read: usize,
) -> Result<Read, ClientError> {
    if matches!(def.incremental, Incremental::None) {
        return full_read(client, def).await;
    }
    let pages = pages::of_client(client);
    let mut source = Source::open(&pages, def, Some(since.to_owned()), PagePosition::First).await?;
    // Read as the run will, up to a few pages: a run after a quiet day needs no more, and its
    // changes are then counted, not guessed.
    let (mut records, mut requests, mut tokens) = (0, 0, 0);
    let mut reached: Option<String> = None;
    for _ in 0..pages_read {
        let Some(chunk) = source.next().await else {
            return Ok(Read {
                records,
                requests,
                tokens,
                basis: Basis::Counted,
            });
        };
        let mut chunk = chunk?;
        requests += chunk.requests;
        tokens += chunk.tokens;
        records += chunk.records().len() as u64;
        if let Some(newest) = chunk.newest() {
            reached = reached.max(Some(newest.to_owned()));
        }
        if chunk.next.is_none() {
            return Ok(Read {
                records,
                requests,
                tokens,
                basis: Basis::Counted,
            });
        }
    }
    // More pages follow: as many changes again for each stretch of time the pages read cover.
    let from = crate::schema::parse_timestamp(since);
    let reached = reached.as_deref().and_then(crate::schema::parse_timestamp);
    let records = match (from, reached) {
        (Some(from), Some(reached)) if reached > from => {
            let covered = (reached - from).num_seconds().max(1) as f64;
            let wanted = (Utc::now() - from).num_seconds().max(1) as f64;
            ((records as f64 * wanted / covered).ceil() as u64).max(records + 1)
        }
        _ => records + 1,
    };
    Ok(read_of(def, records, Basis::ChangeDensity))
}

/// A read of the whole list: each value's first page sorted by id, and where more pages
/// follow, the largest id.
async fn full_read(client: &Client, def: &'static StreamDef) -> Result<Read, ClientError> {
    let values: Vec<Vec<(String, String)>> = match def.fanout {
        Fanout::PerValue { param, values } => values
            .iter()
            .map(|v| vec![(param.to_owned(), (*v).to_owned())])
            .collect(),
        _ => vec![Vec::new()],
    };
    let mut total = Read {
        records: 0,
        requests: 0,
        tokens: 0,
        basis: Basis::Counted,
    };
    for query in values {
        let read = list_count(client, def, query).await?;
        total.records += read.records;
        total.requests += read.requests;
        total.tokens += read.tokens;
        if read.basis != Basis::Counted {
            total.basis = read.basis;
        }
    }
    Ok(total)
}

async fn list_count(
    client: &Client,
    def: &'static StreamDef,
    query: Vec<(String, String)>,
) -> Result<Read, ClientError> {
    let get = |extra: &[(&str, &str)], limit: Option<u32>| {
        let mut request = source::request(
            def,
            def.path.to_owned(),
            query
                .iter()
                .cloned()
                .chain(
                    extra
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
                )
                .collect(),
            PagePosition::First,
        );
        if let Some(limit) = limit {
            request.paging = match request.paging {
                Paging::Offset { .. } => Paging::Offset { limit },
                Paging::Cursor { .. } => Paging::Cursor { limit },
                Paging::None => Paging::None,
            };
        }
        async move { first_page(client, request).await }
    };
    let (ascending, descending): (Query, Query) = match def.api {
        ApiVersion::V2 => (
            &[("sort_by", "id"), ("sort_direction", "asc")],
            &[("sort_by", "id"), ("sort_direction", "desc")],
        ),
        ApiVersion::V1 => (&[("sort", "id ASC")], &[("sort", "id DESC")]),
    };
    let sortable = page_limit(def).is_some() && def.primary_key == ["id"];
    let (items, more) = if sortable {
        match get(ascending, None).await {
            Ok(page) => page,
            // An endpoint that does not sort by id: its plain first page still counts.
            Err(error) if error.exit_class() == ErrorClass::Permanent => get(&[], None).await?,
            Err(error) => return Err(error),
        }
    } else {
        get(&[], None).await?
    };
    let records = items.len() as u64;
    if !more {
        return Ok(Read {
            records,
            requests: 1,
            tokens: u64::from(def.token_cost),
            basis: Basis::Counted,
        });
    }
    let ids: Vec<u64> = items.iter().filter_map(id_of).collect();
    let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
        return Ok(read_of(def, records + 1, Basis::AtLeast));
    };
    let largest = match get(descending, Some(1)).await {
        Ok((items, _)) => items.first().and_then(id_of),
        Err(error) if error.exit_class() == ErrorClass::Permanent => None,
        Err(error) => return Err(error),
    };
    match largest {
        // The page really was sorted by id, and the largest id lies beyond it.
        Some(largest) if ids.is_sorted() && last > first && largest > last => {
            let density = ids.len() as f64 / (last - first + 1) as f64;
            let estimated = (density * (largest - first + 1) as f64).ceil() as u64;
            Ok(read_of(def, estimated.max(records + 1), Basis::IdDensity))
        }
        _ => Ok(read_of(def, records + 1, Basis::AtLeast)),
    }
}

/// Query parameters as the catalog writes them.
type Query = &'static [(&'static str, &'static str)];

fn id_of(record: &Value) -> Option<u64> {
    let id = record.get("id")?;
    id.as_u64().or_else(|| id.as_str()?.parse().ok())
}

/// A request's first page: its records and whether more follow.
async fn first_page(client: &Client, request: Request) -> Result<(Vec<Value>, bool), ClientError> {
    let page = client.send(&request).await?;
    let items = page
        .items
        .iter()
        .filter_map(|raw| serde_json::from_str(raw.get()).ok())
        .collect();
    Ok((items, page.next.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate(tokens: u64, limit: Option<u64>, left: Option<u64>) -> Estimate {
        Estimate {
            streams: vec![StreamEstimate {
                stream: "deals",
                records: 0,
                requests: 1,
                tokens,
                full: true,
                basis: Basis::Counted,
            }],
            overhead_requests: 0,
            overhead_tokens: 0,
            probe_requests: 0,
            probe_tokens: 0,
            budget: BudgetSnapshot {
                daily_limit: limit,
                daily_remaining: left,
                reserve_percent: 20,
                ..BudgetSnapshot::default()
            },
        }
    }

    #[test]
    fn days_count_what_is_left_today_and_each_days_budget_above_the_reserve() {
        // 1,000 a day, 200 of it kept: 800 usable a day.
        assert_eq!(estimate(500, Some(1_000), Some(1_000)).days(), Some(1));
        assert_eq!(estimate(800, Some(1_000), Some(1_000)).days(), Some(1));
        assert_eq!(estimate(801, Some(1_000), Some(1_000)).days(), Some(2));
        // 300 left today, 100 of them usable: 700 wait for tomorrow.
        assert_eq!(estimate(800, Some(1_000), Some(300)).days(), Some(2));
        // Today's usable share is spent: 1,700 take three more days.
        assert_eq!(estimate(1_700, Some(1_000), Some(100)).days(), Some(4));
        assert_eq!(estimate(1_700, None, None).days(), None);
    }

    #[test]
    fn fanned_out_streams_cost_a_request_per_parent_or_per_batch() {
        let parents = Read {
            records: 250,
            requests: 1,
            tokens: 10,
            basis: Basis::Counted,
        };
        let products = catalog::find("deal_products").unwrap();
        let per_batch = children(products, parents);
        assert_eq!(per_batch.requests, 3);
        assert_eq!(per_batch.tokens, 3 * u64::from(products.token_cost));
        let participants = catalog::find("deal_participants").unwrap();
        assert_eq!(children(participants, parents).requests, 250);
        let emails = catalog::find("person_emails").unwrap();
        assert_eq!(children(emails, parents).requests, 0);
    }
}
