//! Operations endpoints: `/healthz` (the process answers) and `/readyz` (database reachable and
//! every migration applied).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::AppState;

/// Operations routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, Json(json!({"status": "ok"})))
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let h = yiren_core::health::check(&state.ctx).await;
    let (db, migrations) = (h.db_ok, h.migrations_ok);
    let status = if h.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(
            json!({"status": if status == StatusCode::OK { "ready" } else { "not_ready" }, "database": db, "migrations": migrations}),
        ),
    )
}
