//! `/__sim/` admin API (no auth, no limits, no faults) and the OAuth token endpoint.

use crate::entities::deal_relations as relations;
use crate::json::J;
use crate::model::*;
use crate::options::{FaultSettings, OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET};
use crate::render::*;
use crate::respond::{Resp, err, json_response};
use crate::state::{ACCESS_TTL_MS, REFRESH_TTL_MS, State};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State as With};
use axum::http::{HeaderMap, Method, Response, header};
use axum::routing::{any, get, patch, post};
use base64::Engine;
use serde_json::{Value, json};
use std::sync::Arc;

fn ok(v: Value) -> Response<Body> {
    json_response(200, serde_json::to_vec(&v).unwrap_or_default())
}
fn bad(status: u16, msg: &str) -> Response<Body> {
    json_response(
        status,
        serde_json::to_vec(&json!({"error": msg})).unwrap_or_default(),
    )
}

/// A request body as JSON; an empty or malformed body reads as `null`.
fn json_body(body: &[u8]) -> Value {
    if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    }
}

type Shared = Arc<State>;

/// The admin API's route table, nested under `/__sim`.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/stats", get(stats))
        .route("/stats/reset", post(stats_reset))
        .route("/webhooks/{*rest}", any(webhooks))
        .route("/churn", get(churn_get).post(churn_post))
        .route("/info", get(info))
        .route("/truth/{entity}", get(truth_get))
        .route("/clock", get(clock))
        .route("/clock/advance", post(clock_advance))
        .route("/faults", get(faults_get).post(faults_post))
        .route("/budget", get(budget))
        .route("/budget/reset", post(budget_reset))
        .route("/oauth/authorize", post(oauth_authorize))
        .route("/oauth/refresh_token", post(oauth_refresh_token))
        .route("/oauth/issued", get(oauth_issued))
        .route("/custom_fields/{entity}", post(custom_field_add))
        .route(
            "/custom_fields/{entity}/{key}",
            patch(custom_field_rename).delete(custom_field_delete),
        )
        .route("/custom_field_values/{entity}/{id}", post(custom_field_set))
        .route("/archive/{entity}/{id}", post(archive))
        .route("/unarchive/{entity}/{id}", post(unarchive))
        .route("/mail_threads/{id}/messages", post(mail_arrives))
        .fallback(unknown)
        .method_not_allowed_fallback(unknown)
}

pub async fn unknown() -> Response<Body> {
    bad(404, "unknown admin endpoint")
}

async fn stats(With(st): With<Shared>) -> Response<Body> {
    ok(st.stats.to_json())
}

async fn stats_reset(With(st): With<Shared>) -> Response<Body> {
    st.stats.reset();
    ok(json!({"ok": true}))
}

/// `/__sim/webhooks/{stats,faults,timing}`: webhook delivery answers them.
async fn webhooks(
    With(st): With<Shared>,
    method: Method,
    Path(rest): Path<String>,
    body: Bytes,
) -> Response<Body> {
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match crate::webhook_sender::admin(&st, method.as_str(), &segs, &body) {
        Some((status, v)) => json_response(status, serde_json::to_vec(&v).unwrap_or_default()),
        None => bad(404, "unknown admin endpoint"),
    }
}

async fn churn_get(With(st): With<Shared>) -> Response<Body> {
    churn_report(&st)
}

async fn churn_post(With(st): With<Shared>, body: Bytes) -> Response<Body> {
    match serde_json::from_slice::<crate::churn::ChurnRequest>(&body) {
        Ok(request) => {
            if let Some(per_second) = request.per_second {
                crate::churn::Churn::set_rate(&st, per_second);
            }
            if let Some(steps) = request.steps {
                // Many steps hold the company's write lock for a while: off the runtime.
                let st = st.clone();
                let applied =
                    tokio::task::spawn_blocking(move || st.churn.apply(&*st, steps)).await;
                if applied.is_err() {
                    return bad(500, "churn steps failed");
                }
            }
            churn_report(&st)
        }
        Err(e) => bad(400, &e.to_string()),
    }
}

