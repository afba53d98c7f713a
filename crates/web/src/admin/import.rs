//! Admin → Products → Import / Export: upload a Shopify product CSV (any header generation), see
//! what will be created or updated and which lines are wrong, start the import (a job), follow its
//! progress and read its report; download every product as CSV in Shopify's current format.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{context, Value};
use yiren_core::catalog::csv as import;
use yiren_core::DomainError;

use super::pages::{domain_error_page, message, unprocessable};
use super::{base_ctx, notice};
use crate::security::{AdminSession, CsrfForm, CsrfMultipart};
use crate::AppState;

fn line_errors(errors: &[import::LineError]) -> Vec<Value> {
    let t = crate::locale::current();
    errors
        .iter()
        .map(|e| context! { line => e.line, field => e.field.clone(), message => t.t(&e.key) })
        .collect()
}

async fn upload_page(
    state: &AppState,
    s: &yiren_core::auth::Session,
    error: Option<String>,
) -> Response {
    let base = base_ctx(state, "/admin/products/import", Some(s), &s.csrf_token).await;
    state.templates.render(
        "admin/import.html",
        context! { stage => "upload", error => error, ..base },
    )
}

pub async fn form(State(state): State<AppState>, AdminSession(s): AdminSession) -> Response {
    upload_page(&state, &s, None).await
}

/// Keep the file and show its preview.
pub async fn upload(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    form: CsrfMultipart,
) -> Response {
    let Some(f) = form.files.first() else {
        return unprocessable(upload_page(&state, &s, message("import.file_required")).await);
    };
    match import::preview(&state.ctx, &f.file_name, &f.bytes, &s.staff.email).await {
        Ok((id, _)) => Redirect::to(&format!("/admin/products/import/{id}")).into_response(),
        Err(DomainError::Invalid { key, .. }) => {
            unprocessable(upload_page(&state, &s, message(key)).await)
        }
        Err(e) => domain_error_page(e),
    }
}

/// The preview (before starting), the progress (while running) or the report (when done).
pub async fn show(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    axum::extract::Query(q): axum::extract::Query<super::products::NoticeOnly>,
) -> Response {
    let (row, plan) = match import::get(&state.ctx, id).await {
        Ok(x) => x,
        Err(e) => return domain_error_page(e),
    };
    // (what happens or happened to each product, its row in the table)
    let items: Vec<(String, Value)> = match &plan {
        Some(plan) => plan
            .products
            .iter()
            .map(|p| {
                let action = if !p.errors.is_empty() {
                    "refused"
                } else if p.existing.is_some() {
                    "update"
                } else {
                    "create"
                };
                (action.to_string(), context! {
                    handle => p.handle.clone(), title => p.title.clone(), lines => format!("{}–{}", p.lines.0, p.lines.1),
                    action => action, variants => Some(p.input.variants.len()), images => p.images.len(),
                    errors => line_errors(&p.errors), product_id => p.existing.map(|i| i.to_string()),
                })
            })
            .collect(),
        None => import::report(&row)
            .iter()
            .map(|o| {
                (o.action.clone(), context! {
                    handle => o.handle.clone(), title => o.title.clone(), lines => format!("{}–{}", o.lines.0, o.lines.1),
                    action => o.action.clone(), product_id => o.product_id.map(|i| i.to_string()), variants => None::<usize>,
                    images => o.images, errors => line_errors(&o.errors),
                })
            })
            .collect(),
    };
    let count = |names: &[&str]| {
        items
            .iter()
            .filter(|(a, _)| names.contains(&a.as_str()))
            .count()
    };
    let (create, update, refused) = (
        count(&["create", "created"]),
        count(&["update", "updated"]),
        count(&["refused"]),
    );
    let path = format!("/admin/products/import/{id}");
    let base = base_ctx(&state, &path, Some(&s), &s.csrf_token).await;
    state.templates.render(
        "admin/import.html",
        context! {
            stage => row.status.clone(), id => id.to_string(), filename => row.filename.clone(),
            generation => plan.as_ref().map(|p| p.generation), rows => plan.as_ref().map(|p| p.rows),
            products => row.products, done => row.done,
            file_errors => plan.as_ref().map(|p| line_errors(&p.errors)).unwrap_or_default(),
            items => items.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
            create => create, update => update, refused => refused,
            notice => notice(q.notice.as_deref()), ..base
        },
    )
}

/// Start a previewed import.
pub async fn start(
    State(state): State<AppState>,
    AdminSession(_): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<super::pages::Empty>,
) -> Response {
    match import::start(&state.ctx, id).await {
        Ok(()) => Redirect::to(&format!("/admin/products/import/{id}")).into_response(),
        Err(e) => domain_error_page(e),
    }
}

/// Every product as a Shopify CSV download.
pub async fn export(
    State(state): State<AppState>,
    AdminSession(_): AdminSession,
    headers: HeaderMap,
) -> Response {
    let base = crate::api::page::base_url(state.config.public_url.as_deref(), &headers);
    match import::export_all(&state.ctx, &base).await {
        Ok(csv) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"products_export.csv\"",
                ),
                (header::CACHE_CONTROL, "no-store"),
            ],
            csv,
        )
            .into_response(),
        Err(e) => domain_error_page(e),
    }
}
