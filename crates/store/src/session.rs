//! Staff sessions, stored by the SHA-256 of their token.

use sqlx::{Any, Executor};

use crate::StoreResult;

/// A stored session joined with the account it belongs to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id_hash: String,
    pub staff_id: i64,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

/// Store a new session.
#[allow(clippy::too_many_arguments)]
pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id_hash: &str,
    staff_id: i64,
    csrf_token: &str,
    now: i64,
    expires_at: i64,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO staff_sessions (id_hash, staff_id, csrf_token, created_at, last_seen_at, expires_at, ip, user_agent) \
         VALUES ($1, $2, $3, $4, $4, $5, $6, $7)",
    )
    .bind(id_hash)
    .bind(staff_id)
    .bind(csrf_token)
    .bind(now)
    .bind(expires_at)
    .bind(ip)
    .bind(user_agent)
    .execute(exec)
    .await?;
    Ok(())
}

/// Find a session by token hash.
pub async fn find<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id_hash: &str,
) -> StoreResult<Option<SessionRow>> {
    Ok(sqlx::query_as(
        "SELECT id_hash, staff_id, csrf_token, created_at, last_seen_at, expires_at FROM staff_sessions WHERE id_hash = $1",
    )
    .bind(id_hash)
    .fetch_optional(exec)
    .await?)
}

/// Record activity (sliding idle timeout).
pub async fn touch<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id_hash: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE staff_sessions SET last_seen_at = $1 WHERE id_hash = $2")
        .bind(now)
        .bind(id_hash)
        .execute(exec)
        .await?;
    Ok(())
}

/// End one session.
pub async fn delete<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id_hash: &str,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM staff_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(exec)
        .await?;
    Ok(())
}

/// End every session of an account except `keep` (the hash of the current one, if any).
pub async fn delete_for_staff<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    staff_id: i64,
    keep: Option<&str>,
) -> StoreResult<u64> {
    let r = sqlx::query("DELETE FROM staff_sessions WHERE staff_id = $1 AND id_hash <> $2")
        .bind(staff_id)
        .bind(keep.unwrap_or(""))
        .execute(exec)
        .await?;
    Ok(r.rows_affected())
}

/// Remove sessions past their absolute expiry or idle for longer than `idle_ms`.
pub async fn delete_expired<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    now: i64,
    idle_ms: i64,
) -> StoreResult<u64> {
    let r = sqlx::query("DELETE FROM staff_sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
        .bind(now)
        .bind(now - idle_ms)
        .execute(exec)
        .await?;
    Ok(r.rows_affected())
}
