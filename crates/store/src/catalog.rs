//! Catalog tables: `products` (with `product_translations` and the former handles in
//! `product_handles`), `variants` with a price per currency in `variant_prices` (integer minor
//! units), and the `inventory_adjustments` ledger.

use sqlx::{Any, Executor};

use crate::{StoreError, StoreResult, Tx};

/// A product.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct ProductRow {
    pub id: i64,
    pub handle: String,
    pub kind: String,
    pub status: String,
    pub title: String,
    pub body: String,
    pub vendor: String,
    pub product_type: String,
    /// Comma-separated, each trimmed.
    pub tags: String,
    /// JSON `[{"name": .., "values": [..]}]`.
    pub options: String,
    pub seo_title: String,
    pub seo_description: String,
    pub publish_at: Option<i64>,
    /// JSON: what the kind needs (membership days, campaign target and deadline, ...).
    pub details: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const PRODUCT_COLUMNS: &str =
    "id, handle, kind, status, title, body, vendor, product_type, tags, options, \
     seo_title, seo_description, publish_at, details, created_at, updated_at";

/// A product's text in one language.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct TranslationRow {
    pub product_id: i64,
    pub locale: String,
    pub title: String,
    pub body: String,
    pub seo_title: String,
    pub seo_description: String,
    /// JSON `{"names": [..], "values": {"白": "White"}}`: option names and values in this language.
    pub options: String,
}

/// One variant.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct VariantRow {
    pub id: i64,
    pub product_id: i64,
    pub position: i64,
    pub option1: String,
    pub option2: String,
    pub option3: String,
    pub sku: String,
    pub barcode: String,
    pub grams: i64,
    pub requires_shipping: i64,
    pub cost: Option<i64>,
    pub track_inventory: i64,
    pub inventory_quantity: i64,
    pub inventory_policy: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const VARIANT_COLUMNS: &str = "id, product_id, position, option1, option2, option3, sku, barcode, grams, \
     requires_shipping, cost, track_inventory, inventory_quantity, inventory_policy, created_at, updated_at";

/// A variant's price in one currency, in minor units.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct PriceRow {
    pub variant_id: i64,
    pub currency: String,
    pub amount: i64,
    pub compare_at: Option<i64>,
}

/// One recorded stock change.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct AdjustmentRow {
    pub id: i64,
    pub variant_id: i64,
    pub delta: i64,
    pub quantity_after: i64,
    pub reason: String,
    pub actor: String,
    pub created_at: i64,
}

// ---------------------------------------------------------------------------------------------
// Products

