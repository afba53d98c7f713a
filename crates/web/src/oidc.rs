//! The OpenID Connect provider's endpoints: discovery, JWKS, authorize (GET shows the approval
//! page; the code is issued by its POST, so GET never changes anything), token, user-info and
//! RP-initiated logout. The issuer is the public URL when configured, else the request's origin.

use axum::extract::{Extension, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use axum_extra::extract::cookie::CookieJar;
use base64::Engine as _;
use minijinja::{context, Value};
use serde::Deserialize;
use yiren_core::customer;
use yiren_core::oidc::{self, AuthError, AuthRequest, TokenError};

use crate::security::{self, CsrfForm, MaybeCustomer};
use crate::AppState;

/// OIDC routes.
pub fn routes(state: AppState) -> Router<AppState> {
    let with_customer = Router::new()
        .route("/oauth/authorize", get(authorize_page).post(authorize))
        .route("/oauth/logout", get(logout_page).post(logout))
        .layer(axum::middleware::from_fn_with_state(
            state,
            security::load_customer,
        ));
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oauth/jwks.json", get(jwks))
        .route("/oauth/token", post(token))
        .route("/oauth/userinfo", get(userinfo).post(userinfo))
        .merge(with_customer)
}

/// The issuer URL for this request.
pub fn issuer(state: &AppState, headers: &HeaderMap) -> String {
    crate::api::page::base_url(state.config.public_url.as_deref(), headers)
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r.headers_mut()
        .insert(header::PRAGMA, header::HeaderValue::from_static("no-cache"));
    r
}

async fn discovery(State(state): State<AppState>, headers: HeaderMap) -> Json<serde_json::Value> {
    let iss = issuer(&state, &headers);
    Json(serde_json::json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oauth/authorize"),
        "token_endpoint": format!("{iss}/oauth/token"),
        "userinfo_endpoint": format!("{iss}/oauth/userinfo"),
        "jwks_uri": format!("{iss}/oauth/jwks.json"),
        "end_session_endpoint": format!("{iss}/oauth/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": oidc::SCOPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "email", "email_verified", "name", "locale", "picture"],
    }))
}

