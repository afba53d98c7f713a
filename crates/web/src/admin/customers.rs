//! Admin pages of the user pool: customers (list with search and filters, detail with identities,
//! sessions and invite tree, create, disable/enable, sign out everywhere), sign-in method settings
//! (owner), invite codes (owner).

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{context, Value};
use serde::Deserialize;
use yiren_core::customer::settings::{
    self as methods, OAuthProvider, ProviderKind, SignInSettings,
};
use yiren_core::customer::{self, Customer};
use yiren_core::DomainError;
use yiren_store::customer::ListFilter;

use super::pages::{domain_error_page, message, unprocessable, Empty};
use super::{base_ctx, notice};
use crate::security::{AdminSession, CsrfForm, OwnerSession};
use crate::AppState;

const PAGE: i64 = 50;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    q: Option<String>,
    state: Option<String>,
    before: Option<i64>,
    notice: Option<String>,
}

fn view(c: &Customer) -> Value {
    context! { id => c.id.to_string(), name => c.display_name(), ..Value::from_serialize(c) }
}

async fn render_list(
    state: &AppState,
    s: &yiren_core::auth::Session,
    q: &ListQuery,
    error: Option<String>,
) -> Response {
    let filter = ListFilter {
        query: q
            .q
            .clone()
            .filter(|v| !v.trim().is_empty())
            .map(|v| v.trim().to_string()),
        state: q
            .state
            .clone()
            .filter(|v| ["active", "disabled", "deleted"].contains(&v.as_str())),
        invited_by: None,
    };
    let (rows, total) = match (
        customer::list(&state.ctx, &filter, q.before.unwrap_or(0), PAGE + 1).await,
        customer::count(&state.ctx).await,
    ) {
        (Ok(r), Ok(t)) => (r, t),
        (Err(e), _) | (_, Err(e)) => return domain_error_page(e),
    };
    let more = rows.len() as i64 > PAGE;
    let rows: Vec<Value> = rows.iter().take(PAGE as usize).map(view).collect();
    let older = more.then(|| {
        let last = rows
            .last()
            .and_then(|r| r.get_attr("id").ok())
            .map(|v| v.to_string())
            .unwrap_or_default();
        let qs = serde_urlencoded::to_string([
            ("q", q.q.clone().unwrap_or_default()),
            ("state", q.state.clone().unwrap_or_default()),
            ("before", last),
        ])
        .unwrap_or_default();
        format!("/admin/customers?{qs}")
    });
    let base = base_ctx(state, "/admin/customers", Some(s), &s.csrf_token).await;
    let ctx = context! {
        customers => rows, total => total, q => q.q.clone().unwrap_or_default(),
        filter_state => q.state.clone().unwrap_or_default(), older => older,
        error => error, notice => notice(q.notice.as_deref()), ..base
    };
    state.templates.render("admin/customers.html", ctx)
}

pub async fn list(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Query(q): Query<ListQuery>,
) -> Response {
    render_list(&state, &s, &q, None).await
}

#[derive(Deserialize)]
pub struct CreateForm {
    email: String,
    #[serde(default)]
    name: String,
}

pub async fn create(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    CsrfForm(f): CsrfForm<CreateForm>,
) -> Response {
    match customer::create_by_staff(&state.ctx, &f.email, &f.name, None, None).await {
        Ok(c) => Redirect::to(&format!(
            "/admin/customers/{}?notice=customer.created",
            c.id
        ))
        .into_response(),
        Err(DomainError::Invalid { key, .. } | DomainError::Conflict { key }) => {
            unprocessable(render_list(&state, &s, &ListQuery::default(), message(key)).await)
        }
        Err(e) => domain_error_page(e),
    }
}

#[derive(Deserialize, Default)]
pub struct DetailQuery {
    notice: Option<String>,
}

