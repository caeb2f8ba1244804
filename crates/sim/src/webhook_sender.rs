//! Webhook delivery as it runs: the routing task, one queue per subscription, attempts,
//! retries, bans and the three-day deactivation, and the admin API's webhook calls. It reads
//! the outbox that `webhook_delivery` fills.

use crate::state::State;
use crate::util::{DAY_MS, Ms};
use crate::webhook_outbox::*;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// No answer within this long is a failed attempt (G2).
const TIMEOUT: Duration = Duration::from_secs(10);
/// Waits before attempts 2, 3 and 4 (G2).
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(3),
    Duration::from_secs(30),
    Duration::from_secs(150),
];
/// Failed first attempts that ban a subscription (G2).
const BAN_AFTER_FAILURES: u32 = 10;
/// How long a ban lasts, in simulated time (G2).
const BAN_MS: Ms = 30 * 60 * 1000;
/// A subscription with no successful delivery for this long is deactivated (G2, APP).
const DEACTIVATE_AFTER_MS: Ms = 3 * DAY_MS;
/// `remove_reason` of a deactivated subscription; Pipedrive's wording is not documented.
const DEACTIVATED_REASON: &str = "no successful delivery in 3 days";
/// The longest a reordered delivery waits for the next one to overtake it.
const REORDER_HOLD: Duration = Duration::from_secs(2);

/// Connects the company's writes to delivery and starts the routing task. Delivery stops when
/// [`stop`] drops the queue.
pub fn start(st: &Arc<State>) {
    let (tx, rx) = mpsc::unbounded_channel();
    st.db
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .webhook_outbox
        .queue = Some((tx, st.webhook_deliveries.clone()));
    tokio::spawn(route(st.clone(), rx));
}

/// Drops the queue: the routing task and the per-subscription tasks end once it drains.
pub fn stop(st: &State) {
    st.db
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .webhook_outbox
        .queue = None;
}

/// Draws each delivery's faults in queue order and hands it to its subscription's queue.
async fn route(st: Arc<State>, mut rx: mpsc::UnboundedReceiver<Queued>) {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("webhook delivery has no HTTP client: {e}");
            return;
        }
    };
    let mut queues: HashMap<u64, mpsc::UnboundedSender<Job>> = HashMap::new();
    while let Some(queued) = rx.recv().await {
        let deliveries = &st.webhook_deliveries;
        let sequence = deliveries.fault_sequence.fetch_add(1, Ordering::Relaxed);
        let faults = Faults::draw(st.opts.seed, sequence, &deliveries.options().faults);
        let id = queued.subscription.id;
        let queue = queues.entry(id).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(serve_subscription(st.clone(), client.clone(), rx));
            tx
        });
        let _ = queue.send(Job { queued, faults });
    }
}

/// One subscription's first attempts, one at a time in queue order.
async fn serve_subscription(
    st: Arc<State>,
    client: reqwest::Client,
    mut rx: mpsc::UnboundedReceiver<Job>,
) {
    let mut held: Option<Job> = None;
    loop {
        let next = match &held {
            None => rx.recv().await,
            Some(_) => {
                let hold = st.webhook_deliveries.scaled(REORDER_HOLD);
                match tokio::time::timeout(hold, rx.recv()).await {
                    Ok(next) => next,
                    Err(_) => {
                        if let Some(job) = held.take() {
                            first_attempt(&st, &client, job).await;
                        }
                        continue;
                    }
                }
            }
        };
        let Some(job) = next else {
            if let Some(job) = held.take() {
                first_attempt(&st, &client, job).await;
            }
            return;
        };
        if held.is_none() && job.faults.reorder && !job.faults.drop {
            st.webhook_deliveries
                .count(job.queued.subscription.id, |c| c.reordered += 1);
            held = Some(job);
            continue;
        }
        first_attempt(&st, &client, job).await;
        if let Some(job) = held.take() {
            first_attempt(&st, &client, job).await;
        }
    }
}

async fn first_attempt(st: &Arc<State>, client: &reqwest::Client, job: Job) {
    let deliveries = &st.webhook_deliveries;
    let id = job.queued.subscription.id;
    if job.faults.drop {
        deliveries.count(id, |c| {
            c.dropped += 1;
            c.pending = c.pending.saturating_sub(1);
        });
        return;
    }
    if let Some(delay) = job.faults.slow {
        deliveries.count(id, |c| c.slowed += 1);
        tokio::time::sleep(delay).await;
    }
    let now = st.clock.now();
    let banned = deliveries.with(id, |s| s.banned_until.is_some_and(|t| t > now));
    if banned {
        deliveries.count(id, |c| {
            c.lost_to_ban += 1;
            c.pending = c.pending.saturating_sub(1);
        });
        return;
    }
    let mut queued = job.queued;
    if attempt(st, client, &mut queued, 1).await {
        if job.faults.duplicate {
            deliveries.count(id, |c| c.duplicated += 1);
            post(st, client, &queued).await;
        }
        return;
    }
    let time_scale = deliveries.options().time_scale;
    deliveries.with(id, |s| {
        s.failed_first_attempts += 1;
        if s.failed_first_attempts >= BAN_AFTER_FAILURES {
            s.failed_first_attempts = 0;
            s.banned_until = Some(now + (BAN_MS as f64 * time_scale) as Ms);
            s.counts.bans += 1;
        }
    });
    tokio::spawn(retry(st.clone(), client.clone(), queued));
}

