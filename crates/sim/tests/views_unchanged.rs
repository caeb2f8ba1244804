//! What clients see stays what it was: every GET operation the simulator serves (each row of
//! the fidelity inventory, its lists paged with small pages, v1 and v2), the ground truth, and
//! the error answers (unknown method, unserved operation, missing record, bad credentials, bad
//! parameters) are compared with the snapshot in `tests/golden/views.json`, recorded from the
//! simulator before its renderers and routing were restructured.
//!
//! Compared per request: the status, the content type, which rate-limit headers came, and the
//! parsed body (key order ignored; present, absent, null and `1` against `1.0` all count).
//! Large bodies are held as a digest of their canonical form, their record count and their
//! first record. After an intended change of what clients see, re-record with
//! `GOLDEN_RECORD=1 cargo test -p pipedrive-sim --test views_unchanged` and review the diff.

mod common;
use common::*;
use pipedrive_sim::{Plan, Scale, SimOptions};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

const SEED: u64 = 41;
/// Bodies larger than this (in canonical form) are held as a digest.
const INLINE_MAX: usize = 6_000;
const LIMIT_HEADERS: &[&str] = &[
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-daily-ratelimit-token-limit",
    "x-daily-ratelimit-token-remaining",
    "retry-after",
];

fn golden_path() -> PathBuf {
    manifest_dir().join("tests/golden/views.json")
}

