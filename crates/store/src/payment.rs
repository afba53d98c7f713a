//! Online payments: how an order's payment was started (kept so the order page shows the same
//! QR code or link again), and the reconciliation checks.

use sqlx::{Any, Executor};

use crate::StoreResult;

/// How a payment was started.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct StartRow {
    pub order_id: i64,
    pub gateway: String,
    /// `redirect`, `qr`, `form`, `manual`.
    pub kind: String,
    pub payload: String,
    pub created_at: i64,
}

/// The start recorded for an order and gateway.
pub async fn start<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    order_id: i64,
    gateway: &str,
) -> StoreResult<Option<StartRow>> {
    Ok(sqlx::query_as(
        "SELECT order_id, gateway, kind, payload, created_at FROM payment_starts \
         WHERE order_id = $1 AND gateway = $2",
    )
    .bind(order_id)
    .bind(gateway)
    .fetch_optional(exec)
    .await?)
}

/// Record a start; the first one recorded stays (false when there was one already).
pub async fn put_start<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    s: &StartRow,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "INSERT INTO payment_starts (order_id, gateway, kind, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id, gateway) DO NOTHING",
    )
    .bind(s.order_id)
    .bind(&s.gateway)
    .bind(&s.kind)
    .bind(&s.payload)
    .bind(s.created_at)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// An order still waiting for an online gateway's payment.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct Awaiting {
    pub id: i64,
    pub gateway: String,
    /// What the order asks for.
    pub total: i64,
    pub currency: String,
    pub created_at: i64,
    /// When reconciliation last asked about it.
    pub last_checked: Option<i64>,
    /// What the gateway answered when the payment was started (`payment_starts.payload`).
    pub started: Option<String>,
}

/// Orders still waiting for an online gateway's payment, placed between `from` and `to`
/// (milliseconds), oldest first, with when each was last asked about.
pub async fn awaiting<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    from: i64,
    to: i64,
) -> StoreResult<Vec<Awaiting>> {
    Ok(sqlx::query_as(
        "SELECT o.id, o.gateway, o.total, o.currency, o.created_at, \
         (SELECT MAX(c.checked_at) FROM payment_checks c WHERE c.order_id = o.id) AS last_checked, \
         (SELECT s.payload FROM payment_starts s WHERE s.order_id = o.id AND s.gateway = o.gateway) \
         AS started \
         FROM orders o WHERE o.created_at >= $1 AND o.created_at < $2 \
         AND o.payment = 'pending' AND o.cancelled = 0 AND o.gateway <> 'manual' \
         ORDER BY o.created_at, o.id",
    )
    .bind(from)
    .bind(to)
    .fetch_all(exec)
    .await?)
}

/// One reconciliation check.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq, serde::Serialize)]
pub struct CheckRow {
    pub id: i64,
    pub order_id: i64,
    pub gateway: String,
    /// `paid`, `pending`, `unknown`, `parked`, `error`.
    pub outcome: String,
    pub detail: String,
    pub checked_at: i64,
}

/// Record a check.
pub async fn put_check<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    c: &CheckRow,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO payment_checks (id, order_id, gateway, outcome, detail, checked_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(c.id)
    .bind(c.order_id)
    .bind(&c.gateway)
    .bind(&c.outcome)
    .bind(&c.detail)
    .bind(c.checked_at)
    .execute(exec)
    .await?;
    Ok(())
}

/// The latest checks, newest first, with the order's number: (check, number).
pub async fn checks<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    limit: i64,
) -> StoreResult<Vec<(CheckRow, i64)>> {
    let rows: Vec<(i64, i64, String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT c.id, c.order_id, c.gateway, c.outcome, c.detail, c.checked_at, o.number \
         FROM payment_checks c JOIN orders o ON o.id = c.order_id \
         ORDER BY c.checked_at DESC, c.id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(exec)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, order_id, gateway, outcome, detail, checked_at, number)| {
                (
                    CheckRow {
                        id,
                        order_id,
                        gateway,
                        outcome,
                        detail,
                        checked_at,
                    },
                    number,
                )
            },
        )
        .collect())
}

/// How many checks had each outcome since `since`: (outcome, count).
pub async fn outcome_counts<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    since: i64,
) -> StoreResult<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT outcome, COUNT(*) FROM payment_checks WHERE checked_at >= $1 \
         GROUP BY outcome ORDER BY outcome",
    )
    .bind(since)
    .fetch_all(exec)
    .await?)
}
