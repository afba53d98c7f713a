//! `/discounts` (scopes `discounts:read`, `discounts:write`): codes and automatic discounts in one
//! resource — Shopify splits a discount into a price rule and its codes; this keeps one code per
//! discount, with the price rule's fields (value, target selection, prerequisite subtotal, dates,
//! usage limits). Amounts are decimal strings in the shop currency; percentages decimal strings
//! of percent (`"12.5"`). A discount orders have used cannot be deleted (turn it off with
//! `"status": "disabled"`: their records stay whole).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yiren_core::discount::{self, DiscountInput};
use yiren_core::{clock, money};
use yiren_store::order::DiscountRow;

use super::extract::{ts, ts_opt, ApiJson, ErrorBody, Principal};
use super::page::{base_url, with_link, PageQuery};
use crate::error::ApiError;
use crate::AppState;

/// A discount.
#[derive(Serialize, ToSchema)]
pub struct ApiDiscount {
    pub id: i64,
    /// The code customers enter (upper case); null: applies automatically.
    pub code: Option<String>,
    pub title: String,
    /// `percent`, `amount`, `free_shipping` or `buy_x_get_y`.
    pub kind: String,
    /// `percent` and `buy_x_get_y`: percent off (`"20"`, `"12.5"`; buy X get Y: off the Y
    /// units, `"100"` = free); `amount`: decimal string in the shop currency; else `"0"`.
    pub value: String,
    /// Buy X get Y: units to buy, and units that get the value off.
    pub buy: i64,
    pub get: i64,
    /// `all`, `products` or `collections`.
    pub applies_to: String,
    /// The product or collection ids of `applies_to` (empty for `all`).
    pub entitled_ids: Vec<i64>,
    /// Minimum subtotal of the order (decimal string in the shop currency).
    pub prerequisite_subtotal: String,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    /// Orders that may use it in all; null: no limit.
    pub usage_limit: Option<i64>,
    /// Orders one customer may use it on; null: no limit.
    pub usage_limit_per_customer: Option<i64>,
    /// Orders holding a use now (given back when an unpaid order is cancelled or expires).
    pub usage_count: i64,
    /// `active` or `disabled`.
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

/// `{"discount": {...}}`
#[derive(Serialize, ToSchema)]
pub struct DiscountResponse {
    pub discount: ApiDiscount,
}

/// `{"discounts": [...]}`
#[derive(Serialize, ToSchema)]
pub struct DiscountListResponse {
    pub discounts: Vec<ApiDiscount>,
}

/// A discount to create, or its new state (every field; what is left out takes its default).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscountInputJson {
    /// Empty or absent: automatic.
    #[serde(default)]
    pub code: Option<String>,
    pub title: String,
    pub kind: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub buy: i64,
    #[serde(default)]
    pub get: i64,
    /// Default `all`.
    #[serde(default)]
    pub applies_to: Option<String>,
    #[serde(default)]
    pub entitled_ids: Vec<i64>,
    #[serde(default)]
    pub prerequisite_subtotal: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub starts_at: Option<String>,
    #[serde(default)]
    pub ends_at: Option<String>,
    #[serde(default)]
    pub usage_limit: Option<i64>,
    #[serde(default)]
    pub usage_limit_per_customer: Option<i64>,
    /// `active` or `disabled`; left out: active for a new discount, unchanged for an update.
    #[serde(default)]
    pub status: Option<String>,
}

/// `{"discount": {...}}`
#[derive(Deserialize, ToSchema)]
pub struct DiscountRequest {
    pub discount: DiscountInputJson,
}

fn percent(bp: i64) -> String {
    money::format(bp, "USD")
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
}

fn json_of(d: &DiscountRow, currency: &str) -> ApiDiscount {
    let i = discount::input_of(d);
    ApiDiscount {
        id: d.id,
        code: d.code.clone(),
        title: d.title.clone(),
        value: match d.kind.as_str() {
            "amount" => money::format(d.value, currency),
            "free_shipping" => "0".into(),
            _ => percent(d.value),
        },
        kind: d.kind.clone(),
        buy: d.buy,
        get: d.get,
        applies_to: d.applies.clone(),
        entitled_ids: i.targets,
        prerequisite_subtotal: money::format(d.min_subtotal, currency),
        starts_at: ts_opt(d.starts_at),
        ends_at: ts_opt(d.ends_at),
        usage_limit: d.usage_limit,
        usage_limit_per_customer: d.per_customer,
        usage_count: d.used,
        status: d.status.clone(),
        created_at: ts(d.created_at),
        updated_at: ts(d.updated_at),
    }
}

