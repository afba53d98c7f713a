//! The user pool: customers, their identities, sessions, one-time codes, invite codes and pending
//! sign-in flows.

use sqlx::{Any, Executor};

use crate::{StoreError, StoreResult};

/// A stored customer.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CustomerRow {
    pub id: i64,
    pub email: Option<String>,
    pub email_verified_at: Option<i64>,
    pub name: String,
    pub phone: Option<String>,
    pub avatar_url: Option<String>,
    pub locale: Option<String>,
    pub password_hash: Option<String>,
    pub invite_code: Option<String>,
    pub invited_by: Option<i64>,
    pub second_factor: i64,
    pub disabled_at: Option<i64>,
    pub deleted_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str =
    "id, email, email_verified_at, name, phone, avatar_url, locale, password_hash, \
     invite_code, invited_by, second_factor, disabled_at, deleted_at, created_at, updated_at";

/// A customer not yet stored.
#[derive(Debug, Default)]
pub struct NewCustomer<'a> {
    pub id: i64,
    pub email: Option<&'a str>,
    pub email_verified: bool,
    pub name: &'a str,
    pub phone: Option<&'a str>,
    pub locale: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub invite_code: Option<&'a str>,
    pub invited_by: Option<i64>,
}

/// Store a new customer; a taken email is a [`StoreError::Conflict`].
pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    c: &NewCustomer<'_>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO customers (id, email, email_verified_at, name, phone, locale, password_hash, invite_code, \
         invited_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
    )
    .bind(c.id)
    .bind(c.email)
    .bind(c.email_verified.then_some(now))
    .bind(c.name)
    .bind(c.phone)
    .bind(c.locale)
    .bind(c.password_hash)
    .bind(c.invite_code)
    .bind(c.invited_by)
    .bind(now)
    .execute(exec)
    .await?;
    Ok(())
}

/// One customer by id.
pub async fn get<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<CustomerRow> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM customers WHERE id = $1"))
            .bind(id)
            .fetch_one(exec)
            .await?,
    )
}

/// A customer by (normalised) email.
pub async fn find_by_email<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    email: &str,
) -> StoreResult<Option<CustomerRow>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM customers WHERE email = $1"))
            .bind(email)
            .fetch_optional(exec)
            .await?,
    )
}

/// Filters for [`list`].
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    /// Substring of email, name or phone (already lower-cased for email).
    pub query: Option<String>,
    /// `active`, `disabled` or `deleted`; None = all but deleted.
    pub state: Option<String>,
    /// Only customers invited by this one.
    pub invited_by: Option<i64>,
}

/// Customers newest first, before `before_id` (0 = from the newest).
pub async fn list<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    f: &ListFilter,
    before_id: i64,
    limit: i64,
) -> StoreResult<Vec<CustomerRow>> {
    let mut sql = format!("SELECT {COLUMNS} FROM customers WHERE ($1 = 0 OR id < $1)");
    match f.state.as_deref() {
        Some("disabled") => sql.push_str(" AND disabled_at IS NOT NULL AND deleted_at IS NULL"),
        Some("deleted") => sql.push_str(" AND deleted_at IS NOT NULL"),
        Some("active") => sql.push_str(" AND disabled_at IS NULL AND deleted_at IS NULL"),
        _ => sql.push_str(" AND deleted_at IS NULL"),
    }
    sql.push_str(
        " AND ($2 = '' OR LOWER(COALESCE(email, '')) LIKE $2 OR LOWER(name) LIKE $2 OR COALESCE(phone, '') LIKE $2)",
    );
    sql.push_str(" AND ($3 = 0 OR invited_by = $3) ORDER BY id DESC LIMIT $4");
    let like = f
        .query
        .as_deref()
        .filter(|q| !q.is_empty())
        .map(|q| {
            let escaped: String = q
                .to_lowercase()
                .chars()
                .filter(|c| !matches!(c, '%' | '_' | '\\'))
                .collect();
            format!("%{escaped}%")
        })
        .unwrap_or_default();
    Ok(sqlx::query_as(&sql)
        .bind(before_id)
        .bind(like)
        .bind(f.invited_by.unwrap_or(0))
        .bind(limit)
        .fetch_all(exec)
        .await?)
}

