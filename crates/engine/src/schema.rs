//! Column types inferred from JSON values, with a widening order so a column whose values
//! change shape between syncs is widened (never a failed sync).

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// A destination-neutral column type. Each destination maps it to its own SQL type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// Only nulls seen so far; created as text and widened by the first real value.
    Null,
    Boolean,
    BigInt,
    Double,
    Date,
    Timestamp,
    Json,
    Text,
}

impl ColumnType {
    /// The type of one JSON value.
    pub fn of(value: &Value) -> ColumnType {
        ColumnType::of_ref(&ValueRef::from(value))
    }

    /// The type of one JSON value, however it is held.
    pub fn of_ref(value: &ValueRef<'_>) -> ColumnType {
        match value {
            ValueRef::Null => ColumnType::Null,
            ValueRef::Bool(_) => ColumnType::Boolean,
            ValueRef::Number(n) if n.is_i64() => ColumnType::BigInt,
            ValueRef::Number(_) => ColumnType::Double,
            // Shaped like a date or a timestamp, and one that exists: `2024-02-30` or
            // `25:00:00` is text, not a value a date or timestamp column would refuse.
            ValueRef::Text(s) if parse_date(s).is_some() => ColumnType::Date,
            ValueRef::Text(s) if is_timestamp(s) && parse_timestamp(s).is_some() => {
                ColumnType::Timestamp
            }
            ValueRef::Text(_) => ColumnType::Text,
            ValueRef::Nested(_) => ColumnType::Json,
        }
    }

    /// The narrowest type that holds values of both: integers widen to doubles, any other
    /// disagreement to text (JSON values keep their JSON text).
    pub fn widen(self, other: ColumnType) -> ColumnType {
        use ColumnType::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Null, b) => b,
            (a, Null) => a,
            (BigInt, Double) | (Double, BigInt) => Double,
            (Date, Timestamp) | (Timestamp, Date) => Timestamp,
            _ => Text,
        }
    }
}

/// A JSON value, either parsed (a [`Value`]) or read straight from a page's text: text is
/// borrowed where it has no escapes, and an array or object stays its JSON text.
#[derive(Clone, Debug)]
pub enum ValueRef<'a> {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Text(Cow<'a, str>),
    /// An array or an object: written as its JSON text.
    Nested(Nested<'a>),
}

/// An array or an object, parsed or as a page's text.
#[derive(Clone, Copy, Debug)]
pub enum Nested<'a> {
    Parsed(&'a Value),
    Raw(&'a RawValue),
}

impl<'a> From<&'a Value> for ValueRef<'a> {
    fn from(value: &'a Value) -> ValueRef<'a> {
        match value {
            Value::Null => ValueRef::Null,
            Value::Bool(flag) => ValueRef::Bool(*flag),
            Value::Number(n) => ValueRef::Number(n.clone()),
            Value::String(s) => ValueRef::Text(Cow::Borrowed(s)),
            Value::Array(_) | Value::Object(_) => ValueRef::Nested(Nested::Parsed(value)),
        }
    }
}

impl<'a> ValueRef<'a> {
    /// One value of a page as it was sent; `None` when it is not JSON.
    pub fn of_raw(raw: &'a RawValue) -> Option<ValueRef<'a>> {
        let text = raw.get();
        Some(match text.as_bytes().first()? {
            b'{' | b'[' => ValueRef::Nested(Nested::Raw(raw)),
            b'n' => ValueRef::Null,
            b't' => ValueRef::Bool(true),
            b'f' => ValueRef::Bool(false),
            // Without escapes the text between the quotes is the string itself.
            b'"' if !text.contains('\\') => ValueRef::Text(Cow::Borrowed(&text[1..text.len() - 1])),
            b'"' => ValueRef::Text(Cow::Owned(serde_json::from_str(text).ok()?)),
            _ => ValueRef::Number(serde_json::from_str(text).ok()?),
        })
    }

    pub fn is_null(&self) -> bool {
        matches!(self, ValueRef::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            ValueRef::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The value parsed, for the few places that keep it beyond its page.
    pub fn to_value(&self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Bool(flag) => Value::Bool(*flag),
            ValueRef::Number(n) => Value::Number(n.clone()),
            ValueRef::Text(s) => Value::String(s.clone().into_owned()),
            ValueRef::Nested(Nested::Parsed(value)) => (*value).clone(),
            ValueRef::Nested(Nested::Raw(raw)) => {
                serde_json::from_str(raw.get()).expect("a page's value is JSON")
            }
        }
    }
}

/// The value's JSON text.
impl fmt::Display for ValueRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueRef::Null => f.write_str("null"),
            ValueRef::Bool(flag) => write!(f, "{flag}"),
            ValueRef::Number(n) => write!(f, "{n}"),
            ValueRef::Text(s) => write!(f, "{}", Value::String(s.to_string())),
            ValueRef::Nested(Nested::Parsed(value)) => write!(f, "{value}"),
            ValueRef::Nested(Nested::Raw(raw)) => f.write_str(raw.get()),
        }
    }
}

