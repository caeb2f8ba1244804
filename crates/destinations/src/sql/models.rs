//! Analytics models: documented SQL views over the synced tables, in DuckDB and PostgreSQL
//! (README → Analytics models). One SELECT per view serves both dialects; every column the
//! views read is cast to a fixed type, so a column the sync widened, or one the config
//! excluded (read as NULL), leaves each view's columns unchanged.
//!
//! DuckDB binds a view when it is queried, so views there are plain views. PostgreSQL binds a
//! view to the tables it reads and would then refuse to drop them (a full refresh swaps tables)
//! or to widen their columns: there each view reads through a SQL function with a text body,
//! which PostgreSQL re-plans per call (and inlines) without recording any dependency.

use std::collections::{BTreeMap, BTreeSet};

use pipedrive_engine::schema::ColumnType;
use pipedrive_engine::{DestinationError, TableRef};

use super::session::{Session, Statement};
use super::views::DEALS_HISTORY;
pub use super::views::{Inputs, Outcome};
use super::{SqlDestination, quote};

/// Column types the views return, spelled the same in both dialects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    BigInt,
    Float,
    Text,
    Timestamp,
    Date,
    Boolean,
}

impl Ty {
    fn sql(self) -> &'static str {
        match self {
            Ty::BigInt => "BIGINT",
            Ty::Float => "FLOAT8",
            Ty::Text => "TEXT",
            Ty::Timestamp => "TIMESTAMPTZ",
            Ty::Date => "DATE",
            Ty::Boolean => "BOOLEAN",
        }
    }
}

/// The view names, in install order.
pub const VIEWS: [&str; 4] = [
    DEALS_ENRICHED,
    DEAL_STAGE_FUNNEL,
    DEAL_TIME_IN_STAGE,
    ACTIVITIES_PER_OWNER_WEEK,
];
pub const DEALS_ENRICHED: &str = "deals_enriched";
pub const DEAL_STAGE_FUNNEL: &str = "deal_stage_funnel";
pub const DEAL_TIME_IN_STAGE: &str = "deal_time_in_stage";
pub const ACTIVITIES_PER_OWNER_WEEK: &str = "activities_per_owner_week";

/// One view's definition: its SELECT and the columns it returns, in order.
struct Definition {
    view: &'static str,
    comment: &'static str,
    /// PostgreSQL's function declares them.
    columns: Vec<(&'static str, Ty)>,
    select: String,
}

/// Names tables and columns for one dialect, knowing which columns each input table has.
struct Context<'a> {
    /// An identifier as the dialect stores it (PostgreSQL shortens names over 63 bytes).
    name: fn(&str) -> String,
    /// A TIMESTAMPTZ expression as microseconds since the epoch.
    epoch_us: fn(&str) -> String,
    inputs: &'a Inputs,
    /// Input name → the columns its table has (stored names); absent: no such table.
    columns: &'a BTreeMap<String, BTreeSet<String>>,
}

impl Context<'_> {
    fn name(&self, name: &str) -> String {
        (self.name)(name)
    }

    /// `"schema"."table"` of an input. DuckDB resolves two-part names inside a view against
    /// the view's own database, so a renamed or attached file keeps working.
    fn table(&self, input: &str) -> String {
        let table = &self.inputs.tables[input];
        format!(
            "{}.{}",
            quote(&self.name(&table.schema)),
            quote(&self.name(&table.name))
        )
    }

    /// Seconds from one TIMESTAMPTZ to another. DuckDB without its ICU extension (as built
    /// here) has no arithmetic on TIMESTAMPTZ, but microseconds from the epoch count from the
    /// instant itself, in either database.
    fn seconds_between(&self, from: &str, to: &str) -> String {
        format!(
            "({} - {}) / 1000000.0",
            (self.epoch_us)(to),
            (self.epoch_us)(from)
        )
    }

    /// `CAST(alias."column" AS type)`, or a typed NULL when the table has no such column
    /// (excluded in the config, or never seen in the data).
    fn col(&self, alias: &str, input: &str, column: &str, ty: Ty) -> String {
        let stored = self.name(column);
        if self
            .columns
            .get(input)
            .is_some_and(|columns| columns.contains(&stored))
        {
            format!("CAST({alias}.{} AS {})", quote(&stored), ty.sql())
        } else {
            format!("CAST(NULL AS {})", ty.sql())
        }
    }
}

