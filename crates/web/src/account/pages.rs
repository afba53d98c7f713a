//! Customer sign-in, profile, security, data and deletion pages.

use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::{context, Value};
use serde::Deserialize;
use yiren_core::customer::{self, code, settings as methods, CustomerSession};
use yiren_core::{DomainError, Locale};

use super::{
    domain_error_page, invite_cookie, invite_from, local_next, notice, page_ctx, refusal,
    with_status,
};
use crate::security::{self, ClientIp, CsrfForm, CustomerAuth, MaybeCustomer, UserAgent};
use crate::AppState;

/// Query of pages that show a notice or continue somewhere.
#[derive(Deserialize, Default)]
pub struct PageQuery {
    notice: Option<String>,
    next: Option<String>,
    email: Option<String>,
}

/// The token forms on a page must carry: the session's when signed in, else the pre-session one.
fn form_token(
    state: &AppState,
    jar: CookieJar,
    current: Option<&CustomerSession>,
) -> (CookieJar, String) {
    match current {
        Some(s) => (jar, s.csrf_token.clone()),
        None => security::pre_session_csrf(state, jar),
    }
}

/// Render the sign-in page (also after a refused form).
async fn render_sign_in(
    state: &AppState,
    jar: CookieJar,
    current: Option<&CustomerSession>,
    next: &str,
    email: &str,
    error: Option<String>,
    notice_text: Option<&str>,
) -> (CookieJar, Response) {
    let (jar, csrf) = form_token(state, jar, current);
    let (jar, _) = security::browser_binding(state, jar);
    let m = match methods::load(&state.ctx).await {
        Ok(m) => m,
        Err(e) => return (jar, domain_error_page(e)),
    };
    let providers: Vec<Value> = m
        .providers
        .iter()
        .filter(|p| p.enabled)
        .map(|p| context! { slug => p.slug.clone(), name => p.name.clone() })
        .collect();
    let base = page_ctx(state, "/account/sign-in", None, &csrf).await;
    let ctx = context! {
        next => next, email => email, error => error, notice => notice_text,
        email_code => m.email_code, password => m.password, wechat => m.wechat.enabled, passkey => m.passkey,
        providers => providers, invite_only => m.invite_only, invite => invite_from(&jar),
        ..base
    };
    let page = state.templates.render("account/sign_in.html", ctx);
    (jar, page)
}

/// The sign-in page again with the reason a form was refused (or the error page).
async fn sign_in_refused(
    state: &AppState,
    jar: CookieJar,
    current: Option<&CustomerSession>,
    next: &str,
    email: &str,
    e: DomainError,
) -> Response {
    match refusal(&e) {
        Some((status, msg, retry)) => {
            let (jar, page) =
                render_sign_in(state, jar, current, next, email, Some(msg), None).await;
            with_status(status, retry, (jar, page))
        }
        None => domain_error_page(e),
    }
}

pub async fn sign_in_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Extension(current): Extension<MaybeCustomer>,
    Query(q): Query<PageQuery>,
) -> Response {
    let next = local_next(q.next.as_deref());
    if current.0.is_some() && q.notice.is_none() {
        return Redirect::to(&next).into_response();
    }
    let (jar, page) = render_sign_in(
        &state,
        jar,
        current.0.as_ref(),
        &next,
        q.email.as_deref().unwrap_or(""),
        None,
        notice(q.notice.as_deref()),
    )
    .await;
    (jar, page).into_response()
}

#[derive(Deserialize)]
pub struct CodeForm {
    email: String,
    next: Option<String>,
}

pub async fn send_code(
    State(state): State<AppState>,
    jar: CookieJar,
    ClientIp(ip): ClientIp,
    Extension(current): Extension<MaybeCustomer>,
    CsrfForm(f): CsrfForm<CodeForm>,
) -> Response {
    let next = local_next(f.next.as_deref());
    let (jar, binding) = security::browser_binding(&state, jar);
    let locale = crate::locale::current();
    match code::send_code(&state.ctx, &f.email, &binding, &ip.to_string(), locale).await {
        Ok(()) => {
            let q = serde_urlencoded::to_string([("email", f.email.trim()), ("next", &next)])
                .unwrap_or_default();
            (jar, Redirect::to(&format!("/account/verify?{q}"))).into_response()
        }
        Err(e) => sign_in_refused(&state, jar, current.0.as_ref(), &next, &f.email, e).await,
    }
}

