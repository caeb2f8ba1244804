//! Proactive burst pacing shared by every clone of a client.
//!
//! Pipedrive allows `x-ratelimit-limit` requests per rolling 2-second window per token. We learn
//! that limit from the first response (until then one request is in flight at a time), then
//! space sends evenly at one every `(window + margin) / limit` and keep our own log of send
//! instants as a safety net, so N concurrent streams together stay just under the ceiling.
//! A 429 or a server-reported `remaining: 0` that our own log does not explain (someone else
//! uses the same token) pauses everyone until the server's reset time.
//!
//! All timing uses tokio's clock so tests can pause time.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Pipedrive's burst window.
pub(crate) const WINDOW: Duration = Duration::from_secs(2);
/// Slack added to the window: absorbs the difference between when we send and when the server
/// counts (latency jitter), at a cost of about 2.5 % of the ceiling.
pub(crate) const MARGIN: Duration = Duration::from_millis(50);

pub(crate) struct RateLimiter {
    state: Mutex<State>,
    notify: Notify,
    window: Duration,
    margin: Duration,
}

#[derive(Default)]
struct State {
    /// Burst limit learned from `x-ratelimit-limit`.
    limit: Option<u32>,
    /// Our send instants, oldest first, kept for two windows.
    sends: VecDeque<Instant>,
    /// Earliest instant the next send may go (even spacing).
    next_slot: Option<Instant>,
    /// Nobody sends before this (after a 429 or an exhausted window).
    paused_until: Option<Instant>,
    in_flight: u32,
}

enum Decision {
    Go,
    WaitUntil(Instant),
    WaitForRelease,
}

/// What one response said about the burst window.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BurstHeaders {
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    pub reset: Option<Duration>,
}

/// A slot to send one request; released (in-flight count decremented) on drop.
pub(crate) struct Permit<'a> {
    limiter: &'a RateLimiter,
    pub(crate) sent_at: Instant,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut s = self.limiter.state.lock().unwrap_or_else(|e| e.into_inner());
        s.in_flight = s.in_flight.saturating_sub(1);
        drop(s);
        self.limiter.notify.notify_waiters();
    }
}

impl RateLimiter {
    pub(crate) fn new() -> RateLimiter {
        RateLimiter::with_window(WINDOW, MARGIN)
    }

