//! The fidelity inventory in `docs/simulator.md` lists exactly the GET operations of the official
//! specs, and the simulator answers each as the table says: served and read-only operations with
//! the real envelope, the others as an operation the company's plan does not include.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

fn spec_get_operations() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (api, file) in [("v1", "endpoints-v1.json"), ("v2", "endpoints-v2.json")] {
        let path = spec_dir().join(file);
        let spec: Value = serde_json::from_str(
            &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
        .expect("spec summary");
        for op in spec["operations"].as_array().expect("operations") {
            if op["method"] == "GET" {
                out.insert((api.to_string(), op["path"].as_str().unwrap().to_string()));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_inventory_lists_every_get_operation_of_the_specs_once() {
    let rows = inventory();
    let listed: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.api.clone(), r.operation.clone()))
        .collect();
    let unique: BTreeSet<_> = listed.iter().cloned().collect();
    assert_eq!(unique.len(), listed.len(), "an operation is listed twice");
    let spec = spec_get_operations();
    let missing: Vec<_> = spec.difference(&unique).collect();
    let extra: Vec<_> = unique.difference(&spec).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/simulator.md: missing {missing:?}, not in the specs {extra:?}"
    );
}

#[tokio::test]
async fn the_simulator_answers_every_operation_as_the_inventory_says() {
    let s = unlimited(41).await;
    let mut wrong = Vec::new();
    for row in inventory() {
        let path = fill(&s, &row.example).await;
        let url = format!("/api/{}{path}", row.api);
        let r = s.raw(&url).await;
        let status = r.status().as_u16();
        let has_limits = r.headers().contains_key("x-ratelimit-remaining");
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let ok = if row.served {
            status == 200 && body["success"] == true && has_limits
        } else {
            status == 403 && body["error"] == "You do not have permissions to do this."
        };
        if !ok {
            let shown: String = body.to_string().chars().take(160).collect();
            wrong.push(format!(
                "{} {} ({url}): {status} {shown}",
                row.api, row.operation
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} rows answered otherwise:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    s.h.shutdown().await;
}
