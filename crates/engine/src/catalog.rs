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
    /// v1 lists without a change filter: changes come from `/v1/recents?items=<item>`, which
    /// only reaches one month back; an older bookmark means the stream is re-read in full.
    Recents { item: &'static str },
}

/// Where a stream's records come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Pipedrive's API.
    Api,
    /// The column each custom field landed in, per stream: derived from the `*_fields` streams
    /// and the names kept in state, so a query can map hashes, names and columns.
    CustomFieldColumns,
}

/// How a stream's requests are formed from other data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fanout {
    /// One list.
    None,
    /// Parent ids travel in one query parameter, `batch` at a time (`deal_ids=1,2,...`).
    IdsParam {
        parent: &'static str,
        param: &'static str,
        batch: usize,
    },
    /// One list per parent; `{id}` in the path is the parent's id.
    PerParent { parent: &'static str },
    /// The elements of an array field of each parent record (a person's emails), as rows of
    /// their own keyed by the parent and the position. Parents are read with the child's own
    /// bookmark, so this costs one parent list request per 500 changed parents.
    Nested {
        parent: &'static str,
        field: &'static str,
    },
    /// One list per value of a parameter the endpoint requires (mail folders).
    PerValue {
        param: &'static str,
        values: &'static [&'static str],
    },
}

impl Fanout {
    pub fn parent(&self) -> Option<&'static str> {
        match self {
            Fanout::IdsParam { parent, .. }
            | Fanout::PerParent { parent }
            | Fanout::Nested { parent, .. } => Some(parent),
            Fanout::None | Fanout::PerValue { .. } => None,
        }
    }
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

/// How a stream's deleted records are recognised. Pipedrive deletes softly and purges after 30
/// days, and only deals can be listed while deleted, so the others are found missing from a
/// listing of ids (reconciliation) or from a full refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Deletes {
    /// A record field that marks a deleted record when it holds this value (deals listed with
    /// `status=deleted` carry `is_deleted: true`; v1 records `active_flag: false`).
    pub flag: Option<(&'static str, bool)>,
    /// Streams whose ids also count as present when reconciling: an archived deal has left the
    /// deals list without being deleted.
    pub also_present_in: &'static [&'static str],
}

/// The stream that logs each change of this one's records, field by field with the old value and
/// the time: history mode rebuilds the versions between two syncs from it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ChangeLog {
    /// The log as a stream users can select: when it is, its records serve history too.
    pub stream: &'static str,
    /// Where the changes of the records a run re-reads come from when `stream` is not
    /// selected: the cheapest endpoint that holds the same changes.
    pub between_syncs: ChangeSource,
    /// Record keys of a change: the field it changed, the value before, and when.
    pub field: &'static str,
    pub old_value: &'static str,
    pub time: &'static str,
    /// The record field holding its creation time: the state before the first logged change.
    pub created: &'static str,
    /// Change-log field keys whose column has another name (v1 `user_id` is v2 `owner_id`).
    pub renamed: &'static [(&'static str, &'static str)],
}

/// An endpoint read only for history, one request per changed record; not a stream of its own.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ChangeSource {
    pub def: &'static StreamDef,
    /// Its record key holding a change's time (the log's `time` under another name).
    pub time: &'static str,
}

