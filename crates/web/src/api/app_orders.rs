//! `GET /api/v1/app-orders/{id}`: an app of the owner's (registered in admin → Checkout apps)
//! confirms an order its customer paid for. HTTP Basic authentication with the app's id and
//! secret (not a bearer token: the app holds nothing else of the shop's); an app sees its own
//! orders only — another app's order, or none, is the same 404.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde::Serialize;
use utoipa::ToSchema;
use yiren_core::DomainError;

use crate::error::ApiError;
use crate::AppState;

pub use yiren_core::checkout_app::AppOrder;

/// `{"app_order": {...}}`.
#[derive(Serialize, ToSchema)]
pub struct AppOrderResponse {
    pub app_order: AppOrder,
}

/// The id and secret of `Authorization: Basic …`.
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

fn unauthorized() -> Response {
    let mut r = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "apps.credentials_invalid",
    )
    .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Yiren apps\", charset=\"UTF-8\""),
    );
    r
}

/// An app's order.
#[utoipa::path(get, path = "/api/v1/app-orders/{id}", tag = "apps", security(("app_basic" = [])),
    params(("id" = String, Path, description = "The order id the return URL and webhook carry")),
    responses((status = 200, body = AppOrderResponse), (status = 401, body = crate::api::extract::ErrorBody),
        (status = 404, body = crate::api::extract::ErrorBody)))]
pub async fn get_app_order(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some((app_id, secret)) = basic(&headers) else {
        return unauthorized();
    };
    let result = match id.parse::<i64>() {
        Ok(id) => yiren_core::checkout_app::for_app(&state.ctx, &app_id, &secret, id).await,
        // Credentials are checked whatever the id.
        Err(_) => yiren_core::checkout_app::for_app(&state.ctx, &app_id, &secret, 0).await,
    };
    let mut resp = match result {
        Ok(app_order) => Json(AppOrderResponse { app_order }).into_response(),
        Err(DomainError::Unauthenticated) => return unauthorized(),
        Err(e) => ApiError::from(e).into_response(),
    };
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
