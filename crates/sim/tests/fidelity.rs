//! What third-party clients see: the simulator answers as the real Pipedrive does where clients
//! written against the real API depend on it (auth, omitted keys, rate-limit headers, the answer
//! to an operation it does not serve, webhook registration).

mod common;
use common::*;
use pipedrive_sim::{Plan, SimOptions};
use serde_json::{Value, json};
use std::collections::BTreeSet;

impl Sim {
    /// Follows v2 cursors with the token in the query string, as Airbyte's and Singer's
    /// maintained Pipedrive connectors send it.
    async fn all_v2_by_query_token(&self, path: &str) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let url = format!("{path}{sep}limit=7&api_token={}{cursor}", self.h.api_token);
            let r = self.c.get(self.url(&url)).send().await.expect("send");
            assert_eq!(r.status(), 200, "{path} with ?api_token=");
            let v: Value = r.json().await.expect("json");
            out.extend(v["data"].as_array().cloned().unwrap_or_default());
            match v["additional_data"]["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => return out,
            }
        }
    }
}

/// Which ground-truth records a list shows.
type Shown<'a> = &'a dyn Fn(&Value) -> bool;

fn keys(records: &[Value], key: &str) -> BTreeSet<String> {
    records.iter().map(|r| r[key].to_string()).collect()
}

#[tokio::test]
async fn api_token_in_the_query_pages_every_v2_list_to_the_ground_truth() {
    let s = unlimited(31).await;
    let live = |r: &Value| r["is_deleted"] != json!(true) && r["is_archived"] != json!(true);
    let archived = |r: &Value| r["is_deleted"] != json!(true) && r["is_archived"] == json!(true);
    let every = |_: &Value| true;
    let cases: &[(&str, &str, &str, Shown)] = &[
        ("/api/v2/deals", "deals", "id", &live),
        ("/api/v2/deals/archived", "deals", "id", &archived),
        ("/api/v2/persons", "persons", "id", &live),
        ("/api/v2/organizations", "organizations", "id", &live),
        ("/api/v2/activities", "activities", "id", &live),
        ("/api/v2/products", "products", "id", &live),
        ("/api/v2/pipelines", "pipelines", "id", &live),
        ("/api/v2/stages", "stages", "id", &live),
        ("/api/v2/dealFields", "deal_fields", "field_code", &every),
        (
            "/api/v2/personFields",
            "person_fields",
            "field_code",
            &every,
        ),
        ("/api/v2/projects", "projects", "id", &|r: &Value| {
            r["archive_time"].is_null()
        }),
        ("/api/v2/tasks", "tasks", "id", &every),
        (
            "/api/v2/projectTemplates",
            "project_templates",
            "id",
            &every,
        ),
    ];
    for (path, entity, key, keep) in cases {
        let got = s.all_v2_by_query_token(path).await;
        let truth: Vec<Value> = s
            .truth(entity)
            .await
            .into_iter()
            .filter(|r| keep(r))
            .collect();
        assert!(
            !truth.is_empty(),
            "{entity}: the truth is empty, nothing is compared"
        );
        assert_eq!(
            got.len(),
            truth.len(),
            "{path}: duplicates or missing records"
        );
        assert_eq!(keys(&got, key), keys(&truth, key), "{path}");
    }
    // A wrong token in the query is still refused.
    let r =
        s.c.get(s.url("/api/v2/deals?api_token=wrong"))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 401);
    s.h.shutdown().await;
}

#[tokio::test]
async fn v1_field_lists_leave_options_out_when_a_field_has_none() {
    let s = unlimited(32).await;
    let mut without_options = 0;
    for list in [
        "dealFields",
        "personFields",
        "organizationFields",
        "productFields",
        "leadFields",
        "activityFields",
        "noteFields",
    ] {
        let (status, v) = s.get(&format!("/api/v1/{list}?limit=500")).await;
        assert_eq!(status, 200, "{list}");
        for f in v["data"].as_array().expect("fields") {
            match f.get("options") {
                None => without_options += 1,
                Some(o) => assert!(
                    o.as_array().is_some_and(|o| !o.is_empty()),
                    "{list}: {} has options {o}",
                    f["key"]
                ),
            }
        }
    }
    assert!(
        without_options > 20,
        "only {without_options} fields without options"
    );
    s.h.shutdown().await;
}

const RATE_LIMIT_HEADERS: [&str; 5] = [
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-daily-ratelimit-token-limit",
    "x-daily-ratelimit-token-remaining",
];

