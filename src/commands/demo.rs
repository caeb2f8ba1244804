//! `demo`: a simulated company synced into a DuckDB file, and a few of its deals.

use std::path::Path;
use std::time::Duration;

use pipedrive_config::Config;
use pipedrive_sim::{Plan, Scale, SimOptions};

use crate::commands::sync::sync;
use crate::fail::{Fail, exit};
use crate::signals::stop_on_signal;

/// A few deals of the demo file, as a small table: a first look needs no other tool.
#[cfg(feature = "duckdb")]
pub(crate) fn demo_deals(path: &Path) -> duckdb::Result<String> {
    let connection = pipedrive_destinations::duckdb::open_offline(path)?;
    let mut statement = connection.prepare(
        "SELECT title, coalesce(CAST(value AS VARCHAR), ''), coalesce(currency, ''), status FROM deals ORDER BY id LIMIT 5",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(format!(
            "  {:<40} {:>12} {:<4} {}",
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?
        ))
    })?;
    let mut text = format!(
        "  {:<40} {:>12} {:<4} {}\n",
        "title", "value", "cur", "status"
    );
    for row in rows {
        text.push_str(&row?);
        text.push('\n');
    }
    Ok(text)
}

#[cfg(not(feature = "duckdb"))]
pub(crate) fn demo_deals(_path: &Path) -> Result<String, String> {
    Ok(String::new())
}

pub(crate) async fn demo(path: &Path, scale: Scale) -> Result<(), Fail> {
    // Another scale's company has other records under the same ids: merging one into the
    // other would leave a mix of both.
    if path.exists() {
        return Err(Fail {
            code: exit::USAGE,
            message: format!(
                "{} already exists (perhaps from an earlier demo, of another scale): remove it, or pass --path with a new file",
                path.display()
            ),
        });
    }
    // No rate limits: a first look should take seconds, not the minutes a real plan's burst
    // limit imposes on one request per deal.
    let handle = pipedrive_sim::start(
        SimOptions {
            scale,
            plan: Plan::Unlimited,
            ..SimOptions::default()
        },
        0,
    )
    .await
    .map_err(|e| Fail {
        code: exit::OTHER,
        message: format!("the embedded simulator cannot start: {e}"),
    })?;
    eprintln!("simulator ({scale} company) listening on {}", handle.url);
    let yaml = format!(
        "source:\n  api_token: '{}'\n  base_url: '{}'\ntarget:\n  type: duckdb\n  path: '{}'\n",
        handle.api_token,
        handle.url,
        path.display().to_string().replace('\'', "''")
    );
    let config = Config::parse(&yaml, "demo config", Path::new("."))?;
    let result = sync(
        vec![config],
        Duration::ZERO,
        &stop_on_signal("saving state"),
    )
    .await;
    handle.shutdown().await;
    result?;
    let deals = demo_deals(path).map_err(|e| Fail {
        code: exit::DESTINATION,
        message: format!("DuckDB: reading {} back: {e}", path.display()),
    })?;
    eprintln!(
        "\nDone. The data is in {}. Some deals:\n{deals}\nQuery it from any DuckDB client (the `duckdb` CLI is at https://duckdb.org/docs/installation), e.g.\n  SELECT title, value, currency, status FROM deals LIMIT 10;",
        path.display()
    );
    Ok(())
}
