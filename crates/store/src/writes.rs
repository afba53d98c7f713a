//! Writes whose results nobody reads, sent to the database together.
//!
//! Language: a *write* is one statement and its values; [`Writes`] keeps them in order and
//! [`Writes::run`] executes them in the caller's transaction. A function that only inserts (a
//! timeline entry, a message, an outbox event) has an `*_into` form that adds its write here
//! instead of running it, so a caller writing many rows sends them at once.
//!
//! Why: SQLite runs each connection on a worker thread of its own, and every statement is a
//! round trip to that thread and back — about 50 µs on a loaded two-core machine, more than
//! SQLite takes for the insert itself. With one writer, those round trips are what queues the
//! orders behind each other. sqlx's SQLite driver runs a query of several statements in one
//! round trip and binds `$N` by its absolute index across them, so [`Writes::run`] joins the
//! writes into one query, each write's `$1…` renumbered past the values before it.
//! PostgreSQL prepares one statement per query: there the writes run one by one, in order.
//!
//! A write sees the rows of the writes before it; a read made between [`Writes`]' creation and
//! its run does not see them — run it first.

use sqlx::{Any, Executor};

use crate::{StoreResult, Tx};

/// A value bound to a write.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Value::Int(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(Some(v.to_string()))
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(Some(v.clone()))
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(Some(v))
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        Value::Text(v.map(str::to_string))
    }
}

/// One write: its SQL (placeholders `$1…` of its own) and values.
#[derive(Debug, Clone)]
pub struct Write {
    sql: String,
    values: Vec<Value>,
}

impl Write {
    /// A write of `sql`, values bound next.
    pub fn new(sql: impl Into<String>) -> Self {
        Write {
            sql: sql.into(),
            values: vec![],
        }
    }

    /// Bind the next value.
    pub fn bind(&mut self, v: impl Into<Value>) -> &mut Self {
        self.values.push(v.into());
        self
    }

    /// Run this write alone, now; how many rows it changed.
    pub async fn execute<'e, E: Executor<'e, Database = Any>>(self, exec: E) -> StoreResult<u64> {
        let mut q = sqlx::query(&self.sql);
        for v in self.values {
            q = match v {
                Value::Int(i) => q.bind(i),
                Value::Text(t) => q.bind(t),
            };
        }
        Ok(q.execute(exec).await?.rows_affected())
    }
}

/// Writes waiting to be run, in order.
#[derive(Debug, Default)]
pub struct Writes {
    writes: Vec<Write>,
}

impl Writes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a write; bind its values on the returned [`Write`].
    pub fn add(&mut self, sql: impl Into<String>) -> &mut Write {
        self.push(Write::new(sql))
    }

    /// Add a write made elsewhere.
    pub fn push(&mut self, w: Write) -> &mut Write {
        self.writes.push(w);
        self.writes.last_mut().expect("just pushed")
    }

    /// How many writes wait.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Run every waiting write in `tx`, in order, and forget them. The first error stops the
    /// rest; the caller's transaction (or savepoint) undoes what ran before it.
    pub async fn run(&mut self, tx: &mut Tx) -> StoreResult<()> {
        let writes = std::mem::take(&mut self.writes);
        if writes.len() > 1 && crate::engine::many_statements_per_query(tx) {
            let (sql, values) = joined(&writes);
            Write { sql, values }.execute(&mut **tx).await?;
            return Ok(());
        }
        for w in writes {
            w.execute(&mut **tx).await?;
        }
        Ok(())
    }
}

/// The writes as one query of several statements, placeholders renumbered in sequence.
fn joined(writes: &[Write]) -> (String, Vec<Value>) {
    let mut sql = String::new();
    let mut values = vec![];
    for w in writes {
        if !sql.is_empty() {
            sql.push_str(";\n");
        }
        renumber(&w.sql, values.len(), &mut sql);
        values.extend(w.values.iter().cloned());
    }
    (sql, values)
}

/// Copy `sql` to `out` with every placeholder `$N` outside quotes and comments made `$N+offset`.
fn renumber(sql: &str, offset: usize, out: &mut String) {
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let skip_to = match c {
            b'\'' | b'"' => {
                // A quoted string or name; a doubled quote inside is the quote itself.
                let mut j = i + 1;
                loop {
                    match b.get(j) {
                        None => break j,
                        Some(&q) if q == c && b.get(j + 1) == Some(&c) => j += 2,
                        Some(&q) if q == c => break j + 1,
                        Some(_) => j += 1,
                    }
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                sql[i..].find('\n').map_or(b.len(), |n| i + n + 1)
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                sql[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2)
            }
            b'$' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let mut j = i + 1;
                while b.get(j).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                }
                let n: usize = sql[i + 1..j].parse().expect("digits");
                out.push('$');
                out.push_str(&(n + offset).to_string());
                i = j;
                continue;
            }
            _ => {
                // Copy up to the next byte that may start something above.
                // (Bytes, not chars: `i` may start a multi-byte character; what is searched for
                // is ASCII, so where it is found is a character boundary.)
                let j = b[i + 1..]
                    .iter()
                    .position(|x| matches!(x, b'\'' | b'"' | b'-' | b'/' | b'$'))
                    .map_or(b.len(), |n| i + 1 + n);
                out.push_str(&sql[i..j]);
                i = j;
                continue;
            }
        };
        out.push_str(&sql[i..skip_to]);
        i = skip_to;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renumbered(sql: &str, offset: usize) -> String {
        let mut out = String::new();
        renumber(sql, offset, &mut out);
        out
    }

    #[test]
    fn placeholders_move_past_the_values_before_them_and_nothing_else_changes() {
        assert_eq!(
            renumbered("INSERT INTO t (a, b) VALUES ($1, $2), ($10, $2)", 7),
            "INSERT INTO t (a, b) VALUES ($8, $9), ($17, $9)"
        );
        // Quotes, quoted names and comments are copied as they are.
        let odd = "SELECT '$1 it''s $2', \"$3\"\"x\" -- $4\n, $5 /* $6 */ - $7, a-b/c FROM t WHERE x = $1";
        assert_eq!(
            renumbered(odd, 3),
            "SELECT '$1 it''s $2', \"$3\"\"x\" -- $4\n, $8 /* $6 */ - $10, a-b/c FROM t WHERE x = $4"
        );
        assert_eq!(renumbered("€ 中文 $1 ü", 1), "€ 中文 $2 ü");
        assert_eq!(renumbered("a '$1", 1), "a '$1");
        assert_eq!(renumbered("$", 1), "$");
        assert_eq!(renumbered("", 1), "");
    }

    #[test]
    fn writes_join_into_one_query_with_values_in_order() {
        let mut w = Writes::new();
        w.add("INSERT INTO a (x, y) VALUES ($1, $2)")
            .bind(1_i64)
            .bind("one");
        w.add("UPDATE b SET z = $2 WHERE id = $1")
            .bind(Some(2_i64))
            .bind(None::<&str>);
        let (sql, values) = joined(&w.writes);
        assert_eq!(
            sql,
            "INSERT INTO a (x, y) VALUES ($1, $2);\nUPDATE b SET z = $4 WHERE id = $3"
        );
        assert_eq!(
            values,
            vec![
                Value::Int(Some(1)),
                Value::Text(Some("one".into())),
                Value::Int(Some(2)),
                Value::Text(None)
            ]
        );
    }
}
