//! Staff API tokens, stored by the SHA-256 of the secret.

use sqlx::{Any, Executor};

use crate::StoreResult;

/// A stored token (never the secret itself).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiTokenRow {
    pub id: i64,
    pub staff_id: i64,
    pub name: String,
    pub token_prefix: String,
    pub scopes: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str =
    "id, staff_id, name, token_prefix, scopes, created_at, last_used_at, revoked_at";

/// Store a new token.
#[allow(clippy::too_many_arguments)]
pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    staff_id: i64,
    name: &str,
    prefix: &str,
    hash: &str,
    scopes: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO api_tokens (id, staff_id, name, token_prefix, token_hash, scopes, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(staff_id)
    .bind(name)
    .bind(prefix)
    .bind(hash)
    .bind(scopes)
    .bind(now)
    .execute(exec)
    .await?;
    Ok(())
}

/// Find a live (not revoked) token by hash, only if its staff account is enabled.
pub async fn find_live<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    hash: &str,
) -> StoreResult<Option<ApiTokenRow>> {
    Ok(sqlx::query_as(
        "SELECT t.id, t.staff_id, t.name, t.token_prefix, t.scopes, t.created_at, t.last_used_at, t.revoked_at \
         FROM api_tokens t JOIN staff s ON s.id = t.staff_id \
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND s.disabled_at IS NULL",
    )
    .bind(hash)
    .fetch_optional(exec)
    .await?)
}

/// Record use (at most once a minute, to keep reads cheap).
pub async fn touch<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)")
        .bind(now)
        .bind(id)
        .bind(now - 60_000)
        .execute(exec)
        .await?;
    Ok(())
}

/// Every token, newest first.
pub async fn list<'e, E: Executor<'e, Database = Any>>(exec: E) -> StoreResult<Vec<ApiTokenRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api_tokens ORDER BY id DESC"
    ))
    .fetch_all(exec)
    .await?)
}

/// Revoke a token; NotFound when it does not exist or is already revoked.
pub async fn revoke<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    now: i64,
) -> StoreResult<()> {
    let r =
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(exec)
            .await?;
    if r.rows_affected() == 0 {
        return Err(crate::StoreError::NotFound);
    }
    Ok(())
}
