//! Destinations, each one implementation of [`pipedrive_engine::Destination`].

#![forbid(unsafe_code)]

pub mod airbyte;
#[cfg(any(feature = "files", feature = "duckdb"))]
mod arrow_rows;
#[cfg(feature = "duckdb")]
pub mod duckdb;
#[cfg(feature = "files")]
pub mod files;
pub mod json_schema;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod singer;
pub mod sql;
