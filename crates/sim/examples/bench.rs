//! Throughput and startup measurement:
//! `cargo run -p pipedrive-sim --example bench -- [scale] [entity-path] [pages]`.
//! Pages through a v2 list at 500 per page with `--plan unlimited` and prints records/s.

use std::time::Instant;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let scale = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(pipedrive_sim::Scale::Small);
    let path = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "/api/v2/deals".into());
    let max_pages: usize = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(usize::MAX);
    let t = Instant::now();
    let opts = pipedrive_sim::SimOptions {
        scale,
        plan: pipedrive_sim::Plan::Unlimited,
        ..Default::default()
    };
    let h = pipedrive_sim::start(opts, 0).await?;
    let startup = t.elapsed();
    let rss = || {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS"))
                    .map(|l| l.to_string())
            })
            .unwrap_or_default()
    };
    println!(
        "scale {scale}: started in {:.2}s, {}",
        startup.as_secs_f64(),
        rss()
    );
    let c = reqwest::Client::new();
    let t = Instant::now();
    let (mut n, mut bytes, mut pages) = (0usize, 0usize, 0usize);
    let mut cursor: Option<String> = None;
    let v1 = path.starts_with("/v1") || path.starts_with("/api/v1");
    let sep = if path.contains('?') { '&' } else { '?' };
    while pages < max_pages {
        let mut url = format!("{}{}{sep}limit=500", h.url, path);
        if let Some(cur) = &cursor {
            url.push_str(if v1 { "&start=" } else { "&cursor=" });
            url.push_str(cur);
        }
        let b = c
            .get(&url)
            .header("x-api-token", &h.api_token)
            .send()
            .await
            .map_err(std::io::Error::other)?;
        let b = b.bytes().await.map_err(std::io::Error::other)?;
        bytes += b.len();
        let v: serde_json::Value = serde_json::from_slice(&b)?;
        n += v["data"].as_array().map(|a| a.len()).unwrap_or(0);
        pages += 1;
        let next = if v1 {
            v["additional_data"]["pagination"]["next_start"]
                .as_u64()
                .map(|n| n.to_string())
        } else {
            v["additional_data"]["next_cursor"]
                .as_str()
                .map(str::to_string)
        };
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{path}: {n} records, {pages} pages, {:.1} MB in {s:.2}s = {:.0} records/s ({:.0} MB/s), {}",
        bytes as f64 / 1e6,
        n as f64 / s,
        bytes as f64 / 1e6 / s,
        rss()
    );
    h.shutdown().await;
    Ok(())
}
