//! The sync runner: every planned stream reads pages concurrently through one shared client
//! (so one rate budget), and one writer task owns the destination, committing each page
//! together with the stream state that it makes true.
//!
//! This module is `run`: it reads the field definitions, checks the company, starts the
//! writers and walks the units. `plan` says what a run is asked to do, `walk` reads one unit
//! (a root list and its children), `rows` turns records into rows (`decode` takes a plain
//! page's text straight to its batch) and `writer` commits them; each imports only those after
//! it.

use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use futures::{StreamExt, TryStreamExt};
use pipedrive_client::{Client, ClientError, ErrorClass, PagePosition};
use serde_json::Value;

use crate::catalog::{self, Origin, StreamDef};
use crate::declared::{FieldDefinitions, assign_custom_columns};
use crate::destination::Destination;
use crate::report::{Failure, Outcome, Remaining, StreamReport, worst_failure};
use crate::runs::RunStart;
use crate::source;
use crate::state::{StreamState, SyncState};
use crate::transform::FieldCatalog;

pub mod decode;
pub mod estimate;
mod plan;
mod rows;
mod walk;
#[cfg(test)]
mod walk_tests;
mod writer;

pub use self::plan::definitions_wanted;
pub use self::plan::{Observer, RunError, StopSignal, StreamPlan, SyncMode, SyncPlan, SyncReport};
pub(crate) use self::plan::{stream_transform, take_fresh, units};

pub(crate) use self::rows::declared_columns;
pub use self::rows::{Rows, build_rows};
use self::walk::UnitWorker;
use self::writer::{WRITERS, WriteOp, Writer};

/// Runs a sync to completion (or to a stop), returning what happened per stream.
pub async fn run(
    client: &Client,
    destination: Box<dyn Destination>,
    plan: SyncPlan,
    observer: Arc<dyn Observer>,
    stop: StopSignal,
) -> Result<SyncReport, RunError> {
    run_with_definitions(client, destination, plan, observer, stop, None).await
}

