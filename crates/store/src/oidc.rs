//! The OpenID Connect provider's tables: signing keys, client apps, authorization codes, tokens
//! and consents.

use sqlx::{Any, Executor};

use crate::StoreResult;

/// A signing key (private part encrypted by the caller).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    pub private_key: String,
    pub public_jwk: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

/// Store a new key and retire every other (they stay published for verification).
pub async fn rotate_key(conn: &mut sqlx::AnyConnection, k: &KeyRow) -> StoreResult<()> {
    sqlx::query("UPDATE oidc_keys SET retired_at = $1 WHERE retired_at IS NULL")
        .bind(k.created_at)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO oidc_keys (kid, alg, private_key, public_jwk, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&k.kid)
    .bind(&k.alg)
    .bind(&k.private_key)
    .bind(&k.public_jwk)
    .bind(k.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every key, newest first.
pub async fn keys<'e, E: Executor<'e, Database = Any>>(exec: E) -> StoreResult<Vec<KeyRow>> {
    Ok(sqlx::query_as(
        "SELECT kid, alg, private_key, public_jwk, created_at, retired_at FROM oidc_keys ORDER BY created_at DESC, kid",
    )
    .fetch_all(exec)
    .await?)
}

/// A registered client app.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClientRow {
    pub id: i64,
    pub client_id: String,
    pub name: String,
    pub secret_hash: String,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub first_party: i64,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

const CLIENT_COLUMNS: &str = "id, client_id, name, secret_hash, redirect_uris, post_logout_redirect_uris, first_party, created_at, disabled_at";

/// Register a client.
pub async fn insert_client<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    c: &ClientRow,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO oidc_clients (id, client_id, name, secret_hash, redirect_uris, post_logout_redirect_uris, first_party, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(c.id)
    .bind(&c.client_id)
    .bind(&c.name)
    .bind(&c.secret_hash)
    .bind(&c.redirect_uris)
    .bind(&c.post_logout_redirect_uris)
    .bind(c.first_party)
    .bind(c.created_at)
    .execute(exec)
    .await?;
    Ok(())
}

/// A client by its public id.
pub async fn find_client<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    client_id: &str,
) -> StoreResult<Option<ClientRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CLIENT_COLUMNS} FROM oidc_clients WHERE client_id = $1"
    ))
    .bind(client_id)
    .fetch_optional(exec)
    .await?)
}

/// A client by row id.
pub async fn get_client<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<ClientRow> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CLIENT_COLUMNS} FROM oidc_clients WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(exec)
    .await?)
}

/// Every client.
pub async fn clients<'e, E: Executor<'e, Database = Any>>(exec: E) -> StoreResult<Vec<ClientRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CLIENT_COLUMNS} FROM oidc_clients ORDER BY id"
    ))
    .fetch_all(exec)
    .await?)
}

/// Update a client's settings.
pub async fn update_client<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    name: &str,
    redirect_uris: &str,
    post_logout_redirect_uris: &str,
    first_party: bool,
) -> StoreResult<()> {
    let r = sqlx::query(
        "UPDATE oidc_clients SET name = $1, redirect_uris = $2, post_logout_redirect_uris = $3, first_party = $4 WHERE id = $5",
    )
    .bind(name)
    .bind(redirect_uris)
    .bind(post_logout_redirect_uris)
    .bind(i64::from(first_party))
    .bind(id)
    .execute(exec)
    .await?;
    crate::one_row(&r)
}

/// Replace a client's secret hash.
pub async fn set_client_secret<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    secret_hash: &str,
) -> StoreResult<()> {
    let r = sqlx::query("UPDATE oidc_clients SET secret_hash = $1 WHERE id = $2")
        .bind(secret_hash)
        .bind(id)
        .execute(exec)
        .await?;
    crate::one_row(&r)
}

/// Disable (Some) or enable (None) a client.
pub async fn set_client_disabled<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    at: Option<i64>,
) -> StoreResult<()> {
    let r = sqlx::query("UPDATE oidc_clients SET disabled_at = $1 WHERE id = $2")
        .bind(at)
        .bind(id)
        .execute(exec)
        .await?;
    crate::one_row(&r)
}

/// An authorization code.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CodeRow {
    pub code_hash: String,
    pub client_id: String,
    pub customer_id: i64,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// Store a code.
pub async fn insert_code<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    c: &CodeRow,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO oidc_codes (code_hash, client_id, customer_id, redirect_uri, scope, nonce, code_challenge, auth_time, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&c.code_hash)
    .bind(&c.client_id)
    .bind(c.customer_id)
    .bind(&c.redirect_uri)
    .bind(&c.scope)
    .bind(&c.nonce)
    .bind(&c.code_challenge)
    .bind(c.auth_time)
    .bind(c.created_at)
    .bind(c.expires_at)
    .execute(exec)
    .await?;
    Ok(())
}

