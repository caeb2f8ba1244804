//! Events into rows: each micro-batch of events becomes, per stream, one batch of upserts and
//! one of deletes, built by the same transform as polled pages and committed in one
//! transaction with the streams' states. An event never replaces a newer row: not one applied
//! earlier in this session (by `meta.timestamp`), nor one already stored (by the stream's
//! version field, e.g. `update_time`).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::event::{Action, Event};
use crate::catalog::{CustomFieldLayout, StreamDef};
use crate::columnar;
use crate::declared::FieldDefinitions;
use crate::destination::columns::delete_marks;
use crate::destination::{Batch, Destination, DestinationError};
use crate::runner::{Rows, StreamPlan, build_rows, declared_columns, stream_transform};
use crate::schema::{Column, parse_timestamp};
use crate::state::{StreamState, SyncState};
use crate::transform::RecordTransform;
use crate::{RunError, SyncPlan};

/// One followed stream: where its rows go and how they are built.
struct Followed {
    plan: StreamPlan,
    state: StreamState,
    transform: RecordTransform,
}

/// What happened to the events handed to [`Applier::apply`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    /// Rows upserted or marked deleted.
    pub rows: u64,
    /// Of those, deletes (merges included).
    pub deletes: u64,
    /// Of the deletes, records merged into another (`meta.merged_to_id`); the survivor and
    /// the children moved to it arrive as changes of their own.
    pub merges: u64,
    /// Events already applied (a duplicate delivery) or older than what the row holds.
    pub stale: u64,
    /// Events of objects no selected stream follows.
    pub ignored: u64,
    /// When each applied change happened (`meta.timestamp`, ms), for the latency.
    #[serde(skip)]
    pub times: Vec<i64>,
}

impl Applied {
    /// Adds another batch's counts (not its times).
    pub fn add(&mut self, other: &Applied) {
        self.rows += other.rows;
        self.deletes += other.deletes;
        self.merges += other.merges;
        self.stale += other.stale;
        self.ignored += other.ignored;
    }
}

pub struct Applier {
    destination: Box<dyn Destination>,
    streams: HashMap<&'static str, Followed>,
    /// The newest `meta.timestamp` applied per stream and key in this session.
    newest: HashMap<(&'static str, String), i64>,
}

impl Applier {
    /// An applier for the plan's streams that webhooks report, with the destination's
    /// committed states and this cycle's field definitions (custom fields named as the last
    /// sync named them).
    pub async fn new(
        mut destination: Box<dyn Destination>,
        plan: &SyncPlan,
        definitions: &FieldDefinitions,
    ) -> Result<Applier, RunError> {
        let mut states: SyncState = destination.read_state().await?;
        let mut declared = declared_columns(plan, definitions, &states)?;
        let streams = plan
            .streams
            .iter()
            .filter(|stream| stream.def.webhook.is_some())
            .map(|stream| {
                let def = stream.def;
                let mut state = states.remove(def.name).unwrap_or_default();
                let fields = def
                    .custom_fields
                    .and_then(|custom| definitions.get(custom.defined_by).map(Arc::clone));
                let mut transform = stream_transform(
                    stream,
                    &mut state,
                    fields,
                    declared.remove(def.name).unwrap_or_default(),
                );
                // Events carry custom fields nested, whatever the stream's list does.
                if transform.layout.is_some() {
                    transform.layout = Some(CustomFieldLayout::Nested);
                }
                let followed = Followed {
                    plan: stream.clone(),
                    state,
                    transform,
                };
                (def.name, followed)
            })
            .collect();
        Ok(Applier {
            destination,
            streams,
            newest: HashMap::new(),
        })
    }

    /// Keeps what this session applied across a new applier (after a safety-net sync).
    pub fn carry_over(&mut self, previous: Applier) {
        self.newest = previous.newest;
    }

    /// The stream an event's record belongs to: deletes go to the live stream, which marks
    /// them; creates and changes to the archived stream when the record is archived.
    fn route(&self, event: &Event) -> Option<&'static str> {
        let archived = event.action != Action::Delete
            && event
                .record
                .get("is_archived")
                .is_some_and(|flag| flag == &Value::Bool(true));
        self.streams
            .values()
            .find(|followed| {
                followed
                    .plan
                    .def
                    .webhook
                    .is_some_and(|w| w.object == event.object && w.archived == archived)
            })
            .map(|followed| followed.plan.def.name)
    }

