//! Customer pages: sign in (email code, password, OAuth/OIDC providers, WeChat message login),
//! profile, sign-in methods and sessions, download my data, delete my account; invite links; the
//! WeChat 公众号 callback. Server-rendered; the WeChat page polls with a few lines of JavaScript
//! and has a button for browsers without it.
//!
//! Customer routes read only the customer cookie ([`crate::security::load_customer`]); admin routes
//! read only the admin cookie, so neither session can open the other side.

mod oauth;
mod pages;
mod passkeys;
mod reach;
mod wechat;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use minijinja::{context, Value};
use yiren_core::customer::CustomerSession;
use yiren_core::DomainError;

use crate::AppState;

/// Every state-changing customer route (the CSRF suite walks this list; keep it complete).
pub const FORM_ROUTES: &[&str] = &[
    "/account/code",
    "/account/verify",
    "/account/sign-in",
    "/account/sign-out",
    "/account/profile",
    "/account/email",
    "/account/email/verify",
    "/account/password",
    "/account/sessions/{id}/revoke",
    "/account/sessions/revoke-others",
    "/account/renewals/{id}/cancel",
    "/account/identities/{id}/unlink",
    "/account/delete",
    "/account/oauth/{slug}/start",
    "/account/wechat/start",
    "/account/wechat/poll",
    "/account/passkeys/register/start",
    "/account/passkeys/register/finish",
    "/account/passkeys/login/start",
    "/account/passkeys/login/finish",
    "/account/passkeys/{id}/delete",
    "/account/passkeys/second-factor",
    "/account/second-factor/start",
    "/account/second-factor/finish",
    "/account/notifications",
    "/account/notifications/push",
    "/account/notifications/push/delete",
    "/preferences/{token}",
    "/subscribe",
    "/subscribe/confirm/{token}",
];

/// Customer routes.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/account", get(pages::profile_page))
        .route(
            "/account/sign-in",
            get(pages::sign_in_page).post(pages::sign_in_password),
        )
        .route("/account/code", post(pages::send_code))
        .route(
            "/account/verify",
            get(pages::verify_page).post(pages::verify_code),
        )
        .route("/account/sign-out", post(pages::sign_out))
        .route("/account/profile", post(pages::save_profile))
        .route("/account/email", post(pages::start_email_change))
        .route("/account/email/verify", post(pages::confirm_email_change))
        .route("/account/security", get(pages::security_page))
        .route("/account/orders", get(pages::orders_page))
        .route("/account/renewals/{id}/cancel", post(pages::cancel_renewal))
        .route("/account/password", post(pages::set_password))
        .route("/account/sessions/{id}/revoke", post(pages::revoke_session))
        .route(
            "/account/sessions/revoke-others",
            post(pages::revoke_other_sessions),
        )
        .route(
            "/account/identities/{id}/unlink",
            post(pages::unlink_identity),
        )
        .route("/account/data", get(pages::download_data))
        .route(
            "/account/delete",
            get(pages::delete_page).post(pages::delete_account),
        )
        .route("/account/oauth/{slug}/start", post(oauth::start))
        .route("/account/oauth/{slug}/callback", get(oauth::callback))
        .route("/account/wechat", get(wechat::page))
        .route("/account/wechat/start", post(wechat::start))
        .route("/account/wechat/poll", post(wechat::poll))
        .route("/invite/{code}", get(pages::invite_link))
        .route(
            "/account/passkeys/register/start",
            post(passkeys::register_start),
        )
        .route(
            "/account/passkeys/register/finish",
            post(passkeys::register_finish),
        )
        .route("/account/passkeys/login/start", post(passkeys::login_start))
        .route(
            "/account/passkeys/login/finish",
            post(passkeys::login_finish),
        )
        .route("/account/passkeys/{id}/delete", post(passkeys::remove))
        .route(
            "/account/passkeys/second-factor",
            post(passkeys::set_second_factor),
        )
        .route("/account/second-factor", get(passkeys::second_factor_page))
        .route("/account/notifications", get(reach::page).post(reach::save))
        .route("/account/notifications/push", post(reach::save_push))
        .route(
            "/account/notifications/push/delete",
            post(reach::delete_push),
        )
        .route(
            "/preferences/{token}",
            get(reach::preferences_page).post(reach::preferences_save),
        )
        .route(
            "/subscribe",
            get(reach::subscribe_page).post(reach::subscribe),
        )
        .route(
            "/subscribe/confirm/{token}",
            get(reach::confirm_page).post(reach::confirm),
        )
        .route(
            "/unsubscribe/{token}/{topic}",
            get(reach::unsubscribe_page).post(reach::unsubscribe),
        )
        .route(
            "/account/second-factor/start",
            post(passkeys::second_factor_start),
        )
        .route(
            "/account/second-factor/finish",
            post(passkeys::second_factor_finish),
        )
        .layer(axum::middleware::from_fn_with_state(
            state,
            crate::security::load_customer,
        ))
        .route(
            "/wechat/callback",
            get(wechat::verify_endpoint).post(wechat::message),
        )
}

