//! A local OAuth 2 / OpenID Connect provider speaking the provider side of the authorization-code
//! flow, in two dialects:
//!
//! - **GitHub**: `GET /login/oauth/authorize`, `POST /login/oauth/access_token` (answers 200 with
//!   `{"error": ...}` on a bad code, as GitHub does), `GET /user`, `GET /user/emails`.
//! - **OIDC**: discovery at `/.well-known/openid-configuration`, `GET /authorize`, `POST /token`
//!   (RFC 6749 errors with 400), `GET /userinfo` with `sub`, `email`, `email_verified`.
//!
//! The authorize endpoint approves at once (the person is whoever [`FakeOAuth::set_person`] says)
//! and redirects to the client's `redirect_uri` with `code` and `state`; `?deny=1` style refusals
//! use [`FakeOAuth::deny_next`]. The token endpoint checks client id and secret, the code (single
//! use), the `redirect_uri` and the PKCE verifier against the S256 challenge.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

/// The person the provider signs in.
#[derive(Debug, Clone)]
pub struct FakePerson {
    pub id: String,
    pub login: String,
    pub email: Option<String>,
    pub email_verified: bool,
}

struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    person: FakePerson,
}

#[derive(Default)]
struct Inner {
    person: Option<FakePerson>,
    grants: HashMap<String, Grant>,
    tokens: HashMap<String, FakePerson>,
    deny_next: bool,
    token_requests: u32,
}

/// The fake provider; cheap to clone.
#[derive(Clone)]
pub struct FakeOAuth {
    inner: Arc<Mutex<Inner>>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The client id it accepts.
    pub client_id: String,
    /// The client secret it accepts.
    pub client_secret: String,
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    state: String,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: String,
    redirect_uri: String,
    client_id: String,
    client_secret: String,
    code_verifier: Option<String>,
}

impl FakeOAuth {
    /// Start on a random loopback port.
    pub async fn start() -> FakeOAuth {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let fake = FakeOAuth {
            inner: Arc::default(),
            base: format!("http://{}", listener.local_addr().unwrap()),
            client_id: "fake-client".into(),
            client_secret: "fake-secret".into(),
        };
        let app = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(github_token))
            .route("/user", get(github_user))
            .route("/user/emails", get(github_emails))
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(oidc_token))
            .route("/userinfo", get(userinfo))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        fake
    }

    /// Who signs in next.
    pub fn set_person(&self, p: FakePerson) {
        self.inner.lock().unwrap().person = Some(p);
    }

    /// The next authorization is refused (`error=access_denied`).
    pub fn deny_next(&self) {
        self.inner.lock().unwrap().deny_next = true;
    }

    /// Token requests received.
    pub fn token_requests(&self) -> u32 {
        self.inner.lock().unwrap().token_requests
    }
}

fn s256(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut u = url::Url::parse(uri).expect("redirect_uri is a URL");
    u.query_pairs_mut().extend_pairs(pairs);
    u.to_string()
}

async fn authorize(State(f): State<FakeOAuth>, Query(q): Query<AuthorizeQuery>) -> Response {
    if q.response_type != "code" || q.client_id != f.client_id {
        return (StatusCode::BAD_REQUEST, "unknown client or response type").into_response();
    }
    let mut g = f.inner.lock().unwrap();
    if std::mem::take(&mut g.deny_next) {
        return Redirect::to(&with_query(
            &q.redirect_uri,
            &[("error", "access_denied"), ("state", &q.state)],
        ))
        .into_response();
    }
    if q.code_challenge_method.as_deref() != Some("S256") || q.code_challenge.is_none() {
        return (StatusCode::BAD_REQUEST, "PKCE S256 required").into_response();
    }
    let person = g.person.clone().expect("set_person first");
    let code = format!("code-{}", g.grants.len() + g.tokens.len() + 1);
    g.grants.insert(
        code.clone(),
        Grant {
            client_id: q.client_id,
            redirect_uri: q.redirect_uri.clone(),
            challenge: q.code_challenge.unwrap(),
            person,
        },
    );
    Redirect::to(&with_query(
        &q.redirect_uri,
        &[("code", &code), ("state", &q.state)],
    ))
    .into_response()
}

