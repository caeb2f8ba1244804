//! Destinations, each one implementation of [`pipedrive_engine::Destination`].

#[cfg(feature = "duckdb")]
pub mod duckdb;
pub mod sql;
