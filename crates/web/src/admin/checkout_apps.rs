//! `/admin/checkout-apps` (owner only): the owner's other apps that share the checkout (收银台) —
//! register one (its secret is shown once and kept sealed), change its URLs, issue a new secret,
//! switch it off or on; each shows its app id, how many orders it brought and a signed test link
//! that opens the checkout as the app would.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{context, Value};
use serde::Deserialize;
use yiren_core::checkout_app::{self, AppInput};
use yiren_core::DomainError;

use super::pages::{domain_error_page, message, unprocessable, Empty};
use super::{base_ctx, notice};
use crate::security::{CsrfForm, OwnerSession};
use crate::AppState;

#[derive(Deserialize, Default)]
pub struct NoticeQuery {
    notice: Option<String>,
}

#[derive(Deserialize, Default, serde::Serialize)]
pub struct AppForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    return_url: String,
    #[serde(default)]
    webhook_url: String,
}

impl AppForm {
    fn input(&self) -> AppInput {
        AppInput {
            name: self.name.clone(),
            return_url: self.return_url.clone(),
            webhook_url: self.webhook_url.clone(),
        }
    }
}

async fn render(
    state: &AppState,
    s: &yiren_core::auth::Session,
    headers: &HeaderMap,
    form: &AppForm,
    secret: Option<(i64, &str)>,
    error: Option<String>,
    notice_key: Option<&str>,
) -> Response {
    let apps = match checkout_app::list(&state.ctx).await {
        Ok(a) => a,
        Err(e) => return domain_error_page(e),
    };
    let base_url = crate::api::page::base_url(state.config.public_url.as_deref(), headers);
    let mut shown = vec![];
    for (a, orders, paid) in &apps {
        let test = if a.active {
            match checkout_app::test_link(&state.ctx, a.id, &base_url).await {
                Ok(l) => Some(l),
                Err(e) => return domain_error_page(e),
            }
        } else {
            None
        };
        shown.push(context! {
            id => a.id.to_string(), orders => orders, paid => paid, test_link => test,
            ..Value::from_serialize(a)
        });
    }
    let base = base_ctx(state, "/admin/checkout-apps", Some(s), &s.csrf_token).await;
    let ctx = context! {
        apps => shown, form => Value::from_serialize(form),
        pay_url => format!("{base_url}/pay/"), api_url => format!("{base_url}/api/v1/app-orders/"),
        new_app_id => secret.map(|x| x.0.to_string()), new_secret => secret.map(|x| x.1),
        error => error, notice => notice(notice_key), ..base
    };
    state.templates.render("admin/checkout_apps.html", ctx)
}

pub async fn page(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    headers: HeaderMap,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let f = AppForm::default();
    render(&state, &s, &headers, &f, None, None, q.notice.as_deref()).await
}

pub async fn create(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    headers: HeaderMap,
    CsrfForm(f): CsrfForm<AppForm>,
) -> Response {
    match checkout_app::create(&state.ctx, &f.input()).await {
        Ok((a, secret)) => {
            let blank = AppForm::default();
            let shown = Some((a.id, secret.as_str()));
            render(
                &state,
                &s,
                &headers,
                &blank,
                shown,
                None,
                Some("apps.created"),
            )
            .await
        }
        Err(DomainError::Invalid { key, .. }) => {
            unprocessable(render(&state, &s, &headers, &f, None, message(key), None).await)
        }
        Err(e) => domain_error_page(e),
    }
}

pub async fn update(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    headers: HeaderMap,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<AppForm>,
) -> Response {
    match checkout_app::update(&state.ctx, id, &f.input()).await {
        Ok(_) => Redirect::to("/admin/checkout-apps?notice=settings.saved").into_response(),
        Err(DomainError::Invalid { key, .. }) => {
            let blank = AppForm::default();
            unprocessable(render(&state, &s, &headers, &blank, None, message(key), None).await)
        }
        Err(e) => domain_error_page(e),
    }
}

pub async fn rotate_secret(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    headers: HeaderMap,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    match checkout_app::rotate_secret(&state.ctx, id).await {
        Ok(secret) => {
            let blank = AppForm::default();
            let shown = Some((id, secret.as_str()));
            let n = Some("apps.secret_rotated");
            render(&state, &s, &headers, &blank, shown, None, n).await
        }
        Err(e) => domain_error_page(e),
    }
}

async fn set_enabled(state: &AppState, id: i64, on: bool) -> Response {
    match checkout_app::set_enabled(&state.ctx, id, on).await {
        Ok(()) => Redirect::to("/admin/checkout-apps?notice=settings.saved").into_response(),
        Err(e) => domain_error_page(e),
    }
}

pub async fn disable(
    State(state): State<AppState>,
    OwnerSession(_): OwnerSession,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    set_enabled(&state, id, false).await
}

pub async fn enable(
    State(state): State<AppState>,
    OwnerSession(_): OwnerSession,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    set_enabled(&state, id, true).await
}
