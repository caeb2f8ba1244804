//! The walk against pages held in memory and a destination held in memory: where it resumes,
//! what it commits, and what it leaves the next run.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pipedrive_client::PagePosition;
use serde_json::{Map, Value, json};

use super::plan::{Observer, StopSignal, StreamPlan, SyncMode};
use super::walk::UnitWorker;
use super::writer::{TableWrite, WriteOp, Writer, records_of, wait};
use crate::catalog::{self, StreamDef};
use crate::destination::columns::{DELETED, DELETED_AT};
use crate::destination::{Batch, Destination, DestinationError, Missing, Present, TableRef};
use crate::pages::Pages;
use crate::pages::memory::MemoryPages;
use crate::report::{Outcome, StreamReport};
use crate::schema::{Column, ColumnType};
use crate::state::{StreamState, SyncState};

/// Tables as rows by key, and the state committed with them.
#[derive(Default)]
struct Stored {
    tables: BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
    state: SyncState,
    /// Writes so far, and the one (counted from 1) that fails, committing nothing.
    writes: usize,
    fail_write: Option<usize>,
}

#[derive(Clone, Default)]
struct MemoryDestination(Arc<Mutex<Stored>>);

impl MemoryDestination {
    fn stored(&self) -> std::sync::MutexGuard<'_, Stored> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn table(&self, name: &str) -> BTreeMap<String, Map<String, Value>> {
        self.stored().tables.get(name).cloned().unwrap_or_default()
    }

    fn state(&self, stream: &str) -> StreamState {
        self.stored().state.get(stream).cloned().unwrap_or_default()
    }
}

#[async_trait]
impl Destination for MemoryDestination {
    fn describe(&self) -> String {
        "memory".to_owned()
    }

    async fn read_state(&mut self) -> Result<SyncState, DestinationError> {
        Ok(self.stored().state.clone())
    }