/// [`run`] with the field definitions already read (by a protocol that declared its schemas
/// from them), so they are not requested twice.
pub async fn run_with_definitions(
    client: &Client,
    mut destination: Box<dyn Destination>,
    plan: SyncPlan,
    observer: Arc<dyn Observer>,
    stop: StopSignal,
    definitions: Option<FieldDefinitions>,
) -> Result<SyncReport, RunError> {
    let run_start = RunStart::now(client, &plan.company);
    let mut states = destination.read_state().await?;
    // A stream an earlier run loaded that is now opt-in and not selected would silently stop
    // updating: say so.
    for def in catalog::CATALOG.iter().filter(|def| def.opt_in) {
        if states.contains_key(def.name) && !plan.streams.iter().any(|s| s.def.name == def.name) {
            tracing::warn!(
                stream = def.name,
                "an earlier run loaded this stream, but it is opt-in and not selected, so its table is no longer updated; name it under `streams` to keep it in sync"
            );
        }
    }
    // Before any stream starts: rejected credentials or a wrong address fail once, here,
    // rather than once per stream.
    let company = match company_of(client).await {
        Ok(company) => company,
        Err(error) => {
            record_refused_run(destination.as_mut(), client, &run_start, &plan, &error).await;
            return Err(error);
        }
    };
    if let Some(company_id) = company.id {
        refuse_another_company(
            &states,
            company_id,
            &company.domain,
            &plan,
            destination.describe(),
        )?;
        for state in states.values_mut() {
            state.company_id = Some(company_id);
        }
    }
    let definitions = match definitions {
        Some(definitions) => definitions,
        None => read_field_definitions(client, definitions_wanted(&plan)).await,
    };
    let mut declared = declared_columns(&plan, &definitions, &states)?;
    let synced_at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let keeps_deleted = destination.keeps_deleted();
    let observed_at = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);

    // One connection's transaction runs at a time (in a database server while this process
    // waits, or in DuckDB on one core): a second handle overlaps them.
    let mut destinations = vec![destination];
    while destinations.len() < WRITERS {
        match destinations[0].fork().await {
            Ok(Some(another)) => destinations.push(another),
            Ok(None) => break,
            Err(error) => {
                tracing::warn!(%error, "a second writer is not available; writing with one");
                break;
            }
        }
    }
    let (writers, writer_tasks): (Vec<Writer>, Vec<_>) = destinations
        .into_iter()
        .map(|destination| Writer::start(destination, synced_at.clone()))
        .unzip();

    let mapping = Arc::new(custom_field_rows(&definitions, &states));
    let pages = crate::pages::of_client(client);
    let start_date = plan.start_date;
    let lookback = plan.lookback;
    // Streams whose last complete read still stands (`refresh_every`) are left as they are.
    let mut plan = plan;
    let fresh = take_fresh(&mut plan, &states, Utc::now(), |def| {
        definitions.contains_key(def.name) || def.origin == Origin::CustomFieldColumns
    });
    let units = units(&plan);
    // Tokens kept above the reserve for estimating what a stop there leaves: each unit's
    // probe, released as the unit completes.
    let probes: Vec<u64> = units
        .iter()
        .map(|unit| estimate::rest_probe_cost(unit, definitions.contains_key(unit.root.name)))
        .collect();
    let held = Arc::new(std::sync::Mutex::new(probes.iter().sum::<u64>()));
    client.hold_above_reserve(*held.lock().unwrap_or_else(|e| e.into_inner()));
    let work = units.into_iter().enumerate().map(|(index, unit)| {
        let members = unit
            .members
            .into_iter()
            .map(|stream| {
                let state = states
                    .remove(stream.def.name)
                    .unwrap_or_else(|| StreamState {
                        company_id: company.id,
                        ..StreamState::default()
                    });
                let fields = stream
                    .def
                    .custom_fields
                    .and_then(|custom| definitions.get(custom.defined_by).cloned());
                let declared = declared.remove(stream.def.name).unwrap_or_default();
                (stream, state, fields, declared)
            })
            .collect();
        let worker = UnitWorker {
            pages: &pages,
            writer: writers[index % writers.len()].clone(),
            observer: observer.clone(),
            stop: stop.clone(),
            start_date,
            lookback,
            keeps_deleted,
            observed_at: observed_at.clone(),
        };
        let prefetched = match unit.root.origin {
            Origin::Api => definitions.get(unit.root.name).cloned(),
            Origin::CustomFieldColumns => Some(mapping.clone()),
        };
        let (held, probe) = (held.clone(), probes[index]);
        async move {
            let reports = worker.run(unit.root, members, prefetched).await;
            if !reports
                .iter()
                .any(|r| matches!(r.outcome, Outcome::Incomplete { .. }))
            {
                let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
                *held = held.saturating_sub(probe);
                client.hold_above_reserve(*held);
            }
            reports
        }
    });
    let mut reports: Vec<StreamReport> = futures::stream::iter(work)
        .buffer_unordered(plan.concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect();
    reports.extend(fresh);
    reports.sort_by_key(|r| catalog::CATALOG.iter().position(|s| s.name == r.stream));
    client.hold_above_reserve(0);
    let stopped_early = reports
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Incomplete { .. }));
    let remaining = if stopped_early && client.budget().reserve_reached {
        Some(remaining_work(client, &plan, &reports, &writers[0]).await)
    } else {
        None
    };
    let worst = worst_failure(&reports);
    let run = run_start.finish(client, &reports, worst);
    // Through the first writer, after every page; a destination that failed keeps no record.
    if let Err(error) = writers[0]
        .commit(WriteOp::RecordRun(Box::new(run.clone())))
        .await
    {
        tracing::warn!(%error, "the run's record was not written");
    }
    drop(writers);
    for task in writer_tasks {
        let _ = task.await;
    }
    Ok(SyncReport {
        streams: reports,
        run,
        remaining,
    })
}

