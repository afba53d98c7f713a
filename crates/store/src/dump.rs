//! Engine-neutral table dumps for backup and restore: each row is a JSON object whose values are
//! integers, strings or null, keyed by column name. A dump from SQLite loads into PostgreSQL and
//! the reverse.

use serde_json::{Map, Value};
use sqlx::{AnyConnection, Row};

use crate::schema::{self, Column, ColumnKind};
use crate::{Db, Engine, StoreError, StoreResult, Tx};

/// Start a read-only transaction that sees one consistent snapshot of the whole database.
pub async fn snapshot(db: &Db) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
    let mut tx = db.read().begin().await?;
    if db.engine() == Engine::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
    }
    Ok(tx)
}

/// Read every row of `table`, ordered by primary key, calling `each` per row.
pub async fn read_table(
    conn: &mut AnyConnection,
    engine: Engine,
    table: &str,
    mut each: impl FnMut(Map<String, Value>) -> std::io::Result<()>,
) -> StoreResult<u64> {
    let cols = schema::columns(conn, engine, table).await?;
    let t = schema::describe(conn, engine, table).await?;
    let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
    let order = if t.primary_key.is_empty() {
        names.join(", ")
    } else {
        t.primary_key.join(", ")
    };
    let sql = format!("SELECT {} FROM {table} ORDER BY {order}", names.join(", "));
    let rows = sqlx::query(&sql).fetch_all(&mut *conn).await?;
    let mut n = 0;
    for row in rows {
        let mut obj = Map::new();
        for (i, c) in cols.iter().enumerate() {
            let v = match c.kind {
                ColumnKind::Int => row.try_get::<Option<i64>, _>(i)?.map(Value::from),
                ColumnKind::Text => row.try_get::<Option<String>, _>(i)?.map(Value::from),
            };
            obj.insert(c.name.clone(), v.unwrap_or(Value::Null));
        }
        each(obj).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        n += 1;
    }
    Ok(n)
}

/// Insert one dumped row into `table`, checking that its values fit the target columns.
pub async fn insert_row(
    tx: &mut Tx,
    table: &str,
    cols: &[Column],
    row: &Map<String, Value>,
) -> StoreResult<()> {
    for key in row.keys() {
        if !cols.iter().any(|c| &c.name == key) {
            return Err(StoreError::Corrupt(format!("{table} has no column {key}")));
        }
    }
    let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
    let params: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        names.join(", "),
        params.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for c in cols {
        let v = row.get(&c.name).unwrap_or(&Value::Null);
        let bad =
            || StoreError::Corrupt(format!("{table}.{} holds {v}, which does not fit", c.name));
        q = match (c.kind, v) {
            (ColumnKind::Int, Value::Null) => q.bind(None::<i64>),
            (ColumnKind::Int, Value::Number(n)) => q.bind(n.as_i64().ok_or_else(bad)?),
            (ColumnKind::Text, Value::Null) => q.bind(None::<String>),
            (ColumnKind::Text, Value::String(s)) => q.bind(s.clone()),
            _ => return Err(bad()),
        };
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Number of rows in a table.
pub async fn count(conn: &mut AnyConnection, table: &str) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(conn)
        .await?)
}

/// Delete every row of a table (restore clears bookkeeping tables this way).
pub async fn clear(tx: &mut Tx, table: &str) -> StoreResult<u64> {
    Ok(sqlx::query(&format!("DELETE FROM {table}"))
        .execute(&mut **tx)
        .await?
        .rows_affected())
}
