//! Webhook state the company holds under its lock: the subscriptions, the outbox that write
//! paths fill, the delivery settings and counters, and the payload's shape. It depends on
//! nothing above it; `webhook_delivery` turns writes into events and `webhook_sender` sends them.

use crate::util::{Ms, Rng, iso_ms};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// Who made a change: an API client or a user in the web app (webhooks' `meta.change_source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeSource {
    App,
    Api,
}

// ------------------------------------------------------------------------------ settings

/// Webhook delivery timing and faults: `SimOptions::webhooks`, then `/__sim/webhooks/*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookOptions {
    /// Multiplies every delivery wait: the 10-s timeout, the 3/30/150-s retry delays and the
    /// 30-minute ban. 1.0 is Pipedrive's timing; tests use 0.01 or less.
    pub time_scale: f64,
    pub faults: WebhookFaults,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            time_scale: 1.0,
            faults: WebhookFaults::default(),
        }
    }
}

/// Delivery faults, each a probability (0.0..=1.0) per delivery.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookFaults {
    /// A delivery the receiver accepted is sent once more, byte for byte (same `meta.id`,
    /// same `attempt`), as when an answer reaches Pipedrive too late.
    pub duplicate_rate: f64,
    /// A delivery is held back and sent right after the next delivery of its subscription.
    pub reorder_rate: f64,
    /// A delivery is never sent.
    pub drop_rate: f64,
    /// A delivery waits `slow_ms` before its first attempt, holding up its subscription's queue.
    pub slow_rate: f64,
    pub slow_ms: u64,
}

impl WebhookFaults {
    pub(crate) fn validate(&self) -> Result<(), String> {
        let rates = [
            ("duplicate_rate", self.duplicate_rate),
            ("reorder_rate", self.reorder_rate),
            ("drop_rate", self.drop_rate),
            ("slow_rate", self.slow_rate),
        ];
        match rates.iter().find(|(_, r)| !(0.0..=1.0).contains(r)) {
            Some((name, _)) => Err(format!("{name} must be between 0 and 1")),
            None => Ok(()),
        }
    }
}

// ------------------------------------------------------------------------------ payload

/// The JSON body of one delivery (G2 §"payload"): `previous` is `null` on create, only the
/// changed keys on change, the last full state on delete; `data` is `null` on delete.
#[derive(Clone, Debug, Serialize)]
pub struct Payload {
    pub meta: Meta,
    pub data: Option<Value>,
    pub previous: Option<Value>,
}

/// `meta`: ids are strings, `timestamp` RFC 3339 with milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Meta {
    pub action: Action,
    pub entity: &'static str,
    pub entity_id: String,
    /// The event's UUID: the same in every attempt, duplicate and subscription.
    pub id: String,
    /// One UUID per write: the events one request caused share it.
    pub correlation_id: String,
    pub company_id: String,
    /// Who made the change.
    pub user_id: String,
    pub webhook_id: String,
    pub webhook_owner_id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub version: &'static str,
    pub change_source: ChangeSource,
    pub is_bulk_edit: bool,
    pub attempt: u32,
    pub host: String,
    pub permitted_user_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_to_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_from_id: Option<String>,
    pub timestamp: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Change,
    Delete,
}

impl Action {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Change => "change",
            Action::Delete => "delete",
        }
    }
}

// ------------------------------------------------------------------------------ outbox

/// One delivery waiting for its first attempt.
pub(crate) struct Queued {
    pub(crate) subscription: Subscription,
    pub(crate) payload: Payload,
}

/// The write side of delivery, kept in the [`Db`] so every write path reaches it under the
/// lock it already holds. Sending never waits.
#[derive(Default)]
pub struct Outbox {
    pub(crate) queue: Option<(mpsc::UnboundedSender<Queued>, Arc<Deliveries>)>,
    pub(crate) merges: Vec<MergeNote>,
    pub(crate) observing: bool,
    /// Writes and events so far: the inputs of their seeded UUIDs.
    pub(crate) writes: u64,
    pub(crate) events: u64,
    pub(crate) last_timestamp: Ms,
}

impl Outbox {
    /// Tells the events of the running write that `merged` was merged into `survivor`.
    pub fn note_merge(&mut self, entity: &'static str, merged: u64, survivor: u64) {
        if self.observing {
            self.merges.push(MergeNote {
                entity,
                merged,
                survivor,
            });
        }
    }
    pub(crate) fn send(&self, queued: Vec<Queued>) {
        let Some((queue, deliveries)) = &self.queue else {
            return;
        };
        for q in queued {
            deliveries.count(q.subscription.id, |c| {
                c.queued += 1;
                c.pending += 1;
            });
            if queue.send(q).is_err() {
                return;
            }
        }
    }
}