/// What a run stopped at the reserve leaves: the unfinished streams estimated from their
/// committed state, with the tokens held for it.
async fn remaining_work(
    client: &Client,
    plan: &SyncPlan,
    reports: &[StreamReport],
    writer: &Writer,
) -> Remaining {
    let unfinished: Vec<&'static str> = reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Incomplete { .. }))
        .map(|r| r.stream)
        .collect();
    let rest = SyncPlan {
        streams: plan
            .streams
            .iter()
            .filter(|s| unfinished.contains(&s.def.name))
            .cloned()
            .collect(),
        ..plan.clone()
    };
    let states = match writer.read_state().await {
        Ok(states) => states,
        Err(error) => return Remaining::Unknown(error),
    };
    match estimate::estimate(
        client,
        &rest,
        &states,
        &Default::default(),
        estimate::Purpose::RestOfRun,
    )
    .await
    {
        Ok(estimate) => Remaining::Estimated {
            streams: unfinished,
            requests: estimate.total_requests(),
            tokens: estimate.total_tokens(),
            usable_per_day: estimate.usable_per_day(),
            probe_requests: estimate.probe_requests,
            probe_tokens: estimate.probe_tokens,
        },
        Err(error) => Remaining::Unknown(error.to_string()),
    }
}

/// Records a run that ended at its first request, every planned stream failed with its
/// reason: the runs table shows failed runs too.
async fn record_refused_run(
    destination: &mut dyn Destination,
    client: &Client,
    run_start: &RunStart,
    plan: &SyncPlan,
    error: &RunError,
) {
    let failure = match error {
        RunError::Client(error) => match error.exit_class() {
            ErrorClass::Auth => Failure::Auth,
            ErrorClass::Temporary => Failure::Temporary,
            ErrorClass::Permanent | ErrorClass::NotAvailable => Failure::Other,
        },
        RunError::Destination(_) => Failure::Destination,
        RunError::NotPipedrive(_) | RunError::OtherCompany(_) => Failure::Other,
        RunError::Config(_) => Failure::Config,
    };
    let message = error.to_string();
    let reports: Vec<StreamReport> = plan
        .streams
        .iter()
        .map(|stream| StreamReport {
            stream: stream.def.name,
            records: 0,
            requests: 0,
            tokens: 0,
            seconds: 0.0,
            outcome: Outcome::Incomplete {
                failure,
                message: message.clone(),
            },
        })
        .collect();
    let run = run_start.finish(client, &reports, Some((failure, &message)));
    if let Err(error) = destination.record_run(&run).await {
        tracing::warn!(%error, "the run's record was not written");
    }
}

/// The Pipedrive company the client's credentials belong to.
pub(crate) struct Company {
    pub(crate) id: Option<u64>,
    pub(crate) domain: String,
}

/// `/v1/users/me`: the user the credentials belong to, with their company.
pub async fn current_user(client: &Client) -> Result<Value, ClientError> {
    let me = client
        .send(&pipedrive_client::Request {
            token_cost: 2,
            ..pipedrive_client::Request::new("/api/v1/users/me")
        })
        .await?;
    Ok(me
        .items
        .first()
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .unwrap_or_default())
}

pub(crate) async fn company_of(client: &Client) -> Result<Company, RunError> {
    let user = match current_user(client).await {
        Ok(user) => user,
        Err(ClientError::NotFound { path }) => {
            return Err(RunError::NotPipedrive(format!(
                "Pipedrive answered 404 Not Found for {path}, which every company has: source.base_url ({}) does not lead to Pipedrive's API; write the address without a path (e.g. https://mycompany.pipedrive.com), or with the prefix a proxy serves it under",
                client.base_url()
            )));
        }
        Err(error) => return Err(error.into()),
    };
    Ok(Company {
        id: user.get("company_id").and_then(Value::as_u64),
        domain: user
            .get("company_domain")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned(),
    })
}

