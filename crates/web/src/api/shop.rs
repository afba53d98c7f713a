//! `/shop`: the site's settings.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yiren_core::settings::{self, SiteSettings};

use super::extract::{ApiJson, Principal};
use crate::error::ApiError;
use crate::AppState;

/// The shop.
#[derive(Serialize, ToSchema)]
pub struct Shop {
    /// Site name.
    pub name: String,
    /// Default language: `zh-CN` or `en`.
    pub default_locale: String,
    /// ISO 4217 currency code.
    pub currency: String,
    /// IANA time zone.
    pub time_zone: String,
}

impl From<SiteSettings> for Shop {
    fn from(s: SiteSettings) -> Self {
        Shop {
            name: s.name,
            default_locale: s.default_locale.tag().into(),
            currency: s.currency,
            time_zone: s.time_zone,
        }
    }
}

/// `{"shop": {...}}`
#[derive(Serialize, ToSchema)]
pub struct ShopResponse {
    pub shop: Shop,
}

/// Fields to change; omitted fields keep their value.
#[derive(Deserialize, ToSchema)]
pub struct ShopUpdate {
    pub name: Option<String>,
    pub default_locale: Option<String>,
    pub currency: Option<String>,
    pub time_zone: Option<String>,
}

/// `{"shop": {...}}`
#[derive(Deserialize, ToSchema)]
pub struct UpdateShopRequest {
    pub shop: ShopUpdate,
}

/// Get the shop.
#[utoipa::path(get, path = "/api/v1/shop", tag = "shop",
    responses((status = 200, body = ShopResponse), (status = 401, body = super::extract::ErrorBody), (status = 403, body = super::extract::ErrorBody)))]
pub async fn get_shop(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<ShopResponse>, ApiError> {
    p.require("shop:read")?;
    let s = settings::load(&state.ctx).await?;
    Ok(Json(ShopResponse { shop: s.into() }))
}

/// Update the shop (owner tokens with `shop:write`).
#[utoipa::path(put, path = "/api/v1/shop", tag = "shop", request_body = UpdateShopRequest,
    responses((status = 200, body = ShopResponse), (status = 422, body = super::extract::ErrorBody)))]
pub async fn update_shop(
    State(state): State<AppState>,
    p: Principal,
    body: ApiJson<UpdateShopRequest>,
) -> Result<Json<ShopResponse>, ApiError> {
    p.require("shop:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let cur = settings::load(&state.ctx).await?;
    let u = body.shop;
    let next = SiteSettings::parse(
        u.name.as_deref().unwrap_or(&cur.name),
        u.default_locale
            .as_deref()
            .unwrap_or(cur.default_locale.tag()),
        u.currency.as_deref().unwrap_or(&cur.currency),
        u.time_zone.as_deref().unwrap_or(&cur.time_zone),
    )?;
    settings::save(&state.ctx, &next).await?;
    state.refresh_settings().await;
    Ok(Json(ShopResponse { shop: next.into() }))
}
