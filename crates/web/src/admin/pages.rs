//! Admin page handlers.

use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::{context, Value};
use serde::Deserialize;
use yiren_core::auth::{self, Role};
use yiren_core::settings::{self as site, SiteSettings};
use yiren_core::{api_token, health, job, DomainError};
use yiren_store::job::JobRow;

use super::{base_ctx, notice};
use crate::error::ApiError;
use crate::security::{
    self, AdminSession, ClientIp, CsrfForm, MaybeSession, OwnerSession, UserAgent,
};
use crate::AppState;

pub(crate) fn domain_error_page(e: DomainError) -> Response {
    let err = ApiError::from(e);
    crate::templates::error_page(err.status, err.key)
}

/// A form's error message, in the request's language.
pub(crate) fn message(key: &str) -> Option<String> {
    Some(crate::locale::current().t(key).to_string())
}

/// A re-rendered form that was refused: 422.
pub(crate) fn unprocessable(mut r: Response) -> Response {
    *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    r
}

fn local_next(next: Option<&str>) -> String {
    next.filter(|n| n.starts_with("/admin") && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or("/admin")
        .to_string()
}

/// Query of pages that can show a notice.
#[derive(Deserialize, Default)]
pub struct NoticeQuery {
    notice: Option<String>,
    next: Option<String>,
}

pub async fn sign_in_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Extension(current): Extension<MaybeSession>,
    Query(q): Query<NoticeQuery>,
) -> Response {
    // Signed in already (signing in again, e.g. as someone else): the form carries the session's token.
    let (jar, csrf) = match current.0 {
        Some(s) => (jar, s.csrf_token),
        None => security::pre_session_csrf(&state, jar),
    };
    let base = base_ctx(&state, "/admin/sign-in", None, &csrf).await;
    let ctx = context! { notice => notice(q.notice.as_deref()), next => local_next(q.next.as_deref()), email => "", ..base };
    (jar, state.templates.render("admin/sign_in.html", ctx)).into_response()
}

#[derive(Deserialize)]
pub struct SignInForm {
    email: String,
    password: String,
    next: Option<String>,
}

pub async fn sign_in(
    State(state): State<AppState>,
    jar: CookieJar,
    ClientIp(ip): ClientIp,
    Extension(current): Extension<MaybeSession>,
    UserAgent(ua): UserAgent,
    CsrfForm(f): CsrfForm<SignInForm>,
) -> Response {
    match auth::sign_in(
        &state.ctx,
        &f.email,
        &f.password,
        &ip.to_string(),
        ua.as_deref(),
    )
    .await
    {
        Ok((_session, token)) => {
            // Rotation: the session this browser had before is gone, not merely replaced.
            if let Some(old) = current.0 {
                if let Err(e) = auth::sign_out(&state.ctx, &old.id_hash).await {
                    return domain_error_page(e);
                }
            }
            let jar = jar.add(security::session_cookie(&state, token));
            (jar, Redirect::to(&local_next(f.next.as_deref()))).into_response()
        }
        Err(e) => {
            let (status, message, retry) = match e {
                DomainError::Throttled { retry_after_secs } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    crate::locale::current().tf(
                        "error.throttled",
                        &[("seconds", &retry_after_secs.to_string())],
                    ),
                    Some(retry_after_secs),
                ),
                DomainError::Unauthenticated => (
                    StatusCode::UNAUTHORIZED,
                    crate::locale::current()
                        .t("error.invalid_credentials")
                        .to_string(),
                    None,
                ),
                e => return domain_error_page(e),
            };
            let (jar, csrf) = match current.0 {
                Some(s) => (jar, s.csrf_token),
                None => security::pre_session_csrf(&state, jar),
            };
            let base = base_ctx(&state, "/admin/sign-in", None, &csrf).await;
            let ctx = context! { error => message, next => local_next(f.next.as_deref()), email => f.email, ..base };
            let mut resp = (
                status,
                jar,
                state.templates.render("admin/sign_in.html", ctx),
            )
                .into_response();
            *resp.status_mut() = status;
            if let Some(s) = retry {
                resp.headers_mut().insert("retry-after", s.into());
            }
            resp
        }
    }
}