/// Refuses to load one company's data over another's: rows would merge by id across the two.
fn refuse_another_company(
    states: &SyncState,
    company_id: u64,
    domain: &str,
    plan: &SyncPlan,
    target: String,
) -> Result<(), RunError> {
    // Only the streams this run writes: another stream's table keeps its company's rows
    // untouched, and is refused when a run selects it.
    let Some((stream, other)) = plan
        .streams
        .iter()
        .filter_map(|stream| Some((stream.def.name, states.get(stream.def.name)?.company_id?)))
        .find(|(_, id)| *id != company_id)
    else {
        return Ok(());
    };
    if plan.allow_other_company {
        tracing::warn!(
            stream,
            previous = other,
            now = company_id,
            "loading another company's data into this target, as --allow-other-company asks"
        );
        return Ok(());
    }
    Err(RunError::OtherCompany(format!(
        "{target} holds the data of Pipedrive company {other} (stream `{stream}`), and the source's credentials belong to company {company_id} ({domain}.pipedrive.com): loading it would mix two companies in the same tables. Point target.path (or target.schema) at a target of its own, or pass --allow-other-company if this data should now follow the other company"
    )))
}

/// Reads the records of the `*_fields` streams `wanted` names. One whose read fails is left
/// out (with a warning), so the streams it defines keep raw custom-field keys.
pub async fn read_field_definitions(
    client: &Client,
    wanted: Vec<&'static StreamDef>,
) -> FieldDefinitions {
    // Read at once: no stream starts before they are in, so one at a time would idle the
    // burst window for a few round trips.
    futures::stream::iter(wanted)
        .map(|def| async move {
            let request =
                source::request(def, def.path.to_owned(), Vec::new(), PagePosition::First);
            (def, client.pages(request).try_collect::<Vec<_>>().await)
        })
        .buffer_unordered(FIELD_READS_AT_ONCE)
        .filter_map(|(def, read)| async move {
            match read {
                Ok(pages) => {
                    let records = pages
                        .iter()
                        .flat_map(|p| p.items.iter())
                        .filter_map(|raw| serde_json::from_str::<Value>(raw.get()).ok())
                        .collect();
                    Some((def.name, Arc::new(records)))
                }
                Err(error) => {
                    tracing::warn!(stream = def.name, %error, "field definitions unavailable; custom fields keep their keys");
                    None
                }
            }
        })
        .collect()
        .await
}

/// Field-definition lists requested at once at the start of a run.
const FIELD_READS_AT_ONCE: usize = 8;