async fn jwks(State(state): State<AppState>) -> Response {
    match oidc::jwks(&state.ctx).await {
        Ok(v) => ([(header::CACHE_CONTROL, "public, max-age=300")], Json(v)).into_response(),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

fn redirect_error(uri: &str, error: &str, description: &str, state: Option<&str>) -> Response {
    let mut u = match url::Url::parse(uri) {
        Ok(u) => u,
        Err(_) => {
            return crate::templates::error_page(StatusCode::BAD_REQUEST, "oidc.bad_redirect_uri")
        }
    };
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("error", error)
            .append_pair("error_description", description);
        if let Some(s) = state {
            q.append_pair("state", s);
        }
    }
    Redirect::to(u.as_str()).into_response()
}

/// GET: check the request, make sure the customer is signed in, show the approval page (or, for
/// the owner's first-party apps and remembered consents, a page that continues by itself).
async fn authorize_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Extension(current): Extension<MaybeCustomer>,
    uri: axum::http::Uri,
    Query(req): Query<AuthRequest>,
) -> Response {
    let v = match oidc::validate(&state.ctx, &req).await {
        Ok(v) => v,
        Err(AuthError::NoRedirect(key)) => {
            return crate::templates::error_page(StatusCode::BAD_REQUEST, key)
        }
        Err(AuthError::Redirect(e, d)) => {
            return redirect_error(&req.redirect_uri, e, d, req.state.as_deref())
        }
    };
    let Some(s) = current.0 else {
        if req.prompt.as_deref() == Some("none") {
            return redirect_error(
                &req.redirect_uri,
                "login_required",
                "not signed in",
                req.state.as_deref(),
            );
        }
        let next = uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/oauth/authorize");
        let q = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
        return Redirect::to(&format!("/account/sign-in?{q}")).into_response();
    };
    let consent = match oidc::needs_consent(&state.ctx, &v, s.customer.id).await {
        Ok(c) => c,
        Err(e) => return crate::admin::pages::domain_error_page(e),
    };
    if consent && req.prompt.as_deref() == Some("none") {
        return redirect_error(
            &req.redirect_uri,
            "consent_required",
            "the customer has not approved this app",
            req.state.as_deref(),
        );
    }
    let fields: Vec<(&str, String)> = [
        ("response_type", Some(req.response_type.clone())),
        ("client_id", Some(req.client_id.clone())),
        ("redirect_uri", Some(req.redirect_uri.clone())),
        ("scope", Some(req.scope.clone())),
        ("state", req.state.clone()),
        ("nonce", req.nonce.clone()),
        ("code_challenge", Some(req.code_challenge.clone())),
        (
            "code_challenge_method",
            Some(req.code_challenge_method.clone()),
        ),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let base = crate::account::page_ctx(&state, "/oauth/authorize", Some(&s), &s.csrf_token).await;
    let ctx = context! {
        app => v.client.name.clone(), scopes => v.scopes.clone(), fields => Value::from_serialize(&fields),
        auto => !consent, ..base
    };
    (
        jar,
        no_store(state.templates.render("account/authorize.html", ctx)),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct Decision {
    #[serde(flatten)]
    req: AuthRequest,
    #[serde(default)]
    decision: String,
}

/// POST: the customer continued (or approved, or denied): issue the code and go back to the app.
async fn authorize(
    State(state): State<AppState>,
    Extension(current): Extension<MaybeCustomer>,
    CsrfForm(f): CsrfForm<Decision>,
) -> Response {
    let Some(s) = current.0 else {
        return crate::templates::error_page(StatusCode::UNAUTHORIZED, "error.unauthenticated");
    };
    let req = f.req;
    let v = match oidc::validate(&state.ctx, &req).await {
        Ok(v) => v,
        Err(AuthError::NoRedirect(key)) => {
            return crate::templates::error_page(StatusCode::BAD_REQUEST, key)
        }
        Err(AuthError::Redirect(e, d)) => {
            return redirect_error(&req.redirect_uri, e, d, req.state.as_deref())
        }
    };
    if f.decision == "deny" {
        return redirect_error(
            &req.redirect_uri,
            "access_denied",
            "the customer declined",
            req.state.as_deref(),
        );
    }
    let consented = match oidc::needs_consent(&state.ctx, &v, s.customer.id).await {
        Ok(needed) => needed,
        Err(e) => return crate::admin::pages::domain_error_page(e),
    };
    if consented && f.decision != "approve" {
        return crate::templates::error_page(StatusCode::BAD_REQUEST, "error.invalid");
    }
    let code = match oidc::issue_code(&state.ctx, &v, &s, consented).await {
        Ok(c) => c,
        Err(e) => return crate::admin::pages::domain_error_page(e),
    };
    let mut u = match url::Url::parse(&req.redirect_uri) {
        Ok(u) => u,
        Err(_) => {
            return crate::templates::error_page(StatusCode::BAD_REQUEST, "oidc.bad_redirect_uri")
        }
    };
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(st) = &req.state {
            q.append_pair("state", st);
        }
    }
    Redirect::to(u.as_str()).into_response()
}

#[derive(Deserialize)]
pub struct TokenRequest {
    #[serde(default)]
    grant_type: String,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn token_error(e: TokenError) -> Response {
    let status = match e {
        TokenError::InvalidClient => StatusCode::UNAUTHORIZED,
        TokenError::Server => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut r = (status, Json(serde_json::json!({ "error": e.code() }))).into_response();
    if e == TokenError::InvalidClient {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"yiren\""),
        );
    }
    no_store(r)
}

/// Client credentials from HTTP Basic (RFC 6749 §2.3.1, form-urlencoded parts) or the body.
fn client_credentials(headers: &HeaderMap, t: &TokenRequest) -> Option<(String, String)> {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (id, secret) = raw.split_once(':')?;
        let dec = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        return Some((dec(id)?, dec(secret)?));
    }
    Some((t.client_id.clone()?, t.client_secret.clone()?))
}

async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(t): Form<TokenRequest>,
) -> Response {
    let Some((client_id, secret)) = client_credentials(&headers, &t) else {
        return token_error(TokenError::InvalidClient);
    };
    let client = match oidc::authenticate_client(&state.ctx, &client_id, &secret).await {
        Ok(c) => c,
        Err(e) => return token_error(e),
    };
    let iss = issuer(&state, &headers);
    let result = match t.grant_type.as_str() {
        "authorization_code" => match (&t.code, &t.redirect_uri, &t.code_verifier) {
            (Some(code), Some(uri), Some(verifier)) => {
                oidc::exchange_code(&state.ctx, &iss, &client, code, uri, verifier).await
            }
            _ => Err(TokenError::InvalidRequest),
        },
        "refresh_token" => match &t.refresh_token {
            Some(rt) => oidc::refresh(&state.ctx, &iss, &client, rt).await,
            None => Err(TokenError::InvalidRequest),
        },
        _ => Err(TokenError::UnsupportedGrantType),
    };
    match result {
        Ok(tokens) => no_store(Json(tokens).into_response()),
        Err(e) => token_error(e),
    }
}

