//! Paging through every list with several page sizes yields exactly the ground truth.

mod common;
use common::*;
use serde_json::Value;

fn visible_v2(v: &Value) -> bool {
    v["is_deleted"] != Value::Bool(true) && v["is_archived"] != Value::Bool(true)
}

#[tokio::test]
async fn v2_lists_match_truth() {
    let s = unlimited(7).await;
    for (path, entity) in [
        ("/api/v2/deals", "deals"),
        ("/api/v2/persons", "persons"),
        ("/api/v2/organizations", "organizations"),
        ("/api/v2/activities", "activities"),
        ("/api/v2/products", "products"),
        ("/api/v2/pipelines", "pipelines"),
        ("/api/v2/stages", "stages"),
    ] {
        let truth: Vec<Value> = s
            .truth(entity)
            .await
            .into_iter()
            .filter(visible_v2)
            .collect();
        assert!(!truth.is_empty(), "{entity}");
        for limit in [1, 7, 500] {
            let got = s.all_v2(path, limit).await;
            assert_eq!(ids(&got), ids(&truth), "{path} limit {limit}");
            if limit == 500 {
                assert_eq!(got, truth, "{path}: records differ from ground truth");
            }
        }
        // Descending and by update_time: same set, proper order.
        let mut desc = s.all_v2(&format!("{path}?sort_direction=desc"), 7).await;
        desc.reverse();
        assert_eq!(ids(&desc), ids(&truth), "{path} desc");
        let by_upd = s.all_v2(&format!("{path}?sort_by=update_time"), 7).await;
        let mut a = ids(&by_upd);
        let mut b = ids(&truth);
        let times: Vec<&str> = by_upd
            .iter()
            .map(|x| x["update_time"].as_str().unwrap())
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "{path} update_time order"
        );
        a.sort();
        b.sort();
        assert_eq!(a, b, "{path} by update_time");
    }
    // Activities by due date (a non-indexed sort) page completely too.
    let truth: Vec<Value> = s
        .truth("activities")
        .await
        .into_iter()
        .filter(visible_v2)
        .collect();
    let mut by_due = ids(&s
        .all_v2("/api/v2/activities?sort_by=due_date&sort_direction=desc", 7)
        .await);
    let mut all = ids(&truth);
    by_due.sort();
    all.sort();
    assert_eq!(by_due, all);
    // Recents pages by offset without gaps.
    let full = s
        .all_v1("/v1/recents?since_timestamp=2026-09-01%2000:00:00", 500)
        .await;
    assert!(!full.is_empty());
    assert_eq!(
        s.all_v1("/v1/recents?since_timestamp=2026-09-01%2000:00:00", 7)
            .await,
        full
    );
    // Field lists (no numeric ids).
    for (path, entity) in [
        ("/api/v2/dealFields", "deal_fields"),
        ("/api/v2/personFields", "person_fields"),
    ] {
        let mut truth: Vec<String> = s
            .truth(entity)
            .await
            .iter()
            .map(|v| v["field_code"].to_string())
            .collect();
        for limit in [1, 7, 500] {
            let mut got: Vec<String> = s
                .all_v2(path, limit)
                .await
                .iter()
                .map(|v| v["field_code"].to_string())
                .collect();
            got.sort();
            truth.sort();
            assert_eq!(got, truth, "{path} {limit}");
        }
    }
    s.h.shutdown().await;
}

