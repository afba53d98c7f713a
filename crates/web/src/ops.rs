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
    let db = state.ctx.db.ping().await.is_ok();
    let migrations = db && state.ctx.db.migrations_applied().await.unwrap_or(false);
    let status = if db && migrations {
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
