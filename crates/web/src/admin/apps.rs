//! Admin pages for single sign-on: the owner's client apps (name, redirect URIs, first-party
//! flag), their secrets (shown once, rotated on demand), disable/enable; and where the provider's
//! discovery document is.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{context, Value};
use serde::Deserialize;
use yiren_core::oidc;
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
    redirect_uris: String,
    #[serde(default)]
    post_logout_redirect_uris: String,
    first_party: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn render(
    state: &AppState,
    s: &yiren_core::auth::Session,
    headers: &HeaderMap,
    form: &AppForm,
    secret: Option<(&str, &str)>,
    error: Option<String>,
    notice_key: Option<&str>,
) -> Response {
    let apps = match oidc::clients(&state.ctx).await {
        Ok(a) => a,
        Err(e) => return domain_error_page(e),
    };
    let apps: Vec<Value> = apps
        .iter()
        .map(|a| context! { id => a.id.to_string(), ..Value::from_serialize(a) })
        .collect();
    let iss = crate::oidc::issuer(state, headers);
    let base = base_ctx(state, "/admin/apps", Some(s), &s.csrf_token).await;
    let ctx = context! {
        apps => apps, form => Value::from_serialize(form), issuer => iss,
        new_client_id => secret.map(|x| x.0), new_secret => secret.map(|x| x.1),
        error => error, notice => notice(notice_key), ..base
    };
    state.templates.render("admin/apps.html", ctx)
}

pub async fn page(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    headers: HeaderMap,
    Query(q): Query<NoticeQuery>,
) -> Response {
    render(
        &state,
        &s,
        &headers,
        &AppForm::default(),
        None,
        None,
        q.notice.as_deref(),
    )
    .await
}

pub async fn create(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    headers: HeaderMap,
    CsrfForm(f): CsrfForm<AppForm>,
) -> Response {
    match oidc::create_client(
        &state.ctx,
        &f.name,
        &f.redirect_uris,
        &f.post_logout_redirect_uris,
        f.first_party.is_some(),
    )
    .await
    {
        Ok((c, secret)) => {
            render(
                &state,
                &s,
                &headers,
                &AppForm::default(),
                Some((&c.client_id, &secret)),
                None,
                Some("oidc.app_created"),
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
    match oidc::update_client(
        &state.ctx,
        id,
        &f.name,
        &f.redirect_uris,
        &f.post_logout_redirect_uris,
        f.first_party.is_some(),
    )
    .await
    {
        Ok(()) => Redirect::to("/admin/apps?notice=settings.saved").into_response(),
        Err(DomainError::Invalid { key, .. }) => unprocessable(
            render(
                &state,
                &s,
                &headers,
                &AppForm::default(),
                None,
                message(key),
                None,
            )
            .await,
        ),
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
    let client_id = match oidc::clients(&state.ctx).await {
        Ok(list) => match list.into_iter().find(|c| c.id == id) {
            Some(c) => c.client_id,
            None => return domain_error_page(DomainError::NotFound),
        },
        Err(e) => return domain_error_page(e),
    };
    match oidc::rotate_secret(&state.ctx, id).await {
        Ok(secret) => {
            render(
                &state,
                &s,
                &headers,
                &AppForm::default(),
                Some((&client_id, &secret)),
                None,
                Some("oidc.secret_rotated"),
            )
            .await
        }
        Err(e) => domain_error_page(e),
    }
}

async fn set_disabled(state: &AppState, id: i64, disabled: bool) -> Response {
    match oidc::set_client_disabled(&state.ctx, id, disabled).await {
        Ok(()) => Redirect::to("/admin/apps?notice=settings.saved").into_response(),
        Err(e) => domain_error_page(e),
    }
}

pub async fn disable(
    State(state): State<AppState>,
    OwnerSession(_): OwnerSession,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    set_disabled(&state, id, true).await
}

pub async fn enable(
    State(state): State<AppState>,
    OwnerSession(_): OwnerSession,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    set_disabled(&state, id, false).await
}
