//! Goals (read-only, three per company): their seed and the goals API's view.

use crate::model::Db;
use crate::util::{ANCHOR_MS, Rng, date, days_of};
use serde::Serialize;

/// `(type name, tracking metric, interval)` of goal `k`.
const GOALS: [(&str, &str, &str); 3] = [
    ("deals_won", "sum", "monthly"),
    ("activities_completed", "quantity", "weekly"),
    ("deals_started", "quantity", "quarterly"),
];

pub fn goal_id(seed: u64, k: u64) -> String {
    Rng::for_item(seed, "goal", k).hex(32)
}

/// The goal's type name.
pub fn goal_type(k: u64) -> &'static str {
    GOALS[k as usize % 3].0
}

#[derive(Serialize)]
pub struct GoalView {
    id: String,
    owner_id: u64,
    title: String,
    #[serde(rename = "type")]
    kind: GoalType,
    assignee: Assignee,
    interval: &'static str,
    duration: Duration,
    expected_outcome: Outcome,
    is_active: bool,
    report_ids: [String; 1],
}

#[derive(Serialize)]
struct GoalType {
    name: &'static str,
    params: Params,
}

#[derive(Serialize)]
struct Params {
    pipeline_id: [u64; 1],
}

#[derive(Serialize)]
struct Assignee {
    #[serde(rename = "type")]
    kind: &'static str,
    id: u64,
}

#[derive(Serialize)]
struct Duration {
    start: String,
    end: String,
}

/// A sum goal names its currency; a count does not.
#[derive(Serialize)]
struct Outcome {
    target: u64,
    tracking_metric: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    currency_id: Option<u64>,
}

pub fn goal_view(db: &Db, k: u64) -> GoalView {
    let (name, metric, interval) = GOALS[k as usize % 3];
    let start = days_of(ANCHOR_MS) - 300;
    GoalView {
        id: goal_id(db.seed, k),
        owner_id: 1,
        title: format!("Goal: {}", name.replace('_', " ")),
        kind: GoalType {
            name,
            params: Params { pipeline_id: [1] },
        },
        assignee: Assignee {
            kind: "company",
            id: db.company.id,
        },
        interval,
        duration: Duration {
            start: date(start),
            end: date(start + 365),
        },
        expected_outcome: Outcome {
            target: 100,
            tracking_metric: metric,
            currency_id: (metric == "sum").then_some(1),
        },
        is_active: k != 2,
        report_ids: [Rng::for_item(db.seed, "goal_report", k).hex(32)],
    }
}

/// The goals API's envelope (`statusCode`, `service`) around its data.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GoalsEnvelope<T> {
    success: bool,
    status_code: u32,
    status_text: &'static str,
    service: &'static str,
    data: T,
}

pub fn goals_envelope<T>(data: T) -> GoalsEnvelope<T> {
    GoalsEnvelope {
        success: true,
        status_code: 20000,
        status_text: "OK",
        service: "statistics-goals-api",
        data,
    }
}

#[derive(Serialize)]
pub struct Found {
    pub goals: Vec<GoalView>,
}

#[derive(Serialize)]
pub struct Results {
    pub goal: GoalView,
    pub progress: i64,
}
