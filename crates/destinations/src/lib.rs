//! Destinations, each one implementation of [`pipedrive_engine::Destination`].

#![forbid(unsafe_code)]

pub mod airbyte;
#[cfg(any(feature = "files", feature = "duckdb"))]
mod arrow_rows;
pub mod duckdb;
pub mod files;
pub mod json_schema;
pub mod postgres;
pub mod registry;
pub mod singer;
pub mod sql;
pub mod target;
