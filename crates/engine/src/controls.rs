//! Per-stream data controls, applied to each record after custom fields are named and before
//! anything is stored: a row filter, excluded columns and salted SHA-256 hashes.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::schema::to_text;

/// What one stream keeps of its records.
#[derive(Clone, Default)]
pub struct Controls {
    /// Columns (as named in the destination) never loaded.
    pub exclude: Vec<String>,
    /// Columns loaded as the hex SHA-256 of `salt` followed by the value's text.
    pub hash: Vec<String>,
    pub salt: String,
    /// Records that do not match are not loaded, and removed if loaded before.
    pub filter: Option<RowFilter>,
    /// Columns [`EVERY_COLUMN`] leaves alone: the stream's primary key, which rows merge on.
    pub keys: Vec<String>,
}

/// In `exclude` or `hash`: every column but [`Controls::keys`]. Rows made of an array field
/// get it when their parent hashes or excludes that field, whatever their columns are.
pub const EVERY_COLUMN: &str = "*";

impl fmt::Debug for Controls {
    /// The salt is a secret: it would make the hashes reversible by guessing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controls")
            .field("exclude", &self.exclude)
            .field("hash", &self.hash)
            .field("salt", &"<redacted>")
            .field("filter", &self.filter)
            .finish()
    }
}

impl Controls {
    pub fn is_empty(&self) -> bool {
        self.exclude.is_empty() && self.hash.is_empty() && self.filter.is_none()
    }

    /// Whether the record passes the filter.
    pub fn keeps(&self, record: &Map<String, Value>) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(record))
    }

    /// Drops excluded columns and hashes hashed ones, in place. Nulls stay null.
    pub fn apply(&self, record: &mut Map<String, Value>) {
        let every = |columns: &[String]| columns.iter().any(|c| c == EVERY_COLUMN);
        if every(&self.exclude) {
            record.retain(|column, _| self.keys.contains(column));
        }
        for column in &self.exclude {
            record.remove(column);
        }
        if every(&self.hash) {
            for (column, value) in record.iter_mut() {
                if !self.keys.contains(column) {
                    self.hash_value(value);
                }
            }
        }
        for column in &self.hash {
            if let Some(value) = record.get_mut(column) {
                self.hash_value(value);
            }
        }
    }

    fn hash_value(&self, value: &mut Value) {
        if let Some(text) = to_text(value) {
            let mut digest = Sha256::new();
            digest.update(self.salt.as_bytes());
            digest.update(text.as_bytes());
            *value = Value::from(hex::encode(digest.finalize()));
        }
    }
}

/// `field op value [and field op value ...]`, with `=`, `!=`, `<`, `<=`, `>`, `>=` and
/// `in (a, b, ...)`; values are numbers, `'quoted text'`, `true`, `false` or `null`.
#[derive(Clone, Debug, PartialEq)]
pub struct RowFilter {
    conditions: Vec<Condition>,
}

#[derive(Clone, Debug, PartialEq)]
struct Condition {
    field: String,
    op: Op,
    values: Vec<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
}

impl RowFilter {
    pub fn matches(&self, record: &Map<String, Value>) -> bool {
        self.conditions.iter().all(|c| c.holds(record))
    }
}

impl Condition {
    fn holds(&self, record: &Map<String, Value>) -> bool {
        let actual = record.get(&self.field).unwrap_or(&Value::Null);
        let ordering = |expected: &Value| compare(actual, expected);
        match self.op {
            Op::Eq => ordering(&self.values[0]) == Some(std::cmp::Ordering::Equal),
            Op::Ne => ordering(&self.values[0]) != Some(std::cmp::Ordering::Equal),
            Op::Lt => ordering(&self.values[0]) == Some(std::cmp::Ordering::Less),
            Op::Le => ordering(&self.values[0]).is_some_and(|o| o.is_le()),
            Op::Gt => ordering(&self.values[0]) == Some(std::cmp::Ordering::Greater),
            Op::Ge => ordering(&self.values[0]).is_some_and(|o| o.is_ge()),
            Op::In => self
                .values
                .iter()
                .any(|v| compare(actual, v) == Some(std::cmp::Ordering::Equal)),
        }
    }
}

