//! The SQL destinations' one core: merge, evolve, deletes, state and run records written once
//! over a [`Session`] (a database's dialect and how it runs statements), which DuckDB and
//! PostgreSQL each implement in their own folder. Column names come from users' custom-field
//! names, so every identifier is quoted, always.

#[cfg(any(feature = "duckdb", feature = "postgres"))]
mod deletes;
#[cfg(any(feature = "duckdb", feature = "postgres"))]
mod destination;
#[cfg(any(feature = "duckdb", feature = "postgres"))]
pub mod models;
pub mod runs;
#[cfg(any(feature = "duckdb", feature = "postgres"))]
pub mod session;
#[cfg(any(feature = "duckdb", feature = "postgres"))]
mod tables;
#[cfg(all(test, feature = "duckdb", feature = "postgres"))]
mod tests;
pub mod views;

#[cfg(any(feature = "duckdb", feature = "postgres"))]
pub use destination::{STATE_TABLE, SqlDestination};

/// The column every row's sync time is stamped into.
pub const SYNCED_AT: &str = "_synced_at";

/// `name` as a double-quoted SQL identifier, inner quotes doubled.
pub fn quote(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for c in name.chars() {
        if c == '"' {
            quoted.push('"');
        }
        if c != '\0' {
            quoted.push(c);
        }
    }
    quoted.push('"');
    quoted
}

/// `"a", "b"`: the columns' names, quoted, for an INSERT's column list and its SELECT.
pub fn column_list(columns: &[pipedrive_engine::schema::Column]) -> String {
    columns
        .iter()
        .map(|c| quote(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `'text'` as a SQL string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `"schema"."table"`.
pub fn quote_table(schema: &str, table: &str) -> String {
    format!("{}.{}", quote(schema), quote(table))
}

#[cfg(test)]
mod quoting_tests {
    use super::*;

    #[test]
    fn quotes_hostile_names() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(
            quote("a\"b; DROP TABLE x; --"),
            "\"a\"\"b; DROP TABLE x; --\""
        );
        assert_eq!(quote("nul\0byte"), "\"nulbyte\"");
        assert_eq!(quote_table("s", "t"), "\"s\".\"t\"");
    }
}
