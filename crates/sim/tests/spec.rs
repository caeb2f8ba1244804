//! Validates every covered GET response against the official OpenAPI response schema.
//!
//! Documented exceptions (see `NULL_OK`): the specs omit `nullable` on some fields the live API
//! returns as `null` (e.g. `won_time` of an open deal, `person_id` of a deal without a person),
//! and v1 lists nest `start/limit/more_items_in_collection` under `additional_data.pagination`
//! (SOURCE.md quirk) — extra keys are allowed by the schemas, so that needs no exception.

mod common;
use common::*;
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = spec_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let opts = serde_saphyr::options! { budget: None };
    serde_saphyr::from_str_with_options(&text, opts).expect("parse spec")
}

/// Fields the live API returns as null although the spec does not say `nullable`.
const NULL_OK: &[&str] = &[
    "won_time",
    "lost_time",
    "first_won_time",
    "stage_change_time",
    "expected_close_date",
    "archive_time",
    "local_won_date",
    "local_lost_date",
    "local_close_date",
    "person_id",
    "org_id",
    "deal_id",
    "lead_id",
    "project_id",
    "next_cursor",
    "options",
    "address",
    "postal_address",
    "location",
    "picture_id",
    "birthday",
    "job_title",
    "website",
    "linkedin",
    "industry",
    "annual_revenue",
    "employee_count",
    "note",
    "due_time",
    "duration",
    "marked_as_done_time",
    "priority",
    "public_description",
    "conference_meeting_client",
    "conference_meeting_url",
    "conference_meeting_id",
    "description",
    "category",
    "billing_frequency_cycles",
    "rotten_days",
    "days_to_rotten",
    "icon_url",
    "phone",
    "next_activity_date",
    "next_activity_time",
    "label",
    "org_name",
    "person_name",
    "owner_name",
    "deal",
    "person",
    "organization",
    "project",
    "product_id",
    "activity_id",
    "linked_person_id",
];

/// Enums the spec lists incompletely: v1 `*Fields` built-in fields also use `int`, `stage`,
/// `status`, `varchar_options`, `deal`, `lead`, `billing_frequency`... (API-FACTS §7 lists the
/// full set of `field_type` values).
const ENUM_OK: &[&str] = &["field_type"];

struct Checker<'a> {
    spec: &'a Value,
    errs: Vec<String>,
}

impl Checker<'_> {
    fn resolve<'b>(spec: &'b Value, mut s: &'b Value) -> &'b Value {
        for _ in 0..50 {
            let Some(r) = s.get("$ref").and_then(Value::as_str) else {
                return s;
            };
            let mut cur = spec;
            for part in r.trim_start_matches("#/").split('/') {
                cur = &cur[part.replace("~1", "/").as_str()];
            }
            s = cur;
        }
        s
    }

    fn check(&mut self, schema: &Value, v: &Value, path: &str, key: &str) {
        let spec = self.spec;
        let schema = Self::resolve(spec, schema);
        if v.is_null() {
            if schema.get("nullable") == Some(&Value::Bool(true)) || NULL_OK.contains(&key) {
                return;
            }
            if schema.get("type").is_some() || schema.get("properties").is_some() {
                self.errs.push(format!("{path}: null but not nullable"));
            }
            return;
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.check(s, v, path, key);
            }
        }
        for comb in ["oneOf", "anyOf"] {
            if let Some(alts) = schema.get(comb).and_then(Value::as_array) {
                let mut best: Option<Vec<String>> = None;
                for s in alts {
                    let mut c = Checker {
                        spec: self.spec,
                        errs: Vec::new(),
                    };
                    c.check(s, v, path, key);
                    // An enum mismatch (e.g. the `item` discriminator) disqualifies an alternative.
                    let score = |e: &Vec<String>| {
                        e.len() + 100 * e.iter().filter(|x| x.contains("not in enum")).count()
                    };
                    if best.as_ref().is_none_or(|b| score(&c.errs) < score(b)) {
                        best = Some(c.errs);
                    }
                }
                if let Some(b) = best.filter(|b| !b.is_empty()) {
                    self.errs.push(format!(
                        "{path}: matches no {comb} alternative; closest: {}",
                        b.join("; ")
                    ));
                }
            }
        }
        if let Some(t) = schema.get("type").and_then(Value::as_str) {
            let ok = match t {
                "string" => v.is_string(),
                "integer" => v.is_i64() || v.is_u64(),
                "number" => v.is_number(),
                "boolean" => v.is_boolean(),
                "array" => v.is_array(),
                "object" => v.is_object(),
                _ => true,
            };
            if !ok {
                self.errs.push(format!("{path}: expected {t}, got {v}"));
                return;
            }
        }
        if let Some(en) = schema.get("enum").and_then(Value::as_array)
            && !ENUM_OK.contains(&key)
            && !en.contains(v)
            && !(v.is_boolean() && en.iter().any(|e| e.as_str() == Some(&v.to_string())))
        {
            self.errs.push(format!("{path}: {v} not in enum {en:?}"));
        }
        if let Some(o) = v.as_object() {
            if let Some(req) = schema.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !o.contains_key(r) {
                        self.errs.push(format!("{path}: missing required {r}"));
                    }
                }
            }
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, ps) in props {
                    if let Some(x) = o.get(k) {
                        self.check(ps, x, &format!("{path}.{k}"), k);
                    }
                }
            }
        }
        if let (Some(items), Some(a)) = (schema.get("items"), v.as_array()) {
            for (i, x) in a.iter().enumerate() {
                self.check(items, x, &format!("{path}[{i}]"), key);
            }
        }
    }
}

