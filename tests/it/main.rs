//! The one integration-test binary (every binary linking DuckDB costs a gigabyte and a long
//! link). Tests run the simulator in-process and the real `pipedrive-sync` binary against it.

mod bad_input;
mod budget;
mod churn;
mod cli;
mod clients;
mod companies;
mod conformance;
mod controls;
mod convergence;
mod crash;
mod deletes_history;
mod follow;
mod identifiers;
mod merges;
mod models;
mod plan;
mod protocols;
mod report;
mod secrets;
mod support;
mod sync_duckdb;
mod sync_files;
mod sync_postgres;
mod wide_tables;