/// Number of customers not deleted.
pub async fn count<'e, E: Executor<'e, Database = Any>>(exec: E) -> StoreResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM customers WHERE deleted_at IS NULL")
            .fetch_one(exec)
            .await?,
    )
}

/// Profile fields a customer edits.
#[derive(Debug)]
pub struct Profile<'a> {
    pub name: &'a str,
    pub phone: Option<&'a str>,
    pub avatar_url: Option<&'a str>,
    pub locale: Option<&'a str>,
}

/// Update the profile fields.
pub async fn set_profile<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    p: &Profile<'_>,
    now: i64,
) -> StoreResult<()> {
    let r = sqlx::query(
        "UPDATE customers SET name = $1, phone = $2, avatar_url = $3, locale = $4, updated_at = $5 WHERE id = $6",
    )
    .bind(p.name)
    .bind(p.phone)
    .bind(p.avatar_url)
    .bind(p.locale)
    .bind(now)
    .bind(id)
    .execute(exec)
    .await?;
    one(r.rows_affected())
}

fn one(n: u64) -> StoreResult<()> {
    if n == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// Set (or clear) the password hash.
pub async fn set_password<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    hash: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    let r = sqlx::query("UPDATE customers SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(now)
        .bind(id)
        .execute(exec)
        .await?;
    one(r.rows_affected())
}

/// Set a verified email (a taken email is a conflict).
pub async fn set_verified_email<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    email: &str,
    now: i64,
) -> StoreResult<()> {
    let r = sqlx::query(
        "UPDATE customers SET email = $1, email_verified_at = $2, updated_at = $2 WHERE id = $3",
    )
    .bind(email)
    .bind(now)
    .bind(id)
    .execute(exec)
    .await?;
    one(r.rows_affected())
}

/// Disable (Some(now)) or enable (None).
pub async fn set_disabled<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    disabled_at: Option<i64>,
    now: i64,
) -> StoreResult<()> {
    let r = sqlx::query(
        "UPDATE customers SET disabled_at = $1, updated_at = $2 WHERE id = $3 AND deleted_at IS NULL",
    )
    .bind(disabled_at)
    .bind(now)
    .bind(id)
    .execute(exec)
    .await?;
    one(r.rows_affected())
}

/// Remove every personal field, keeping the row (and so the records that point at it).
pub async fn anonymise<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    now: i64,
) -> StoreResult<()> {
    let r = sqlx::query(
        "UPDATE customers SET email = NULL, email_verified_at = NULL, name = '', phone = NULL, avatar_url = NULL, \
         locale = NULL, password_hash = NULL, invite_code = NULL, deleted_at = $1, disabled_at = COALESCE(disabled_at, $1), \
         updated_at = $1 WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(exec)
    .await?;
    one(r.rows_affected())
}

// ---- identities ----

/// A sign-in identity (GitHub account, OIDC subject, WeChat OpenID, ...).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IdentityRow {
    pub id: i64,
    pub customer_id: i64,
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub display: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

const IDENTITY_COLUMNS: &str =
    "id, customer_id, provider, subject, email, display, created_at, last_used_at";

/// Link an identity; one already linked (to anyone) is a [`StoreError::Conflict`].
#[allow(clippy::too_many_arguments)]
pub async fn insert_identity<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    customer_id: i64,
    provider: &str,
    subject: &str,
    email: Option<&str>,
    display: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO customer_identities (id, customer_id, provider, subject, email, display, created_at, last_used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(id)
    .bind(customer_id)
    .bind(provider)
    .bind(subject)
    .bind(email)
    .bind(display)
    .bind(now)
    .execute(exec)
    .await?;
    Ok(())
}

/// The identity for (provider, subject).
pub async fn find_identity<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    provider: &str,
    subject: &str,
) -> StoreResult<Option<IdentityRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {IDENTITY_COLUMNS} FROM customer_identities WHERE provider = $1 AND subject = $2"
    ))
    .bind(provider)
    .bind(subject)
    .fetch_optional(exec)
    .await?)
}

/// Record a sign-in through an identity.
pub async fn touch_identity<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE customer_identities SET last_used_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(exec)
        .await?;
    Ok(())
}

