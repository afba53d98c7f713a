//! Checkouts browsers started, for the owner's view of abandoned ones.

use sqlx::{Any, Executor};

use crate::StoreResult;

/// A started checkout.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct CheckoutRow {
    pub id: String,
    pub email: String,
    pub customer_id: Option<i64>,
    pub items: String,
    pub subtotal: i64,
    pub currency: String,
    pub order_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str =
    "id, email, customer_id, items, subtotal, currency, order_id, created_at, updated_at";

/// Record the checkout as seen now: created, or updated (the email only ever filled in, never
/// blanked; a checkout that became an order stays as it was). Added to `w`.
pub fn touch_into(w: &mut crate::Writes, c: &CheckoutRow) {
    w.add(format!(
        "INSERT INTO checkouts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8) \
         ON CONFLICT (id) DO UPDATE SET \
           email = CASE WHEN EXCLUDED.email = '' THEN checkouts.email ELSE EXCLUDED.email END, \
           customer_id = COALESCE(EXCLUDED.customer_id, checkouts.customer_id), \
           items = EXCLUDED.items, subtotal = EXCLUDED.subtotal, currency = EXCLUDED.currency, \
           updated_at = EXCLUDED.updated_at \
         WHERE checkouts.order_id IS NULL"
    ))
    .bind(&c.id)
    .bind(&c.email)
    .bind(c.customer_id)
    .bind(&c.items)
    .bind(c.subtotal)
    .bind(&c.currency)
    .bind(c.created_at)
    .bind(c.updated_at);
}

/// The checkout became this order (in the order's own transaction).
pub fn converted(w: &mut crate::Writes, id: &str, order_id: i64) {
    w.add("UPDATE checkouts SET order_id = $1 WHERE id = $2 AND order_id IS NULL")
        .bind(order_id)
        .bind(id);
}

/// Checkouts that never became an order and were last seen before `before`, newest first.
pub async fn abandoned<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    before: i64,
    limit: i64,
    offset: i64,
) -> StoreResult<Vec<CheckoutRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM checkouts WHERE order_id IS NULL AND updated_at < $1 \
         ORDER BY updated_at DESC, id LIMIT $2 OFFSET $3"
    ))
    .bind(before)
    .bind(limit)
    .bind(offset)
    .fetch_all(exec)
    .await?)
}

/// Forget checkouts last seen before `before`; returns how many.
pub async fn prune<'e, E: Executor<'e, Database = Any>>(exec: E, before: i64) -> StoreResult<u64> {
    Ok(sqlx::query("DELETE FROM checkouts WHERE updated_at < $1")
        .bind(before)
        .execute(exec)
        .await?
        .rows_affected())
}

/// A customer's started checkouts, newest first (their data export).
pub async fn of_customer<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
) -> StoreResult<Vec<CheckoutRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM checkouts WHERE customer_id = $1 ORDER BY updated_at DESC, id"
    ))
    .bind(customer_id)
    .fetch_all(exec)
    .await?)
}

/// Forget a customer's checkouts that never became an order (their account is deleted); those
/// that did stay with the order (anonymised with it).
pub async fn delete_unconverted_of<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
) -> StoreResult<u64> {
    let r = sqlx::query("DELETE FROM checkouts WHERE customer_id = $1 AND order_id IS NULL")
        .bind(customer_id)
        .execute(exec)
        .await?;
    Ok(r.rows_affected())
}