async fn info(With(st): With<Shared>) -> Response<Body> {
    let db = st.db.read().unwrap_or_else(|e| e.into_inner());
    ok(json!({
        "seed": st.opts.seed, "scale": st.opts.scale.to_string(), "plan": st.opts.plan.to_string(),
        "company_id": db.company.id, "company_domain": db.company.domain,
        "counts": {
            "users": db.users.rows.len(), "deals": db.deals.rows.len(), "persons": db.persons.rows.len(),
            "organizations": db.orgs.rows.len(), "activities": db.activities.rows.len(),
            "products": db.products.rows.len(), "notes": db.notes.rows.len(), "leads": db.leads.rows.len(),
            "deal_products": db.deal_products.table.rows.len(),
        }
    }))
}

async fn truth_get(With(st): With<Shared>, Path(entity): Path<String>) -> Response<Body> {
    let now = st.clock.now();
    let db = st.db.read().unwrap_or_else(|e| e.into_inner());
    match truth(&db, &entity, now) {
        Some(buf) => json_response(200, buf),
        None => bad(404, "unknown entity"),
    }
}

async fn clock(With(st): With<Shared>) -> Response<Body> {
    ok(json!({"now": crate::util::rfc3339(st.clock.now()), "now_ms": st.clock.now()}))
}

async fn clock_advance(With(st): With<Shared>, body: Bytes) -> Response<Body> {
    let secs = json_body(&body)
        .get("seconds")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    if secs < 0.0 {
        return bad(400, "the clock only moves forward");
    }
    st.clock.advance((secs * 1000.0) as i64);
    let now = st.clock.now();
    st.db.write().unwrap_or_else(|e| e.into_inner()).purge(now);
    ok(json!({"now": crate::util::rfc3339(now)}))
}

async fn faults_get(With(st): With<Shared>) -> Response<Body> {
    ok(
        serde_json::to_value(st.faults.read().map(|f| f.clone()).unwrap_or_default())
            .unwrap_or_default(),
    )
}

async fn faults_post(With(st): With<Shared>, body: Bytes) -> Response<Body> {
    match serde_json::from_slice::<FaultSettings>(&body) {
        Ok(f) => {
            *st.faults.write().unwrap_or_else(|e| e.into_inner()) = f.clone();
            st.fault_counter
                .store(0, std::sync::atomic::Ordering::Relaxed);
            ok(serde_json::to_value(f).unwrap_or_default())
        }
        Err(e) => bad(400, &e.to_string()),
    }
}

async fn budget(With(st): With<Shared>) -> Response<Body> {
    let (limit, rem) = st.limiter.budget(st.clock.now());
    ok(json!({"limit": limit, "remaining": rem}))
}

async fn budget_reset(With(st): With<Shared>, body: Bytes) -> Response<Body> {
    let remaining = json_body(&body).get("remaining").and_then(Value::as_u64);
    let now = st.clock.now();
    st.limiter.reset_budget(now, remaining);
    let (limit, rem) = st.limiter.budget(now);
    ok(json!({"limit": limit, "remaining": rem}))
}

async fn oauth_authorize(With(st): With<Shared>) -> Response<Body> {
    let mut o = st.oauth.lock().unwrap_or_else(|e| e.into_inner());
    let code = o.mint(st.opts.seed, "oauth_code", 32);
    o.codes.insert(code.clone(), st.clock.now());
    ok(
        json!({"code": code, "client_id": OAUTH_CLIENT_ID, "redirect_uri": "http://localhost/callback"}),
    )
}

async fn oauth_refresh_token(With(st): With<Shared>) -> Response<Body> {
    let mut o = st.oauth.lock().unwrap_or_else(|e| e.into_inner());
    let t = refresh_token_string(&mut o, &st);
    o.refresh.insert(t.clone(), st.clock.now());
    o.issued_refresh.push(t.clone());
    ok(json!({"refresh_token": t}))
}