/// A customer's identities.
pub async fn identities<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
) -> StoreResult<Vec<IdentityRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {IDENTITY_COLUMNS} FROM customer_identities WHERE customer_id = $1 ORDER BY id"
    ))
    .bind(customer_id)
    .fetch_all(exec)
    .await?)
}

// ---- sessions ----

/// A customer session.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id: i64,
    pub id_hash: String,
    pub customer_id: i64,
    pub csrf_token: String,
    pub method: String,
    pub mfa_pending: i64,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

const SESSION_COLUMNS: &str =
    "id, id_hash, customer_id, csrf_token, method, mfa_pending, created_at, last_seen_at, \
     expires_at, ip, user_agent";

/// A session not yet stored.
#[derive(Debug)]
pub struct NewSession<'a> {
    pub id: i64,
    pub id_hash: &'a str,
    pub customer_id: i64,
    pub csrf_token: &'a str,
    pub method: &'a str,
    pub mfa_pending: bool,
    pub expires_at: i64,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// Store a session.
pub async fn insert_session<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    s: &NewSession<'_>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO customer_sessions (id, id_hash, customer_id, csrf_token, method, mfa_pending, created_at, \
         last_seen_at, expires_at, ip, user_agent) VALUES ($1, $2, $3, $4, $5, $10, $6, $6, $7, $8, $9)",
    )
    .bind(s.id)
    .bind(s.id_hash)
    .bind(s.customer_id)
    .bind(s.csrf_token)
    .bind(s.method)
    .bind(now)
    .bind(s.expires_at)
    .bind(s.ip)
    .bind(s.user_agent)
    .bind(i64::from(s.mfa_pending))
    .execute(exec)
    .await?;
    Ok(())
}

/// A session by token hash.
pub async fn find_session<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id_hash: &str,
) -> StoreResult<Option<SessionRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SESSION_COLUMNS} FROM customer_sessions WHERE id_hash = $1"
    ))
    .bind(id_hash)
    .fetch_optional(exec)
    .await?)
}

/// A customer's sessions, newest first.
pub async fn sessions<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
) -> StoreResult<Vec<SessionRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SESSION_COLUMNS} FROM customer_sessions WHERE customer_id = $1 ORDER BY id DESC"
    ))
    .bind(customer_id)
    .fetch_all(exec)
    .await?)
}

/// Record activity.
pub async fn touch_session<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id_hash: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE customer_sessions SET last_seen_at = $1 WHERE id_hash = $2")
        .bind(now)
        .bind(id_hash)
        .execute(exec)
        .await?;
    Ok(())
}

/// End a session by token hash.
pub async fn delete_session<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id_hash: &str,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM customer_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(exec)
        .await?;
    Ok(())
}

/// End every session of a customer except the one whose hash is `keep`.
pub async fn delete_sessions<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
    keep: Option<&str>,
) -> StoreResult<u64> {
    let r = sqlx::query("DELETE FROM customer_sessions WHERE customer_id = $1 AND id_hash <> $2")
        .bind(customer_id)
        .bind(keep.unwrap_or(""))
        .execute(exec)
        .await?;
    Ok(r.rows_affected())
}

/// Remove sessions past their expiry or idle longer than `idle_ms`.
pub async fn delete_expired_sessions<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    now: i64,
    idle_ms: i64,
) -> StoreResult<u64> {
    let r =
        sqlx::query("DELETE FROM customer_sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
            .bind(now)
            .bind(now - idle_ms)
            .execute(exec)
            .await?;
    Ok(r.rows_affected())
}

// ---- one-time codes ----

/// A one-time sign-in code (stored hashed).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CodeRow {
    pub id: i64,
    pub email: String,
    pub code_hash: String,
    pub binding_hash: String,
    pub attempts: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// Store a code.
#[allow(clippy::too_many_arguments)]
pub async fn insert_code<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    email: &str,
    code_hash: &str,
    binding_hash: &str,
    ip: &str,
    now: i64,
    expires_at: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO login_codes (id, email, code_hash, binding_hash, attempts, ip, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, 0, $5, $6, $7)",
    )
    .bind(id)
    .bind(email)
    .bind(code_hash)
    .bind(binding_hash)
    .bind(ip)
    .bind(now)
    .bind(expires_at)
    .execute(exec)
    .await?;
    Ok(())
}

