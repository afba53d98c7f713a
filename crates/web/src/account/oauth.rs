//! Sign in (or link an identity) with an OAuth 2 / OIDC provider: authorization-code flow with
//! PKCE (S256) and a one-time `state` bound to this browser; the flow row is taken (deleted) when
//! the provider sends the browser back, so a state works once.

use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};
use yiren_core::customer::settings::{self as methods, OAuthProvider, ProviderKind};
use yiren_core::customer::ExternalIdentity;
use yiren_core::id::hash_token;
use yiren_providers::oauth;
use yiren_store::customer as store;

use super::{domain_error_page, invite_from, local_next};
use crate::security::{self, ClientIp, CsrfForm, MaybeCustomer, UserAgent};
use crate::AppState;

const FLOW_TTL_MS: i64 = 10 * 60_000;

#[derive(Deserialize)]
pub struct StartForm {
    #[serde(default)]
    link: Option<String>,
    next: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct FlowData {
    verifier: String,
    next: String,
    invite: Option<String>,
    redirect_uri: String,
}

fn redirect_uri(state: &AppState, headers: &HeaderMap, slug: &str) -> String {
    let base = crate::api::page::base_url(state.config.public_url.as_deref(), headers);
    format!("{base}/account/oauth/{slug}/callback")
}

async fn endpoints(state: &AppState, p: &OAuthProvider) -> Result<oauth::Endpoints, String> {
    match p.kind {
        ProviderKind::Oidc if p.authorize_url.is_empty() || p.token_url.is_empty() => {
            oauth::discover(&state.http, &p.issuer)
                .await
                .map_err(|e| e.to_string())
        }
        _ => Ok(oauth::Endpoints {
            authorization_endpoint: p.authorize_url.clone(),
            token_endpoint: p.token_url.clone(),
            userinfo_endpoint: p.userinfo_url.clone(),
        }),
    }
}

fn provider_failed(detail: &str) -> Response {
    tracing::warn!(detail, "sign-in provider failed");
    crate::templates::error_page(StatusCode::BAD_GATEWAY, "oauth.provider_failed")
}

pub async fn start(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Extension(current): Extension<MaybeCustomer>,
    CsrfForm(f): CsrfForm<StartForm>,
) -> Response {
    let settings = match methods::load(&state.ctx).await {
        Ok(s) => s,
        Err(e) => return domain_error_page(e),
    };
    let Some(p) = settings.provider(&slug).cloned() else {
        return crate::templates::error_page(StatusCode::NOT_FOUND, "error.not_found");
    };
    let link_to = match (f.link.as_deref() == Some("1"), &current.0) {
        (true, Some(s)) => Some(s.customer.id),
        (true, None) => {
            return crate::templates::error_page(StatusCode::UNAUTHORIZED, "error.unauthenticated")
        }
        (false, _) => None,
    };
    let ep = match endpoints(&state, &p).await {
        Ok(ep) => ep,
        Err(e) => return provider_failed(&e),
    };
    let (jar, binding) = security::browser_binding(&state, jar);
    let flow_state = state.ctx.rng.token(32);
    let verifier = state.ctx.rng.token(48);
    let data = FlowData {
        verifier: verifier.clone(),
        next: local_next(f.next.as_deref()),
        invite: invite_from(&jar),
        redirect_uri: redirect_uri(&state, &headers, &slug),
    };
    let now = state.ctx.now();
    if let Err(e) = store::insert_flow(
        state.ctx.db.write(),
        &hash_token(&flow_state),
        &format!("oauth:{slug}"),
        &hash_token(&binding),
        &serde_json::to_string(&data).unwrap_or_default(),
        link_to,
        now,
        now + FLOW_TTL_MS,
    )
    .await
    {
        return domain_error_page(e.into());
    }
    let scopes = match (p.scopes.trim(), p.kind) {
        ("", ProviderKind::Github) => "read:user user:email",
        ("", ProviderKind::Oidc) => "openid email profile",
        ("", ProviderKind::Oauth2) => "",
        (s, _) => s,
    };
    let nonce = (p.kind == ProviderKind::Oidc).then(|| state.ctx.rng.token(16));
    match oauth::authorize_url(
        &ep.authorization_endpoint,
        &p.client_id,
        &data.redirect_uri,
        scopes,
        &flow_state,
        &verifier,
        nonce.as_deref(),
    ) {
        Ok(u) => (jar, Redirect::to(&u)).into_response(),
        Err(e) => provider_failed(&e.to_string()),
    }
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

pub async fn callback(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(slug): Path<String>,
    ClientIp(ip): ClientIp,
    UserAgent(ua): UserAgent,
    Extension(current): Extension<MaybeCustomer>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let bad = || crate::templates::error_page(StatusCode::BAD_REQUEST, "oauth.state_invalid");
    let (Some(flow_state), Some(binding)) =
        (q.state.as_deref(), security::existing_binding(&state, &jar))
    else {
        return bad();
    };
    let now = state.ctx.now();
    // Taken, whatever happens next: a state works once.
    let flow = match store::take_flow(state.ctx.db.write(), &hash_token(flow_state)).await {
        Ok(Some(f)) => f,
        Ok(None) => return bad(),
        Err(e) => return domain_error_page(e.into()),
    };
    if flow.kind != format!("oauth:{slug}")
        || flow.expires_at <= now
        || flow.binding_hash != hash_token(&binding)
    {
        return bad();
    }
    if q.error.is_some() {
        return Redirect::to("/account/sign-in?notice=account.oauth_denied").into_response();
    }
    let Some(code) = q.code.as_deref() else {
        return bad();
    };
    let Ok(data) = serde_json::from_str::<FlowData>(&flow.data) else {
        return bad();
    };
    let settings = match methods::load(&state.ctx).await {
        Ok(s) => s,
        Err(e) => return domain_error_page(e),
    };
    let Some(p) = settings.provider(&slug).cloned() else {
        return crate::templates::error_page(StatusCode::NOT_FOUND, "error.not_found");
    };
    let ep = match endpoints(&state, &p).await {
        Ok(ep) => ep,
        Err(e) => return provider_failed(&e),
    };
    let tokens = match oauth::exchange_code(
        &state.http,
        &ep.token_endpoint,
        &p.client_id,
        &p.client_secret,
        code,
        &data.redirect_uri,
        &data.verifier,
    )
    .await
    {
        Ok(t) => t,
        Err(e) => return provider_failed(&e.to_string()),
    };
    let person = match p.kind {
        ProviderKind::Github => {
            let base = if p.api_base.is_empty() {
                "https://api.github.com"
            } else {
                &p.api_base
            };
            oauth::github_person(&state.http, base, &tokens.access_token).await
        }
        ProviderKind::Oidc | ProviderKind::Oauth2 => {
            oauth::userinfo(&state.http, &ep.userinfo_endpoint, &tokens.access_token).await
        }
    };
    let person = match person {
        Ok(p) => p,
        Err(e) => return provider_failed(&e.to_string()),
    };
    let ext = ExternalIdentity {
        provider: slug.clone(),
        subject: person.subject,
        verified_email: person.verified_email,
        display: person.display,
    };
    // Linking needs the customer who started it, still signed in in this browser.
    match super::complete_external(
        &state,
        jar,
        current.0,
        flow.customer_id,
        &ext,
        "oauth",
        data.invite.as_deref(),
        data.next,
        &ip.to_string(),
        ua.as_deref(),
    )
    .await
    {
        Ok((jar, to)) => (jar, Redirect::to(&to)).into_response(),
        Err((status, key)) => crate::templates::error_page(status, key),
    }
}
