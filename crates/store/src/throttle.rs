//! Failure counters for sign-in throttling, keyed by a caller-chosen string (per IP, per account+IP).

use sqlx::{Any, Executor};

use crate::StoreResult;

/// A throttle counter.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ThrottleRow {
    pub key: String,
    pub failures: i64,
    pub last_failure_at: i64,
    pub blocked_until: i64,
}

/// Read a counter.
pub async fn find<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    key: &str,
) -> StoreResult<Option<ThrottleRow>> {
    Ok(sqlx::query_as(
        "SELECT key, failures, last_failure_at, blocked_until FROM login_throttle WHERE key = $1",
    )
    .bind(key)
    .fetch_optional(exec)
    .await?)
}

/// Store a counter.
pub async fn put<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    row: &ThrottleRow,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO login_throttle (key, failures, last_failure_at, blocked_until) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, last_failure_at = excluded.last_failure_at, \
         blocked_until = excluded.blocked_until",
    )
    .bind(&row.key)
    .bind(row.failures)
    .bind(row.last_failure_at)
    .bind(row.blocked_until)
    .execute(exec)
    .await?;
    Ok(())
}

/// Forget a counter (after a successful sign-in).
pub async fn clear<'e, E: Executor<'e, Database = Any>>(exec: E, key: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM login_throttle WHERE key = $1")
        .bind(key)
        .execute(exec)
        .await?;
    Ok(())
}

/// Forget counters untouched since `before`.
pub async fn delete_stale<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    before: i64,
) -> StoreResult<u64> {
    let r =
        sqlx::query("DELETE FROM login_throttle WHERE last_failure_at < $1 AND blocked_until < $1")
            .bind(before)
            .execute(exec)
            .await?;
    Ok(r.rows_affected())
}

/// Forget every counter whose key starts with `prefix` (account deletion).
pub async fn delete_prefix<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    prefix: &str,
) -> StoreResult<u64> {
    let r = sqlx::query("DELETE FROM login_throttle WHERE key LIKE $1 ESCAPE '\\'")
        .bind(format!("{}%", crate::like_escape(prefix)))
        .execute(exec)
        .await?;
    Ok(r.rows_affected())
}

/// Count one event for `key` in the fixed window starting at `window_start` (a new window resets
/// the count) and return the count including this one. One atomic statement: concurrent callers
/// never both see room for the last slot.
pub async fn bump_window<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    key: &str,
    window_start: i64,
    window_end: i64,
) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO login_throttle (key, failures, last_failure_at, blocked_until) VALUES ($1, 1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET \
         failures = CASE WHEN login_throttle.last_failure_at < $2 THEN 1 ELSE login_throttle.failures + 1 END, \
         last_failure_at = $2, blocked_until = $3 RETURNING failures",
    )
    .bind(key)
    .bind(window_start)
    .bind(window_end)
    .fetch_one(exec)
    .await?)
}