/// A deal's field changes with old and new values: the same changes as `/flow`'s `dealChange`
/// items at 20 tokens a deal rather than 40.
pub static DEAL_CHANGELOG: StreamDef = per_parent(
    "deal_changelog",
    "/api/v1/deals/{id}/changelog",
    ApiVersion::V1,
    V2_LIST,
    20,
    "deals",
    "deal_id",
    &["deal_id", "field_key", "time"],
);

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
    /// Each item wraps its record under this key (`{object, timestamp, data}` of deal flow):
    /// the record is that object, plus the wrapper's other keys where the record lacks them.
    pub record_under: Option<&'static str>,
    pub origin: Origin,
    pub fanout: Fanout,
    /// Query parameters of a per-parent request taken from the parent record: (parameter,
    /// dotted path), e.g. a goal's results for `period.start` = the goal's `duration.start`.
    pub parent_query: &'static [(&'static str, &'static str)],
    /// The column holding the parent's id in a fanned-out stream, added when records lack it.
    pub parent_column: Option<&'static str>,
    /// A parent's children are replaced as a whole when the parent is re-read, so children
    /// removed in Pipedrive (a product taken off a deal) disappear here too.
    pub replace_children: bool,
    pub custom_fields: Option<CustomFields>,
    /// Set on `*_fields` streams: how to read a field definition.
    pub field_definitions: Option<FieldDefinitions>,
    /// Set on entity streams: rows get `_deleted` and `_deleted_at`, and stay once purged.
    pub deletes: Option<Deletes>,
    pub change_log: Option<ChangeLog>,
    /// The field that moves when a record changes, for streams re-read in full (no cursor):
    /// history mode versions their records by it.
    pub changed_at: Option<&'static str>,
    /// Pipedrive offers the endpoint only on some plans, with an add-on, or with a permission:
    /// a 403 or 404 there means "not for this company", and the stream is skipped. Anywhere
    /// else the same answer means a wrong `base_url` (or proxy prefix) and fails the run.
    pub gated: bool,
    /// Read only when `streams` names it: one request per record of a parent that grows with
    /// the company (every deal, every mail thread), more than a small plan's daily budget pays
    /// for. The default selection and `'*'` leave it out; `discover` shows its cost.
    pub opt_in: bool,
    /// The webhooks v2 `event_object` that reports this stream's records, and whether the
    /// stream holds the archived ones (`data.is_archived`): follow mode applies each event to
    /// the one stream that matches both.
    pub webhook: Option<Webhook>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Webhook {
    pub object: &'static str,
    pub archived: bool,
}

/// Records a webhook `object` reports, live ones (not archived).
const fn webhook(object: &'static str) -> Option<Webhook> {
    Some(Webhook {
        object,
        archived: false,
    })
}

const fn archived_webhook(object: &'static str) -> Option<Webhook> {
    Some(Webhook {
        object,
        archived: true,
    })
}

impl StreamDef {
    /// Whether the list can be read newest first (`priority: recent-first`): a cursor list
    /// sorted by its change time, whose cursor resumes the descending walk.
    pub fn reads_newest_first(&self) -> bool {
        matches!(self.paging, PagingKind::Cursor { .. })
            && matches!(self.incremental, Incremental::UpdatedSince { .. })
            && self.fanout == Fanout::None
    }

    /// The field history mode versions records by: the cursor, or the change time of a stream
    /// re-read in full.
    pub fn version_field(&self) -> Option<&'static str> {
        self.cursor_field.or(self.changed_at)
    }

    pub fn supports_incremental(&self) -> bool {
        match self.fanout.parent() {
            // A child is incremental through its parent: only changed parents are re-read,
            // whether the parent list is read by its changes or in full.
            Some(parent) => find(parent).is_some_and(|p| p.version_field().is_some()),
            None => !matches!(self.incremental, Incremental::None),
        }
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

const DELETED_FLAG: Option<Deletes> = Some(Deletes {
    flag: Some(("is_deleted", true)),
    also_present_in: &[],
});
const ACTIVE_FLAG: Option<Deletes> = Some(Deletes {
    flag: Some(("active_flag", false)),
    also_present_in: &[],
});
/// Records without a deleted flag: deletes show only as missing ids.
const MISSING_ONLY: Option<Deletes> = Some(Deletes {
    flag: None,
    also_present_in: &[],
});

/// A full-refresh list of entities: rows missing from a reload are kept, marked deleted.
const fn entities(stream: StreamDef, flag: Option<Deletes>) -> StreamDef {
    StreamDef {
        deletes: flag,
        changed_at: Some("update_time"),
        ..stream
    }
}

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

/// A stream synced only when named (see [`StreamDef::opt_in`]).
const fn opt_in(stream: StreamDef) -> StreamDef {
    StreamDef {
        opt_in: true,
        ..stream
    }
}

/// A stream Pipedrive offers only on some plans, with an add-on or with a permission.
const fn gated(stream: StreamDef) -> StreamDef {
    StreamDef {
        gated: true,
        ..stream
    }
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
        record_under: None,
        origin: Origin::Api,
        fanout: Fanout::None,
        parent_query: &[],
        parent_column: None,
        replace_children: false,
        deletes: DELETED_FLAG,
        change_log: None,
        changed_at: None,
        gated: false,
        opt_in: false,
        webhook: None,
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
        record_under: None,
        origin: Origin::Api,
        fanout: Fanout::None,
        parent_query: &[],
        parent_column: None,
        replace_children: false,
        deletes: None,
        change_log: None,
        changed_at: None,
        gated: false,
        opt_in: false,
        webhook: None,
    }
}

