//! `check`: the credentials, the company and the limits that apply.

use pipedrive_client::{Client, PagePosition, Paging, Request};
use pipedrive_config::Config;

use crate::fail::Fail;

pub(crate) async fn check(config: &Config) -> Result<(), Fail> {
    let client = Client::new(config.client.clone())?;
    let me = client
        .get(&Request {
            path: "/api/v1/users/me".to_owned(),
            query: Vec::new(),
            paging: Paging::None,
            token_cost: 2,
            items_path: None,
            start: PagePosition::First,
        })
        .await?;
    let user: serde_json::Value = me
        .items
        .first()
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .unwrap_or_default();
    let text = |key: &str| {
        user.get(key)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    let budget = client.budget();
    eprintln!("credentials ok: {} ({})", text("name"), text("email"));
    eprintln!(
        "company: {} ({}.pipedrive.com)",
        text("company_name"),
        text("company_domain")
    );
    match budget.burst_limit {
        Some(limit) => eprintln!("burst limit: {limit} requests per 2 seconds"),
        None => eprintln!("burst limit: not reported"),
    }
    match (budget.daily_limit, budget.daily_remaining) {
        (Some(limit), Some(left)) => eprintln!("daily token budget: {left} of {limit} left"),
        _ => eprintln!("daily token budget: not reported"),
    }
    Ok(())
}
