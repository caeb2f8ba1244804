//! PostgreSQL. Each page replaces the rows with its keys (deleted by key), then is sent by binary
//! COPY into the stream's table, together with the state row, in one transaction (the SQL
//! core's, over [`PostgresSession`]). Tables made elsewhere need no key constraint: the merge
//! does not rely on one.

pub mod config;
#[cfg(feature = "postgres")]
mod database;
#[cfg(feature = "postgres")]
mod encode;
#[cfg(feature = "postgres")]
mod merge;
#[cfg(feature = "postgres")]
mod names;
#[cfg(feature = "postgres")]
mod session;
#[cfg(all(test, feature = "postgres"))]
pub(crate) mod tests;
#[cfg(feature = "postgres")]
mod tls;

pub use self::config::MAX_IDENTIFIER_BYTES;
#[cfg(feature = "postgres")]
use self::database::*;
#[cfg(feature = "postgres")]
pub use self::database::{Postgres, connect, install_models};
#[cfg(feature = "postgres")]
pub use self::names::stored_name;
#[cfg(feature = "postgres")]
pub use self::session::PostgresSession;
#[cfg(feature = "postgres")]
pub use crate::sql::STATE_TABLE;