    /// Applies one micro-batch in one transaction.
    pub async fn apply(&mut self, events: Vec<Event>) -> Result<Applied, DestinationError> {
        let mut applied = Applied::default();
        // The newest event per record of the batch.
        let mut latest: HashMap<(&'static str, String), Event> = HashMap::new();
        for event in events {
            let Some(stream) = self.route(&event) else {
                applied.ignored += 1;
                continue;
            };
            let key = (stream, event.key.clone());
            let seen = self.newest.get(&key).copied();
            let batched = latest.get(&key).map(|e| e.at_ms);
            if seen
                .max(batched)
                .is_some_and(|newest| newest >= event.at_ms)
            {
                applied.stale += 1;
                continue;
            }
            if batched.is_some() {
                applied.stale += 1;
            }
            latest.insert(key, event);
        }
        let mut by_stream: HashMap<&'static str, Vec<Event>> = HashMap::new();
        for ((stream, _), event) in latest {
            by_stream.entry(stream).or_default().push(event);
        }

        let synced_at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        let mut writes: Vec<(&'static str, Rows)> = Vec::new();
        let mut applied_keys: Vec<((&'static str, String), i64)> = Vec::new();
        for (stream, mut events) in by_stream {
            let followed = &self.streams[stream];
            let def = followed.plan.def;
            let stored = match def.version_field() {
                Some(version) => {
                    let keys: Vec<String> = events.iter().map(|e| e.key.clone()).collect();
                    self.destination
                        .stored_versions(&followed.plan.table, def.primary_key[0], version, &keys)
                        .await?
                }
                None => HashMap::new(),
            };
            events.retain(|event| {
                let newer = stored
                    .get(&event.key)
                    .is_none_or(|&stored| version_ms(def, event) >= stored);
                if !newer {
                    applied.stale += 1;
                }
                newer
            });
            let (deletes, upserts): (Vec<Event>, Vec<Event>) = events
                .into_iter()
                .partition(|event| event.action == Action::Delete);
            applied_keys.extend(
                deletes
                    .iter()
                    .chain(&upserts)
                    .map(|e| ((stream, e.key.clone()), e.at_ms)),
            );
            applied.deletes += deletes.len() as u64;
            applied.merges += deletes.iter().filter(|e| e.merged_to.is_some()).count() as u64;
            for (events, deleting) in [(upserts, false), (deletes, true)] {
                if events.is_empty() {
                    continue;
                }
                let records = events
                    .into_iter()
                    .map(|event| record_of(def, &followed.transform, event))
                    .collect();
                let mut rows = build_rows(def, &followed.transform, records);
                if deleting {
                    mark_deleted(&mut rows.columns, &mut rows.rows, def.version_field());
                }
                applied.rows += rows.rows.len() as u64;
                writes.push((stream, rows));
            }
        }
        let records = writes
            .iter()
            .map(|(stream, rows)| {
                columnar::record_batch(&rows.columns, &rows.rows)
                    .map_err(|misfit| DestinationError::new(format!("stream {stream}: {misfit}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batches: Vec<Batch<'_>> = writes
            .iter()
            .zip(&records)
            .map(|((stream, rows), records)| {
                let followed = &self.streams[stream];
                Batch {
                    stream,
                    table: &followed.plan.table,
                    primary_key: followed.plan.def.primary_key,
                    columns: &rows.columns,
                    records,
                    replace_parents: None,
                    state: &followed.state,
                    synced_at: &synced_at,
                    history: false,
                }
            })
            .collect();
        if !batches.is_empty() {
            self.destination.write(&batches).await?;
        }
        applied.times = applied_keys.iter().map(|(_, at_ms)| *at_ms).collect();
        for (key, at_ms) in applied_keys {
            let newest = self.newest.entry(key).or_insert(at_ms);
            *newest = (*newest).max(at_ms);
        }
        Ok(applied)
    }
}

/// The version an event gives its row: the record's own (e.g. `update_time`) for creates and
/// changes; the deletion time for deletes, so that a late change never revives the row.
fn version_ms(def: &StreamDef, event: &Event) -> i64 {
    if event.action == Action::Delete {
        return event.at_ms;
    }
    def.version_field()
        .and_then(|field| event.record.get(field))
        .and_then(Value::as_str)
        .and_then(parse_timestamp)
        .map_or(event.at_ms, |at| at.timestamp_millis())
}

/// The record as the stream's rows hold it. Custom fields no definition names yet (added
/// since the last sync) are left for the next sync, which names them. A deleted record gets
/// the stream's deleted flag and its deletion as its version.
fn record_of(def: &StreamDef, transform: &RecordTransform, event: Event) -> Map<String, Value> {
    let deleting = event.action == Action::Delete;
    let at = DateTime::<Utc>::from_timestamp_millis(event.at_ms)
        .map(|at| at.to_rfc3339_opts(SecondsFormat::Millis, true));
    let mut record = event.record;
    if let Some(Value::Object(custom)) = record.get_mut("custom_fields") {
        custom.retain(|key, _| transform.fields.custom.contains_key(key));
    }
    if deleting {
        if let Some((flag, when)) = def.deletes.and_then(|d| d.flag) {
            record.insert(flag.to_owned(), Value::Bool(when));
        }
        if let (Some(field), Some(at)) = (def.version_field(), at) {
            record.insert(field.to_owned(), Value::String(at));
        }
    }
    record
}

/// Sets `_deleted` on every row and `_deleted_at` to its version (the deletion time, see
/// [`record_of`]), adding the columns where the stream's records carry no deleted flag.
fn mark_deleted(columns: &mut Vec<Column>, rows: &mut [Vec<Value>], version: Option<&str>) {
    let version = version.and_then(|name| columns.iter().position(|c| c.name == name));
    let [deleted, deleted_at] =
        delete_marks().map(
            |mark| match columns.iter().position(|c| c.name == mark.name) {
                Some(position) => position,
                None => {
                    columns.push(mark);
                    columns.len() - 1
                }
            },
        );
    for row in rows.iter_mut() {
        row.resize(columns.len(), Value::Null);
        row[deleted] = Value::Bool(true);
        row[deleted_at] = version.map_or(Value::Null, |v| row[v].clone());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use serde_json::json;

    use super::*;
    use crate::destination::TableRef;
    use crate::runner::SyncMode;
    use crate::state::SyncState;

    /// Rows by table and id: (version in ms, deleted, title).
    type Stored = Arc<Mutex<HashMap<(String, String), (i64, bool, Value)>>>;

    /// A destination that keeps each row's version, delete mark and title.
    struct Memory(Stored);

    #[async_trait]
    impl Destination for Memory {
        fn describe(&self) -> String {
            "memory".into()
        }
        async fn read_state(&mut self) -> Result<SyncState, DestinationError> {
            Ok(SyncState::default())
        }
        async fn write(&mut self, batches: &[Batch<'_>]) -> Result<(), DestinationError> {
            let mut rows = self.0.lock().unwrap();
            for batch in batches {
                let at = |name: &str| batch.columns.iter().position(|c| c.name == name);
                for row in (0..batch.len()).map(|r| batch.row(r)) {
                    let value = |name: &str| at(name).map_or(Value::Null, |i| row[i].clone());
                    let version = value("update_time")
                        .as_str()
                        .and_then(parse_timestamp)
                        .map_or(0, |t| t.timestamp_millis());
                    let key = match value("id") {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    rows.insert(
                        (batch.table.name.clone(), key),
                        (version, value("_deleted") == json!(true), value("title")),
                    );
                }
            }
            Ok(())
        }
        async fn stored_versions(
            &mut self,
            table: &TableRef,
            _key: &str,
            _version: &str,
            keys: &[String],
        ) -> Result<HashMap<String, i64>, DestinationError> {
            let rows = self.0.lock().unwrap();
            Ok(keys
                .iter()
                .filter_map(|k| {
                    let (version, _, _) = rows.get(&(table.name.clone(), k.clone()))?;
                    Some((k.clone(), *version))
                })
                .collect())
        }
        async fn replace(
            &mut self,
            _: &str,
            _: &TableRef,
            _: &TableRef,
            _: &StreamState,
        ) -> Result<(), DestinationError> {
            unreachable!("follow mode never swaps tables")
        }
        async fn drop_table(&mut self, _: &TableRef) -> Result<(), DestinationError> {
            unreachable!("follow mode never drops tables")
        }
        async fn reset_state(&mut self, _: &str) -> Result<(), DestinationError> {
            Ok(())
        }
    }

    fn plan(streams: &[&str]) -> SyncPlan {
        SyncPlan {
            company: "test".into(),
            streams: streams
                .iter()
                .map(|name| StreamPlan {
                    def: crate::catalog::find(name).unwrap(),
                    mode: SyncMode::Incremental,
                    table: TableRef {
                        schema: "main".into(),
                        name: (*name).into(),
                    },
                    history: false,
                    reconcile_every: None,
                    refresh_every: None,
                    controls: Default::default(),
                    recent_first: false,
                })
                .collect(),
            start_date: None,
            lookback: std::time::Duration::ZERO,
            concurrency: 1,
            allow_other_company: false,
        }
    }

    async fn new_applier(stored: &Stored, streams: &[&str]) -> Applier {
        Applier::new(
            Box::new(Memory(stored.clone())),
            &plan(streams),
            &FieldDefinitions::default(),
        )
        .await
        .unwrap()
    }

    /// A deal event at second `at` of 2026-03-02T09:00; changes are stamped with their time.
    fn deal(action: Action, at: i64, title: &str, archived: bool) -> Event {
        let stamp = format!("2026-03-02T09:00:{at:02}Z");
        Event {
            action,
            object: "deal".into(),
            key: "42".into(),
            at_ms: parse_timestamp(&stamp).unwrap().timestamp_millis(),
            record: json!({"id": 42, "title": title, "update_time": stamp, "is_archived": archived,
                           "is_deleted": false})
            .as_object()
            .unwrap()
            .clone(),
            merged_to: None,
        }
    }

    fn row(stored: &Stored, table: &str) -> Option<(bool, Value)> {
        let rows = stored.lock().unwrap();
        let (_, deleted, title) = rows.get(&(table.to_owned(), "42".to_owned()))?;
        Some((*deleted, title.clone()))
    }

    #[tokio::test]
    async fn an_older_or_repeated_event_never_replaces_a_newer_row() {
        let stored = Stored::default();
        let mut applier = new_applier(&stored, &["deals"]).await;
        // Reordered within one batch: the newest wins.
        let applied = applier
            .apply(vec![
                deal(Action::Change, 20, "second", false),
                deal(Action::Change, 10, "first", false),
            ])
            .await
            .unwrap();
        assert_eq!((applied.rows, applied.stale), (1, 1));
        assert_eq!(row(&stored, "deals"), Some((false, json!("second"))));
        // A duplicate, and a late retry of the older change, in a later batch.
        let applied = applier
            .apply(vec![
                deal(Action::Change, 20, "second", false),
                deal(Action::Change, 10, "first", false),
            ])
            .await
            .unwrap();
        assert_eq!((applied.rows, applied.stale), (0, 2));
        // After a restart only the stored row knows: still refused.
        let mut restarted = new_applier(&stored, &["deals"]).await;
        let applied = restarted
            .apply(vec![deal(Action::Change, 10, "first", false)])
            .await
            .unwrap();
        assert_eq!((applied.rows, applied.stale), (0, 1));
        assert_eq!(row(&stored, "deals"), Some((false, json!("second"))));
    }

    #[tokio::test]
    async fn a_delete_is_not_revived_by_a_change_that_arrives_after_it() {
        let stored = Stored::default();
        let mut applier = new_applier(&stored, &["deals"]).await;
        applier
            .apply(vec![deal(Action::Delete, 30, "gone", false)])
            .await
            .unwrap();
        assert_eq!(row(&stored, "deals"), Some((true, json!("gone"))));
        // The change before the delete, retried late, in a new session.
        let mut restarted = new_applier(&stored, &["deals"]).await;
        let applied = restarted
            .apply(vec![deal(Action::Change, 29, "edited", false)])
            .await
            .unwrap();
        assert_eq!((applied.rows, applied.stale, applied.deletes), (0, 1, 0));
        assert_eq!(row(&stored, "deals"), Some((true, json!("gone"))));
    }

    #[tokio::test]
    async fn archived_records_go_to_the_archived_stream_or_nowhere() {
        let stored = Stored::default();
        let mut applier = new_applier(&stored, &["deals", "deals_archived"]).await;
        applier
            .apply(vec![deal(Action::Change, 10, "archived", true)])
            .await
            .unwrap();
        assert_eq!(
            row(&stored, "deals_archived"),
            Some((false, json!("archived")))
        );
        assert_eq!(row(&stored, "deals"), None);

        let mut live_only = new_applier(&Stored::default(), &["deals"]).await;
        let applied = live_only
            .apply(vec![
                deal(Action::Change, 10, "archived", true),
                Event {
                    object: "person".into(),
                    ..deal(Action::Change, 11, "x", false)
                },
            ])
            .await
            .unwrap();
        assert_eq!((applied.rows, applied.ignored), (0, 2));
    }
}