fn response_schema<'a>(spec: &'a Value, path: &str) -> &'a Value {
    let op = &spec["paths"][path]["get"];
    assert!(op.is_object(), "spec has no GET {path}");
    let r = &op["responses"]["200"];
    let r = if let Some(rf) = r.get("$ref").and_then(Value::as_str) {
        let mut cur = spec;
        for p in rf.trim_start_matches("#/").split('/') {
            cur = &cur[p];
        }
        cur
    } else {
        r
    };
    &r["content"]["application/json"]["schema"]
}

async fn validate(s: &Sim, spec: &Value, spec_path: &str, url: &str, errs: &mut Vec<String>) {
    let (st, v) = s.get(url).await;
    assert_eq!(st, 200, "{url}: {v}");
    let data = &v["data"];
    assert!(
        !data.is_null() && data != &Value::Array(vec![]),
        "{url}: want a non-empty page to validate"
    );
    let mut c = Checker {
        spec,
        errs: Vec::new(),
    };
    c.check(response_schema(spec, spec_path), &v, url, "");
    errs.extend(c.errs.into_iter().take(20));
}

#[tokio::test]
async fn responses_match_openapi_schemas() {
    let (v2, v1, v1old) = (
        load("openapi-v2.yaml"),
        load("openapi-v1.yaml"),
        load("openapi-v1-2026-01-14-with-deprecated.yaml"),
    );
    let s = unlimited(21).await;
    let deal_with_products = s.truth("deal_products").await[0]["deal_id"]
        .as_i64()
        .unwrap();
    let field_code = s.truth("deal_fields").await[0]["field_code"]
        .as_str()
        .unwrap()
        .to_string();
    let lead = s.truth("leads").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let flow_deal = s
        .truth("deals")
        .await
        .iter()
        .find(|d| !d["stage_change_time"].is_null() && d["person_id"].is_number())
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let mut errs = Vec::new();
    let v2_cases: Vec<(&str, String)> = vec![
        ("/deals", "/api/v2/deals?limit=500".into()),
        ("/deals/archived", "/api/v2/deals/archived?limit=500".into()),
        ("/deals", "/api/v2/deals?status=deleted&include_option_labels=true".into()),
        ("/deals/{id}", "/api/v2/deals/1".into()),
        ("/deals/products", format!("/api/v2/deals/products?deal_ids={deal_with_products},1,2,3,4,5,6")),
        ("/deals/{id}/products", format!("/api/v2/deals/{deal_with_products}/products")),
        ("/deals/installments", "/api/v2/deals/installments?deal_ids=7,14,21".into()),
        ("/deals/{id}/followers", "/api/v2/deals/1/followers".into()),
        ("/persons", "/api/v2/persons?limit=500".into()),
        ("/persons/{id}", "/api/v2/persons/2".into()),
        ("/organizations", "/api/v2/organizations?limit=500".into()),
        ("/organizations/{id}", "/api/v2/organizations/2".into()),
        ("/activities", "/api/v2/activities?limit=500".into()),
        ("/activities/{id}", "/api/v2/activities/2".into()),
        ("/products", "/api/v2/products?limit=500".into()),
        ("/products/{id}", "/api/v2/products/2".into()),
        ("/pipelines", "/api/v2/pipelines".into()),
        ("/pipelines/{id}", "/api/v2/pipelines/1".into()),
        ("/stages", "/api/v2/stages".into()),
        ("/stages/{id}", "/api/v2/stages/1".into()),
        ("/dealFields", "/api/v2/dealFields?limit=500&include_fields=ui_visibility,important_fields,required_fields".into()),
        ("/dealFields/{field_code}", format!("/api/v2/dealFields/{field_code}")),
        ("/personFields", "/api/v2/personFields?limit=500".into()),
        ("/organizationFields", "/api/v2/organizationFields?limit=500".into()),
        ("/productFields", "/api/v2/productFields?limit=500".into()),
        ("/activityFields", "/api/v2/activityFields?limit=500".into()),
        ("/projectFields", "/api/v2/projectFields?limit=500".into()),
    ];
    for (sp, url) in &v2_cases {
        validate(&s, &v2, sp, url, &mut errs).await;
    }
    let v1_cases: Vec<(&str, String)> = vec![
        ("/users", "/v1/users".into()),
        ("/users/me", "/v1/users/me".into()),
        ("/users/{id}", "/api/v1/users/2".into()),
        ("/notes", "/v1/notes?limit=500".into()),
        ("/notes/{id}", "/v1/notes/2".into()),
        ("/leads", "/v1/leads?limit=500".into()),
        ("/leads/archived", "/v1/leads/archived".into()),
        ("/leads/{id}", format!("/v1/leads/{lead}")),
        ("/leadLabels", "/v1/leadLabels".into()),
        ("/leadSources", "/v1/leadSources".into()),
        ("/activityTypes", "/v1/activityTypes".into()),
        ("/currencies", "/v1/currencies".into()),
        ("/filters", "/v1/filters".into()),
        ("/filters/{id}", "/v1/filters/1".into()),
        ("/dealFields", "/v1/dealFields?limit=500".into()),
        ("/personFields", "/v1/personFields".into()),
        ("/organizationFields", "/v1/organizationFields".into()),
        ("/productFields", "/v1/productFields".into()),
        ("/leadFields", "/v1/leadFields".into()),
        ("/activityFields", "/v1/activityFields".into()),
        ("/noteFields", "/v1/noteFields".into()),
        (
            "/recents",
            "/v1/recents?since_timestamp=2026-09-01%2000:00:00&limit=500".into(),
        ),
        ("/deals/{id}/flow", format!("/v1/deals/{flow_deal}/flow")),
        (
            "/deals/{id}/participants",
            format!("/v1/deals/{flow_deal}/participants"),
        ),
        ("/deals/{id}/followers", "/v1/deals/1/followers".into()),
    ];
    for (sp, url) in &v1_cases {
        validate(&s, &v1, sp, url, &mut errs).await;
    }
    let old_cases: Vec<(&str, String)> = vec![
        ("/deals", "/v1/deals?limit=500".into()),
        ("/deals", "/v1/deals?status=deleted".into()),
        ("/deals/{id}", "/v1/deals/1".into()),
        ("/persons", "/v1/persons?limit=500".into()),
        ("/persons/{id}", "/v1/persons/2".into()),
        ("/organizations", "/v1/organizations?limit=500".into()),
        ("/activities", "/v1/activities?limit=500".into()),
        ("/products", "/v1/products?limit=500".into()),
        ("/pipelines", "/v1/pipelines".into()),
        ("/stages", "/v1/stages".into()),
    ];
    for (sp, url) in &old_cases {
        validate(&s, &v1old, sp, url, &mut errs).await;
    }
    extra_cases(&s, &v1, &v2, &mut errs).await;
    assert!(
        errs.is_empty(),
        "{} schema violations:\n{}",
        errs.len(),
        errs.join("\n")
    );
    s.h.shutdown().await;
}

