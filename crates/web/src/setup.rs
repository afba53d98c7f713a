//! The one-time setup page: `/setup/{token}` creates the owner account and the site settings.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::cookie::CookieJar;
use minijinja::{context, Value};
use serde::Deserialize;
use yiren_core::settings::SiteSettings;
use yiren_core::setup::{self, SetupInput};
use yiren_core::DomainError;

use crate::admin::base_ctx;
use crate::admin::pages::{currency_codes, ZONES};
use crate::security::{self, ClientIp, CsrfForm, UserAgent};
use crate::templates::error_page;
use crate::AppState;

/// Setup routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/setup/{token}", get(setup_page).post(complete_setup))
}

#[derive(Deserialize, serde::Serialize, Default)]
pub struct SetupForm {
    site_name: String,
    locale: String,
    currency: String,
    time_zone: String,
    name: String,
    email: String,
    #[serde(skip_serializing, default)]
    password: String,
    #[serde(skip_serializing, default)]
    password_confirm: String,
}

async fn render(
    state: &AppState,
    jar: CookieJar,
    token: &str,
    form: &SetupForm,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let (jar, csrf) = security::pre_session_csrf(state, jar);
    let base = base_ctx(state, &format!("/setup/{token}"), None, &csrf).await;
    let ctx = context! { token, form => Value::from_serialize(form), currencies => currency_codes(), zones => ZONES.to_vec(), error, ..base };
    let mut resp = (jar, state.templates.render("setup.html", ctx)).into_response();
    *resp.status_mut() = status;
    // The token is in the URL: never send it to another site as a referrer (same-origin, not
    // no-referrer: browsers then send `Origin: null` on the form post), never cache the page.
    resp.headers_mut().insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

pub async fn setup_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(token): Path<String>,
) -> Response {
    match setup::token_is_valid(&state.ctx, &token).await {
        Ok(true) => {}
        Ok(false) => return error_page(StatusCode::NOT_FOUND, "setup.link_used"),
        Err(e) => return crate::error::internal(&e).into_response(),
    }
    let defaults = SiteSettings::default();
    let locale = crate::locale::current();
    let form = SetupForm {
        locale: locale.tag().into(),
        currency: defaults.currency,
        time_zone: defaults.time_zone,
        ..Default::default()
    };
    render(&state, jar, &token, &form, None, StatusCode::OK).await
}

pub async fn complete_setup(
    State(state): State<AppState>,
    jar: CookieJar,
    ClientIp(ip): ClientIp,
    UserAgent(ua): UserAgent,
    Path(token): Path<String>,
    CsrfForm(f): CsrfForm<SetupForm>,
) -> Response {
    let result = async {
        if f.password != f.password_confirm {
            return Err(DomainError::invalid(
                "password_confirm",
                "password.mismatch",
            ));
        }
        let site = SiteSettings::parse(&f.site_name, &f.locale, &f.currency, &f.time_zone)?;
        let input = SetupInput {
            email: &f.email,
            name: &f.name,
            password: &f.password,
            site,
        };
        setup::complete(&state.ctx, &token, input, &ip.to_string(), ua.as_deref()).await
    }
    .await;
    match result {
        Ok((_, session_token)) => {
            state.refresh_settings().await;
            (
                jar.add(security::session_cookie(&state, session_token)),
                Redirect::to("/admin"),
            )
                .into_response()
        }
        Err(DomainError::Conflict {
            key: "setup.link_used",
        }) => error_page(StatusCode::NOT_FOUND, "setup.link_used"),
        Err(DomainError::Invalid { key, .. } | DomainError::Conflict { key }) => {
            let message = crate::locale::current().t(key).to_string();
            render(
                &state,
                jar,
                &token,
                &f,
                Some(message),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => crate::error::internal(&e).into_response(),
    }
}
