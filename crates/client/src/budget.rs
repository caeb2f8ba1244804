//! The company's daily token budget (TBRL) and this process's own token cap.
//!
//! The server reports the budget in `x-daily-ratelimit-token-limit`/`-remaining`; between
//! responses we subtract each request's `token_cost` as it is sent, so concurrent streams do not
//! all start a request the budget cannot pay for. A request that cannot be paid fails fast with
//! `DailyBudgetExhausted` and is never sent.

use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, Utc};

use crate::error::ClientError;

pub(crate) struct Budget {
    state: Mutex<State>,
    cap: Option<u64>,
    /// Percent of the daily budget never spent (left for the company's other integrations).
    reserve_percent: u8,
}

#[derive(Default)]
struct State {
    daily_limit: Option<u64>,
    /// Estimate: last reported remaining minus what was sent since.
    daily_remaining: Option<u64>,
    /// UTC day the remaining figure belongs to; a new day forgets it.
    observed_day: Option<NaiveDate>,
    /// Set by a daily-budget 429: everything fails fast until then.
    exhausted_until: Option<DateTime<Utc>>,
    spent: u64,
    reserved: u64,
    /// Tokens kept above the reserve while a run reads, so that a run stopped there can still
    /// estimate what is left of its work (see [`Budget::hold`]).
    held: u64,
    /// A request was refused because it would have dipped into the reserve (or into `held`).
    reserve_reached: bool,
}

/// Cost of one request held against the budget until its outcome is known.
#[must_use]
pub(crate) struct Reservation {
    cost: u64,
}

/// Point-in-time view of the rate and token budgets.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BudgetSnapshot {
    /// Requests per 2-second window, as learned from `x-ratelimit-limit`.
    pub burst_limit: Option<u32>,
    /// Company's daily token budget, when the server reported it.
    pub daily_limit: Option<u64>,
    /// Tokens left today (server figure minus what this process sent since), when known.
    pub daily_remaining: Option<u64>,
    /// Tokens this process has spent (requests the server charged for).
    pub tokens_spent: u64,
    /// The configured `max_tokens`.
    pub token_cap: Option<u64>,
    /// The share of the daily budget (percent) runs leave unspent.
    pub reserve_percent: u8,
    /// When the daily budget resets, if it is known to be exhausted.
    pub resets_at: Option<DateTime<Utc>>,
    /// A request was refused at the reserve: the run stopped there.
    pub reserve_reached: bool,
}

/// Next UTC midnight after `now`.
pub(crate) fn next_utc_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = now.date_naive().succ_opt().unwrap_or(now.date_naive());
    tomorrow.and_hms_opt(0, 0, 0).map_or(now, |t| t.and_utc())
}