/// Numbers compare as numbers (also when the record holds one as text), everything else as
/// text; null equals only null.
fn compare(actual: &Value, expected: &Value) -> Option<std::cmp::Ordering> {
    match (actual, expected) {
        (Value::Null, Value::Null) => Some(std::cmp::Ordering::Equal),
        (Value::Null, _) | (_, Value::Null) => None,
        (_, Value::Number(n)) => {
            let a = match actual {
                Value::Number(a) => a.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            }?;
            a.partial_cmp(&n.as_f64()?)
        }
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => Some(to_text(actual)?.cmp(&to_text(expected)?)),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(String);

impl FromStr for RowFilter {
    type Err = FilterError;

    fn from_str(text: &str) -> Result<RowFilter, FilterError> {
        let tokens = tokenize(text)?;
        let mut conditions = Vec::new();
        let mut rest = tokens.as_slice();
        loop {
            let (condition, after) = condition(rest)?;
            conditions.push(condition);
            match after {
                [] => break,
                [Token::Word(and), more @ ..] if and.eq_ignore_ascii_case("and") => rest = more,
                [other, ..] => {
                    return Err(FilterError(format!(
                        "expected `and` or the end after a condition, found {other}"
                    )));
                }
            }
        }
        Ok(RowFilter { conditions })
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Symbol(&'static str),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(w) => write!(f, "`{w}`"),
            Token::Text(t) => write!(f, "'{t}'"),
            Token::Symbol(s) => write!(f, "`{s}`"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, FilterError> {
    const SYMBOLS: [&str; 9] = ["!=", "<=", ">=", "=", "<", ">", "(", ")", ","];
    let mut tokens = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        if let Some(symbol) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            tokens.push(Token::Symbol(symbol));
            rest = &rest[symbol.len()..];
        } else if let Some(quoted) = rest.strip_prefix('\'') {
            let end = quoted.find('\'').ok_or_else(|| {
                FilterError("a quoted value is not closed: end it with `'`".to_owned())
            })?;
            tokens.push(Token::Text(quoted[..end].to_owned()));
            rest = &quoted[end + 1..];
        } else {
            let end = rest
                .find(|c: char| c.is_whitespace() || "!=<>(),'".contains(c))
                .unwrap_or(rest.len());
            if end == 0 {
                return Err(FilterError(format!("unexpected `{}`", &rest[..1])));
            }
            tokens.push(Token::Word(rest[..end].to_owned()));
            rest = &rest[end..];
        }
        rest = rest.trim_start();
    }
    Ok(tokens)
}

fn literal(token: &Token) -> Result<Value, FilterError> {
    match token {
        Token::Text(text) => Ok(Value::from(text.as_str())),
        Token::Word(word) => match word.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            "null" => Ok(Value::Null),
            _ => word
                .parse::<i64>()
                .map(Value::from)
                .ok()
                .or_else(|| {
                    word.parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map(Value::Number)
                })
                .ok_or_else(|| {
                    FilterError(format!(
                        "`{word}` is not a value: quote text ('{word}'), or write a number, true, false or null"
                    ))
                }),
        },
        Token::Symbol(s) => Err(FilterError(format!("expected a value, found `{s}`"))),
    }
}

fn condition(tokens: &[Token]) -> Result<(Condition, &[Token]), FilterError> {
    let [Token::Word(field), op, rest @ ..] = tokens else {
        return Err(FilterError(
            "expected `field op value`, e.g. `pipeline_id = 3`".to_owned(),
        ));
    };
    let op = match op {
        Token::Symbol("=") => Op::Eq,
        Token::Symbol("!=") => Op::Ne,
        Token::Symbol("<") => Op::Lt,
        Token::Symbol("<=") => Op::Le,
        Token::Symbol(">") => Op::Gt,
        Token::Symbol(">=") => Op::Ge,
        Token::Word(word) if word.eq_ignore_ascii_case("in") => Op::In,
        other => {
            return Err(FilterError(format!(
                "{other} is not a comparison: use =, !=, <, <=, >, >= or in (...)"
            )));
        }
    };
    let field = field.clone();
    if op != Op::In {
        let [value, rest @ ..] = rest else {
            return Err(FilterError(format!("`{field}` is compared with nothing")));
        };
        let values = vec![literal(value)?];
        return Ok((Condition { field, op, values }, rest));
    }
    let [Token::Symbol("("), after_open @ ..] = rest else {
        return Err(FilterError(format!(
            "`{field} in` needs a list in parentheses, e.g. (1, 2)"
        )));
    };
    let mut rest: &[Token] = after_open;
    let mut values = Vec::new();
    loop {
        let [value, after @ ..] = rest else {
            return Err(FilterError(
                "the list is not closed: end it with `)`".to_owned(),
            ));
        };
        values.push(literal(value)?);
        match after {
            [Token::Symbol(","), more @ ..] => rest = more,
            [Token::Symbol(")"), more @ ..] => return Ok((Condition { field, op, values }, more)),
            _ => {
                return Err(FilterError(
                    "the list is not closed: end it with `)`".to_owned(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn filters_compare_numbers_text_and_lists() {
        let deal =
            record(json!({"pipeline_id": 3, "status": "open", "value": "12.5", "org_id": null}));
        let holds = |text: &str| text.parse::<RowFilter>().unwrap().matches(&deal);
        assert!(holds("pipeline_id = 3"));
        assert!(!holds("pipeline_id = 4"));
        assert!(holds("pipeline_id >= 3 and status = 'open'"));
        assert!(holds("status in ('won', 'open')"));
        assert!(!holds("status in ('won', 'lost')"));
        assert!(holds("value > 10"));
        assert!(holds("org_id = null"));
        assert!(!holds("org_id = 1"));
        assert!(holds("org_id != 1"));
    }

    #[test]
    fn bad_filters_say_what_to_write() {
        for (text, hint) in [
            ("pipeline_id", "field op value"),
            ("pipeline_id ~ 3", "not a comparison"),
            ("status = open", "quote text"),
            ("status in ('a'", "not closed"),
            ("a = 1 or b = 2", "`and`"),
            ("name = 'x", "not closed"),
        ] {
            let error = text.parse::<RowFilter>().unwrap_err().to_string();
            assert!(error.contains(hint), "{text}: {error}");
        }
    }

    #[test]
    fn hashes_are_salted_and_excluded_columns_gone() {
        let controls = Controls {
            exclude: vec!["phone".into()],
            hash: vec!["email".into(), "missing".into()],
            salt: "pepper".into(),
            filter: None,
            keys: vec!["id".into()],
        };
        let mut person = record(json!({"id": 1, "email": "a@b.c", "phone": "123"}));
        controls.apply(&mut person);
        let expected = hex::encode(Sha256::digest(b"peppera@b.c"));
        assert_eq!(person, record(json!({"id": 1, "email": expected})));
        assert!(!format!("{controls:?}").contains("pepper"));
    }
}