/// Codes sent to `email` and from `ip` since `since`.
pub async fn codes_sent_since(
    conn: &mut sqlx::AnyConnection,
    email: &str,
    ip: &str,
    since: i64,
) -> StoreResult<(i64, i64)> {
    let by_email: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM login_codes WHERE email = $1 AND created_at >= $2",
    )
    .bind(email)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    let by_ip: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM login_codes WHERE ip = $1 AND created_at >= $2")
            .bind(ip)
            .bind(since)
            .fetch_one(&mut *conn)
            .await?;
    Ok((by_email, by_ip))
}

/// The newest unused code for (email, binding).
pub async fn latest_code<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    email: &str,
    binding_hash: &str,
) -> StoreResult<Option<CodeRow>> {
    Ok(sqlx::query_as(
        "SELECT id, email, code_hash, binding_hash, attempts, created_at, expires_at, used_at FROM login_codes \
         WHERE email = $1 AND binding_hash = $2 AND used_at IS NULL ORDER BY id DESC LIMIT 1",
    )
    .bind(email)
    .bind(binding_hash)
    .fetch_optional(exec)
    .await?)
}

/// Count one more try at a code; false when the code has no tries left (or was used), so
/// concurrent guesses can never exceed `max_attempts` together.
pub async fn add_code_attempt<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    max_attempts: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE login_codes SET attempts = attempts + 1 WHERE id = $1 AND attempts < $2 AND used_at IS NULL",
    )
    .bind(id)
    .bind(max_attempts)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Mark a code used; false when it already was (a concurrent use won).
pub async fn use_code<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query("UPDATE login_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(exec)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Forget codes for an address (account deletion) or older than `before`.
pub async fn delete_codes<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    email: Option<&str>,
    before: i64,
) -> StoreResult<u64> {
    let r = sqlx::query("DELETE FROM login_codes WHERE email = $1 OR created_at < $2")
        .bind(email.unwrap_or(""))
        .bind(before)
        .execute(exec)
        .await?;
    Ok(r.rows_affected())
}

// ---- invite codes ----

/// An invite code: personal (a customer's) or made by the owner.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InviteRow {
    pub code: String,
    pub customer_id: Option<i64>,
    pub note: String,
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

const INVITE_COLUMNS: &str = "code, customer_id, note, max_uses, uses, created_at, revoked_at";

/// Store an invite code.
pub async fn insert_invite<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    code: &str,
    customer_id: Option<i64>,
    note: &str,
    max_uses: Option<i64>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO invite_codes (code, customer_id, note, max_uses, uses, created_at) VALUES ($1, $2, $3, $4, 0, $5)",
    )
    .bind(code)
    .bind(customer_id)
    .bind(note)
    .bind(max_uses)
    .bind(now)
    .execute(exec)
    .await?;
    Ok(())
}

/// An invite code by its text.
pub async fn find_invite<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    code: &str,
) -> StoreResult<Option<InviteRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {INVITE_COLUMNS} FROM invite_codes WHERE code = $1"
    ))
    .bind(code)
    .fetch_optional(exec)
    .await?)
}

/// Use an invite once; false when it is revoked or used up (checked in the same statement, so
/// concurrent sign-ups cannot exceed `max_uses`).
pub async fn use_invite<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    code: &str,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE invite_codes SET uses = uses + 1 WHERE code = $1 AND revoked_at IS NULL \
         AND (max_uses IS NULL OR uses < max_uses)",
    )
    .bind(code)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Owner-made invite codes, newest first.
pub async fn owner_invites<'e, E: Executor<'e, Database = Any>>(
    exec: E,
) -> StoreResult<Vec<InviteRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {INVITE_COLUMNS} FROM invite_codes WHERE customer_id IS NULL ORDER BY created_at DESC, code LIMIT 500"
    ))
    .fetch_all(exec)
    .await?)
}