/// A named, typed column of a destination table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
}

impl Column {
    pub fn new(name: &str, ty: ColumnType) -> Column {
        Column {
            name: name.to_owned(),
            ty,
        }
    }
}

/// `YYYY-MM-DD`.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && digits(&b[0..4])
        && b[4] == b'-'
        && digits(&b[5..7])
        && b[7] == b'-'
        && digits(&b[8..10])
}

/// `YYYY-MM-DD HH:MM:SS` (v1, UTC) or RFC 3339 (`T`, optional fraction, `Z` or offset).
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    // The separator first: it makes byte 10 a character boundary, so `s[..10]` can be sliced.
    if b.len() < 19 || !(b[10] == b' ' || b[10] == b'T') || !is_date(&s[..10]) {
        return false;
    }
    if !(digits(&b[11..13])
        && b[13] == b':'
        && digits(&b[14..16])
        && b[16] == b':'
        && digits(&b[17..19]))
    {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &fraction[n..];
    }
    match rest {
        [] | [b'Z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] | [b'+' | b'-', h1, h2, m1, m2] => {
            digits(&[*h1, *h2, *m1, *m2])
        }
        [b'+' | b'-', h1, h2] => digits(&[*h1, *h2]),
        _ => false,
    }
}

fn digits(b: &[u8]) -> bool {
    b.iter().all(u8::is_ascii_digit)
}

/// Renders a value as the text a destination casts to the column's type. `None` is SQL NULL.
pub fn to_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// `YYYY-MM-DD`. Read digit by digit: every date and timestamp value of a sync passes here,
/// and chrono's format parser re-reads its format string on each call.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    if !is_date(s) {
        return None;
    }
    let b = s.as_bytes();
    let number = |digits: &[u8]| {
        digits
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
    };
    NaiveDate::from_ymd_opt(
        i32::try_from(number(&b[0..4])).ok()?,
        number(&b[5..7]),
        number(&b[8..10]),
    )
}

