//! `/products/{id}/images`: a product's media over the API (scopes `products:read`,
//! `products:write`), in Shopify's product-image shape. An image is added from a URL (`src`,
//! downloaded by a job through the guarded client) or inline (`attachment`, base64); a video
//! link (Bilibili, YouTube) with `embed_url`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yiren_core::{catalog, media, DomainError};

use super::extract::{ApiJson, ErrorBody, Principal};
use super::page::base_url;
use super::products::{image_json, Image};
use crate::error::ApiError;
use crate::AppState;

/// `{"images": [...]}`
#[derive(Serialize, ToSchema)]
pub struct ImageListResponse {
    pub images: Vec<Image>,
}

/// `{"image": {...}}`
#[derive(Serialize, ToSchema)]
pub struct ImageResponse {
    pub image: Image,
}

/// A new media item: exactly one of `src`, `attachment`, `embed_url`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageInput {
    /// An http(s) URL to download the image from.
    pub src: Option<String>,
    /// The image file, base64 (standard alphabet).
    pub attachment: Option<String>,
    /// Informational; the type is taken from the file's bytes.
    pub filename: Option<String>,
    /// A Bilibili or YouTube video page.
    pub embed_url: Option<String>,
    /// Alt text in the shop's default language.
    pub alt: Option<String>,
    /// Alt text per language (`{"en": "..."}`); `alt` wins for the default language.
    #[serde(default)]
    pub alt_translations: BTreeMap<String, String>,
}

/// `{"image": {...}}`
#[derive(Deserialize, ToSchema)]
pub struct ImageRequest {
    pub image: ImageInput,
}

/// Changes to a media item.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageUpdate {
    pub alt: Option<String>,
    pub alt_translations: Option<BTreeMap<String, String>>,
    /// New position (1 = first); the others move up or down.
    pub position: Option<i64>,
}

/// `{"image": {...}}`
#[derive(Deserialize, ToSchema)]
pub struct ImageUpdateRequest {
    pub image: ImageUpdate,
}

async fn json_of(state: &AppState, headers: &HeaderMap, m: &media::Media) -> Image {
    let site = state.settings().await;
    image_json(
        m,
        &base_url(state.config.public_url.as_deref(), headers),
        site.default_locale,
    )
}

/// List a product's media, in order.
#[utoipa::path(get, path = "/api/v1/products/{id}/images", tag = "products", params(("id" = i64, Path)),
    responses((status = 200, body = ImageListResponse), (status = 404, body = ErrorBody)))]
pub async fn list_images(
    State(state): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<ImageListResponse>, ApiError> {
    p.require("products:read")?;
    catalog::get(&state.ctx, id).await?;
    let mut images = Vec::new();
    for m in media::of_product(&state.ctx, id).await? {
        images.push(json_of(&state, &headers, &m).await);
    }
    Ok(Json(ImageListResponse { images }))
}

/// Add an image (from `src` or `attachment`) or a video link (`embed_url`).
#[utoipa::path(post, path = "/api/v1/products/{id}/images", tag = "products", params(("id" = i64, Path),
    ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 hours")),
    request_body = ImageRequest,
    responses((status = 201, body = ImageResponse), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_image(
    State(state): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: ApiJson<ImageRequest>,
) -> Result<(StatusCode, Json<ImageResponse>), ApiError> {
    p.require("products:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let i = body.image;
    let site = state.settings().await;
    let mut alt = i.alt_translations;
    if let Some(a) = i.alt {
        alt.insert(site.default_locale.tag().to_string(), a);
    }
    let made = match (i.src, i.attachment, i.embed_url) {
        (Some(src), None, None) => media::add_from_url(&state.ctx, id, &src, &alt).await?,
        (None, Some(data), None) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|_| ApiError::invalid("media.type_unsupported").field("attachment"))?;
            crate::files::upload(&state, id, bytes, &alt, true)
                .await
                .map_err(|e| match e {
                    e @ DomainError::Invalid { .. } => ApiError::from(e).field("attachment"),
                    e => ApiError::from(e),
                })?
        }
        (None, None, Some(url)) => media::add_embed(&state.ctx, id, &url, &alt).await?,
        _ => return Err(ApiError::invalid("media.file_required").field("src")),
    };
    Ok((
        StatusCode::CREATED,
        Json(ImageResponse {
            image: json_of(&state, &headers, &made).await,
        }),
    ))
}

async fn owned(state: &AppState, product: i64, id: i64) -> Result<media::Media, ApiError> {
    let m = media::get(&state.ctx, id).await?;
    if m.row.product_id != product {
        return Err(ApiError::not_found());
    }
    Ok(m)
}

/// Change a media item's alt text or position.
#[utoipa::path(put, path = "/api/v1/products/{id}/images/{image_id}", tag = "products",
    params(("id" = i64, Path), ("image_id" = i64, Path)), request_body = ImageUpdateRequest,
    responses((status = 200, body = ImageResponse), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_image(
    State(state): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Path((id, image_id)): Path<(i64, i64)>,
    body: ApiJson<ImageUpdateRequest>,
) -> Result<Json<ImageResponse>, ApiError> {
    p.require("products:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let m = owned(&state, id, image_id).await?;
    let u = body.image;
    if u.alt.is_some() || u.alt_translations.is_some() {
        let site = state.settings().await;
        let mut alt = u.alt_translations.unwrap_or_else(|| m.alt.clone());
        if let Some(a) = u.alt {
            alt.insert(site.default_locale.tag().to_string(), a);
        }
        media::set_alt(&state.ctx, id, image_id, &alt).await?;
    }
    if let Some(pos) = u.position {
        let mut ids: Vec<i64> = media::of_product(&state.ctx, id)
            .await?
            .iter()
            .map(|m| m.row.id)
            .filter(|m| *m != image_id)
            .collect();
        let at = (pos.max(1) as usize - 1).min(ids.len());
        ids.insert(at, image_id);
        media::reorder(&state.ctx, id, &ids).await?;
    }
    let m = media::get(&state.ctx, image_id).await?;
    Ok(Json(ImageResponse {
        image: json_of(&state, &headers, &m).await,
    }))
}

/// Delete a media item (its files are removed by a job).
#[utoipa::path(delete, path = "/api/v1/products/{id}/images/{image_id}", tag = "products",
    params(("id" = i64, Path), ("image_id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_image(
    State(state): State<AppState>,
    p: Principal,
    Path((id, image_id)): Path<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    p.require("products:write")?;
    owned(&state, id, image_id).await?;
    media::remove(&state.ctx, id, image_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
