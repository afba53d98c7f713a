//! `/admin/payments` (owner only): the online payment gateways — add, change, switch off, remove
//! — drawn from each kind's fields (`core::payment::Kind`); secrets are write-only (the form
//! never shows them; left empty, the stored one stays). Below, the reconciliation report: what
//! the scheduled check found when it asked the gateways about pending orders, and a button to
//! run it now.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{context, Value};
use yiren_core::payment::{reconcile, settings as gw_settings};
use yiren_core::DomainError;

use super::pages::{domain_error_page, message, unprocessable, Empty};
use super::{base_ctx, notice};
use crate::security::{CsrfForm, OwnerSession};
use crate::AppState;

#[derive(serde::Deserialize, Default)]
pub struct NoticeQuery {
    notice: Option<String>,
}

async fn render(
    state: &AppState,
    s: &yiren_core::auth::Session,
    headers: &HeaderMap,
    error: Option<String>,
    notice_key: Option<&str>,
) -> Response {
    let configured = match gw_settings::load(&state.ctx).await {
        Ok(c) => c,
        Err(e) => return domain_error_page(e),
    };
    let (counts, checks) = match reconcile::report(&state.ctx, 7, 50).await {
        Ok(r) => r,
        Err(e) => return domain_error_page(e),
    };
    let base_url = crate::api::page::base_url(state.config.public_url.as_deref(), headers);
    let kinds = state.ctx.gateways.kinds();
    let form = |kind: &str, values: Option<&gw_settings::GatewayConfig>| -> Vec<Value> {
        kinds
            .iter()
            .find(|k| k.kind == kind)
            .map(|k| k.fields)
            .unwrap_or(&[])
            .iter()
            .map(|f| {
                let value = values.map(|c| c.field(f.name).to_string()).unwrap_or_else(|| f.default.to_string());
                context! {
                    name => f.name, secret => f.secret, required => f.required, choices => f.choices,
                    value => if f.secret { String::new() } else { value },
                    stored => values.is_some_and(|c| !c.secret(f.name).is_empty()),
                }
            })
            .collect()
    };
    let gateways: Vec<Value> = configured
        .iter()
        .map(|c| context! {
            id => c.id.clone(), kind => c.kind.clone(), name => c.name.clone(), enabled => c.enabled,
            usable => state.ctx.gateways.get(&c.id).is_some(),
            notify_url => format!("{base_url}/payments/{}/notify", c.id),
            fields => form(&c.kind, Some(c)),
        })
        .collect();
    let new: Vec<Value> = kinds
        .iter()
        .map(|k| context! { kind => k.kind, fields => form(k.kind, None) })
        .collect();
    let checks: Vec<Value> = checks
        .iter()
        .map(|(c, number)| context! {
            at => c.checked_at, number => number, order_id => c.order_id.to_string(), gateway => c.gateway.clone(),
            outcome => c.outcome.clone(), detail => c.detail.clone(),
        })
        .collect();
    let base = base_ctx(state, "/admin/payments", Some(s), &s.csrf_token).await;
    state.templates.render(
        "admin/payments.html",
        context! {
            gateways => gateways, new => new, counts => counts, checks => checks,
            error => error, notice => notice(notice_key), ..base
        },
    )
}

pub async fn page(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    headers: HeaderMap,
    Query(q): Query<NoticeQuery>,
) -> Response {
    render(&state, &s, &headers, None, q.notice.as_deref()).await
}

/// Add or change a gateway: `id`, `kind`, `name`, `enabled`, and the kind's fields as
/// `f.{name}` (settings) and `s.{name}` (secrets).
pub async fn save(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    headers: HeaderMap,
    CsrfForm(f): CsrfForm<BTreeMap<String, String>>,
) -> Response {
    let get = |k: &str| f.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let pick = |prefix: &str| -> BTreeMap<String, String> {
        f.iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(prefix)
                    .map(|n| (n.to_string(), v.trim().to_string()))
            })
            .collect()
    };
    let c = gw_settings::GatewayConfig {
        id: get("id").to_ascii_lowercase(),
        kind: get("kind"),
        name: get("name"),
        enabled: get("enabled") == "1",
        fields: pick("f."),
        secrets: pick("s."),
    };
    match gw_settings::put(&state.ctx, c).await {
        Ok(()) => Redirect::to("/admin/payments?notice=payments.saved").into_response(),
        Err(DomainError::Invalid { key, .. }) => {
            unprocessable(render(&state, &s, &headers, message(key), None).await)
        }
        Err(e) => domain_error_page(e),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    OwnerSession(_): OwnerSession,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    match gw_settings::remove(&state.ctx, &id).await {
        Ok(()) => Redirect::to("/admin/payments?notice=payments.deleted").into_response(),
        Err(e) => domain_error_page(e),
    }
}

/// Ask about every pending order now (the schedule spaces its checks out).
pub async fn reconcile_now(
    State(state): State<AppState>,
    OwnerSession(_): OwnerSession,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    match reconcile::run(&state.ctx, true).await {
        Ok(_) => Redirect::to("/admin/payments?notice=payments.reconciled").into_response(),
        Err(e) => domain_error_page(e),
    }
}
