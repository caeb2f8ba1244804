//! The writer task: one per destination handle, applying the writes queued to it one at a
//! time, each committed with the stream states it makes true.

use arrow::record_batch::RecordBatch;
use tokio::sync::{mpsc, oneshot};

use crate::columnar;
use crate::destination::{Batch, Destination, DestinationError, Missing, Present, TableRef};
use crate::runs::RunRecord;
use crate::schema::Column;
use crate::state::{StreamState, SyncState};
use serde_json::Value;

/// One table's share of a commit.
pub(super) struct TableWrite {
    pub(super) stream: &'static str,
    pub(super) table: TableRef,
    pub(super) primary_key: &'static [&'static str],
    pub(super) columns: Vec<Column>,
    /// The rows, one array per column (see [`records_of`]).
    pub(super) records: RecordBatch,
    /// Rows whose `.0` column holds one of `.1` are removed first.
    pub(super) replace: Option<(&'static str, Vec<Value>)>,
    pub(super) state: StreamState,
    /// Versions for a history table.
    pub(super) history: bool,
}

/// The rows of `columns` as the record batch every destination reads: built by the walk, before
/// the page queues for the writer, so it waits as arrays rather than as JSON values.
pub(super) fn records_of(
    stream: &str,
    columns: &[Column],
    rows: &[Vec<Value>],
) -> Result<RecordBatch, String> {
    columnar::record_batch(columns, rows).map_err(|misfit| format!("stream {stream}: {misfit}"))
}

/// A write for the writer task, answered once committed.
pub(super) enum WriteOp {
    /// Rows and states of one or more tables, committed in one transaction.
    Rows(Vec<TableWrite>),
    Replace {
        stream: &'static str,
        staging: TableRef,
        target: TableRef,
        state: StreamState,
    },
    Drop(TableRef),
    /// The finished run's record.
    RecordRun(Box<RunRecord>),
    /// Every stream's committed state, read after the writes queued before it.
    ReadState(oneshot::Sender<SyncState>),
    KeepDeleted {
        stream: &'static str,
        table: TableRef,
        key: &'static str,
        present: PresentRows,
        deleted_at: String,
        state: StreamState,
    },
}

/// `Present`, owned for the trip to the writer.
pub(super) enum PresentRows {
    Keys(Vec<Value>),
    Reloaded(TableRef),
}

pub(super) type Ack = oneshot::Receiver<Result<(), String>>;

#[derive(Clone)]
pub(super) struct Writer {
    tx: mpsc::Sender<(WriteOp, oneshot::Sender<Result<(), String>>)>,
}

/// Writers at most, each with its own handle on the destination (see
/// [`Destination::fork`]).
pub(super) const WRITERS: usize = 2;

impl Writer {
    /// A task that applies the writes queued to it, one at a time, until the first failure.
    pub(super) fn start(
        mut destination: Box<dyn Destination>,
        synced_at: String,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        // Pages waiting for the writers are most of the memory a sync holds: keep the queues
        // short, four pages across all of them.
        let (tx, mut rx) =
            mpsc::channel::<(WriteOp, oneshot::Sender<Result<(), String>>)>(4 / WRITERS);
        let task = tokio::spawn(async move {
            let mut next = None;
            loop {
                let (op, ack) = match next.take() {
                    Some(queued) => queued,
                    None => match rx.recv().await {
                        Some(received) => received,
                        None => break,
                    },
                };
                // Pages of other walks already waiting join this one's transaction (a group
                // commit): one commit, and one state write, for all of them, in the order
                // they were queued.
                let (op, acks) = match op {
                    WriteOp::Rows(mut writes) => {
                        let mut acks = vec![ack];
                        while let Ok((queued, ack)) = rx.try_recv() {
                            match queued {
                                WriteOp::Rows(more) => {
                                    writes.extend(more);
                                    acks.push(ack);
                                }
                                other => {
                                    next = Some((other, ack));
                                    break;
                                }
                            }
                        }
                        (WriteOp::Rows(writes), acks)
                    }
                    other => (other, vec![ack]),
                };
                let result = apply(destination.as_mut(), op, &synced_at)
                    .await
                    .map_err(|e| e.message);
                let failed = result.is_err();
                for ack in acks {
                    let _ = ack.send(result.clone());
                }
                if failed {
                    break;
                }
            }
        });
        (Writer { tx }, task)
    }

    /// Queues a write; the returned receiver resolves when it is committed.
    pub(super) async fn submit(&self, op: WriteOp) -> Result<Ack, String> {
        let (ack_tx, ack_rx) = oneshot::channel();
        self.tx
            .send((op, ack_tx))
            .await
            .map_err(|_| "the destination writer stopped".to_owned())?;
        Ok(ack_rx)
    }

    pub(super) async fn commit(&self, op: WriteOp) -> Result<(), String> {
        wait(self.submit(op).await?).await
    }

    /// Every stream's committed state.
    pub(super) async fn read_state(&self) -> Result<SyncState, String> {
        let (reply, state) = oneshot::channel();
        self.commit(WriteOp::ReadState(reply)).await?;
        state
            .await
            .map_err(|_| "the destination writer stopped".to_owned())
    }
}

pub(super) async fn wait(ack: Ack) -> Result<(), String> {
    ack.await
        .unwrap_or_else(|_| Err("the destination writer stopped".to_owned()))
}

async fn apply(
    destination: &mut dyn Destination,
    op: WriteOp,
    synced_at: &str,
) -> Result<(), DestinationError> {
    match op {
        WriteOp::Rows(writes) => {
            let batches: Vec<Batch<'_>> = writes
                .iter()
                .map(|w| Batch {
                    stream: w.stream,
                    table: &w.table,
                    primary_key: w.primary_key,
                    columns: &w.columns,
                    records: &w.records,
                    replace_parents: w
                        .replace
                        .as_ref()
                        .map(|(column, values)| (*column, values.as_slice())),
                    state: &w.state,
                    synced_at,
                    history: w.history,
                })
                .collect();
            destination.write(&batches).await
        }
        WriteOp::KeepDeleted {
            stream,
            table,
            key,
            present,
            deleted_at,
            state,
        } => {
            let present = match &present {
                PresentRows::Keys(keys) => Present::Keys(keys),
                PresentRows::Reloaded(staging) => Present::Reloaded(staging),
            };
            let marked = destination
                .keep_deleted(&Missing {
                    stream,
                    table: &table,
                    key,
                    present,
                    deleted_at: &deleted_at,
                    state: &state,
                })
                .await?;
            if marked > 0 {
                tracing::info!(
                    stream,
                    rows = marked,
                    "rows no longer in Pipedrive marked deleted"
                );
            }
            Ok(())
        }
        WriteOp::Replace {
            stream,
            staging,
            target,
            state,
        } => destination.replace(stream, &staging, &target, &state).await,
        WriteOp::Drop(table) => destination.drop_table(&table).await,
        WriteOp::RecordRun(run) => destination.record_run(&run).await,
        WriteOp::ReadState(reply) => {
            let _ = reply.send(destination.read_state().await?);
            Ok(())
        }
    }
}
