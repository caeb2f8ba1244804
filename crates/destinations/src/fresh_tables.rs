//! Which pages can skip the merge: a table this connection created holds only the rows it
//! wrote, so a page whose leading keys all lie above every one written so far replaces none
//! and can be appended as is. A first sync or a full refresh reads ids in ascending order, so
//! nearly every page of it qualifies.

use std::collections::HashMap;
use std::hash::Hash;

/// Tables created by this connection, each with the highest leading key (an integer) written
/// into it since (`None`: no row yet). A table absent here may hold anything.
#[derive(Debug)]
pub(crate) struct FreshTables<T> {
    highest: HashMap<T, Option<i64>>,
}

impl<T> Default for FreshTables<T> {
    fn default() -> FreshTables<T> {
        FreshTables {
            highest: HashMap::new(),
        }
    }
}

impl<T: Hash + Eq + Clone> FreshTables<T> {
    /// The table was just created, empty, by this connection.
    pub(crate) fn created(&mut self, table: &T) {
        self.highest.insert(table.clone(), None);
    }

    /// Rows the connection did not write itself went in (or the table went away).
    pub(crate) fn forget(&mut self, table: &T) {
        self.highest.remove(table);
    }

    /// A transaction rolled back: any table may be gone or hold what it held before.
    pub(crate) fn forget_all(&mut self) {
        self.highest.clear();
    }

    /// Whether every row of the table has a leading key below `low`.
    pub(crate) fn all_below(&self, table: &T, low: i64) -> bool {
        self.highest
            .get(table)
            .is_some_and(|highest| highest.is_none_or(|highest| highest < low))
    }

    /// Rows with leading keys up to `high` were written; `None`: keys that are not integers,
    /// which nothing is known to lie above.
    pub(crate) fn wrote(&mut self, table: &T, high: Option<i64>) {
        match (high, self.highest.get_mut(table)) {
            (Some(high), Some(highest)) => *highest = Some(highest.map_or(high, |h| h.max(high))),
            (None, Some(_)) => self.forget(table),
            (_, None) => {}
        }
    }
}

/// The smallest and largest of some ids; `None` when there are none.
pub(crate) fn bounds(ids: impl Iterator<Item = i64>) -> Option<(i64, i64)> {
    ids.fold(None, |range, id| match range {
        None => Some((id, id)),
        Some((low, high)) => Some((low.min(id), high.max(id))),
    })
}

/// The range of a replaced set of parents, when all are integers.
pub(crate) fn parent_bounds(parents: &[serde_json::Value]) -> Option<(i64, i64)> {
    let ids: Option<Vec<i64>> = parents.iter().map(serde_json::Value::as_i64).collect();
    bounds(ids?.into_iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tables_created_here_are_known_empty_above_their_highest_key() {
        let mut fresh = FreshTables::default();
        assert!(
            !fresh.all_below(&"deals", 1),
            "an unknown table may hold anything"
        );
        fresh.created(&"deals");
        assert!(fresh.all_below(&"deals", i64::MIN));
        fresh.wrote(&"deals", Some(10));
        fresh.wrote(&"deals", Some(4));
        assert!(fresh.all_below(&"deals", 11));
        assert!(!fresh.all_below(&"deals", 10));
        fresh.wrote(&"deals", None);
        assert!(
            !fresh.all_below(&"deals", 11),
            "text keys end what is known"
        );
        fresh.created(&"notes");
        fresh.forget_all();
        assert!(!fresh.all_below(&"notes", 1));
        fresh.wrote(&"notes", Some(1));
        assert!(
            !fresh.all_below(&"notes", 2),
            "writing does not make a table known"
        );
    }

    #[test]
    fn bounds_span_every_id() {
        assert_eq!(bounds([5, -2, 9, 0].into_iter()), Some((-2, 9)));
        assert_eq!(bounds(std::iter::empty()), None);
        assert_eq!(
            parent_bounds(&[serde_json::json!(3), serde_json::json!(1)]),
            Some((1, 3))
        );
        assert_eq!(
            parent_bounds(&[serde_json::json!(3), serde_json::json!("x")]),
            None
        );
    }
}
