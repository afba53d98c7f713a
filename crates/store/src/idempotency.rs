//! Stored responses for `Idempotency-Key` replays.

use sqlx::{Any, Executor};

use crate::StoreResult;

/// A stored key. `status == 0` means the first request is still running.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IdempotencyRow {
    pub request_hash: String,
    pub status: i64,
    pub headers: String,
    pub body: String,
    pub created_at: i64,
}

/// Claim a key for a request; false when the key exists already.
pub async fn claim<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    token_id: i64,
    key: &str,
    request_hash: &str,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "INSERT INTO idempotency_keys (api_token_id, idem_key, request_hash, status, headers, body, created_at) \
         VALUES ($1, $2, $3, 0, '', '', $4) ON CONFLICT (api_token_id, idem_key) DO NOTHING",
    )
    .bind(token_id)
    .bind(key)
    .bind(request_hash)
    .bind(now)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Read a key.
pub async fn find<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    token_id: i64,
    key: &str,
) -> StoreResult<Option<IdempotencyRow>> {
    Ok(sqlx::query_as(
        "SELECT request_hash, status, headers, body, created_at FROM idempotency_keys WHERE api_token_id = $1 AND idem_key = $2",
    )
    .bind(token_id)
    .bind(key)
    .fetch_optional(exec)
    .await?)
}

/// Store the finished response.
pub async fn complete<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    token_id: i64,
    key: &str,
    status: i64,
    headers: &str,
    body: &str,
) -> StoreResult<()> {
    sqlx::query("UPDATE idempotency_keys SET status = $1, headers = $2, body = $3 WHERE api_token_id = $4 AND idem_key = $5")
        .bind(status)
        .bind(headers)
        .bind(body)
        .bind(token_id)
        .bind(key)
        .execute(exec)
        .await?;
    Ok(())
}

/// Drop a key (the request failed on the server, so a retry may run it again).
pub async fn release<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    token_id: i64,
    key: &str,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM idempotency_keys WHERE api_token_id = $1 AND idem_key = $2")
        .bind(token_id)
        .bind(key)
        .execute(exec)
        .await?;
    Ok(())
}

/// Remove keys older than `before`.
pub async fn delete_older_than<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    before: i64,
) -> StoreResult<u64> {
    let r = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(before)
        .execute(exec)
        .await?;
    Ok(r.rows_affected())
}
