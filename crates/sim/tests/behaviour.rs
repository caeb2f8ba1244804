//! Filters, deletes, archives, the clock, recents, rate limits, OAuth and faults.

mod common;
use common::*;
use pipedrive_sim::{FaultSettings, OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET, Plan, SimOptions};
use serde_json::{Value, json};

#[tokio::test]
async fn v2_filters_and_validation() {
    let s = unlimited(3).await;
    let truth = s.truth("deals").await;
    // updated_since (>=) / updated_until (<)
    let mut times: Vec<&str> = truth
        .iter()
        .map(|d| d["update_time"].as_str().unwrap())
        .collect();
    times.sort();
    let mid = times[times.len() / 2];
    let since = s
        .all_v2(
            &format!("/api/v2/deals?updated_since={mid}&status=open,won,lost,deleted"),
            50,
        )
        .await;
    assert!(
        since
            .iter()
            .all(|d| d["update_time"].as_str().unwrap() >= mid)
    );
    let until = s
        .all_v2(
            &format!("/api/v2/deals?updated_until={mid}&status=open,won,lost,deleted"),
            50,
        )
        .await;
    assert!(
        until
            .iter()
            .all(|d| d["update_time"].as_str().unwrap() < mid)
    );
    let not_archived = truth.iter().filter(|d| d["is_archived"] == false).count();
    assert_eq!(since.len() + until.len(), not_archived);
    // Fractional seconds are rejected.
    let (st, v) = s
        .get("/api/v2/deals?updated_since=2025-01-01T00:00:00.5Z")
        .await;
    assert_eq!(st, 400);
    assert_eq!(v["success"], false);
    // Limit above 500.
    assert_eq!(s.get("/api/v2/deals?limit=501").await.0, 400);
    assert_eq!(s.get("/v1/notes?limit=501").await.0, 400);
    assert_eq!(s.get("/v1/files?limit=101").await.0, 400);
    // pipelines/stages reject updated_since.
    assert_eq!(
        s.get("/api/v2/pipelines?updated_since=2025-01-01T00:00:00Z")
            .await
            .0,
        400
    );
    assert_eq!(
        s.get("/api/v2/stages?updated_since=2025-01-01T00:00:00Z")
            .await
            .0,
        400
    );
    // Status filters.
    let deleted = s.all_v2("/api/v2/deals?status=deleted", 100).await;
    assert!(!deleted.is_empty());
    assert!(
        deleted
            .iter()
            .all(|d| d["is_deleted"] == true && d["status"] == "deleted")
    );
    let won = s.all_v2("/api/v2/deals?status=won", 100).await;
    assert!(won.iter().all(|d| d["status"] == "won"));
    let default = s.all_v2("/api/v2/deals", 100).await;
    assert!(
        default
            .iter()
            .all(|d| d["is_deleted"] == false && d["is_archived"] == false)
    );
    let archived = s.all_v2("/api/v2/deals/archived", 100).await;
    assert!(
        !archived.is_empty()
            && archived
                .iter()
                .all(|d| d["is_archived"] == true && !d["archive_time"].is_null())
    );
    // owner / pipeline / ids
    let owner = default[0]["owner_id"].as_i64().unwrap();
    let by_owner = s
        .all_v2(&format!("/api/v2/deals?owner_id={owner}"), 100)
        .await;
    assert!(!by_owner.is_empty() && by_owner.iter().all(|d| d["owner_id"] == owner));
    let by_stage = s.all_v2("/api/v2/deals?stage_id=2", 100).await;
    assert!(by_stage.iter().all(|d| d["stage_id"] == 2));
    let (_, v) = s.get("/api/v2/deals?ids=1,2,3,999999").await;
    let got: Vec<i64> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    assert!(got.iter().all(|x| [1, 2, 3].contains(x)));
    // custom_fields restriction and option labels
    let cf = s.truth("deal_fields").await;
    let enum_key = cf
        .iter()
        .find(|f| f["field_type"] == "enum" && f["is_custom_field"] == true)
        .unwrap()["field_code"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, v) = s
        .get(&format!(
            "/api/v2/deals?custom_fields={enum_key}&include_option_labels=true&limit=50"
        ))
        .await;
    for d in v["data"].as_array().unwrap() {
        let cfs = d["custom_fields"].as_object().unwrap();
        assert_eq!(cfs.len(), 1);
        let val = &cfs[&enum_key];
        assert!(val.is_null() || (val["id"].is_number() && val["label"].is_string()));
    }
    // v1 sort and updated_since on notes
    let notes = s.all_v1("/v1/notes?sort=update_time%20DESC", 50).await;
    let t: Vec<&str> = notes
        .iter()
        .map(|n| n["update_time"].as_str().unwrap())
        .collect();
    assert!(t.windows(2).all(|w| w[0] >= w[1]));
    let since = t[t.len() / 2];
    let recent = s
        .all_v1(
            &format!("/v1/notes?updated_since={}", since.replace(' ', "%20")),
            50,
        )
        .await;
    assert!(
        recent
            .iter()
            .all(|n| n["update_time"].as_str().unwrap() >= since)
    );
    // /v2 without /api is not served.
    assert_eq!(s.get("/v2/deals").await.0, 404);
    s.h.shutdown().await;
}