// ------------------------------------------------------------------------------ delivery

/// Delivery counters, per subscription and in total (`GET /__sim/webhooks/stats`).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct DeliveryCounts {
    /// Deliveries queued: one per event and matching subscription.
    pub queued: u64,
    /// HTTP requests sent: first attempts, retries and duplicates.
    pub attempted: u64,
    /// Deliveries a receiver accepted (2xx) on some attempt.
    pub succeeded: u64,
    /// Deliveries whose four attempts all failed.
    pub failed: u64,
    /// Retry requests sent (attempts 2 to 4).
    pub retried: u64,
    /// Deliveries the drop fault discarded.
    pub dropped: u64,
    /// Extra copies the duplicate fault sent.
    pub duplicated: u64,
    /// Deliveries the reorder fault held back behind the next one.
    pub reordered: u64,
    /// Deliveries the slow fault delayed.
    pub slowed: u64,
    /// Deliveries not sent because their subscription was banned.
    pub lost_to_ban: u64,
    /// Times the subscription was banned.
    pub bans: u64,
    /// Deliveries not finished yet (queued or waiting for a retry).
    pub pending: u64,
}

impl DeliveryCounts {
    pub(crate) fn add(&mut self, o: &DeliveryCounts) {
        self.queued += o.queued;
        self.attempted += o.attempted;
        self.succeeded += o.succeeded;
        self.failed += o.failed;
        self.retried += o.retried;
        self.dropped += o.dropped;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.slowed += o.slowed;
        self.lost_to_ban += o.lost_to_ban;
        self.bans += o.bans;
        self.pending += o.pending;
    }
}

#[derive(Default)]
pub(crate) struct SubscriptionState {
    pub(crate) counts: DeliveryCounts,
    /// Failed first attempts since the last ban or success.
    pub(crate) failed_first_attempts: u32,
    pub(crate) banned_until: Option<Ms>,
    pub(crate) last_success: Option<Ms>,
}