pub async fn detail(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    Query(q): Query<DetailQuery>,
) -> Response {
    let ctx_ = &state.ctx;
    let c = match customer::get(ctx_, id).await {
        Ok(c) => c,
        Err(e) => return domain_error_page(e),
    };
    let personal = match customer::personal_invite(ctx_, id).await {
        Ok(p) => p,
        Err(e) => return domain_error_page(e),
    };
    let invited = ListFilter {
        invited_by: Some(id),
        ..Default::default()
    };
    let (ids, sessions, invitees, inviter) = match (
        customer::identities(ctx_, id).await,
        customer::sessions(ctx_, id).await,
        customer::list(ctx_, &invited, 0, 200).await,
        async {
            match c.invited_by {
                Some(i) => customer::get(ctx_, i).await.map(Some),
                None => Ok(None),
            }
        }
        .await,
    ) {
        (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => {
            return domain_error_page(e)
        }
    };
    let (tags, topics, chosen) = match (
        customer::tags(ctx_, id).await,
        yiren_core::reach::topic::list(ctx_).await,
        yiren_core::reach::topic::chosen(ctx_, id).await,
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => return domain_error_page(e),
    };
    let subscriptions: Vec<Value> = topics
        .iter()
        .map(|t| {
            let on: Vec<&str> = chosen
                .iter()
                .filter(|(tid, _)| *tid == t.id)
                .map(|(_, ch)| ch.as_str())
                .collect();
            context! { name => t.name.clone(), channels => on }
        })
        .collect();
    let base = base_ctx(&state, "/admin/customers", Some(&s), &s.csrf_token).await;
    let ctx = context! {
        tags => tags.join(", "), subscriptions => subscriptions,
        c => view(&c), personal_invite => personal, identities => Value::from_serialize(&ids), sessions => Value::from_serialize(&sessions),
        invitees => invitees.iter().map(view).collect::<Vec<_>>(), inviter => inviter.as_ref().map(view),
        notice => notice(q.notice.as_deref()), ..base
    };
    state.templates.render("admin/customer.html", ctx)
}

async fn after(result: Result<(), DomainError>, id: i64, notice_key: &str) -> Response {
    match result {
        Ok(()) => {
            Redirect::to(&format!("/admin/customers/{id}?notice={notice_key}")).into_response()
        }
        Err(e) => domain_error_page(e),
    }
}

pub async fn disable(
    State(state): State<AppState>,
    AdminSession(_): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    after(
        customer::set_disabled(&state.ctx, id, true).await,
        id,
        "customer.disabled",
    )
    .await
}

pub async fn enable(
    State(state): State<AppState>,
    AdminSession(_): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    after(
        customer::set_disabled(&state.ctx, id, false).await,
        id,
        "customer.enabled",
    )
    .await
}

pub async fn sign_out_everywhere(
    State(state): State<AppState>,
    AdminSession(_): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    let r = match customer::get(&state.ctx, id).await {
        Ok(_) => customer::sign_out_everywhere(&state.ctx, id, None)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    after(r, id, "customer.signed_out").await
}

#[derive(Deserialize)]
pub struct TagsForm {
    #[serde(default)]
    tags: String,
}

pub async fn set_tags(
    State(state): State<AppState>,
    AdminSession(_): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<TagsForm>,
) -> Response {
    match customer::set_tags(&state.ctx, id, &f.tags).await {
        Ok(_) => Redirect::to(&format!("/admin/customers/{id}?notice=customer.tags_saved"))
            .into_response(),
        Err(DomainError::Invalid { key, .. }) => {
            crate::templates::error_page(axum::http::StatusCode::UNPROCESSABLE_ENTITY, key)
        }
        Err(e) => domain_error_page(e),
    }
}

// ---- sign-in methods ----

async fn render_methods(
    state: &AppState,
    s: &yiren_core::auth::Session,
    headers: &HeaderMap,
    error: Option<String>,
    notice_key: Option<&str>,
) -> Response {
    let m = match methods::load(&state.ctx).await {
        Ok(m) => m,
        Err(e) => return domain_error_page(e),
    };
    let base_url = crate::api::page::base_url(state.config.public_url.as_deref(), headers);
    let providers: Vec<Value> = m
        .providers
        .iter()
        .map(|p| context! {
            slug => p.slug.clone(), name => p.name.clone(), kind => p.kind, enabled => p.enabled,
            client_id => p.client_id.clone(), has_secret => !p.client_secret.is_empty(),
            callback => format!("{base_url}/account/oauth/{}/callback", p.slug),
        })
        .collect();
    let base = base_ctx(state, "/admin/sign-in-methods", Some(s), &s.csrf_token).await;
    let ctx = context! {
        m => context! {
            email_code => m.email_code, password => m.password, passkey => m.passkey,
            invite_only => m.invite_only,
        },
        wechat => context! {
            enabled => m.wechat.enabled, has_token => !m.wechat.token.is_empty(),
            account_name => m.wechat.account_name.clone(), qr_image_url => m.wechat.qr_image_url.clone(),
            forward_url => m.wechat.forward_url.clone(), callback => format!("{base_url}/wechat/callback"),
        },
        providers => providers, error => error, notice => notice(notice_key), ..base
    };
    state.templates.render("admin/sign_in_methods.html", ctx)
}

#[derive(Deserialize, Default)]
pub struct NoticeOnly {
    notice: Option<String>,
}

pub async fn methods_page(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    headers: HeaderMap,
    Query(q): Query<NoticeOnly>,
) -> Response {
    render_methods(&state, &s, &headers, None, q.notice.as_deref()).await
}

#[derive(Deserialize)]
pub struct MethodsForm {
    email_code: Option<String>,
    password: Option<String>,
    passkey: Option<String>,
    invite_only: Option<String>,
    wechat_enabled: Option<String>,
    #[serde(default)]
    wechat_token: String,
    #[serde(default)]
    wechat_account_name: String,
    #[serde(default)]
    wechat_qr_image_url: String,
    #[serde(default)]
    wechat_forward_url: String,
}

async fn save_methods(
    state: &AppState,
    s: &yiren_core::auth::Session,
    headers: &HeaderMap,
    m: &SignInSettings,
    notice_key: &str,
) -> Response {
    match methods::save(&state.ctx, m).await {
        Ok(()) => {
            Redirect::to(&format!("/admin/sign-in-methods?notice={notice_key}")).into_response()
        }
        Err(DomainError::Invalid { key, .. }) => {
            unprocessable(render_methods(state, s, headers, message(key), None).await)
        }
        Err(e) => domain_error_page(e),
    }
}

fn http_url_or_empty(u: &str) -> Result<String, &'static str> {
    let u = u.trim();
    if u.is_empty() || u.starts_with("https://") || u.starts_with("http://") {
        Ok(u.to_string())
    } else {
        Err("signin.url_invalid")
    }
}

pub async fn save_methods_form(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    headers: HeaderMap,
    CsrfForm(f): CsrfForm<MethodsForm>,
) -> Response {
    let mut m = match methods::load(&state.ctx).await {
        Ok(m) => m,
        Err(e) => return domain_error_page(e),
    };
    m.email_code = f.email_code.is_some();
    m.password = f.password.is_some();
    m.passkey = f.passkey.is_some();
    m.invite_only = f.invite_only.is_some();
    m.wechat.enabled = f.wechat_enabled.is_some();
    // Write-only: an empty token field keeps the stored one.
    if !f.wechat_token.trim().is_empty() {
        m.wechat.token = f.wechat_token.trim().to_string();
    }
    m.wechat.account_name = f.wechat_account_name.trim().chars().take(100).collect();
    let urls = (
        http_url_or_empty(&f.wechat_qr_image_url),
        http_url_or_empty(&f.wechat_forward_url),
    );
    match urls {
        (Ok(qr), Ok(fw)) => {
            m.wechat.qr_image_url = qr;
            m.wechat.forward_url = fw;
        }
        (Err(k), _) | (_, Err(k)) => {
            return unprocessable(render_methods(&state, &s, &headers, message(k), None).await)
        }
    }
    if m.wechat.enabled && m.wechat.token.is_empty() {
        return unprocessable(
            render_methods(
                &state,
                &s,
                &headers,
                message("signin.wechat_token_required"),
                None,
            )
            .await,
        );
    }
    save_methods(&state, &s, &headers, &m, "settings.saved").await
}

#[derive(Deserialize)]
pub struct ProviderForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    authorize_url: String,
    #[serde(default)]
    token_url: String,
    #[serde(default)]
    userinfo_url: String,
    #[serde(default)]
    api_base: String,
    #[serde(default)]
    scopes: String,
}