    pub(crate) fn with_window(window: Duration, margin: Duration) -> RateLimiter {
        RateLimiter {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            window,
            margin,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The burst limit learned so far.
    pub(crate) fn limit(&self) -> Option<u32> {
        self.lock().limit
    }

    /// Waits until this process may send one more request without exceeding the window.
    pub(crate) async fn acquire(&self) -> Permit<'_> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let decision = {
                let mut s = self.lock();
                let now = Instant::now();
                let d = self.decide(&s, now);
                if let Decision::Go = d {
                    self.record(&mut s, now);
                    return Permit {
                        limiter: self,
                        sent_at: now,
                    };
                }
                d
            };
            match decision {
                Decision::WaitUntil(t) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t) => {}
                        _ = &mut notified => {}
                    }
                }
                Decision::WaitForRelease => notified.await,
                Decision::Go => unreachable!("returned above"),
            }
        }
    }

    fn decide(&self, s: &State, now: Instant) -> Decision {
        if let Some(p) = s.paused_until.filter(|p| *p > now) {
            return Decision::WaitUntil(p);
        }
        let Some(limit) = s.limit else {
            // Limit unknown: one request at a time until a response tells us.
            return if s.in_flight == 0 {
                Decision::Go
            } else {
                Decision::WaitForRelease
            };
        };
        let span = self.window + self.margin;
        let in_window = Self::count_since(&s.sends, now.checked_sub(span));
        if in_window >= limit as usize {
            let oldest = s.sends[s.sends.len() - limit as usize];
            return Decision::WaitUntil(oldest + span);
        }
        match s.next_slot {
            Some(t) if t > now => Decision::WaitUntil(t),
            _ => Decision::Go,
        }
    }

    /// How many sends happened after `from` (all when `from` is before the clock's origin).
    fn count_since(sends: &VecDeque<Instant>, from: Option<Instant>) -> usize {
        match from {
            Some(from) => sends.len() - sends.partition_point(|t| *t <= from),
            None => sends.len(),
        }
    }

    fn record(&self, s: &mut State, now: Instant) {
        let keep = self.window * 2 + self.margin;
        while s
            .sends
            .front()
            .is_some_and(|t| now.duration_since(*t) > keep)
        {
            s.sends.pop_front();
        }
        s.sends.push_back(now);
        s.in_flight += 1;
        if let Some(limit) = s.limit.filter(|l| *l > 0) {
            let interval = (self.window + self.margin) / limit;
            // Slots stay on their grid: a sender woken late (timers tick in whole
            // milliseconds, a 5% loss at 50 requests/s) does not push every later slot back.
            // After an idle spell the grid restarts at most one interval in the past; the
            // window count above still caps any 2 s at the limit.
            let earliest = now.checked_sub(interval).unwrap_or(now);
            let base = s.next_slot.map_or(now, |t| t.max(earliest));
            s.next_slot = Some(base + interval);
        }
    }

    /// Feeds one response's headers. `sent_at` is when that request was sent.
    pub(crate) fn observe(&self, sent_at: Instant, h: BurstHeaders) {
        let mut s = self.lock();
        let now = Instant::now();
        let learned = match h.limit.filter(|l| *l > 0) {
            Some(l) if s.limit != Some(l) => {
                s.limit = Some(l);
                tracing::debug!(limit = l, "learned burst limit");
                true
            }
            _ => false,
        };
        if h.remaining == Some(0) {
            // The server's window is full. If our own sends since (roughly) then account for it,
            // even spacing already waits for a slot; otherwise someone else shares the token
            // (or we started mid-window): wait for the server's reset.
            let limit = h.limit.or(s.limit).unwrap_or(1) as usize;
            let ours = Self::count_since(&s.sends, sent_at.checked_sub(self.window));
            if ours < limit {
                let reset = h.reset.unwrap_or(self.window).min(Duration::from_secs(60));
                self.pause_locked(&mut s, now + reset);
            }
        }
        drop(s);
        if learned {
            self.notify.notify_waiters();
        }
    }

    /// Blocks every sender until `until` (after a 429).
    pub(crate) fn pause(&self, until: Instant) {
        let mut s = self.lock();
        self.pause_locked(&mut s, until);
    }

    fn pause_locked(&self, s: &mut State, until: Instant) {
        if s.paused_until.is_none_or(|p| p < until) {
            s.paused_until = Some(until);
        }
        // Restart even spacing after the pause instead of releasing a backlog at once.
        if s.next_slot.is_none_or(|t| t < until) {
            s.next_slot = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(limit: u32, remaining: u32) -> BurstHeaders {
        BurstHeaders {
            limit: Some(limit),
            remaining: Some(remaining),
            reset: Some(Duration::from_secs(2)),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_in_flight_until_limit_known() {
        let l = RateLimiter::new();
        let p = l.acquire().await;
        let second = tokio::time::timeout(Duration::from_secs(5), l.acquire()).await;
        assert!(
            second.is_err(),
            "second request must wait for the first response"
        );
        l.observe(p.sent_at, headers(10, 9));
        drop(p);
        let _p2 = tokio::time::timeout(Duration::from_secs(1), l.acquire())
            .await
            .expect("released after the limit is learned");
    }

    /// Sends `count` requests through a limiter that learned `limit`, each sender running
    /// `late` after its slot; checks that no 2 s window holds more than `limit` and returns
    /// the rate achieved.
    async fn pace(limit: u32, count: usize, late: Duration) -> f64 {
        let l = RateLimiter::new();
        let p = l.acquire().await;
        l.observe(p.sent_at, headers(limit, limit - 1));
        drop(p);
        let start = Instant::now();
        let mut sends = vec![];
        for _ in 0..count {
            let p = l.acquire().await;
            sends.push(p.sent_at);
            tokio::time::advance(late).await;
        }
        for (i, t) in sends.iter().enumerate() {
            let n = sends[i..]
                .iter()
                .filter(|u| u.duration_since(*t) < WINDOW)
                .count();
            assert!(n <= limit as usize, "{n} sends within 2 s");
        }
        (count - 1) as f64 / sends[count - 1].duration_since(start).as_secs_f64()
    }

    #[tokio::test(start_paused = true)]
    async fn paces_to_the_window() {
        let rate = pace(20, 100, Duration::ZERO).await;
        assert!(rate > 0.95 * 10.0, "rate {rate}/s");
    }

    #[tokio::test(start_paused = true)]
    async fn late_wake_ups_do_not_slow_the_pace() {
        // Each sender runs a little after its slot, as on a loaded machine. The ceiling is
        // 50/s; even spacing over 2.05 s allows 48.8/s.
        let rate = pace(100, 500, Duration::from_micros(1500)).await;
        assert!(rate > 48.0, "rate {rate}/s");
    }

    #[tokio::test(start_paused = true)]
    async fn pause_blocks_everyone() {
        let l = RateLimiter::new();
        let p = l.acquire().await;
        l.observe(p.sent_at, headers(20, 19));
        drop(p);
        let t0 = Instant::now();
        l.pause(t0 + Duration::from_secs(3));
        let p = l.acquire().await;
        assert!(p.sent_at >= t0 + Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn foreign_exhaustion_waits_for_reset() {
        let l = RateLimiter::new();
        let p = l.acquire().await;
        // First response already says the window is full: someone else used it.
        l.observe(p.sent_at, headers(20, 0));
        drop(p);
        let t0 = Instant::now();
        let p = l.acquire().await;
        assert!(p.sent_at >= t0 + Duration::from_secs(2));
    }
}