/// Insert a product; `Conflict` when the handle is taken.
pub async fn insert_product(tx: &mut Tx, p: &ProductRow) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO products ({PRODUCT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
    ))
    .bind(p.id)
    .bind(&p.handle)
    .bind(&p.kind)
    .bind(&p.status)
    .bind(&p.title)
    .bind(&p.body)
    .bind(&p.vendor)
    .bind(&p.product_type)
    .bind(&p.tags)
    .bind(&p.options)
    .bind(&p.seo_title)
    .bind(&p.seo_description)
    .bind(p.publish_at)
    .bind(&p.details)
    .bind(p.created_at)
    .bind(p.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Overwrite a product's fields (not its id or creation time).
pub async fn update_product(tx: &mut Tx, p: &ProductRow) -> StoreResult<()> {
    let r = sqlx::query(
        "UPDATE products SET handle = $2, kind = $3, status = $4, title = $5, body = $6, vendor = $7, \
         product_type = $8, tags = $9, options = $10, seo_title = $11, seo_description = $12, publish_at = $13, \
         details = $14, updated_at = $15 WHERE id = $1",
    )
    .bind(p.id)
    .bind(&p.handle)
    .bind(&p.kind)
    .bind(&p.status)
    .bind(&p.title)
    .bind(&p.body)
    .bind(&p.vendor)
    .bind(&p.product_type)
    .bind(&p.tags)
    .bind(&p.options)
    .bind(&p.seo_title)
    .bind(&p.seo_description)
    .bind(p.publish_at)
    .bind(&p.details)
    .bind(p.updated_at)
    .execute(&mut **tx)
    .await?;
    crate::one_row(&r)
}

/// Set the status of several products at once; returns how many changed.
pub async fn set_status(tx: &mut Tx, ids: &[i64], status: &str, now: i64) -> StoreResult<u64> {
    let mut n = 0;
    for id in ids {
        n += sqlx::query(
            "UPDATE products SET status = $1, updated_at = $2 WHERE id = $3 AND status <> $1",
        )
        .bind(status)
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    Ok(n)
}

/// Replace a product's tags (comma-separated).
pub async fn set_tags(tx: &mut Tx, id: i64, tags: &str, now: i64) -> StoreResult<()> {
    sqlx::query("UPDATE products SET tags = $1, updated_at = $2 WHERE id = $3")
        .bind(tags)
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Mark a product changed now (after a change to its variants' prices).
pub async fn touch(tx: &mut Tx, id: i64, now: i64) -> StoreResult<()> {
    sqlx::query("UPDATE products SET updated_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Delete a product with its variants, prices, translations and former handles.
pub async fn delete_product(tx: &mut Tx, id: i64) -> StoreResult<()> {
    let r = sqlx::query("DELETE FROM products WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    crate::one_row(&r)
}

/// One product.
pub async fn get_product<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<ProductRow> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(exec)
    .await?)
}

/// Several products, in no particular order (missing ids are left out).
pub async fn get_products<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    ids: &[i64],
) -> StoreResult<Vec<ProductRow>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    Ok(sqlx::query_as(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE id IN ({})",
        id_list(ids)
    ))
    .fetch_all(exec)
    .await?)
}

/// The product at `handle`, if any.
pub async fn by_handle<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    handle: &str,
) -> StoreResult<Option<ProductRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE handle = $1"
    ))
    .bind(handle)
    .fetch_optional(exec)
    .await?)
}

/// The product that once had `handle`, for a permanent redirect.
pub async fn former_handle<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    handle: &str,
) -> StoreResult<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT product_id FROM product_handles WHERE handle = $1")
            .bind(handle)
            .fetch_optional(exec)
            .await?,
    )
}

/// Remember `handle` as a former handle of `product_id` (taking it from any other product).
pub async fn keep_former_handle(
    tx: &mut Tx,
    handle: &str,
    product_id: i64,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO product_handles (handle, product_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (handle) DO UPDATE SET product_id = $2, created_at = $3",
    )
    .bind(handle)
    .bind(product_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Forget `handle` as a former handle (a product takes it as its current one).
pub async fn drop_former_handle(tx: &mut Tx, handle: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM product_handles WHERE handle = $1")
        .bind(handle)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Filters for the product list.
#[derive(Debug, Clone, Default)]
pub struct ProductFilter {
    /// `draft`, `active`, `archived`; empty for all.
    pub status: String,
    /// Matches title, handle, vendor, type, tags (case-insensitive substring).
    pub query: String,
    /// Exact product kind; empty for all.
    pub kind: String,
}

fn filter_sql(f: &ProductFilter) -> (String, String) {
    let like = if f.query.trim().is_empty() {
        String::new()
    } else {
        format!("%{}%", crate::like_escape(&f.query.trim().to_lowercase()))
    };
    (
        "($1 = '' OR status = $1) AND ($2 = '' OR LOWER(title) LIKE $2 ESCAPE '\\' OR LOWER(handle) LIKE $2 ESCAPE '\\' \
         OR LOWER(vendor) LIKE $2 ESCAPE '\\' OR LOWER(product_type) LIKE $2 ESCAPE '\\' OR LOWER(tags) LIKE $2 ESCAPE '\\') \
         AND ($3 = '' OR kind = $3)"
            .to_string(),
        like,
    )
}

/// Products matching `f`, newest id first, with ids below `before_id` (0: from the top).
pub async fn list_products<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    f: &ProductFilter,
    before_id: i64,
    limit: i64,
) -> StoreResult<Vec<ProductRow>> {
    let (cond, like) = filter_sql(f);
    Ok(sqlx::query_as(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE {cond} AND ($4 = 0 OR id < $4) ORDER BY id DESC LIMIT $5"
    ))
    .bind(&f.status)
    .bind(like)
    .bind(&f.kind)
    .bind(before_id)
    .bind(limit)
    .fetch_all(exec)
    .await?)
}

/// How many products match `f`.
pub async fn count_products<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    f: &ProductFilter,
) -> StoreResult<i64> {
    let (cond, like) = filter_sql(f);
    Ok(
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM products WHERE {cond}"))
            .bind(&f.status)
            .bind(like)
            .bind(&f.kind)
            .fetch_one(exec)
            .await?,
    )
}

