//! The route table of the v1 and v2 APIs. Each read names the function that renders it; the
//! writes come from [`crate::write::WRITES`], the table churn's requests are matched against
//! too. What is not in the table answers as an unknown method (`server::front` turns an
//! operation of the official specs into the plan's 403). [`Call`] and [`Answer`] are the contract
//! between the front and the handlers.

use crate::entities::{self, boards, followers, note_comments, product_variations};
use crate::list::Query;
use crate::model::{Db, FieldEntity};
use crate::respond::{Ctx, Resp, unknown_route};
use crate::state::State;
use crate::util::Ms;
use crate::{api, extra};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, State as With};
use axum::http::{Method, Response};
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, MethodRouter, get, on};
use std::sync::Arc;

/// What the front learned about an API request, for its handler.
pub struct Call {
    /// 1 or 2.
    pub ver: u8,
    /// The path after the version prefix, split at `/` (empty segments dropped).
    pub segs: Vec<String>,
    pub q: Query,
    /// The simulated time of the request (a write's is `State::write_time`).
    pub now: Ms,
}

impl Call {
    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            now: self.now,
            q: &self.q,
            me: 1,
            source: crate::webhook_outbox::ChangeSource::Api,
        }
    }
}

/// A handler's answer. It travels to `server::front` in the response's extensions, because the
/// front still decides on it: the plan's 403 for an unserved operation, stats, and the
/// truncation and malformed-body faults.
pub struct Answer(pub Resp);

impl IntoResponse for Answer {
    fn into_response(self) -> Response<Body> {
        let mut r = Response::new(Body::empty());
        r.extensions_mut().insert(self.0);
        r
    }
}

type Shared = Arc<State>;

/// A read of a collection: the handler gets the request's context and the company.
fn read<F>(f: F) -> MethodRouter<Shared>
where
    F: Fn(&Ctx, &Db) -> Resp + Clone + Send + Sync + 'static,
{
    get(
        move |With(st): With<Shared>, Extension(call): Extension<Arc<Call>>| async move {
            let db = st.db.read().unwrap_or_else(|e| e.into_inner());
            Answer(f(&call.ctx(), &db))
        },
    )
}

/// A read of one record (or of something under it): the path's one parameter.
fn read_id<F>(f: F) -> MethodRouter<Shared>
where
    F: Fn(&Ctx, &Db, &str) -> Resp + Clone + Send + Sync + 'static,
{
    get(
        move |With(st): With<Shared>,
              Extension(call): Extension<Arc<Call>>,
              Path(id): Path<String>| async move {
            let db = st.db.read().unwrap_or_else(|e| e.into_inner());
            Answer(f(&call.ctx(), &db, &id))
        },
    )
}

/// A read with two path parameters.
fn read_ids<F>(f: F) -> MethodRouter<Shared>
where
    F: Fn(&Ctx, &Db, &str, &str) -> Resp + Clone + Send + Sync + 'static,
{
    get(
        move |With(st): With<Shared>,
              Extension(call): Extension<Arc<Call>>,
              Path((a, b)): Path<(String, String)>| async move {
            let db = st.db.read().unwrap_or_else(|e| e.into_inner());
            Answer(f(&call.ctx(), &db, &a, &b))
        },
    )
}

/// Adds a version's writes ([`crate::write::WRITES`]) to its reads, and what answers the rest.
fn with_writes(mut r: Router<Shared>, ver: u8) -> Router<Shared> {
    for &(v, method, path, handler) in crate::write::WRITES {
        if v != ver {
            continue;
        }
        let filter = match method {
            "POST" => MethodFilter::POST,
            "PUT" => MethodFilter::PUT,
            "PATCH" => MethodFilter::PATCH,
            _ => MethodFilter::DELETE,
        };
        r = r.route(
            path,
            on(
                filter,
                move |With(st): With<Shared>,
                      Extension(call): Extension<Arc<Call>>,
                      Path(params): Path<Vec<String>>,
                      body: Bytes| async move {
                    let params: Vec<&str> = params.iter().map(String::as_str).collect();
                    let mut db = st.db.write().unwrap_or_else(|e| e.into_inner());
                    Answer(crate::write::run(
                        &call.ctx(),
                        &mut db,
                        handler,
                        &params,
                        &body,
                    ))
                },
            ),
        );
    }
    r.fallback(unknown).method_not_allowed_fallback(unknown)
}

