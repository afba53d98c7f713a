//! Yiren's HTTP layer: the JSON API (`/api/v1`, OpenAPI), the admin pages, the public pages, and
//! the operations endpoints. Handlers extract, parse, call one service, and map the result.
//!
//! Boundaries: calls `yiren-core` services; owns status codes (see [`error`]), templates, cookies.

pub mod account;
pub mod admin;
pub mod api;
pub mod app_checkout;
pub mod assets;
pub mod cart;
pub mod checkout;
pub mod downloads;
pub mod error;
pub mod files;
pub mod locale;
pub mod mailer;
pub mod metrics;
pub mod oidc;
pub mod ops;
pub mod page_cache;
pub mod security;
pub mod setup;
pub mod state;
pub mod storefront;
pub mod templates;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use state::{AppState, WebConfig};

/// Header carrying the request id (generated when the client sends none).
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The public application router (everything except metrics, which has its own listener).
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    Router::new()
        .merge(storefront::routes())
        .merge(cart::routes(state.clone()))
        .merge(checkout::routes(state.clone()))
        .merge(app_checkout::routes(state.clone()))
        .merge(setup::routes())
        .merge(account::routes(state.clone()))
        .merge(oidc::routes(state.clone()))
        .merge(admin::routes(state.clone()))
        .nest("/api/v1", api::routes(state.clone()))
        .merge(ops::routes())
        .merge(assets::routes())
        .merge(files::routes())
        .merge(downloads::routes())
        .fallback(error::fallback)
        .layer(axum::middleware::from_fn_with_state(state.clone(), locale::resolve_locale))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), reject_oversized))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, Duration::from_secs(60)))
        .layer(SetResponseHeaderLayer::if_not_present(HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(HeaderName::from_static("referrer-policy"), HeaderValue::from_static("same-origin")))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .with_state(state)
}

/// The most an admin media upload may carry (a video file and the form around it).
pub const UPLOAD_LIMIT: usize = yiren_core::media::MAX_VIDEO_BYTES + (1 << 20);
/// The most an admin upload of a digital product's files may carry.
pub const FILE_UPLOAD_LIMIT: usize = yiren_core::delivery::MAX_FILE_BYTES + (1 << 20);
/// The most a product CSV upload may carry.
pub const IMPORT_LIMIT: usize = yiren_core::catalog::csv::MAX_CSV_BYTES + (1 << 20);
/// The most an API image upload may carry (a base64 image in JSON).
pub const API_UPLOAD_LIMIT: usize = yiren_core::media::MAX_IMAGE_BYTES / 3 * 4 + (1 << 20);

/// The largest body a request to `path` may carry: media uploads take files, everything else the
/// configured `server.max_body_bytes`. The upload routes set the same figure with their own
/// `DefaultBodyLimit`.
pub fn body_limit(state: &AppState, path: &str) -> usize {
    let configured = state.config.max_body_bytes;
    let under = |prefix: &str, suffix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
    };
    if under("/admin/products/", "/media") {
        configured.max(UPLOAD_LIMIT)
    } else if under("/admin/products/", "/files") {
        configured.max(FILE_UPLOAD_LIMIT)
    } else if path == "/admin/products/import" {
        configured.max(IMPORT_LIMIT)
    } else if under("/api/v1/products/", "/images") || under("/products/", "/images") {
        // (the second form is the path as the API's own middleware sees it, inside `/api/v1`)
        configured.max(API_UPLOAD_LIMIT)
    } else {
        configured
    }
}

/// Refuse a request whose declared `Content-Length` is over the limit before reading any of it
/// (bodies without a length are capped while read, by `DefaultBodyLimit`).
async fn reject_oversized(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > body_limit(&state, req.uri().path()) as u64) {
        let status = axum::http::StatusCode::PAYLOAD_TOO_LARGE;
        if req.uri().path().starts_with("/api/") {
            return error::ApiError::new(status, "payload_too_large", "error.payload_too_large")
                .into_response();
        }
        return templates::error_page(status, "error.payload_too_large");
    }
    next.run(req).await
}
