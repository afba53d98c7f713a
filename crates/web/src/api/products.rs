//! `/products`, `/inventory_levels/adjust`: the catalog over the API (scopes `products:read`,
//! `products:write`), in Shopify's REST shapes where the concepts match: money as decimal strings
//! in the shop currency (`"199.00"`) with `presentment_prices` for the others, tags as one
//! comma-separated string, `inventory_policy` `deny`/`continue`. Stock is read-only on a variant
//! (set `inventory_quantity` only when creating one) and changes through adjustments, which keep
//! the reason.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use yiren_core::catalog::{self, Details, Kind, Price, Product as DomainProduct, ProductInput};
use yiren_core::{clock, money};
use yiren_store::catalog::ProductFilter;

use super::extract::{ts, ts_opt, ApiJson, ErrorBody, Principal};
use super::page::{base_url, with_link, PageQuery};
use crate::error::ApiError;
use crate::AppState;

/// A price in another currency.
#[derive(Serialize, Deserialize, ToSchema, Clone)]
pub struct PresentmentPrice {
    /// Decimal string, e.g. `"19.99"`.
    pub amount: String,
    /// ISO 4217.
    pub currency_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare_at_price: Option<String>,
}

/// One variant.
#[derive(Serialize, ToSchema)]
pub struct Variant {
    pub id: i64,
    pub product_id: i64,
    /// Option values joined with " / ".
    pub title: String,
    /// In the shop currency.
    pub price: Option<String>,
    pub compare_at_price: Option<String>,
    pub presentment_prices: Vec<PresentmentPrice>,
    pub sku: String,
    pub barcode: String,
    pub position: i64,
    pub option1: Option<String>,
    pub option2: Option<String>,
    pub option3: Option<String>,
    pub grams: i64,
    pub cost: Option<String>,
    /// `"yiren"` when stock is tracked, null otherwise.
    pub inventory_management: Option<String>,
    /// `deny` or `continue` (keep selling when out of stock).
    pub inventory_policy: String,
    /// Read-only: change it with `POST /inventory_levels/adjust`.
    pub inventory_quantity: i64,
    pub requires_shipping: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// An option and its values.
#[derive(Serialize, ToSchema)]
pub struct ProductOption {
    pub name: String,
    pub position: i64,
    pub values: Vec<String>,
}

/// A product's text in another language.
#[derive(Serialize, Deserialize, ToSchema, Clone)]
pub struct ProductTranslation {
    pub locale: String,
    #[serde(default)]
    pub title: String,
    /// Markdown.
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub seo_title: String,
    #[serde(default)]
    pub seo_description: String,
    /// Option names in this language, in option order.
    #[serde(default)]
    pub options: Vec<String>,
    /// Option values in this language, by the default language's value.
    #[serde(default)]
    pub option_values: std::collections::BTreeMap<String, String>,
}

/// What the kind needs.
#[derive(Serialize, Deserialize, ToSchema, Clone, Default)]
pub struct ProductDetails {
    /// Membership: days of access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership_days: Option<i64>,
    /// Membership: months of access by the calendar in the shop's time zone (instead of days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership_months: Option<i64>,
    /// Crowdfunding: target, decimal string in the shop currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_amount: Option<String>,
    /// Crowdfunding: deadline (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// Service: ask for a date and a note.
    #[serde(default)]
    pub booking: bool,
    /// Licence key: devices one key may be activated on (absent: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_limit: Option<i64>,
    /// Licence key: days a key works after purchase (absent: for ever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_days: Option<i64>,
    /// Licence key: pattern of generated keys, `#` for a random character.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_pattern: Option<String>,
}

/// A product.
#[derive(Serialize, ToSchema)]
pub struct Product {
    pub id: i64,
    pub title: String,
    /// Markdown source.
    pub body: String,
    /// The description as sanitised HTML.
    pub body_html: String,
    pub handle: String,
    /// physical, digital, license, membership, service, crowdfunding.
    pub kind: String,
    /// draft, active, archived.
    pub status: String,
    pub vendor: String,
    pub product_type: String,
    /// Comma-separated.
    pub tags: String,
    /// When an active product appears in the shop (null: as soon as it is active).
    pub published_at: Option<String>,
    pub seo_title: String,
    pub seo_description: String,
    pub options: Vec<ProductOption>,
    pub variants: Vec<Variant>,
    pub translations: Vec<ProductTranslation>,
    pub details: ProductDetails,
    /// The product's images, in order (videos and embeds are in `media`).
    pub images: Vec<Image>,
    /// The first image, if any.
    pub image: Option<Image>,
    /// Every media item (images, uploaded videos, Bilibili/YouTube embeds), in order.
    pub media: Vec<Image>,
    pub created_at: String,
    pub updated_at: String,
}

/// A media item: an image (Shopify's product image shape), an uploaded video or an embed.
#[derive(Serialize, ToSchema, Clone)]
pub struct Image {
    pub id: i64,
    pub product_id: i64,
    pub position: i64,
    /// `IMAGE`, `VIDEO` or `EXTERNAL_VIDEO`.
    pub media_content_type: String,
    /// `fetching`, `processing`, `ready` or `failed`.
    pub status: String,
    /// Absolute URL of the original file (an embed: its page).
    pub src: String,
    pub width: i64,
    pub height: i64,
    /// In the shop's default language.
    pub alt: Option<String>,
    /// Alt text per language.
    pub alt_translations: std::collections::BTreeMap<String, String>,
    /// Generated sizes (thumb, medium, large; JPEG/PNG and WebP).
    pub sizes: Vec<ImageSize>,
    /// Why fetching or processing failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// One generated size.
#[derive(Serialize, ToSchema, Clone)]
pub struct ImageSize {
    pub name: String,
    pub src: String,
    pub width: u32,
    pub height: u32,
    pub mime_type: String,
}

pub(crate) fn image_json(
    m: &yiren_core::media::Media,
    base: &str,
    default: yiren_core::Locale,
) -> Image {
    let r = &m.row;
    let url = |key: &str| format!("{base}{}", yiren_core::media::file_url(key));
    Image {
        id: r.id,
        product_id: r.product_id,
        position: r.position,
        media_content_type: match r.kind.as_str() {
            "image" => "IMAGE",
            "video" => "VIDEO",
            _ => "EXTERNAL_VIDEO",
        }
        .into(),
        status: r.status.clone(),
        src: if r.kind == "embed" || r.storage_key.is_empty() {
            r.source_url.clone()
        } else {
            url(&r.storage_key)
        },
        width: r.width,
        height: r.height,
        alt: m.alt.get(default.tag()).cloned(),
        alt_translations: m.alt.clone(),
        sizes: m
            .sizes
            .iter()
            .map(|s| ImageSize {
                name: s.name.clone(),
                src: url(&s.key),
                width: s.width,
                height: s.height,
                mime_type: s.mime.clone(),
            })
            .collect(),
        error: (!r.error.is_empty()).then(|| r.error.clone()),
        created_at: ts(r.created_at),
        updated_at: ts(r.updated_at),
    }
}

/// How media appear in product JSON: where files are served from, and the default language.
pub(crate) struct MediaContext<'a> {
    pub base: String,
    pub default: yiren_core::Locale,
    pub media: &'a std::collections::BTreeMap<i64, Vec<yiren_core::media::Media>>,
}

fn product_json(p: &DomainProduct, currency: &str, mc: &MediaContext<'_>) -> Product {
    let media: Vec<Image> = mc
        .media
        .get(&p.row.id)
        .map(|ms| {
            ms.iter()
                .map(|m| image_json(m, &mc.base, mc.default))
                .collect()
        })
        .unwrap_or_default();
    let images: Vec<Image> = media
        .iter()
        .filter(|m| m.media_content_type == "IMAGE")
        .cloned()
        .collect();
    let fmt = |m: i64, c: &str| money::format(m, c);
    let some = |s: &String| (!s.is_empty()).then(|| s.clone());
    Product {
        id: p.row.id,
        title: p.row.title.clone(),
        body: p.row.body.clone(),
        body_html: yiren_core::reach::broadcast::markdown_html(&p.row.body),
        handle: p.row.handle.clone(),
        kind: p.row.kind.clone(),
        status: p.row.status.clone(),
        vendor: p.row.vendor.clone(),
        product_type: p.row.product_type.clone(),
        tags: p.row.tags.clone(),
        published_at: ts_opt(p.row.publish_at),
        seo_title: p.row.seo_title.clone(),
        seo_description: p.row.seo_description.clone(),
        options: p
            .options
            .iter()
            .enumerate()
            .map(|(i, o)| ProductOption {
                name: o.name.clone(),
                position: i as i64 + 1,
                values: o.values.clone(),
            })
            .collect(),
        variants: p
            .variants
            .iter()
            .map(|v| {
                let r = &v.row;
                let own = v.price(currency);
                Variant {
                    id: r.id,
                    product_id: r.product_id,
                    title: v.title(),
                    price: own.map(|p| fmt(p.amount, currency)),
                    compare_at_price: own.and_then(|p| p.compare_at).map(|c| fmt(c, currency)),
                    presentment_prices: v
                        .prices
                        .iter()
                        .map(|p| PresentmentPrice {
                            amount: fmt(p.amount, &p.currency),
                            currency_code: p.currency.clone(),
                            compare_at_price: p.compare_at.map(|c| fmt(c, &p.currency)),
                        })
                        .collect(),
                    sku: r.sku.clone(),
                    barcode: r.barcode.clone(),
                    position: r.position,
                    option1: some(&r.option1),
                    option2: some(&r.option2),
                    option3: some(&r.option3),
                    grams: r.grams,
                    cost: r.cost.map(|c| fmt(c, currency)),
                    inventory_management: (r.track_inventory == 1).then(|| "yiren".to_string()),
                    inventory_policy: r.inventory_policy.clone(),
                    inventory_quantity: r.inventory_quantity,
                    requires_shipping: r.requires_shipping == 1,
                    created_at: ts(r.created_at),
                    updated_at: ts(r.updated_at),
                }
            })
            .collect(),
        translations: p
            .translations
            .iter()
            .map(|t| ProductTranslation {
                locale: t.locale.clone(),
                title: t.title.clone(),
                body: t.body.clone(),
                seo_title: t.seo_title.clone(),
                seo_description: t.seo_description.clone(),
                options: t.options.clone(),
                option_values: t.values.clone(),
            })
            .collect(),
        details: ProductDetails {
            membership_days: p.details.membership_days,
            membership_months: p.details.membership_months,
            target_amount: p.details.target_amount.map(|a| fmt(a, currency)),
            deadline: ts_opt(p.details.deadline),
            booking: p.details.booking,
            activation_limit: p.details.activation_limit,
            license_days: p.details.license_days,
            license_pattern: p.details.license_pattern.clone(),
        },
        image: images.first().cloned(),
        images,
        media,
        created_at: ts(p.row.created_at),
        updated_at: ts(p.row.updated_at),
    }
}

/// Products as JSON, with their media (one query for all).
async fn products_json(
    state: &AppState,
    headers: &HeaderMap,
    ps: &[DomainProduct],
) -> Result<Vec<Product>, ApiError> {
    let site = state.settings().await;
    let ids: Vec<i64> = ps.iter().map(|p| p.row.id).collect();
    let media = yiren_core::media::of_products(&state.ctx, &ids).await?;
    let mc = MediaContext {
        base: base_url(state.config.public_url.as_deref(), headers),
        default: site.default_locale,
        media: &media,
    };
    Ok(ps
        .iter()
        .map(|p| product_json(p, &site.currency, &mc))
        .collect())
}

async fn one_json(
    state: &AppState,
    headers: &HeaderMap,
    p: DomainProduct,
) -> Result<Product, ApiError> {
    Ok(products_json(state, headers, std::slice::from_ref(&p))
        .await?
        .remove(0))
}

/// `{"product": {...}}`
#[derive(Serialize, ToSchema)]
pub struct ProductResponse {
    pub product: Product,
}

/// `{"products": [...]}`
#[derive(Serialize, ToSchema)]
pub struct ProductListResponse {
    pub products: Vec<Product>,
}

/// A variant to create (no `id`) or keep (its `id`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantInput {
    pub id: Option<i64>,
    pub option1: Option<String>,
    pub option2: Option<String>,
    pub option3: Option<String>,
    /// Decimal string in the shop currency.
    pub price: String,
    pub compare_at_price: Option<String>,
    /// Prices in other currencies.
    #[serde(default)]
    pub presentment_prices: Vec<PresentmentPrice>,
    #[serde(default)]
    pub sku: String,
    #[serde(default)]
    pub barcode: String,
    #[serde(default)]
    pub grams: i64,
    pub cost: Option<String>,
    /// `"yiren"` to track stock; null or absent: not tracked.
    pub inventory_management: Option<String>,
    /// `deny` (default) or `continue`.
    pub inventory_policy: Option<String>,
    /// Starting stock of a new variant; ignored for an existing one.
    #[serde(default)]
    pub inventory_quantity: i64,
    /// Default: as the kind suggests (physical goods and campaigns ship).
    pub requires_shipping: Option<bool>,
}