/// Revoke an invite code.
pub async fn revoke_invite<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    code: &str,
    now: i64,
) -> StoreResult<()> {
    let r = sqlx::query(
        "UPDATE invite_codes SET revoked_at = $1 WHERE code = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(code)
    .execute(exec)
    .await?;
    one(r.rows_affected())
}

/// Revoke every personal code of a customer.
pub async fn revoke_customer_invites<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE invite_codes SET revoked_at = $1 WHERE customer_id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(customer_id)
    .execute(exec)
    .await?;
    Ok(())
}

// ---- sign-in flows ----

/// A pending sign-in flow: OAuth state, or a WeChat message-login code.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FlowRow {
    pub key_hash: String,
    pub kind: String,
    pub binding_hash: String,
    pub data: String,
    pub customer_id: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    pub done_at: Option<i64>,
}

/// Store a flow.
#[allow(clippy::too_many_arguments)]
pub async fn insert_flow<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    key_hash: &str,
    kind: &str,
    binding_hash: &str,
    data: &str,
    customer_id: Option<i64>,
    now: i64,
    expires_at: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO auth_flows (key_hash, kind, binding_hash, data, customer_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(key_hash)
    .bind(kind)
    .bind(binding_hash)
    .bind(data)
    .bind(customer_id)
    .bind(now)
    .bind(expires_at)
    .execute(exec)
    .await?;
    Ok(())
}

/// A flow by key hash.
pub async fn find_flow<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    key_hash: &str,
) -> StoreResult<Option<FlowRow>> {
    Ok(sqlx::query_as(
        "SELECT key_hash, kind, binding_hash, data, customer_id, created_at, expires_at, done_at FROM auth_flows WHERE key_hash = $1",
    )
    .bind(key_hash)
    .fetch_optional(exec)
    .await?)
}

/// Take a flow: delete it and return it, so a state or code works exactly once.
pub async fn take_flow<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    key_hash: &str,
) -> StoreResult<Option<FlowRow>> {
    Ok(sqlx::query_as(
        "DELETE FROM auth_flows WHERE key_hash = $1 \
         RETURNING key_hash, kind, binding_hash, data, customer_id, created_at, expires_at, done_at",
    )
    .bind(key_hash)
    .fetch_optional(exec)
    .await?)
}

/// Complete a waiting flow with its result; false when it was already complete or is gone.
pub async fn complete_flow<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    key_hash: &str,
    data: &str,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE auth_flows SET data = $1, done_at = $2 WHERE key_hash = $3 AND done_at IS NULL AND expires_at > $2",
    )
    .bind(data)
    .bind(now)
    .bind(key_hash)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Remove expired flows.
pub async fn delete_expired_flows<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    now: i64,
) -> StoreResult<u64> {
    let r = sqlx::query("DELETE FROM auth_flows WHERE expires_at <= $1")
        .bind(now)
        .execute(exec)
        .await?;
    Ok(r.rows_affected())
}

/// A code's `(used_at, expires_at)`, if the row exists.
pub async fn code_state<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<Option<(Option<i64>, i64)>> {
    Ok(
        sqlx::query_as("SELECT used_at, expires_at FROM login_codes WHERE id = $1")
            .bind(id)
            .fetch_optional(exec)
            .await?,
    )
}

/// A customer's personal invite code, if not revoked.
pub async fn personal_invite<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
) -> StoreResult<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT code FROM invite_codes WHERE customer_id = $1 AND revoked_at IS NULL ORDER BY created_at LIMIT 1",
    )
    .bind(customer_id)
    .fetch_optional(exec)
    .await?)
}

/// Forget a customer's pending sign-in flows.
pub async fn delete_customer_flows<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
) -> StoreResult<u64> {
    let r = sqlx::query("DELETE FROM auth_flows WHERE customer_id = $1")
        .bind(customer_id)
        .execute(exec)
        .await?;
    Ok(r.rows_affected())
}

/// Turn the passkey second factor on or off.
pub async fn set_second_factor<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    on: bool,
    now: i64,
) -> StoreResult<()> {
    let r = sqlx::query("UPDATE customers SET second_factor = $1, updated_at = $2 WHERE id = $3")
        .bind(i64::from(on))
        .bind(now)
        .bind(id)
        .execute(exec)
        .await?;
    one(r.rows_affected())
}

// ---- passkeys ----

