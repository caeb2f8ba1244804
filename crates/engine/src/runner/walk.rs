//! One unit's walk: the root list read once, each page's rows for the root and its fanned-out
//! children built and committed together, then reconciliation and the final states.

use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, SecondsFormat, Utc};
use pipedrive_client::{ClientError, ErrorClass, PagePosition};
use serde_json::{Map, Value};

use super::decode::{Decoded, decode_page, decode_records};
use super::plan::{Observer, StopSignal, StreamPlan, looked_back, stream_transform};
use super::rows::{Rows, build_rows};
use super::writer::{Ack, PresentRows, TableWrite, WriteOp, Writer, records_of, wait};
use crate::catalog::{self, Deletes, Fanout, Incremental, PagingKind, StreamDef};
use crate::destination::TableRef;
use crate::history::{self, VersionInput};
use crate::pages::Pages;
use crate::report::{Failure, Outcome, StreamReport};
use crate::schema::Column;
use crate::source::{self, Chunk, Source};
use crate::state::{FullRefreshProgress, StreamState};
use crate::transform::RecordTransform;

/// A stream of a unit as handed to its worker: plan, committed state, the field definitions
/// its custom fields are named from, and its declared columns.
pub(super) type MemberInput = (
    StreamPlan,
    StreamState,
    Option<Arc<Vec<Value>>>,
    Vec<Column>,
);

pub(super) struct UnitWorker<'a> {
    pub(super) pages: &'a Pages,
    pub(super) writer: Writer,
    pub(super) observer: Arc<dyn Observer>,
    pub(super) stop: StopSignal,
    pub(super) start_date: Option<DateTime<Utc>>,
    pub(super) lookback: std::time::Duration,
    /// The destination can mark rows Pipedrive no longer lists.
    pub(super) keeps_deleted: bool,
    /// This run's start: `_valid_from` of versions without a cursor, `_deleted_at` of rows
    /// found missing.
    pub(super) observed_at: String,
}

/// Counters for one stream's report.
struct Tally {
    started: Instant,
    records: u64,
    requests: u64,
    tokens: u64,
}

/// One stream of a unit while it runs.
struct Member {
    plan: StreamPlan,
    state: StreamState,
    transform: RecordTransform,
    /// Merging into the table (incremental) rather than loading a staging table.
    incremental: bool,
    target: TableRef,
    bookmark: Option<String>,
    /// Parents (or root records) older than this were already loaded by an earlier run.
    skip_before: Option<String>,
    /// The bookmark this run started from: changes after it are new to the history table.
    started_from: Option<String>,
    history_table: Option<TableRef>,
    tally: Tally,
    outcome: Option<Outcome>,
}

impl Member {
    fn def(&self) -> &'static StreamDef {
        self.plan.def
    }

    fn report(&mut self) -> StreamReport {
        StreamReport {
            stream: self.def().name,
            records: self.tally.records,
            requests: self.tally.requests,
            tokens: self.tally.tokens,
            seconds: self.tally.started.elapsed().as_secs_f64(),
            outcome: self.outcome.take().unwrap_or(Outcome::Complete),
        }
    }
}

pub(super) fn outcome_of(error: StreamError, stream: &str) -> Outcome {
    let incomplete = |failure, message: String| Outcome::Incomplete { failure, message };
    match error {
        StreamError::Client(error) => match error.exit_class() {
            ErrorClass::NotAvailable if !catalog::find(stream).is_some_and(|def| def.gated) => {
                incomplete(
                    Failure::Other,
                    format!(
                        "{error}; every company has {stream}, so this points at source.base_url (a wrong path, or a proxy's prefix) or at the token's permissions"
                    ),
                )
            }
            ErrorClass::NotAvailable => {
                tracing::warn!(stream, %error, "stream skipped: not available to this company or token");
                Outcome::Skipped(error.to_string())
            }
            ErrorClass::Auth => incomplete(Failure::Auth, error.to_string()),
            ErrorClass::Temporary => incomplete(Failure::Temporary, error.to_string()),
            ErrorClass::Permanent => incomplete(Failure::Other, error.to_string()),
        },
        StreamError::Stopped => incomplete(Failure::Temporary, "stopped on request".to_owned()),
        StreamError::ReaderStopped => incomplete(
            Failure::Other,
            "reading the stream's pages stopped before its end (an internal error; the next run resumes from the committed state)".to_owned(),
        ),
        StreamError::Write(message) => incomplete(Failure::Destination, message),
    }
}