pub async fn save_provider(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    headers: HeaderMap,
    CsrfForm(f): CsrfForm<ProviderForm>,
) -> Response {
    let kind = match f.kind.as_str() {
        "github" => ProviderKind::Github,
        "oidc" => ProviderKind::Oidc,
        "oauth2" => ProviderKind::Oauth2,
        _ => {
            return unprocessable(
                render_methods(&state, &s, &headers, message("error.invalid"), None).await,
            )
        }
    };
    let slug = f.slug.trim().to_ascii_lowercase();
    let mut p = if kind == ProviderKind::Github {
        OAuthProvider::github(f.client_id.trim(), f.client_secret.trim())
    } else {
        OAuthProvider {
            kind,
            enabled: true,
            ..Default::default()
        }
    };
    p.slug = slug;
    p.client_id = f.client_id.trim().to_string();
    p.client_secret = f.client_secret.trim().to_string();
    if !f.name.trim().is_empty() {
        p.name = f.name.trim().chars().take(60).collect();
    }
    for (field, value) in [
        (&mut p.issuer, &f.issuer),
        (&mut p.authorize_url, &f.authorize_url),
        (&mut p.token_url, &f.token_url),
        (&mut p.userinfo_url, &f.userinfo_url),
        (&mut p.api_base, &f.api_base),
    ] {
        if !value.trim().is_empty() {
            *field = value.trim().trim_end_matches('/').to_string();
        }
    }
    if !f.scopes.trim().is_empty() {
        p.scopes = f.scopes.trim().to_string();
    }
    match methods::put_provider(&state.ctx, p).await {
        Ok(()) => {
            Redirect::to("/admin/sign-in-methods?notice=signin.provider_saved").into_response()
        }
        Err(DomainError::Invalid { key, .. }) => {
            unprocessable(render_methods(&state, &s, &headers, message(key), None).await)
        }
        Err(e) => domain_error_page(e),
    }
}