async fn oauth_issued(With(st): With<Shared>) -> Response<Body> {
    let o = st.oauth.lock().unwrap_or_else(|e| e.into_inner());
    ok(json!({"access_tokens": o.issued_access, "refresh_tokens": o.issued_refresh}))
}

async fn custom_field_add(
    With(st): With<Shared>,
    Path(entity): Path<String>,
    body: Bytes,
) -> Response<Body> {
    custom_field_admin(&st, &entity, None, "POST", &json_body(&body))
}

async fn custom_field_rename(
    With(st): With<Shared>,
    Path((entity, key)): Path<(String, String)>,
    body: Bytes,
) -> Response<Body> {
    custom_field_admin(&st, &entity, Some(&key), "PATCH", &json_body(&body))
}

async fn custom_field_delete(
    With(st): With<Shared>,
    Path((entity, key)): Path<(String, String)>,
    body: Bytes,
) -> Response<Body> {
    custom_field_admin(&st, &entity, Some(&key), "DELETE", &json_body(&body))
}

async fn custom_field_set(
    With(st): With<Shared>,
    Path((entity, id)): Path<(String, String)>,
    body: Bytes,
) -> Response<Body> {
    custom_field_value(&st, &entity, &id, &json_body(&body))
}

async fn archive(
    With(st): With<Shared>,
    Path((entity, id)): Path<(String, String)>,
) -> Response<Body> {
    set_archived(&st, &entity, &id, true)
}

async fn unarchive(
    With(st): With<Shared>,
    Path((entity, id)): Path<(String, String)>,
) -> Response<Body> {
    set_archived(&st, &entity, &id, false)
}

/// A message arrives in a mail thread, as the mailbox sync would bring it: the thread's
/// last message and `update_time` move to now.
async fn mail_arrives(With(st): With<Shared>, Path(id): Path<String>) -> Response<Body> {
    let now = st.clock.now() / 1000 * 1000;
    let mut db = st.db.write().unwrap_or_else(|e| e.into_inner());
    let thread = id
        .parse::<u64>()
        .ok()
        .and_then(|id| db.extra.threads.iter_mut().find(|t| t.id == id));
    match thread {
        Some(thread) => {
            thread.messages += 1;
            thread.last = now;
            ok(json!({"id": thread.id, "messages": thread.messages}))
        }
        None => bad(404, "no such mail thread"),
    }
}

/// Archives (or unarchives) a deal or lead as a user in the app would.
fn set_archived(st: &State, entity: &str, id: &str, on: bool) -> Response<Body> {
    let now = st.clock.now();
    let mut db = st.db.write().unwrap_or_else(|e| e.into_inner());
    let origin = crate::webhook_delivery::Origin::app(now);
    let found = crate::webhook_delivery::observe(&mut db, origin, |db| match entity {
        "deals" => id.parse().ok().and_then(|id| {
            db.deals.modify(id, |d| {
                d.archive_time = on.then_some(now / 1000 * 1000);
                d.update_time = now / 1000 * 1000;
            })
        }),
        "leads" => db.lead_by_uuid.get(id).copied().and_then(|lid| {
            db.leads.modify(lid, |l| {
                l.archive_time = on.then_some(now);
                l.update_time = now;
            })
        }),
        _ => None,
    });
    match found {
        Some(()) => ok(json!({"ok": true})),
        None => bad(404, "not found"),
    }
}

fn churn_report(st: &State) -> Response<Body> {
    match serde_json::to_value(st.churn.report()) {
        Ok(v) => ok(v),
        Err(e) => bad(500, &e.to_string()),
    }
}

fn refresh_token_string(o: &mut crate::state::OAuth, st: &State) -> String {
    let company = st.db.read().map(|d| d.company.id).unwrap_or(0);
    format!(
        "{}:{}:{}",
        company,
        1,
        o.mint(st.opts.seed, "oauth_refresh", 40)
    )
}