/// JSON text with object keys sorted, so that key order does not count.
fn canon(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canon(v, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canon(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// FNV-1a, 64 bits: enough to tell two bodies apart.
fn digest(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Write responses carry the wall-clock time of the write; those stamps (on the anchor day,
/// where the simulated clock starts) are replaced so that a write's answer can be compared.
fn redact_now(v: &mut Value) {
    match v {
        Value::String(s) if s.starts_with("2026-11-01") => *s = "<now>".into(),
        Value::Object(m) => m.values_mut().for_each(redact_now),
        Value::Array(a) => a.iter_mut().for_each(redact_now),
        _ => {}
    }
}

/// The request counters without what the wall clock sways (the latency and its buckets): how
/// many requests each normalised path saw, with which statuses and token spend.
fn stable_stats(v: &Value) -> Value {
    let paths: Map<String, Value> = v["paths"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, p)| (k.clone(), json!([p["requests"], p["tokens_spent"]])))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "requests": v["requests"],
        "tokens_spent": v["tokens_spent"],
        "responses_by_status": v["responses_by_status"],
        "paths": paths,
    })
}

enum Auth {
    Token,
    QueryToken,
    None,
    Header(&'static str),
    Bearer(String),
}

struct Golden {
    s: Sim,
    seen: Map<String, Value>,
}

impl Golden {
    async fn request(
        &mut self,
        name: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        auth: Auth,
    ) -> Value {
        let mut url = self.s.url(path);
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rq = self.s.c.request(m, &url);
        match auth {
            Auth::Token => rq = rq.header("x-api-token", &self.s.h.api_token),
            Auth::QueryToken => {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(&format!("api_token={}", self.s.h.api_token));
                let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
                rq = self.s.c.request(m, &url);
            }
            Auth::None => {}
            Auth::Header(t) => rq = rq.header("x-api-token", t),
            Auth::Bearer(t) => rq = rq.bearer_auth(t),
        }
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r = rq.send().await.expect("send");
        let status = r.status().as_u16();
        let headers: Vec<Value> = LIMIT_HEADERS
            .iter()
            .filter(|h| r.headers().contains_key(**h))
            .map(|h| json!(h))
            .collect();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = r.bytes().await.expect("body");
        let mut parsed: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if method != "GET" {
            redact_now(&mut parsed);
        }
        if matches!(path, "/__sim/stats" | "/__sim//stats/") {
            parsed = stable_stats(&parsed);
        }
        let mut text = String::new();
        canon(&parsed, &mut text);
        let mut rec = json!({
            "request": format!("{method} {path}"),
            "status": status,
            "content_type": content_type,
            "limit_headers": headers,
        });
        if text.len() <= INLINE_MAX {
            rec["body"] = parsed.clone();
        } else {
            rec["digest"] = json!(digest(&text));
            rec["bytes"] = json!(text.len());
            let (list, first) = match (&parsed["data"], &parsed["records"]) {
                (Value::Array(a), _) | (_, Value::Array(a)) => (a.len(), a.first().cloned()),
                _ => (0, None),
            };
            rec["records"] = json!(list);
            rec["first_record"] = first.unwrap_or(Value::Null);
        }
        // A GET asked twice (an inventory row and a parameter case) must answer alike.
        if let Some(earlier) = self.seen.get(name) {
            assert!(
                method == "GET" && *earlier == rec,
                "{name}: asked twice, answered differently"
            );
        }
        self.seen.insert(name.to_string(), rec);
        parsed
    }

    async fn get(&mut self, path: &str) -> Value {
        self.request(&format!("GET {path}"), "GET", path, None, Auth::Token)
            .await
    }

    /// A list's first two pages of five, by cursor (v2) or offset (v1).
    async fn pages(&mut self, path: &str) {
        let sep = if path.contains('?') { '&' } else { '?' };
        let first = format!("{path}{sep}limit=5");
        let v = self.get(&first).await;
        let next = &v["additional_data"];
        let second = if let Some(c) = next["next_cursor"].as_str() {
            format!("{first}&cursor={c}")
        } else if let Some(n) = next["pagination"]["next_start"].as_u64() {
            format!("{path}{sep}limit=5&start={n}")
        } else {
            return;
        };
        let r = self
            .request(
                &format!("GET {first} #2"),
                "GET",
                &second,
                None,
                Auth::Token,
            )
            .await;
        assert!(r.is_object(), "{second}");
    }
}

fn is_list(v: &Value) -> bool {
    v["data"].is_array()
        && (v["additional_data"]["next_cursor"].is_string()
            || v["additional_data"]["pagination"].is_object()
            || v["additional_data"].get("next_cursor").is_some())
}

const TRUTH: &[&str] = &[
    "deals",
    "persons",
    "organizations",
    "activities",
    "products",
    "pipelines",
    "stages",
    "deal_products",
    "notes",
    "leads",
    "users",
    "activity_types",
    "currencies",
    "filters",
    "lead_labels",
    "lead_sources",
    "deal_fields",
    "person_fields",
    "organization_fields",
    "product_fields",
    "activity_fields",
    "project_fields",
    "lead_fields",
    "note_fields",
    "deal_followers",
    "deal_participants",
    "deal_installments",
    "deal_flow",
    "boards",
    "phases",
    "project_templates",
    "product_variations",
    "note_comments",
    "webhooks",
    "person_followers",
    "organization_followers",
    "product_followers",
    "files",
    "call_logs",
    "mail_threads",
    "mail_messages",
    "roles",
    "permission_sets",
    "permission_set_assignments",
    "goals",
    "projects",
    "tasks",
    "no_such_entity",
];

#[tokio::test]
async fn what_clients_see_matches_the_recorded_views() {
    let s = sim(SimOptions {
        seed: SEED,
        scale: Scale::Tiny,
        plan: Plan::Unlimited,
        ..Default::default()
    })
    .await;
    let mut g = Golden {
        s,
        seen: Map::new(),
    };

    // Every row of the inventory, as its example asks, and its lists paged by five.
    for row in inventory() {
        let path = format!("/api/{}{}", row.api, fill(&g.s, &row.example).await);
        let v = g.get(&path).await;
        if row.served && is_list(&v) {
            g.pages(&path).await;
        }
    }

    // The v2 lists' parameters.
    let deal = resolve(&g.s, "deal").await;
    let person = resolve(&g.s, "person").await;
    let custom: Vec<String> =
        g.s.truth("deal_fields")
            .await
            .iter()
            .filter_map(|f| f["field_code"].as_str().map(str::to_string))
            .filter(|k| k.len() == 40)
            .take(2)
            .collect();
    for path in [
        "/api/v2/deals?sort_by=update_time&sort_direction=desc".to_string(),
        "/api/v2/deals?sort_by=add_time".to_string(),
        "/api/v2/deals?updated_since=2026-06-01T00:00:00Z&updated_until=2026-10-01T00:00:00Z"
            .to_string(),
        "/api/v2/deals?status=deleted".to_string(),
        "/api/v2/deals?status=won,lost".to_string(),
        "/api/v2/deals?owner_id=1&pipeline_id=1".to_string(),
        "/api/v2/deals?include_fields=next_activity_id,last_activity_id,first_won_time,products_count,files_count,notes_count,followers_count,email_messages_count,activities_count,done_activities_count,undone_activities_count,participants_count,last_incoming_mail_time,last_outgoing_mail_time,smart_bcc_email".to_string(),
        format!("/api/v2/deals?custom_fields={}", custom.join(",")),
        format!("/api/v2/deals?custom_fields={}&include_option_labels=true", custom.join(",")),
        format!("/api/v2/deals?person_id={person}"),
        "/api/v2/deals?ids=1,2,3,4,5,6,7,8".to_string(),
        "/api/v2/persons?sort_by=update_time&include_fields=next_activity_id,last_activity_id,open_deals_count,related_open_deals_count,closed_deals_count,related_closed_deals_count,participant_open_deals_count,participant_closed_deals_count,email_messages_count,activities_count,done_activities_count,undone_activities_count,files_count,notes_count,followers_count,won_deals_count,related_won_deals_count,lost_deals_count,related_lost_deals_count,last_incoming_mail_time,last_outgoing_mail_time,marketing_status,doi_status,smart_bcc_email".to_string(),
        "/api/v2/persons?org_id=1".to_string(),
        "/api/v2/organizations?sort_by=add_time&sort_direction=desc&include_fields=next_activity_id,last_activity_id,open_deals_count,related_open_deals_count,closed_deals_count,related_closed_deals_count,email_messages_count,people_count,activities_count,done_activities_count,undone_activities_count,files_count,notes_count,followers_count,won_deals_count,related_won_deals_count,lost_deals_count,related_lost_deals_count,last_incoming_mail_time,last_outgoing_mail_time,smart_bcc_email".to_string(),
        "/api/v2/activities?done=true&sort_by=due_date".to_string(),
        format!("/api/v2/activities?deal_id={deal}"),
        "/api/v2/activities?updated_since=2026-01-01T00:00:00Z".to_string(),
        "/api/v2/products?sort_by=name&include_fields=price_overrides".to_string(),
        "/api/v2/stages?pipeline_id=1&sort_by=order_nr".to_string(),
        "/api/v2/pipelines?sort_by=update_time".to_string(),
        format!("/api/v2/deals/products?deal_ids={deal},1,2,3"),
        "/api/v2/projects?status=open".to_string(),
        "/api/v2/tasks?project_id=1".to_string(),
        "/api/v2/deals/archived?sort_by=update_time".to_string(),
    ] {
        g.pages(&path).await;
    }
    // The single records' options.
    for path in [
        format!("/api/v2/deals/{deal}?include_fields=products_count,notes_count"),
        format!("/api/v2/deals/{deal}?custom_fields={}", custom.join(",")),
        format!("/api/v2/persons/{person}?include_fields=open_deals_count,marketing_status"),
    ] {
        g.get(&path).await;
    }

    // v1 lists and their parameters, under both v1 prefixes.
    for path in [
        "/api/v1/deals",
        "/v1/deals",
        "/api/v1/deals?status=won",
        "/api/v1/deals?sort=update_time%20DESC",
        "/api/v1/deals?user_id=1&stage_id=1",
        "/api/v1/persons",
        "/api/v1/organizations",
        "/api/v1/activities",
        "/api/v1/products",
        "/api/v1/notes?sort=update_time%20ASC",
        "/api/v1/notes?deal_id=1",
        "/api/v1/leads?archived_status=all",
        "/api/v1/dealFields",
        "/v1/personFields",
        "/api/v1/recents?since_timestamp=2026-10-15%2000:00:00&items=deal,person",
        "/api/v1/files?sort=id%20DESC",
        "/api/v1/users",
    ] {
        g.pages(path).await;
    }
    for path in [
        "/api/v1/pipelines",
        "/api/v1/stages",
        "/api/v1/stages?pipeline_id=1",
        "/api/v1/currencies?term=eu",
        "/api/v1/filters?type=deals",
        "/api/v1/pipelines/1",
        "/api/v1/stages/1",
        &format!("/api/v1/deals/{deal}"),
        &format!("/api/v1/persons/{person}"),
        "/api/v1/organizations/1",
        "/api/v1/activities/1",
        "/api/v1/products/1",
        "/api/v1/deals/1/flow?items=dealChange",
        "/api/v1/deals/1/flow?limit=3&start=1",
    ] {
        g.get(path).await;
    }

    // Errors: unknown methods, unserved operations, missing records, bad parameters.
    for path in [
        "/api/v2/dealz",
        "/api/v2/deals/1/nonsense",
        "/api/v1/foo/bar",
        "/api/v3/deals",
        "/v2/deals",
        "/",
        "/api/v2/fooFields",
        "/api/v1/projectFields",
        "/api/v2/deals/summary",
        "/api/v1/deals/summary",
        "/api/v2/deals/abc",
        "/api/v1/deals/abc",
        "/api/v1/filters/abc",
        "/api/v1/dealFields/abc",
        "/api/v1/dealFields/999999",
        "/api/v2/dealFields/nope",
        "/api/v2",
        "/api/v2/",
        "/api/v2/deals/?limit=2",
        "/api/v2//deals?limit=2",
        "/v1/deals/?limit=2",
        "/api/v1/deals/1/",
    ] {
        g.get(path).await;
    }
    for path in ["/api/v2/deals", "/api/v2/dealz", "/api/v1/deals/summary"] {
        g.request(&format!("HEAD {path}"), "HEAD", path, None, Auth::Token)
            .await;
    }
    for entity in [
        "deals",
        "persons",
        "organizations",
        "activities",
        "products",
        "pipelines",
        "stages",
        "projects",
        "tasks",
        "projectTemplates",
        "boards",
    ] {
        g.get(&format!("/api/v2/{entity}/999999")).await;
    }
    for entity in [
        "deals",
        "persons",
        "organizations",
        "activities",
        "products",
        "pipelines",
        "stages",
        "notes",
        "users",
        "filters",
        "files",
        "callLogs",
        "roles",
        "permissionSets",
        "projects",
        "tasks",
        "mailbox/mailThreads",
        "mailbox/mailMessages",
        "legacyTeams",
        "leads/00000000-0000-0000-0000-000000000000",
        "deals/999999/flow",
        "deals/999999/participants",
        "deals/999999/followers",
        "deals/999999/files",
        "deals/999999/changelog",
        "notes/999999/comments",
        "persons/999999/followers",
    ] {
        let path = if entity.contains('/') && !entity.starts_with("mailbox") {
            format!("/api/v1/{entity}")
        } else {
            format!("/api/v1/{entity}/999999")
        };
        g.get(&path).await;
    }
    for path in [
        "/api/v2/deals?sort_by=title",
        "/api/v2/deals?sort_direction=up",
        "/api/v2/deals?cursor=nonsense",
        "/api/v2/deals?limit=501",
        "/api/v2/deals?limit=0",
        "/api/v2/deals?limit=abc",
        "/api/v2/deals?updated_since=yesterday",
        "/api/v2/deals?owner_id=abc",
        "/api/v2/deals?status=bogus",
        "/api/v2/deals?ids=a,b",
        "/api/v2/persons?owner_id=x",
        "/api/v2/activities?deal_id=x",
        "/api/v2/pipelines?updated_since=2026-01-01T00:00:00Z",
        "/api/v2/deals/products",
        "/api/v2/deals/installments",
        "/api/v2/phases",
        "/api/v1/projects/phases",
        "/api/v1/deals?start=-1",
        "/api/v1/deals?limit=abc",
        "/api/v1/deals?limit=600",
        "/api/v1/recents",
        "/api/v1/recents?since_timestamp=yesterday",
        "/api/v1/mailbox/mailThreads",
    ] {
        g.get(path).await;
    }

    // Credentials.
    let list = "/api/v2/pipelines?limit=5";
    for (name, auth) in [
        ("no credentials", Auth::None),
        ("a wrong x-api-token", Auth::Header("0000")),
        ("api_token in the query", Auth::QueryToken),
    ] {
        for path in [list, "/api/v1/pipelines", "/v1/users/me"] {
            g.request(
                &format!("{name}: GET {path}"),
                "GET",
                path,
                None,
                auth_copy(&auth),
            )
            .await;
        }
    }
    g.request(
        "a wrong api_token in the query",
        "GET",
        "/api/v2/deals?limit=5&api_token=0000",
        None,
        Auth::None,
    )
    .await;
    g.request(
        "an unknown bearer token",
        "GET",
        list,
        None,
        Auth::Bearer("nope".into()),
    )
    .await;
    let code = g.s.admin("POST", "/__sim/oauth/authorize", json!({})).await;
    let form = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}",
        code["code"].as_str().expect("code"),
        code["redirect_uri"].as_str().unwrap_or("")
    );
    let token: Value =
        g.s.c
            .post(g.s.url("/oauth/token"))
            .basic_auth(
                pipedrive_sim::OAUTH_CLIENT_ID,
                Some(pipedrive_sim::OAUTH_CLIENT_SECRET),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("token json");
    let access = token["access_token"].as_str().expect("access_token");
    for path in [list, "/api/v1/users/me"] {
        g.request(
            &format!("OAuth: GET {path}"),
            "GET",
            path,
            None,
            Auth::Bearer(access.to_string()),
        )
        .await;
    }
    g.request("GET /oauth/token", "GET", "/oauth/token", None, Auth::None)
        .await;
    g.request(
        "GET /oauth/token/",
        "GET",
        "/oauth/token/",
        None,
        Auth::None,
    )
    .await;

    // The ground truth.
    for entity in TRUTH {
        let path = format!("/__sim/truth/{entity}");
        g.request(&format!("GET {path}"), "GET", &path, None, Auth::None)
            .await;
    }
    // The admin API's reads, its unknown paths and methods, and the request counters so far.
    for (method, path) in [
        ("GET", "/__sim/nope"),
        ("GET", "/__sim"),
        ("GET", "/__sim/"),
        ("GET", "/__sim/truth/deals/1"),
        ("POST", "/__sim/truth/deals"),
        ("DELETE", "/__sim/stats"),
        ("GET", "/__sim/budget"),
        ("GET", "/__sim/budget/"),
        ("GET", "/__sim/faults"),
        ("GET", "/__sim/churn"),
        ("GET", "/__sim/info"),
        ("GET", "/__sim/webhooks/stats"),
        ("GET", "/__sim/webhooks/faults"),
        ("GET", "/__sim/webhooks/timing"),
        ("GET", "/__sim/webhooks/nope"),
        ("GET", "/__sim/webhooks"),
        ("GET", "/__sim/stats"),
        ("GET", "/__sim//stats/"),
    ] {
        g.request(&format!("{method} {path}"), method, path, None, Auth::None)
            .await;
    }

    // Writes refused, then writes that land (their stamps of the current time redacted).
    for (method, path, body) in [
        ("PATCH", "/api/v2/deals/999999", json!({"title": "x"})),
        ("DELETE", "/api/v2/deals/999999", json!({})),
        ("POST", "/api/v2/deals", json!({})),
        ("POST", "/api/v2/deals", json!({"title": 5})),
        ("POST", "/api/v2/dealz", json!({})),
        ("PUT", "/api/v2/deals/1", json!({"title": "x"})),
        ("PUT", "/api/v1/notes/999999", json!({"content": "x"})),
        ("POST", "/api/v1/notes", json!({})),
        ("PUT", "/api/v1/persons/1/merge", json!({})),
        (
            "PUT",
            "/api/v1/persons/1/merge",
            json!({"merge_with_id": 1}),
        ),
        ("POST", "/api/v1/webhooks", json!({})),
        ("DELETE", "/api/v1/webhooks/999999", json!({})),
        (
            "PATCH",
            "/api/v1/leads/00000000-0000-0000-0000-000000000000",
            json!({"title": "x"}),
        ),
        ("POST", "/api/v2/dealFields", json!({})),
        ("POST", "/api/v1/deals/1/duplicate", json!({})),
        (
            "POST",
            "/api/v2/deals",
            json!({"title": "Golden", "value": 100, "currency": "EUR"}),
        ),
        (
            "PATCH",
            "/api/v2/deals/1",
            json!({"title": "Renamed", "status": "won"}),
        ),
        (
            "PATCH",
            "/api/v2/persons/1",
            json!({"name": "Renamed Person"}),
        ),
        (
            "PATCH",
            "/api/v2/organizations/1",
            json!({"name": "Renamed Org"}),
        ),
        (
            "POST",
            "/api/v2/activities",
            json!({"subject": "Call", "type": "call", "deal_id": 1}),
        ),
        (
            "PATCH",
            "/api/v2/products/1",
            json!({"name": "Renamed Product"}),
        ),
        ("DELETE", "/api/v2/deals/2", json!({})),
        (
            "POST",
            "/api/v1/notes",
            json!({"content": "Golden note", "deal_id": 1}),
        ),
        ("DELETE", "/api/v1/notes/1", json!({})),
    ] {
        g.request(
            &format!("{method} {path} {body}"),
            method,
            path,
            Some(body),
            Auth::Token,
        )
        .await;
    }
    for path in [
        "/api/v2/deals/1",
        "/api/v2/deals/2",
        "/api/v1/deals/1/flow?limit=3",
    ] {
        g.request(
            &format!("after the writes: GET {path}"),
            "GET",
            path,
            None,
            Auth::Token,
        )
        .await;
    }

    let got = Value::Object(g.seen);
    let path = golden_path();
    if std::env::var_os("GOLDEN_RECORD").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let text = serde_json::to_string_pretty(&got).expect("json") + "\n";
        std::fs::write(&path, text).expect("write golden");
        g.s.h.shutdown().await;
        return;
    }
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .expect("golden json");
    let (want, got) = (
        want.as_object().expect("object"),
        got.as_object().expect("object"),
    );
    let mut wrong = Vec::new();
    for (name, w) in want {
        match got.get(name) {
            None => wrong.push(format!("{name}: no longer requested")),
            Some(v) if v != w => wrong.push(format!("{name}: {}", first_difference(w, v, ""))),
            Some(_) => {}
        }
    }
    for name in got.keys().filter(|k| !want.contains_key(*k)) {
        wrong.push(format!("{name}: not in the snapshot (re-record it)"));
    }
    g.s.h.shutdown().await;
    assert!(
        wrong.is_empty(),
        "{} of {} requests answer otherwise than recorded:\n{}",
        wrong.len(),
        want.len(),
        wrong
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn auth_copy(a: &Auth) -> Auth {
    match a {
        Auth::Token => Auth::Token,
        Auth::QueryToken => Auth::QueryToken,
        Auth::None => Auth::None,
        Auth::Header(t) => Auth::Header(t),
        Auth::Bearer(t) => Auth::Bearer(t.clone()),
    }
}

/// Where two recorded answers first part: a JSON pointer and both values (shortened).
fn first_difference(want: &Value, got: &Value, at: &str) -> String {
    let short = |v: Option<&Value>| -> String {
        let s = v.map_or("(absent)".to_string(), Value::to_string);
        s.chars().take(200).collect()
    };
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = format!("{at}/{k}");
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) if x == y => {}
                    (Some(x), Some(y)) => return first_difference(x, y, &p),
                    (x, y) => return format!("{p}: recorded {}, now {}", short(x), short(y)),
                }
            }
            format!("{at}: differs")
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                if x != y {
                    return first_difference(x, y, &format!("{at}/{i}"));
                }
            }
            format!("{at}: differs")
        }
        _ => format!(
            "{at}: recorded {}, now {}",
            short(Some(want)),
            short(Some(got))
        ),
    }
}