/// One row per custom field of every stream that has them: the field's key, name, type and
/// options, and the column it lands in (as the stream's worker assigns it in this run).
fn custom_field_rows(definitions: &FieldDefinitions, states: &SyncState) -> Vec<Value> {
    let mut rows = Vec::new();
    for def in catalog::CATALOG {
        let Some(custom) = def.custom_fields else {
            continue;
        };
        let (Some(records), Some(shape)) = (
            definitions.get(custom.defined_by),
            catalog::find(custom.defined_by).and_then(|d| d.field_definitions),
        ) else {
            continue;
        };
        let fields = FieldCatalog::from_definitions(records, shape);
        let mut columns = states
            .get(def.name)
            .map(|s| s.custom_columns.clone())
            .unwrap_or_default();
        assign_custom_columns(def, &fields, &mut columns);
        for (key, field) in &fields.custom {
            let mut options: Vec<(&String, &String)> = field.options.iter().collect();
            options.sort();
            rows.push(serde_json::json!({
                "stream": def.name,
                "field_key": key,
                "field_name": field.name,
                "field_type": field.field_type,
                "column_name": columns.get(key),
                "options": options.into_iter().map(|(id, label)| serde_json::json!({"id": id, "label": label})).collect::<Vec<_>>(),
            }));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::plan::looked_back;
    use super::walk::{StreamError, outcome_of};
    use super::*;
    use crate::schema::{ColumnType, normalize_timestamp};
    use crate::transform::RecordTransform;

    #[test]
    fn a_lookback_moves_the_bookmark_back_in_its_own_form() {
        let five_minutes = std::time::Duration::from_secs(300);
        assert_eq!(
            looked_back("2026-11-01T00:02:00Z", five_minutes),
            "2026-10-31T23:57:00Z"
        );
        assert_eq!(
            looked_back("2026-11-01T00:02:00Z", std::time::Duration::ZERO),
            "2026-11-01T00:02:00Z"
        );
        // A bookmark that is no timestamp is left as it is rather than guessed at.
        assert_eq!(looked_back("not a time", five_minutes), "not a time");
    }

    #[test]
    fn only_gated_streams_are_skipped_when_pipedrive_says_not_found() {
        let not_found = |stream| {
            outcome_of(
                StreamError::Client(ClientError::NotFound {
                    path: "/api/v1/x".to_owned(),
                }),
                stream,
            )
        };
        assert!(matches!(not_found("projects"), Outcome::Skipped(_)));
        assert!(matches!(not_found("goals"), Outcome::Skipped(_)));
        match not_found("currencies") {
            Outcome::Incomplete {
                failure: Failure::Other,
                message,
            } => assert!(message.contains("source.base_url"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            not_found("deal_fields"),
            Outcome::Incomplete { .. }
        ));
    }

    #[test]
    fn timestamps_normalise_to_whole_utc_seconds() {
        assert_eq!(
            normalize_timestamp("2024-01-02 03:04:05").as_deref(),
            Some("2024-01-02T03:04:05Z")
        );
        assert_eq!(
            normalize_timestamp("2024-01-02T03:04:05.678Z").as_deref(),
            Some("2024-01-02T03:04:05Z")
        );
        assert_eq!(
            normalize_timestamp("2024-01-02T05:04:05+02:00").as_deref(),
            Some("2024-01-02T03:04:05Z")
        );
        assert_eq!(normalize_timestamp("yesterday"), None);
    }

    #[test]
    fn a_child_stop_signal_stops_with_its_parents_but_not_them() {
        let process = StopSignal::default();
        let company = process.child();
        let other = process.child();
        let nested = company.child();
        company.stop();
        assert!(company.is_stopped() && nested.is_stopped());
        assert!(!process.is_stopped() && !other.is_stopped());
        process.stop();
        assert!(other.is_stopped());
    }

    #[test]
    fn rows_align_dedupe_and_track_the_newest_cursor() {
        let def = catalog::find("deals").unwrap();
        let items: Vec<Box<serde_json::value::RawValue>> = [
            r#"{"id":1,"title":"a","update_time":"2024-01-01T00:00:00Z"}"#,
            r#"{"id":2,"value":3.5,"update_time":"2024-01-03T00:00:00Z"}"#,
            r#"{"id":1,"title":"b","value":2,"update_time":"2024-01-02T00:00:00Z"}"#,
        ]
        .iter()
        .map(|s| serde_json::value::RawValue::from_string((*s).to_owned()).unwrap())
        .collect();
        let records = source::parse_records(def, &items, None, false);
        let newest = source::newest_cursor(def.cursor_field, &records);
        let Rows { columns, rows, .. } = build_rows(def, &RecordTransform::default(), records);
        let names: Vec<_> = columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "id",
                "title",
                "update_time",
                "_deleted",
                "_deleted_at",
                "value"
            ]
        );
        assert_eq!(columns[3].ty, ColumnType::Boolean);
        assert_eq!(columns[4].ty, ColumnType::Timestamp);
        assert_eq!(columns[5].ty, ColumnType::Double);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][1], Value::from("b"));
        assert_eq!(newest.as_deref(), Some("2024-01-03T00:00:00Z"));
    }
}