    async fn write(&mut self, batches: &[Batch<'_>]) -> Result<(), DestinationError> {
        let mut stored = self.stored();
        stored.writes += 1;
        if stored.fail_write == Some(stored.writes) {
            return Err(DestinationError::new("the disk is full"));
        }
        for batch in batches {
            let table = stored.tables.entry(batch.table.name.clone()).or_default();
            // Children of re-read parents are replaced, so those a parent no longer has go.
            if let Some((column, parents)) = batch.replace_parents {
                let parents: Vec<String> = parents.iter().map(Value::to_string).collect();
                table.retain(|_, row| {
                    !row.get(column)
                        .is_some_and(|parent| parents.contains(&parent.to_string()))
                });
            }
            for row in (0..batch.len()).map(|r| batch.row(r)) {
                let row: Map<String, Value> = batch
                    .columns
                    .iter()
                    .map(|column| column.name.clone())
                    .zip(row)
                    .collect();
                let key = batch
                    .primary_key
                    .iter()
                    .map(|k| row.get(*k).map(Value::to_string).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("|");
                table.insert(key, row);
            }
            stored
                .state
                .insert(batch.stream.to_owned(), batch.state.clone());
        }
        Ok(())
    }

    async fn replace(
        &mut self,
        stream: &str,
        staging: &TableRef,
        target: &TableRef,
        state: &StreamState,
    ) -> Result<(), DestinationError> {
        let mut stored = self.stored();
        let rows = stored.tables.remove(&staging.name).unwrap_or_default();
        stored.tables.insert(target.name.clone(), rows);
        stored.state.insert(stream.to_owned(), state.clone());
        Ok(())
    }

    async fn drop_table(&mut self, table: &TableRef) -> Result<(), DestinationError> {
        self.stored().tables.remove(&table.name);
        Ok(())
    }

    async fn reset_state(&mut self, stream: &str) -> Result<(), DestinationError> {
        self.stored().state.remove(stream);
        Ok(())
    }

    fn keeps_deleted(&self) -> bool {
        true
    }

    async fn keep_deleted(&mut self, missing: &Missing<'_>) -> Result<u64, DestinationError> {
        let Present::Keys(keys) = missing.present else {
            return Err(DestinationError::new("reloads are not kept in memory"));
        };
        let present: Vec<String> = keys.iter().map(Value::to_string).collect();
        let mut stored = self.stored();
        let mut marked = 0;
        for (key, row) in stored
            .tables
            .entry(missing.table.name.clone())
            .or_default()
            .iter_mut()
        {
            if !present.contains(key) && row.get(DELETED) != Some(&json!(true)) {
                row.insert(DELETED.to_owned(), json!(true));
                row.insert(DELETED_AT.to_owned(), json!(missing.deleted_at));
                marked += 1;
            }
        }
        stored
            .state
            .insert(missing.stream.to_owned(), missing.state.clone());
        Ok(marked)
    }
}

struct Quiet;
impl Observer for Quiet {}

/// One run of `def`'s unit alone, from the state the destination holds.
async fn walk_once(
    pages: &MemoryPages,
    destination: &MemoryDestination,
    def: &'static StreamDef,
    mode: SyncMode,
) -> StreamReport {
    walk_unit(pages, destination, def, &[], mode, false)
        .await
        .remove(0)
}

/// [`walk_once`], listing every id to mark the rows Pipedrive no longer lists.
async fn walk_reconciling(
    pages: &MemoryPages,
    destination: &MemoryDestination,
    def: &'static StreamDef,
) -> StreamReport {
    walk_unit(pages, destination, def, &[], SyncMode::Incremental, true)
        .await
        .remove(0)
}

/// One complete run of deals with their products.
async fn walk_deals_with_products(pages: &MemoryPages, destination: &MemoryDestination) {
    let deals = catalog::find("deals").expect("deals are in the catalog");
    let products = catalog::find("deal_products").expect("deal products are in the catalog");
    let reports = walk_unit(
        pages,
        destination,
        deals,
        &[products],
        SyncMode::Incremental,
        false,
    )
    .await;
    for report in reports {
        assert!(matches!(report.outcome, Outcome::Complete), "{report:?}");
    }
}

/// One run of a unit, `root` and the children read for its pages, from the state the
/// destination holds; `reconcile` lists every id to mark the rows Pipedrive no longer lists.
async fn walk_unit(
    pages: &MemoryPages,
    destination: &MemoryDestination,
    root: &'static StreamDef,
    children: &[&'static StreamDef],
    mode: SyncMode,
    reconcile: bool,
) -> Vec<StreamReport> {
    let (writer, task) = Writer::start(
        Box::new(destination.clone()),
        "2026-12-07T12:00:00.000000Z".to_owned(),
    );
    let source: Pages = Arc::new(pages.clone());
    let worker = UnitWorker {
        pages: &source,
        writer,
        observer: Arc::new(Quiet),
        stop: StopSignal::default(),
        start_date: None,
        lookback: Duration::ZERO,
        keeps_deleted: reconcile,
        observed_at: "2026-12-07T12:00:00Z".to_owned(),
    };
    let members = std::iter::once(root)
        .chain(children.iter().copied())
        .map(|def| {
            let plan = StreamPlan {
                def,
                mode,
                table: TableRef {
                    schema: "main".to_owned(),
                    name: def.name.to_owned(),
                },
                history: false,
                reconcile_every: reconcile.then_some(Duration::ZERO),
                refresh_every: None,
                controls: Default::default(),
                recent_first: false,
            };
            (plan, destination.state(def.name), None, Vec::new())
        })
        .collect();
    let reports = worker.run(root, members, None).await;
    task.await
        .expect("the writer task ends with its last handle");
    reports
}

fn stage(id: u64, name: &str) -> Value {
    json!({"id": id, "name": name, "pipeline_id": 1, "order_nr": id, "is_deleted": false,
           "update_time": format!("2026-01-{id:02}T00:00:00Z")})
}

/// The table's `name` column by id, as loaded.
fn names(destination: &MemoryDestination, table: &str) -> BTreeMap<u64, String> {
    destination
        .table(table)
        .values()
        .map(|row| {
            (
                row["id"].as_u64().expect("an id"),
                row["name"].as_str().expect("a name").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_reload_that_failed_mid_list_resumes_at_its_next_page_and_swaps_in_every_record() {
    let def = catalog::find("stages").expect("stages are in the catalog");
    let truth: Vec<Value> = (1..=7)
        .map(|id| stage(id, &format!("Stage {id}")))
        .collect();
    let pages = MemoryPages::new(3);
    pages.set(def.path, truth.clone());
    pages.fail_request(3);
    let destination = MemoryDestination::default();

    let failed = walk_once(&pages, &destination, def, SyncMode::FullRefresh).await;
    assert!(
        matches!(failed.outcome, Outcome::Incomplete { .. }),
        "{:?}",
        failed.outcome
    );
    // The two pages read are in the staging table, the live table untouched, and the state
    // says where the list goes on.
    assert_eq!(destination.table("_pds_staging_stages").len(), 6);
    assert!(destination.table("stages").is_empty());
    let progress = destination.state("stages").full_refresh.expect("progress");
    assert_eq!(progress.next, PagePosition::Cursor("6".to_owned()));

    let resumed = walk_once(&pages, &destination, def, SyncMode::FullRefresh).await;
    assert!(
        matches!(resumed.outcome, Outcome::Complete),
        "{:?}",
        resumed.outcome
    );
    let positions: Vec<PagePosition> = pages.requested().into_iter().map(|r| r.start).collect();
    assert_eq!(
        positions,
        [
            PagePosition::First,
            PagePosition::Cursor("3".to_owned()),
            PagePosition::Cursor("6".to_owned()),
            PagePosition::Cursor("6".to_owned()),
        ],
        "the second run asks only for the page the first could not read"
    );
    let expected: BTreeMap<u64, String> = (1..=7).map(|id| (id, format!("Stage {id}"))).collect();
    assert_eq!(names(&destination, "stages"), expected);
    assert!(destination.table("_pds_staging_stages").is_empty());
    assert_eq!(destination.state("stages").full_refresh, None);
}

fn organization(id: u64, name: &str, day: u32) -> Value {
    json!({"id": id, "name": name, "owner_id": 1, "is_deleted": false,
           "add_time": "2026-01-01T00:00:00Z",
           "update_time": format!("2026-02-{day:02}T00:00:00Z")})
}

#[tokio::test]
async fn an_incremental_stream_converges_on_its_changes_alone() {
    let def = catalog::find("organizations").expect("organizations are in the catalog");
    let pages = MemoryPages::new(3);
    let mut truth: Vec<Value> = (1..=5)
        .map(|id| organization(id, &format!("Org {id}"), id as u32))
        .collect();
    pages.set(def.path, truth.clone());
    let destination = MemoryDestination::default();
    let first = walk_once(&pages, &destination, def, SyncMode::Incremental).await;
    assert!(
        matches!(first.outcome, Outcome::Complete),
        "{:?}",
        first.outcome
    );
    assert_eq!(first.records, 5);
    assert_eq!(
        destination.state("organizations").bookmark.as_deref(),
        Some("2026-02-05T00:00:00Z")
    );

    // Between runs one organization is renamed and one is added.
    truth[1] = organization(2, "Org 2, renamed", 20);
    truth.push(organization(6, "Org 6", 21));
    pages.set(def.path, truth.clone());
    let before = pages.requested().len();
    let second = walk_once(&pages, &destination, def, SyncMode::Incremental).await;
    assert!(
        matches!(second.outcome, Outcome::Complete),
        "{:?}",
        second.outcome
    );
    let asked = &pages.requested()[before..];
    assert_eq!(asked.len(), 1, "one page holds every change");
    assert!(
        asked[0].query.contains(&(
            "updated_since".to_owned(),
            "2026-02-05T00:00:00Z".to_owned()
        )),
        "{:?}",
        asked[0].query
    );
    // The record at the bookmark's second is read again, with the two changes.
    assert_eq!(second.records, 3);
    let expected: BTreeMap<u64, String> = truth
        .iter()
        .map(|o| {
            (
                o["id"].as_u64().unwrap(),
                o["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(names(&destination, "organizations"), expected);
    assert_eq!(
        destination.state("organizations").bookmark.as_deref(),
        Some("2026-02-21T00:00:00Z")
    );
}

#[tokio::test]
async fn reconciliation_marks_the_rows_pipedrive_no_longer_lists_and_only_those() {
    let def = catalog::find("organizations").expect("organizations are in the catalog");
    let pages = MemoryPages::new(2);
    let mut truth: Vec<Value> = (1..=5)
        .map(|id| organization(id, &format!("Org {id}"), id as u32))
        .collect();
    pages.set(def.path, truth.clone());
    let destination = MemoryDestination::default();
    let first = walk_reconciling(&pages, &destination, def).await;
    assert!(
        matches!(first.outcome, Outcome::Complete),
        "{:?}",
        first.outcome
    );

    // Organization 3 is gone from every list (purged), which no change filter shows.
    truth.retain(|o| o["id"] != json!(3));
    pages.set(def.path, truth);
    let listed_from = chrono::Utc::now().timestamp();
    let second = walk_reconciling(&pages, &destination, def).await;
    assert!(
        matches!(second.outcome, Outcome::Complete),
        "{:?}",
        second.outcome
    );
    let deleted: BTreeMap<u64, bool> = destination
        .table("organizations")
        .values()
        .map(|row| (row["id"].as_u64().unwrap(), row[DELETED] == json!(true)))
        .collect();
    assert_eq!(
        deleted,
        BTreeMap::from([(1, false), (2, false), (3, true), (4, false), (5, false)])
    );
    // Marked when the listing that missed it started.
    let deleted_at = destination.table("organizations")["3"][DELETED_AT].clone();
    let deleted_at = deleted_at
        .as_str()
        .and_then(crate::schema::parse_timestamp)
        .expect("a deletion time");
    assert!(deleted_at.timestamp() >= listed_from, "{deleted_at}");
    assert!(destination.state("organizations").reconciled_at.is_some());
}

#[tokio::test]
async fn a_failed_write_leaves_the_state_at_the_last_committed_page_and_the_next_run_goes_on_from_it()
 {
    let def = catalog::find("organizations").expect("organizations are in the catalog");
    let pages = MemoryPages::new(2);
    let truth: Vec<Value> = (1..=5)
        .map(|id| organization(id, &format!("Org {id}"), id as u32))
        .collect();
    pages.set(def.path, truth.clone());
    let destination = MemoryDestination::default();
    destination.stored().fail_write = Some(2);

    let failed = walk_once(&pages, &destination, def, SyncMode::Incremental).await;
    assert!(
        matches!(
            failed.outcome,
            Outcome::Incomplete {
                failure: crate::report::Failure::Destination,
                ..
            }
        ),
        "{:?}",
        failed.outcome
    );
    // Only the first page landed, and the bookmark is its newest record, not the second's.
    assert_eq!(
        names(&destination, "organizations")
            .into_keys()
            .collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(
        destination.state("organizations").bookmark.as_deref(),
        Some("2026-02-02T00:00:00Z")
    );

    let before = pages.requested().len();
    let resumed = walk_once(&pages, &destination, def, SyncMode::Incremental).await;
    assert!(
        matches!(resumed.outcome, Outcome::Complete),
        "{:?}",
        resumed.outcome
    );
    assert!(
        pages.requested()[before].query.contains(&(
            "updated_since".to_owned(),
            "2026-02-02T00:00:00Z".to_owned()
        )),
        "the next run reads from the committed bookmark"
    );
    let expected: BTreeMap<u64, String> = (1..=5).map(|id| (id, format!("Org {id}"))).collect();
    assert_eq!(names(&destination, "organizations"), expected);
    assert_eq!(
        destination.state("organizations").bookmark.as_deref(),
        Some("2026-02-05T00:00:00Z")
    );
}

fn deal(id: u64, day: u32) -> Value {
    json!({"id": id, "title": format!("Deal {id}"), "status": "open", "is_deleted": false,
           "update_time": format!("2026-03-{day:02}T00:00:00Z")})
}

fn deal_product(id: u64, deal_id: u64) -> Value {
    json!({"id": id, "deal_id": deal_id, "product_id": 1, "quantity": 1})
}

#[tokio::test]
async fn children_are_read_again_only_for_changed_parents_and_those_a_parent_lost_go() {
    let deals = catalog::find("deals").expect("deals are in the catalog");
    let products = catalog::find("deal_products").expect("deal products are in the catalog");
    let pages = MemoryPages::new(2);
    pages.set(deals.path, (1..=4).map(|id| deal(id, id as u32)).collect());
    pages.set(
        products.path,
        vec![
            deal_product(10, 1),
            deal_product(11, 1),
            deal_product(30, 3),
        ],
    );
    let destination = MemoryDestination::default();
    walk_deals_with_products(&pages, &destination).await;
    let loaded = |destination: &MemoryDestination| -> Vec<(u64, u64)> {
        destination
            .table("deal_products")
            .values()
            .map(|row| {
                (
                    row["id"].as_u64().unwrap(),
                    row["deal_id"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(loaded(&destination), [(10, 1), (11, 1), (30, 3)]);

    // Deal 1 loses product 11 and changes; deal 3 keeps its product and does not change.
    let mut changed = (1..=4).map(|id| deal(id, id as u32)).collect::<Vec<_>>();
    changed[0] = deal(1, 20);
    pages.set(deals.path, changed);
    pages.set(
        products.path,
        vec![deal_product(10, 1), deal_product(30, 3)],
    );
    let before = pages.requested().len();
    walk_deals_with_products(&pages, &destination).await;
    let asked: Vec<Vec<(String, String)>> = pages.requested()[before..]
        .iter()
        .filter(|r| r.path == products.path)
        .map(|r| r.query.clone())
        .collect();
    // Deal 4, at the bookmark's second, is read again with deal 1; deal 3 is not.
    assert_eq!(asked, [vec![("deal_ids".to_owned(), "4,1".to_owned())]]);
    assert_eq!(loaded(&destination), [(10, 1), (30, 3)]);
}

/// One page of `stream`: a row with `id`, committed with a bookmark naming it.
fn page_write(stream: &'static str, id: i64) -> WriteOp {
    let columns = vec![Column::new("id", ColumnType::BigInt)];
    WriteOp::Rows(vec![TableWrite {
        stream,
        table: TableRef {
            schema: "pipedrive".to_owned(),
            name: stream.to_owned(),
        },
        primary_key: &["id"],
        records: records_of(stream, &columns, &[vec![json!(id)]]).unwrap(),
        columns,
        replace: None,
        state: StreamState {
            bookmark: Some(format!("page {id}")),
            ..StreamState::default()
        },
        history: false,
    }])
}

#[tokio::test]
async fn pages_queued_while_the_writer_is_busy_commit_together_or_fail_together() {
    for fails in [false, true] {
        let destination = MemoryDestination::default();
        destination.stored().fail_write = fails.then_some(1);
        let (writer, task) = Writer::start(
            Box::new(destination.clone()),
            "2026-12-08T12:00:00.000000Z".to_owned(),
        );
        // Both are queued before the writer task first runs (one thread, no await between).
        let deals = writer.submit(page_write("deals", 1)).await.unwrap();
        let persons = writer.submit(page_write("persons", 2)).await.unwrap();
        let (deals, persons) = (wait(deals).await, wait(persons).await);
        assert_eq!(destination.stored().writes, 1, "one transaction for both");
        if fails {
            assert_eq!(deals, Err("the disk is full".to_owned()));
            assert_eq!(persons, deals);
            assert!(destination.stored().state.is_empty());
            assert!(destination.table("deals").is_empty());
        } else {
            assert_eq!((deals, persons), (Ok(()), Ok(())));
            assert_eq!(destination.table("deals").len(), 1);
            assert_eq!(destination.table("persons").len(), 1);
            assert_eq!(
                destination.state("persons").bookmark.as_deref(),
                Some("page 2")
            );
        }
        drop(writer);
        task.await.unwrap();
    }
}