impl UnitWorker<'_> {
    pub(super) async fn run(
        self,
        root: &'static StreamDef,
        streams: Vec<MemberInput>,
        prefetched: Option<Arc<Vec<Value>>>,
    ) -> Vec<StreamReport> {
        let mut members: Vec<Member> = streams
            .into_iter()
            .map(|(plan, mut state, fields, declared)| {
                let def = plan.def;
                self.observer.stream_started(def.name);
                let transform = stream_transform(&plan, &mut state, fields, declared);
                let incremental = plan.reads_changes();
                let target = if incremental {
                    plan.table.clone()
                } else {
                    plan.table.staging()
                };
                let history_table = plan
                    .history
                    .then(|| plan.table.history())
                    .filter(|_| def.version_field().is_some());
                Member {
                    bookmark: state.bookmark.clone().filter(|_| incremental),
                    started_from: state.bookmark.clone().filter(|_| incremental),
                    history_table,
                    skip_before: None,
                    plan,
                    state,
                    transform,
                    incremental,
                    target,
                    tally: Tally {
                        started: Instant::now(),
                        records: 0,
                        requests: 0,
                        tokens: 0,
                    },
                    outcome: None,
                }
            })
            .collect();

        if let Err(error) = self.walk(root, &mut members, prefetched).await {
            let failed = outcome_of(error, root.name);
            for member in members.iter_mut().filter(|m| m.outcome.is_none()) {
                member.outcome = Some(failed.clone());
            }
        }
        // Out of budget, out of credentials or out of a destination: the other units would
        // only fail the same way, so they stop after their pages in flight.
        let stop_all = members.iter().any(|m| {
            matches!(&m.outcome, Some(Outcome::Incomplete { failure, .. }) if *failure != Failure::Other)
        });
        if stop_all {
            self.stop.stop();
        }
        members
            .iter_mut()
            .map(|member| {
                let report = member.report();
                self.observer.stream_finished(&report);
                report
            })
            .collect()
    }

    /// Where the walk starts: a reload resumed (a lone plain list) or started over (its
    /// staging table dropped), and the change time the list is read from, which the member
    /// furthest behind needs (members further ahead skip what they already have).
    async fn start(
        &self,
        root: &'static StreamDef,
        members: &mut [Member],
    ) -> Result<Start, StreamError> {
        let start_date = self
            .start_date
            .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true));
        // Only a lone plain list resumes a full refresh mid-way; the others start over.
        let resumable = members.len() == 1 && members[0].def().fanout == Fanout::None;
        // A newest-first backfill keeps no bookmark until it ends (older records are still to
        // come); it resumes from its cursor like a full refresh.
        let newest_first = resumable
            && members[0].incremental
            && members[0].plan.recent_first
            && members[0].bookmark.is_none()
            && root.reads_newest_first();
        let mut start = PagePosition::First;
        for member in members.iter_mut() {
            if member.incremental {
                if let Some(progress) = member.state.full_refresh.take().filter(|_| newest_first) {
                    start = progress.next;
                    member.bookmark = progress.bookmark;
                }
                continue;
            }
            match member.state.full_refresh.take().filter(|_| resumable) {
                Some(progress) => {
                    start = progress.next;
                    member.bookmark = progress.bookmark;
                }
                None => {
                    self.writer
                        .commit(WriteOp::Drop(member.target.clone()))
                        .await?;
                }
            }
        }
        // The walk starts where the member furthest behind needs it; members further ahead
        // skip what they already have.
        let keyset = matches!(root.paging, PagingKind::Offset { .. })
            && matches!(root.incremental, Incremental::UpdatedSince { .. });
        let resumes_by_bookmark = |m: &Member| m.incremental || (keyset && resumable);
        let lookback = self.lookback;
        let since = if members.iter().all(resumes_by_bookmark)
            && members.iter().all(|m| m.bookmark.is_some())
        {
            members
                .iter()
                .filter_map(|m| m.bookmark.as_deref())
                .min()
                .map(|b| looked_back(b, lookback))
        } else {
            None
        }
        .or(start_date);
        let since = since.filter(|_| !newest_first);
        for member in members.iter_mut() {
            member.skip_before = member
                .bookmark
                .as_deref()
                .map(|b| looked_back(b, lookback))
                .filter(|b| since.as_ref().is_none_or(|s| b > s))
                .filter(|_| !newest_first);
        }
        Ok(Start {
            position: start,
            since,
            newest_first,
        })
    }

    /// Walks the root list once and commits every page's rows for all members.
    async fn walk(
        &self,
        root: &'static StreamDef,
        members: &mut [Member],
        prefetched: Option<Arc<Vec<Value>>>,
    ) -> Result<(), StreamError> {
        let Start {
            position: start,
            since,
            newest_first,
        } = self.start(root, members).await?;
        let source = match prefetched {
            Some(records) => Source::Prefetched(Some(
                records
                    .iter()
                    .filter_map(|r| r.as_object().cloned())
                    .collect(),
            )),
            None if newest_first => Source::newest_first(self.pages, root, start.clone()),
            None => Source::open(self.pages, root, since, start.clone()).await?,
        };
        let root_selected = members[0].def().name == root.name;
        let child_reads = members
            .iter()
            .map(|member| {
                (member.def().name != root.name).then(|| source::ChildRead {
                    def: member.def(),
                    skip_before: member.skip_before.clone(),
                })
            })
            .collect();
        let mut pages = source::ReadAhead::start(self.pages, root, source, child_reads);

        let mut pending: Option<Ack> = None;
        let mut position = start;
        // Once the list moved under the walk, its bookmark stays where the walk could prove
        // it, and the walk does not count as a complete listing.
        let mut shifted = false;
        while let Some(read) = pages.next().await {
            let source::PageRead {
                mut chunk,
                mut children,
            } = read?;
            if chunk.shifted && !shifted {
                shifted = true;
                tracing::warn!(
                    stream = root.name,
                    "the list moved under the walk by more than the page overlap; the bookmark stays and no row is marked deleted from this walk"
                );
            }
            if root_selected {
                members[0].tally.requests += chunk.requests;
                members[0].tally.tokens += chunk.tokens;
            }
            let (writes, counts) = self
                .page_writes(
                    root,
                    members,
                    &mut chunk,
                    &mut children,
                    PageAt {
                        position: &position,
                        shifted,
                        newest_first,
                        root_selected,
                    },
                )
                .await?;
            if let Some(ack) = pending.take() {
                wait(ack).await.map_err(StreamError::Write)?;
            }
            pending = Some(
                self.writer
                    .submit(WriteOp::Rows(writes))
                    .await
                    .map_err(StreamError::Write)?,
            );
            for (stream, records) in counts {
                self.observer.page_committed(stream, records);
            }
            if let Some(next) = chunk.next {
                position = next;
            }
            if self.stop.is_stopped() {
                if let Some(ack) = pending.take() {
                    wait(ack).await.map_err(StreamError::Write)?;
                }
                return Err(StreamError::Stopped);
            }
        }
        if let Some(ack) = pending.take() {
            wait(ack).await.map_err(StreamError::Write)?;
        }
        if !pages.reached_the_end() {
            return Err(StreamError::ReaderStopped);
        }
        self.finish(members, shifted).await
    }

    /// One page's writes for every member: the rows each selects from the page (or from
    /// its children's reads), with the state that becomes true once they land, the root's
    /// first and each table before its history; and the rows counted per stream.
    async fn page_writes(
        &self,
        root: &'static StreamDef,
        members: &mut [Member],
        chunk: &mut Chunk,
        children: &mut [Option<Result<Chunk, ClientError>>],
        at: PageAt<'_>,
    ) -> Result<(Vec<TableWrite>, Vec<(&'static str, usize)>), StreamError> {
        let PageAt {
            position,
            shifted,
            newest_first,
            root_selected,
        } = at;
        let mut writes: Vec<TableWrite> = Vec::with_capacity(members.len() + 1);
        let mut counts = Vec::with_capacity(members.len());
        // Children first: a change log read as a stream of its own also serves the root's
        // history, without a second request per parent.
        let mut change_log: Option<Vec<Map<String, Value>>> = None;
        let wanted_log = root
            .change_log
            .filter(|_| root_selected && members[0].history_table.is_some());
        // A child of a list read in full goes by its parents' change time.
        let parents_changed = match root.cursor_field {
            None if members.len() > 1 => chunk.newest_of(root.version_field()),
            _ => None,
        };
        // The root's page straight from its text into its table's batch, when nothing else
        // reads its records; first, so its children's bookmarks take the newest cursor the
        // decode found rather than another pass over the page.
        let own = &members[0];
        let mut own_decoded = if own.outcome.is_none()
            && children.first().is_some_and(Option::is_none)
            && own.history_table.is_none()
            && own.skip_before.is_none()
        {
            let (def, transform) = (own.def(), &own.transform);
            chunk.decode_raw(|items| decode_page(def, transform, items))
        } else {
            None
        };
        for (member, read) in members.iter_mut().zip(children.iter_mut()).rev() {
            if member.outcome.is_some() {
                continue;
            }
            let def = member.def();
            let skip_before = member.skip_before.as_deref();
            let mut decoded = if read.is_none() {
                own_decoded.take()
            } else {
                None
            };
            // A child's rows are decoded from its records unless a history or the root's
            // change log reads them as records.
            let child_decodes = member.history_table.is_none()
                && wanted_log.is_none_or(|log| log.stream != def.name);
            let (records, replace) = match read.take() {
                None if decoded.is_some() => (Vec::new(), None),
                // The root is the last member here (they go in reverse): unless its
                // history still reads from them below, its rows take the chunk's records
                // rather than copies.
                None if member.history_table.is_none() => {
                    let mut records = std::mem::take(chunk.records());
                    records.retain(|r| source::is_selected(r, root.cursor_field, skip_before));
                    (records, None)
                }
                None => (
                    source::selected_parents(chunk.records(), root.cursor_field, skip_before)
                        .into_iter()
                        .cloned()
                        .collect(),
                    None,
                ),
                Some(read) => match read {
                    Ok(mut children) => {
                        member.tally.requests += children.requests;
                        member.tally.tokens += children.tokens;
                        // Children a shifted walk may have skipped are not replaced.
                        let replace = children
                            .replace_parents
                            .take()
                            .filter(|_| !children.shifted);
                        let transform = &member.transform;
                        decoded = child_decodes
                            .then(|| {
                                children
                                    .decode_raw(|items| decode_page(def, transform, items))
                                    .or_else(|| decode_records(def, transform, children.records()))
                            })
                            .flatten();
                        match decoded {
                            Some(_) => (Vec::new(), replace),
                            None => (children.into_records(), replace),
                        }
                    }
                    Err(error) if error.exit_class() == ErrorClass::NotAvailable => {
                        member.outcome = Some(outcome_of(StreamError::Client(error), def.name));
                        continue;
                    }
                    Err(error) => return Err(error.into()),
                },
            };
            if wanted_log.is_some_and(|log| log.stream == def.name) {
                change_log = Some(records.clone());
            }
            let newest = match root.cursor_field {
                None if def.name != root.name => parents_changed.clone(),
                _ => chunk.newest().map(str::to_owned),
            };
            if !shifted
                && let Some(newest) = newest
                && member
                    .bookmark
                    .as_deref()
                    .is_none_or(|b| newest.as_str() > b)
            {
                member.bookmark = Some(newest);
            }
            let Rows {
                columns,
                rows,
                filtered_out,
            } = match decoded {
                Some(_) => Rows::default(),
                None => build_rows(def, &member.transform, records),
            };
            // Rows the filter now rejects go, like children a parent no longer has.
            let replace = def
                .parent_column
                .zip(replace)
                .or_else(|| (!filtered_out.is_empty()).then(|| (def.primary_key[0], filtered_out)));
            let mut next_state = member.state.clone();
            if member.incremental && !newest_first {
                // A list walked by id, not by change time, proves its bookmark only once
                // every parent has been seen: until the walk ends the committed one stays.
                if root.cursor_field.is_some() {
                    next_state.bookmark = member.bookmark.clone();
                }
            } else {
                // A crash after this commit resumes at the following page; the last page
                // is re-read (merging on the key makes that harmless) and then swapped in.
                next_state.full_refresh = Some(FullRefreshProgress {
                    next: chunk.next.clone().unwrap_or_else(|| position.clone()),
                    bookmark: member.bookmark.clone(),
                });
            }
            if let Some(history_table) = member.history_table.clone() {
                let mut log_def = wanted_log.and_then(|log| catalog::find(log.stream));
                // Between two syncs the changes come from the log (its cheapest endpoint
                // when the log is not a selected stream); the first sync reads it only
                // when it is selected (one request per record).
                if let (None, Some(log), Some(_)) = (&change_log, wanted_log, &member.started_from)
                {
                    let parents =
                        source::selected_parents(chunk.records(), root.cursor_field, skip_before);
                    let source = log.between_syncs;
                    let read = source::children(self.pages, source.def, root, &parents).await?;
                    member.tally.requests += read.requests;
                    member.tally.tokens += read.tokens;
                    let mut records = read.into_records();
                    // Under the log's own names, which history reads.
                    for record in &mut records {
                        if let Some(time) = record.remove(source.time) {
                            record.insert(log.time.to_owned(), time);
                        }
                    }
                    change_log = Some(records);
                    log_def = Some(source.def);
                }
                let (columns, rows) = history::versions(&VersionInput {
                    def,
                    columns: &columns,
                    rows: &rows,
                    changes: change_log.as_deref().unwrap_or_default(),
                    change_key: log_def.and_then(|d| d.parent_column),
                    custom_columns: &member.transform.columns,
                    since: member.started_from.as_deref(),
                    observed_at: &self.observed_at,
                });
                writes.push(TableWrite {
                    stream: def.name,
                    table: history_table,
                    primary_key: def.primary_key,
                    records: records_of(def.name, &columns, &rows)?,
                    columns,
                    replace: None,
                    state: next_state.clone(),
                    history: true,
                });
            }
            let (columns, records) = match decoded {
                Some(Decoded { columns, records }) => (columns, records),
                None => {
                    let records = records_of(def.name, &columns, &rows)?;
                    (columns, records)
                }
            };
            counts.push((def.name, records.num_rows()));
            member.tally.records += records.num_rows() as u64;
            writes.push(TableWrite {
                stream: def.name,
                table: member.target.clone(),
                primary_key: def.primary_key,
                records,
                columns,
                replace,
                state: next_state.clone(),
                history: false,
            });
            member.state = next_state;
        }
        // The root's rows first, each table before its history.
        writes.reverse();
        Ok((writes, counts))
    }

    /// After a complete walk, each member's final state: an incremental stream's bookmark, a
    /// reload swapped in (keeping the rows it no longer has, marked), and deletes reconciled
    /// when due. A walk the list moved under (`shifted`) never replaces a table.
    async fn finish(&self, members: &mut [Member], shifted: bool) -> Result<(), StreamError> {
        for member in members.iter_mut().filter(|m| m.outcome.is_none()) {
            let def = member.def();
            let mut final_state = member.state.clone();
            final_state.full_refresh = None;
            final_state.bookmark = member.bookmark.clone();
            final_state.completed_at = Some(Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true));
            if def.deletes.is_some()
                && member.incremental
                && member.started_from.is_none()
                && !shifted
            {
                // A first, complete walk listed every id: nothing to reconcile yet.
                final_state.reconciled_at = Some(self.observed_at.clone());
            }
            // The empty write creates the table of a stream that had no rows.
            let empty = |table: TableRef, state: StreamState| {
                WriteOp::Rows(vec![TableWrite {
                    stream: def.name,
                    table,
                    primary_key: def.primary_key,
                    columns: Vec::new(),
                    records: RecordBatch::new_empty(Arc::new(Schema::empty())),
                    replace: None,
                    state,
                    history: false,
                }])
            };
            if member.incremental {
                self.writer
                    .commit(empty(member.target.clone(), final_state.clone()))
                    .await?;
            } else if shifted {
                // A reload that may have skipped records never replaces the table: the old one
                // stays, and the next run reloads from the start.
                let mut restart = member.state.clone();
                restart.full_refresh = None;
                self.writer
                    .commit(empty(member.plan.table.clone(), restart.clone()))
                    .await?;
                self.writer
                    .commit(WriteOp::Drop(member.target.clone()))
                    .await?;
                member.state = restart;
                continue;
            } else {
                self.writer
                    .commit(empty(member.target.clone(), member.state.clone()))
                    .await?;
                if let (Some(_), true) = (def.deletes, self.keeps_deleted) {
                    // Rows the reload no longer has are deleted in Pipedrive (or purged): keep
                    // them, marked, rather than lose them with the old table.
                    self.writer
                        .commit(WriteOp::KeepDeleted {
                            stream: def.name,
                            table: member.plan.table.clone(),
                            key: def.primary_key[0],
                            present: PresentRows::Reloaded(member.target.clone()),
                            deleted_at: self.observed_at.clone(),
                            state: member.state.clone(),
                        })
                        .await?;
                    final_state.reconciled_at = Some(self.observed_at.clone());
                }
                self.writer
                    .commit(WriteOp::Replace {
                        stream: def.name,
                        staging: member.target.clone(),
                        target: member.plan.table.clone(),
                        state: final_state.clone(),
                    })
                    .await?;
            }
            member.state = final_state;
            if let Some(deletes) = def.deletes
                && member.incremental
                && self.keeps_deleted
                && reconciliation_due(&member.plan, &member.state)
            {
                self.reconcile(member, deletes).await?;
            }
        }
        Ok(())
    }

    /// Lists the stream's ids (and those of the lists its records move to, like archived
    /// deals) and marks the rows missing from them deleted.
    async fn reconcile(&self, member: &mut Member, deletes: Deletes) -> Result<(), StreamError> {
        let def = member.def();
        let key = def.primary_key[0];
        let started = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut present = Vec::new();
        let listed = std::iter::once(def).chain(
            deletes
                .also_present_in
                .iter()
                .filter_map(|name| catalog::find(name)),
        );
        for list in listed {
            // The list's own paging (the source advances it): keyset by update time where
            // offsets could shift when a record is deleted mid-walk and let a live record look
            // missing.
            let not_available = |error: &ClientError| {
                // Without every list, a missing id proves nothing.
                tracing::warn!(stream = def.name, list = list.name, %error, "deletes not reconciled: a list is not available");
            };
            let mut pages = match Source::open(self.pages, list, None, PagePosition::First).await {
                Ok(pages) => pages,
                Err(error) if error.exit_class() == ErrorClass::NotAvailable => {
                    not_available(&error);
                    return Ok(());
                }
                Err(error) => return Err(error.into()),
            };
            while let Some(chunk) = pages.next().await {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(error) if error.exit_class() == ErrorClass::NotAvailable => {
                        not_available(&error);
                        return Ok(());
                    }
                    Err(error) => return Err(error.into()),
                };
                member.tally.requests += chunk.requests;
                member.tally.tokens += chunk.tokens;
                if chunk.shifted {
                    tracing::warn!(
                        stream = def.name,
                        list = list.name,
                        "deletes not reconciled: the list moved under the walk; the next run tries again"
                    );
                    return Ok(());
                }
                present.extend(
                    chunk
                        .into_records()
                        .into_iter()
                        .filter_map(|mut record| record.remove(key)),
                );
                if self.stop.is_stopped() {
                    return Err(StreamError::Stopped);
                }
            }
        }
        let mut state = member.state.clone();
        state.reconciled_at = Some(started.clone());
        self.writer
            .commit(WriteOp::KeepDeleted {
                stream: def.name,
                table: member.plan.table.clone(),
                key,
                present: PresentRows::Keys(present),
                deleted_at: started,
                state: state.clone(),
            })
            .await?;
        member.state = state;
        Ok(())
    }
}