async fn render_verify(
    state: &AppState,
    jar: CookieJar,
    current: Option<&CustomerSession>,
    email: &str,
    next: &str,
    error: Option<String>,
) -> Response {
    let (jar, csrf) = form_token(state, jar, current);
    let invite_only = methods::load(&state.ctx)
        .await
        .map(|m| m.invite_only)
        .unwrap_or(false);
    let base = page_ctx(state, "/account/verify", None, &csrf).await;
    let ctx = context! {
        email => email, next => next, error => error, invite_only => invite_only,
        invite => invite_from(&jar), minutes => code::CODE_TTL_MS / 60_000, ..base
    };
    let page = state.templates.render("account/verify.html", ctx);
    (jar, page).into_response()
}

pub async fn verify_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Extension(current): Extension<MaybeCustomer>,
    Query(q): Query<PageQuery>,
) -> Response {
    let next = local_next(q.next.as_deref());
    render_verify(
        &state,
        jar,
        current.0.as_ref(),
        q.email.as_deref().unwrap_or(""),
        &next,
        None,
    )
    .await
}

#[derive(Deserialize)]
pub struct VerifyForm {
    email: String,
    code: String,
    invite: Option<String>,
    next: Option<String>,
}

/// Replace whatever session this browser had with a new one (the id rotates on every sign-in).
async fn signed_in(
    state: &AppState,
    jar: CookieJar,
    current: Option<CustomerSession>,
    token: String,
    to: &str,
) -> Response {
    if let Some(old) = current {
        if let Err(e) = customer::sign_out(&state.ctx, &old.id_hash).await {
            return domain_error_page(e);
        }
    }
    let jar = crate::cart::after_sign_in(state, jar, &token).await;
    let jar = jar.add(security::customer_cookie(state, token));
    (jar, Redirect::to(to)).into_response()
}

pub async fn verify_code(
    State(state): State<AppState>,
    jar: CookieJar,
    ClientIp(ip): ClientIp,
    UserAgent(ua): UserAgent,
    Extension(current): Extension<MaybeCustomer>,
    CsrfForm(f): CsrfForm<VerifyForm>,
) -> Response {
    let next = local_next(f.next.as_deref());
    let binding = security::existing_binding(&state, &jar).unwrap_or_default();
    let invite = f
        .invite
        .clone()
        .filter(|i| !i.trim().is_empty())
        .or_else(|| invite_from(&jar));
    let result = if binding.is_empty() {
        Err(DomainError::invalid("code", "code.invalid"))
    } else {
        code::verify_code(
            &state.ctx,
            &f.email,
            &f.code,
            &binding,
            invite.as_deref(),
            Some(crate::locale::current()),
            &ip.to_string(),
            ua.as_deref(),
        )
        .await
    };
    match result {
        Ok(v) => {
            let to = if v.created {
                "/account?notice=account.welcome".to_string()
            } else {
                next
            };
            signed_in(&state, jar, current.0, v.token, &to).await
        }
        // The code was right (only its owner can know), so say why: the account is disabled.
        Err(DomainError::Unauthenticated) => {
            let msg = crate::locale::current().t("account.disabled").to_string();
            with_status(
                StatusCode::UNAUTHORIZED,
                None,
                render_verify(&state, jar, current.0.as_ref(), &f.email, &next, Some(msg)).await,
            )
        }
        Err(e) => match refusal(&e) {
            Some((status, msg, retry)) => with_status(
                status,
                retry,
                render_verify(&state, jar, current.0.as_ref(), &f.email, &next, Some(msg)).await,
            ),
            None => domain_error_page(e),
        },
    }
}

#[derive(Deserialize)]
pub struct PasswordSignInForm {
    email: String,
    password: String,
    next: Option<String>,
}

pub async fn sign_in_password(
    State(state): State<AppState>,
    jar: CookieJar,
    ClientIp(ip): ClientIp,
    UserAgent(ua): UserAgent,
    Extension(current): Extension<MaybeCustomer>,
    CsrfForm(f): CsrfForm<PasswordSignInForm>,
) -> Response {
    let next = local_next(f.next.as_deref());
    let enabled = match methods::load(&state.ctx).await {
        Ok(m) => m.password,
        Err(e) => return domain_error_page(e),
    };
    let result = if enabled {
        customer::sign_in_password(
            &state.ctx,
            &f.email,
            &f.password,
            &ip.to_string(),
            ua.as_deref(),
        )
        .await
    } else {
        Err(DomainError::Forbidden)
    };
    match result {
        Ok(token) => signed_in(&state, jar, current.0, token, &next).await,
        Err(e) => sign_in_refused(&state, jar, current.0.as_ref(), &next, &f.email, e).await,
    }
}

#[derive(Deserialize)]
pub struct EmptyForm {}

