//! Public pages. For now the home page; the catalog issue adds the shop.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::admin::base_ctx;
use crate::AppState;

/// Public routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/lang/{tag}", get(crate::locale::switch))
}

async fn home(State(state): State<AppState>) -> Response {
    let ctx = base_ctx(&state, "/", None, "").await;
    state.templates.render("home.html", ctx)
}