#[tokio::test]
async fn writes_flow_delete_and_purge() {
    let s = unlimited(4).await;
    let (st, v) = s
        .send(
            "POST",
            "/api/v2/deals",
            json!({"title": "Sim deal", "value": 100, "currency": "USD"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let id = v["data"]["id"].as_i64().unwrap();
    let before = v["data"]["update_time"].as_str().unwrap().to_string();
    s.admin("POST", "/__sim/clock/advance", json!({"seconds": 5}))
        .await;
    let (st, v) = s
        .send(
            "PATCH",
            &format!("/api/v2/deals/{id}"),
            json!({"value": 250, "title": "Renamed"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["data"]["update_time"].as_str().unwrap() > before.as_str());
    let (_, flow) = s.get(&format!("/v1/deals/{id}/flow")).await;
    let keys: Vec<&str> = flow["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["data"]["field_key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"value") && keys.contains(&"title"),
        "{keys:?}"
    );
    let vchange = flow["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["data"]["field_key"] == "value")
        .unwrap();
    assert_eq!(vchange["data"]["old_value"], "100");
    assert_eq!(vchange["data"]["new_value"], "250");
    assert_eq!(vchange["object"], "dealChange");
    // Seeded history is consistent with the seeded deal: last stage change matches.
    let truth = s.truth("deals").await;
    let seeded = truth
        .iter()
        .find(|d| !d["stage_change_time"].is_null())
        .unwrap();
    let (_, f) = s.get(&format!("/v1/deals/{}/flow", seeded["id"])).await;
    let last_stage = f["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["data"]["field_key"] == "stage_id")
        .unwrap();
    assert_eq!(
        last_stage["data"]["new_value"],
        seeded["stage_id"].to_string()
    );
    // Every seeded deal's latest flow entry is exactly its update_time.
    for d in truth.iter().take(40) {
        let (_, f) = s.get(&format!("/v1/deals/{}/flow", d["id"])).await;
        let upd = d["update_time"]
            .as_str()
            .unwrap()
            .replace('T', " ")
            .replace('Z', "");
        match f["data"].as_array() {
            Some(items) if !items.is_empty() => assert_eq!(
                items[0]["timestamp"].as_str().unwrap(),
                upd,
                "deal {}",
                d["id"]
            ),
            _ => assert_eq!(
                d["update_time"], d["add_time"],
                "deal {} without history",
                d["id"]
            ),
        }
    }
    // Delete: soft, listable with status=deleted, purged after 30 days.
    let (st, _) = s
        .send("DELETE", &format!("/api/v2/deals/{id}"), json!({}))
        .await;
    assert_eq!(st, 200);
    let (st, v) = s.get(&format!("/api/v2/deals/{id}")).await;
    assert_eq!(st, 200);
    assert_eq!(v["data"]["is_deleted"], true);
    let del = s.all_v2("/api/v2/deals?status=deleted", 500).await;
    assert!(del.iter().any(|d| d["id"] == id));
    assert!(
        !s.all_v2("/api/v2/deals", 500)
            .await
            .iter()
            .any(|d| d["id"] == id)
    );
    let (_, p) = s.send("DELETE", "/api/v2/persons/1", json!({})).await;
    assert_eq!(p["data"]["id"], 1);
    assert!(
        s.truth("persons")
            .await
            .iter()
            .any(|p| p["id"] == 1 && p["is_deleted"] == true)
    );
    s.admin(
        "POST",
        "/__sim/clock/advance",
        json!({"seconds": 31 * 86400}),
    )
    .await;
    assert_eq!(s.get(&format!("/api/v2/deals/{id}")).await.0, 404);
    assert!(
        s.all_v2("/api/v2/deals?status=deleted", 500)
            .await
            .is_empty()
    );
    assert!(!s.truth("persons").await.iter().any(|p| p["id"] == 1));
    // Notes and leads.
    let (st, n) = s
        .send("POST", "/v1/notes", json!({"content": "hi", "deal_id": 2}))
        .await;
    assert_eq!(st, 200, "{n}");
    let nid = n["data"]["id"].as_i64().unwrap();
    let (st, _) = s
        .send(
            "PUT",
            &format!("/v1/notes/{nid}"),
            json!({"content": "hello"}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, d) = s
        .send("DELETE", &format!("/v1/notes/{nid}"), json!({}))
        .await;
    assert_eq!((st, d["data"].clone()), (200, Value::Bool(true)));
    assert!(
        s.truth("notes")
            .await
            .iter()
            .any(|n| n["id"] == nid && n["active_flag"] == false)
    );
    let (st, l) = s
        .send(
            "POST",
            "/v1/leads",
            json!({"title": "L", "person_id": 1, "value": {"amount": 5, "currency": "EUR"}}),
        )
        .await;
    assert_eq!(st, 201, "{l}");
    let lid = l["data"]["id"].as_str().unwrap().to_string();
    let (st, l2) = s
        .send(
            "PATCH",
            &format!("/v1/leads/{lid}"),
            json!({"is_archived": true}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(l2["data"]["is_archived"], true);
    assert!(
        s.all_v1("/v1/leads/archived", 500)
            .await
            .iter()
            .any(|l| l["id"] == lid.as_str())
    );
    // Custom field write, rename, add, delete.
    let fields = s.truth("deal_fields").await;
    let dbl = fields
        .iter()
        .find(|f| f["field_type"] == "double" && f["is_custom_field"] == true)
        .unwrap();
    let key = dbl["field_code"].as_str().unwrap();
    let (st, v) = s
        .send(
            "PATCH",
            "/api/v2/deals/3",
            json!({"custom_fields": {key: 12.5}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["custom_fields"][key], 12.5);
    let (st, nf) = s
        .send(
            "POST",
            "/api/v2/dealFields",
            json!({"field_name": "New one", "field_type": "varchar"}),
        )
        .await;
    assert_eq!(st, 200, "{nf}");
    let new_key = nf["data"]["field_code"].as_str().unwrap().to_string();
    assert_eq!(new_key.len(), 40);
    let (_, d) = s.get("/api/v2/deals/3").await;
    assert!(d["data"]["custom_fields"][&new_key].is_null());
    let renamed = s
        .admin(
            "PATCH",
            &format!("/__sim/custom_fields/deal/{key}"),
            json!({"name": "Renamed num"}),
        )
        .await;
    assert_eq!(renamed["name"], "Renamed num");
    let (_, f) = s.get(&format!("/api/v2/dealFields/{key}")).await;
    assert_eq!(f["data"]["field_name"], "Renamed num");
    s.admin(
        "DELETE",
        &format!("/__sim/custom_fields/deal/{key}"),
        json!({}),
    )
    .await;
    let (_, d) = s.get("/api/v2/deals/3").await;
    assert!(d["data"]["custom_fields"].get(key).is_none());
    s.h.shutdown().await;
}

#[tokio::test]
async fn recents_capped_to_one_month() {
    let s = unlimited(5).await;
    let (st, v) = s
        .get("/v1/recents?since_timestamp=2020-01-01%2000:00:00&items=deal&limit=500")
        .await;
    assert_eq!(st, 200, "{v}");
    let since = v["additional_data"]["since_timestamp"].as_str().unwrap();
    assert!(since >= "2026-10-01 00:00:00", "{since}");
    let items = v["data"].as_array().cloned().unwrap_or_default();
    assert!(
        items
            .iter()
            .all(|i| i["item"] == "deal" && i["data"]["update_time"].as_str().unwrap() >= since)
    );
    // Advancing the clock moves the cap.
    s.admin(
        "POST",
        "/__sim/clock/advance",
        json!({"seconds": 40 * 86400}),
    )
    .await;
    let (_, v2) = s
        .get("/v1/recents?since_timestamp=2020-01-01%2000:00:00")
        .await;
    assert!(v2["additional_data"]["since_timestamp"].as_str().unwrap() > since);
    s.h.shutdown().await;
}

#[tokio::test]
async fn burst_daily_and_cloudflare() {
    let s = sim(SimOptions {
        seed: 9,
        plan: Plan::Lite,
        seats: Some(1),
        ..Default::default()
    })
    .await;
    let r = s.raw("/api/v2/deals?limit=1").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ratelimit-limit"], "20");
    assert_eq!(r.headers()["x-daily-ratelimit-token-limit"], "30000");
    assert_eq!(r.headers()["x-daily-ratelimit-token-remaining"], "29990");
    // Burst: 20 per 2 s.
    let mut statuses = Vec::new();
    for _ in 0..25 {
        let r = s.raw("/api/v2/pipelines").await;
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
            let v: Value = r.json().await.unwrap();
            assert!(v["error"].as_str().unwrap().contains("burst"), "{v}");
        }
    }
    assert!(statuses.contains(&429));
    // Hammering while limited: Cloudflare HTML 403.
    let mut got403 = false;
    for _ in 0..15 {
        let r = s.raw("/api/v2/pipelines").await;
        if r.status() == 403 {
            assert!(
                r.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/html")
            );
            got403 = true;
            break;
        }
    }
    assert!(got403);
    // Cool-down passes with the clock; then exhaust the daily budget.
    s.admin("POST", "/__sim/clock/advance", json!({"seconds": 120}))
        .await;
    s.admin("POST", "/__sim/budget/reset", json!({"remaining": 15}))
        .await;
    let r = s.raw("/api/v2/deals?limit=1").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-daily-ratelimit-token-remaining"], "5");
    let r = s.raw("/api/v2/deals?limit=1").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("Daily"), "{v}");
    // Cheap request still fits (get-by-id costs 1).
    assert_eq!(s.raw("/api/v2/deals/1").await.status(), 200);
    // Next day (sim clock): budget resets.
    s.admin("POST", "/__sim/clock/advance", json!({"seconds": 86400}))
        .await;
    assert_eq!(s.raw("/api/v2/deals?limit=1").await.status(), 200);
    let stats = s.admin("GET", "/__sim/stats", Value::Null).await;
    assert!(stats["responses_429"].as_u64().unwrap() >= 2);
    assert!(
        stats["paths"]["/api/v2/deals/{id}"]["requests"]
            .as_u64()
            .unwrap()
            >= 1
    );
    s.h.shutdown().await;
}

#[tokio::test]
async fn oauth_flow_and_rotation() {
    let s = unlimited(10).await;
    let code = s.admin("POST", "/__sim/oauth/authorize", json!({})).await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let tok = |form: Vec<(&'static str, String)>, id: &str, secret: &str| {
        s.c.post(s.url("/oauth/token"))
            .basic_auth(id, Some(secret))
            .form(&form)
            .send()
    };
    let r = tok(
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.clone()),
        ],
        "x",
        "y",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "Invalid client: client is invalid");
    let r = tok(
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.clone()),
            ("redirect_uri", "http://localhost/callback".into()),
        ],
        OAUTH_CLIENT_ID,
        OAUTH_CLIENT_SECRET,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3599);
    assert_eq!(t["api_domain"], s.h.url.as_str());
    let access = t["access_token"].as_str().unwrap();
    let r =
        s.c.get(s.url("/api/v2/deals?limit=1"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let r =
        s.c.get(s.url("/api/v2/deals?limit=1"))
            .bearer_auth("nope")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"success":false,"error":"unauthorized access","errorCode":401,"error_info":"Please check developers.pipedrive.com"})
    );
    // Code reuse fails.
    let r = tok(
        vec![("grant_type", "authorization_code".into()), ("code", code)],
        OAUTH_CLIENT_ID,
        OAUTH_CLIENT_SECRET,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    // Refresh rotates: the old refresh token stops working.
    let rt1 = t["refresh_token"].as_str().unwrap().to_string();
    let r = tok(
        vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", rt1.clone()),
        ],
        OAUTH_CLIENT_ID,
        OAUTH_CLIENT_SECRET,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let t2: Value = r.json().await.unwrap();
    assert_ne!(t2["refresh_token"], rt1.as_str());
    let r = tok(
        vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", rt1),
        ],
        OAUTH_CLIENT_ID,
        OAUTH_CLIENT_SECRET,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "Invalid grant: refresh_token is invalid");
    let issued = s.admin("GET", "/__sim/oauth/issued", Value::Null).await;
    assert_eq!(
        issued["access_tokens"],
        json!([t["access_token"], t2["access_token"]])
    );
    assert_eq!(
        issued["refresh_tokens"],
        json!([t["refresh_token"], t2["refresh_token"]])
    );
    // Access tokens expire with the sim clock.
    let a2 = t2["access_token"].as_str().unwrap();
    s.admin("POST", "/__sim/clock/advance", json!({"seconds": 3600}))
        .await;
    let r =
        s.c.get(s.url("/api/v2/deals?limit=1"))
            .bearer_auth(a2)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 401);
    // The api_token query parameter works on v1 and v2 alike (tests/fidelity.rs pages v2 with it).
    let r =
        s.c.get(s.url(&format!("/v1/users/me?api_token={}", s.h.api_token)))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["data"]["company_domain"], s.h.company_domain.as_str());
    let r =
        s.c.get(s.url(&format!("/api/v2/deals?api_token={}", s.h.api_token)))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    s.h.shutdown().await;
}

#[tokio::test]
async fn latency_and_stalls() {
    let s = sim(SimOptions {
        seed: 2,
        plan: Plan::Unlimited,
        latency_ms: 60,
        jitter_ms: 20,
        ..Default::default()
    })
    .await;
    let t = std::time::Instant::now();
    assert_eq!(s.get("/api/v2/pipelines").await.0, 200);
    assert!(t.elapsed().as_millis() >= 60);
    let t = std::time::Instant::now();
    s.c.get(s.url("/__sim/clock")).send().await.unwrap();
    assert!(t.elapsed().as_millis() < 60, "admin paths have no latency");
    s.admin(
        "POST",
        "/__sim/faults",
        json!({"stall_rate": 1.0, "stall_ms": 150}),
    )
    .await;
    let t = std::time::Instant::now();
    assert_eq!(s.get("/api/v2/pipelines").await.0, 200);
    assert!(t.elapsed().as_millis() >= 60 + 150);
    let f = s.admin("GET", "/__sim/faults", Value::Null).await;
    assert_eq!(f["stall_ms"], 150);
    s.h.shutdown().await;
}

async fn fault_sequence(seed: u64) -> Vec<String> {
    let faults = FaultSettings {
        error_rate: 0.2,
        reset_rate: 0.1,
        truncate_rate: 0.1,
        malformed_rate: 0.1,
        rate_429_no_headers: 0.1,
        ..Default::default()
    };
    let s = sim(SimOptions {
        seed,
        plan: Plan::Unlimited,
        faults,
        ..Default::default()
    })
    .await;
    let mut out = Vec::new();
    for _ in 0..40 {
        let c = reqwest::Client::new();
        let r = c
            .get(s.url("/api/v2/pipelines"))
            .header("x-api-token", &s.h.api_token)
            .send()
            .await;
        let kind = match r {
            Err(_) => "reset".to_string(),
            Ok(r) => {
                let st = r.status().as_u16();
                let no_headers = !r.headers().contains_key("retry-after");
                match r.bytes().await {
                    Err(_) => format!("{st}-cut"),
                    Ok(b) => match serde_json::from_slice::<Value>(&b) {
                        Err(_) => format!("{st}-malformed"),
                        Ok(_) if st == 429 => format!("429-bare-{no_headers}"),
                        Ok(_) => st.to_string(),
                    },
                }
            }
        };
        out.push(kind);
    }
    // Admin paths are never faulted.
    for _ in 0..20 {
        assert!(
            s.c.get(s.url("/__sim/clock"))
                .send()
                .await
                .unwrap()
                .status()
                .is_success()
        );
    }
    s.h.shutdown().await;
    out
}

#[tokio::test]
async fn faults_are_deterministic() {
    let a = fault_sequence(11).await;
    let b = fault_sequence(11).await;
    assert_eq!(a, b);
    for k in ["200", "reset", "200-cut", "200-malformed", "429-bare-true"] {
        assert!(a.iter().any(|x| x == k), "missing {k} in {a:?}");
    }
    assert!(a.iter().any(|x| x == "500" || x == "502" || x == "503"));
    assert_ne!(a, fault_sequence(12).await);
}

#[tokio::test]
async fn an_empty_company_has_its_user_and_no_records() {
    let s = sim(SimOptions {
        scale: pipedrive_sim::Scale::Empty,
        ..Default::default()
    })
    .await;
    let (status, me) = s.get("/api/v1/users/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["data"]["id"], 1);
    for path in ["/api/v2/deals", "/api/v2/persons", "/api/v2/activities"] {
        let (status, v) = s.get(path).await;
        assert_eq!(status, 200, "{path}: {v}");
        assert_eq!(v["data"], json!([]), "{path}");
    }
    // v1 answers an empty list with `data: null`, as Pipedrive does.
    let (status, v) = s.get("/api/v1/notes").await;
    assert_eq!(status, 200, "{v}");
    assert!(v["data"].is_null(), "{v}");
    assert!(s.truth("deals").await.is_empty());
    assert_eq!(s.truth("pipelines").await.len(), 1);
    s.h.shutdown().await;
}

#[tokio::test]
async fn custom_field_values_can_be_set_against_their_type() {
    let s = unlimited(1).await;
    let field = s
        .admin(
            "POST",
            "/__sim/custom_fields/deal",
            json!({"name": "Amount", "field_type": "double"}),
        )
        .await;
    let key = field["key"].as_str().unwrap().to_owned();
    let before = s.get("/api/v2/deals/3").await.1["data"]["update_time"].clone();
    s.admin("POST", "/__sim/clock/advance", json!({"seconds": 5}))
        .await;
    s.admin(
        "POST",
        "/__sim/custom_field_values/deals/3",
        json!({"key": key, "value": "N/A"}),
    )
    .await;
    let (_, v2) = s.get("/api/v2/deals/3").await;
    assert_eq!(v2["data"]["custom_fields"][&key], "N/A");
    assert_ne!(v2["data"]["update_time"], before);
    let (_, v1) = s.get("/api/v1/deals/3").await;
    assert_eq!(v1["data"][&key], "N/A");
    s.admin(
        "POST",
        "/__sim/custom_field_values/deals/3",
        json!({"key": key, "value": 7.5}),
    )
    .await;
    assert_eq!(
        s.get("/api/v2/deals/3").await.1["data"]["custom_fields"][&key],
        7.5
    );
    s.h.shutdown().await;
}

#[tokio::test]
async fn page_overlap_repeats_the_end_of_the_previous_v1_page() {
    let s = unlimited(1).await;
    let (_, plain) = s.get("/api/v1/notes?start=0&limit=10").await;
    let ids: Vec<Value> = plain["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].clone())
        .collect();
    s.admin("POST", "/__sim/faults", json!({"page_overlap": 3}))
        .await;
    let (_, first) = s.get("/api/v1/notes?start=0&limit=5").await;
    assert_eq!(
        first["data"][0]["id"], ids[0],
        "the first page is not moved"
    );
    let (_, second) = s.get("/api/v1/notes?start=5&limit=5").await;
    assert_eq!(second["data"][0]["id"], ids[2]);
    assert_eq!(
        second["additional_data"]["pagination"]["next_start"],
        json!(7)
    );
    s.h.shutdown().await;
}
