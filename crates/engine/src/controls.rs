//! Per-stream data controls, applied to each record after custom fields are named and before
//! anything is stored: a row filter, excluded columns and salted SHA-256 hashes.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::schema::{Column, ColumnType, to_text};

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

    /// The columns `declared` loads as under these controls: excluded ones gone, hashed ones
    /// text (their hex digest).
    pub fn declare(&self, declared: Vec<Column>) -> Vec<Column> {
        let every = |columns: &[String]| columns.iter().any(|c| c == EVERY_COLUMN);
        let (exclude_all, hash_all) = (every(&self.exclude), every(&self.hash));
        declared
            .into_iter()
            .filter(|column| {
                let key = self.keys.contains(&column.name);
                !self.exclude.contains(&column.name) && (key || !exclude_all)
            })
            .map(|column| {
                let key = self.keys.contains(&column.name);
                if self.hash.contains(&column.name) || (hash_all && !key) {
                    Column::new(&column.name, ColumnType::Text)
                } else {
                    column
                }
            })
            .collect()
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

impl Controls {
    /// Checks the controls against the stream's declared columns, before any page is read:
    /// every column they name exists, and every filter value can match its column's type. A
    /// typo would otherwise load a hashed column in clear, or filter every row away, silently.
    /// `field_names` maps custom fields' names (as Pipedrive shows them) to their columns.
    /// The message starts with the option at fault (`hash_columns: ...`).
    pub fn check(
        &self,
        declared: &[Column],
        field_names: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        let columns: BTreeMap<&str, Option<Holds>> = declared
            .iter()
            .map(|column| (column.name.as_str(), Holds::of_type(column.ty)))
            .collect();
        let missing = |option: &str, name: &str| {
            if columns.contains_key(name) {
                return Ok(());
            }
            let field = field_names
                .iter()
                .find(|(field, _)| field.eq_ignore_ascii_case(name));
            let hint = match (
                field,
                crate::catalog::closest(name, columns.keys().copied()).first(),
            ) {
                (Some((_, column)), _) => format!(
                    "that is the field's name in Pipedrive, and its column is `{column}`: write `{column}`"
                ),
                (None, Some(close)) => format!("did you mean `{close}`?"),
                (None, None) => "use a column name of the stream's table".to_owned(),
            };
            Err(format!(
                "{option}: `{name}` is not a column of this stream; {hint}"
            ))
        };
        for (option, names) in [
            ("exclude_columns", &self.exclude),
            ("hash_columns", &self.hash),
        ] {
            for name in names.iter().filter(|name| *name != EVERY_COLUMN) {
                missing(option, name)?;
            }
        }
        for condition in self.filter.iter().flat_map(|f| &f.conditions) {
            missing("filter", &condition.field)?;
            let held = columns.get(condition.field.as_str()).copied().flatten();
            for value in &condition.values {
                if let Some(problem) = Holds::mismatch(held, value) {
                    return Err(format!("filter: `{condition}` {problem}"));
                }
            }
        }
        Ok(())
    }
}

/// What a column's values are, as the filter compares them.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Holds {
    Numbers,
    Text,
    Bools,
}

impl Holds {
    /// What a declared column holds; `None` where any value may match (JSON, untyped).
    fn of_type(ty: ColumnType) -> Option<Holds> {
        match ty {
            ColumnType::BigInt | ColumnType::Double => Some(Holds::Numbers),
            ColumnType::Text | ColumnType::Date | ColumnType::Timestamp => Some(Holds::Text),
            ColumnType::Boolean => Some(Holds::Bools),
            ColumnType::Json | ColumnType::Null => None,
        }
    }

