//! Runs a simulator until Ctrl-C: `cargo run -p pipedrive-sim --example serve -- [scale] [plan] [port]`.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let opts = pipedrive_sim::SimOptions {
        scale: args.get(1).and_then(|s| s.parse().ok()).unwrap_or_default(),
        plan: args.get(2).and_then(|s| s.parse().ok()).unwrap_or_default(),
        ..Default::default()
    };
    let port = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let t = std::time::Instant::now();
    let h = pipedrive_sim::start(opts, port).await?;
    println!(
        "{}",
        serde_json::json!({"url": h.url, "api_token": h.api_token, "company_domain": h.company_domain, "startup_ms": t.elapsed().as_millis() as u64})
    );
    tokio::select! {
        _ = tokio::signal::ctrl_c() => h.shutdown().await,
    }
    Ok(())
}
