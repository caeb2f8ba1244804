//! `discover`: the stream catalog as a table or JSON.

use pipedrive_engine::catalog;

pub(crate) fn discover(json: bool) {
    if json {
        let streams: Vec<serde_json::Value> = catalog::CATALOG
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name,
                    "endpoint": s.path,
                    "api": s.api,
                    "primary_key": s.primary_key,
                    "cursor_field": s.cursor_field,
                    "sync_modes": if s.supports_incremental() { vec!["full-refresh", "incremental"] } else { vec!["full-refresh"] },
                    "token_cost_per_page": s.token_cost,
                    "custom_fields_from": s.custom_fields.map(|c| c.defined_by),
                    "selected_by_default": !s.opt_in,
                    "cost": selection_cost(s),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&streams).expect("plain JSON")
        );
        return;
    }
    println!(
        "{:<22} {:<26} {:<12} {:<12} {:<26} selection",
        "stream", "endpoint", "primary key", "cursor", "modes"
    );
    for s in catalog::CATALOG {
        println!(
            "{:<22} {:<26} {:<12} {:<12} {:<26} {}",
            s.name,
            s.path,
            s.primary_key.join(","),
            s.cursor_field.unwrap_or("-"),
            if s.supports_incremental() {
                "full-refresh, incremental"
            } else {
                "full-refresh"
            },
            if s.opt_in {
                format!("opt-in: {}", selection_cost(s))
            } else {
                "default".to_owned()
            }
        );
    }
}

/// What a stream costs in tokens, in the unit that grows with the company.
pub(crate) fn selection_cost(def: &catalog::StreamDef) -> String {
    match def.fanout {
        catalog::Fanout::PerParent { parent } => format!(
            "{} tokens per {} record",
            def.token_cost,
            parent.trim_end_matches('s')
        ),
        _ => format!("{} tokens per page", def.token_cost),
    }
}
