//! Shared server state: the company, the simulated clock, stats, OAuth grants and faults.

use crate::limits::Limiter;
use crate::model::Db;
use crate::options::{FaultSettings, SimOptions};
use crate::util::{ANCHOR_MS, Ms, Rng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

/// Simulated time: wall clock plus an offset. The offset starts so that "now" equals the
/// data anchor at startup (seeded soft-deletes are then inside their 30-day window) and
/// only ever grows (`/__sim/clock/advance`).
pub struct Clock {
    offset: AtomicI64,
    last: AtomicI64,
}

impl Clock {
    fn new() -> Self {
        Clock {
            offset: AtomicI64::new(ANCHOR_MS - wall_ms()),
            last: AtomicI64::new(ANCHOR_MS),
        }
    }
    pub fn now(&self) -> Ms {
        let t = wall_ms() + self.offset.load(Ordering::Relaxed);
        // Never go backwards, even if the wall clock does.
        self.last.fetch_max(t, Ordering::Relaxed).max(t)
    }
    pub fn advance(&self, ms: Ms) {
        self.offset.fetch_add(ms.max(0), Ordering::Relaxed);
    }
}

fn wall_ms() -> Ms {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Ms)
        .unwrap_or(0)
}

#[derive(Default, Clone, Copy, serde::Serialize)]
pub struct PathStat {
    pub requests: u64,
    pub tokens_spent: u64,
    pub responses_429: u64,
}

/// Counters. Totals are atomics; per-path counters are sharded so concurrent requests
/// rarely touch the same mutex.
pub struct Stats {
    pub requests: AtomicU64,
    pub tokens: AtomicU64,
    pub r429: AtomicU64,
    pub by_status: Vec<AtomicU64>,
    pub paths: Vec<Mutex<HashMap<String, PathStat>>>,
    /// When the first and the latest counted request arrived (real time, not the simulated
    /// clock): a client's achieved request rate is its requests over this span.
    span: Mutex<Option<(Instant, Instant)>>,
}

const SHARDS: usize = 16;

impl Stats {
    fn new() -> Self {
        Stats {
            requests: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            r429: AtomicU64::new(0),
            by_status: (0..600).map(|_| AtomicU64::new(0)).collect(),
            paths: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            span: Mutex::new(None),
        }
    }
    pub fn record(&self, route: &str, status: u16, tokens: u64) {
        let now = Instant::now();
        {
            let mut span = self.span.lock().unwrap_or_else(|e| e.into_inner());
            *span = Some(span.map_or((now, now), |(first, _)| (first, now)));
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.tokens.fetch_add(tokens, Ordering::Relaxed);
        if status == 429 {
            self.r429.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(c) = self.by_status.get(status as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let shard = route
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        let mut m = self.paths[shard % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let e = m.entry(route.to_string()).or_default();
        e.requests += 1;
        e.tokens_spent += tokens;
        if status == 429 {
            e.responses_429 += 1;
        }
    }
    pub fn reset(&self) {
        self.requests.store(0, Ordering::Relaxed);
        self.tokens.store(0, Ordering::Relaxed);
        self.r429.store(0, Ordering::Relaxed);
        for c in &self.by_status {
            c.store(0, Ordering::Relaxed);
        }
        for m in &self.paths {
            m.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
        *self.span.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
    pub fn to_json(&self) -> serde_json::Value {
        let mut by_status = serde_json::Map::new();
        for (s, c) in self.by_status.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            if n > 0 {
                by_status.insert(s.to_string(), n.into());
            }
        }
        let mut paths = std::collections::BTreeMap::new();
        for m in &self.paths {
            for (k, v) in m.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                paths.insert(k.clone(), *v);
            }
        }
        serde_json::json!({
            "requests": self.requests.load(Ordering::Relaxed),
            "tokens_spent": self.tokens.load(Ordering::Relaxed),
            "responses_429": self.r429.load(Ordering::Relaxed),
            "responses_by_status": by_status,
            "paths": paths,
            "active_seconds": self
                .span
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .map_or(0.0, |(first, last)| (last - first).as_secs_f64()),
        })
    }
}

/// OAuth grants. Refresh tokens rotate: using one returns a new refresh token and the used
/// one stops working immediately. Access tokens stay valid until they expire.
#[derive(Default)]
pub struct OAuth {
    pub codes: HashMap<String, Ms>,
    pub access: HashMap<String, Ms>,
    pub refresh: HashMap<String, Ms>,
    pub counter: u64,
    /// Every access and refresh token handed out, for tests that search outputs for them.
    pub issued_access: Vec<String>,
    pub issued_refresh: Vec<String>,
}

pub const ACCESS_TTL_MS: Ms = 3_599_000;
pub const REFRESH_TTL_MS: Ms = 60 * crate::util::DAY_MS;

impl OAuth {
    pub fn mint(&mut self, seed: u64, kind: &str, len: usize) -> String {
        self.counter += 1;
        Rng::for_item(seed, kind, self.counter).hex(len)
    }
}

pub struct State {
    pub opts: SimOptions,
    pub url: String,
    pub api_token: String,
    pub db: RwLock<Db>,
    pub clock: Clock,
    pub stats: Stats,
    pub limiter: Limiter,
    pub faults: RwLock<FaultSettings>,
    pub fault_counter: AtomicU64,
    pub oauth: Mutex<OAuth>,
    pub costs: crate::costs::CostTable,
    pub churn: crate::churn::Churn,
    pub webhook_deliveries: std::sync::Arc<crate::webhook_outbox::Deliveries>,
}

impl State {
    /// The time a write starting at `now` is stamped with: the `write_lag_ms` fault makes a
    /// change's `update_time` precede the moment it shows in lists.
    pub fn write_time(&self, now: Ms) -> Ms {
        let lag = self.faults.read().map(|f| f.write_lag_ms).unwrap_or(0);
        now - lag as Ms
    }
    pub fn new(opts: SimOptions, url: String) -> State {
        let db = crate::seed::generate(&opts);
        let api_token = opts
            .api_token
            .clone()
            .unwrap_or_else(|| Rng::for_item(opts.seed, "api_token", 0).hex(40));
        let seats = db.users.rows.len() as u64;
        State {
            limiter: Limiter::new(opts.plan, seats),
            faults: RwLock::new(opts.faults.clone()),
            churn: crate::churn::Churn::new(opts.seed),
            webhook_deliveries: std::sync::Arc::new(crate::webhook_outbox::Deliveries::new(
                opts.webhooks.clone(),
            )),
            opts,
            url,
            api_token,
            db: RwLock::new(db),
            clock: Clock::new(),
            stats: Stats::new(),
            fault_counter: AtomicU64::new(0),
            oauth: Mutex::new(OAuth::default()),
            costs: crate::costs::CostTable::new(),
        }
    }
}

impl crate::churn::Company for State {
    fn db(&self) -> &RwLock<Db> {
        &self.db
    }
    fn write_now(&self) -> Ms {
        self.write_time(self.clock.now())
    }
    fn churn(&self) -> &crate::churn::Churn {
        &self.churn
    }
}
