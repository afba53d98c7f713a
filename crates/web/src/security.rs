//! Cookie sessions, CSRF protection and client addresses for the HTML side.
//!
//! - The admin session cookie is `__Host-yiren_admin` over HTTPS (`yiren_admin` on plain HTTP for
//!   local use), HttpOnly, SameSite=Strict, Path=/; its value is a 256-bit token stored hashed.
//! - Every state-changing form carries `_csrf`: the session's token when signed in, or the value of
//!   a pre-session cookie on the sign-in and setup forms (double submit). Requests whose
//!   `Sec-Fetch-Site` says cross-site, or whose `Origin` is another site, are refused before that.
//! - The API authenticates with bearer tokens only and never reads these cookies.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::de::DeserializeOwned;
use yiren_core::auth::{self, Role, Session};
use yiren_core::customer::{self, CustomerSession};

use crate::templates::error_page;
use crate::AppState;

/// Admin session cookie name for this deployment.
pub fn session_cookie_name(state: &AppState) -> &'static str {
    if state.config.https() {
        "__Host-yiren_admin"
    } else {
        "yiren_admin"
    }
}

fn csrf_cookie_name(state: &AppState) -> &'static str {
    if state.config.https() {
        "__Host-yiren_csrf"
    } else {
        "yiren_csrf"
    }
}

fn base_cookie(state: &AppState, name: &'static str, value: String) -> Cookie<'static> {
    let mut c = Cookie::new(name, value);
    c.set_path("/");
    c.set_http_only(true);
    c.set_same_site(SameSite::Strict);
    c.set_secure(state.config.https());
    c
}

/// The cookie that carries a new admin session.
pub fn session_cookie(state: &AppState, token: String) -> Cookie<'static> {
    base_cookie(state, session_cookie_name(state), token)
}

/// A cookie that removes the admin session cookie.
pub fn clear_session_cookie(state: &AppState) -> Cookie<'static> {
    let mut c = base_cookie(state, session_cookie_name(state), String::new());
    c.make_removal();
    c
}

/// Customer session cookie name (SameSite=Lax: a customer following a link from elsewhere arrives
/// signed in; state changes still need the CSRF token).
pub fn customer_cookie_name(state: &AppState) -> &'static str {
    if state.config.https() {
        "__Host-yiren_sid"
    } else {
        "yiren_sid"
    }
}

fn binding_cookie_name(state: &AppState) -> &'static str {
    if state.config.https() {
        "__Host-yiren_bind"
    } else {
        "yiren_bind"
    }
}

fn lax_cookie(state: &AppState, name: &'static str, value: String) -> Cookie<'static> {
    let mut c = base_cookie(state, name, value);
    c.set_same_site(SameSite::Lax);
    c
}

/// The cookie that carries a new customer session.
pub fn customer_cookie(state: &AppState, token: String) -> Cookie<'static> {
    lax_cookie(state, customer_cookie_name(state), token)
}

/// A cookie that removes the customer session cookie.
pub fn clear_customer_cookie(state: &AppState) -> Cookie<'static> {
    let mut c = lax_cookie(state, customer_cookie_name(state), String::new());
    c.make_removal();
    c
}

/// The browser's binding secret: ties a one-time code, an OAuth state or a WeChat login code to
/// the browser that started it (Lax, so it survives the provider's redirect back).
pub fn browser_binding(state: &AppState, jar: CookieJar) -> (CookieJar, String) {
    if let Some(c) = jar.get(binding_cookie_name(state)) {
        if c.value().len() >= 32 {
            let v = c.value().to_string();
            return (jar, v);
        }
    }
    let token = state.ctx.rng.token(32);
    (
        jar.add(lax_cookie(state, binding_cookie_name(state), token.clone())),
        token,
    )
}

/// The browser's binding secret if it has one.
pub fn existing_binding(state: &AppState, jar: &CookieJar) -> Option<String> {
    jar.get(binding_cookie_name(state))
        .map(|c| c.value().to_string())
        .filter(|v| v.len() >= 32)
}

/// The signed-in customer, if any (resolved by [`load_customer`] on customer routes).
#[derive(Clone, Debug, Default)]
pub struct MaybeCustomer(pub Option<CustomerSession>);

impl MaybeCustomer {
    /// What [`load_customer`] resolved for `req` (nobody where it did not run).
    pub fn of(req: &Request) -> Self {
        req.extensions()
            .get::<MaybeCustomer>()
            .cloned()
            .unwrap_or_default()
    }
}