    /// Why `expected` can never match a column holding `held`, if it cannot.
    fn mismatch(held: Option<Holds>, expected: &Value) -> Option<String> {
        match (held?, expected) {
            (Holds::Numbers, Value::String(text)) if text.trim().parse::<f64>().is_err() => Some(
                format!("compares a column of numbers with the text '{text}', which matches nothing: write a number without quotes (e.g. 1000)"),
            ),
            (Holds::Text, Value::Number(number)) => Some(format!(
                "compares a column of text with the number {number}, which matches nothing: quote the text you mean (e.g. '{number}')"
            )),
            (Holds::Numbers | Holds::Text, Value::Bool(flag)) => Some(format!(
                "compares a column of {} with {flag}, which matches nothing",
                if held == Some(Holds::Numbers) { "numbers" } else { "text" }
            )),
            (Holds::Bools, Value::Number(_) | Value::String(_)) => Some(
                "compares a column of true/false values with something else, which matches nothing: write true or false".to_owned(),
            ),
            _ => None,
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

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = |value: &Value| match value {
            Value::String(text) => format!("'{text}'"),
            other => other.to_string(),
        };
        let op = match self.op {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::In => {
                let values: Vec<String> = self.values.iter().map(value).collect();
                return write!(f, "{} in ({})", self.field, values.join(", "));
            }
        };
        write!(f, "{} {op} {}", self.field, value(&self.values[0]))
    }
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
    fn checks_name_missing_columns_and_values_that_cannot_match() {
        let declared = [
            Column::new("id", ColumnType::BigInt),
            Column::new("name", ColumnType::Text),
            Column::new("value", ColumnType::Double),
            Column::new("status", ColumnType::Text),
            Column::new("active", ColumnType::Boolean),
            Column::new("favourite_colour", ColumnType::Json),
        ];
        let names =
            BTreeMap::from([("Favourite colour".to_owned(), "favourite_colour".to_owned())]);
        let check = |exclude: &[&str], hash: &[&str], filter: Option<&str>| {
            Controls {
                exclude: exclude.iter().map(|c| (*c).to_owned()).collect(),
                hash: hash.iter().map(|c| (*c).to_owned()).collect(),
                filter: filter.map(|f| f.parse().unwrap()),
                ..Controls::default()
            }
            .check(&declared, &names)
        };
        assert_eq!(
            check(
                &["status"],
                &["name", "*"],
                Some("value > 3 and status in ('open', 'won') and active = true")
            ),
            Ok(())
        );
        assert_eq!(
            check(&[], &["nmae"], None).unwrap_err(),
            "hash_columns: `nmae` is not a column of this stream; did you mean `name`?"
        );
        assert!(
            check(&["Favourite colour"], &[], None)
                .unwrap_err()
                .contains("its column is `favourite_colour`")
        );
        assert!(
            check(&[], &[], Some("statsu = 'open'"))
                .unwrap_err()
                .starts_with("filter: `statsu`")
        );
        assert!(
            check(&["zzzzzzzz"], &[], None)
                .unwrap_err()
                .contains("use a column name")
        );
        for (filter, problem) in [
            (
                "value > 'abc'",
                "filter: `value > 'abc'` compares a column of numbers with the text 'abc'",
            ),
            ("status = 3", "compares a column of text with the number 3"),
            ("active in (1, 2)", "true/false"),
            ("value = true", "compares a column of numbers with true"),
        ] {
            let error = check(&[], &[], Some(filter)).unwrap_err();
            assert!(error.contains(problem), "{filter}: {error}");
        }
        // Numbers written as text still compare as numbers, and JSON columns with anything.
        assert_eq!(
            check(&[], &[], Some("value >= '7' and favourite_colour = 3")),
            Ok(())
        );
    }

    #[test]
    fn every_column_but_the_keys() {
        let controls = |exclude: bool| Controls {
            exclude: if exclude {
                vec![EVERY_COLUMN.into()]
            } else {
                Vec::new()
            },
            hash: if exclude {
                Vec::new()
            } else {
                vec![EVERY_COLUMN.into()]
            },
            salt: "pepper".into(),
            keys: vec!["person_id".into(), "position".into()],
            filter: None,
        };
        let email =
            record(json!({"person_id": 7, "position": 0, "value": "a@b.c", "primary": true}));
        let mut excluded = email.clone();
        controls(true).apply(&mut excluded);
        assert_eq!(excluded, record(json!({"person_id": 7, "position": 0})));
        let mut hashed = email;
        controls(false).apply(&mut hashed);
        assert_eq!(
            hashed["value"],
            json!(hex::encode(Sha256::digest(b"peppera@b.c")))
        );
        assert_eq!(
            (&hashed["person_id"], &hashed["position"]),
            (&json!(7), &json!(0))
        );
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
