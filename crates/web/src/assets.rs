//! Static assets embedded in the binary.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::AppState;

const CSS: &str = include_str!("../assets/yiren.css");
const PASSKEYS_JS: &str = include_str!("../assets/passkeys.js");
const MEDIA_ORDER_JS: &str = include_str!("../assets/media-order.js");
const ORDER_STATUS_JS: &str = include_str!("../assets/order-status.js");

/// Asset routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/assets/yiren.css", get(css))
        .route("/assets/passkeys.js", get(passkeys_js))
        .route("/assets/media-order.js", get(media_order_js))
        .route("/assets/order-status.js", get(order_status_js))
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
}

async fn passkeys_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        PASSKEYS_JS,
    )
}

async fn media_order_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        MEDIA_ORDER_JS,
    )
}

async fn order_status_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        ORDER_STATUS_JS,
    )
}