fn custom_field_admin(
    st: &State,
    entity: &str,
    key: Option<&str>,
    method: &str,
    body: &Value,
) -> Response<Body> {
    let Some(e) = FieldEntity::parse(entity) else {
        return bad(404, "unknown entity");
    };
    let e = if e == FieldEntity::Lead {
        FieldEntity::Deal
    } else {
        e
    };
    let now = st.clock.now() / 1000 * 1000;
    let mut db = st.db.write().unwrap_or_else(|e| e.into_inner());
    match (method, key) {
        ("POST", None) => {
            let name = body
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("New field")
                .to_string();
            let ft = body
                .get("field_type")
                .and_then(Value::as_str)
                .unwrap_or("varchar");
            let Some(t) = CfType::parse(ft) else {
                return bad(400, "unsupported field_type");
            };
            let labels: Vec<String> = body
                .get("options")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| {
                            x.as_str()
                                .map(str::to_string)
                                .or_else(|| x.get("label")?.as_str().map(str::to_string))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let f = db.add_field(e, name, t, labels, now);
            ok(
                json!({"key": f.key, "id": f.id, "name": f.name, "field_type": f.field_type,
                      "options": f.options.iter().map(|(i, l)| json!({"id": i, "label": l})).collect::<Vec<_>>()}),
            )
        }
        ("PATCH", Some(k)) => {
            let Some(f) = db
                .fields
                .get_mut(&e)
                .and_then(|v| v.iter_mut().find(|f| f.key == k && f.active))
            else {
                return bad(404, "field not found");
            };
            if let Some(n) = body.get("name").and_then(Value::as_str) {
                f.name = n.to_string();
            }
            f.update_time = now;
            ok(json!({"key": f.key, "name": f.name}))
        }
        ("DELETE", Some(k)) => {
            let Some(f) = db
                .fields
                .get_mut(&e)
                .and_then(|v| v.iter_mut().find(|f| f.key == k && f.active))
            else {
                return bad(404, "field not found");
            };
            f.active = false;
            f.update_time = now;
            ok(json!({"key": k, "deleted": true}))
        }
        _ => bad(400, "bad request"),
    }
}

/// Stores one custom field value as given, unchecked against the field's type: what an old
/// import or a buggy integration leaves behind, such as text in a number field.
fn custom_field_value(st: &State, entity: &str, id: &str, body: &Value) -> Response<Body> {
    let Some(e) = FieldEntity::parse(entity) else {
        return bad(404, "unknown entity");
    };
    let Ok(id) = id.parse::<u64>() else {
        return bad(404, "not found");
    };
    let value = match body.get("value") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(CfVal::Str(s.as_str().into())),
        Some(Value::Number(n)) => n.as_f64().map(CfVal::Num),
        Some(_) => return bad(400, "value must be a string, a number or null"),
    };
    let key = body.get("key").and_then(Value::as_str).unwrap_or_default();
    let now = st.clock.now() / 1000 * 1000;
    let mut db = st.db.write().unwrap_or_else(|e| e.into_inner());
    let Some(field) = db.custom_fields(e).find(|f| f.key == key).map(|f| f.id) else {
        return bad(404, "field not found");
    };
    if !matches!(
        e,
        FieldEntity::Deal | FieldEntity::Person | FieldEntity::Org | FieldEntity::Product
    ) {
        return bad(
            400,
            "values can be set on deals, persons, organizations and products",
        );
    }
    let origin = crate::webhook_delivery::Origin::app(now);
    let found = crate::webhook_delivery::observe(&mut db, origin, |db| match e {
        FieldEntity::Deal => db.deals.modify(id, |r| {
            r.cf.set(field, value);
            r.update_time = now;
        }),
        FieldEntity::Person => db.persons.modify(id, |r| {
            r.cf.set(field, value);
            r.update_time = now;
        }),
        FieldEntity::Org => db.orgs.modify(id, |r| {
            r.cf.set(field, value);
            r.update_time = now;
        }),
        FieldEntity::Product => db.products.modify(id, |r| {
            r.cf.set(field, value);
            r.update_time = now;
        }),
        _ => None,
    });
    match found {
        Some(()) => ok(json!({"ok": true})),
        None => bad(404, "not found"),
    }
}