#[tokio::test]
async fn v1_lists_match_truth() {
    let s = unlimited(8).await;
    let notes: Vec<Value> = s
        .truth("notes")
        .await
        .into_iter()
        .filter(|v| v["active_flag"] == true)
        .collect();
    let mut leads: Vec<Value> = s
        .truth("leads")
        .await
        .into_iter()
        .filter(|v| v["is_archived"] == false)
        .collect();
    let mut archived: Vec<Value> = s
        .truth("leads")
        .await
        .into_iter()
        .filter(|v| v["is_archived"] == true)
        .collect();
    for limit in [1, 7, 500] {
        assert_eq!(
            ids(&s.all_v1("/v1/notes", limit).await),
            ids(&notes),
            "notes {limit}"
        );
        let mut got = s.all_v1("/api/v1/leads", limit).await;
        got.sort_by_key(|v| v["id"].to_string());
        leads.sort_by_key(|v| v["id"].to_string());
        assert_eq!(ids(&got), ids(&leads), "leads {limit}");
        let mut got = s.all_v1("/v1/leads/archived", limit).await;
        got.sort_by_key(|v| v["id"].to_string());
        archived.sort_by_key(|v| v["id"].to_string());
        assert_eq!(ids(&got), ids(&archived), "archived leads {limit}");
    }
    assert!(!archived.is_empty());
    let full = s.all_v1("/v1/notes", 500).await;
    assert_eq!(full, notes);
    for limit in [1, 7, 500] {
        let got = s.all_v1("/v1/dealFields", limit).await;
        let v2 = s.truth("deal_fields").await;
        assert_eq!(got.len(), v2.len(), "dealFields {limit}");
        let mut lf = ids(&s.all_v1("/v1/leadFields", limit).await);
        lf.sort();
        let mut t = ids(&s.truth("lead_fields").await);
        t.sort();
        assert_eq!(lf, t);
    }
    // Unpaginated lists equal truth.
    for (p, e) in [
        ("/v1/users", "users"),
        ("/v1/activityTypes", "activity_types"),
        ("/v1/currencies", "currencies"),
        ("/v1/filters", "filters"),
        ("/v1/leadSources", "lead_sources"),
    ] {
        let (st, v) = s.get(p).await;
        assert_eq!(st, 200);
        assert_eq!(v["data"].as_array().unwrap(), &s.truth(e).await, "{p}");
    }
    s.h.shutdown().await;
}

#[tokio::test]
async fn derived_lists_match_truth() {
    let s = unlimited(9).await;
    for (path, entity) in [
        ("/v1/files", "files"),
        ("/v1/callLogs", "call_logs"),
        ("/v1/roles", "roles"),
    ] {
        let truth = s.truth(entity).await;
        assert!(!truth.is_empty(), "{entity}");
        for limit in [1, 7, 100] {
            assert_eq!(s.all_v1(path, limit).await, truth, "{path} {limit}");
        }
    }
    let mut threads = Vec::new();
    for f in ["inbox", "drafts", "sent", "archive"] {
        threads.extend(
            s.all_v1(&format!("/v1/mailbox/mailThreads?folder={f}"), 7)
                .await,
        );
    }
    threads.sort_by_key(|t| t["id"].as_i64());
    assert_eq!(threads, s.truth("mail_threads").await);
    let mut projects = s.all_v2("/api/v2/projects", 1).await;
    projects.extend(s.all_v2("/api/v2/projects/archived", 2).await);
    projects.sort_by_key(|t| t["id"].as_i64());
    assert_eq!(projects, s.truth("projects").await);
    assert_eq!(s.all_v2("/api/v2/tasks", 7).await, s.truth("tasks").await);
    s.h.shutdown().await;
}

#[tokio::test]
async fn deterministic_per_seed() {
    let a = unlimited(42).await;
    let b = unlimited(42).await;
    let c = unlimited(43).await;
    for e in ["deals", "persons", "leads", "notes", "deal_fields", "users"] {
        let ta =
            a.c.get(a.url(&format!("/__sim/truth/{e}")))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
        let tb =
            b.c.get(b.url(&format!("/__sim/truth/{e}")))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
        let tc =
            c.c.get(c.url(&format!("/__sim/truth/{e}")))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
        assert_eq!(ta, tb, "{e}");
        assert_ne!(ta, tc, "{e}");
    }
    assert_eq!(a.h.api_token, b.h.api_token);
    assert_eq!(a.h.api_token.len(), 40);
}