/// Products a visitor can see at `now` (active, publish time passed), newest first.
pub async fn visible_products<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    now: i64,
    limit: i64,
) -> StoreResult<Vec<ProductRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM products WHERE status = 'active' AND (publish_at IS NULL OR publish_at <= $1) \
         ORDER BY COALESCE(publish_at, created_at) DESC, id DESC LIMIT $2"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(exec)
    .await?)
}

/// Every product id, ascending after `after` (for rebuilding the search index in pages).
pub async fn product_ids<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    after: i64,
    limit: i64,
) -> StoreResult<Vec<i64>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM products WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(exec)
            .await?,
    )
}

// ---------------------------------------------------------------------------------------------
// Translations

/// Replace a product's translations with `rows`.
pub async fn put_translations(
    tx: &mut Tx,
    product_id: i64,
    rows: &[TranslationRow],
) -> StoreResult<()> {
    sqlx::query("DELETE FROM product_translations WHERE product_id = $1")
        .bind(product_id)
        .execute(&mut **tx)
        .await?;
    for t in rows {
        sqlx::query(
            "INSERT INTO product_translations (product_id, locale, title, body, seo_title, seo_description, options) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(product_id)
        .bind(&t.locale)
        .bind(&t.title)
        .bind(&t.body)
        .bind(&t.seo_title)
        .bind(&t.seo_description)
        .bind(&t.options)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The translations of the given products.
pub async fn translations<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    product_ids: &[i64],
) -> StoreResult<Vec<TranslationRow>> {
    if product_ids.is_empty() {
        return Ok(vec![]);
    }
    Ok(sqlx::query_as(&format!(
        "SELECT product_id, locale, title, body, seo_title, seo_description, options FROM product_translations \
         WHERE product_id IN ({}) ORDER BY product_id, locale",
        id_list(product_ids)
    ))
    .fetch_all(exec)
    .await?)
}

// ---------------------------------------------------------------------------------------------
// Variants and prices

/// Insert or overwrite a variant (by id). Stock is not touched on update: it changes only through
/// [`adjust_stock`], so each change is in the ledger.
pub async fn put_variant(tx: &mut Tx, v: &VariantRow) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO variants ({VARIANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
         ON CONFLICT (id) DO UPDATE SET position = $3, option1 = $4, option2 = $5, option3 = $6, sku = $7, barcode = $8, \
         grams = $9, requires_shipping = $10, cost = $11, track_inventory = $12, inventory_policy = $14, updated_at = $16 \
         WHERE variants.product_id = $2"
    ))
    .bind(v.id)
    .bind(v.product_id)
    .bind(v.position)
    .bind(&v.option1)
    .bind(&v.option2)
    .bind(&v.option3)
    .bind(&v.sku)
    .bind(&v.barcode)
    .bind(v.grams)
    .bind(v.requires_shipping)
    .bind(v.cost)
    .bind(v.track_inventory)
    .bind(v.inventory_quantity)
    .bind(&v.inventory_policy)
    .bind(v.created_at)
    .bind(v.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Delete the product's variants whose ids are not in `keep`.
pub async fn delete_other_variants(tx: &mut Tx, product_id: i64, keep: &[i64]) -> StoreResult<()> {
    let mut sql = "DELETE FROM variants WHERE product_id = $1".to_string();
    if !keep.is_empty() {
        sql.push_str(&format!(" AND id NOT IN ({})", id_list(keep)));
    }
    sqlx::query(&sql)
        .bind(product_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Replace a variant's prices.
pub async fn put_prices(tx: &mut Tx, variant_id: i64, prices: &[PriceRow]) -> StoreResult<()> {
    sqlx::query("DELETE FROM variant_prices WHERE variant_id = $1")
        .bind(variant_id)
        .execute(&mut **tx)
        .await?;
    for p in prices {
        sqlx::query("INSERT INTO variant_prices (variant_id, currency, amount, compare_at) VALUES ($1, $2, $3, $4)")
            .bind(variant_id)
            .bind(&p.currency)
            .bind(p.amount)
            .bind(p.compare_at)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The variants of the given products, by product then position.
pub async fn variants<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    product_ids: &[i64],
) -> StoreResult<Vec<VariantRow>> {
    if product_ids.is_empty() {
        return Ok(vec![]);
    }
    Ok(sqlx::query_as(&format!(
        "SELECT {VARIANT_COLUMNS} FROM variants WHERE product_id IN ({}) ORDER BY product_id, position, id",
        id_list(product_ids)
    ))
    .fetch_all(exec)
    .await?)
}

/// One variant.
pub async fn get_variant<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<VariantRow> {
    Ok(sqlx::query_as(&format!(
        "SELECT {VARIANT_COLUMNS} FROM variants WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(exec)
    .await?)
}

/// The prices of the given variants.
pub async fn prices<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    variant_ids: &[i64],
) -> StoreResult<Vec<PriceRow>> {
    if variant_ids.is_empty() {
        return Ok(vec![]);
    }
    Ok(sqlx::query_as(&format!(
        "SELECT variant_id, currency, amount, compare_at FROM variant_prices WHERE variant_id IN ({}) \
         ORDER BY variant_id, currency",
        id_list(variant_ids)
    ))
    .fetch_all(exec)
    .await?)
}

// ---------------------------------------------------------------------------------------------
// Inventory

/// Change a variant's stock by `delta` and record why, in the caller's transaction; returns the
/// new quantity. One statement, so concurrent adjustments add up on both engines.
pub async fn adjust_stock(tx: &mut Tx, a: &AdjustmentRow) -> StoreResult<i64> {
    let after: i64 = sqlx::query_scalar(
        "UPDATE variants SET inventory_quantity = inventory_quantity + $1, updated_at = $2 WHERE id = $3 \
         RETURNING inventory_quantity",
    )
    .bind(a.delta)
    .bind(a.created_at)
    .bind(a.variant_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    sqlx::query(
        "INSERT INTO inventory_adjustments (id, variant_id, delta, quantity_after, reason, actor, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(a.id)
    .bind(a.variant_id)
    .bind(a.delta)
    .bind(after)
    .bind(&a.reason)
    .bind(&a.actor)
    .bind(a.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(after)
}

/// A variant's stock history, newest first.
pub async fn adjustments<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    variant_ids: &[i64],
    limit: i64,
) -> StoreResult<Vec<AdjustmentRow>> {
    if variant_ids.is_empty() {
        return Ok(vec![]);
    }
    Ok(sqlx::query_as(&format!(
        "SELECT id, variant_id, delta, quantity_after, reason, actor, created_at FROM inventory_adjustments \
         WHERE variant_id IN ({}) ORDER BY created_at DESC, id DESC LIMIT $1",
        id_list(variant_ids)
    ))
    .bind(limit)
    .fetch_all(exec)
    .await?)
}

/// A tracked variant with its product, for the inventory view.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct StockRow {
    pub variant_id: i64,
    pub product_id: i64,
    pub title: String,
    pub option1: String,
    pub option2: String,
    pub option3: String,
    pub sku: String,
    pub inventory_quantity: i64,
    pub inventory_policy: String,
}

/// Tracked variants by product title then position, optionally only those whose product title or
/// SKU contains `query` (case-insensitive) and only those with at most `at_most` in stock; paged by
/// offset.
pub async fn stock_levels<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    query: &str,
    at_most: Option<i64>,
    offset: i64,
    limit: i64,
) -> StoreResult<Vec<StockRow>> {
    let like = if query.trim().is_empty() {
        String::new()
    } else {
        format!("%{}%", crate::like_escape(&query.trim().to_lowercase()))
    };
    Ok(sqlx::query_as(
        "SELECT v.id AS variant_id, v.product_id, p.title, v.option1, v.option2, v.option3, v.sku, \
         v.inventory_quantity, v.inventory_policy FROM variants v JOIN products p ON p.id = v.product_id \
         WHERE v.track_inventory = 1 \
         AND ($1 = '' OR LOWER(p.title) LIKE $1 ESCAPE '\\' OR LOWER(v.sku) LIKE $1 ESCAPE '\\') \
         AND ($2 = 0 OR v.inventory_quantity <= $3) \
         ORDER BY p.title, p.id, v.position, v.id LIMIT $4 OFFSET $5",
    )
    .bind(like)
    .bind(at_most.is_some() as i64)
    .bind(at_most.unwrap_or(0))
    .bind(limit)
    .bind(offset)
    .fetch_all(exec)
    .await?)
}

/// An adjustment with the product and variant it concerns.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct RecentAdjustment {
    pub variant_id: i64,
    pub product_id: i64,
    pub title: String,
    pub option1: String,
    pub option2: String,
    pub option3: String,
    pub delta: i64,
    pub quantity_after: i64,
    pub reason: String,
    pub actor: String,
    pub created_at: i64,
}

/// The latest stock adjustments over the whole catalog, newest first.
pub async fn recent_adjustments<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    limit: i64,
) -> StoreResult<Vec<RecentAdjustment>> {
    Ok(sqlx::query_as(
        "SELECT a.variant_id, v.product_id, p.title, v.option1, v.option2, v.option3, a.delta, \
         a.quantity_after, a.reason, a.actor, a.created_at FROM inventory_adjustments a \
         JOIN variants v ON v.id = a.variant_id JOIN products p ON p.id = v.product_id \
         ORDER BY a.created_at DESC, a.id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(exec)
    .await?)
}

/// Ids as a SQL list. Only integers are ever formatted in, never text.
fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

// ---------------------------------------------------------------------------------------------
// Collections

/// A collection.
#[derive(Debug, Clone, sqlx::FromRow, PartialEq, Eq)]
pub struct CollectionRow {
    pub id: i64,
    pub handle: String,
    pub title: String,
    pub body: String,
    /// `manual` or `automatic`.
    pub kind: String,
    /// JSON rules of an automatic collection.
    pub rules: String,
    /// 1: a product must match every rule; 0: any rule.
    pub match_all: i64,
    /// JSON `{"en": {"title": .., "body": ..}}`.
    pub translations: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLLECTION_COLUMNS: &str =
    "id, handle, title, body, kind, rules, match_all, translations, created_at, updated_at";

/// Insert or overwrite a collection; `Conflict` when the handle is taken.
pub async fn put_collection(tx: &mut Tx, c: &CollectionRow) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO collections ({COLLECTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (id) DO UPDATE SET handle = $2, title = $3, body = $4, kind = $5, rules = $6, match_all = $7, \
         translations = $8, updated_at = $10"
    ))
    .bind(c.id)
    .bind(&c.handle)
    .bind(&c.title)
    .bind(&c.body)
    .bind(&c.kind)
    .bind(&c.rules)
    .bind(c.match_all)
    .bind(&c.translations)
    .bind(c.created_at)
    .bind(c.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Delete a collection (its memberships go with it).
pub async fn delete_collection(tx: &mut Tx, id: i64) -> StoreResult<()> {
    let r = sqlx::query("DELETE FROM collections WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    crate::one_row(&r)
}

/// One collection.
pub async fn get_collection<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    id: i64,
) -> StoreResult<CollectionRow> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLLECTION_COLUMNS} FROM collections WHERE id = $1"
    ))
    .bind(id)
    .fetch_one(exec)
    .await?)
}

/// The collection at `handle`.
pub async fn collection_by_handle<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    handle: &str,
) -> StoreResult<CollectionRow> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLLECTION_COLUMNS} FROM collections WHERE handle = $1"
    ))
    .bind(handle)
    .fetch_one(exec)
    .await?)
}

