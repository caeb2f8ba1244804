//! Destinations, each one implementation of [`pipedrive_engine::Destination`].

#[cfg(feature = "duckdb")]
pub mod duckdb;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sql;
