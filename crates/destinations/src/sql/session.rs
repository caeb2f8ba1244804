//! What a SQL database must offer the core: its dialect (type names, parameters, key lists,
//! the few statements whose syntax differs) and a session that runs statements, plus the one
//! step each does its own way, loading a page of rows (DuckDB's Arrow appender, PostgreSQL's
//! binary COPY).

use async_trait::async_trait;
use pipedrive_engine::schema::{Column, ColumnType};
use pipedrive_engine::{Batch, DestinationError, TableRef};

/// A value read back: the core only selects booleans, integers and text (casting the rest).
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    Null,
    Bool(bool),
    Int(i64),
    Text(String),
}

impl SqlValue {
    pub fn text(self) -> Option<String> {
        match self {
            SqlValue::Text(text) => Some(text),
            _ => None,
        }
    }

    pub fn int(&self) -> Option<i64> {
        match self {
            SqlValue::Int(n) => Some(*n),
            _ => None,
        }
    }
}

/// One bound parameter.
#[derive(Clone, Copy, Debug)]
pub enum Param<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
}

/// A list of keys a statement tests membership in: sent as one array parameter or loaded into
/// a temporary table, as the dialect prefers; either way never spelled out in the SQL text.
#[derive(Clone, Debug)]
pub enum Keys {
    Int(Vec<i64>),
    Text(Vec<String>),
}

/// A bound value, in the order its placeholder appears in the SQL text.
#[derive(Debug)]
pub enum Bound<'a> {
    Param(Param<'a>),
    Keys(Keys),
}

/// SQL text with its bound values, built through the dialect so placeholders and key lists
/// are spelled its way.
#[derive(Debug, Default)]
pub struct Statement<'a> {
    pub sql: String,
    pub bound: Vec<Bound<'a>>,
}

impl<'a> Statement<'a> {
    /// A statement with nothing bound.
    pub fn plain(sql: String) -> Statement<'a> {
        Statement {
            sql,
            bound: Vec::new(),
        }
    }

    /// A placeholder for a text parameter, cast to `sql_type` (a dialect type name).
    pub fn text<S: Session>(&mut self, value: Option<&'a str>, sql_type: &str) -> String {
        self.bound.push(Bound::Param(Param::Text(value)));
        S::placeholder(self.bound.len(), Param::Text(value), sql_type)
    }

    /// A placeholder for an integer parameter.
    pub fn int<S: Session>(&mut self, value: Option<i64>) -> String {
        self.bound.push(Bound::Param(Param::Int(value)));
        S::placeholder(
            self.bound.len(),
            Param::Int(value),
            S::sql_type(ColumnType::BigInt),
        )
    }

    /// `expr` is one of `keys`, each cast to `sql_type`: a boolean expression.
    pub fn one_of<S: Session>(&mut self, expr: &str, keys: Keys, sql_type: &str) -> String {
        let lists = self
            .bound
            .iter()
            .filter(|b| matches!(b, Bound::Keys(_)))
            .count();
        let sql = S::one_of(expr, self.bound.len() + 1, lists, &keys, sql_type);
        self.bound.push(Bound::Keys(keys));
        sql
    }

    /// The scalar parameters, in order.
    pub fn params(&self) -> impl Iterator<Item = Param<'a>> + '_ {
        self.bound.iter().filter_map(|b| match b {
            Bound::Param(param) => Some(*param),
            Bound::Keys(_) => None,
        })
    }
}

/// One page on its way into its table, its columns already created or widened.
pub struct Load<'a> {
    pub batch: &'a Batch<'a>,
    /// The table, under its stored names.
    pub table: &'a TableRef,
    /// The table's name as SQL, qualified and quoted.
    pub name: &'a str,
    /// The batch's loaded columns: the index into a row, the column under its stored name
    /// and with the table's (possibly wider) type.
    pub columns: &'a [(usize, Column)],
    /// Each merge key's place in `columns`, `_valid_from` last for a history table.
    pub key_positions: &'a [usize],
    /// Every column the table has, in its order.
    pub table_columns: &'a [Column],
    /// `_synced_at` for every row, microseconds since the epoch.
    pub synced_at_us: i64,
}