/// A v1 list whose changes are read from `/v1/recents`.
const fn recents(
    name: &'static str,
    path: &'static str,
    paging: PagingKind,
    item: &'static str,
) -> StreamDef {
    StreamDef {
        cursor_field: Some("update_time"),
        incremental: Incremental::Recents { item },
        deletes: ACTIVE_FLAG,
        ..full(name, path, ApiVersion::V1, paging, 20, ID)
    }
}

/// A list read once per parent record (`{id}` in `path`). A table row, so every part is an
/// argument.
#[allow(clippy::too_many_arguments)]
const fn per_parent(
    name: &'static str,
    path: &'static str,
    api: ApiVersion,
    paging: PagingKind,
    token_cost: u32,
    parent: &'static str,
    parent_column: &'static str,
    primary_key: &'static [&'static str],
) -> StreamDef {
    StreamDef {
        fanout: Fanout::PerParent { parent },
        parent_column: Some(parent_column),
        replace_children: true,
        ..full(name, path, api, paging, token_cost, primary_key)
    }
}

/// Rows made of an array field of a parent stream's records.
const fn nested_rows(
    name: &'static str,
    parent: &'static str,
    field: &'static str,
    primary_key: &'static [&'static str],
) -> StreamDef {
    StreamDef {
        fanout: Fanout::Nested { parent, field },
        parent_column: Some(primary_key[0]),
        replace_children: true,
        ..full(name, "", ApiVersion::V2, PagingKind::None, 0, primary_key)
    }
}

/// A list read for up to 100 deals a request through `deal_ids`.
const fn per_deal_batch(name: &'static str, path: &'static str) -> StreamDef {
    StreamDef {
        fanout: Fanout::IdsParam {
            parent: "deals",
            param: "deal_ids",
            batch: 100,
        },
        parent_column: Some("deal_id"),
        replace_children: true,
        ..full(name, path, ApiVersion::V2, V2_LIST, 10, ID)
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
            if matches!(api, ApiVersion::V2) {
                10
            } else {
                20
            },
            primary_key,
        )
    }
}