/// Notices customer pages may show after a redirect.
const NOTICES: &[&str] = &[
    "account.welcome",
    "account.saved",
    "account.password_set",
    "account.session_revoked",
    "account.sessions_revoked",
    "account.identity_linked",
    "account.identity_unlinked",
    "account.signed_out",
    "account.deleted",
    "account.oauth_denied",
    "account.passkey_added",
    "account.email_changed",
    "account.passkey_removed",
];

fn notice(key: Option<&str>) -> Option<&'static str> {
    let key = key?;
    NOTICES
        .iter()
        .find(|k| **k == key)
        .map(|k| crate::locale::current().t(k))
}

/// The context of every customer page.
pub(crate) async fn page_ctx(
    state: &AppState,
    path: &str,
    session: Option<&CustomerSession>,
    csrf: &str,
) -> Value {
    let base = crate::admin::base_ctx(state, path, None, csrf).await;
    let customer = session.map(|s| {
        context! {
            id => s.customer.id,
            name => s.customer.display_name(),
            email => s.customer.email.clone(),
        }
    });
    context! { customer => customer, ..base }
}

/// A local path to continue to after signing in; anything else becomes `/account`.
pub fn local_next(next: Option<&str>) -> String {
    next.filter(|n| {
        n.starts_with('/')
            && !n.starts_with("//")
            && !n.starts_with("/\\")
            && !n.contains(['\r', '\n', '\\'])
            && n.len() <= 2000
    })
    .unwrap_or("/account")
    .to_string()
}

const INVITE_COOKIE: &str = "yiren_invite";

fn invite_cookie(state: &AppState, code: &str) -> Cookie<'static> {
    let mut c = Cookie::new(INVITE_COOKIE, code.to_string());
    c.set_path("/");
    c.set_http_only(true);
    c.set_same_site(SameSite::Lax);
    c.set_secure(state.config.https());
    c.set_max_age(time::Duration::days(30));
    c
}

fn invite_from(jar: &CookieJar) -> Option<String> {
    jar.get(INVITE_COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 40)
}

/// Status and message for a refused customer form.
fn refusal(e: &DomainError) -> Option<(StatusCode, String, Option<i64>)> {
    let l = crate::locale::current();
    Some(match e {
        DomainError::Invalid { key, .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, l.t(key).into(), None)
        }
        DomainError::Conflict { key } => (StatusCode::CONFLICT, l.t(key).into(), None),
        DomainError::Unauthenticated => (
            StatusCode::UNAUTHORIZED,
            l.t("error.invalid_credentials").into(),
            None,
        ),
        DomainError::Throttled { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            l.tf(
                "error.throttled",
                &[("seconds", &retry_after_secs.to_string())],
            ),
            Some(*retry_after_secs),
        ),
        DomainError::Forbidden => (
            StatusCode::FORBIDDEN,
            l.t("account.method_off").into(),
            None,
        ),
        _ => return None,
    })
}

fn domain_error_page(e: DomainError) -> Response {
    let err = crate::error::ApiError::from(e);
    crate::templates::error_page(err.status, err.key)
}

fn with_status(status: StatusCode, retry: Option<i64>, r: impl IntoResponse) -> Response {
    let mut resp = r.into_response();
    *resp.status_mut() = status;
    if let Some(s) = retry {
        resp.headers_mut().insert("retry-after", s.into());
    }
    resp
}

/// Finish a sign-in through an identity a provider vouched for (OAuth, WeChat): link it to the
/// customer who started the flow (`link_to`, who must still be signed in here), or sign in with
/// it (rotating away any session this browser had). Ok: the jar with the new cookie and where to
/// go; Err: the status and message key to show.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn complete_external(
    state: &AppState,
    jar: CookieJar,
    current: Option<CustomerSession>,
    link_to: Option<i64>,
    ext: &yiren_core::customer::ExternalIdentity,
    method: &str,
    invite: Option<&str>,
    next: String,
    ip: &str,
    user_agent: Option<&str>,
) -> Result<(CookieJar, String), (StatusCode, &'static str)> {
    use yiren_core::customer;
    let refused = |e: DomainError| match e {
        DomainError::Conflict { key } => (StatusCode::CONFLICT, key),
        DomainError::Invalid { key, .. } => (StatusCode::FORBIDDEN, key),
        DomainError::Unauthenticated => (StatusCode::FORBIDDEN, "account.disabled"),
        e => {
            let err = crate::error::ApiError::from(e);
            (err.status, err.key)
        }
    };
    if let Some(target) = link_to {
        if current.as_ref().map(|s| s.customer.id) != Some(target) {
            return Err((StatusCode::UNAUTHORIZED, "error.unauthenticated"));
        }
        customer::link_identity(&state.ctx, target, ext)
            .await
            .map_err(refused)?;
        return Ok((
            jar,
            "/account/security?notice=account.identity_linked".into(),
        ));
    }
    let (token, created) =
        customer::sign_in_with_identity(&state.ctx, ext, method, invite, ip, user_agent)
            .await
            .map_err(refused)?;
    if let Some(old) = current {
        let _ = customer::sign_out(&state.ctx, &old.id_hash).await;
    }
    let jar = crate::cart::after_sign_in(state, jar, &token).await;
    let jar = jar.add(crate::security::customer_cookie(state, token));
    let to = if created {
        "/account?notice=account.welcome".to_string()
    } else {
        next
    };
    Ok((jar, to))
}