impl Load<'_> {
    /// The merge key's columns (stored names), in key order.
    pub fn keys(&self) -> impl Iterator<Item = &Column> + '_ {
        self.key_positions.iter().map(|&k| &self.columns[k].1)
    }
}

/// A database the SQL core writes through.
#[async_trait]
pub trait Session: Send + Sized + 'static {
    /// The product's name, which every error message starts with.
    const PRODUCT: &'static str;
    /// Whether a new table gets a plain index on its key and parent columns (PostgreSQL's
    /// deletes by key need one; DuckDB bounds them by the page's key range instead).
    const INDEXES_KEYS: bool;

    /// The type a column of `ty` is created with.
    fn sql_type(ty: ColumnType) -> &'static str;
    /// The column type of a declared SQL type, as `information_schema` spells it.
    fn column_type(declared: &str) -> ColumnType;
    /// The name an identifier is stored under (PostgreSQL shortens long ones).
    fn stored_name(name: &str) -> String {
        name.to_owned()
    }
    /// The placeholder for the `number`th bound value (1-based), cast to `sql_type`.
    fn placeholder(number: usize, param: Param<'_>, sql_type: &str) -> String;
    /// `expr` is one of the keys bound `number`th, the statement's `list`th key list (0-based).
    fn one_of(expr: &str, number: usize, list: usize, keys: &Keys, sql_type: &str) -> String;
    /// `ALTER TABLE name ALTER COLUMN column` to `sql_type`, converting its values.
    fn change_type(table: &str, column: &str, sql_type: &str) -> String;
    /// `expr`, of one column type, as `sql_type`, for copying rows between tables.
    fn convert(expr: &str, sql_type: &str) -> String;
    /// A timestamp `expr` as microseconds since the epoch, a BIGINT.
    fn epoch_us(expr: &str) -> String;

    /// Statements that create or replace the analytics view `view` in `schema` (stored
    /// names) as `select`, which returns `returns` (`"name" TYPE, ...`), described by `comment`.
    fn create_view(
        &self,
        schema: &str,
        view: &str,
        select: &str,
        returns: &str,
        comment: &str,
    ) -> String;

    /// `"schema"` as statements name it.
    fn schema_sql(&self, schema: &str) -> String;
    /// `"schema"."table"` as statements name it (stored names).
    fn table_sql(&self, table: &TableRef) -> String;
    /// A short name for messages, never with a password.
    fn describe(&self) -> String;

    /// Runs statements without parameters.
    async fn execute(&mut self, context: &str, sql: &str) -> Result<(), DestinationError>;
    /// Runs one statement; returns the rows it changed.
    async fn run(
        &mut self,
        context: &str,
        statement: Statement<'_>,
    ) -> Result<u64, DestinationError>;
    /// Runs one query.
    async fn query(
        &mut self,
        context: &str,
        statement: Statement<'_>,
    ) -> Result<Vec<Vec<SqlValue>>, DestinationError>;

    async fn begin(&mut self) -> Result<(), DestinationError>;
    async fn commit(&mut self) -> Result<(), DestinationError>;
    /// Rolls back; the session forgets what it knew of tables the transaction touched.
    async fn rollback(&mut self);

    /// Another session on the same database, for a second writer (`None`: one writer).
    async fn fork(&mut self) -> Result<Option<Self>, DestinationError>;

    /// Deletes the rows of the page's keys (for a history table, closes each key's current
    /// version) and inserts the page's rows.
    async fn merge(&mut self, load: &Load<'_>) -> Result<(), DestinationError>;

    /// A table was created, empty, by this session, with `width` columns.
    fn created(&mut self, _table: &TableRef, _width: usize) -> Result<(), DestinationError> {
        Ok(())
    }
    /// A table gained columns and is now `width` wide.
    fn widened(&mut self, _width: usize) -> Result<(), DestinationError> {
        Ok(())
    }
    /// Rows this session did not merge itself went into `table` (or it went away).
    fn forget(&mut self, _table: &TableRef) {}
    /// Whether `table` may hold rows whose `column` is one of `parents` (a session that
    /// knows it cannot spares the delete).
    fn may_hold(&self, _table: &TableRef, _column: &str, _parents: &[i64]) -> bool {
        true
    }
}
