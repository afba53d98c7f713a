//! Admin → Orders → Renewals: every recurring membership (`core::recurring`) with its status, the
//! way it renews (by order and reminder, or billed by the gateway), when it is paid through and
//! when it renews next; a plan's page lists its periods with the order that paid each, and lets
//! the owner stop it renewing.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{context, Value};
use serde::Deserialize;
use yiren_core::recurring::{self, Plan};
use yiren_core::{money, DomainError};

use super::orders::ActionForm;
use super::pages::{domain_error_page, message, unprocessable};
use super::{base_ctx, notice};
use crate::security::{AdminSession, CsrfForm};
use crate::AppState;

const PAGE: i64 = 50;

/// The statuses a plan can have (the list's filter).
const STATUSES: [&str; 4] = ["active", "past_due", "cancelled", "lapsed"];

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    status: String,
    before: Option<i64>,
}

/// The plans, newest first.
pub async fn list(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Query(q): Query<ListQuery>,
) -> Response {
    let status = if STATUSES.contains(&q.status.as_str()) {
        q.status.as_str()
    } else {
        ""
    };
    let mut rows = match recurring::list(&state.ctx, status, q.before, PAGE + 1).await {
        Ok(r) => r,
        Err(e) => return domain_error_page(e),
    };
    let more = rows.len() as i64 > PAGE;
    rows.truncate(PAGE as usize);
    let t = crate::locale::current();
    let plans: Vec<Value> = rows.iter().map(plan_ctx).collect();
    let base = base_ctx(&state, "/admin/orders", Some(&s), &s.csrf_token).await;
    state.templates.render(
        "admin/renewals.html",
        context! {
            plans => plans,
            status => status,
            statuses => STATUSES.iter().map(|k| context! { key => *k, name => t.t(&format!("renewals.status_{k}")) }).collect::<Vec<_>>(),
            next => more.then(|| format!("/admin/renewals?status={status}&before={}", rows.last().map_or(0, |p| p.id))),
            ..base
        },
    )
}

/// What every page shows of a plan.
fn plan_ctx(p: &yiren_store::recurring::PlanRow) -> Value {
    let t = crate::locale::current();
    context! {
        id => p.id.to_string(), email => p.email.clone(), customer_id => p.customer_id.map(|c| c.to_string()),
        title => p.title.clone(), amount => money::display(p.amount, &p.currency),
        every => t.tf("renewals.every", &[("months", &p.every_months.to_string())]),
        status => p.status.clone(), status_text => t.t(&format!("renewals.status_{}", p.status)),
        via => via(p), created_at => p.created_at, tz => p.tz.clone(), first_order_id => p.first_order_id.to_string(),
        running => matches!(p.status.as_str(), "active" | "past_due"),
        billed_by_gateway => !p.gateway_ref.is_empty(),
    }
}

/// How a plan renews, in words.
fn via(p: &yiren_store::recurring::PlanRow) -> String {
    let t = crate::locale::current();
    if p.gateway_ref.is_empty() {
        t.tf("renewals.by_order", &[("gateway", &p.gateway)])
    } else {
        t.tf(
            "renewals.by_gateway",
            &[("gateway", &p.gateway), ("reference", &p.gateway_ref)],
        )
    }
}

#[derive(Deserialize, Default)]
pub struct DetailQuery {
    notice: Option<String>,
}

/// One plan and its periods.
pub async fn detail(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    Query(q): Query<DetailQuery>,
) -> Response {
    render(&state, &s, id, q.notice.as_deref(), None).await
}

async fn render(
    state: &AppState,
    s: &yiren_core::auth::Session,
    id: i64,
    notice_key: Option<&str>,
    error: Option<String>,
) -> Response {
    let plan = match recurring::get(&state.ctx, id).await {
        Ok(p) => p,
        Err(e) => return domain_error_page(e),
    };
    let periods: Vec<Value> = plan
        .periods
        .iter()
        .map(|x| context! { period => x.period, starts_at => x.starts_at, ends_at => x.ends_at, paid_at => x.paid_at, order_id => x.order_id.to_string() })
        .collect();
    let base = base_ctx(state, "/admin/orders", Some(s), &s.csrf_token).await;
    state.templates.render(
        "admin/renewal.html",
        context! {
            plan => plan_ctx(&plan.row),
            paid_through => plan.paid_through(),
            next_renewal => plan.next_renewal(),
            periods => periods,
            notice => notice(notice_key),
            error => error,
            ..base
        },
    )
}

/// Stop a plan renewing.
pub async fn cancel(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(_f): CsrfForm<ActionForm>,
) -> Response {
    match recurring::cancel(&state.ctx, id, &s.staff.email).await {
        Ok(_) => {
            Redirect::to(&format!("/admin/renewals/{id}?notice=renewals.cancelled")).into_response()
        }
        Err(DomainError::Conflict { key }) => {
            unprocessable(render(&state, &s, id, None, message(key)).await)
        }
        Err(e) => domain_error_page(e),
    }
}

/// The customer's own plans, as the account page shows them.
pub fn for_customer(plans: &[Plan]) -> Vec<Value> {
    plans
        .iter()
        .map(|plan| {
            context! {
                paid_through => plan.paid_through(), next_renewal => plan.next_renewal(),
                ..plan_ctx(&plan.row)
            }
        })
        .collect()
}
