//! `/collections` (scopes `products:read`, `products:write`): manual collections (`collects`: the
//! product ids in order) and automatic ones (`rules` over tag, type, vendor, price, stock; all or
//! any) in one resource — Shopify splits them into custom and smart collections; the shapes follow
//! those. `/variants/{id}`: one variant.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yiren_core::catalog::collection::{self, CollectionInput, CollectionText, Field, Rule};
use yiren_core::money;

use super::extract::{ts, ApiJson, ErrorBody, Principal};
use crate::error::ApiError;
use crate::AppState;

/// A rule of an automatic collection.
#[derive(Serialize, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct CollectionRule {
    /// `tag`, `type`, `vendor`, `price_at_least`, `price_at_most`, `in_stock`.
    pub column: String,
    /// Prices as decimal strings in the shop currency; ignored for `in_stock`.
    #[serde(default)]
    pub condition: String,
}

/// A collection's text in another language.
#[derive(Serialize, Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct CollectionTranslation {
    pub locale: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub body: String,
}

/// A collection.
#[derive(Serialize, ToSchema)]
pub struct ApiCollection {
    pub id: i64,
    pub handle: String,
    pub title: String,
    /// Markdown.
    pub body: String,
    /// `manual` or `automatic`.
    pub collection_type: String,
    pub rules: Vec<CollectionRule>,
    /// Automatic: a product must match every rule (true) or any (false).
    pub disjunctive: bool,
    /// The member products, in order (for automatic collections: as the rules found them).
    pub product_ids: Vec<i64>,
    pub translations: Vec<CollectionTranslation>,
    pub created_at: String,
    pub updated_at: String,
}

/// `{"collection": {...}}`
#[derive(Serialize, ToSchema)]
pub struct CollectionResponse {
    pub collection: ApiCollection,
}

/// `{"collections": [...]}`
#[derive(Serialize, ToSchema)]
pub struct CollectionListResponse {
    pub collections: Vec<ApiCollection>,
}

/// The fields of a collection (all replaced on update).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionInputJson {
    pub title: String,
    #[serde(default)]
    pub body: String,
    /// Empty or absent: made from the title (create) or kept (update).
    #[serde(default)]
    pub handle: String,
    /// `manual` (default) or `automatic`.
    pub collection_type: Option<String>,
    #[serde(default)]
    pub rules: Vec<CollectionRule>,
    /// Any rule suffices (default false: every rule must match).
    #[serde(default)]
    pub disjunctive: bool,
    /// Manual: the products, in order.
    #[serde(default)]
    pub product_ids: Vec<i64>,
    #[serde(default)]
    pub translations: Vec<CollectionTranslation>,
}

/// `{"collection": {...}}`
#[derive(Deserialize, ToSchema)]
pub struct CollectionRequest {
    pub collection: CollectionInputJson,
}

async fn json_of(
    state: &AppState,
    c: &collection::Collection,
    currency: &str,
) -> Result<ApiCollection, ApiError> {
    let money_rule = |f: Field| matches!(f, Field::PriceAtLeast | Field::PriceAtMost);
    Ok(ApiCollection {
        id: c.row.id,
        handle: c.row.handle.clone(),
        title: c.row.title.clone(),
        body: c.row.body.clone(),
        collection_type: c.row.kind.clone(),
        rules: c
            .rules
            .iter()
            .map(|r| CollectionRule {
                column: r.field.as_str().into(),
                condition: match r.value.parse::<i64>() {
                    Ok(m) if money_rule(r.field) => money::format(m, currency),
                    _ => r.value.clone(),
                },
            })
            .collect(),
        disjunctive: c.row.match_all == 0,
        product_ids: collection::members(&state.ctx, c.row.id).await?,
        translations: c
            .translations
            .iter()
            .map(|(locale, t)| CollectionTranslation {
                locale: locale.clone(),
                title: t.title.clone(),
                body: t.body.clone(),
            })
            .collect(),
        created_at: ts(c.row.created_at),
        updated_at: ts(c.row.updated_at),
    })
}