/// Every stream pipedrive-sync knows, in the order `discover` lists them.
pub static CATALOG: &[StreamDef] = &[
    StreamDef {
        // `status` lists deleted deals too (for 30 days), which is how deletes are captured.
        fixed_query: &[("status", "open,won,lost,deleted")],
        deletes: Some(Deletes {
            flag: Some(("is_deleted", true)),
            also_present_in: &["deals_archived"],
        }),
        change_log: Some(ChangeLog {
            stream: "deal_flow",
            between_syncs: ChangeSource {
                def: &DEAL_CHANGELOG,
                time: "time",
            },
            field: "field_key",
            old_value: "old_value",
            time: "log_time",
            created: "add_time",
            renamed: &[("user_id", "owner_id"), ("label", "label_ids")],
        }),
        webhook: webhook("deal"),
        ..v2_entity("deals", "/api/v2/deals", nested("deal_fields"))
    },
    StreamDef {
        webhook: webhook("person"),
        ..v2_entity("persons", "/api/v2/persons", nested("person_fields"))
    },
    StreamDef {
        webhook: webhook("organization"),
        ..v2_entity(
            "organizations",
            "/api/v2/organizations",
            nested("organization_fields"),
        )
    },
    StreamDef {
        webhook: webhook("activity"),
        ..v2_entity(
            "activities",
            "/api/v2/activities",
            nested("activity_fields"),
        )
    },
    StreamDef {
        webhook: webhook("product"),
        ..v2_entity("products", "/api/v2/products", nested("product_fields"))
    },
    StreamDef {
        webhook: webhook("pipeline"),
        ..entities(
            full(
                "pipelines",
                "/api/v2/pipelines",
                ApiVersion::V2,
                V2_LIST,
                5,
                ID,
            ),
            DELETED_FLAG,
        )
    },
    StreamDef {
        webhook: webhook("stage"),
        ..entities(
            full("stages", "/api/v2/stages", ApiVersion::V2, V2_LIST, 5, ID),
            DELETED_FLAG,
        )
    },
    StreamDef {
        api: ApiVersion::V1,
        paging: V1_LIST,
        token_cost: 20,
        incremental: V1_UPDATED_SINCE,
        deletes: ACTIVE_FLAG,
        webhook: webhook("note"),
        ..v2_entity("notes", "/api/v1/notes", None)
    },
    StreamDef {
        api: ApiVersion::V1,
        paging: V1_LIST,
        token_cost: 20,
        incremental: V1_UPDATED_SINCE,
        // Leads are deleted for good: they can only go missing. Archived ones are not deleted.
        deletes: Some(Deletes {
            flag: None,
            also_present_in: &["leads_archived"],
        }),
        webhook: webhook("lead"),
        ..v2_entity("leads", "/api/v1/leads", flat("lead_fields"))
    },
    StreamDef {
        // Users carry `created`/`modified` instead of `add_time`/`update_time`.
        cursor_field: Some("modified"),
        ..recents("users", "/api/v1/users", PagingKind::None, "user")
    },
    recents(
        "activity_types",
        "/api/v1/activityTypes",
        PagingKind::None,
        "activityType",
    ),
    full(
        "currencies",
        "/api/v1/currencies",
        ApiVersion::V1,
        PagingKind::None,
        20,
        ID,
    ),
    recents("filters", "/api/v1/filters", PagingKind::None, "filter"),
    entities(
        full(
            "lead_labels",
            "/api/v1/leadLabels",
            ApiVersion::V1,
            PagingKind::None,
            10,
            ID,
        ),
        MISSING_ONLY,
    ),
    StreamDef {
        // An archived deal leaves this list when it is restored, not only when deleted.
        token_cost: 20,
        deletes: None,
        webhook: archived_webhook("deal"),
        ..v2_entity(
            "deals_archived",
            "/api/v2/deals/archived",
            nested("deal_fields"),
        )
    },
    StreamDef {
        // The archived list has no `updated_since`: it is re-read in full.
        api: ApiVersion::V1,
        paging: V1_LIST,
        cursor_field: None,
        incremental: Incremental::None,
        token_cost: 40,
        deletes: None,
        webhook: archived_webhook("lead"),
        ..v2_entity(
            "leads_archived",
            "/api/v1/leads/archived",
            flat("lead_fields"),
        )
    },
    recents(
        "files",
        "/api/v1/files",
        PagingKind::Offset { limit: 100 },
        "file",
    ),
    full(
        "lead_sources",
        "/api/v1/leadSources",
        ApiVersion::V1,
        PagingKind::None,
        2,
        &["name"],
    ),
    per_deal_batch("deal_products", "/api/v2/deals/products"),
    gated(per_deal_batch(
        "deal_installments",
        "/api/v2/deals/installments",
    )),
    opt_in(StreamDef {
        // The change log of each deal: field changes with old and new values and their time.
        fixed_query: &[("items", "dealChange"), ("all_changes", "1")],
        record_under: Some("data"),
        replace_children: false,
        ..per_parent(
            "deal_flow",
            "/api/v1/deals/{id}/flow",
            ApiVersion::V1,
            V1_LIST,
            40,
            "deals",
            "deal_id",
            ID,
        )
    }),
    opt_in(per_parent(
        "deal_participants",
        "/api/v1/deals/{id}/participants",
        ApiVersion::V1,
        V1_LIST,
        10,
        "deals",
        "deal_id",
        ID,
    )),
    opt_in(per_parent(
        "deal_followers",
        "/api/v2/deals/{id}/followers",
        ApiVersion::V2,
        V2_LIST,
        10,
        "deals",
        "deal_id",
        &["deal_id", "user_id"],
    )),
    gated(StreamDef {
        items_path: Some("goals"),
        deletes: MISSING_ONLY,
        ..full(
            "goals",
            "/api/v1/goals/find",
            ApiVersion::V1,
            PagingKind::None,
            20,
            ID,
        )
    }),
    gated(StreamDef {
        // A goal's progress over its whole duration (the period parameters are required).
        record_under: Some("goal"),
        parent_query: &[
            ("period.start", "duration.start"),
            ("period.end", "duration.end"),
        ],
        ..per_parent(
            "goal_results",
            "/api/v1/goals/{id}/results",
            ApiVersion::V1,
            PagingKind::None,
            20,
            "goals",
            "goal_id",
            &["goal_id"],
        )
    }),
    gated(StreamDef {
        fanout: Fanout::PerValue {
            param: "folder",
            values: &["inbox", "drafts", "sent", "archive"],
        },
        // A new message moves its thread's `update_time`: only changed threads' messages are
        // read again.
        changed_at: Some("update_time"),
        ..full(
            "mail_threads",
            "/api/v1/mailbox/mailThreads",
            ApiVersion::V1,
            V1_LIST,
            20,
            ID,
        )
    }),
    opt_in(gated(per_parent(
        "mail_messages",
        "/api/v1/mailbox/mailThreads/{id}/mailMessages",
        ApiVersion::V1,
        PagingKind::None,
        20,
        "mail_threads",
        "mail_thread_id",
        ID,
    ))),
    gated(entities(
        full(
            "call_logs",
            "/api/v1/callLogs",
            ApiVersion::V1,
            V1_LIST,
            20,
            ID,
        ),
        MISSING_ONLY,
    )),
    gated(full(
        "permission_sets",
        "/api/v1/permissionSets",
        ApiVersion::V1,
        PagingKind::None,
        20,
        ID,
    )),
    gated(per_parent(
        "permission_set_assignments",
        "/api/v1/permissionSets/{id}/assignments",
        ApiVersion::V1,
        V1_LIST,
        20,
        "permission_sets",
        "permission_set_id",
        &["permission_set_id", "user_id"],
    )),
    gated(full(
        "roles",
        "/api/v1/roles",
        ApiVersion::V1,
        V1_LIST,
        20,
        ID,
    )),
    gated(full(
        "legacy_teams",
        "/api/v1/legacyTeams",
        ApiVersion::V1,
        PagingKind::None,
        20,
        ID,
    )),
    gated(entities(
        full(
            "projects",
            "/api/v2/projects",
            ApiVersion::V2,
            V2_LIST,
            10,
            ID,
        ),
        MISSING_ONLY,
    )),
    gated(full(
        "projects_archived",
        "/api/v2/projects/archived",
        ApiVersion::V2,
        V2_LIST,
        10,
        ID,
    )),
    gated(entities(
        full("tasks", "/api/v2/tasks", ApiVersion::V2, V2_LIST, 10, ID),
        MISSING_ONLY,
    )),
    nested_rows(
        "person_emails",
        "persons",
        "emails",
        &["person_id", "position"],
    ),
    nested_rows(
        "person_phones",
        "persons",
        "phones",
        &["person_id", "position"],
    ),
    nested_rows(
        "lead_lead_labels",
        "leads",
        "label_ids",
        &["lead_id", "position"],
    ),
    nested_rows(
        "product_prices",
        "products",
        "prices",
        &["product_id", "position"],
    ),
    nested_rows(
        "activity_attendees",
        "activities",
        "attendees",
        &["activity_id", "position"],
    ),
    StreamDef {
        origin: Origin::CustomFieldColumns,
        ..full(
            "custom_fields_mapping",
            "",
            ApiVersion::V2,
            PagingKind::None,
            0,
            &["stream", "field_key"],
        )
    },
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
    closest(name, CATALOG.iter().map(|stream| stream.name))
}

