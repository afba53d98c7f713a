//! Licence keys and the devices (instances) they are activated on.

use sqlx::{Any, Executor};

use crate::{StoreResult, Tx};

/// A licence key as stored.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct LicenseRow {
    pub id: i64,
    pub product_id: i64,
    pub license_key: String,
    pub status: String,
    pub order_id: Option<i64>,
    pub entitlement_id: Option<i64>,
    pub activation_limit: Option<i64>,
    pub activations: i64,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub assigned_at: Option<i64>,
}

/// A device a key is activated on.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct InstanceRow {
    pub id: String,
    pub license_id: i64,
    pub name: String,
    pub created_at: i64,
}

const COLUMNS: &str = "id, product_id, license_key, status, order_id, entitlement_id, \
     activation_limit, activations, expires_at, created_at, assigned_at";

/// Insert a key; false when the same key text exists already (pools: skipped; generated: the
/// caller draws again).
pub async fn insert<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    k: &LicenseRow,
) -> StoreResult<bool> {
    let r = sqlx::query(&format!(
        "INSERT INTO license_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (license_key) DO NOTHING"
    ))
    .bind(k.id)
    .bind(k.product_id)
    .bind(&k.license_key)
    .bind(&k.status)
    .bind(k.order_id)
    .bind(k.entitlement_id)
    .bind(k.activation_limit)
    .bind(k.activations)
    .bind(k.expires_at)
    .bind(k.created_at)
    .bind(k.assigned_at)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Take the oldest key of a product's pool for an order: a guarded UPDATE, so two payments at
/// the same moment never get the same key (the loser tries the next one). None: the pool is empty.
#[allow(clippy::too_many_arguments)]
pub async fn take_from_pool(
    tx: &mut Tx,
    product_id: i64,
    order_id: i64,
    entitlement_id: i64,
    activation_limit: Option<i64>,
    expires_at: Option<i64>,
    now: i64,
) -> StoreResult<Option<LicenseRow>> {
    for _ in 0..20 {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM license_keys WHERE product_id = $1 AND status = 'available' \
             ORDER BY id LIMIT 1",
        )
        .bind(product_id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(id) = id else { return Ok(None) };
        let taken = sqlx::query(
            "UPDATE license_keys SET status = 'inactive', order_id = $1, entitlement_id = $2, \
             activation_limit = $3, expires_at = $4, assigned_at = $5 \
             WHERE id = $6 AND status = 'available'",
        )
        .bind(order_id)
        .bind(entitlement_id)
        .bind(activation_limit)
        .bind(expires_at)
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        if taken.rows_affected() == 1 {
            return Ok(Some(get(&mut **tx, id).await?));
        }
    }
    Ok(None)
}

/// One key by id.
pub async fn get<'e, E: Executor<'e, Database = Any>>(exec: E, id: i64) -> StoreResult<LicenseRow> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM license_keys WHERE id = $1"))
            .bind(id)
            .fetch_one(exec)
            .await?,
    )
}

/// The key with this text, if it was sold (pool keys are not anyone's yet).
pub async fn by_key<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    key: &str,
) -> StoreResult<Option<LicenseRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM license_keys WHERE license_key = $1 AND status <> 'available'"
    ))
    .bind(key)
    .fetch_optional(exec)
    .await?)
}

/// An order's keys.
pub async fn of_order<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    order_id: i64,
) -> StoreResult<Vec<LicenseRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM license_keys WHERE order_id = $1 ORDER BY assigned_at, id"
    ))
    .bind(order_id)
    .fetch_all(exec)
    .await?)
}

/// How many keys a product's pool still holds.
pub async fn available<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    product_id: i64,
) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM license_keys WHERE product_id = $1 AND status = 'available'",
    )
    .bind(product_id)
    .fetch_one(exec)
    .await?)
}

/// Count one more activation, guarded by the limit and the status; false when refused.
pub async fn add_activation(tx: &mut Tx, id: i64) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE license_keys SET activations = activations + 1, status = 'active' \
         WHERE id = $1 AND status IN ('inactive', 'active') \
         AND (activation_limit IS NULL OR activations < activation_limit)",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Record a device.
