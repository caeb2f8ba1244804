//! The stream catalog, as data: one row per stream.
//!
//! The engine reads these rows and never matches on a stream's name, so adding a stream is
//! adding a row. Token costs are the specs' `x-token-cost` values.

use serde::Serialize;

/// Which Pipedrive API generation serves a stream; it decides the record layout of custom fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    V1,
    V2,
}

/// How an endpoint pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum PagingKind {
    /// One response holds everything.
    None,
    /// v1 `start`/`limit`.
    Offset { limit: u32 },
    /// v2 (and a few v1) `cursor`/`limit`.
    Cursor { limit: u32 },
}

/// How a stream can be read incrementally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Incremental {
    /// Only full refresh: the endpoint has no server-side change filter.
    None,
    /// Server-side `param >= bookmark`, sorted ascending on the cursor field by `sort`.
    UpdatedSince {
        param: &'static str,
        sort: &'static [(&'static str, &'static str)],
    },
}

/// Where a stream's custom fields live in its records and which stream defines them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CustomFields {
    /// The `*_fields` stream that names the 40-character keys.
    pub defined_by: &'static str,
    pub layout: CustomFieldLayout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomFieldLayout {
    /// v1: hash keys at the top level, subfields as `<hash>_<suffix>`.
    Flat,
    /// v2: under `custom_fields`, subfields inside an object value.
    Nested,
}

/// What a `*_fields` stream's records look like, so their custom fields can be named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FieldDefinitions {
    /// Record key holding the field's 40-hex (or built-in) key.
    pub key: &'static str,
    /// Record key holding the human name.
    pub name: &'static str,
}

/// One stream: everything the engine needs to read, key and load it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct StreamDef {
    pub name: &'static str,
    pub path: &'static str,
    pub api: ApiVersion,
    pub paging: PagingKind,
    pub token_cost: u32,
    pub primary_key: &'static [&'static str],
    /// The record field that moves when the record changes; the incremental bookmark.
    pub cursor_field: Option<&'static str>,
    pub incremental: Incremental,
    /// Query parameters sent on every request, e.g. deals' `status` to include deleted ones.
    pub fixed_query: &'static [(&'static str, &'static str)],
    /// Records under `data.<items_path>` instead of `data`.
    pub items_path: Option<&'static str>,
    pub custom_fields: Option<CustomFields>,
    /// Set on `*_fields` streams: how to read a field definition.
    pub field_definitions: Option<FieldDefinitions>,
}

impl StreamDef {
    pub fn supports_incremental(&self) -> bool {
        !matches!(self.incremental, Incremental::None)
    }
}

const V2_LIST: PagingKind = PagingKind::Cursor { limit: 500 };
const V1_LIST: PagingKind = PagingKind::Offset { limit: 500 };
const ID: &[&str] = &["id"];
const SORT_V2_UPDATE_TIME: &[(&str, &str)] =
    &[("sort_by", "update_time"), ("sort_direction", "asc")];
const SORT_V1_UPDATE_TIME: &[(&str, &str)] = &[("sort", "update_time ASC")];
const V2_UPDATED_SINCE: Incremental = Incremental::UpdatedSince {
    param: "updated_since",
    sort: SORT_V2_UPDATE_TIME,
};
const V1_UPDATED_SINCE: Incremental = Incremental::UpdatedSince {
    param: "updated_since",
    sort: SORT_V1_UPDATE_TIME,
};
const V2_FIELDS: Option<FieldDefinitions> = Some(FieldDefinitions {
    key: "field_code",
    name: "field_name",
});
const V1_FIELDS: Option<FieldDefinitions> = Some(FieldDefinitions {
    key: "key",
    name: "name",
});

const fn nested(defined_by: &'static str) -> Option<CustomFields> {
    Some(CustomFields {
        defined_by,
        layout: CustomFieldLayout::Nested,
    })
}

const fn flat(defined_by: &'static str) -> Option<CustomFields> {
    Some(CustomFields {
        defined_by,
        layout: CustomFieldLayout::Flat,
    })
}

/// A v2 entity list read incrementally by `updated_since`.
const fn v2_entity(
    name: &'static str,
    path: &'static str,
    custom_fields: Option<CustomFields>,
) -> StreamDef {
    StreamDef {
        name,
        path,
        api: ApiVersion::V2,
        paging: V2_LIST,
        token_cost: 10,
        primary_key: ID,
        cursor_field: Some("update_time"),
        incremental: V2_UPDATED_SINCE,
        fixed_query: &[],
        items_path: None,
        custom_fields,
        field_definitions: None,
    }
}

/// A list that can only be read in full.
const fn full(
    name: &'static str,
    path: &'static str,
    api: ApiVersion,
    paging: PagingKind,
    token_cost: u32,
    primary_key: &'static [&'static str],
) -> StreamDef {
    StreamDef {
        name,
        path,
        api,
        paging,
        token_cost,
        primary_key,
        cursor_field: None,
        incremental: Incremental::None,
        fixed_query: &[],
        items_path: None,
        custom_fields: None,
        field_definitions: None,
    }
}