impl Budget {
    pub(crate) fn new(cap: Option<u64>, reserve_percent: u8) -> Budget {
        Budget {
            state: Mutex::new(State::default()),
            cap,
            reserve_percent: reserve_percent.min(100),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fails if the request cannot be paid for; otherwise holds its cost until [`Budget::settle`].
    pub(crate) fn reserve(&self, cost: u32) -> Result<Reservation, ClientError> {
        let cost = u64::from(cost);
        let now = Utc::now();
        let mut s = self.lock();
        if let Some(until) = s.exhausted_until {
            if now < until {
                return Err(ClientError::DailyBudgetExhausted { resets_at: until });
            }
            s.exhausted_until = None;
            s.daily_remaining = None;
        }
        if s.observed_day.is_some_and(|d| d != now.date_naive()) {
            s.daily_remaining = None;
            s.observed_day = None;
        }
        if let Some(remaining) = s.daily_remaining
            && (remaining == 0 || remaining < cost)
        {
            return Err(ClientError::DailyBudgetExhausted {
                resets_at: next_utc_midnight(now),
            });
        }
        if let (Some(limit), Some(remaining)) = (s.daily_limit, s.daily_remaining) {
            let keep = limit * u64::from(self.reserve_percent) / 100;
            if self.reserve_percent > 0 && remaining < keep + s.held + cost {
                s.reserve_reached = true;
                return Err(ClientError::BudgetReserveReached {
                    remaining,
                    keep,
                    held: s.held,
                    percent: self.reserve_percent,
                    resets_at: next_utc_midnight(now),
                });
            }
        }
        if let Some(cap) = self.cap
            && s.spent + s.reserved + cost > cap
        {
            return Err(ClientError::TokenCapReached {
                cap,
                spent: s.spent,
            });
        }
        s.reserved += cost;
        if let Some(r) = s.daily_remaining.as_mut() {
            *r = r.saturating_sub(cost);
        }
        Ok(Reservation { cost })
    }

    /// Releases a reservation; `charged` = the server counted the request.
    pub(crate) fn settle(&self, r: Reservation, charged: bool) -> u64 {
        let mut s = self.lock();
        s.reserved = s.reserved.saturating_sub(r.cost);
        if charged {
            s.spent += r.cost;
            r.cost
        } else {
            if let Some(rem) = s.daily_remaining.as_mut() {
                *rem += r.cost;
            }
            0
        }
    }

    /// Keeps `tokens` above the reserve unspent until it is called again (with 0 to release
    /// them): what a stopped run's estimate of its remaining work costs. Without a reserve there
    /// is nothing to stop at, so nothing is held.
    pub(crate) fn hold(&self, tokens: u64) {
        self.lock().held = if self.reserve_percent > 0 { tokens } else { 0 };
    }

    /// Feeds `x-daily-ratelimit-token-limit`/`-remaining`.
    pub(crate) fn observe(&self, limit: Option<u64>, remaining: Option<u64>) {
        if limit.is_none() && remaining.is_none() {
            return;
        }
        let mut s = self.lock();
        if limit.is_some() {
            s.daily_limit = limit;
        }
        if remaining.is_some() {
            s.daily_remaining = remaining;
            s.observed_day = Some(Utc::now().date_naive());
        }
    }

    /// Records a daily-budget 429: all requests fail fast until `resets_at`.
    pub(crate) fn exhaust(&self, resets_at: DateTime<Utc>) {
        let mut s = self.lock();
        s.exhausted_until = Some(resets_at);
        s.daily_remaining = Some(0);
        s.observed_day = Some(Utc::now().date_naive());
    }

    pub(crate) fn snapshot(&self, burst_limit: Option<u32>) -> BudgetSnapshot {
        let s = self.lock();
        let now = Utc::now();
        let resets_at = s.exhausted_until.filter(|t| *t > now).or_else(|| {
            (s.daily_remaining == Some(0) && s.observed_day == Some(now.date_naive()))
                .then(|| next_utc_midnight(now))
        });
        BudgetSnapshot {
            burst_limit,
            daily_limit: s.daily_limit,
            daily_remaining: s.daily_remaining,
            tokens_spent: s.spent,
            token_cap: self.cap,
            reserve_percent: self.reserve_percent,
            resets_at,
            reserve_reached: s.reserve_reached,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_fast_when_remaining_is_short() {
        let b = Budget::new(None, 0);
        b.observe(Some(1000), Some(25));
        let r = b.reserve(20).unwrap();
        // 5 left after the reservation: a second 20-token request cannot be paid.
        assert!(matches!(
            b.reserve(20),
            Err(ClientError::DailyBudgetExhausted { .. })
        ));
        assert_eq!(b.settle(r, true), 20);
        assert_eq!(b.snapshot(None).tokens_spent, 20);
    }

    #[test]
    fn cap_counts_reserved_tokens() {
        let b = Budget::new(Some(30), 0);
        let r = b.reserve(20).unwrap();
        assert!(matches!(
            b.reserve(20),
            Err(ClientError::TokenCapReached { cap: 30, spent: 0 })
        ));
        b.settle(r, false);
        assert!(b.reserve(20).is_ok());
    }

    #[test]
    fn the_reserve_is_never_spent() {
        let b = Budget::new(None, 20);
        // Before the server reports the budget there is nothing to keep.
        assert!(b.reserve(10).is_ok());
        b.observe(Some(1000), Some(215));
        let r = b.reserve(10).unwrap();
        // 205 left, 200 kept: another 10 would dip into the reserve.
        match b.reserve(10) {
            Err(ClientError::BudgetReserveReached {
                remaining: 205,
                keep: 200,
                percent: 20,
                ..
            }) => {}
            other => panic!("{:?}", other.err()),
        }
        assert!(b.reserve(5).is_ok());
        b.settle(r, true);
    }

    #[test]
    fn held_tokens_stop_a_run_above_the_reserve_and_pay_for_what_follows_once_released() {
        let b = Budget::new(None, 20);
        b.observe(Some(1000), Some(250));
        b.hold(40);
        // 250 left, 200 kept, 40 held: a 20-token request would leave 230, under 240.
        assert!(matches!(
            b.reserve(20),
            Err(ClientError::BudgetReserveReached { .. })
        ));
        assert!(b.snapshot(None).reserve_reached);
        b.hold(0);
        let r = b.reserve(20).unwrap();
        b.settle(r, true);
        assert_eq!(b.snapshot(None).daily_remaining, Some(230));
        // Without a reserve a run spends everything: nothing is held back.
        let unreserved = Budget::new(None, 0);
        unreserved.observe(Some(1000), Some(30));
        unreserved.hold(40);
        assert!(unreserved.reserve(20).is_ok());
    }

    #[test]
    fn midnight() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T22:10:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            next_utc_midnight(now).to_rfc3339(),
            "2026-11-24T00:00:00+00:00"
        );
    }
}