pub async fn insert_instance(tx: &mut Tx, i: &InstanceRow) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO license_instances (id, license_id, name, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&i.id)
    .bind(i.license_id)
    .bind(&i.name)
    .bind(i.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One device of a key.
pub async fn instance<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    license_id: i64,
    id: &str,
) -> StoreResult<Option<InstanceRow>> {
    Ok(sqlx::query_as(
        "SELECT id, license_id, name, created_at FROM license_instances \
         WHERE license_id = $1 AND id = $2",
    )
    .bind(license_id)
    .bind(id)
    .fetch_optional(exec)
    .await?)
}

/// Remove a device and give its activation back; false when the key had no such device.
pub async fn remove_instance(tx: &mut Tx, license_id: i64, id: &str) -> StoreResult<bool> {
    let r = sqlx::query("DELETE FROM license_instances WHERE license_id = $1 AND id = $2")
        .bind(license_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    if r.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE license_keys SET activations = activations - 1, \
         status = CASE WHEN status = 'active' AND activations = 1 THEN 'inactive' ELSE status END \
         WHERE id = $1",
    )
    .bind(license_id)
    .execute(&mut **tx)
    .await?;
    Ok(true)
}

/// Disable an order's keys (all, or those of one entitlement); how many.
pub async fn disable(tx: &mut Tx, order_id: i64, entitlement_id: Option<i64>) -> StoreResult<u64> {
    let r = sqlx::query(
        "UPDATE license_keys SET status = 'disabled' \
         WHERE order_id = $1 AND ($2 = 0 OR entitlement_id = $3) AND status <> 'disabled'",
    )
    .bind(order_id)
    .bind(entitlement_id.is_some() as i64)
    .bind(entitlement_id.unwrap_or(0))
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected())
}

/// Which keys a listing wants: sold keys only (pool keys are not anyone's), newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFilter {
    pub product_id: Option<i64>,
    pub order_id: Option<i64>,
}

/// Sold keys with ids below `before`, newest first.
pub async fn list_before<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    f: &KeyFilter,
    before: i64,
    limit: i64,
) -> StoreResult<Vec<LicenseRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM license_keys WHERE status <> 'available' AND id < $1 \
         AND ($2 = 0 OR product_id = $3) AND ($4 = 0 OR order_id = $5) \
         ORDER BY id DESC LIMIT $6"
    ))
    .bind(before)
    .bind(f.product_id.is_some() as i64)
    .bind(f.product_id.unwrap_or(0))
    .bind(f.order_id.is_some() as i64)
    .bind(f.order_id.unwrap_or(0))
    .bind(limit)
    .fetch_all(exec)
    .await?)
}

/// A key's devices, oldest first.
pub async fn instances<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    license_id: i64,
) -> StoreResult<Vec<InstanceRow>> {
    Ok(sqlx::query_as(
        "SELECT id, license_id, name, created_at FROM license_instances \
         WHERE license_id = $1 ORDER BY created_at, id",
    )
    .bind(license_id)
    .fetch_all(exec)
    .await?)
}

/// The owner's change to a sold key: turned off (`disabled`), back on (`active` when devices
/// hold it, else `inactive`) or left as it is (`enabled` none), its device limit and its end.
/// False when the key is not sold (or gone), or the limit is below the devices it is on now.
pub async fn update_sold(
    tx: &mut Tx,
    id: i64,
    enabled: Option<bool>,
    activation_limit: Option<i64>,
    expires_at: Option<i64>,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE license_keys SET activation_limit = $1, expires_at = $2, \
         status = CASE WHEN $3 = 0 THEN 'disabled' WHEN $3 = 2 THEN status \
         WHEN activations > 0 THEN 'active' ELSE 'inactive' END \
         WHERE id = $4 AND status <> 'available' AND ($5 = 0 OR activations <= $6)",
    )
    .bind(activation_limit)
    .bind(expires_at)
    .bind(match enabled {
        Some(false) => 0i64,
        Some(true) => 1,
        None => 2,
    })
    .bind(id)
    .bind(activation_limit.is_some() as i64)
    .bind(activation_limit.unwrap_or(0))
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}