/// An option name (its values come from the variants).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionInput {
    pub name: String,
}

/// The fields of a product. On update every field is replaced; variants not listed are deleted.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInputJson {
    pub title: String,
    /// Markdown.
    #[serde(default)]
    pub body: String,
    /// Empty or absent: made from the title (create) or kept (update).
    #[serde(default)]
    pub handle: String,
    /// Default `physical`.
    pub kind: Option<String>,
    /// Default `draft`.
    pub status: Option<String>,
    #[serde(default)]
    pub vendor: String,
    #[serde(default)]
    pub product_type: String,
    #[serde(default)]
    pub tags: String,
    /// RFC 3339; null: as soon as it is active.
    pub published_at: Option<String>,
    #[serde(default)]
    pub seo_title: String,
    #[serde(default)]
    pub seo_description: String,
    #[serde(default)]
    pub options: Vec<OptionInput>,
    pub variants: Vec<VariantInput>,
    #[serde(default)]
    pub translations: Vec<ProductTranslation>,
    #[serde(default)]
    pub details: ProductDetails,
}

/// `{"product": {...}}`
#[derive(Deserialize, ToSchema)]
pub struct ProductRequest {
    pub product: ProductInputJson,
}

fn parse_input(j: ProductInputJson, currency: &str) -> Result<ProductInput, ApiError> {
    let kind = match j.kind.as_deref() {
        None => Kind::Physical,
        Some(k) => {
            Kind::parse(k).ok_or_else(|| ApiError::invalid("catalog.kind_invalid").field("kind"))?
        }
    };
    let time = |s: &Option<String>, field: &'static str| -> Result<Option<i64>, ApiError> {
        match s.as_deref() {
            None | Some("") => Ok(None),
            Some(t) => clock::parse_rfc3339(t)
                .map(Some)
                .ok_or_else(|| ApiError::invalid("error.invalid").field(field)),
        }
    };
    let amount =
        |s: &str, c: &str, field: &'static str| money::parse(s, c, field).map_err(ApiError::from);
    let mut variants = Vec::with_capacity(j.variants.len());
    for v in j.variants {
        let mut prices = vec![Price {
            currency: currency.to_string(),
            amount: amount(&v.price, currency, "price")?,
            compare_at: v
                .compare_at_price
                .as_deref()
                .map(|c| amount(c, currency, "compare_at_price"))
                .transpose()?,
        }];
        for p in &v.presentment_prices {
            if p.currency_code == currency {
                continue;
            }
            prices.push(Price {
                currency: p.currency_code.clone(),
                amount: amount(&p.amount, &p.currency_code, "presentment_prices")?,
                compare_at: p
                    .compare_at_price
                    .as_deref()
                    .map(|c| amount(c, &p.currency_code, "presentment_prices"))
                    .transpose()?,
            });
        }
        let continue_selling = match v.inventory_policy.as_deref() {
            None | Some("deny") => false,
            Some("continue") => true,
            Some(_) => return Err(ApiError::invalid("error.invalid").field("inventory_policy")),
        };
        let track = match v.inventory_management.as_deref() {
            None | Some("") => false,
            Some("yiren") | Some("shopify") => true,
            Some(_) => return Err(ApiError::invalid("error.invalid").field("inventory_management")),
        };
        variants.push(catalog::VariantInput {
            id: v.id,
            values: [v.option1, v.option2, v.option3]
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect(),
            sku: v.sku,
            barcode: v.barcode,
            grams: v.grams,
            requires_shipping: v.requires_shipping,
            cost: v
                .cost
                .as_deref()
                .map(|c| amount(c, currency, "cost"))
                .transpose()?,
            track_inventory: track,
            continue_selling,
            initial_stock: v.inventory_quantity,
            prices,
        });
    }
    Ok(ProductInput {
        title: j.title,
        body: j.body,
        handle: j.handle,
        kind,
        status: j.status.unwrap_or_else(|| "draft".into()),
        vendor: j.vendor,
        product_type: j.product_type,
        tags: j.tags,
        seo_title: j.seo_title,
        seo_description: j.seo_description,
        publish_at: time(&j.published_at, "published_at")?,
        details: Details {
            membership_days: j.details.membership_days,
            membership_months: j.details.membership_months,
            target_amount: j
                .details
                .target_amount
                .as_deref()
                .map(|a| amount(a, currency, "target_amount"))
                .transpose()?,
            deadline: time(&j.details.deadline, "deadline")?,
            booking: j.details.booking,
            activation_limit: j.details.activation_limit,
            license_days: j.details.license_days,
            license_pattern: j.details.license_pattern,
        },
        options: j.options.into_iter().map(|o| o.name).collect(),
        variants,
        translations: j
            .translations
            .into_iter()
            .map(|t| catalog::Translation {
                locale: t.locale,
                title: t.title,
                body: t.body,
                seo_title: t.seo_title,
                seo_description: t.seo_description,
                options: t.options,
                values: t.option_values,
            })
            .collect(),
    })
}

