//! Admin → Inventory: every tracked variant with its stock (search by product or SKU, "low stock"
//! filter), an adjustment form on each line (change and reason, recorded with who made it), and
//! the latest adjustments over the whole catalog.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use yiren_core::{catalog, DomainError};

use super::pages::{domain_error_page, message, unprocessable};
use super::{base_ctx, notice};
use crate::security::{AdminSession, CsrfForm};
use crate::AppState;

const PAGE: i64 = 100;

/// Filters of the inventory view.
#[derive(Deserialize, Default)]
pub struct InventoryQuery {
    #[serde(default)]
    q: String,
    /// Only variants with at most this many in stock.
    #[serde(default)]
    low: String,
    #[serde(default)]
    page: Option<i64>,
    notice: Option<String>,
}

async fn render(
    state: &AppState,
    s: &yiren_core::auth::Session,
    q: &InventoryQuery,
    error: Option<String>,
) -> Response {
    let page = q.page.unwrap_or(1).clamp(1, 10_000);
    let at_most = q.low.trim().parse::<i64>().ok();
    let mut rows =
        match catalog::stock_levels(&state.ctx, &q.q, at_most, (page - 1) * PAGE, PAGE + 1).await {
            Ok(r) => r,
            Err(e) => return domain_error_page(e),
        };
    let more = rows.len() as i64 > PAGE;
    rows.truncate(PAGE as usize);
    let recent = match catalog::recent_adjustments(&state.ctx, 30).await {
        Ok(r) => r,
        Err(e) => return domain_error_page(e),
    };
    let recent: Vec<minijinja::Value> = recent
        .iter()
        .map(|a| {
            let variant = [&a.option1, &a.option2, &a.option3]
                .into_iter()
                .filter(|v| !v.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join(" / ");
            context! { product_id => a.product_id.to_string(), title => a.title.clone(), variant => variant, delta => a.delta, after => a.quantity_after, reason => a.reason.clone(), actor => a.actor.clone(), at => a.created_at }
        })
        .collect();
    let link = |n: i64| {
        let mut qs = url::form_urlencoded::Serializer::new(String::new());
        qs.append_pair("q", &q.q)
            .append_pair("low", &q.low)
            .append_pair("page", &n.to_string());
        format!("/admin/inventory?{}", qs.finish())
    };
    let base = base_ctx(state, "/admin/inventory", Some(s), &s.csrf_token).await;
    state.templates.render(
        "admin/inventory.html",
        context! {
            rows => minijinja::Value::from_serialize(&rows), recent => recent,
            q => q.q.clone(), low => q.low.clone(),
            prev => (page > 1).then(|| link(page - 1)), next => more.then(|| link(page + 1)),
            error => error, notice => notice(q.notice.as_deref()), ..base
        },
    )
}

pub async fn page(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Query(q): Query<InventoryQuery>,
) -> Response {
    render(&state, &s, &q, None).await
}

#[derive(Deserialize)]
pub struct AdjustForm {
    #[serde(default)]
    variant_id: String,
    #[serde(default)]
    delta: String,
    #[serde(default)]
    reason: String,
    /// The list's filters, to come back to.
    #[serde(default)]
    q: String,
    #[serde(default)]
    low: String,
}

/// Adjust one variant's stock from the list.
pub async fn adjust(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    CsrfForm(f): CsrfForm<AdjustForm>,
) -> Response {
    let result = match (
        f.variant_id.parse::<i64>(),
        f.delta.trim().trim_start_matches('+').parse::<i64>(),
    ) {
        (Ok(v), Ok(d)) => catalog::adjust(&state.ctx, v, d, &f.reason, &s.staff.email)
            .await
            .map(|_| ()),
        (Err(_), _) => Err(DomainError::NotFound),
        _ => Err(DomainError::invalid("delta", "catalog.quantity_invalid")),
    };
    let back = InventoryQuery {
        q: f.q.clone(),
        low: f.low.clone(),
        ..Default::default()
    };
    match result {
        Ok(()) => {
            let mut qs = url::form_urlencoded::Serializer::new(String::new());
            qs.append_pair("q", &f.q)
                .append_pair("low", &f.low)
                .append_pair("notice", "catalog.stock_adjusted");
            Redirect::to(&format!("/admin/inventory?{}", qs.finish())).into_response()
        }
        Err(DomainError::Invalid { key, .. }) => {
            unprocessable(render(&state, &s, &back, message(key)).await)
        }
        Err(e) => domain_error_page(e),
    }
}
