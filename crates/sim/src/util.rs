//! Deterministic randomness and timestamp formatting shared by the generator and renderers.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};

/// Milliseconds since the Unix epoch (UTC).
pub type Ms = i64;

pub const DAY_MS: Ms = 86_400_000;

/// The fixed point generated history ends at: 2026-11-01T00:00:00Z. Generation never reads the
/// wall clock, so the same seed always yields the same bytes.
pub const ANCHOR_MS: Ms = 1_793_491_200_000;

/// SplitMix64: tiny, fast and stable across crate versions, so record `i` of an entity can be
/// generated independently of every other record (and in parallel).
#[derive(Clone)]
pub struct Rng(u64);

pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A stream for one (seed, entity, index) triple.
    pub fn for_item(seed: u64, entity: &str, index: u64) -> Rng {
        let mut h = mix(seed);
        for b in entity.bytes() {
            h = mix(h ^ b as u64);
        }
        Rng(mix(h ^ mix(index)))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo).max(1) as u64) as i64
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    pub fn pick_s(&mut self, xs: &[&'static str]) -> &'static str {
        xs[self.below(xs.len() as u64) as usize]
    }
    pub fn hex(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n);
        while s.len() < n {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(n);
        s
    }
    pub fn uuid(&mut self) -> uuid::Uuid {
        let hi = self.next_u64();
        let lo = self.next_u64();
        uuid::Builder::from_random_bytes(((hi as u128) << 64 | lo as u128).to_be_bytes())
            .into_uuid()
    }
}

fn dt(ms: Ms) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// v2 style: `2021-01-01T00:00:00Z`.
pub fn rfc3339(ms: Ms) -> String {
    dt(ms).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
/// Leads, lead labels, mailbox: `2020-10-14T11:30:36.551Z`.
pub fn iso_ms(ms: Ms) -> String {
    dt(ms).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
/// v1 default: `2019-12-09 13:59:21`.
pub fn v1ts(ms: Ms) -> String {
    let d = dt(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        d.year(),
        d.month(),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}
/// Days since epoch to `YYYY-MM-DD`.
pub fn date(days: i32) -> String {
    let d = NaiveDate::from_num_days_from_ce_opt(days + 719_163).unwrap_or_default();
    d.format("%Y-%m-%d").to_string()
}
pub fn days_of(ms: Ms) -> i32 {
    ms.div_euclid(DAY_MS) as i32
}
/// `HH:MM` or `HH:MM:SS` from seconds of day.
pub fn hms(secs: u32) -> String {
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}
pub fn hm(secs: u32) -> String {
    format!("{:02}:{:02}", secs / 3600, secs / 60 % 60)
}

/// Parses RFC3339 with second precision only. Fractional seconds are rejected like the real API.
pub fn parse_rfc3339_strict(s: &str) -> Option<Ms> {
    if s.contains('.') {
        return None;
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.timestamp_millis())
}
/// Lenient ISO 8601 (leads `updated_since`).
pub fn parse_iso(s: &str) -> Option<Ms> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.timestamp_millis());
    }
    parse_v1(s).or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(|d| {
            d.and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .and_utc()
                .timestamp_millis()
        })
    })
}
/// `YYYY-MM-DD HH:MM:SS`.
pub fn parse_v1(s: &str) -> Option<Ms> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|d| d.and_utc().timestamp_millis())
}
pub fn parse_date(s: &str) -> Option<i32> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| d.num_days_from_ce() - 719_163)
}

/// A number as text, without a fraction when it is whole.
pub fn fmt_num(v: f64) -> String {
    if v == v.trunc() {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// API timestamps have whole seconds.
/// A time cut to whole seconds, as the API stamps writes.
pub fn secs(t: Ms) -> Ms {
    t / 1000 * 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn anchor_and_formats() {
        assert_eq!(rfc3339(ANCHOR_MS), "2026-11-01T00:00:00Z");
        assert_eq!(v1ts(ANCHOR_MS + 1500), "2026-11-01 00:00:01");
        assert_eq!(iso_ms(ANCHOR_MS + 1500), "2026-11-01T00:00:01.500Z");
        assert_eq!(date(days_of(ANCHOR_MS)), "2026-11-01");
        assert_eq!(parse_date("2026-11-01"), Some(days_of(ANCHOR_MS)));
        assert!(parse_rfc3339_strict("2026-11-01T00:00:00.5Z").is_none());
        assert_eq!(
            parse_rfc3339_strict("2026-11-01T00:00:00Z"),
            Some(ANCHOR_MS)
        );
    }
}