pub async fn sign_out(
    State(state): State<AppState>,
    jar: CookieJar,
    AdminSession(s): AdminSession,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    if let Err(e) = auth::sign_out(&state.ctx, &s.id_hash).await {
        return domain_error_page(e);
    }
    (
        jar.add(security::clear_session_cookie(&state)),
        Redirect::to("/admin/sign-in?notice=admin.signed_out"),
    )
        .into_response()
}

/// A form with only the CSRF field.
#[derive(Deserialize)]
pub struct Empty {}

#[derive(serde::Serialize)]
struct StateCount {
    state: &'static str,
    count: i64,
}

#[derive(serde::Serialize)]
struct JobView {
    id: String,
    kind: String,
    state: String,
    attempts: i64,
    max_attempts: i64,
    last_error: Option<String>,
    updated_at: i64,
}

impl From<JobRow> for JobView {
    fn from(j: JobRow) -> Self {
        JobView {
            id: j.id.to_string(),
            kind: j.kind,
            state: j.state,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            last_error: j.last_error,
            updated_at: j.updated_at,
        }
    }
}

pub async fn dashboard(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let health = health::check(&state.ctx).await;
    let job_states: Vec<StateCount> = match job::counts(&state.ctx).await {
        Ok(c) => c
            .into_iter()
            .map(|(state, count)| StateCount { state, count })
            .collect(),
        Err(e) => return domain_error_page(e),
    };
    let dead: Vec<JobView> = match job::list(&state.ctx, Some("dead"), i64::MAX, 20).await {
        Ok(rows) => rows.into_iter().map(JobView::from).collect(),
        Err(e) => return domain_error_page(e),
    };
    let base = base_ctx(&state, "/admin", Some(&s), &s.csrf_token).await;
    let ctx = context! {
        notice => notice(q.notice.as_deref()),
        health => Value::from_serialize(&health),
        job_states => Value::from_serialize(&job_states),
        dead_jobs => Value::from_serialize(&dead),
        ..base
    };
    state.templates.render("admin/dashboard.html", ctx)
}

#[derive(Deserialize, Default)]
pub struct JobsQuery {
    state: Option<String>,
    before: Option<i64>,
    notice: Option<String>,
}

pub async fn jobs(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Query(q): Query<JobsQuery>,
) -> Response {
    let filter = job::parse_state(q.state.as_deref()).unwrap_or(None);
    let limit = 50;
    let rows = match job::list(&state.ctx, filter, q.before.unwrap_or(i64::MAX), limit).await {
        Ok(r) => r,
        Err(e) => return domain_error_page(e),
    };
    let next_before = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|j| j.id.to_string()))
        .flatten();
    let views: Vec<JobView> = rows.into_iter().map(JobView::from).collect();
    let base = base_ctx(&state, "/admin/jobs", Some(&s), &s.csrf_token).await;
    let ctx = context! { notice => notice(q.notice.as_deref()), jobs => Value::from_serialize(&views), states => job::STATES.to_vec(), state => filter.unwrap_or(""), next_before, ..base };
    state.templates.render("admin/jobs.html", ctx)
}

pub async fn retry_job(
    State(state): State<AppState>,
    AdminSession(_): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    match job::retry(&state.ctx, id).await {
        Ok(_) => Redirect::to("/admin/jobs?notice=admin.retried").into_response(),
        Err(e) => domain_error_page(e),
    }
}

#[derive(Deserialize, serde::Serialize)]
pub struct SettingsForm {
    pub site_name: String,
    pub locale: String,
    pub currency: String,
    pub time_zone: String,
}

