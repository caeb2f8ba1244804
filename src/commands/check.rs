//! `check`: the credentials, the company and the limits that apply.

use pipedrive_client::Client;
use pipedrive_config::Config;

use crate::fail::Fail;

pub(crate) async fn check(config: &Config) -> Result<(), Fail> {
    let client = Client::new(config.client.clone())?;
    let user = pipedrive_engine::current_user(&client).await?;
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