/// Any method a path does not serve: [`crate::write::dispatch`] answers it (it reads the body
/// first, so a malformed body is a 400 wherever it is sent).
pub async fn write(
    With(st): With<Shared>,
    Extension(call): Extension<Arc<Call>>,
    method: Method,
    body: Bytes,
) -> Answer {
    let segs: Vec<&str> = call.segs.iter().map(String::as_str).collect();
    let mut db = st.db.write().unwrap_or_else(|e| e.into_inner());
    Answer(crate::write::dispatch(
        &call.ctx(),
        &mut db,
        call.ver,
        method.as_str(),
        &segs,
        &body,
    ))
}

/// A path that is no operation: GETs answer `Unknown method`, other methods go to [`write`].
pub async fn unknown(
    st: With<Shared>,
    call: Extension<Arc<Call>>,
    method: Method,
    body: Bytes,
) -> Answer {
    if method == Method::GET {
        Answer(unknown_route())
    } else {
        write(st, call, method, body).await
    }
}

/// The field lists each version serves: v2 has no lead or note fields, v1 no project fields.
const V2_FIELDS: &[(&str, FieldEntity)] = &[
    ("dealFields", FieldEntity::Deal),
    ("personFields", FieldEntity::Person),
    ("organizationFields", FieldEntity::Org),
    ("productFields", FieldEntity::Product),
    ("activityFields", FieldEntity::Activity),
    ("projectFields", FieldEntity::Project),
];
const V1_FIELDS: &[(&str, FieldEntity)] = &[
    ("dealFields", FieldEntity::Deal),
    ("personFields", FieldEntity::Person),
    ("organizationFields", FieldEntity::Org),
    ("productFields", FieldEntity::Product),
    ("activityFields", FieldEntity::Activity),
    ("leadFields", FieldEntity::Lead),
    ("noteFields", FieldEntity::Note),
];

pub fn v2() -> Router<Shared> {
    let mut r = Router::new()
        .route("/deals", read(|c, db| api::v2_deals(c, db, false)))
        .route("/deals/archived", read(|c, db| api::v2_deals(c, db, true)))
        .route("/deals/products", read(api::v2_deals_products))
        .route("/deals/installments", read(api::v2_deals_installments))
        .route("/deals/{id}", read_id(api::v2_deals_by_id))
        .route(
            "/deals/{id}/products",
            read_id(api::v2_deals_by_id_products),
        )
        .route(
            "/deals/{id}/followers",
            read_id(api::v2_deals_by_id_followers),
        )
        .route("/persons", read(api::v2_persons))
        .route("/persons/{id}", read_id(api::v2_persons_by_id))
        .route("/organizations", read(api::v2_organizations))
        .route("/organizations/{id}", read_id(api::v2_organizations_by_id))
        .route("/activities", read(api::v2_activities))
        .route("/activities/{id}", read_id(api::v2_activities_by_id))
        .route("/products", read(api::v2_products))
        .route("/products/{id}", read_id(api::v2_products_by_id))
        .route(
            "/products/{id}/variations",
            read_id(product_variations::get),
        )
        .route("/pipelines", read(api::v2_pipelines))
        .route("/pipelines/{id}", read_id(api::v2_pipelines_by_id))
        .route("/stages", read(api::v2_stages))
        .route("/stages/{id}", read_id(api::v2_stages_by_id))
        .route("/projects", read(|c, db| extra::v2_projects(c, db, false)))
        .route(
            "/projects/archived",
            read(|c, db| extra::v2_projects(c, db, true)),
        )
        .route(
            "/projects/{id}",
            read_id(|_, db, id| extra::v2_projects_by_id(db, id)),
        )
        .route("/tasks", read(extra::v2_tasks))
        .route(
            "/tasks/{id}",
            read_id(|_, db, id| extra::v2_tasks_by_id(db, id)),
        )
        .route(
            "/boards",
            read(|_, db| boards::get_boards(db, &[], boards::Format::V2)),
        )
        .route(
            "/boards/{id}",
            read_id(|_, db, id| boards::get_boards(db, &[id], boards::Format::V2)),
        )
        .route(
            "/phases",
            read(|c, db| boards::get_phases(c, db, &[], boards::Format::V2)),
        )
        .route(
            "/phases/{id}",
            read_id(|c, db, id| boards::get_phases(c, db, &[id], boards::Format::V2)),
        )
        .route(
            "/projectTemplates",
            read(|c, db| entities::project_templates::get(c, db, 2, &[])),
        )
        .route(
            "/projectTemplates/{id}",
            read_id(|c, db, id| entities::project_templates::get(c, db, 2, &[id])),
        );
    for (path, kind) in [
        ("/persons/{id}/followers", followers::Followed::Person),
        (
            "/organizations/{id}/followers",
            followers::Followed::Organization,
        ),
        ("/products/{id}/followers", followers::Followed::Product),
    ] {
        r = r.route(
            path,
            read_id(move |c, db, id| followers::get(c, db, 2, kind, id)),
        );
    }
    for &(name, e) in V2_FIELDS {
        r = r
            .route(
                &format!("/{name}"),
                read(move |c, db| api::v2_fields(c, db, e, None)),
            )
            .route(
                &format!("/{name}/{{id}}"),
                read_id(move |c, db, code| api::v2_fields(c, db, e, Some(code))),
            );
    }
    with_writes(r, 2)
}