/// List filters.
#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct ProductFilterQuery {
    /// draft, active or archived.
    pub status: Option<String>,
    /// A product kind.
    pub kind: Option<String>,
    /// Substring of title, handle, vendor, type or tags.
    pub query: Option<String>,
}

#[derive(Deserialize, Serialize)]
struct Cursor {
    before: i64,
    status: String,
    kind: String,
    query: String,
}

fn filter_of(status: String, kind: String, query: String) -> Result<ProductFilter, ApiError> {
    if !status.is_empty() && !catalog::STATUSES.contains(&status.as_str()) {
        return Err(ApiError::invalid("catalog.status_invalid").field("status"));
    }
    if !kind.is_empty() && Kind::parse(&kind).is_none() {
        return Err(ApiError::invalid("catalog.kind_invalid").field("kind"));
    }
    Ok(ProductFilter {
        status,
        kind,
        query: query.chars().take(100).collect(),
    })
}

/// List products, newest first.
#[utoipa::path(get, path = "/api/v1/products", tag = "products", params(PageQuery, ProductFilterQuery),
    responses((status = 200, body = ProductListResponse, headers(("Link" = String, description = "rel=\"next\" cursor URL when more pages exist")))))]
pub async fn list_products(
    State(state): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
    Query(f): Query<ProductFilterQuery>,
) -> Result<Response, ApiError> {
    p.require("products:read")?;
    let paging = q.parse::<Cursor>()?;
    let c = paging.cursor.unwrap_or(Cursor {
        before: 0,
        status: f.status.unwrap_or_default(),
        kind: f.kind.unwrap_or_default(),
        query: f.query.unwrap_or_default(),
    });
    let filter = filter_of(c.status.clone(), c.kind.clone(), c.query.clone())?;
    let mut rows = catalog::list(&state.ctx, &filter, c.before, paging.limit + 1).await?;
    let more = rows.len() as i64 > paging.limit;
    rows.truncate(paging.limit as usize);
    let next = more.then(|| Cursor {
        before: rows.last().map(|p| p.row.id).unwrap_or(0),
        ..c
    });
    let body = Json(ProductListResponse {
        products: products_json(&state, &headers, &rows).await?,
    });
    Ok(with_link(
        body,
        &base_url(state.config.public_url.as_deref(), &headers),
        "/api/v1/products",
        paging.limit,
        next,
    ))
}