pub async fn delete_provider(
    State(state): State<AppState>,
    OwnerSession(_): OwnerSession,
    Path(slug): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    match methods::remove_provider(&state.ctx, &slug).await {
        Ok(()) => {
            Redirect::to("/admin/sign-in-methods?notice=signin.provider_deleted").into_response()
        }
        Err(e) => domain_error_page(e),
    }
}

// ---- invite codes ----

async fn render_invites(
    state: &AppState,
    s: &yiren_core::auth::Session,
    error: Option<String>,
    notice_key: Option<&str>,
) -> Response {
    let invites = match customer::owner_invites(&state.ctx).await {
        Ok(i) => i,
        Err(e) => return domain_error_page(e),
    };
    let invites: Vec<Value> = invites
        .iter()
        .map(|i| context! {
            code => i.code.clone(), note => i.note.clone(), max_uses => i.max_uses, uses => i.uses,
            created_at => i.created_at, revoked => i.revoked_at.is_some(),
        })
        .collect();
    let invite_only = methods::load(&state.ctx)
        .await
        .map(|m| m.invite_only)
        .unwrap_or(false);
    let base = base_ctx(state, "/admin/invites", Some(s), &s.csrf_token).await;
    let ctx = context! { invites => invites, invite_only => invite_only, error => error, notice => notice(notice_key), ..base };
    state.templates.render("admin/invites.html", ctx)
}

pub async fn invites_page(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    Query(q): Query<NoticeOnly>,
) -> Response {
    render_invites(&state, &s, None, q.notice.as_deref()).await
}

#[derive(Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    note: String,
    #[serde(default)]
    max_uses: String,
}

pub async fn create_invite(
    State(state): State<AppState>,
    OwnerSession(s): OwnerSession,
    CsrfForm(f): CsrfForm<InviteForm>,
) -> Response {
    let max_uses = match f.max_uses.trim() {
        "" => Ok(None),
        v => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| DomainError::invalid("max_uses", "invite.max_uses_invalid")),
    };
    let result = match max_uses {
        Ok(m) => customer::create_invite(&state.ctx, &f.note, m).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Redirect::to("/admin/invites?notice=invite.created").into_response(),
        Err(DomainError::Invalid { key, .. }) => {
            unprocessable(render_invites(&state, &s, message(key), None).await)
        }
        Err(e) => domain_error_page(e),
    }
}

pub async fn revoke_invite(
    State(state): State<AppState>,
    OwnerSession(_): OwnerSession,
    Path(code): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    match customer::revoke_invite(&state.ctx, &code).await {
        Ok(()) => Redirect::to("/admin/invites?notice=invite.revoked").into_response(),
        Err(e) => domain_error_page(e),
    }
}
