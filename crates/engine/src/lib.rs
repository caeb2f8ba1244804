//! The sync engine: the stream catalog (as data), sync state, record transforms, the
//! destination trait and the concurrent runner that ties them to the client.

#![forbid(unsafe_code)]

pub mod catalog;
pub mod columnar;
pub mod controls;
pub mod declared;
pub mod destination;
pub mod follow;
pub mod history;
pub mod pages;
pub mod report;
pub mod runner;
pub mod runs;
pub mod schema;
pub mod source;
pub mod state;
pub mod transform;

pub use catalog::{CATALOG, StreamDef};
pub use destination::{Batch, Destination, DestinationError, Missing, Present, TableRef};
pub use report::{Failure, Outcome, Remaining, StreamReport};
pub use runner::estimate;
pub use runner::{
    Observer, RunError, StopSignal, StreamPlan, SyncMode, SyncPlan, SyncReport, current_user,
    definitions_wanted, read_field_definitions, run, run_with_definitions,
};
pub use runs::{RunRecord, RunStatus, StreamRun, Timeline};
pub use state::{StreamState, SyncState};