/// Count products (same filters as the list).
#[utoipa::path(get, path = "/api/v1/products/count", tag = "products", params(ProductFilterQuery),
    responses((status = 200, body = super::extract::CountResponse)))]
pub async fn count_products(
    State(state): State<AppState>,
    p: Principal,
    Query(f): Query<ProductFilterQuery>,
) -> Result<Json<super::extract::CountResponse>, ApiError> {
    p.require("products:read")?;
    let filter = filter_of(
        f.status.unwrap_or_default(),
        f.kind.unwrap_or_default(),
        f.query.unwrap_or_default(),
    )?;
    Ok(Json(super::extract::CountResponse {
        count: catalog::count(&state.ctx, &filter).await?,
    }))
}

/// One product.
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "products", params(("id" = i64, Path)),
    responses((status = 200, body = ProductResponse), (status = 404, body = ErrorBody)))]
pub async fn get_product(
    State(state): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<ProductResponse>, ApiError> {
    p.require("products:read")?;
    let found = catalog::get(&state.ctx, id).await?;
    Ok(Json(ProductResponse {
        product: one_json(&state, &headers, found).await?,
    }))
}

fn actor(p: &Principal) -> String {
    format!("{} (API: {})", p.staff.email, p.token.name)
}

/// Create a product.
#[utoipa::path(post, path = "/api/v1/products", tag = "products", request_body = ProductRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 hours")),
    responses((status = 201, body = ProductResponse), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_product(
    State(state): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    body: ApiJson<ProductRequest>,
) -> Result<(StatusCode, Json<ProductResponse>), ApiError> {
    p.require("products:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let currency = state.settings().await.currency;
    let input = parse_input(body.product, &currency)?;
    let made = catalog::create(&state.ctx, &input, &actor(&p)).await?;
    Ok((
        StatusCode::CREATED,
        Json(ProductResponse {
            product: one_json(&state, &headers, made).await?,
        }),
    ))
}

/// Replace a product's fields and variants (variants keep their id and stock when listed with it).
#[utoipa::path(put, path = "/api/v1/products/{id}", tag = "products", params(("id" = i64, Path)), request_body = ProductRequest,
    responses((status = 200, body = ProductResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_product(
    State(state): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: ApiJson<ProductRequest>,
) -> Result<Json<ProductResponse>, ApiError> {
    p.require("products:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let currency = state.settings().await.currency;
    let input = parse_input(body.product, &currency)?;
    let saved = catalog::update(&state.ctx, id, &input, &actor(&p)).await?;
    Ok(Json(ProductResponse {
        product: one_json(&state, &headers, saved).await?,
    }))
}

/// Delete a product with its variants.
#[utoipa::path(delete, path = "/api/v1/products/{id}", tag = "products", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_product(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    p.require("products:write")?;
    catalog::delete(&state.ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A stock change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustRequest {
    pub variant_id: i64,
    /// Positive or negative, not zero.
    pub available_adjustment: i64,
    /// Why (kept in the ledger).
    pub reason: String,
}

/// A variant's stock.
#[derive(Serialize, ToSchema)]
pub struct InventoryLevel {
    pub variant_id: i64,
    pub available: i64,
}

/// `{"inventory_level": {...}}`
#[derive(Serialize, ToSchema)]
pub struct InventoryLevelResponse {
    pub inventory_level: InventoryLevel,
}

/// Change a variant's stock by an amount, with a reason.
#[utoipa::path(post, path = "/api/v1/inventory_levels/adjust", tag = "products", request_body = AdjustRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 hours: send one so a retried adjustment is not applied twice")),
    responses((status = 200, body = InventoryLevelResponse), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn adjust_inventory(
    State(state): State<AppState>,
    p: Principal,
    body: ApiJson<AdjustRequest>,
) -> Result<Json<InventoryLevelResponse>, ApiError> {
    p.require("products:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let available = catalog::adjust(
        &state.ctx,
        body.variant_id,
        body.available_adjustment,
        &body.reason,
        &actor(&p),
    )
    .await?;
    Ok(Json(InventoryLevelResponse {
        inventory_level: InventoryLevel {
            variant_id: body.variant_id,
            available,
        },
    }))
}

/// `{"variant": {...}}`
#[derive(Serialize, ToSchema)]
pub struct VariantResponse {
    pub variant: Variant,
}

/// One variant (stock, prices, options).
#[utoipa::path(get, path = "/api/v1/variants/{id}", tag = "products", params(("id" = i64, Path)),
    responses((status = 200, body = VariantResponse), (status = 404, body = ErrorBody)))]
pub async fn get_variant(
    State(state): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<VariantResponse>, ApiError> {
    p.require("products:read")?;
    let product_id = catalog::variant_product(&state.ctx, id).await?;
    let product = one_json(
        &state,
        &headers,
        catalog::get(&state.ctx, product_id).await?,
    )
    .await?;
    let variant = product
        .variants
        .into_iter()
        .find(|v| v.id == id)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(VariantResponse { variant }))
}
