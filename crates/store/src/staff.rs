//! Staff accounts (the owner and the people who help them).

use sqlx::{Any, Executor};

use crate::StoreResult;

/// A stored staff account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StaffRow {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub role: String,
    pub locale: Option<String>,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A staff account not yet stored.
#[derive(Debug)]
pub struct NewStaff<'a> {
    pub id: i64,
    pub email: &'a str,
    pub name: &'a str,
    pub password_hash: &'a str,
    pub role: &'a str,
    pub locale: Option<&'a str>,
}

const COLUMNS: &str =
    "id, email, name, password_hash, role, locale, disabled_at, created_at, updated_at";

/// Store a new staff account; a taken email is a [`crate::StoreError::Conflict`].
pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    s: &NewStaff<'_>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO staff (id, email, name, password_hash, role, locale, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(s.id)
    .bind(s.email)
    .bind(s.name)
    .bind(s.password_hash)
    .bind(s.role)
    .bind(s.locale)
    .bind(now)
    .execute(exec)
    .await?;
    Ok(())
}

/// Find an account by (normalised) email.
pub async fn find_by_email<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    email: &str,
) -> StoreResult<Option<StaffRow>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM staff WHERE email = $1"))
            .bind(email)
            .fetch_optional(exec)
            .await?,
    )
}

/// Get an account by id.
pub async fn get<'e, E: Executor<'e, Database = Any>>(exec: E, id: i64) -> StoreResult<StaffRow> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM staff WHERE id = $1"))
            .bind(id)
            .fetch_one(exec)
            .await?,
    )
}

/// Accounts ordered by id, after `after_id`, at most `limit`.
pub async fn list<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    after_id: i64,
    limit: i64,
) -> StoreResult<Vec<StaffRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM staff WHERE id > $1 ORDER BY id LIMIT $2"
    ))
    .bind(after_id)
    .bind(limit)
    .fetch_all(exec)
    .await?)
}

/// Number of owners (setup is done once there is one).
pub async fn count_owners<'e, E: Executor<'e, Database = Any>>(exec: E) -> StoreResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM staff WHERE role = 'owner'")
            .fetch_one(exec)
            .await?,
    )
}

/// Replace the password hash.
pub async fn set_password<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    hash: &str,
    now: i64,
) -> StoreResult<()> {
    let r = sqlx::query("UPDATE staff SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(now)
        .bind(id)
        .execute(exec)
        .await?;
    if r.rows_affected() == 0 {
        return Err(crate::StoreError::NotFound);
    }
    Ok(())
}

/// Disable (Some(now)) or enable (None) an account.
pub async fn set_disabled<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    disabled_at: Option<i64>,
    now: i64,
) -> StoreResult<()> {
    let r = sqlx::query(
        "UPDATE staff SET disabled_at = $1, updated_at = $2 WHERE id = $3 AND role <> 'owner'",
    )
    .bind(disabled_at)
    .bind(now)
    .bind(id)
    .execute(exec)
    .await?;
    if r.rows_affected() == 0 {
        return Err(crate::StoreError::NotFound);
    }
    Ok(())
}

/// Number of staff accounts.
pub async fn count<'e, E: Executor<'e, Database = Any>>(exec: E) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM staff")
        .fetch_one(exec)
        .await?)
}