/// Lower-priority v1 entities, validated the same way.
async fn extra_cases(s: &Sim, v1: &Value, v2: &Value, errs: &mut Vec<String>) {
    let goal = s.truth("goals").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let set = s.truth("permission_sets").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let thread = s.truth("mail_threads").await[0]["id"].as_i64().unwrap();
    let cases: Vec<(&str, String)> = vec![
        ("/files", "/v1/files?limit=100".into()),
        ("/files/{id}", "/v1/files/1".into()),
        ("/callLogs", "/v1/callLogs".into()),
        (
            "/mailbox/mailThreads",
            "/v1/mailbox/mailThreads?folder=inbox".into(),
        ),
        (
            "/mailbox/mailThreads/{id}/mailMessages",
            format!("/v1/mailbox/mailThreads/{thread}/mailMessages"),
        ),
        ("/roles", "/v1/roles".into()),
        ("/permissionSets", "/v1/permissionSets".into()),
        (
            "/permissionSets/{id}/assignments",
            format!("/v1/permissionSets/{set}/assignments"),
        ),
        ("/legacyTeams", "/v1/legacyTeams".into()),
        ("/goals/find", "/v1/goals/find".into()),
        (
            "/goals/{id}/results",
            format!("/v1/goals/{goal}/results?period.start=2026-01-01&period.end=2026-06-30"),
        ),
    ];
    for (sp, url) in &cases {
        if sp.starts_with("/goals") {
            // `data` is an object here.
            let (st, v) = s.get(url).await;
            assert_eq!(st, 200, "{url}");
            let mut c = Checker {
                spec: v1,
                errs: Vec::new(),
            };
            c.check(response_schema(v1, sp), &v, url, "");
            errs.extend(c.errs);
            continue;
        }
        validate(s, v1, sp, url, errs).await;
    }
    for (sp, url) in [
        ("/projects", "/api/v2/projects"),
        ("/projects/archived", "/api/v2/projects/archived"),
        ("/tasks", "/api/v2/tasks"),
    ] {
        validate(s, v2, sp, url, errs).await;
    }
}