/// Check a token request; Ok(access token) or Err(error code).
fn redeem(f: &FakeOAuth, t: &TokenForm) -> Result<String, &'static str> {
    let mut g = f.inner.lock().unwrap();
    g.token_requests += 1;
    if t.client_id != f.client_id || t.client_secret != f.client_secret {
        return Err("invalid_client");
    }
    let Some(grant) = g.grants.remove(&t.code) else {
        return Err("invalid_grant");
    };
    if grant.client_id != t.client_id || grant.redirect_uri != t.redirect_uri {
        return Err("invalid_grant");
    }
    if t.code_verifier.as_deref().map(s256).as_deref() != Some(grant.challenge.as_str()) {
        return Err("invalid_grant");
    }
    let token = format!("tok-{}", g.tokens.len() + 1);
    g.tokens.insert(token.clone(), grant.person);
    Ok(token)
}

async fn github_token(
    State(f): State<FakeOAuth>,
    headers: HeaderMap,
    Form(t): Form<TokenForm>,
) -> Response {
    if headers.get("accept").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return (StatusCode::OK, "access_token=ignored&scope=").into_response();
    }
    match redeem(&f, &t) {
        Ok(tok) => Json(serde_json::json!({"access_token": tok, "token_type": "bearer", "scope": "read:user,user:email"})).into_response(),
        // GitHub answers 200 with an error body.
        Err(e) => Json(serde_json::json!({"error": if e == "invalid_grant" { "bad_verification_code" } else { "incorrect_client_credentials" }, "error_description": e})).into_response(),
    }
}

async fn oidc_token(State(f): State<FakeOAuth>, Form(t): Form<TokenForm>) -> Response {
    if t.grant_type.as_deref() != Some("authorization_code") {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    match redeem(&f, &t) {
        Ok(tok) => Json(serde_json::json!({"access_token": tok, "token_type": "Bearer", "expires_in": 3600, "id_token": "unused.by.yiren"})).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": e}))).into_response(),
    }
}

fn bearer(f: &FakeOAuth, headers: &HeaderMap) -> Option<FakePerson> {
    let token = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    f.inner.lock().unwrap().tokens.get(token).cloned()
}

async fn github_user(State(f): State<FakeOAuth>, headers: HeaderMap) -> Response {
    match bearer(&f, &headers) {
        Some(p) => Json(serde_json::json!({"id": p.id.parse::<i64>().unwrap_or(0), "login": p.login, "name": null})).into_response(),
        None => (StatusCode::UNAUTHORIZED, Json(serde_json::json!({"message": "Bad credentials"}))).into_response(),
    }
}

async fn github_emails(State(f): State<FakeOAuth>, headers: HeaderMap) -> Response {
    match bearer(&f, &headers) {
        Some(p) => {
            let mut list = vec![
                serde_json::json!({"email": format!("{}@users.noreply.github.com", p.login), "primary": false, "verified": true, "visibility": null}),
            ];
            if let Some(e) = p.email {
                list.push(serde_json::json!({"email": e, "primary": true, "verified": p.email_verified, "visibility": "private"}));
            }
            Json(list).into_response()
        }
        None => (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"message": "Bad credentials"})),
        )
            .into_response(),
    }
}

async fn discovery(State(f): State<FakeOAuth>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "issuer": f.base,
        "authorization_endpoint": format!("{}/authorize", f.base),
        "token_endpoint": format!("{}/token", f.base),
        "userinfo_endpoint": format!("{}/userinfo", f.base),
        "jwks_uri": format!("{}/jwks", f.base),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn userinfo(State(f): State<FakeOAuth>, headers: HeaderMap) -> Response {
    match bearer(&f, &headers) {
        Some(p) => Json(serde_json::json!({"sub": p.id, "name": p.login, "email": p.email, "email_verified": p.email_verified})).into_response(),
        None => (StatusCode::UNAUTHORIZED, [("www-authenticate", "Bearer error=\"invalid_token\"")]).into_response(),
    }
}
