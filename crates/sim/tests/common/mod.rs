//! Helpers shared by the integration tests.
#![allow(dead_code)]

use pipedrive_sim::{Plan, SimHandle, SimOptions, start};
use serde_json::Value;
use std::path::PathBuf;

/// The official specs: `PIPEDRIVE_SPEC_DIR`, else `shared/pipedrive-api` beside the checkout
/// (where CI puts it). Missing specs fail the test that needs them; they are never skipped.
pub fn spec_dir() -> PathBuf {
    let dir = std::env::var_os("PIPEDRIVE_SPEC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("../../../shared/pipedrive-api"));
    assert!(
        dir.join("endpoints-v1.json").is_file(),
        "the official specs are not in {} (set PIPEDRIVE_SPEC_DIR to the folder holding \
         openapi-v1.yaml and endpoints-v1.json)",
        dir.display()
    );
    dir
}

pub struct Sim {
    pub h: SimHandle,
    pub c: reqwest::Client,
}

pub async fn sim(opts: SimOptions) -> Sim {
    let h = start(opts, 0).await.expect("start");
    Sim {
        h,
        c: reqwest::Client::new(),
    }
}

pub async fn unlimited(seed: u64) -> Sim {
    sim(SimOptions {
        seed,
        plan: Plan::Unlimited,
        ..Default::default()
    })
    .await
}

impl Sim {
    pub fn url(&self, p: &str) -> String {
        format!("{}{}", self.h.url, p)
    }
    pub async fn get(&self, p: &str) -> (u16, Value) {
        let r = self
            .c
            .get(self.url(p))
            .header("x-api-token", &self.h.api_token)
            .send()
            .await
            .expect("send");
        let s = r.status().as_u16();
        let b = r.bytes().await.expect("body");
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }
    pub async fn raw(&self, p: &str) -> reqwest::Response {
        self.c
            .get(self.url(p))
            .header("x-api-token", &self.h.api_token)
            .send()
            .await
            .expect("send")
    }
    pub async fn send(&self, method: &str, p: &str, body: Value) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let r = self
            .c
            .request(m, self.url(p))
            .header("x-api-token", &self.h.api_token)
            .json(&body)
            .send()
            .await
            .expect("send");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
    /// [`Sim::send`], which must answer `status`; returns the body.
    pub async fn expect(&self, method: &str, p: &str, body: Value, status: u16) -> Value {
        let (got, v) = self.send(method, p, body).await;
        assert_eq!(got, status, "{method} {p}: {v}");
        v
    }
    /// An admin request (no API token).
    async fn admin_response(&self, method: &str, p: &str, body: Value) -> reqwest::Response {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        self.c
            .request(m, self.url(p))
            .json(&body)
            .send()
            .await
            .expect("send")
    }
    /// The status of an admin request, for requests that must fail.
    pub async fn admin_status(&self, method: &str, p: &str, body: Value) -> u16 {
        self.admin_response(method, p, body).await.status().as_u16()
    }
    pub async fn admin(&self, method: &str, p: &str, body: Value) -> Value {
        let r = self.admin_response(method, p, body).await;
        assert!(r.status().is_success(), "admin {p}: {}", r.status());
        r.json().await.expect("json")
    }
    pub async fn truth(&self, entity: &str) -> Vec<Value> {
        let v: Value = self
            .c
            .get(self.url(&format!("/__sim/truth/{entity}")))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        v["records"].as_array().cloned().unwrap_or_default()
    }
    /// Follows v2 cursors; returns all items.
    pub async fn all_v2(&self, path: &str, limit: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        let sep = if path.contains('?') { '&' } else { '?' };
        for _ in 0..100_000 {
            let mut p = format!("{path}{sep}limit={limit}");
            if let Some(c) = &cursor {
                p.push_str(&format!("&cursor={c}"));
            }
            let (s, v) = self.get(&p).await;
            assert_eq!(s, 200, "{p}: {v}");
            let data = v["data"].as_array().cloned().unwrap_or_default();
            assert!(data.len() <= limit);
            out.extend(data);
            match v["additional_data"]["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => {
                    assert!(v["additional_data"]["next_cursor"].is_null());
                    return out;
                }
            }
        }
        panic!("too many pages");
    }
    /// Follows v1 offsets; returns all items.
    pub async fn all_v1(&self, path: &str, limit: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let mut start = 0u64;
        let sep = if path.contains('?') { '&' } else { '?' };
        for _ in 0..100_000 {
            let p = format!("{path}{sep}start={start}&limit={limit}");
            let (s, v) = self.get(&p).await;
            assert_eq!(s, 200, "{p}: {v}");
            let data = v["data"].as_array().cloned().unwrap_or_default();
            assert!(data.len() <= limit);
            out.extend(data);
            let pg = &v["additional_data"]["pagination"];
            if pg["more_items_in_collection"].as_bool() == Some(true) {
                start = pg["next_start"].as_u64().expect("next_start");
            } else {
                assert!(
                    pg.get("next_start").is_none(),
                    "next_start must be absent on the last page"
                );
                return out;
            }
        }
        panic!("too many pages");
    }
}

pub fn ids(v: &[Value]) -> Vec<String> {
    v.iter().map(|x| x["id"].to_string()).collect()
}

/// One row of the fidelity inventory in `docs/simulator.md`.
pub struct Row {
    pub api: String,
    pub operation: String,
    pub served: bool,
    pub example: String,
}

pub fn inventory() -> Vec<Row> {
    let path = manifest_dir().join("../../docs/simulator.md");
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

/// Fills a `{placeholder}` of an example request from the ground truth.
pub async fn resolve(s: &Sim, name: &str) -> String {
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

pub async fn fill(s: &Sim, example: &str) -> String {
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

/// The package's directory, as cargo gives it to the running test. The compile-time value
/// would name the checkout that built the binary, which a shared target directory reuses for
/// another checkout of the same sources.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}
