//! Destinations, each one implementation of [`pipedrive_engine::Destination`].

#![forbid(unsafe_code)]

pub mod airbyte;
#[cfg(any(feature = "files", feature = "duckdb"))]
mod arrow_rows;
#[cfg(feature = "duckdb")]
pub mod duckdb;
#[cfg(feature = "files")]
pub mod files;
#[cfg(feature = "duckdb")]
mod fresh_tables;
pub mod json_schema;
pub mod models;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod runs;
pub mod singer;
pub mod sql;
