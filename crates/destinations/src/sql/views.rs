//! What installing the analytics views (`models.rs`) takes and gives. Compiled in every build:
//! a config's target names it before any database is opened.

use std::collections::BTreeMap;

use pipedrive_engine::TableRef;

/// The history table's input name: not a stream of its own, but deals with `history: true`.
pub(crate) const DEALS_HISTORY: &str = "deals_history";

/// Where the views read from and go to, as the config names them.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// The schema the views are created in: the deals table's.
    pub schema: String,
    /// Stream name → its table, for the selected streams (`deals_history` added for deals).
    pub tables: BTreeMap<String, TableRef>,
}

impl Inputs {
    /// From the config's selected streams (name and table). The views go beside the deals
    /// table, or into `fallback_schema` (the state schema) when deals are not selected.
    pub fn new<'a>(
        streams: impl IntoIterator<Item = (&'a str, &'a TableRef)>,
        fallback_schema: &str,
    ) -> Inputs {
        let mut tables: BTreeMap<String, TableRef> = streams
            .into_iter()
            .map(|(name, table)| (name.to_owned(), table.clone()))
            .collect();
        if let Some(deals) = tables.get("deals").cloned() {
            tables.insert(DEALS_HISTORY.to_owned(), deals.history());
        }
        let schema = tables
            .get("deals")
            .map_or_else(|| fallback_schema.to_owned(), |t| t.schema.clone());
        Inputs { schema, tables }
    }
}

/// What `install` did with one view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Created or replaced, as `schema.view`.
    Created { view: &'static str, at: String },
    /// Not created; `reason` names the missing input and the fix.
    Skipped { view: &'static str, reason: String },
}