/// Up to three of `candidates` closest to a misspelt `name`, closest first; none that differ
/// in more than half their letters.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut scored: Vec<(usize, &'a str)> = candidates
        .into_iter()
        .map(|candidate| (strsim::levenshtein(name, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= candidate.len().max(name.len()) / 2)
        .collect();
    scored.sort();
    scored.dedup();
    scored.into_iter().take(3).map(|(_, n)| n).collect()
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
            if let Some(parent) = stream.fanout.parent() {
                assert!(
                    find(parent).is_some(),
                    "{} has no parent {parent}",
                    stream.name
                );
                assert!(stream.parent_column.is_some());
                assert!(
                    stream.path.contains("{id}")
                        || matches!(
                            stream.fanout,
                            Fanout::IdsParam { .. } | Fanout::Nested { .. }
                        )
                );
            } else {
                assert_eq!(
                    stream.supports_incremental(),
                    stream.cursor_field.is_some(),
                    "{}",
                    stream.name
                );
            }
        }
    }

    #[test]
    fn delete_capture_and_change_logs_name_real_streams() {
        for stream in CATALOG {
            if let Some(deletes) = stream.deletes {
                assert_eq!(stream.primary_key.len(), 1, "{}", stream.name);
                assert!(stream.fanout.parent().is_none(), "{}", stream.name);
                for other in deletes.also_present_in {
                    assert_eq!(find(other).unwrap().primary_key, stream.primary_key);
                }
            }
            if let Some(log) = stream.change_log {
                let log_stream = find(log.stream).unwrap();
                assert_eq!(log_stream.fanout.parent(), Some(stream.name));
            }
        }
    }

    #[test]
    fn suggests_close_names() {
        assert_eq!(suggest("deal")[0], "deals");
        assert_eq!(suggest("persns")[0], "persons");
        assert!(suggest("zzzzzzzzzzzzzzzz").is_empty());
    }
}
