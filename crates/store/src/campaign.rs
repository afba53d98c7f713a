//! Crowdfunding campaigns: what has been raised (from the paid lines of a campaign product), the
//! backers' orders, and the one row that records how a campaign closed.

use sqlx::{Any, Executor};

use crate::{StoreResult, Tx};

/// A closed campaign.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct CampaignRow {
    pub product_id: i64,
    /// `funded`, `refunding`, `failed`.
    pub state: String,
    pub raised: i64,
    pub backers: i64,
    pub target: i64,
    pub currency: String,
    pub closed_by: String,
    pub closed_at: i64,
}

const COLUMNS: &str = "product_id, state, raised, backers, target, currency, closed_by, closed_at";

/// How the campaign closed; None while it is open.
pub async fn get<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    product_id: i64,
) -> StoreResult<Option<CampaignRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM campaigns WHERE product_id = $1"
    ))
    .bind(product_id)
    .fetch_optional(exec)
    .await?)
}

/// Record the close; false when it was closed already (the first close stands).
pub async fn close(tx: &mut Tx, c: &CampaignRow) -> StoreResult<bool> {
    let r = sqlx::query(&format!(
        "INSERT INTO campaigns ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (product_id) DO NOTHING"
    ))
    .bind(c.product_id)
    .bind(&c.state)
    .bind(c.raised)
    .bind(c.backers)
    .bind(c.target)
    .bind(&c.currency)
    .bind(&c.closed_by)
    .bind(c.closed_at)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Move a campaign from state `from` to `to`; false when it was not in `from`.
pub async fn set_state<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    product_id: i64,
    from: &str,
    to: &str,
) -> StoreResult<bool> {
    let r = sqlx::query("UPDATE campaigns SET state = $1 WHERE product_id = $2 AND state = $3")
        .bind(to)
        .bind(product_id)
        .bind(from)
        .execute(exec)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Raised so far (the campaign lines of paid, not cancelled orders, after their discounts) and
/// the number of those orders.
pub async fn progress<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    product_id: i64,
) -> StoreResult<(i64, i64)> {
    let (raised, backers): (i64, i64) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(l.subtotal - l.discount), 0) AS BIGINT), \
                CAST(COUNT(DISTINCT o.id) AS BIGINT) \
         FROM order_lines l JOIN orders o ON o.id = l.order_id \
         WHERE l.product_id = $1 AND o.payment IN ('paid', 'partially_refunded') AND o.cancelled = 0",
    )
    .bind(product_id)
    .fetch_one(exec)
    .await?;
    Ok((raised, backers))
}

/// Ids of orders with money in them (paid or partly refunded) holding the campaign product,
/// above `after`, in id order: the batch a refund run works through.
pub async fn backer_orders<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    product_id: i64,
    after: i64,
    limit: i64,
) -> StoreResult<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT o.id FROM order_lines l JOIN orders o ON o.id = l.order_id \
         WHERE l.product_id = $1 AND o.id > $2 AND o.payment IN ('paid', 'partially_refunded') \
         ORDER BY o.id LIMIT $3",
    )
    .bind(product_id)
    .bind(after)
    .bind(limit)
    .fetch_all(exec)
    .await?)
}

/// Crowdfunding products not closed yet, with their details JSON (the deadline is in it).
pub async fn open_campaigns<'e, E: Executor<'e, Database = Any>>(
    exec: E,
) -> StoreResult<Vec<(i64, String)>> {
    Ok(sqlx::query_as(
        "SELECT p.id, p.details FROM products p LEFT JOIN campaigns c ON c.product_id = p.id \
         WHERE p.kind = 'crowdfunding' AND c.product_id IS NULL ORDER BY p.id",
    )
    .fetch_all(exec)
    .await?)
}

/// A campaign's refunds the owner must still send by hand (`manual` or `failed`), with the order
/// number and the buyer's email: (transaction id, order id, number, email, amount, status).
pub async fn refunds_to_send<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    product_id: i64,
) -> StoreResult<Vec<(i64, i64, i64, String, i64, String)>> {
    Ok(sqlx::query_as(
        "SELECT t.id, o.id, o.number, o.email, t.amount, t.status FROM transactions t \
         JOIN orders o ON o.id = t.order_id \
         WHERE t.kind = 'refund' AND t.status IN ('manual', 'failed') AND t.reference LIKE $1 \
         ORDER BY o.number",
    )
    .bind(format!("refund:campaign:{product_id}:%"))
    .fetch_all(exec)
    .await?)
}

/// Unpaid, not cancelled orders holding the campaign product.
pub async fn pending_orders<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    product_id: i64,
) -> StoreResult<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT o.id FROM order_lines l JOIN orders o ON o.id = l.order_id \
         WHERE l.product_id = $1 AND o.payment = 'pending' AND o.cancelled = 0 ORDER BY o.id",
    )
    .bind(product_id)
    .fetch_all(exec)
    .await?)
}