pub async fn sign_out(
    State(state): State<AppState>,
    jar: CookieJar,
    Extension(current): Extension<MaybeCustomer>,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Response {
    if let Some(s) = current.0 {
        if let Err(e) = customer::sign_out(&state.ctx, &s.id_hash).await {
            return domain_error_page(e);
        }
    }
    // The cart stays with the account, not on a browser someone else may use next.
    let jar = crate::cart::clear(&state, jar.add(security::clear_customer_cookie(&state)));
    (
        jar,
        Redirect::to("/account/sign-in?notice=account.signed_out"),
    )
        .into_response()
}

async fn render_profile(
    state: &AppState,
    s: &CustomerSession,
    notice_text: Option<&str>,
    error: Option<String>,
) -> Response {
    let (c, invite) = match (
        customer::get(&state.ctx, s.customer.id).await,
        customer::personal_invite(&state.ctx, s.customer.id).await,
    ) {
        (Ok(c), Ok(i)) => (c, i),
        (Err(e), _) | (_, Err(e)) => return domain_error_page(e),
    };
    let base = page_ctx(state, "/account", Some(s), &s.csrf_token).await;
    let ctx = context! {
        me => Value::from_serialize(&c),
        me_locale => c.locale.map(Locale::tag).unwrap_or(""),
        invite_path => invite.map(|code| format!("/invite/{code}")),
        notice => notice_text, error => error, ..base
    };
    state.templates.render("account/profile.html", ctx)
}

pub async fn profile_page(
    State(state): State<AppState>,
    CustomerAuth(s): CustomerAuth,
    Query(q): Query<PageQuery>,
) -> Response {
    render_profile(&state, &s, notice(q.notice.as_deref()), None).await
}

#[derive(Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    avatar_url: String,
    #[serde(default)]
    locale: String,
}

pub async fn save_profile(
    State(state): State<AppState>,
    CustomerAuth(s): CustomerAuth,
    CsrfForm(f): CsrfForm<ProfileForm>,
) -> Response {
    let input = customer::ProfileInput {
        name: &f.name,
        phone: &f.phone,
        avatar_url: &f.avatar_url,
        locale: &f.locale,
    };
    match customer::update_profile(&state.ctx, s.customer.id, &input).await {
        Ok(()) => Redirect::to("/account?notice=account.saved").into_response(),
        Err(e) => match refusal(&e) {
            Some((status, msg, retry)) => with_status(
                status,
                retry,
                render_profile(&state, &s, None, Some(msg)).await,
            ),
            None => domain_error_page(e),
        },
    }
}

async fn render_security(
    state: &AppState,
    s: &CustomerSession,
    notice_text: Option<&str>,
    error: Option<String>,
) -> Response {
    let ctx_ = &state.ctx;
    let (c, ids, sessions, m) = match (
        customer::get(ctx_, s.customer.id).await,
        customer::identities(ctx_, s.customer.id).await,
        customer::sessions(ctx_, s.customer.id).await,
        methods::load(ctx_).await,
    ) {
        (Ok(c), Ok(i), Ok(ss), Ok(m)) => (c, i, ss, m),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => {
            return domain_error_page(e)
        }
    };
    let keys = match customer::passkey::list(ctx_, s.customer.id).await {
        Ok(k) => k,
        Err(e) => return domain_error_page(e),
    };
    let providers: Vec<Value> = m
        .providers
        .iter()
        .filter(|p| p.enabled)
        .map(|p| context! { slug => p.slug.clone(), name => p.name.clone() })
        .collect();
    let reauth_ok = ctx_.now() - s.created_at <= customer::REAUTH_WINDOW_MS;
    let base = page_ctx(state, "/account/security", Some(s), &s.csrf_token).await;
    let ctx = context! {
        me => Value::from_serialize(&c), identities => Value::from_serialize(&ids),
        sessions => Value::from_serialize(&sessions), current_session => s.id,
        providers => providers, wechat => m.wechat.enabled, reauth_ok => reauth_ok,
        passkey_enabled => m.passkey, passkeys => Value::from_serialize(&keys),
        notice => notice_text, error => error, ..base
    };
    state.templates.render("account/security.html", ctx)
}

pub async fn security_page(
    State(state): State<AppState>,
    CustomerAuth(s): CustomerAuth,
    Query(q): Query<PageQuery>,
) -> Response {
    render_security(&state, &s, notice(q.notice.as_deref()), None).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current_password: Option<String>,
    new_password: String,
}