impl From<&SiteSettings> for SettingsForm {
    fn from(s: &SiteSettings) -> Self {
        SettingsForm {
            site_name: s.name.clone(),
            locale: s.default_locale.tag().into(),
            currency: s.currency.clone(),
            time_zone: s.time_zone.clone(),
        }
    }
}

/// Common IANA zones offered in the time-zone field (any valid zone is accepted).
pub const ZONES: &[&str] = &[
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Taipei",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Asia/Seoul",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Australia/Sydney",
    "UTC",
];

/// The currency codes offered.
pub fn currency_codes() -> Vec<&'static str> {
    site::CURRENCIES.iter().map(|(c, _)| *c).collect()
}

async fn render_settings(
    state: &AppState,
    s: &yiren_core::auth::Session,
    form: &SettingsForm,
    error: Option<String>,
    notice_key: Option<&str>,
) -> Response {
    let base = base_ctx(state, "/admin/settings", Some(s), &s.csrf_token).await;
    let ctx = context! { form => Value::from_serialize(form), currencies => currency_codes(), zones => ZONES.to_vec(), error, notice => notice(notice_key), ..base };
    state.templates.render("admin/settings.html", ctx)
}

pub async fn settings_page(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let current = state.refresh_settings().await;
    render_settings(
        &state,
        &s,
        &SettingsForm::from(&current),
        None,
        q.notice.as_deref(),
    )
    .await
}

pub async fn save_settings(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    CsrfForm(f): CsrfForm<SettingsForm>,
) -> Response {
    let parsed = SiteSettings::parse(&f.site_name, &f.locale, &f.currency, &f.time_zone);
    let result = match parsed {
        Ok(settings) => site::save(&state.ctx, &settings).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {
            state.refresh_settings().await;
            Redirect::to("/admin/settings?notice=settings.saved").into_response()
        }
        Err(DomainError::Invalid { key, .. }) => {
            unprocessable(render_settings(&state, &s, &f, message(key), None).await)
        }
        Err(e) => domain_error_page(e),
    }
}

async fn render_staff(
    state: &AppState,
    s: &yiren_core::auth::Session,
    error: Option<String>,
    notice_key: Option<&str>,
) -> Response {
    let members = match auth::list_staff(&state.ctx, 0, 500).await {
        Ok(m) => m,
        Err(e) => return domain_error_page(e),
    };
    let members: Vec<_> = members
        .into_iter()
        .map(|m| context! { id => m.id.to_string(), ..Value::from_serialize(&m) })
        .collect();
    let base = base_ctx(state, "/admin/staff", Some(s), &s.csrf_token).await;
    let ctx = context! { members, is_owner => s.staff.role == Role::Owner, error, notice => notice(notice_key), ..base };
    state.templates.render("admin/staff.html", ctx)
}

pub async fn staff_page(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Query(q): Query<NoticeQuery>,
) -> Response {
    render_staff(&state, &s, None, q.notice.as_deref()).await
}

#[derive(Deserialize)]
pub struct StaffForm {
    name: String,
    email: String,
    password: String,
}

pub async fn add_staff(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    CsrfForm(f): CsrfForm<StaffForm>,
) -> Response {
    let result = async {
        let mut tx = state.ctx.db.begin().await?;
        auth::create_staff(
            &state.ctx,
            &mut tx,
            &f.email,
            &f.name,
            &f.password,
            Role::Staff,
            None,
        )
        .await?;
        tx.commit().await.map_err(yiren_store::StoreError::from)?;
        Ok::<_, DomainError>(())
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/admin/staff?notice=staff.created").into_response(),
        Err(DomainError::Invalid { key, .. } | DomainError::Conflict { key }) => {
            unprocessable(render_staff(&state, &s, message(key), None).await)
        }
        Err(e) => domain_error_page(e),
    }
}

