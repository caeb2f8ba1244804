//! DuckDB: the embedded default. Each page is appended (as a typed Arrow batch) into a temporary
//! table, then merged into the stream's table together with the state row, in one transaction
//! (the SQL core's, over [`DuckDbSession`]).

pub mod config;
#[cfg(feature = "duckdb")]
mod database;
#[cfg(feature = "duckdb")]
mod fresh_tables;
#[cfg(feature = "duckdb")]
mod merge;
#[cfg(feature = "duckdb")]
mod session;

#[cfg(feature = "duckdb")]
use self::database::*;
#[cfg(feature = "duckdb")]
pub use self::database::{DuckDb, install_models, open_offline};
#[cfg(feature = "duckdb")]
use self::fresh_tables::FreshTables;
#[cfg(feature = "duckdb")]
pub use self::session::DuckDbSession;
#[cfg(feature = "duckdb")]
pub use crate::sql::STATE_TABLE;
