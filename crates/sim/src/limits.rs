//! Token-based rate limiting: a rolling 2-second burst window per token and a daily token
//! budget per company that resets at midnight UTC of the simulated clock.

use crate::options::Plan;
use crate::util::{DAY_MS, Ms};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

pub const WINDOW_MS: Ms = 2000;
/// Requests sent while already limited in one window before the Cloudflare block kicks in.
pub const HAMMER_THRESHOLD: u32 = 10;
pub const COOLDOWN_MS: Ms = 60_000;
/// What `--plan unlimited` reports: the real API sends its rate-limit headers on every response,
/// so the benchmark plan sends them too, with limits so high they never bind.
pub const UNLIMITED_BURST: u32 = 1_000_000;
pub const UNLIMITED_DAILY: u64 = 1_000_000_000_000;

#[derive(Default)]
struct Burst {
    hits: VecDeque<Ms>,
    limited_hits: u32,
    cooldown_until: Ms,
}

struct Daily {
    day: i64,
    spent: u64,
    /// Set by `/__sim/budget/reset` with `remaining`; cleared at the next day.
    override_limit: Option<u64>,
}

pub struct Limiter {
    pub plan: Plan,
    pub daily_limit: u64,
    bursts: Mutex<HashMap<String, Burst>>,
    daily: Mutex<Daily>,
}

pub struct Headers {
    pub limit: u32,
    pub remaining: u32,
    pub reset_s: u32,
    pub daily_limit: u64,
    pub daily_remaining: u64,
}

pub enum Decision {
    Ok(Headers),
    Burst(Headers, u32),
    Daily(Headers, u32),
    /// Cloudflare-style HTML 403 during the cool-down.
    Blocked(u32),
}

impl Limiter {
    pub fn new(plan: Plan, seats: u64) -> Self {
        let mult = match plan {
            Plan::Lite => 1,
            Plan::Growth => 2,
            Plan::Premium => 5,
            Plan::Ultimate => 7,
            Plan::Unlimited => 0,
        };
        Limiter {
            plan,
            daily_limit: if plan == Plan::Unlimited {
                UNLIMITED_DAILY
            } else {
                30_000 * mult * seats.max(1)
            },
            bursts: Mutex::new(HashMap::new()),
            daily: Mutex::new(Daily {
                day: i64::MIN,
                spent: 0,
                override_limit: None,
            }),
        }
    }

    pub fn burst_limit(&self, oauth: bool) -> u32 {
        let base = match self.plan {
            Plan::Lite => 20,
            Plan::Growth => 40,
            Plan::Premium => 100,
            Plan::Ultimate => 120,
            Plan::Unlimited => return UNLIMITED_BURST,
        };
        if oauth { base * 4 } else { base }
    }

    fn daily_state(&self, d: &mut Daily, now: Ms) -> u64 {
        let day = now.div_euclid(DAY_MS);
        if d.day != day {
            d.day = day;
            d.spent = 0;
            d.override_limit = None;
        }
        d.override_limit.unwrap_or(self.daily_limit)
    }

    /// Sets the budget for the current day: full when `remaining` is `None`.
    pub fn reset_budget(&self, now: Ms, remaining: Option<u64>) {
        let mut d = self.daily.lock().unwrap_or_else(|e| e.into_inner());
        self.daily_state(&mut d, now);
        d.spent = 0;
        d.override_limit = remaining;
    }

    pub fn budget(&self, now: Ms) -> (u64, u64) {
        let mut d = self.daily.lock().unwrap_or_else(|e| e.into_inner());
        let limit = self.daily_state(&mut d, now);
        (limit, limit.saturating_sub(d.spent))
    }

    pub fn check(&self, token: &str, oauth: bool, cost: u64, now: Ms) -> Decision {
        if self.plan == Plan::Unlimited {
            return Decision::Ok(self.unbounded(cost, now));
        }
        let limit = self.burst_limit(oauth);
        let mut bursts = self.bursts.lock().unwrap_or_else(|e| e.into_inner());
        let b = bursts.entry(token.to_string()).or_default();
        if b.cooldown_until > now {
            return Decision::Blocked(((b.cooldown_until - now + 999) / 1000) as u32);
        }
        while b.hits.front().is_some_and(|t| *t <= now - WINDOW_MS) {
            b.hits.pop_front();
        }
        if b.hits.is_empty() {
            b.limited_hits = 0;
        }
        let reset = |b: &Burst| {
            b.hits
                .front()
                .map(|t| ((t + WINDOW_MS - now + 999) / 1000).max(1) as u32)
                .unwrap_or(0)
        };
        let mut d = self.daily.lock().unwrap_or_else(|e| e.into_inner());
        let dlimit = self.daily_state(&mut d, now);
        let mut h = Headers {
            limit,
            remaining: 0,
            reset_s: 0,
            daily_limit: dlimit,
            daily_remaining: dlimit.saturating_sub(d.spent),
        };
        if b.hits.len() as u32 >= limit {
            b.limited_hits += 1;
            if b.limited_hits >= HAMMER_THRESHOLD {
                b.cooldown_until = now + COOLDOWN_MS;
                return Decision::Blocked((COOLDOWN_MS / 1000) as u32);
            }
            h.reset_s = reset(b);
            let retry = h.reset_s.max(1);
            return Decision::Burst(h, retry);
        }
        if d.spent + cost > dlimit {
            b.limited_hits += 1;
            if b.limited_hits >= HAMMER_THRESHOLD {
                b.cooldown_until = now + COOLDOWN_MS;
                return Decision::Blocked((COOLDOWN_MS / 1000) as u32);
            }
            b.hits.push_back(now);
            h.remaining = limit.saturating_sub(b.hits.len() as u32);
            h.reset_s = reset(b);
            let next_day = (now.div_euclid(DAY_MS) + 1) * DAY_MS;
            return Decision::Daily(h, ((next_day - now + 999) / 1000) as u32);
        }
        d.spent += cost;
        b.hits.push_back(now);
        h.daily_remaining = dlimit.saturating_sub(d.spent);
        h.remaining = limit.saturating_sub(b.hits.len() as u32);
        h.reset_s = reset(b);
        Decision::Ok(h)
    }

    /// Counts the tokens spent and reports limits that never bind, without a burst log per
    /// token (benchmarks send hundreds of thousands of requests).
    fn unbounded(&self, cost: u64, now: Ms) -> Headers {
        let mut d = self.daily.lock().unwrap_or_else(|e| e.into_inner());
        let daily_limit = self.daily_state(&mut d, now);
        d.spent += cost;
        Headers {
            limit: UNLIMITED_BURST,
            remaining: UNLIMITED_BURST - 1,
            reset_s: (WINDOW_MS / 1000) as u32,
            daily_limit,
            daily_remaining: daily_limit.saturating_sub(d.spent),
        }
    }
}