/// Attempts 2 to 4, each after its delay; all failing makes one failed delivery.
async fn retry(st: Arc<State>, client: reqwest::Client, mut queued: Queued) {
    let deliveries = &st.webhook_deliveries;
    let id = queued.subscription.id;
    for (n, delay) in RETRY_DELAYS.into_iter().enumerate() {
        tokio::time::sleep(deliveries.scaled(delay)).await;
        deliveries.count(id, |c| c.retried += 1);
        if attempt(&st, &client, &mut queued, n as u32 + 2).await {
            return;
        }
    }
    deliveries.count(id, |c| {
        c.failed += 1;
        c.pending = c.pending.saturating_sub(1);
    });
    let now = st.clock.now();
    let last_success = deliveries.with(id, |s| s.last_success);
    let mut db = st.db.write().unwrap_or_else(|e| e.into_inner());
    let since = last_success.or(db.webhooks.added(id));
    if since.is_some_and(|t| now - t >= DEACTIVATE_AFTER_MS) {
        db.webhooks.deactivate(id, now, DEACTIVATED_REASON);
    }
}

/// Sends attempt `n`; true if the receiver accepted it (which finishes the delivery).
async fn attempt(st: &State, client: &reqwest::Client, queued: &mut Queued, n: u32) -> bool {
    queued.payload.meta.attempt = n;
    let status = post(st, client, queued).await;
    let accepted = status.is_some_and(|s| (200..300).contains(&s));
    let id = queued.subscription.id;
    if accepted {
        let now = st.clock.now();
        st.webhook_deliveries.with(id, |s| {
            s.counts.succeeded += 1;
            s.counts.pending = s.counts.pending.saturating_sub(1);
            s.failed_first_attempts = 0;
            s.last_success = Some(now);
        });
    }
    accepted
}

/// One HTTP request: the status, or `None` when no answer came in time.
async fn post(st: &State, client: &reqwest::Client, queued: &Queued) -> Option<u16> {
    let deliveries = &st.webhook_deliveries;
    let sub = &queued.subscription;
    deliveries.count(sub.id, |c| c.attempted += 1);
    let mut request = client
        .post(&sub.url)
        .timeout(deliveries.scaled(TIMEOUT))
        .json(&queued.payload);
    if let Some((user, password)) = &sub.basic_auth {
        request = request.basic_auth(user, password.as_ref());
    }
    let status = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            // The answer counts only once its body has arrived within the timeout too.
            match response.bytes().await {
                Ok(_) => Some(status),
                Err(_) => None,
            }
        }
        Err(_) => None,
    };
    let now = st.clock.now();
    st.db
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .webhooks
        .record_attempt(sub.id, now, status);
    status
}

// ------------------------------------------------------------------------------ admin

/// `/__sim/webhooks/...`: `GET stats`, `GET|POST faults`, `GET|POST timing`.
pub fn admin(st: &State, method: &str, segs: &[&str], body: &[u8]) -> Option<(u16, Value)> {
    let deliveries = &st.webhook_deliveries;
    let json = |v: Result<Value, serde_json::Error>| match v {
        Ok(v) => (200, v),
        Err(e) => (500, serde_json::json!({ "error": e.to_string() })),
    };
    let bad = |message: String| (400, serde_json::json!({ "error": message }));
    Some(match (method, segs) {
        ("GET", ["stats"]) => json(serde_json::to_value(deliveries.stats(st.clock.now()))),
        ("GET", ["faults"]) => json(serde_json::to_value(deliveries.options().faults)),
        ("POST", ["faults"]) => match serde_json::from_slice::<WebhookFaults>(body) {
            Ok(faults) => match faults.validate() {
                Ok(()) => {
                    deliveries
                        .options
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .faults = faults.clone();
                    deliveries.fault_sequence.store(0, Ordering::Relaxed);
                    json(serde_json::to_value(faults))
                }
                Err(message) => bad(message),
            },
            Err(e) => bad(e.to_string()),
        },
        ("GET", ["timing"]) => json(Ok(timing(deliveries.options().time_scale))),
        ("POST", ["timing"]) => {
            #[derive(Deserialize)]
            struct Timing {
                time_scale: f64,
            }
            match serde_json::from_slice::<Timing>(body) {
                Ok(t) if t.time_scale > 0.0 && t.time_scale.is_finite() => {
                    deliveries
                        .options
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .time_scale = t.time_scale;
                    json(Ok(timing(t.time_scale)))
                }
                Ok(_) => bad("time_scale must be above 0".into()),
                Err(e) => bad(e.to_string()),
            }
        }
        _ => return None,
    })
}

/// The effective waits at a time scale, so a test can see what it set.
fn timing(time_scale: f64) -> Value {
    let ms = |d: Duration| d.mul_f64(time_scale).as_millis() as u64;
    serde_json::json!({
        "time_scale": time_scale,
        "timeout_ms": ms(TIMEOUT),
        "retry_delays_ms": RETRY_DELAYS.map(ms),
        "ban_after_failures": BAN_AFTER_FAILURES,
        "ban_ms": (BAN_MS as f64 * time_scale) as u64,
        "deactivate_after_ms": DEACTIVATE_AFTER_MS,
    })
}