/// The request as the service's input (`was_disabled`: the status kept when none is sent).
fn input_of(
    i: DiscountInputJson,
    currency: &str,
    was_disabled: bool,
) -> Result<DiscountInput, ApiError> {
    let time = |v: Option<String>, field: &'static str| -> Result<Option<i64>, ApiError> {
        match v.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(t) => clock::parse_rfc3339(t)
                .map(Some)
                .ok_or_else(|| ApiError::invalid("error.invalid").field(field)),
        }
    };
    let value = match i.kind.as_str() {
        "amount" => money::parse(&i.value, currency, "value")?,
        "percent" => money::parse(&i.value, "USD", "value")?,
        "buy_x_get_y" if i.value.trim().is_empty() => 10_000,
        "buy_x_get_y" => money::parse(&i.value, "USD", "value")?,
        _ => 0,
    };
    let disabled = match i.status.as_deref() {
        None => was_disabled,
        Some("active") => false,
        Some("disabled") => true,
        Some(_) => return Err(ApiError::invalid("error.invalid").field("status")),
    };
    let min_subtotal = match i.prerequisite_subtotal.as_deref().map(str::trim) {
        None | Some("") => 0,
        Some(v) => money::parse(v, currency, "prerequisite_subtotal")?,
    };
    Ok(DiscountInput {
        code: i.code.unwrap_or_default(),
        title: i.title,
        kind: i.kind,
        value,
        buy: i.buy,
        get: i.get,
        applies: i.applies_to.unwrap_or_else(|| "all".into()),
        targets: i.entitled_ids,
        min_subtotal,
        starts_at: time(i.starts_at, "starts_at")?,
        ends_at: time(i.ends_at, "ends_at")?,
        usage_limit: i.usage_limit,
        per_customer: i.usage_limit_per_customer,
        disabled,
    })
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    after: i64,
}

/// Discounts, newest first.
#[utoipa::path(get, path = "/api/v1/discounts", tag = "discounts", params(PageQuery),
    responses((status = 200, body = DiscountListResponse), (status = 403, body = ErrorBody)))]
pub async fn list_discounts(
    State(state): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    p.require("discounts:read")?;
    let paging = q.parse::<Cursor>()?;
    let currency = state.settings().await.currency;
    let all = discount::list(&state.ctx).await?;
    let start = match &paging.cursor {
        Some(c) => all
            .iter()
            .position(|d| d.id == c.after)
            .map_or(all.len(), |i| i + 1),
        None => 0,
    };
    let page: Vec<&DiscountRow> = all.iter().skip(start).take(paging.limit as usize).collect();
    let next = (start + page.len() < all.len())
        .then(|| page.last().map(|d| Cursor { after: d.id }))
        .flatten();
    Ok(with_link(
        Json(DiscountListResponse {
            discounts: page.iter().map(|d| json_of(d, &currency)).collect(),
        }),
        &base_url(state.config.public_url.as_deref(), &headers),
        "/api/v1/discounts",
        paging.limit,
        next,
    ))
}

/// One discount.
#[utoipa::path(get, path = "/api/v1/discounts/{id}", tag = "discounts", params(("id" = i64, Path)),
    responses((status = 200, body = DiscountResponse), (status = 404, body = ErrorBody)))]
pub async fn get_discount(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Json<DiscountResponse>, ApiError> {
    p.require("discounts:read")?;
    let currency = state.settings().await.currency;
    let d = discount::get(&state.ctx, id).await?;
    Ok(Json(DiscountResponse {
        discount: json_of(&d, &currency),
    }))
}

/// Create a discount.
#[utoipa::path(post, path = "/api/v1/discounts", tag = "discounts", request_body = DiscountRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 hours")),
    responses((status = 201, body = DiscountResponse), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_discount(
    State(state): State<AppState>,
    p: Principal,
    body: ApiJson<DiscountRequest>,
) -> Result<(StatusCode, Json<DiscountResponse>), ApiError> {
    p.require("discounts:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let currency = state.settings().await.currency;
    let input = input_of(body.discount, &currency, false)?;
    let d = discount::create(&state.ctx, &input).await?;
    Ok((
        StatusCode::CREATED,
        Json(DiscountResponse {
            discount: json_of(&d, &currency),
        }),
    ))
}

/// Replace a discount's settings (its uses so far stay counted; a usage limit below them is
/// refused; without `status` it stays on or off as it was).
#[utoipa::path(put, path = "/api/v1/discounts/{id}", tag = "discounts", params(("id" = i64, Path)),
    request_body = DiscountRequest,
    responses((status = 200, body = DiscountResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_discount(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
    body: ApiJson<DiscountRequest>,
) -> Result<Json<DiscountResponse>, ApiError> {
    p.require("discounts:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let currency = state.settings().await.currency;
    let was_disabled = discount::get(&state.ctx, id).await?.status == "disabled";
    let input = input_of(body.discount, &currency, was_disabled)?;
    let d = discount::update(&state.ctx, id, &input).await?;
    Ok(Json(DiscountResponse {
        discount: json_of(&d, &currency),
    }))
}

/// Delete a discount no order has used (409 when one has: disable it instead).
#[utoipa::path(delete, path = "/api/v1/discounts/{id}", tag = "discounts", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_discount(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    p.require("discounts:write")?;
    discount::delete(&state.ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
