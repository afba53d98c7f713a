//! `product_media`: a product's images, uploaded videos and video embeds, in display order. The
//! files themselves live in the file store (data directory or S3); a row holds their keys.

use sqlx::{Any, Executor};

use crate::{StoreResult, Tx};

/// One media item.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct MediaRow {
    pub id: i64,
    pub product_id: i64,
    pub position: i64,
    /// `image`, `video` (an uploaded file) or `embed` (Bilibili, YouTube).
    pub kind: String,
    /// `fetching` (a URL not yet downloaded), `processing` (sizes not yet made), `ready`, `failed`.
    pub status: String,
    pub mime: String,
    pub bytes: i64,
    pub width: i64,
    pub height: i64,
    /// The original file's key in the file store; empty for an embed or before fetching.
    pub storage_key: String,
    /// Where an imported image came from, or the embed's page URL.
    pub source_url: String,
    /// JSON `[{"name", "width", "height", "key", "mime", "bytes"}]`: the generated sizes.
    pub sizes: String,
    /// JSON `{"zh-CN": .., "en": ..}`: alternative text per language.
    pub alt: String,
    /// Why fetching or processing failed.
    pub error: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, product_id, position, kind, status, mime, bytes, width, height, \
     storage_key, source_url, sizes, alt, error, created_at, updated_at";

/// Insert a media item at the end of its product's list (position = last + 1).
pub async fn insert(tx: &mut Tx, m: &MediaRow) -> StoreResult<i64> {
    let last: Option<i64> =
        sqlx::query_scalar("SELECT MAX(position) FROM product_media WHERE product_id = $1")
            .bind(m.product_id)
            .fetch_one(&mut **tx)
            .await?;
    let position = last.unwrap_or(0) + 1;
    sqlx::query(&format!(
        "INSERT INTO product_media ({COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
    ))
    .bind(m.id)
    .bind(m.product_id)
    .bind(position)
    .bind(&m.kind)
    .bind(&m.status)
    .bind(&m.mime)
    .bind(m.bytes)
    .bind(m.width)
    .bind(m.height)
    .bind(&m.storage_key)
    .bind(&m.source_url)
    .bind(&m.sizes)
    .bind(&m.alt)
    .bind(&m.error)
    .bind(m.created_at)
    .bind(m.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(position)
}

/// Overwrite the file facts of a media item (after fetching or processing).
pub async fn update_file(tx: &mut Tx, m: &MediaRow) -> StoreResult<()> {
    let r = sqlx::query(
        "UPDATE product_media SET status = $2, mime = $3, bytes = $4, width = $5, height = $6, \
         storage_key = $7, sizes = $8, error = $9, updated_at = $10 WHERE id = $1",
    )
    .bind(m.id)
    .bind(&m.status)
    .bind(&m.mime)
    .bind(m.bytes)
    .bind(m.width)
    .bind(m.height)
    .bind(&m.storage_key)
    .bind(&m.sizes)
    .bind(&m.error)
    .bind(m.updated_at)
    .execute(&mut **tx)
    .await?;
    crate::one_row(&r)
}

/// Set a media item's alternative text (JSON per language).
pub async fn set_alt(tx: &mut Tx, id: i64, alt: &str, now: i64) -> StoreResult<()> {
    let r = sqlx::query("UPDATE product_media SET alt = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(alt)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    crate::one_row(&r)
}

/// Put a product's media in the order of `ids` (positions 1, 2, ...).
pub async fn reorder(tx: &mut Tx, product_id: i64, ids: &[i64]) -> StoreResult<()> {
    for (i, id) in ids.iter().enumerate() {
        sqlx::query("UPDATE product_media SET position = $3 WHERE id = $1 AND product_id = $2")
            .bind(id)
            .bind(product_id)
            .bind(i as i64 + 1)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Delete one media item.
pub async fn delete(tx: &mut Tx, id: i64) -> StoreResult<()> {
    let r = sqlx::query("DELETE FROM product_media WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    crate::one_row(&r)
}

/// One media item.
pub async fn get<'e, E: Executor<'e, Database = Any>>(exec: E, id: i64) -> StoreResult<MediaRow> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM product_media WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(exec)
    .await?)
}

/// The media of several products, by product then position.
pub async fn of_products<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    product_ids: &[i64],
) -> StoreResult<Vec<MediaRow>> {
    if product_ids.is_empty() {
        return Ok(vec![]);
    }
    let ids = product_ids
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM product_media WHERE product_id IN ({ids}) ORDER BY product_id, position, id"
    ))
    .fetch_all(exec)
    .await?)
}

// ---------------------------------------------------------------------------------------------
// CSV imports

/// An uploaded product CSV and what its import did.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct ImportRow {
    pub id: i64,
    pub filename: String,
    pub content: String,
    /// `previewed`, `queued`, `running`, `done`.
    pub status: String,
    /// Products in the file.
    pub products: i64,
    /// Products handled so far (imported or refused).
    pub done: i64,
    /// JSON: per product, what happened.
    pub report: String,
    pub actor: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const IMPORT_COLUMNS: &str =
    "id, filename, content, status, products, done, report, actor, created_at, updated_at";

/// Store an uploaded file.
pub async fn insert_import<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    r: &ImportRow,
) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO product_imports ({IMPORT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(r.id)
    .bind(&r.filename)
    .bind(&r.content)
    .bind(&r.status)
    .bind(r.products)
    .bind(r.done)
    .bind(&r.report)
    .bind(&r.actor)
    .bind(r.created_at)
    .bind(r.updated_at)
    .execute(exec)
    .await?;
    Ok(())
}

/// Move an import to `status` when it is in `from`; false when it was not.
pub async fn import_status<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    from: &str,
    status: &str,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE product_imports SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2",
    )
    .bind(id)
    .bind(from)
    .bind(status)
    .bind(now)
    .execute(exec)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Record progress.
pub async fn import_progress<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
    status: &str,
    done: i64,
    report: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE product_imports SET status = $2, done = $3, report = $4, updated_at = $5 WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(done)
    .bind(report)
    .bind(now)
    .execute(exec)
    .await?;
    Ok(())
}

/// One import.
pub async fn get_import<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<ImportRow> {
    Ok(sqlx::query_as(&format!(
        "SELECT {IMPORT_COLUMNS} FROM product_imports WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(exec)
    .await?)
}