/// `SELECT CAST(expr AS type) AS "name", ...`: the outer casts fix each column's type.
fn select_list(columns: &[(&'static str, Ty, String)]) -> String {
    columns
        .iter()
        .map(|(name, ty, expr)| format!("CAST({expr} AS {}) AS {}", ty.sql(), quote(name)))
        .collect::<Vec<_>>()
        .join(",\n  ")
}

fn definition(
    view: &'static str,
    comment: &'static str,
    columns: Vec<(&'static str, Ty, String)>,
    rest: &str,
    with: &str,
) -> Definition {
    Definition {
        view,
        comment,
        select: format!("{with}SELECT\n  {}\n{rest}", select_list(&columns)),
        columns: columns.iter().map(|(name, ty, _)| (*name, *ty)).collect(),
    }
}

fn deals_enriched(x: &Context<'_>) -> Definition {
    let d = |column, ty| x.col("d", "deals", column, ty);
    let mut columns = vec![
        ("id", Ty::BigInt, d("id", Ty::BigInt)),
        ("title", Ty::Text, d("title", Ty::Text)),
        ("value", Ty::Float, d("value", Ty::Float)),
        ("currency", Ty::Text, d("currency", Ty::Text)),
        ("status", Ty::Text, d("status", Ty::Text)),
        ("pipeline_id", Ty::BigInt, d("pipeline_id", Ty::BigInt)),
        (
            "pipeline_name",
            Ty::Text,
            x.col("p", "pipelines", "name", Ty::Text),
        ),
        ("stage_id", Ty::BigInt, d("stage_id", Ty::BigInt)),
        (
            "stage_name",
            Ty::Text,
            x.col("s", "stages", "name", Ty::Text),
        ),
        (
            "stage_order_nr",
            Ty::BigInt,
            x.col("s", "stages", "order_nr", Ty::BigInt),
        ),
        ("owner_id", Ty::BigInt, d("owner_id", Ty::BigInt)),
        (
            "owner_name",
            Ty::Text,
            x.col("u", "users", "name", Ty::Text),
        ),
        ("org_id", Ty::BigInt, d("org_id", Ty::BigInt)),
        (
            "org_name",
            Ty::Text,
            x.col("o", "organizations", "name", Ty::Text),
        ),
        ("person_id", Ty::BigInt, d("person_id", Ty::BigInt)),
        ("probability", Ty::Float, d("probability", Ty::Float)),
        ("lost_reason", Ty::Text, d("lost_reason", Ty::Text)),
        (
            "expected_close_date",
            Ty::Date,
            d("expected_close_date", Ty::Date),
        ),
    ];
    for time in [
        "add_time",
        "update_time",
        "stage_change_time",
        "close_time",
        "won_time",
        "lost_time",
    ] {
        columns.push((time, Ty::Timestamp, d(time, Ty::Timestamp)));
    }
    let rest = format!(
        "FROM {deals} AS d\n\
         LEFT JOIN {pipelines} AS p ON {p_id} = {d_pipeline}\n\
         LEFT JOIN {stages} AS s ON {s_id} = {d_stage}\n\
         LEFT JOIN {users} AS u ON {u_id} = {d_owner}\n\
         LEFT JOIN {organizations} AS o ON {o_id} = {d_org}\n\
         WHERE {d_deleted} IS NOT TRUE",
        deals = x.table("deals"),
        pipelines = x.table("pipelines"),
        stages = x.table("stages"),
        users = x.table("users"),
        organizations = x.table("organizations"),
        p_id = x.col("p", "pipelines", "id", Ty::BigInt),
        s_id = x.col("s", "stages", "id", Ty::BigInt),
        u_id = x.col("u", "users", "id", Ty::BigInt),
        o_id = x.col("o", "organizations", "id", Ty::BigInt),
        d_pipeline = d("pipeline_id", Ty::BigInt),
        d_stage = d("stage_id", Ty::BigInt),
        d_owner = d("owner_id", Ty::BigInt),
        d_org = d("org_id", Ty::BigInt),
        d_deleted = d("_deleted", Ty::Boolean),
    );
    definition(
        DEALS_ENRICHED,
        "Every deal not marked deleted, with its pipeline, stage, owner and organization names (pipedrive-sync models).",
        columns,
        &rest,
        "",
    )
}

fn deal_stage_funnel(x: &Context<'_>) -> Definition {
    let s = |column, ty| x.col("s", "stages", column, ty);
    let with = format!(
        "WITH stage_list AS (\n\
         SELECT {s_pipeline} AS pipeline_id, {s_id} AS stage_id, {s_name} AS stage_name, {s_order} AS order_nr\n\
         FROM {stages} AS s WHERE {s_deleted} IS NOT TRUE\n\
         ), deal_reach AS (\n\
         SELECT {s_pipeline} AS pipeline_id, {s_order} AS order_nr\n\
         FROM {deals} AS d JOIN {stages} AS s ON {s_id} = {d_stage}\n\
         WHERE {d_deleted} IS NOT TRUE\n\
         ), reached AS (\n\
         SELECT l.pipeline_id, l.stage_id, l.stage_name, l.order_nr, count(r.order_nr) AS deals_reached\n\
         FROM stage_list AS l LEFT JOIN deal_reach AS r\n\
         ON r.pipeline_id = l.pipeline_id AND r.order_nr >= l.order_nr\n\
         GROUP BY l.pipeline_id, l.stage_id, l.stage_name, l.order_nr\n\
         )\n",
        s_pipeline = s("pipeline_id", Ty::BigInt),
        s_id = s("id", Ty::BigInt),
        s_name = s("name", Ty::Text),
        s_order = s("order_nr", Ty::BigInt),
        s_deleted = s("_deleted", Ty::Boolean),
        stages = x.table("stages"),
        deals = x.table("deals"),
        d_stage = x.col("d", "deals", "stage_id", Ty::BigInt),
        d_deleted = x.col("d", "deals", "_deleted", Ty::Boolean),
    );
    let next = |column: &str| format!("lead(f.{column}) OVER w");
    let columns = vec![
        ("pipeline_id", Ty::BigInt, "f.pipeline_id".to_owned()),
        (
            "pipeline_name",
            Ty::Text,
            x.col("p", "pipelines", "name", Ty::Text),
        ),
        ("stage_id", Ty::BigInt, "f.stage_id".to_owned()),
        ("stage_name", Ty::Text, "f.stage_name".to_owned()),
        ("order_nr", Ty::BigInt, "f.order_nr".to_owned()),
        (
            "stage_position",
            Ty::BigInt,
            "row_number() OVER w".to_owned(),
        ),
        ("deals_reached", Ty::BigInt, "f.deals_reached".to_owned()),
        ("next_stage_id", Ty::BigInt, next("stage_id")),
        ("next_stage_name", Ty::Text, next("stage_name")),
        ("deals_reached_next", Ty::BigInt, next("deals_reached")),
        (
            "conversion",
            Ty::Float,
            format!(
                "CAST({} AS FLOAT8) / NULLIF(f.deals_reached, 0)",
                next("deals_reached")
            ),
        ),
    ];
    let rest = format!(
        "FROM reached AS f JOIN {pipelines} AS p ON {p_id} = f.pipeline_id\n\
         WHERE {p_deleted} IS NOT TRUE\n\
         WINDOW w AS (PARTITION BY f.pipeline_id ORDER BY f.order_nr, f.stage_id)",
        pipelines = x.table("pipelines"),
        p_id = x.col("p", "pipelines", "id", Ty::BigInt),
        p_deleted = x.col("p", "pipelines", "_deleted", Ty::Boolean),
    );
    definition(
        DEAL_STAGE_FUNNEL,
        "Stage-to-stage conversion per pipeline: a deal reached every stage of its pipeline up to its current stage's order_nr (pipedrive-sync models).",
        columns,
        &rest,
        &with,
    )
}

fn deal_time_in_stage(x: &Context<'_>) -> Definition {
    let h = |column, ty| x.col("h", DEALS_HISTORY, column, ty);
    let c = |column, ty| x.col("c", DEALS_HISTORY, column, ty);
    let with = format!(
        "WITH versions AS (\n\
         SELECT {h_id} AS deal_id, {h_stage} AS stage_id, {h_from} AS valid_from, {h_to} AS valid_to,\n\
         ({h_status} = 'open' AND {h_deleted} IS NOT TRUE) AS is_open, {h_current} IS TRUE AS is_current\n\
         FROM {history} AS h\n\
         WHERE NOT EXISTS (SELECT 1 FROM {history} AS c WHERE {c_id} = {h_id} AND {c_current} IS TRUE AND {c_deleted} IS TRUE)\n\
         ), stays AS (\n\
         SELECT v.*, CASE WHEN lag(v.stage_id) OVER (PARTITION BY v.deal_id ORDER BY v.valid_from) IS NOT DISTINCT FROM v.stage_id THEN 0 ELSE 1 END AS is_entry\n\
         FROM versions AS v\n\
         ), per_stage AS (\n\
         SELECT deal_id, stage_id, sum(is_entry) AS visits, min(valid_from) AS entered_at, max(valid_to) AS last_valid_to,\n\
         max(CASE WHEN is_current THEN 1 ELSE 0 END) AS here_now,\n\
         floor(sum(CASE WHEN is_open THEN {open_for} ELSE 0 END)) AS open_seconds\n\
         FROM stays GROUP BY deal_id, stage_id\n\
         )\n",
        h_id = h("id", Ty::BigInt),
        h_stage = h("stage_id", Ty::BigInt),
        h_from = h("_valid_from", Ty::Timestamp),
        h_to = h("_valid_to", Ty::Timestamp),
        h_status = h("status", Ty::Text),
        h_deleted = h("_deleted", Ty::Boolean),
        h_current = h("_is_current", Ty::Boolean),
        history = x.table(DEALS_HISTORY),
        c_id = c("id", Ty::BigInt),
        c_current = c("_is_current", Ty::Boolean),
        c_deleted = c("_deleted", Ty::Boolean),
        open_for = x.seconds_between("valid_from", "COALESCE(valid_to, now())"),
    );
    let columns = vec![
        ("deal_id", Ty::BigInt, "t.deal_id".to_owned()),
        (
            "pipeline_id",
            Ty::BigInt,
            x.col("s", "stages", "pipeline_id", Ty::BigInt),
        ),
        ("stage_id", Ty::BigInt, "t.stage_id".to_owned()),
        (
            "stage_name",
            Ty::Text,
            x.col("s", "stages", "name", Ty::Text),
        ),
        ("visits", Ty::BigInt, "t.visits".to_owned()),
        ("entered_at", Ty::Timestamp, "t.entered_at".to_owned()),
        (
            "left_at",
            Ty::Timestamp,
            "CASE WHEN t.here_now = 1 THEN NULL ELSE t.last_valid_to END".to_owned(),
        ),
        ("is_current_stage", Ty::Boolean, "t.here_now = 1".to_owned()),
        ("seconds_in_stage", Ty::BigInt, "t.open_seconds".to_owned()),
        (
            "days_in_stage",
            Ty::Float,
            "CAST(t.open_seconds AS FLOAT8) / 86400".to_owned(),
        ),
    ];
    let rest = format!(
        "FROM per_stage AS t LEFT JOIN {stages} AS s ON {s_id} = t.stage_id",
        stages = x.table("stages"),
        s_id = x.col("s", "stages", "id", Ty::BigInt),
    );
    definition(
        DEAL_TIME_IN_STAGE,
        "Time each deal spent in each stage while open, summed over its stays, from deals_history; the stage an open deal is in now counts up to now() (pipedrive-sync models).",
        columns,
        &rest,
        &with,
    )
}

fn activities_per_owner_week(x: &Context<'_>) -> Definition {
    let a = |column, ty| x.col("a", "activities", column, ty);
    let due = a("due_date", Ty::Date);
    let with = format!(
        "WITH dated AS (\n\
         SELECT {owner} AS owner_id, {name} AS owner_name,\n\
         CAST(date_trunc('week', CAST({due} AS TIMESTAMP)) AS DATE) AS week_start,\n\
         EXTRACT(ISOYEAR FROM {due}) AS iso_year, EXTRACT(WEEK FROM {due}) AS iso_week,\n\
         {done} AS done\n\
         FROM {activities} AS a LEFT JOIN {users} AS u ON {u_id} = {owner}\n\
         WHERE {deleted} IS NOT TRUE\n\
         )\n",
        owner = a("owner_id", Ty::BigInt),
        name = x.col("u", "users", "name", Ty::Text),
        done = a("done", Ty::Boolean),
        activities = x.table("activities"),
        users = x.table("users"),
        u_id = x.col("u", "users", "id", Ty::BigInt),
        deleted = a("_deleted", Ty::Boolean),
    );
    let columns = vec![
        ("owner_id", Ty::BigInt, "w.owner_id".to_owned()),
        ("owner_name", Ty::Text, "w.owner_name".to_owned()),
        ("week_start", Ty::Date, "w.week_start".to_owned()),
        ("iso_year", Ty::BigInt, "w.iso_year".to_owned()),
        ("iso_week", Ty::BigInt, "w.iso_week".to_owned()),
        ("total", Ty::BigInt, "count(*)".to_owned()),
        (
            "done",
            Ty::BigInt,
            "count(*) FILTER (WHERE w.done IS TRUE)".to_owned(),
        ),
        (
            "not_done",
            Ty::BigInt,
            "count(*) FILTER (WHERE w.done IS NOT TRUE)".to_owned(),
        ),
    ];
    definition(
        ACTIVITIES_PER_OWNER_WEEK,
        "Activities not marked deleted per owner and ISO week (Monday start) of their due date: total, done and not done (pipedrive-sync models).",
        columns,
        "FROM dated AS w\nGROUP BY w.owner_id, w.owner_name, w.week_start, w.iso_year, w.iso_week",
        &with,
    )
}

/// The inputs each view reads, and how it is defined.
type Build = fn(&Context<'_>) -> Definition;
const MODELS: [(&str, &[&str], Build); 4] = [
    (
        DEALS_ENRICHED,
        &["deals", "pipelines", "stages", "users", "organizations"],
        deals_enriched,
    ),
    (
        DEAL_STAGE_FUNNEL,
        &["deals", "stages", "pipelines"],
        deal_stage_funnel,
    ),
    (
        DEAL_TIME_IN_STAGE,
        &[DEALS_HISTORY, "stages"],
        deal_time_in_stage,
    ),
    (
        ACTIVITIES_PER_OWNER_WEEK,
        &["activities", "users"],
        activities_per_owner_week,
    ),
];

/// Every input any view reads, with its table.
fn needed(inputs: &Inputs) -> Vec<(String, TableRef)> {
    let names: BTreeSet<&str> = MODELS
        .iter()
        .flat_map(|(_, needs, _)| needs.iter().copied())
        .collect();
    names
        .into_iter()
        .filter_map(|name| {
            inputs
                .tables
                .get(name)
                .map(|table| (name.to_owned(), table.clone()))
        })
        .collect()
}

/// Why a view cannot be made from what was synced, naming the fix; `None` when it can.
fn missing(
    view: &str,
    needs: &[&str],
    inputs: &Inputs,
    columns: &BTreeMap<String, BTreeSet<String>>,
) -> Option<String> {
    let mut reasons = Vec::new();
    for input in needs {
        let selected = inputs.tables.get(*input);
        let exists = columns.get(*input).is_some_and(|c| !c.is_empty());
        match (*input, selected, exists) {
            (_, Some(_), true) => {}
            (DEALS_HISTORY, Some(table), false) => reasons.push(format!(
                "it reads {table}, which only a deals stream with history keeps: set `deals: {{history: true}}` under `streams:` and run `pipedrive-sync sync` (select `deal_flow` too to rebuild each deal's past back to its creation)"
            )),
            (DEALS_HISTORY, None, _) => reasons.push(
                "it reads deals_history, and the config does not select deals: add `deals: {history: true}` under `streams:`, run `pipedrive-sync sync`, then install again".to_owned(),
            ),
            (stream, None, _) => reasons.push(format!(
                "it needs the {stream} stream, which the config does not select: add `{stream}:` under `streams:`, run `pipedrive-sync sync`, then install again"
            )),
            (stream, Some(table), false) => reasons.push(format!(
                "the {stream} stream's table {table} does not exist yet: run `pipedrive-sync sync`, then install again"
            )),
        }
    }
    (!reasons.is_empty()).then(|| format!("{view} skipped: {}", reasons.join("; ")))
}

/// The views that can be made (with their definitions) and those skipped (with the reason).
fn plan<S: Session>(
    inputs: &Inputs,
    columns: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<Result<Definition, Outcome>> {
    plan_in(&Context {
        name: S::stored_name,
        epoch_us: S::epoch_us,
        inputs,
        columns,
    })
}

fn plan_in(context: &Context<'_>) -> Vec<Result<Definition, Outcome>> {
    let (inputs, columns) = (context.inputs, context.columns);
    MODELS
        .iter()
        .map(
            |(view, needs, build)| match missing(view, needs, inputs, columns) {
                Some(reason) => Err(Outcome::Skipped { view, reason }),
                None => Ok(build(context)),
            },
        )
        .collect()
}

/// Creates or replaces the views (and, where the dialect needs them, their functions) in one
/// transaction. Views a missing input rules out are skipped, each with the reason and the fix.
pub async fn install<S: Session>(
    db: &mut SqlDestination<S>,
    inputs: &Inputs,
) -> Result<Vec<Outcome>, DestinationError> {
    let text = S::sql_type(ColumnType::Text);
    let mut columns = BTreeMap::new();
    for (input, table) in needed(inputs) {
        let table = db.stored(&table);
        let mut statement = Statement::default();
        statement.sql = format!(
            "SELECT CAST(c.column_name AS {text}) FROM information_schema.columns AS c \
             JOIN information_schema.tables AS t USING (table_catalog, table_schema, table_name) \
             WHERE c.table_catalog = current_database() AND c.table_schema = {} \
             AND c.table_name = {} AND t.table_type = 'BASE TABLE'",
            statement.text::<S>(Some(&table.schema), text),
            statement.text::<S>(Some(&table.name), text),
        );
        let names: BTreeSet<String> = db
            .session
            .query("reading columns", statement)
            .await?
            .into_iter()
            .filter_map(|row| row.into_iter().next()?.text())
            .collect();
        columns.insert(input, names);
    }
    let schema = S::stored_name(&inputs.schema);
    let mut outcomes = Vec::new();
    let mut sql = format!(
        "CREATE SCHEMA IF NOT EXISTS {};\n",
        db.session.schema_sql(&schema)
    );
    for step in plan::<S>(inputs, &columns) {
        match step {
            Ok(definition) => {
                let returns = definition
                    .columns
                    .iter()
                    .map(|(name, ty)| format!("{} {}", quote(name), ty.sql()))
                    .collect::<Vec<_>>()
                    .join(", ");
                sql.push_str(&db.session.create_view(
                    &schema,
                    definition.view,
                    &definition.select,
                    &returns,
                    definition.comment,
                ));
                outcomes.push(Outcome::Created {
                    view: definition.view,
                    at: format!("{schema}.{}", definition.view),
                });
            }
            Err(skipped) => outcomes.push(skipped),
        }
    }
    db.session.begin().await?;
    let created = match db.session.execute("creating the views", &sql).await {
        Ok(()) => db.session.commit().await,
        Err(error) => {
            db.session.rollback().await;
            Err(error)
        }
    };
    created.map_err(|error| {
        if error.message.contains("cannot change") {
            DestinationError::new(format!(
                "{error}; a view installed by another pipedrive-sync version has other columns: drop the old views and their _pds_model_* functions in {schema}, then install again"
            ))
        } else {
            error
        }
    })?;
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> TableRef {
        TableRef {
            schema: "crm".to_owned(),
            name: format!("pd_{name}"),
        }
    }

    #[test]
    fn views_read_the_configured_tables_and_skip_naming_the_missing_stream() {
        let tables: Vec<(&str, TableRef)> = ["deals", "pipelines", "stages", "users"]
            .into_iter()
            .map(|name| (name, table(name)))
            .collect();
        let inputs = Inputs::new(tables.iter().map(|(n, t)| (*n, t)), "state");
        assert_eq!(inputs.schema, "crm");
        let mut columns: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for name in ["deals", "pipelines", "stages", "users"] {
            columns.insert(
                name.to_owned(),
                ["id", "name", "stage_id", "_deleted"]
                    .map(str::to_owned)
                    .into(),
            );
        }
        let steps = plan_in(&Context {
            name: str::to_owned,
            epoch_us: |expr| format!("epoch_us({expr})"),
            inputs: &inputs,
            columns: &columns,
        });
        let skipped: Vec<String> = steps
            .iter()
            .filter_map(|step| match step {
                Err(Outcome::Skipped { reason, .. }) => Some(reason.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(skipped[0].starts_with("deals_enriched skipped"));
        assert!(skipped[0].contains("add `organizations:`"), "{skipped:?}");
        assert!(skipped[1].contains("history: true"), "{skipped:?}");
        assert!(skipped[2].contains("add `activities:`"), "{skipped:?}");
        let funnel = steps
            .iter()
            .find_map(|step| step.as_ref().ok())
            .expect("the funnel can be made");
        assert_eq!(funnel.view, DEAL_STAGE_FUNNEL);
        assert!(funnel.select.contains("\"crm\".\"pd_stages\""));
        // A column the table lacks reads as a typed NULL.
        assert!(funnel.select.contains("CAST(NULL AS BIGINT)"));
    }
}