/// Whether the stream's last reconciliation is older than its cadence.
pub(crate) fn reconciliation_due(plan: &StreamPlan, state: &StreamState) -> bool {
    let Some(every) = plan.reconcile_every else {
        return false;
    };
    let last = state
        .reconciled_at
        .as_deref()
        .and_then(crate::schema::parse_timestamp);
    last.is_none_or(|last| {
        chrono::Duration::from_std(every).is_ok_and(|every| last + every <= Utc::now())
    })
}

pub(super) enum StreamError {
    Client(ClientError),
    Write(String),
    Stopped,
    /// The task reading a stream's pages ahead ended before the list did (it panicked).
    ReaderStopped,
}

impl From<ClientError> for StreamError {
    fn from(error: ClientError) -> Self {
        StreamError::Client(error)
    }
}

impl From<String> for StreamError {
    fn from(message: String) -> Self {
        StreamError::Write(message)
    }
}

/// Where a walk starts (see `UnitWorker::start`).
struct Start {
    position: PagePosition,
    /// Read the list's changes from here; `None`: the whole list.
    since: Option<String>,
    /// A newest-first backfill, which keeps no bookmark until it ends.
    newest_first: bool,
}

/// Where a page stands in its walk (see `UnitWorker::page_writes`).
#[derive(Clone, Copy)]
struct PageAt<'a> {
    /// The page's own position, where a reload resumes after the last page.
    position: &'a PagePosition,
    /// The list moved under the walk: bookmarks stay where they were proven.
    shifted: bool,
    newest_first: bool,
    /// The root is a member (not only walked for its children).
    root_selected: bool,
}
