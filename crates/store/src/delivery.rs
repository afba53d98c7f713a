//! Delivery rows: the private files of digital products and the entitlements paid orders grant.

use sqlx::{Any, Executor};

use crate::{StoreResult, Tx};

/// A file a digital product delivers.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct FileRow {
    pub id: i64,
    pub product_id: i64,
    pub name: String,
    pub file_key: String,
    pub size: i64,
    pub mime: String,
    pub position: i64,
    pub created_at: i64,
}

/// What one paid order grants for one product.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct EntitlementRow {
    pub id: i64,
    pub order_id: i64,
    pub customer_id: Option<i64>,
    pub email: String,
    pub product_id: i64,
    pub kind: String,
    pub title: String,
    pub starts_at: i64,
    pub ends_at: Option<i64>,
    pub downloads: i64,
    pub download_limit: i64,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
    /// Memberships counted in months: the instant their periods count from.
    pub period_anchor: Option<i64>,
}

const FILE_COLUMNS: &str = "id, product_id, name, file_key, size, mime, position, created_at";
const ENTITLEMENT_COLUMNS: &str = "id, order_id, customer_id, email, product_id, kind, title, \
     starts_at, ends_at, downloads, download_limit, revoked_at, created_at, period_anchor";

/// Add a file at the end of its product's list.
pub async fn insert_file<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    f: &FileRow,
) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO product_files ({FILE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, \
         (SELECT COALESCE(MAX(position), 0) + 1 FROM product_files WHERE product_id = $7), $8)"
    ))
    .bind(f.id)
    .bind(f.product_id)
    .bind(&f.name)
    .bind(&f.file_key)
    .bind(f.size)
    .bind(&f.mime)
    .bind(f.product_id)
    .bind(f.created_at)
    .execute(exec)
    .await?;
    Ok(())
}

/// One file.
pub async fn get_file<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<FileRow> {
    Ok(sqlx::query_as(&format!(
        "SELECT {FILE_COLUMNS} FROM product_files WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(exec)
    .await?)
}

/// A product's files in order.
pub async fn files_of<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    product_id: i64,
) -> StoreResult<Vec<FileRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {FILE_COLUMNS} FROM product_files WHERE product_id = $1 ORDER BY position, id"
    ))
    .bind(product_id)
    .fetch_all(exec)
    .await?)
}

/// Remove a file's row; false when there was none.
pub async fn delete_file<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<bool> {
    let r = sqlx::query("DELETE FROM product_files WHERE id = $1")
        .bind(id)
        .execute(exec)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Record an entitlement; false when the order already has one for this product.
pub async fn insert_entitlement(tx: &mut Tx, e: &EntitlementRow) -> StoreResult<bool> {
    let r = sqlx::query(&format!(
        "INSERT INTO entitlements ({ENTITLEMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
         $10, $11, $12, $13, $14) ON CONFLICT (order_id, product_id) DO NOTHING"
    ))
    .bind(e.id)
    .bind(e.order_id)
    .bind(e.customer_id)
    .bind(&e.email)
    .bind(e.product_id)
    .bind(&e.kind)
    .bind(&e.title)
    .bind(e.starts_at)
    .bind(e.ends_at)
    .bind(e.downloads)
    .bind(e.download_limit)
    .bind(e.revoked_at)
    .bind(e.created_at)
    .bind(e.period_anchor)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A holder's unrevoked membership of a product that lasts longest (one without an end first),
/// if any. The holder is the customer, or the email of a guest.
pub async fn latest_membership(
    tx: &mut Tx,
    customer_id: Option<i64>,
    email: &str,
    product_id: i64,
) -> StoreResult<Option<EntitlementRow>> {
    let base = format!(
        "SELECT {ENTITLEMENT_COLUMNS} FROM entitlements WHERE kind = 'membership' \
         AND product_id = $1 AND revoked_at IS NULL AND "
    );
    let rows: Vec<EntitlementRow> = match customer_id {
        Some(c) => {
            sqlx::query_as(&format!("{base}customer_id = $2"))
                .bind(product_id)
                .bind(c)
                .fetch_all(&mut **tx)
                .await?
        }
        None => {
            sqlx::query_as(&format!("{base}customer_id IS NULL AND email = $2"))
                .bind(product_id)
                .bind(email)
                .fetch_all(&mut **tx)
                .await?
        }
    };
    Ok(rows
        .into_iter()
        .max_by_key(|e| (e.ends_at.is_none(), e.ends_at)))
}

/// One entitlement.
pub async fn get_entitlement<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<EntitlementRow> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ENTITLEMENT_COLUMNS} FROM entitlements WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(exec)
    .await?)
}

/// An order's entitlements, oldest first.
pub async fn entitlements_of<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    order_id: i64,
) -> StoreResult<Vec<EntitlementRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ENTITLEMENT_COLUMNS} FROM entitlements WHERE order_id = $1 ORDER BY created_at, id"
    ))
    .bind(order_id)
    .fetch_all(exec)
    .await?)
}

/// A customer's entitlements of one kind, newest first.
pub async fn entitlements_of_customer<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    customer_id: i64,
    kind: &str,
) -> StoreResult<Vec<EntitlementRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ENTITLEMENT_COLUMNS} FROM entitlements WHERE customer_id = $1 AND kind = $2 \
         ORDER BY created_at DESC, id DESC"
    ))
    .bind(customer_id)
    .bind(kind)
    .fetch_all(exec)
    .await?)
}

/// Count one download against the limit, in one guarded statement: false when the entitlement is
/// revoked, used up, or gone — so the limit holds under simultaneous downloads, and a revocation
/// committed a moment ago is seen.
pub async fn count_download<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE entitlements SET downloads = downloads + 1 \
         WHERE id = $1 AND revoked_at IS NULL AND downloads < download_limit",
    )
    .bind(id)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Revoke an order's entitlements (all, or one when `only` is given); the number revoked now.
pub async fn revoke(tx: &mut Tx, order_id: i64, only: Option<i64>, now: i64) -> StoreResult<u64> {
    let r = sqlx::query(
        "UPDATE entitlements SET revoked_at = $1 \
         WHERE order_id = $2 AND ($3 = 0 OR id = $4) AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(order_id)
    .bind(only.is_some() as i64)
    .bind(only.unwrap_or(0))
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected())
}