pub async fn set_password(
    State(state): State<AppState>,
    CustomerAuth(s): CustomerAuth,
    CsrfForm(f): CsrfForm<PasswordForm>,
) -> Response {
    match customer::set_password(
        &state.ctx,
        &s,
        f.current_password.as_deref(),
        &f.new_password,
    )
    .await
    {
        Ok(()) => Redirect::to("/account/security?notice=account.password_set").into_response(),
        Err(e) => match refusal(&e) {
            Some((status, msg, retry)) => with_status(
                status,
                retry,
                render_security(&state, &s, None, Some(msg)).await,
            ),
            None => domain_error_page(e),
        },
    }
}

pub async fn revoke_session(
    State(state): State<AppState>,
    CustomerAuth(s): CustomerAuth,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Response {
    match customer::revoke_session(&state.ctx, s.customer.id, id).await {
        Ok(()) if id == s.id => {
            Redirect::to("/account/sign-in?notice=account.signed_out").into_response()
        }
        Ok(()) => Redirect::to("/account/security?notice=account.session_revoked").into_response(),
        Err(e) => domain_error_page(e),
    }
}

pub async fn revoke_other_sessions(
    State(state): State<AppState>,
    CustomerAuth(s): CustomerAuth,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Response {
    match customer::sign_out_everywhere(&state.ctx, s.customer.id, Some(&s.id_hash)).await {
        Ok(_) => Redirect::to("/account/security?notice=account.sessions_revoked").into_response(),
        Err(e) => domain_error_page(e),
    }
}

pub async fn unlink_identity(
    State(state): State<AppState>,
    CustomerAuth(s): CustomerAuth,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Response {
    match customer::unlink_identity(&state.ctx, s.customer.id, id).await {
        Ok(()) => {
            Redirect::to("/account/security?notice=account.identity_unlinked").into_response()
        }
        Err(e @ DomainError::Conflict { .. }) => {
            let msg = refusal(&e).map(|r| r.1);
            with_status(
                StatusCode::CONFLICT,
                None,
                render_security(&state, &s, None, msg).await,
            )
        }
        Err(e) => domain_error_page(e),
    }
}

pub async fn download_data(
    State(state): State<AppState>,
    CustomerAuth(s): CustomerAuth,
) -> Response {
    match customer::export(&state.ctx, s.customer.id).await {
        Ok(v) => {
            let body = serde_json::to_vec_pretty(&v).unwrap_or_default();
            (
                [
                    (
                        header::CONTENT_TYPE,
                        "application/json; charset=utf-8".to_string(),
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"my-data-{}.json\"", s.customer.id),
                    ),
                ],
                body,
            )
                .into_response()
        }
        Err(e) => domain_error_page(e),
    }
}

async fn render_delete(state: &AppState, s: &CustomerSession, error: Option<String>) -> Response {
    let base = page_ctx(state, "/account/delete", Some(s), &s.csrf_token).await;
    state
        .templates
        .render("account/delete.html", context! { error => error, ..base })
}

pub async fn delete_page(State(state): State<AppState>, CustomerAuth(s): CustomerAuth) -> Response {
    render_delete(&state, &s, None).await
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

pub async fn delete_account(
    State(state): State<AppState>,
    jar: CookieJar,
    CustomerAuth(s): CustomerAuth,
    CsrfForm(f): CsrfForm<DeleteForm>,
) -> Response {
    if f.confirm.trim() != "DELETE" {
        let msg = crate::locale::current().t("account.delete_confirm_wrong");
        return with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            render_delete(&state, &s, Some(msg.into())).await,
        );
    }
    match customer::delete_account(&state.ctx, s.customer.id).await {
        Ok(()) => {
            let jar = jar.add(security::clear_customer_cookie(&state));
            (jar, Redirect::to("/account/sign-in?notice=account.deleted")).into_response()
        }
        Err(e) => domain_error_page(e),
    }
}

/// `/invite/{code}`: remember the invite in a cookie and go to sign-up. Only a cookie is set.
pub async fn invite_link(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(code): Path<String>,
) -> Response {
    let code = code.trim().to_ascii_uppercase();
    if code.is_empty() || code.len() > 40 || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
        return crate::templates::error_page(StatusCode::NOT_FOUND, "error.not_found");
    }
    let jar = jar.add(invite_cookie(&state, &code));
    (jar, Redirect::to("/account/sign-in")).into_response()
}

#[derive(Deserialize)]
pub struct EmailForm {
    email: String,
}

async fn render_email_confirm(
    state: &AppState,
    s: &CustomerSession,
    email: &str,
    error: Option<String>,
) -> Response {
    let base = page_ctx(state, "/account/email", Some(s), &s.csrf_token).await;
    let ctx =
        context! { email => email, error => error, minutes => code::CODE_TTL_MS / 60_000, ..base };
    state.templates.render("account/email.html", ctx)
}

/// Add or change the email: send a code to the new address (needs a recent sign-in).
pub async fn start_email_change(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    CustomerAuth(s): CustomerAuth,
    CsrfForm(f): CsrfForm<EmailForm>,
) -> Response {
    let locale = crate::locale::current();
    match code::start_email_change(&state.ctx, &s, &f.email, &ip.to_string(), locale).await {
        Ok(email) => render_email_confirm(&state, &s, &email, None).await,
        Err(e) => match refusal(&e) {
            Some((status, msg, retry)) => with_status(
                status,
                retry,
                render_profile(&state, &s, None, Some(msg)).await,
            ),
            None => domain_error_page(e),
        },
    }
}

#[derive(Deserialize)]
pub struct EmailCodeForm {
    email: String,
    code: String,
}

pub async fn confirm_email_change(
    State(state): State<AppState>,
    CustomerAuth(s): CustomerAuth,
    CsrfForm(f): CsrfForm<EmailCodeForm>,
) -> Response {
    match code::confirm_email_change(&state.ctx, &s, &f.email, &f.code).await {
        Ok(()) => Redirect::to("/account?notice=account.email_changed").into_response(),
        Err(e) => match refusal(&e) {
            Some((status, msg, retry)) => with_status(
                status,
                retry,
                render_email_confirm(&state, &s, &f.email, Some(msg)).await,
            ),
            None => domain_error_page(e),
        },
    }
}

/// `/account/orders`: the customer's own orders, newest first, each linking to its page (where
/// downloads, licence keys and membership dates are).
pub async fn orders_page(
    State(state): State<AppState>,
    CustomerAuth(s): CustomerAuth,
    Query(q): Query<OrdersQuery>,
) -> Response {
    const PAGE: i64 = 20;
    let page = q.page.unwrap_or(1).clamp(1, 10_000);
    let mut rows =
        match yiren_core::order::list(&state.ctx, Some(s.customer.id), PAGE + 1, (page - 1) * PAGE)
            .await
        {
            Ok(r) => r,
            Err(e) => return domain_error_page(e),
        };
    let more = rows.len() as i64 > PAGE;
    rows.truncate(PAGE as usize);
    let t = crate::locale::current();
    let orders: Vec<Value> = rows
        .iter()
        .map(|o| {
            let status = crate::checkout::status_key(o);
            context! {
                number => o.number, at => o.created_at, status => t.t(status),
                total => yiren_core::money::display(o.total, &o.currency),
                url => format!("/orders/{}?key={}", o.id, yiren_core::order::access_key(&state.ctx, o.id)),
            }
        })
        .collect();
    let email = s.customer.email.clone().unwrap_or_default();
    let plans = match yiren_core::recurring::of_customer(&state.ctx, s.customer.id, &email).await {
        Ok(p) => p,
        Err(e) => return domain_error_page(e),
    };
    let base = page_ctx(&state, "/account/orders", Some(&s), &s.csrf_token).await;
    state.templates.render(
        "account/orders.html",
        context! {
            orders => orders,
            plans => crate::admin::renewals::for_customer(&plans),
            notice => q.notice.as_deref().filter(|n| *n == "renewals.cancelled").map(|n| t.t(n)),
            prev => (page > 1).then(|| format!("/account/orders?page={}", page - 1)),
            next => more.then(|| format!("/account/orders?page={}", page + 1)),
            ..base
        },
    )
}

#[derive(Deserialize, Default)]
pub struct OrdersQuery {
    page: Option<i64>,
    notice: Option<String>,
}

/// The customer stops one of their memberships renewing (their own only: another customer's
/// plan, or a made-up id, is not found).
pub async fn cancel_renewal(
    State(state): State<AppState>,
    CustomerAuth(s): CustomerAuth,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<EmptyForm>,
) -> Response {
    let email = s.customer.email.clone().unwrap_or_default();
    let mine = match yiren_core::recurring::of_customer(&state.ctx, s.customer.id, &email).await {
        Ok(plans) => plans.iter().any(|p| p.row.id == id),
        Err(e) => return domain_error_page(e),
    };
    if !mine {
        return domain_error_page(yiren_core::DomainError::NotFound);
    }
    match yiren_core::recurring::cancel(&state.ctx, id, &format!("customer:{}", s.customer.id))
        .await
    {
        Ok(_) | Err(yiren_core::DomainError::Conflict { .. }) => {
            Redirect::to("/account/orders?notice=renewals.cancelled").into_response()
        }
        Err(e) => domain_error_page(e),
    }
}
