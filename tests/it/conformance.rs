//! Pipedrive's official npm client (`pipedrive`, pinned in `tests/conformance/package.json`)
//! lists every endpoint the simulator supports through all pages, and what it sees must equal
//! the simulator's ground truth. `.ci/run` installs the client with `npm ci`.

use pipedrive_sim::{Plan, Scale};

use crate::support::Sim;

#[tokio::test(flavor = "multi_thread")]
async fn the_official_npm_client_lists_every_endpoint_through_all_pages() {
    let dir = crate::support::manifest_dir().join("tests/conformance");
    assert!(
        dir.join("node_modules/pipedrive/package.json").is_file(),
        "the official Pipedrive client is not installed in {}: run `npm ci --prefix tests/conformance` \
         (.ci/run does this) and re-run the test",
        dir.display()
    );
    let sim = Sim::start(Scale::Tiny, Plan::Unlimited).await;
    let output = tokio::process::Command::new("node")
        .arg(dir.join("official-client.mjs"))
        .env("PDS_SIM_URL", &sim.handle.url)
        .env("PDS_SIM_TOKEN", &sim.handle.api_token)
        .current_dir(&dir)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run `node` (Node.js 18+ is needed for this test): {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "official client check failed (exit {:?}):\n{stderr}\n{stdout}",
        output.status.code()
    );
    let summary: serde_json::Value = stdout
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .find(|line: &serde_json::Value| line["summary"] == true)
        .unwrap_or_else(|| panic!("no summary line in the output:\n{stdout}"));
    assert_eq!(summary["failures"], 0, "{stdout}");
    assert!(
        summary["endpoints"].as_u64().unwrap_or(0) >= 70,
        "fewer endpoints than expected:\n{stdout}"
    );
    // Every response was checked for the rate-limit headers (a failure above names any missing).
    assert!(
        summary["responses"].as_u64().unwrap_or(0) >= 500,
        "too few responses seen:\n{stdout}"
    );
}