fn input_of(j: CollectionInputJson, currency: &str) -> Result<CollectionInput, ApiError> {
    let automatic = match j.collection_type.as_deref() {
        None | Some("manual") => false,
        Some("automatic") => true,
        Some(_) => return Err(ApiError::invalid("catalog.rules_invalid").field("collection_type")),
    };
    let mut rules = Vec::new();
    for r in j.rules {
        let field = Field::parse(&r.column)
            .ok_or_else(|| ApiError::invalid("catalog.rules_invalid").field("rules"))?;
        let value = match field {
            Field::PriceAtLeast | Field::PriceAtMost => {
                money::parse(&r.condition, currency, "rules")?.to_string()
            }
            _ => r.condition,
        };
        rules.push(Rule { field, value });
    }
    let mut translations = BTreeMap::new();
    for t in j.translations {
        translations.insert(
            t.locale,
            CollectionText {
                title: t.title,
                body: t.body,
            },
        );
    }
    Ok(CollectionInput {
        title: j.title,
        body: j.body,
        handle: j.handle,
        automatic,
        rules,
        match_all: !j.disjunctive,
        products: j.product_ids,
        translations,
    })
}

/// Every collection, by title.
#[utoipa::path(get, path = "/api/v1/collections", tag = "products",
    responses((status = 200, body = CollectionListResponse)))]
pub async fn list_collections(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<CollectionListResponse>, ApiError> {
    p.require("products:read")?;
    let currency = state.settings().await.currency;
    let mut out = Vec::new();
    for c in collection::list(&state.ctx).await? {
        out.push(json_of(&state, &c, &currency).await?);
    }
    Ok(Json(CollectionListResponse { collections: out }))
}

/// One collection.
#[utoipa::path(get, path = "/api/v1/collections/{id}", tag = "products", params(("id" = i64, Path)),
    responses((status = 200, body = CollectionResponse), (status = 404, body = ErrorBody)))]
pub async fn get_collection(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Json<CollectionResponse>, ApiError> {
    p.require("products:read")?;
    let currency = state.settings().await.currency;
    let c = collection::get(&state.ctx, id).await?;
    Ok(Json(CollectionResponse {
        collection: json_of(&state, &c, &currency).await?,
    }))
}

/// Create a collection.
#[utoipa::path(post, path = "/api/v1/collections", tag = "products", request_body = CollectionRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 hours")),
    responses((status = 201, body = CollectionResponse), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_collection(
    State(state): State<AppState>,
    p: Principal,
    body: ApiJson<CollectionRequest>,
) -> Result<(StatusCode, Json<CollectionResponse>), ApiError> {
    p.require("products:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let currency = state.settings().await.currency;
    let input = input_of(body.collection, &currency)?;
    let c = collection::save(&state.ctx, None, &input).await?;
    Ok((
        StatusCode::CREATED,
        Json(CollectionResponse {
            collection: json_of(&state, &c, &currency).await?,
        }),
    ))
}

/// Replace a collection.
#[utoipa::path(put, path = "/api/v1/collections/{id}", tag = "products", params(("id" = i64, Path)), request_body = CollectionRequest,
    responses((status = 200, body = CollectionResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_collection(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
    body: ApiJson<CollectionRequest>,
) -> Result<Json<CollectionResponse>, ApiError> {
    p.require("products:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let currency = state.settings().await.currency;
    collection::get(&state.ctx, id).await?;
    let input = input_of(body.collection, &currency)?;
    let c = collection::save(&state.ctx, Some(id), &input).await?;
    Ok(Json(CollectionResponse {
        collection: json_of(&state, &c, &currency).await?,
    }))
}

/// Delete a collection (its products stay).
#[utoipa::path(delete, path = "/api/v1/collections/{id}", tag = "products", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_collection(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    p.require("products:write")?;
    collection::delete(&state.ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
