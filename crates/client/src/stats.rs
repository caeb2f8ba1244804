//! Cumulative request counters, overall and per normalised path, and per second.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// Counters for one path (or for the whole client).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PathStats {
    /// HTTP requests sent (every attempt).
    pub requests: u64,
    /// Tokens the server charged for them.
    pub tokens_spent: u64,
    pub responses_429: u64,
    /// Attempts after the first.
    pub retries: u64,
}

/// Cumulative counters since the client was built.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientStats {
    pub requests: u64,
    pub tokens_spent: u64,
    pub responses_429: u64,
    pub retries: u64,
    /// Keyed by path with ids replaced by `{id}`, e.g. `/api/v1/deals/{id}/flow`.
    pub per_path: BTreeMap<String, PathStats>,
}

/// Requests and 429s in one second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SecondCounts {
    /// HTTP requests sent (every attempt).
    pub requests: u32,
    pub responses_429: u32,
}

/// Requests and 429s per second since the client was built: how the request rate compares
/// with the burst limit over a run. Kept apart from [`ClientStats`], which progress lines
/// copy often.
#[derive(Clone, Debug)]
pub struct RequestTimeline {
    /// The start of second 0.
    pub origin: Instant,
    /// Second `i` covers `origin + i s .. origin + (i + 1) s`.
    pub seconds: Vec<SecondCounts>,
}

impl RequestTimeline {
    /// The seconds from the one holding `from` to the last, minus what `before` (a snapshot
    /// of the same client taken at `from`) had counted already: exactly what was sent after
    /// `from`, whatever came earlier in the same second.
    pub fn since(&self, before: &RequestTimeline, from: Instant) -> Vec<SecondCounts> {
        let first = from.saturating_duration_since(self.origin).as_secs() as usize;
        self.seconds
            .iter()
            .enumerate()
            .skip(first)
            .map(|(i, now)| {
                let earlier = before.seconds.get(i).copied().unwrap_or_default();
                SecondCounts {
                    requests: now.requests.saturating_sub(earlier.requests),
                    responses_429: now.responses_429.saturating_sub(earlier.responses_429),
                }
            })
            .collect()
    }
}

pub(crate) struct Stats(Mutex<Counters>);

struct Counters {
    totals: ClientStats,
    origin: Instant,
    /// Grows by 8 bytes a second the client lives (under 1 MB a day).
    seconds: Vec<SecondCounts>,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats(Mutex::new(Counters {
            totals: ClientStats::default(),
            origin: Instant::now(),
            seconds: Vec::new(),
        }))
    }
}

pub(crate) enum Event {
    Request,
    Spent(u64),
    Response429,
    Retry,
}

impl Stats {
    pub(crate) fn record(&self, path: &str, event: Event) {
        let mut counters = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(event, Event::Request | Event::Response429) {
            let second = counters.origin.elapsed().as_secs() as usize;
            if counters.seconds.len() <= second {
                counters.seconds.resize(second + 1, SecondCounts::default());
            }
            let counts = &mut counters.seconds[second];
            match event {
                Event::Request => counts.requests += 1,
                _ => counts.responses_429 += 1,
            }
        }
        let s = &mut counters.totals;
        let key = normalise_path(path);
        let apply = |p: &mut PathStats| match event {
            Event::Request => p.requests += 1,
            Event::Spent(n) => p.tokens_spent += n,
            Event::Response429 => p.responses_429 += 1,
            Event::Retry => p.retries += 1,
        };
        apply(s.per_path.entry(key).or_default());
        match event {
            Event::Request => s.requests += 1,
            Event::Spent(n) => s.tokens_spent += n,
            Event::Response429 => s.responses_429 += 1,
            Event::Retry => s.retries += 1,
        }
    }

    pub(crate) fn snapshot(&self) -> ClientStats {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .totals
            .clone()
    }

    pub(crate) fn timeline(&self) -> RequestTimeline {
        let counters = self.0.lock().unwrap_or_else(|e| e.into_inner());
        RequestTimeline {
            origin: counters.origin,
            seconds: counters.seconds.clone(),
        }
    }
}

/// Replaces path segments that are ids (numbers, UUIDs, 40-hex field codes) with `{id}`.
pub fn normalise_path(path: &str) -> String {
    path.split('/')
        .map(|seg| if is_id(seg) { "{id}" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

fn is_id(seg: &str) -> bool {
    if seg.is_empty() {
        return false;
    }
    let digits = seg.bytes().all(|b| b.is_ascii_digit());
    let uuid = seg.len() == 36
        && seg.bytes().enumerate().all(|(i, b)| {
            matches!(i, 8 | 13 | 18 | 23) == (b == b'-') && (b == b'-' || b.is_ascii_hexdigit())
        });
    let hash = seg.len() == 40 && seg.bytes().all(|b| b.is_ascii_hexdigit());
    digits || uuid || hash
}

#[cfg(test)]
mod tests {
    use super::{Event, RequestTimeline, SecondCounts, Stats, normalise_path};
    use std::time::{Duration, Instant};

    #[test]
    fn timeline_counts_per_second_and_since_subtracts_the_earlier_snapshot() {
        let stats = Stats::default();
        stats.record("/api/v2/deals", Event::Request);
        stats.record("/api/v2/deals", Event::Response429);
        let before = stats.timeline();
        let from = Instant::now();
        stats.record("/api/v2/deals", Event::Request);
        stats.record("/api/v2/deals", Event::Spent(10));
        let after = stats.timeline();
        let total: u32 = after.seconds.iter().map(|s| s.requests).sum();
        assert_eq!(total, 2);
        assert_eq!(stats.snapshot().requests, 2);
        let run = after.since(&before, from);
        assert_eq!(run.iter().map(|s| s.requests).sum::<u32>(), 1);
        assert_eq!(run.iter().map(|s| s.responses_429).sum::<u32>(), 0);
        // Seconds before the one holding `from` are left out.
        let later = RequestTimeline {
            origin: after.origin,
            seconds: vec![
                SecondCounts {
                    requests: 5,
                    responses_429: 1
                };
                4
            ],
        };
        let empty = RequestTimeline {
            origin: after.origin,
            seconds: Vec::new(),
        };
        assert_eq!(
            later
                .since(&empty, after.origin + Duration::from_millis(2500))
                .len(),
            2
        );
    }

    #[test]
    fn ids_become_placeholders() {
        assert_eq!(
            normalise_path("/api/v1/deals/123/flow"),
            "/api/v1/deals/{id}/flow"
        );
        assert_eq!(
            normalise_path("/api/v1/leads/adf21080-0e10-11eb-879b-05d71fb426ec"),
            "/api/v1/leads/{id}"
        );
        assert_eq!(normalise_path("/api/v2/deals"), "/api/v2/deals");
        assert_eq!(normalise_path("/api/v2/users/me"), "/api/v2/users/me");
    }
}
