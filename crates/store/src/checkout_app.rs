//! The owner's apps that share the checkout (收银台), and the orders placed through them.

use sqlx::{Any, Executor};

use crate::{StoreResult, Writes};

/// A registered app. `secret` is sealed by the caller.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AppRow {
    pub id: i64,
    pub name: String,
    pub return_url: String,
    pub webhook_url: String,
    pub secret: String,
    /// `active` or `disabled`.
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, name, return_url, webhook_url, secret, status, created_at, updated_at";

/// Register an app.
pub async fn insert<'e, E: Executor<'e, Database = Any>>(exec: E, a: &AppRow) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO checkout_apps ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(a.id)
    .bind(&a.name)
    .bind(&a.return_url)
    .bind(&a.webhook_url)
    .bind(&a.secret)
    .bind(&a.status)
    .bind(a.created_at)
    .bind(a.updated_at)
    .execute(exec)
    .await?;
    Ok(())
}

/// An app by id.
pub async fn get<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<Option<AppRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM checkout_apps WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(exec)
    .await?)
}

/// Every app, newest first, with how many orders each has and how many of them were paid.
pub async fn list<'e, E: Executor<'e, Database = Any>>(
    exec: E,
) -> StoreResult<Vec<(AppRow, i64, i64)>> {
    #[derive(sqlx::FromRow)]
    struct Counted {
        #[sqlx(flatten)]
        app: AppRow,
        orders: i64,
        paid: i64,
    }
    let rows: Vec<Counted> = sqlx::query_as(
        "SELECT a.id, a.name, a.return_url, a.webhook_url, a.secret, a.status, a.created_at, a.updated_at, \
         (SELECT COUNT(*) FROM app_orders x WHERE x.app_id = a.id) AS orders, \
         (SELECT COUNT(*) FROM app_orders x JOIN orders o ON o.id = x.order_id \
            WHERE x.app_id = a.id AND o.captured > 0) AS paid \
         FROM checkout_apps a ORDER BY a.id DESC",
    )
    .fetch_all(exec)
    .await?;
    Ok(rows
        .into_iter()
        .map(|c| (c.app, c.orders, c.paid))
        .collect())
}

/// Change the name and URLs; false when there is no such app.
pub async fn update<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    name: &str,
    return_url: &str,
    webhook_url: &str,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE checkout_apps SET name = $1, return_url = $2, webhook_url = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(name)
    .bind(return_url)
    .bind(webhook_url)
    .bind(now)
    .bind(id)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Replace the sealed secret; false when there is no such app.
pub async fn set_secret<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    sealed: &str,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query("UPDATE checkout_apps SET secret = $1, updated_at = $2 WHERE id = $3")
        .bind(sealed)
        .bind(now)
        .bind(id)
        .execute(exec)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Set `active` or `disabled`; false when there is no such app.
pub async fn set_status<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    status: &str,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query("UPDATE checkout_apps SET status = $1, updated_at = $2 WHERE id = $3")
        .bind(status)
        .bind(now)
        .bind(id)
        .execute(exec)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// An order placed through an app.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct AppOrderRow {
    pub order_id: i64,
    pub app_id: i64,
    pub app_ref: String,
    pub created_at: i64,
}

/// Record that the order being placed came through an app (with the order's own rows).
pub fn insert_order_into(w: &mut Writes, r: &AppOrderRow) {
    w.add("INSERT INTO app_orders (order_id, app_id, app_ref, created_at) VALUES ($1, $2, $3, $4)")
        .bind(r.order_id)
        .bind(r.app_id)
        .bind(&r.app_ref)
        .bind(r.created_at);
}

/// The app an order came through, if any.
pub async fn by_order<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    order_id: i64,
) -> StoreResult<Option<AppOrderRow>> {
    Ok(sqlx::query_as(
        "SELECT order_id, app_id, app_ref, created_at FROM app_orders WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(exec)
    .await?)
}

/// The order an app placed under its reference, if any.
pub async fn by_ref<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    app_id: i64,
    app_ref: &str,
) -> StoreResult<Option<AppOrderRow>> {
    Ok(sqlx::query_as(
        "SELECT order_id, app_id, app_ref, created_at FROM app_orders WHERE app_id = $1 AND app_ref = $2",
    )
    .bind(app_id)
    .bind(app_ref)
    .fetch_optional(exec)
    .await?)
}