/// Middleware for customer routes: resolve the customer cookie (never the admin one).
pub async fn load_customer(
    State(state): State<AppState>,
    jar: CookieJar,
    mut req: Request,
    next: Next,
) -> Response {
    let session = match jar.get(customer_cookie_name(&state)) {
        Some(c) if !c.value().is_empty() => {
            match customer::session_from_token(&state.ctx, c.value()).await {
                Ok(s) => s,
                Err(e) => return crate::error::internal(&e).into_response(),
            }
        }
        _ => None,
    };
    if let Some(s) = &session {
        crate::locale::prefer(s.customer.locale);
    }
    // Half signed in (a passkey second factor is due): not a session for anything but that step.
    let session = match session {
        Some(s) if s.mfa_pending => {
            req.extensions_mut().insert(PendingSecondFactor(s));
            None
        }
        s => s,
    };
    req.extensions_mut().insert(MaybeCustomer(session));
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

/// A customer who signed in with a first factor and still owes their passkey.
#[derive(Clone, Debug)]
pub struct PendingSecondFactor(pub CustomerSession);

/// A signed-in customer. Pages redirect to the customer sign-in; forms answer 401.
pub struct CustomerAuth(pub CustomerSession);

impl<S: Send + Sync> FromRequestParts<S> for CustomerAuth {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts
            .extensions
            .get::<MaybeCustomer>()
            .and_then(|m| m.0.clone())
        {
            Some(s) => Ok(CustomerAuth(s)),
            None if parts.method == axum::http::Method::GET => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/account");
                let q = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
                let to = if parts.extensions.get::<PendingSecondFactor>().is_some() {
                    "/account/second-factor"
                } else {
                    "/account/sign-in"
                };
                Err(Redirect::to(&format!("{to}?{q}")).into_response())
            }
            None => Err(error_page(
                StatusCode::UNAUTHORIZED,
                "error.unauthenticated",
            )),
        }
    }
}

/// Make sure a pre-session CSRF cookie exists; returns the jar to send back and the token to embed.
pub fn pre_session_csrf(state: &AppState, jar: CookieJar) -> (CookieJar, String) {
    if let Some(c) = jar.get(csrf_cookie_name(state)) {
        if c.value().len() >= 32 {
            let v = c.value().to_string();
            return (jar, v);
        }
    }
    let token = state.ctx.rng.token(32);
    (
        jar.add(base_cookie(state, csrf_cookie_name(state), token.clone())),
        token,
    )
}

/// The client's address (the TCP peer; proxies are not trusted unless configured later).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(ClientIp(ip))
    }
}

/// The client's `User-Agent`, if it sent a readable one.
pub struct UserAgent(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for UserAgent {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(UserAgent(
            parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        ))
    }
}

/// The signed-in staff session, if any (resolved once per admin request by [`load_session`]).
#[derive(Clone, Debug, Default)]
pub struct MaybeSession(pub Option<Session>);

/// Middleware for admin routes: resolve the session cookie. Admin pages must never be cached.
pub async fn load_session(
    State(state): State<AppState>,
    jar: CookieJar,
    mut req: Request,
    next: Next,
) -> Response {
    let session = match jar.get(session_cookie_name(&state)) {
        Some(c) if !c.value().is_empty() => {
            match auth::session_from_token(&state.ctx, c.value()).await {
                Ok(s) => s,
                Err(e) => return crate::error::internal(&e).into_response(),
            }
        }
        _ => None,
    };
    if let Some(s) = &session {
        crate::locale::prefer(s.staff.locale);
    }
    req.extensions_mut().insert(MaybeSession(session));
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

/// A signed-in staff member (any role). Pages redirect to sign-in; forms answer 401.
pub struct AdminSession(pub Session);

impl<S: Send + Sync> FromRequestParts<S> for AdminSession {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts
            .extensions
            .get::<MaybeSession>()
            .and_then(|m| m.0.clone())
        {
            Some(s) => Ok(AdminSession(s)),
            None if parts.method == axum::http::Method::GET => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/admin");
                let q = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
                Err(Redirect::to(&format!("/admin/sign-in?{q}")).into_response())
            }
            None => Err(error_page(
                StatusCode::UNAUTHORIZED,
                "error.unauthenticated",
            )),
        }
    }
}

/// A signed-in owner.
pub struct OwnerSession(pub Session);

impl<S: Send + Sync> FromRequestParts<S> for OwnerSession {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, Self::Rejection> {
        let AdminSession(session) = AdminSession::from_request_parts(parts, s).await?;
        if session.staff.role != Role::Owner {
            return Err(error_page(StatusCode::FORBIDDEN, "admin.owner_only"));
        }
        Ok(OwnerSession(session))
    }
}

