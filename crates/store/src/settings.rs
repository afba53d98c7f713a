//! Site settings as key/value rows, and the one-time setup tokens.

use sqlx::{Any, Executor};

use crate::StoreResult;

/// Bumped by every settings write in this process, so in-memory copies of the settings know
/// they are old (see `yiren_core::settings::rows`).
static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Count a settings write once more — after the commit of a transaction that wrote settings, so
/// a copy read while it was still open is not taken for current.
pub fn note_write() {
    WRITES.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

/// How many settings writes this process has made.
pub fn writes() -> u64 {
    WRITES.load(std::sync::atomic::Ordering::Acquire)
}

/// Every setting, as (key, value) pairs.
pub async fn all<'e, E: Executor<'e, Database = Any>>(
    exec: E,
) -> StoreResult<Vec<(String, String)>> {
    Ok(
        sqlx::query_as("SELECT key, value FROM settings ORDER BY key")
            .fetch_all(exec)
            .await?,
    )
}

/// Insert or replace one setting.
pub async fn put<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    key: &str,
    value: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(key)
    .bind(value)
    .bind(now)
    .execute(exec)
    .await?;
    WRITES.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    Ok(())
}

/// Store a new setup token (by hash). Earlier unused ones stay valid until one is used.
pub async fn add_setup_token<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    token_hash: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO setup_tokens (token_hash, created_at) VALUES ($1, $2)")
        .bind(token_hash)
        .bind(now)
        .execute(exec)
        .await?;
    Ok(())
}

/// Forget every unused setup token (once the owner exists none may work).
pub async fn drop_unused_setup_tokens(tx: &mut crate::Tx) -> StoreResult<u64> {
    let r = sqlx::query("DELETE FROM setup_tokens WHERE used_at IS NULL")
        .execute(&mut **tx)
        .await?;
    Ok(r.rows_affected())
}

/// True when an unused setup token has this hash.
pub async fn setup_token_valid<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    token_hash: &str,
) -> StoreResult<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM setup_tokens WHERE token_hash = $1 AND used_at IS NULL",
    )
    .bind(token_hash)
    .fetch_one(exec)
    .await?;
    Ok(n > 0)
}

/// Mark the token used; false when it was unknown or already used (so two racing setups cannot both win).
pub async fn consume_setup_token(
    tx: &mut crate::Tx,
    token_hash: &str,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE setup_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
    )
    .bind(now)
    .bind(token_hash)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// One setting's value, if set.
pub async fn get<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    key: &str,
) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(exec)
            .await?,
    )
}