/// Parses a Pipedrive timestamp in any of its formats into whole-second UTC RFC 3339.
pub fn normalize_timestamp(value: &str) -> Option<String> {
    let parsed = parse_timestamp(value)?;
    Some(parsed.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Every timestamp shape the engine infers: `YYYY-MM-DD HH:MM:SS` (Pipedrive v1, UTC) or with
/// `T`, an optional fraction of any length, and `Z`, `±HH:MM`, `±HHMM` or `±HH`. A bare date
/// (a column widened from dates) is midnight UTC.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    if s.len() == 10 {
        return Some(parse_date(s)?.and_hms_opt(0, 0, 0)?.and_utc());
    }
    let b = s.as_bytes();
    if b.len() < 19 || !matches!(b[10], b' ' | b'T' | b't') || !s.is_char_boundary(19) {
        return None;
    }
    let date = parse_date(&s[..10])?;
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, c) in fraction.bytes().take(9).take(digits).enumerate() {
            nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
        }
        rest = &fraction[digits..];
    }
    let naive = NaiveDateTime::new(
        date,
        NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?,
    );
    let offset_seconds: i64 = match rest.as_bytes() {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let digits: Vec<u8> = tail.iter().copied().filter(|c| *c != b':').collect();
            let colon_ok = match tail.len() {
                2 | 4 => !tail.contains(&b':'),
                5 => tail[2] == b':',
                _ => false,
            };
            if !colon_ok || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let value = |d: &[u8]| i64::from(d[0] - b'0') * 10 + i64::from(d[1] - b'0');
            let hours = value(&digits[0..2]);
            let minutes = if digits.len() == 4 {
                value(&digits[2..4])
            } else {
                0
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = hours * 3600 + minutes * 60;
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    Some((naive - chrono::Duration::seconds(offset_seconds)).and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn infers_pipedrive_shapes() {
        assert_eq!(ColumnType::of(&json!("2024-01-02")), ColumnType::Date);
        assert_eq!(
            ColumnType::of(&json!("2024-01-02 10:11:12")),
            ColumnType::Timestamp
        );
        assert_eq!(
            ColumnType::of(&json!("2024-01-02T10:11:12Z")),
            ColumnType::Timestamp
        );
        assert_eq!(
            ColumnType::of(&json!("2024-01-02T10:11:12.123Z")),
            ColumnType::Timestamp
        );
        assert_eq!(
            ColumnType::of(&json!("2024-01-02 10:11:12.123")),
            ColumnType::Timestamp
        );
        assert_eq!(
            ColumnType::of(&json!("2024-01-02T10:11:12+02:00")),
            ColumnType::Timestamp
        );
        assert_eq!(ColumnType::of(&json!("10:00")), ColumnType::Text);
        assert_eq!(ColumnType::of(&json!("2024-01-02 lunch")), ColumnType::Text);
        assert_eq!(ColumnType::of(&json!(3)), ColumnType::BigInt);
        assert_eq!(ColumnType::of(&json!(3.5)), ColumnType::Double);
        assert_eq!(ColumnType::of(&json!({"a": 1})), ColumnType::Json);
    }

    /// A date or time that does not exist is text: typed as a date or timestamp, it would be a
    /// value its column cannot hold, and the page would fail to load.
    #[test]
    fn impossible_dates_and_times_are_text() {
        for text in [
            "2024-02-30",
            "2024-13-01",
            "2024-02-30 10:11:12",
            "2024-01-02 25:00:00",
            "2024-01-02T10:61:00Z",
            "2024-01-02T10:11:12+24:00",
        ] {
            let value = json!(text);
            assert_eq!(ColumnType::of(&value), ColumnType::Text, "{text}");
            assert!(
                !crate::declared::fits(&value, ColumnType::Timestamp),
                "{text}"
            );
            assert!(!crate::declared::fits(&value, ColumnType::Date), "{text}");
        }
    }

    #[test]
    fn multibyte_text_is_text() {
        for text in [
            "aaaaaaaaaé-bbbbbbbbbb",
            "2024-01-0é 10:11:12Z",
            "2024-01-02 10:11:1é",
        ] {
            assert_eq!(ColumnType::of(&json!(text)), ColumnType::Text, "{text}");
            assert_eq!(parse_timestamp(text), None, "{text}");
        }
    }

    #[test]
    fn widening_is_commutative_and_reaches_text() {
        use ColumnType::*;
        let all = [Null, Boolean, BigInt, Double, Date, Timestamp, Json, Text];
        for a in all {
            for b in all {
                assert_eq!(a.widen(b), b.widen(a));
                assert_eq!(a.widen(b).widen(Text), Text);
            }
            assert_eq!(a.widen(Null), a);
        }
        assert_eq!(BigInt.widen(Double), Double);
        assert_eq!(BigInt.widen(Text), Text);
        assert_eq!(Json.widen(BigInt), Text);
    }
}