/// A stored passkey (the credential as JSON, opaque here).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PasskeyRow {
    pub id: i64,
    pub customer_id: i64,
    pub credential_id: String,
    pub name: String,
    pub passkey: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

const PASSKEY_COLUMNS: &str =
    "id, customer_id, credential_id, name, passkey, created_at, last_used_at";

/// Store a passkey; a credential already registered is a conflict.
pub async fn insert_passkey<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    p: &PasskeyRow,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO customer_passkeys (id, customer_id, credential_id, name, passkey, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(p.id)
    .bind(p.customer_id)
    .bind(&p.credential_id)
    .bind(&p.name)
    .bind(&p.passkey)
    .bind(p.created_at)
    .execute(exec)
    .await?;
    Ok(())
}

/// A customer's passkeys, oldest first.
pub async fn passkeys<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
) -> StoreResult<Vec<PasskeyRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PASSKEY_COLUMNS} FROM customer_passkeys WHERE customer_id = $1 ORDER BY id"
    ))
    .bind(customer_id)
    .fetch_all(exec)
    .await?)
}

/// A passkey by credential id.
pub async fn find_passkey<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    credential_id: &str,
) -> StoreResult<Option<PasskeyRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PASSKEY_COLUMNS} FROM customer_passkeys WHERE credential_id = $1"
    ))
    .bind(credential_id)
    .fetch_optional(exec)
    .await?)
}

/// Store a passkey's updated state (signature counter, backup flags) after a sign-in.
pub async fn update_passkey<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    passkey: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE customer_passkeys SET passkey = $1, last_used_at = $2 WHERE id = $3")
        .bind(passkey)
        .bind(now)
        .bind(id)
        .execute(exec)
        .await?;
    Ok(())
}

/// Complete a pending second factor: the session is fully signed in under a new token hash.
pub async fn complete_second_factor<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    old_hash: &str,
    new_hash: &str,
    csrf_token: &str,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE customer_sessions SET id_hash = $1, csrf_token = $2, mfa_pending = 0 WHERE id_hash = $3 AND mfa_pending = 1",
    )
    .bind(new_hash)
    .bind(csrf_token)
    .bind(old_hash)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Tables whose rows each belong to one customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owned {
    Sessions,
    Identities,
    Passkeys,
}

impl Owned {
    fn table(self) -> &'static str {
        match self {
            Owned::Sessions => "customer_sessions",
            Owned::Identities => "customer_identities",
            Owned::Passkeys => "customer_passkeys",
        }
    }
}

/// Delete one row of a customer's (NotFound when it is someone else's or missing).
pub async fn delete_owned<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    what: Owned,
    customer_id: i64,
    id: i64,
) -> StoreResult<()> {
    let sql = format!(
        "DELETE FROM {} WHERE id = $1 AND customer_id = $2",
        what.table()
    );
    let r = sqlx::query(&sql)
        .bind(id)
        .bind(customer_id)
        .execute(exec)
        .await?;
    one(r.rows_affected())
}

/// Delete every row of a customer's in one table.
pub async fn delete_all_owned<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    what: Owned,
    customer_id: i64,
) -> StoreResult<u64> {
    let sql = format!("DELETE FROM {} WHERE customer_id = $1", what.table());
    let r = sqlx::query(&sql).bind(customer_id).execute(exec).await?;
    Ok(r.rows_affected())
}

/// A customer's saved cart (the cookie format), if any.
pub async fn cart<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT lines FROM customer_carts WHERE customer_id = $1")
            .bind(customer_id)
            .fetch_optional(exec)
            .await?,
    )
}

/// Save a customer's cart; an empty one is deleted.
pub async fn put_cart<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
    lines: &str,
    now: i64,
) -> StoreResult<()> {
    if lines.is_empty() {
        sqlx::query("DELETE FROM customer_carts WHERE customer_id = $1")
            .bind(customer_id)
            .execute(exec)
            .await?;
    } else {
        sqlx::query(
            "INSERT INTO customer_carts (customer_id, lines, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (customer_id) DO UPDATE SET lines = EXCLUDED.lines, updated_at = EXCLUDED.updated_at",
        )
        .bind(customer_id)
        .bind(lines)
        .bind(now)
        .execute(exec)
        .await?;
    }
    Ok(())
}