/// Every collection, by title.
pub async fn list_collections<'e, E: Executor<'e, Database = Any>>(
    exec: E,
) -> StoreResult<Vec<CollectionRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLLECTION_COLUMNS} FROM collections ORDER BY title, id"
    ))
    .fetch_all(exec)
    .await?)
}

/// Replace a collection's members with `product_ids`, in that order.
pub async fn set_members(tx: &mut Tx, collection_id: i64, product_ids: &[i64]) -> StoreResult<()> {
    sqlx::query("DELETE FROM collection_products WHERE collection_id = $1")
        .bind(collection_id)
        .execute(&mut **tx)
        .await?;
    for (i, p) in product_ids.iter().enumerate() {
        sqlx::query(
            "INSERT INTO collection_products (collection_id, product_id, position) VALUES ($1, $2, $3) \
             ON CONFLICT (collection_id, product_id) DO NOTHING",
        )
        .bind(collection_id)
        .bind(p)
        .bind(i as i64 + 1)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Put one product in or out of a collection (position: after the last member).
pub async fn set_member(
    tx: &mut Tx,
    collection_id: i64,
    product_id: i64,
    member: bool,
) -> StoreResult<()> {
    if member {
        sqlx::query(
            "INSERT INTO collection_products (collection_id, product_id, position) \
             SELECT $1, $2, COALESCE(MAX(position), 0) + 1 FROM collection_products WHERE collection_id = $1 \
             ON CONFLICT (collection_id, product_id) DO NOTHING",
        )
        .bind(collection_id)
        .bind(product_id)
        .execute(&mut **tx)
        .await?;
    } else {
        sqlx::query("DELETE FROM collection_products WHERE collection_id = $1 AND product_id = $2")
            .bind(collection_id)
            .bind(product_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// A collection's member ids in order.
pub async fn members<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    collection_id: i64,
) -> StoreResult<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT product_id FROM collection_products WHERE collection_id = $1 ORDER BY position, product_id",
    )
    .bind(collection_id)
    .fetch_all(exec)
    .await?)
}

/// A collection's members a visitor can see at `now`, in order, a page at a time.
pub async fn visible_members<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    collection_id: i64,
    now: i64,
    offset: i64,
    limit: i64,
) -> StoreResult<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT cp.product_id FROM collection_products cp JOIN products p ON p.id = cp.product_id \
         WHERE cp.collection_id = $1 AND p.status = 'active' AND (p.publish_at IS NULL OR p.publish_at <= $2) \
         ORDER BY cp.position, cp.product_id LIMIT $3 OFFSET $4",
    )
    .bind(collection_id)
    .bind(now)
    .bind(limit)
    .bind(offset)
    .fetch_all(exec)
    .await?)
}

/// The collections a product is in.
pub async fn collections_of<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    product_id: i64,
) -> StoreResult<Vec<i64>> {
    Ok(
        sqlx::query_scalar("SELECT collection_id FROM collection_products WHERE product_id = $1")
            .bind(product_id)
            .fetch_all(exec)
            .await?,
    )
}
