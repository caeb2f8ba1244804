//! One module per command; `main` parses the command line and dispatches here.

pub(crate) mod check;
pub(crate) mod demo;
pub(crate) mod discover;
pub(crate) mod follow;
pub(crate) mod models;
pub(crate) mod plan;
pub(crate) mod protocols;
pub(crate) mod report;
pub(crate) mod sim;
pub(crate) mod state;
pub(crate) mod sync;