/// Mark a code used and return it; None when unknown or already used (a replay).
pub async fn use_code<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    code_hash: &str,
    now: i64,
) -> StoreResult<Option<CodeRow>> {
    Ok(sqlx::query_as(
        "UPDATE oidc_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL \
         RETURNING code_hash, client_id, customer_id, redirect_uri, scope, nonce, code_challenge, auth_time, created_at, expires_at, used_at",
    )
    .bind(now)
    .bind(code_hash)
    .fetch_optional(exec)
    .await?)
}

/// True when this code exists and was already used (the tokens it gave must then be revoked).
pub async fn code_was_used<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    code_hash: &str,
) -> StoreResult<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM oidc_codes WHERE code_hash = $1 AND used_at IS NOT NULL",
    )
    .bind(code_hash)
    .fetch_one(exec)
    .await?;
    Ok(n > 0)
}

/// An access or refresh token.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub token_hash: String,
    pub kind: String,
    pub family: String,
    pub client_id: String,
    pub customer_id: i64,
    pub scope: String,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

const TOKEN_COLUMNS: &str = "token_hash, kind, family, client_id, customer_id, scope, auth_time, created_at, expires_at, revoked_at";

/// Store a token.
pub async fn insert_token<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    t: &TokenRow,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO oidc_tokens (token_hash, kind, family, client_id, customer_id, scope, auth_time, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&t.token_hash)
    .bind(&t.kind)
    .bind(&t.family)
    .bind(&t.client_id)
    .bind(t.customer_id)
    .bind(&t.scope)
    .bind(t.auth_time)
    .bind(t.created_at)
    .bind(t.expires_at)
    .execute(exec)
    .await?;
    Ok(())
}

/// A token by hash.
pub async fn find_token<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    token_hash: &str,
) -> StoreResult<Option<TokenRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {TOKEN_COLUMNS} FROM oidc_tokens WHERE token_hash = $1"
    ))
    .bind(token_hash)
    .fetch_optional(exec)
    .await?)
}

/// Revoke one token; false when it was already revoked (a concurrent or repeated use).
pub async fn revoke_token<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    token_hash: &str,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE oidc_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(token_hash)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Revoke every token of a family (one sign-in at one app).
pub async fn revoke_family<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    family: &str,
    now: i64,
) -> StoreResult<u64> {
    let r = sqlx::query(
        "UPDATE oidc_tokens SET revoked_at = $1 WHERE family = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(family)
    .execute(exec)
    .await?;
    Ok(r.rows_affected())
}

/// Revoke every token of a customer (sign out everywhere, disable, delete).
pub async fn revoke_customer_tokens<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
    now: i64,
) -> StoreResult<u64> {
    let r = sqlx::query(
        "UPDATE oidc_tokens SET revoked_at = $1 WHERE customer_id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(customer_id)
    .execute(exec)
    .await?;
    Ok(r.rows_affected())
}

/// Revoke every token of a client (client disabled or secret rotated).
pub async fn revoke_client_tokens<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    client_id: &str,
    now: i64,
) -> StoreResult<u64> {
    let r = sqlx::query(
        "UPDATE oidc_tokens SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(client_id)
    .execute(exec)
    .await?;
    Ok(r.rows_affected())
}

/// The scope a customer consented to for a client, if any.
pub async fn consent<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    client_id: &str,
    customer_id: i64,
) -> StoreResult<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT scope FROM oidc_consents WHERE client_id = $1 AND customer_id = $2",
    )
    .bind(client_id)
    .bind(customer_id)
    .fetch_optional(exec)
    .await?)
}

/// Remember a consent.
pub async fn put_consent<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    client_id: &str,
    customer_id: i64,
    scope: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO oidc_consents (client_id, customer_id, scope, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (client_id, customer_id) DO UPDATE SET scope = excluded.scope, created_at = excluded.created_at",
    )
    .bind(client_id)
    .bind(customer_id)
    .bind(scope)
    .bind(now)
    .execute(exec)
    .await?;
    Ok(())
}

/// Forget a customer's consents (account deletion).
pub async fn delete_customer_consents<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
) -> StoreResult<u64> {
    let r = sqlx::query("DELETE FROM oidc_consents WHERE customer_id = $1")
        .bind(customer_id)
        .execute(exec)
        .await?;
    Ok(r.rows_affected())
}

/// Remove expired codes and tokens.
pub async fn delete_expired<'e, E>(exec: E, now: i64) -> StoreResult<u64>
where
    E: Executor<'e, Database = Any> + Copy,
{
    let a = sqlx::query("DELETE FROM oidc_codes WHERE expires_at <= $1")
        .bind(now)
        .execute(exec)
        .await?;
    let b = sqlx::query("DELETE FROM oidc_tokens WHERE expires_at <= $1")
        .bind(now)
        .execute(exec)
        .await?;
    Ok(a.rows_affected() + b.rows_affected())
}