async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    match oidc::userinfo(&state.ctx, token).await {
        Ok(Some(claims)) => no_store(Json(claims).into_response()),
        Ok(None) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
        )
            .into_response(),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

#[derive(Deserialize, Default, serde::Serialize)]
pub struct LogoutRequest {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
}

/// Where to send the browser after logout: a URI registered for the app named by the hint or
/// `client_id`; otherwise the sign-in page.
async fn logout_target(state: &AppState, headers: &HeaderMap, r: &LogoutRequest) -> String {
    let fallback = "/account/sign-in?notice=account.signed_out".to_string();
    let Some(uri) = r.post_logout_redirect_uri.as_deref() else {
        return fallback;
    };
    let iss = issuer(state, headers);
    let client_id = match r.id_token_hint.as_deref() {
        Some(h) => oidc::id_token_hint(&state.ctx, &iss, h)
            .await
            .map(|(_, aud)| aud),
        None => r.client_id.clone(),
    };
    let Some(client_id) = client_id else {
        return fallback;
    };
    match oidc::find_client(&state.ctx, &client_id).await {
        Ok(Some(c)) if c.post_logout_redirect_uris.iter().any(|u| u == uri) => {
            let mut u = match url::Url::parse(uri) {
                Ok(u) => u,
                Err(_) => return fallback,
            };
            if let Some(s) = &r.state {
                u.query_pairs_mut().append_pair("state", s);
            }
            u.to_string()
        }
        _ => fallback,
    }
}

/// GET: confirm signing out (a GET must not sign anyone out by itself).
async fn logout_page(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Extension(current): Extension<MaybeCustomer>,
    Query(r): Query<LogoutRequest>,
) -> Response {
    let (jar, csrf) = match &current.0 {
        Some(s) => (jar, s.csrf_token.clone()),
        None => {
            let to = logout_target(&state, &headers, &r).await;
            return (jar, Redirect::to(&to)).into_response();
        }
    };
    let base = crate::account::page_ctx(&state, "/oauth/logout", current.0.as_ref(), &csrf).await;
    let ctx = context! { request => Value::from_serialize(&r), ..base };
    (
        jar,
        no_store(state.templates.render("account/logout.html", ctx)),
    )
        .into_response()
}

async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Extension(current): Extension<MaybeCustomer>,
    CsrfForm(r): CsrfForm<LogoutRequest>,
) -> Response {
    if let Some(s) = current.0 {
        if let Err(e) = customer::sign_out(&state.ctx, &s.id_hash).await {
            return crate::admin::pages::domain_error_page(e);
        }
    }
    let to = logout_target(&state, &headers, &r).await;
    (
        jar.add(security::clear_customer_cookie(&state)),
        Redirect::to(&to),
    )
        .into_response()
}
