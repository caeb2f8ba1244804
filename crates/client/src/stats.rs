//! Cumulative request counters, overall and per normalised path.

use std::collections::BTreeMap;
use std::sync::Mutex;

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

#[derive(Default)]
pub(crate) struct Stats(Mutex<ClientStats>);

pub(crate) enum Event {
    Request,
    Spent(u64),
    Response429,
    Retry,
}

impl Stats {
    pub(crate) fn record(&self, path: &str, event: Event) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
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
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
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
    use super::normalise_path;

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
