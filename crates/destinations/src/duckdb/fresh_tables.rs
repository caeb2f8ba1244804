//! Which pages can skip the merge: a table this connection created holds only the rows it
//! wrote, so a page none of whose leading keys it has written replaces no row and can be
//! appended as is, and children of parents it has no rows for need no delete. A first sync
//! reads every record once, in update order rather than id order, so nearly every page of
//! it qualifies.

use std::collections::HashMap;
use std::hash::Hash;

use roaring::RoaringTreemap;

/// Tables created by this connection, each with the integer values written since into the
/// columns it tracks (compressed bitmaps: a few bytes per row). A table absent here may hold
/// anything.
#[derive(Debug)]
pub(crate) struct FreshTables<T> {
    tables: HashMap<T, Written>,
}

#[derive(Debug, Default)]
struct Written {
    /// Whether any row went in; until then every column is known to hold nothing.
    any_rows: bool,
    /// Every value of these columns, for every row written (ids as their two's-complement bits).
    values: HashMap<String, RoaringTreemap>,
}

impl<T> Default for FreshTables<T> {
    fn default() -> FreshTables<T> {
        FreshTables {
            tables: HashMap::new(),
        }
    }
}

impl<T: Hash + Eq + Clone> FreshTables<T> {
    /// The table was just created, empty, by this connection.
    pub(crate) fn created(&mut self, table: &T) {
        self.tables.insert(table.clone(), Written::default());
    }

    /// Rows the connection did not write itself went in (or the table went away).
    pub(crate) fn forget(&mut self, table: &T) {
        self.tables.remove(table);
    }

    /// A transaction rolled back: any table may be gone or hold what it held before.
    pub(crate) fn forget_all(&mut self) {
        self.tables.clear();
    }

    /// Whether no row of the table holds any of `ids` in `column`.
    pub(crate) fn none_hold(
        &self,
        table: &T,
        column: &str,
        mut ids: impl Iterator<Item = i64>,
    ) -> bool {
        match self.tables.get(table) {
            None => false,
            Some(written) if !written.any_rows => true,
            Some(written) => written
                .values
                .get(column)
                .is_some_and(|values| ids.all(|id| !values.contains(id as u64))),
        }
    }

    /// Rows went in with these values in the tracked columns (nulls left out: no key or parent
    /// id equals them); `None` for a column with a value that is not an integer, which nothing
    /// is known about from then on. The first rows choose the columns: a column missing from
    /// a later write is forgotten, since its rows' values were not recorded.
    pub(crate) fn wrote(&mut self, table: &T, columns: &[(&str, Option<Vec<i64>>)]) {
        let Some(written) = self.tables.get_mut(table) else {
            return;
        };
        if !written.any_rows {
            written.any_rows = true;
            for (column, _) in columns {
                written
                    .values
                    .insert((*column).to_owned(), RoaringTreemap::new());
            }
        }
        written.values.retain(|column, values| {
            match columns.iter().find(|(name, _)| name == column) {
                Some((_, Some(ids))) => {
                    values.extend(ids.iter().map(|&id| id as u64));
                    true
                }
                _ => false,
            }
        });
    }
}

/// The smallest and largest of some ids; `None` when there are none.
pub(crate) fn bounds(ids: impl Iterator<Item = i64>) -> Option<(i64, i64)> {
    ids.fold(None, |range, id| match range {
        None => Some((id, id)),
        Some((low, high)) => Some((low.min(id), high.max(id))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tables_created_here_are_known_to_lack_keys_not_written() {
        let mut fresh = FreshTables::default();
        assert!(
            !fresh.none_hold(&"deals", "id", [1].into_iter()),
            "an unknown table may hold anything"
        );
        fresh.created(&"deals");
        assert!(fresh.none_hold(&"deals", "id", [1].into_iter()));
        assert!(fresh.none_hold(&"deals", "anything", [1].into_iter()));
        fresh.wrote(
            &"deals",
            &[("id", Some(vec![10, 4, -3])), ("org_id", Some(vec![7]))],
        );
        assert!(fresh.none_hold(&"deals", "id", [11, 5, 3].into_iter()));
        assert!(!fresh.none_hold(&"deals", "id", [11, 4].into_iter()));
        assert!(!fresh.none_hold(&"deals", "id", [-3].into_iter()));
        assert!(!fresh.none_hold(&"deals", "org_id", [7].into_iter()));
        assert!(
            !fresh.none_hold(&"deals", "owner_id", [1].into_iter()),
            "a column not tracked from the first rows is unknown"
        );
        fresh.wrote(&"deals", &[("id", Some(vec![20]))]);
        assert!(!fresh.none_hold(&"deals", "id", [20].into_iter()));
        assert!(
            !fresh.none_hold(&"deals", "org_id", [8].into_iter()),
            "a column missing from a write is forgotten"
        );
        fresh.wrote(&"deals", &[("id", None)]);
        assert!(
            !fresh.none_hold(&"deals", "id", [99].into_iter()),
            "text keys end what is known"
        );
        fresh.created(&"notes");
        fresh.forget_all();
        assert!(!fresh.none_hold(&"notes", "id", [1].into_iter()));
        fresh.wrote(&"notes", &[("id", Some(vec![1]))]);
        assert!(
            !fresh.none_hold(&"notes", "id", [2].into_iter()),
            "writing does not make a table known"
        );
    }

    #[test]
    fn bounds_span_every_id() {
        assert_eq!(bounds([5, -2, 9, 0].into_iter()), Some((-2, 9)));
        assert_eq!(bounds(std::iter::empty()), None);
    }
}