#[derive(Serialize)]
pub(crate) struct SubscriptionView {
    #[serde(flatten)]
    pub(crate) counts: DeliveryCounts,
    pub(crate) failed_first_attempts: u32,
    pub(crate) banned_until: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct StatsView {
    #[serde(flatten)]
    pub(crate) totals: DeliveryCounts,
    pub(crate) subscriptions: BTreeMap<String, SubscriptionView>,
}

/// Delivery state shared by the write path, the delivery tasks and the admin API.
pub struct Deliveries {
    pub(crate) options: RwLock<WebhookOptions>,
    /// Deliveries routed since the faults were last set: the input of their fault draws.
    pub(crate) fault_sequence: AtomicU64,
    pub(crate) subscriptions: Mutex<HashMap<u64, SubscriptionState>>,
}

impl Deliveries {
    pub fn new(options: WebhookOptions) -> Deliveries {
        Deliveries {
            options: RwLock::new(options),
            fault_sequence: AtomicU64::new(0),
            subscriptions: Mutex::new(HashMap::new()),
        }
    }
    pub(crate) fn options(&self) -> WebhookOptions {
        self.options
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub(crate) fn scaled(&self, d: Duration) -> Duration {
        d.mul_f64(self.options().time_scale)
    }
    pub(crate) fn with<R>(&self, id: u64, f: impl FnOnce(&mut SubscriptionState) -> R) -> R {
        let mut subs = self.subscriptions.lock().unwrap_or_else(|e| e.into_inner());
        f(subs.entry(id).or_default())
    }
    pub(crate) fn count(&self, id: u64, f: impl FnOnce(&mut DeliveryCounts)) {
        self.with(id, |s| f(&mut s.counts));
    }
    pub(crate) fn stats(&self, now: Ms) -> StatsView {
        let subs = self.subscriptions.lock().unwrap_or_else(|e| e.into_inner());
        let mut totals = DeliveryCounts::default();
        let mut subscriptions = BTreeMap::new();
        for (id, s) in subs.iter() {
            totals.add(&s.counts);
            subscriptions.insert(
                id.to_string(),
                SubscriptionView {
                    counts: s.counts,
                    failed_first_attempts: s.failed_first_attempts,
                    banned_until: s.banned_until.filter(|t| *t > now).map(iso_ms),
                },
            );
        }
        StatsView {
            totals,
            subscriptions,
        }
    }
}

/// The faults drawn for one delivery.
#[derive(Clone, Copy, Default)]
pub(crate) struct Faults {
    pub(crate) drop: bool,
    pub(crate) duplicate: bool,
    pub(crate) reorder: bool,
    pub(crate) slow: Option<Duration>,
}

impl Faults {
    pub(crate) fn draw(seed: u64, sequence: u64, f: &WebhookFaults) -> Faults {
        let mut r = Rng::for_item(seed, "webhook_fault", sequence);
        let (drop, duplicate, reorder, slow) = (r.unit(), r.unit(), r.unit(), r.unit());
        Faults {
            drop: drop < f.drop_rate,
            duplicate: duplicate < f.duplicate_rate,
            reorder: reorder < f.reorder_rate,
            slow: (slow < f.slow_rate).then(|| Duration::from_millis(f.slow_ms)),
        }
    }
}

pub(crate) struct Job {
    pub(crate) queued: Queued,
    pub(crate) faults: Faults,
}

/// One merge a write performed, so its events carry `merged_to_id` / `merged_from_id`.
#[derive(Clone, Debug)]
pub(crate) struct MergeNote {
    pub(crate) entity: &'static str,
    pub(crate) merged: u64,
    pub(crate) survivor: u64,
}

// ------------------------------------------------------------------------------ subscriptions

#[derive(Default)]
pub struct Registry {
    pub(crate) hooks: Vec<WebhookView>,
    pub(crate) next_id: u64,
}

#[derive(Clone, Serialize)]
pub(crate) struct WebhookView {
    pub(crate) id: u64,
    pub(crate) company_id: u64,
    pub(crate) owner_id: u64,
    pub(crate) user_id: u64,
    pub(crate) event_action: String,
    pub(crate) event_object: String,
    pub(crate) subscription_url: String,
    pub(crate) version: String,
    pub(crate) is_active: u8,
    pub(crate) add_time: String,
    pub(crate) remove_time: Option<String>,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) http_auth_user: Option<String>,
    pub(crate) http_auth_password: Option<String>,
    pub(crate) remove_reason: Option<String>,
    pub(crate) last_delivery_time: Option<String>,
    pub(crate) last_http_status: Option<u16>,
    pub(crate) admin_id: u64,
    pub(crate) name: String,
    /// `add_time` as a number, for the three-day rule of delivery.
    #[serde(skip)]
    pub(crate) added_ms: Ms,
}

/// Where and how to deliver one subscription's events.
#[derive(Clone, Debug)]
pub struct Subscription {
    pub id: u64,
    pub owner_id: u64,
    /// Events reach the subscription only if this user may see the record.
    pub user_id: u64,
    pub url: String,
    /// HTTP Basic credentials (`http_auth_user`, `http_auth_password`).
    pub basic_auth: Option<(String, Option<String>)>,
}

impl Registry {
    /// Whether any subscription would receive v2 events.
    pub fn has_active(&self) -> bool {
        self.hooks
            .iter()
            .any(|h| h.is_active == 1 && h.version == "2.0")
    }
    /// The active v2 subscriptions matching an event, `*` matching any action or object.
    /// Subscriptions with `version: "1.0"` get no deliveries (v1 payloads are not simulated).
    pub fn subscribed<'a>(
        &'a self,
        action: &'a str,
        object: &'a str,
    ) -> impl Iterator<Item = Subscription> + 'a {
        self.hooks
            .iter()
            .filter(move |h| {
                h.is_active == 1
                    && h.version == "2.0"
                    && (h.event_action == "*" || h.event_action == action)
                    && (h.event_object == "*" || h.event_object == object)
            })
            .map(|h| Subscription {
                id: h.id,
                owner_id: h.owner_id,
                user_id: h.user_id,
                url: h.subscription_url.clone(),
                basic_auth: h
                    .http_auth_user
                    .clone()
                    .map(|user| (user, h.http_auth_password.clone())),
            })
    }
    /// Notes a delivery attempt as the management API shows it (`last_delivery_time`,
    /// `last_http_status`; no status when the receiver never answered).
    pub fn record_attempt(&mut self, id: u64, at: Ms, status: Option<u16>) {
        if let Some(h) = self.hooks.iter_mut().find(|h| h.id == id) {
            h.last_delivery_time = Some(iso_ms(at - at.rem_euclid(1000)));
            h.last_http_status = status;
        }
    }
    /// When the subscription was added, if it still exists.
    pub fn added(&self, id: u64) -> Option<Ms> {
        self.hooks.iter().find(|h| h.id == id).map(|h| h.added_ms)
    }
    /// Turns a subscription off as Pipedrive does after three days without a successful
    /// delivery: it stays listed with `is_active: 0`, `remove_time` and `remove_reason`.
    pub fn deactivate(&mut self, id: u64, at: Ms, reason: &str) {
        if let Some(h) = self
            .hooks
            .iter_mut()
            .find(|h| h.id == id && h.is_active == 1)
        {
            h.is_active = 0;
            h.remove_time = Some(iso_ms(at - at.rem_euclid(1000)));
            h.remove_reason = Some(reason.to_string());
        }
    }
}