/// Ground truth: every non-purged record in its canonical list representation, by primary key.
pub fn truth(db: &Db, entity: &str, now: i64) -> Option<Vec<u8>> {
    let mut j = J::with_capacity(1 << 16);
    j.obj().key("records").arr();
    let o = V2Opts::default();
    fn alive<T: Rec>(t: &Table<T>, now: i64) -> impl Iterator<Item = &T> {
        t.rows.iter().filter(move |r| !purged(*r, now))
    }
    match entity {
        "deals" => alive(&db.deals, now).for_each(|r| deal_v2(&mut j, db, r, &o)),
        "persons" => alive(&db.persons, now).for_each(|r| person_v2(&mut j, db, r, &o)),
        "organizations" => alive(&db.orgs, now).for_each(|r| org_v2(&mut j, db, r, &o)),
        "activities" => alive(&db.activities, now).for_each(|r| activity_v2(&mut j, db, r)),
        "products" => alive(&db.products, now).for_each(|r| product_v2(&mut j, db, r, &o)),
        "pipelines" => alive(&db.pipelines, now).for_each(|r| pipeline_v2(&mut j, r)),
        "stages" => alive(&db.stages, now).for_each(|r| stage_v2(&mut j, r)),
        "deal_products" => {
            alive(&db.deal_products.table, now).for_each(|r| deal_product_v2(&mut j, r))
        }
        "notes" => alive(&db.notes, now).for_each(|r| note_v1(&mut j, db, r, 1)),
        "leads" => {
            let mut v: Vec<&Lead> = alive(&db.leads, now).collect();
            v.sort_by(|a, b| a.uuid.cmp(&b.uuid));
            v.into_iter().for_each(|r| lead_v1(&mut j, db, r));
        }
        "users" => db.users.rows.iter().for_each(|u| user_v1(&mut j, u, 1)),
        "activity_types" => db
            .simple
            .activity_types
            .iter()
            .for_each(|r| activity_type_v1(&mut j, r)),
        "currencies" => db
            .simple
            .currencies
            .iter()
            .for_each(|r| currency_v1(&mut j, r)),
        "filters" => db.simple.filters.iter().for_each(|r| filter_v1(&mut j, r)),
        "lead_labels" => {
            let mut v: Vec<&LeadLabel> = db.simple.lead_labels.iter().collect();
            v.sort_by(|a, b| a.id.cmp(&b.id));
            v.into_iter().for_each(|r| lead_label_v1(&mut j, r));
        }
        "lead_sources" => crate::seed::LEAD_SOURCES.iter().for_each(|name| {
            j.ser(&crate::entities::leads::LeadSource { name });
        }),
        "deal_fields"
        | "person_fields"
        | "organization_fields"
        | "product_fields"
        | "activity_fields"
        | "project_fields" => {
            let e = FieldEntity::parse(entity)?;
            let mut v: Vec<&FieldDef> = db.fields(e).iter().filter(|f| f.active).collect();
            let code = |f: &FieldDef| {
                if f.is_custom() {
                    f.key.clone()
                } else {
                    crate::fields::v2_code(e, &f.key).to_string()
                }
            };
            v.sort_by_key(|f| code(f));
            v.into_iter().for_each(|f| v2_field(&mut j, e, f, &[]));
        }
        "lead_fields" | "note_fields" => {
            let e = FieldEntity::parse(entity)?;
            let mut v: Vec<FieldDef> = db.fields(e).iter().filter(|f| f.active).cloned().collect();
            if e == FieldEntity::Lead {
                v.extend(db.custom_fields(FieldEntity::Lead).cloned());
            }
            v.sort_by_key(|f| f.id);
            v.iter().for_each(|f| v1_field(&mut j, e, f));
        }
        "deal_followers" => alive(&db.deals, now).for_each(|d| {
            relations::follower_truth(d).iter().for_each(|f| {
                j.ser(f);
            })
        }),
        "deal_participants" => alive(&db.deals, now).for_each(|d| {
            if let Some(p) = relations::participant_truth(d) {
                j.ser(&p);
            }
        }),
        "deal_installments" => alive(&db.deals, now).for_each(|d| {
            relations::installments(d).iter().for_each(|i| {
                j.ser(i);
            })
        }),
        "deal_flow" => alive(&db.deals, now).for_each(|d| {
            let mut items = crate::seed::flow_items(db, d.id);
            items.sort_by_key(|f| f.id);
            for f in &items {
                j.ser(&relations::flow_truth(d.id, f));
            }
        }),
        other => {
            if let Some(records) = crate::entities::truth(db, other, now) {
                return Some(records);
            }
            if !crate::extra::truth(db, other, &mut j) {
                return None;
            }
        }
    }
    j.end_arr().end_obj();
    Some(j.buf)
}