pub fn v1() -> Router<Shared> {
    let mut r = Router::new()
        .route("/users", read(api::v1_users))
        .route("/users/me", read(api::v1_users_me))
        .route("/users/{id}", read_id(api::v1_users_by_id))
        .route("/notes", read(api::v1_notes))
        .route("/notes/{id}", read_id(api::v1_notes_by_id))
        .route(
            "/notes/{id}/comments",
            read_id(|c, db, id| note_comments::get(c, db, id, &[])),
        )
        .route(
            "/notes/{id}/comments/{comment}",
            read_ids(|c, db, id, comment| note_comments::get(c, db, id, &[comment])),
        )
        .route("/leads", read(|c, db| api::v1_leads(c, db, false)))
        .route("/leads/archived", read(|c, db| api::v1_leads(c, db, true)))
        .route(
            "/leads/{id}",
            read_id(|_, db, id| api::v1_leads_by_id(db, id)),
        )
        .route("/leadLabels", read(|_, db| api::v1_lead_labels(db)))
        .route("/leadSources", read(|_, _| api::v1_lead_sources()))
        .route("/activityTypes", read(|_, db| api::v1_activity_types(db)))
        .route("/currencies", read(api::v1_currencies))
        .route("/filters", read(api::v1_filters))
        .route(
            "/filters/{id}",
            read_id(|_, db, id| api::v1_filters_by_id(db, id)),
        )
        .route("/recents", read(api::v1_recents))
        .route("/deals", read(api::v1_deals))
        .route("/deals/archived", read(api::v1_deals_archived))
        .route("/deals/{id}", read_id(api::v1_deals_by_id))
        .route("/deals/{id}/flow", read_id(api::v1_deals_by_id_flow))
        .route(
            "/deals/{id}/changelog",
            read_id(extra::v1_deals_by_id_changelog),
        )
        .route(
            "/deals/{id}/participants",
            read_id(api::v1_deals_by_id_participants),
        )
        .route(
            "/deals/{id}/followers",
            read_id(api::v1_deals_by_id_followers),
        )
        .route("/deals/{id}/files", read_id(extra::v1_deals_by_id_files))
        .route(
            "/deals/{id}/mailMessages",
            read_id(extra::v1_deals_by_id_mail_messages),
        )
        .route("/persons", read(api::v1_persons))
        .route("/persons/{id}", read_id(api::v1_persons_by_id))
        .route("/organizations", read(api::v1_organizations))
        .route("/organizations/{id}", read_id(api::v1_organizations_by_id))
        .route("/activities", read(api::v1_activities))
        .route("/activities/{id}", read_id(api::v1_activities_by_id))
        .route("/products", read(api::v1_products))
        .route("/products/{id}", read_id(api::v1_products_by_id))
        .route("/pipelines", read(|_, db| api::v1_pipelines(db)))
        .route("/pipelines/{id}", read_id(api::v1_pipelines_by_id))
        .route("/stages", read(api::v1_stages))
        .route("/stages/{id}", read_id(api::v1_stages_by_id))
        .route("/files", read(extra::v1_files))
        .route(
            "/files/{id}",
            read_id(|_, db, id| extra::v1_files_by_id(db, id)),
        )
        .route("/callLogs", read(extra::v1_call_logs))
        .route(
            "/callLogs/{id}",
            read_id(|_, db, id| extra::v1_call_logs_by_id(db, id)),
        )
        .route("/mailbox/mailThreads", read(extra::v1_mailbox_mail_threads))
        .route(
            "/mailbox/mailThreads/{id}",
            read_id(|_, db, id| extra::v1_mailbox_mail_threads_by_id(db, id)),
        )
        .route(
            "/mailbox/mailThreads/{id}/mailMessages",
            read_id(|_, db, id| extra::v1_mailbox_mail_threads_by_id_mail_messages(db, id)),
        )
        .route(
            "/mailbox/mailMessages/{id}",
            read_id(|_, db, id| extra::v1_mailbox_mail_messages_by_id(db, id)),
        )
        .route("/roles", read(extra::v1_roles))
        .route(
            "/roles/{id}",
            read_id(|_, db, id| extra::v1_roles_by_id(db, id)),
        )
        .route("/permissionSets", read(extra::v1_permission_sets))
        .route(
            "/permissionSets/{id}",
            read_id(|c, db, id| extra::v1_permission_set(c, db, id, false)),
        )
        .route(
            "/permissionSets/{id}/assignments",
            read_id(|c, db, id| extra::v1_permission_set(c, db, id, true)),
        )
        .route(
            "/legacyTeams",
            read(|_, db| extra::v1_legacy_teams(db, None)),
        )
        .route(
            "/legacyTeams/{id}",
            read_id(|_, db, id| extra::v1_legacy_teams(db, Some(id))),
        )
        .route("/projects", read(extra::v1_projects))
        .route(
            "/projects/{id}",
            read_id(|_, db, id| extra::v1_projects_by_id(db, id)),
        )
        .route(
            "/projects/boards",
            read(|_, db| boards::get_boards(db, &[], boards::Format::V1)),
        )
        .route(
            "/projects/boards/{id}",
            read_id(|_, db, id| boards::get_boards(db, &[id], boards::Format::V1)),
        )
        .route(
            "/projects/phases",
            read(|c, db| boards::get_phases(c, db, &[], boards::Format::V1)),
        )
        .route(
            "/projects/phases/{id}",
            read_id(|c, db, id| boards::get_phases(c, db, &[id], boards::Format::V1)),
        )
        .route(
            "/projectTemplates",
            read(|c, db| entities::project_templates::get(c, db, 1, &[])),
        )
        .route(
            "/projectTemplates/{id}",
            read_id(|c, db, id| entities::project_templates::get(c, db, 1, &[id])),
        )
        .route("/tasks", read(extra::v1_tasks))
        .route(
            "/tasks/{id}",
            read_id(|_, db, id| extra::v1_tasks_by_id(db, id)),
        )
        .route("/goals/find", read(extra::v1_goals_find))
        .route(
            "/goals/{id}/results",
            read_id(extra::v1_goals_by_id_results),
        )
        .route("/webhooks", read(|_, db| entities::webhooks::list(db)));
    for (path, kind) in [
        ("/persons/{id}/followers", followers::Followed::Person),
        (
            "/organizations/{id}/followers",
            followers::Followed::Organization,
        ),
        ("/products/{id}/followers", followers::Followed::Product),
    ] {
        r = r.route(
            path,
            read_id(move |c, db, id| followers::get(c, db, 1, kind, id)),
        );
    }
    for &(name, e) in V1_FIELDS {
        r = r
            .route(
                &format!("/{name}"),
                read(move |c, db| api::v1_fields(c, db, e)),
            )
            .route(
                &format!("/{name}/{{id}}"),
                read_id(move |_, db, id| api::v1_fields_by_id(db, e, id)),
            );
    }
    with_writes(r, 1)
}