const fn fields_stream(
    name: &'static str,
    path: &'static str,
    api: ApiVersion,
    paging: PagingKind,
) -> StreamDef {
    let (primary_key, field_definitions): (&'static [&'static str], _) = match api {
        ApiVersion::V2 => (&["field_code"], V2_FIELDS),
        ApiVersion::V1 => (&["key"], V1_FIELDS),
    };
    StreamDef {
        field_definitions,
        ..full(
            name,
            path,
            api,
            paging,
            if matches!(api, ApiVersion::V2) { 10 } else { 20 },
            primary_key,
        )
    }
}

/// Every stream pipedrive-sync knows, in the order `discover` lists them.
pub static CATALOG: &[StreamDef] = &[
    StreamDef {
        // `status` lists deleted deals too (for 30 days), which is how deletes are captured.
        fixed_query: &[("status", "open,won,lost,deleted")],
        ..v2_entity("deals", "/api/v2/deals", nested("deal_fields"))
    },
    v2_entity("persons", "/api/v2/persons", nested("person_fields")),
    v2_entity(
        "organizations",
        "/api/v2/organizations",
        nested("organization_fields"),
    ),
    v2_entity("activities", "/api/v2/activities", nested("activity_fields")),
    v2_entity("products", "/api/v2/products", nested("product_fields")),
    full("pipelines", "/api/v2/pipelines", ApiVersion::V2, V2_LIST, 5, ID),
    full("stages", "/api/v2/stages", ApiVersion::V2, V2_LIST, 5, ID),
    StreamDef {
        api: ApiVersion::V1,
        paging: V1_LIST,
        token_cost: 20,
        incremental: V1_UPDATED_SINCE,
        ..v2_entity("notes", "/api/v1/notes", None)
    },
    StreamDef {
        api: ApiVersion::V1,
        paging: V1_LIST,
        token_cost: 20,
        incremental: V1_UPDATED_SINCE,
        ..v2_entity("leads", "/api/v1/leads", flat("lead_fields"))
    },
    full(
        "users",
        "/api/v1/users",
        ApiVersion::V1,
        PagingKind::None,
        20,
        ID,
    ),
    full(
        "activity_types",
        "/api/v1/activityTypes",
        ApiVersion::V1,
        PagingKind::None,
        20,
        ID,
    ),
    full(
        "currencies",
        "/api/v1/currencies",
        ApiVersion::V1,
        PagingKind::None,
        20,
        ID,
    ),
    full(
        "filters",
        "/api/v1/filters",
        ApiVersion::V1,
        PagingKind::None,
        20,
        ID,
    ),
    full(
        "lead_labels",
        "/api/v1/leadLabels",
        ApiVersion::V1,
        PagingKind::None,
        10,
        ID,
    ),
    fields_stream("deal_fields", "/api/v2/dealFields", ApiVersion::V2, V2_LIST),
    fields_stream(
        "person_fields",
        "/api/v2/personFields",
        ApiVersion::V2,
        V2_LIST,
    ),
    fields_stream(
        "organization_fields",
        "/api/v2/organizationFields",
        ApiVersion::V2,
        V2_LIST,
    ),
    fields_stream(
        "product_fields",
        "/api/v2/productFields",
        ApiVersion::V2,
        V2_LIST,
    ),
    fields_stream(
        "activity_fields",
        "/api/v2/activityFields",
        ApiVersion::V2,
        V2_LIST,
    ),
    fields_stream("lead_fields", "/api/v1/leadFields", ApiVersion::V1, V1_LIST),
    fields_stream(
        "note_fields",
        "/api/v1/noteFields",
        ApiVersion::V1,
        PagingKind::None,
    ),
];

/// Looks a stream up by name.
pub fn find(name: &str) -> Option<&'static StreamDef> {
    CATALOG.iter().find(|stream| stream.name == name)
}

/// Up to three catalog names closest to a misspelt one, closest first.
pub fn suggest(name: &str) -> Vec<&'static str> {
    let mut scored: Vec<(usize, &'static str)> = CATALOG
        .iter()
        .map(|stream| (edit_distance(name, stream.name), stream.name))
        .filter(|(distance, candidate)| *distance <= candidate.len().max(name.len()) / 2)
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_custom_field_sources_exist() {
        let mut names: Vec<_> = CATALOG.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
        for stream in CATALOG {
            if let Some(custom) = stream.custom_fields {
                let source = find(custom.defined_by)
                    .unwrap_or_else(|| panic!("{} names {}", stream.name, custom.defined_by));
                assert!(source.field_definitions.is_some());
            }
            assert_eq!(stream.supports_incremental(), stream.cursor_field.is_some());
        }
    }

    #[test]
    fn suggests_close_names() {
        assert_eq!(suggest("deal")[0], "deals");
        assert_eq!(suggest("persns")[0], "persons");
        assert!(suggest("zzzzzzzzzzzzzzzz").is_empty());
    }
}