/// OAuth errors carry the message in both `error` and `message`, as OAuth clients read either.
fn oauth_err(status: u16, msg: &str) -> (u16, Vec<u8>) {
    let mut r: Resp = err(status, msg);
    let v = serde_json::from_slice::<Value>(&r.body).ok().map(|mut v| {
        v["message"] = Value::String(msg.to_string());
        v
    });
    if let Some(v) = v {
        r.body = serde_json::to_vec(&v).unwrap_or_default();
    }
    (r.status, r.body)
}

/// `POST /oauth/token`: authorization_code and refresh_token grants.
pub fn oauth_token(st: &State, method: &str, headers: &HeaderMap, body: &[u8]) -> (u16, Vec<u8>) {
    if method != "POST" {
        return oauth_err(405, "Method not allowed");
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |k: &str| form.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
    let (cid, csec) = match basic.as_deref().and_then(|b| b.split_once(':')) {
        Some((a, b)) => (a.to_string(), b.to_string()),
        None => (
            get("client_id").unwrap_or("").to_string(),
            get("client_secret").unwrap_or("").to_string(),
        ),
    };
    if cid != OAUTH_CLIENT_ID || csec != OAUTH_CLIENT_SECRET {
        return oauth_err(400, "Invalid client: client is invalid");
    }
    let now = st.clock.now();
    let mut o = st.oauth.lock().unwrap_or_else(|e| e.into_inner());
    match get("grant_type") {
        Some("authorization_code") => {
            let code = get("code").unwrap_or("");
            match o.codes.remove(code) {
                Some(t) if now - t < 10 * 60_000 => {}
                _ => return oauth_err(400, "Invalid grant: authorization code is invalid"),
            }
        }
        Some("refresh_token") => {
            let rt = get("refresh_token").unwrap_or("");
            // Rotation: the used refresh token is invalidated immediately.
            match o.refresh.remove(rt) {
                Some(last) if now - last < REFRESH_TTL_MS => {}
                _ => return oauth_err(400, "Invalid grant: refresh_token is invalid"),
            }
        }
        Some(_) | None => return oauth_err(400, "Unsupported grant type"),
    }
    let access = format!("v1u:{}", o.mint(st.opts.seed, "oauth_access", 48));
    let refresh = refresh_token_string(&mut o, st);
    o.access.insert(access.clone(), now + ACCESS_TTL_MS);
    o.refresh.insert(refresh.clone(), now);
    o.issued_access.push(access.clone());
    o.issued_refresh.push(refresh.clone());
    let v = json!({
        "access_token": access,
        "token_type": "Bearer",
        "refresh_token": refresh,
        "scope": "base,deals:full,contacts:full,activities:full,products:full,leads:full,users:read,recents:read,admin",
        "expires_in": ACCESS_TTL_MS / 1000,
        "api_domain": st.url,
    });
    (200, serde_json::to_vec(&v).unwrap_or_default())
}