pub(crate) fn same_origin(req: &Request) -> bool {
    let h = req.headers();
    // A browser's own word (scripts cannot set it) decides when it is there: a page served with
    // `Referrer-Policy: no-referrer` (the checkout) makes Chromium send `Origin: null` with its
    // own same-origin form posts.
    match h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("same-origin") => return true,
        Some("cross-site" | "same-site") => return false,
        _ => {}
    }
    match h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some("null") => false,
        Some(origin) => {
            let host = h
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            url::Url::parse(origin).ok().is_some_and(|u| {
                let o = match u.port() {
                    Some(p) => format!("{}:{p}", u.host_str().unwrap_or("")),
                    None => u.host_str().unwrap_or("").to_string(),
                };
                o.eq_ignore_ascii_case(host)
            })
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A urlencoded form whose `_csrf` field was checked (see the module docs). Refusals are 403 and
/// change nothing.
pub struct CsrfForm<T>(pub T);

/// The CSRF token this request must carry: the staff or customer session's, else the cookie's.
fn expected_csrf(req: &Request, state: &AppState) -> Option<String> {
    let staff = req
        .extensions()
        .get::<MaybeSession>()
        .and_then(|m| m.0.as_ref())
        .map(|s| s.csrf_token.clone());
    let customer = req
        .extensions()
        .get::<MaybeCustomer>()
        .and_then(|m| m.0.as_ref())
        .map(|s| s.csrf_token.clone());
    staff.or(customer).or_else(|| {
        let jar = CookieJar::from_headers(req.headers());
        jar.get(csrf_cookie_name(state))
            .map(|c| c.value().to_string())
    })
}

fn csrf_matches(expected: Option<&str>, sent: &str) -> bool {
    expected.is_some_and(|e| !e.is_empty() && constant_time_eq(e.as_bytes(), sent.as_bytes()))
}

impl<T: DeserializeOwned> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = Response;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let forbidden = || error_page(StatusCode::FORBIDDEN, "error.csrf");
        if !same_origin(&req) {
            return Err(forbidden());
        }
        let expected = expected_csrf(&req, state);
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| error_page(StatusCode::PAYLOAD_TOO_LARGE, "error.payload_too_large"))?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| error_page(StatusCode::BAD_REQUEST, "error.invalid"))?;
        let sent = pairs
            .iter()
            .find(|(k, _)| k == "_csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        if !csrf_matches(expected.as_deref(), sent) {
            return Err(forbidden());
        }
        let value = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| error_page(StatusCode::BAD_REQUEST, "error.invalid"))?;
        Ok(CsrfForm(value))
    }
}

/// An uploaded file from a multipart form.
#[derive(Debug)]
pub struct UploadedFile {
    /// The form field's name.
    pub field: String,
    /// The name the browser gave (never trusted for the type).
    pub file_name: String,
    pub bytes: axum::body::Bytes,
}

/// A `multipart/form-data` form (file uploads) whose `_csrf` field was checked like [`CsrfForm`]'s.
/// The `_csrf` field must come before the files, so nothing is read into memory for a forged
/// request. An urlencoded body is accepted too (no files), so the same refusals apply to it.
pub struct CsrfMultipart {
    pub fields: Vec<(String, String)>,
    pub files: Vec<UploadedFile>,
}

impl FromRequest<AppState> for CsrfMultipart {
    type Rejection = Response;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let forbidden = || error_page(StatusCode::FORBIDDEN, "error.csrf");
        let too_large = || error_page(StatusCode::PAYLOAD_TOO_LARGE, "error.payload_too_large");
        let invalid = || error_page(StatusCode::BAD_REQUEST, "error.invalid");
        if !same_origin(&req) {
            return Err(forbidden());
        }
        let expected = expected_csrf(&req, state);
        let is_multipart = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
        if !is_multipart {
            let CsrfForm(fields) =
                CsrfForm::<Vec<(String, String)>>::from_request(req, state).await?;
            return Ok(CsrfMultipart {
                fields,
                files: vec![],
            });
        }
        let mut mp = axum::extract::Multipart::from_request(req, state)
            .await
            .map_err(|_| invalid())?;
        let mut out = CsrfMultipart {
            fields: vec![],
            files: vec![],
        };
        let mut checked = false;
        while let Some(field) = mp.next_field().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                invalid()
            }
        })? {
            let name = field.name().unwrap_or("").to_string();
            if name == "_csrf" {
                let sent = field.text().await.map_err(|_| invalid())?;
                if !csrf_matches(expected.as_deref(), &sent) {
                    return Err(forbidden());
                }
                checked = true;
                continue;
            }
            if !checked {
                return Err(forbidden());
            }
            match field.file_name().map(str::to_string) {
                Some(file_name) => {
                    let bytes = field.bytes().await.map_err(|_| too_large())?;
                    if !bytes.is_empty() {
                        out.files.push(UploadedFile {
                            field: name,
                            file_name,
                            bytes,
                        });
                    }
                }
                None => {
                    let v = field.text().await.map_err(|_| invalid())?;
                    out.fields.push((name, v));
                }
            }
        }
        if !checked {
            return Err(forbidden());
        }
        Ok(out)
    }
}
