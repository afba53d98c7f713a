//! `/api_tokens`: staff API tokens.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yiren_core::api_token;

use super::extract::{ts, ts_opt, ApiJson, Principal};
use crate::error::ApiError;
use crate::AppState;

/// A token (the secret is never shown again after creation).
#[derive(Serialize, ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    /// First characters of the secret, to recognise it.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub staff_id: i64,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// `active` or `revoked`.
    pub state: String,
}

impl From<api_token::ApiToken> for ApiToken {
    fn from(t: api_token::ApiToken) -> Self {
        ApiToken {
            id: t.id,
            name: t.name,
            prefix: t.prefix,
            scopes: t.scopes,
            staff_id: t.staff_id,
            created_at: ts(t.created_at),
            last_used_at: ts_opt(t.last_used_at),
            state: if t.revoked { "revoked" } else { "active" }.into(),
        }
    }
}

/// `{"api_tokens": [...]}`
#[derive(Serialize, ToSchema)]
pub struct ApiTokenListResponse {
    pub api_tokens: Vec<ApiToken>,
}

/// A just-created token with its secret.
#[derive(Serialize, ToSchema)]
pub struct NewApiToken {
    #[serde(flatten)]
    pub token: ApiToken,
    /// The secret: shown once, store it now.
    pub secret: String,
}

/// `{"api_token": {...}}`
#[derive(Serialize, ToSchema)]
pub struct ApiTokenResponse {
    pub api_token: NewApiToken,
}

/// What to create.
#[derive(Deserialize, ToSchema)]
pub struct TokenInput {
    pub name: String,
    /// Scopes, e.g. `["jobs:read"]`.
    pub scopes: Vec<String>,
}

/// `{"api_token": {"name", "scopes"}}`
#[derive(Deserialize, ToSchema)]
pub struct CreateApiTokenRequest {
    pub api_token: TokenInput,
}

/// List tokens.
#[utoipa::path(get, path = "/api/v1/api_tokens", tag = "api_tokens", responses((status = 200, body = ApiTokenListResponse)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<ApiTokenListResponse>, ApiError> {
    p.require("tokens:read")?;
    let tokens = api_token::list(&state.ctx).await?;
    Ok(Json(ApiTokenListResponse {
        api_tokens: tokens.into_iter().map(ApiToken::from).collect(),
    }))
}

/// Create a token for the caller's account.
#[utoipa::path(post, path = "/api/v1/api_tokens", tag = "api_tokens", request_body = CreateApiTokenRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 hours")),
    responses((status = 201, body = ApiTokenResponse), (status = 422, body = super::extract::ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    p: Principal,
    body: ApiJson<CreateApiTokenRequest>,
) -> Result<(StatusCode, Json<ApiTokenResponse>), ApiError> {
    p.require("tokens:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let (token, secret) = api_token::create(
        &state.ctx,
        &p.staff,
        &body.api_token.name,
        &body.api_token.scopes,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(ApiTokenResponse {
            api_token: NewApiToken {
                token: token.into(),
                secret,
            },
        }),
    ))
}

/// Revoke a token.
#[utoipa::path(delete, path = "/api/v1/api_tokens/{id}", tag = "api_tokens", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = super::extract::ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    p.require("tokens:write")?;
    api_token::revoke_as(&state.ctx, &p.staff, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