fn header(r: &reqwest::Response, name: &str) -> u64 {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("{} has no {name}", r.url()))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn rate_limit_headers_come_with_every_response_whatever_the_plan() {
    for plan in [Plan::Unlimited, Plan::Lite, Plan::Growth] {
        let s = sim(SimOptions {
            seed: 33,
            plan,
            ..Default::default()
        })
        .await;
        let mut daily_remaining = Vec::new();
        for path in [
            "/api/v2/deals?limit=5",
            "/api/v1/users",
            "/api/v2/deals/999999",
            "/api/v1/mailbox/mailThreads",
        ] {
            let r = s.raw(path).await;
            for h in RATE_LIMIT_HEADERS {
                header(&r, h);
            }
            daily_remaining.push(header(&r, "x-daily-ratelimit-token-remaining"));
            if plan == Plan::Unlimited {
                assert!(header(&r, "x-ratelimit-limit") >= 1_000_000, "{path}");
                assert!(header(&r, "x-daily-ratelimit-token-limit") >= 1_000_000_000);
            }
        }
        // 10 for the v2 list, then 20 for the v1 list: the budget counts down as it is spent.
        assert_eq!(daily_remaining[0] - daily_remaining[1], 20, "{plan:?}");
        s.h.shutdown().await;
    }
}

#[tokio::test]
async fn an_operation_the_simulator_does_not_serve_answers_as_one_the_plan_does_not_include() {
    let s = unlimited(34).await;
    for path in [
        "/api/v2/itemSearch?term=acme",
        "/api/v2/deals/search?term=acme",
        "/api/v1/deals/summary",
        "/api/v1/users/find?term=a",
        "/api/v1/filters/helpers",
        "/api/v2/projects/search?term=a",
        "/api/v2/persons/1/picture",
    ] {
        let (status, v) = s.get(path).await;
        assert_eq!(status, 403, "{path}: {v}");
        assert_eq!(v["success"], false);
        assert_eq!(
            v["error"], "You do not have permissions to do this.",
            "{path}"
        );
    }
    // A path that is no operation of the API stays a 404.
    for path in ["/api/v2/dealz", "/api/v1/deals/1/nothing", "/v2/deals"] {
        let (status, v) = s.get(path).await;
        assert_eq!(status, 404, "{path}: {v}");
    }
    // A record that does not exist is still "not found".
    let (status, v) = s.get("/api/v2/deals/99999999").await;
    assert_eq!((status, v["error"].as_str()), (404, Some("Deal not found")));
    s.h.shutdown().await;
}

#[tokio::test]
async fn phases_need_a_board_as_the_real_api_requires() {
    let s = unlimited(35).await;
    let (status, v) = s.get("/api/v2/phases").await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = s.get("/api/v2/phases?board_id=1").await;
    assert_eq!(status, 200);
    let phases = v["data"].as_array().unwrap();
    assert!(!phases.is_empty());
    assert!(phases.iter().all(|p| p["board_id"] == 1), "{v}");
    assert!(v["additional_data"].is_null());
    s.h.shutdown().await;
}

#[tokio::test]
async fn webhooks_are_registered_listed_and_removed_with_the_real_errors() {
    let s = unlimited(36).await;
    let hook = |url: &str| {
        json!({"subscription_url": url, "event_action": "*", "event_object": "deal",
               "name": "sync", "http_auth_user": "pd", "http_auth_password": "s3cret"})
    };
    let (status, v) = s.send("POST", "/api/v1/webhooks", hook("not a url")).await;
    assert_eq!(status, 400);
    assert_eq!(
        v,
        json!({"status": "error", "success": false,
               "errors": {"subscription_url": ["invalid or non-reachable URL"]}})
    );
    let mut bad = hook("https://hooks.example.com/pd");
    bad["event_object"] = json!("spaceship");
    assert_eq!(s.send("POST", "/api/v1/webhooks", bad).await.0, 400);

    let (status, created) = s
        .send(
            "POST",
            "/api/v1/webhooks",
            hook("https://hooks.example.com/pd"),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "ok");
    let w = &created["data"];
    assert_eq!(w["version"], "2.0");
    assert_eq!(w["is_active"], 1);
    assert_eq!(w["type"], "general");
    assert!(w["remove_time"].is_null() && w["last_http_status"].is_null());
    let (_, listed) = s.get("/api/v1/webhooks").await;
    assert_eq!(listed["data"], json!([w.clone()]));
    assert_eq!(s.truth("webhooks").await, vec![w.clone()]);

    // Forty per user; the forty-first is refused with 422.
    for n in 2..=41 {
        let (status, _) = s
            .send(
                "POST",
                "/api/v1/webhooks",
                hook("https://hooks.example.com/pd"),
            )
            .await;
        assert_eq!(status, if n <= 40 { 201 } else { 422 }, "webhook {n}");
    }

    let path = format!("/api/v1/webhooks/{}", w["id"]);
    let (status, v) = s.send("DELETE", &path, json!({})).await;
    assert_eq!((status, v), (200, json!({"status": "ok", "success": true})));
    let (status, v) = s.send("DELETE", &path, json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(v["errors"], json!({"id": ["not found"]}));
    assert_eq!(s.truth("webhooks").await.len(), 39);
    s.h.shutdown().await;
}
