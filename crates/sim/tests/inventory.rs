//! The fidelity inventory in `docs/simulator.md` lists exactly the GET operations of the official
//! specs, and the simulator answers each as the table says: served and read-only operations with
//! the real envelope, the others as an operation the company's plan does not include.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

struct Row {
    api: String,
    operation: String,
    served: bool,
    example: String,
}

fn inventory() -> Vec<Row> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/simulator.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| l.starts_with("| v1 |") || l.starts_with("| v2 |"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 5, "inventory row: {l}");
            let answer = cells[2];
            assert!(
                ["served", "read-only"].contains(&answer) || answer.starts_with("not served: "),
                "inventory row with an unknown answer: {l}"
            );
            Row {
                api: cells[0].to_string(),
                operation: cells[1].trim_matches('`').to_string(),
                served: !answer.starts_with("not served"),
                example: cells[3].trim_matches('`').to_string(),
            }
        })
        .collect()
}

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

/// Fills a `{placeholder}` of an example request from the ground truth.
async fn resolve(s: &Sim, name: &str) -> String {
    let first = |records: Vec<Value>, key: &str| -> String {
        let r = records
            .into_iter()
            .find(|r| {
                r["is_deleted"] != true && r["is_archived"] != true && r["active_flag"] != false
            })
            .unwrap_or_else(|| panic!("{name}: no live record in the truth"));
        match &r[key] {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        }
    };
    match name {
        "deal_field" | "person_field" | "organization_field" | "product_field"
        | "activity_field" | "project_field" => {
            first(s.truth(&format!("{name}s")).await, "field_code")
        }
        "deal_field_id" | "person_field_id" | "organization_field_id" | "product_field_id" => {
            let list = name.trim_end_matches("_field_id");
            let (_, v) = s.get(&format!("/api/v1/{list}Fields?limit=1")).await;
            v["data"][0]["id"].to_string()
        }
        "note_comment" => first(s.truth("note_comments").await, "uuid"),
        "commented_note" => first(s.truth("note_comments").await, "object_id"),
        "deal" | "person" | "organization" | "activity" | "product" | "pipeline" | "stage"
        | "note" | "lead" | "user" | "filter" | "file" | "call_log" | "mail_thread"
        | "mail_message" | "permission_set" | "goal" | "project" | "task" | "role" | "board"
        | "phase" | "project_template" => {
            let entity = match name {
                "activity" => "activities".to_string(),
                _ => format!("{name}s"),
            };
            first(s.truth(&entity).await, "id")
        }
        other => panic!("docs/simulator.md: unknown placeholder {{{other}}}"),
    }
}

async fn fill(s: &Sim, example: &str) -> String {
    let mut out = String::new();
    let mut rest = example;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').expect("closing brace") + open;
        out.push_str(&rest[..open]);
        out.push_str(&resolve(s, &rest[open + 1..close]).await);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
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