async fn set_disabled(state: &AppState, id: i64, disabled: bool) -> Response {
    match auth::set_staff_disabled(&state.ctx, id, disabled).await {
        Ok(()) => Redirect::to("/admin/staff").into_response(),
        Err(e) => domain_error_page(e),
    }
}

pub async fn disable_staff(
    State(state): State<AppState>,
    OwnerSession(_): OwnerSession,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    set_disabled(&state, id, true).await
}

pub async fn enable_staff(
    State(state): State<AppState>,
    OwnerSession(_): OwnerSession,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    set_disabled(&state, id, false).await
}

async fn render_account(
    state: &AppState,
    s: &yiren_core::auth::Session,
    csrf: &str,
    error: Option<String>,
    notice_key: Option<&str>,
) -> Response {
    let base = base_ctx(state, "/admin/account", Some(s), csrf).await;
    state.templates.render(
        "admin/account.html",
        context! { error, notice => notice(notice_key), ..base },
    )
}

pub async fn account_page(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Query(q): Query<NoticeQuery>,
) -> Response {
    render_account(&state, &s, &s.csrf_token, None, q.notice.as_deref()).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
}

/// Change the password: every session of the account ends, and this browser gets a fresh one.
pub async fn change_password(
    State(state): State<AppState>,
    jar: CookieJar,
    ClientIp(ip): ClientIp,
    AdminSession(s): AdminSession,
    CsrfForm(f): CsrfForm<PasswordForm>,
) -> Response {
    match auth::change_password(&state.ctx, &s, &f.current_password, &f.new_password, false).await {
        Ok(()) => {
            match auth::start_session(&state.ctx, s.staff.clone(), &ip.to_string(), None).await {
                Ok((_, token)) => (
                    jar.add(security::session_cookie(&state, token)),
                    Redirect::to("/admin/account?notice=admin.password_changed"),
                )
                    .into_response(),
                Err(e) => domain_error_page(e),
            }
        }
        Err(DomainError::Invalid { key, .. }) => {
            unprocessable(render_account(&state, &s, &s.csrf_token, message(key), None).await)
        }
        Err(e) => domain_error_page(e),
    }
}

async fn render_tokens(
    state: &AppState,
    s: &yiren_core::auth::Session,
    new_secret: Option<String>,
    error: Option<String>,
) -> Response {
    let tokens = match api_token::list(&state.ctx).await {
        Ok(t) => t,
        Err(e) => return domain_error_page(e),
    };
    let visible: Vec<_> = tokens
        .into_iter()
        .filter(|t| s.staff.role == Role::Owner || t.staff_id == s.staff.id)
        .map(|t| context! { id => t.id.to_string(), ..Value::from_serialize(&t) })
        .collect();
    let base = base_ctx(state, "/admin/tokens", Some(s), &s.csrf_token).await;
    let ctx = context! { tokens => visible, scopes => api_token::SCOPES.to_vec(), new_secret, error, is_owner => s.staff.role == Role::Owner, ..base };
    state.templates.render("admin/tokens.html", ctx)
}

pub async fn tokens_page(State(state): State<AppState>, AdminSession(s): AdminSession) -> Response {
    render_tokens(&state, &s, None, None).await
}

/// Token form: `scope` repeats, so the raw pairs are read.
pub async fn create_token(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Response {
    let name = pairs
        .iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let scopes: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    match api_token::create(&state.ctx, &s.staff, name, &scopes).await {
        Ok((_, secret)) => render_tokens(&state, &s, Some(secret), None).await,
        Err(DomainError::Invalid { key, .. }) => {
            unprocessable(render_tokens(&state, &s, None, message(key)).await)
        }
        Err(e) => domain_error_page(e),
    }
}

pub async fn revoke_token(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    match api_token::revoke_as(&state.ctx, &s.staff, id).await {
        Ok(()) => Redirect::to("/admin/tokens").into_response(),
        Err(e) => domain_error_page(e),
    }
}
