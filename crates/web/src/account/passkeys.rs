//! Passkeys (WebAuthn, with `webauthn-rs`): register from the security page, sign in with a
//! discoverable passkey from the sign-in page (no email needed), list and remove, and the passkey
//! second factor that completes a half-signed-in session.
//!
//! The relying party is the public URL's host when one is configured, else the request's host
//! (local use). Ceremony state (`PasskeyRegistration`, `DiscoverableAuthentication`,
//! `PasskeyAuthentication`) waits in `auth_flows` for up to five minutes, bound to the session or
//! the browser that started it, and is taken (deleted) when finished, so a challenge works once.

use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;
use serde::Deserialize;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn,
    WebauthnBuilder,
};
use yiren_core::customer::{self, passkey, settings as methods, CustomerSession};
use yiren_core::id::hash_token;
use yiren_core::DomainError;
use yiren_store::customer as store;

use super::{domain_error_page, local_next, page_ctx};
use crate::security::{
    self, ClientIp, CsrfForm, CustomerAuth, MaybeCustomer, PendingSecondFactor, UserAgent,
};
use crate::AppState;

const FLOW_TTL_MS: i64 = 5 * 60_000;
/// High half of every WebAuthn user handle: the low half is the customer id.
const HANDLE_TAG: u64 = 0x5969_7265_6e2d_7063; // "Yiren-pc"

fn user_handle(customer_id: i64) -> Uuid {
    Uuid::from_u64_pair(HANDLE_TAG, customer_id as u64)
}

fn customer_of(handle: Uuid) -> Option<i64> {
    let (hi, lo) = handle.as_u64_pair();
    (hi == HANDLE_TAG).then_some(lo as i64)
}

fn json_error(status: StatusCode, key: &str) -> Response {
    let msg = crate::locale::current().t(key);
    (status, Json(serde_json::json!({ "error": msg }))).into_response()
}

fn from_domain(e: DomainError) -> Response {
    match e {
        DomainError::Invalid { key, .. } => json_error(StatusCode::UNPROCESSABLE_ENTITY, key),
        DomainError::Conflict { key } => json_error(StatusCode::CONFLICT, key),
        DomainError::NotFound => json_error(StatusCode::NOT_FOUND, "error.not_found"),
        DomainError::Unauthenticated => json_error(StatusCode::UNAUTHORIZED, "passkey.failed"),
        e => {
            let err = crate::error::ApiError::from(e);
            json_error(err.status, err.key)
        }
    }
}

/// The relying party for this request.
async fn webauthn(state: &AppState, headers: &HeaderMap) -> Result<Webauthn, Response> {
    let base = crate::api::page::base_url(state.config.public_url.as_deref(), headers);
    let origin =
        Url::parse(&base).map_err(|_| json_error(StatusCode::BAD_REQUEST, "error.invalid"))?;
    let rp_id = origin.host_str().unwrap_or("localhost").to_string();
    let site = state.settings().await;
    WebauthnBuilder::new(&rp_id, &origin)
        .and_then(|b| b.rp_name(&site.name).build())
        .map_err(|e| {
            tracing::warn!(error = %e, rp_id, "cannot act as a WebAuthn relying party for this host");
            json_error(StatusCode::BAD_REQUEST, "passkey.unsupported_host")
        })
}

async fn enabled(state: &AppState) -> Result<(), Response> {
    match methods::load(&state.ctx).await {
        Ok(m) if m.passkey => Ok(()),
        Ok(_) => Err(json_error(StatusCode::FORBIDDEN, "account.method_off")),
        Err(e) => Err(from_domain(e)),
    }
}

async fn save_flow(
    state: &AppState,
    kind: &str,
    binding: &str,
    data: &impl serde::Serialize,
    customer_id: Option<i64>,
) -> Result<String, Response> {
    let key = state.ctx.rng.token(24);
    let now = state.ctx.now();
    let json = serde_json::to_string(data).unwrap_or_default();
    store::insert_flow(
        state.ctx.db.write(),
        &hash_token(&key),
        kind,
        &hash_token(binding),
        &json,
        customer_id,
        now,
        now + FLOW_TTL_MS,
    )
    .await
    .map_err(|e| from_domain(e.into()))?;
    Ok(key)
}

/// Take a flow of `kind` bound to `binding`; None when missing, expired or someone else's.
async fn take_flow(
    state: &AppState,
    key: &str,
    kind: &str,
    binding: &str,
) -> Result<Option<store::FlowRow>, Response> {
    let flow = store::take_flow(state.ctx.db.write(), &hash_token(key))
        .await
        .map_err(|e| from_domain(e.into()))?;
    Ok(flow.filter(|f| {
        f.kind == kind && f.binding_hash == hash_token(binding) && f.expires_at > state.ctx.now()
    }))
}

/// The waiting ceremony state of `kind` (bound to `binding`, for `customer` when given) and the
/// browser's answer, both decoded; the state is taken, so it serves once.
async fn ceremony<S: serde::de::DeserializeOwned, C: serde::de::DeserializeOwned>(
    state: &AppState,
    f: &FinishForm,
    kind: &str,
    binding: &str,
    customer: Option<i64>,
) -> Result<(S, C), Response> {
    let flow = match take_flow(state, &f.flow, kind, binding).await? {
        Some(fl) if customer.is_none() || fl.customer_id == customer => fl,
        _ => return Err(json_error(StatusCode::BAD_REQUEST, "passkey.expired")),
    };
    match (
        serde_json::from_str(&flow.data),
        serde_json::from_str(&f.credential),
    ) {
        (Ok(s), Ok(c)) => Ok((s, c)),
        _ => Err(json_error(StatusCode::BAD_REQUEST, "passkey.failed")),
    }
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn register_start(
    State(state): State<AppState>,
    headers: HeaderMap,
    CustomerAuth(s): CustomerAuth,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    if let Err(r) = enabled(&state).await {
        return r;
    }
    if let Err(e) = customer::require_recent_sign_in(&state.ctx, &s) {
        return from_domain(e);
    }
    let wa = match webauthn(&state, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let existing = match passkey::credentials(&state.ctx, s.customer.id).await {
        Ok(k) => k,
        Err(e) => return from_domain(e),
    };
    let exclude: Vec<_> = existing
        .iter()
        .filter_map(|r| serde_json::from_str::<Passkey>(&r.passkey).ok())
        .map(|p| p.cred_id().clone())
        .collect();
    let name = s
        .customer
        .email
        .clone()
        .unwrap_or_else(|| format!("customer-{}", s.customer.id));
    let display = s.customer.display_name();
    let (ccr, reg) = match wa.start_passkey_registration(
        user_handle(s.customer.id),
        &name,
        if display.is_empty() { &name } else { &display },
        Some(exclude),
    ) {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(error = %e, "passkey registration could not start");
            return json_error(StatusCode::BAD_REQUEST, "passkey.failed");
        }
    };
    // A discoverable (resident) credential, so the passkey alone can sign in later.
    let mut options = serde_json::to_value(&ccr).unwrap_or_default();
    if let Some(pk) = options.get_mut("publicKey").and_then(|v| v.as_object_mut()) {
        let sel = pk
            .entry("authenticatorSelection")
            .or_insert_with(|| serde_json::json!({}));
        sel["residentKey"] = "required".into();
        sel["requireResidentKey"] = true.into();
    }
    match save_flow(&state, "passkey_reg", &s.id_hash, &reg, Some(s.customer.id)).await {
        Ok(flow) => Json(serde_json::json!({ "options": options, "flow": flow })).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub struct FinishForm {
    flow: String,
    credential: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    next: String,
}

pub async fn register_finish(
    State(state): State<AppState>,
    headers: HeaderMap,
    CustomerAuth(s): CustomerAuth,
    CsrfForm(f): CsrfForm<FinishForm>,
) -> Response {
    let wa = match webauthn(&state, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (reg, cred): (PasskeyRegistration, RegisterPublicKeyCredential) =
        match ceremony(&state, &f, "passkey_reg", &s.id_hash, Some(s.customer.id)).await {
            Ok(x) => x,
            Err(r) => return r,
        };
    let key = match wa.finish_passkey_registration(&cred, &reg) {
        Ok(k) => k,
        Err(e) => {
            tracing::info!(error = %e, "passkey registration refused");
            return json_error(StatusCode::BAD_REQUEST, "passkey.failed");
        }
    };
    let cred_id = hex::encode(key.cred_id().as_ref());
    let json = serde_json::to_string(&key).unwrap_or_default();
    match passkey::add(&state.ctx, s.customer.id, &cred_id, &f.name, &json).await {
        Ok(_) => Json(
            serde_json::json!({ "redirect": "/account/security?notice=account.passkey_added" }),
        )
        .into_response(),
        Err(e) => from_domain(e),
    }
}

pub async fn login_start(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    if let Err(r) = enabled(&state).await {
        return r;
    }
    let wa = match webauthn(&state, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (mut rcr, auth) = match wa.start_discoverable_authentication() {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(error = %e, "passkey sign-in could not start");
            return json_error(StatusCode::BAD_REQUEST, "passkey.failed");
        }
    };
    // A button press, not autofill: ask the browser for a modal discoverable-credential prompt.
    rcr.mediation = None;
    let (jar, binding) = security::browser_binding(&state, jar);
    match save_flow(&state, "passkey_login", &binding, &auth, None).await {
        Ok(flow) => (
            jar,
            Json(serde_json::json!({ "options": rcr, "flow": flow })),
        )
            .into_response(),
        Err(r) => r,
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn login_finish(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    UserAgent(ua): UserAgent,
    Extension(current): Extension<MaybeCustomer>,
    CsrfForm(f): CsrfForm<FinishForm>,
) -> Response {
    let wa = match webauthn(&state, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let binding = security::existing_binding(&state, &jar).unwrap_or_default();
    let (auth, cred): (DiscoverableAuthentication, PublicKeyCredential) =
        match ceremony(&state, &f, "passkey_login", &binding, None).await {
            Ok(x) => x,
            Err(r) => return r,
        };
    let failed = || json_error(StatusCode::UNAUTHORIZED, "passkey.failed");
    let Ok((handle, cred_id)) = wa.identify_discoverable_authentication(&cred) else {
        return failed();
    };
    let Some(customer_id) = customer_of(handle) else {
        return failed();
    };
    let row = match passkey::find(&state.ctx, &hex::encode(cred_id)).await {
        Ok(Some(r)) if r.customer_id == customer_id => r,
        Ok(_) => return failed(),
        Err(e) => return from_domain(e),
    };
    let Ok(mut key) = serde_json::from_str::<Passkey>(&row.passkey) else {
        return failed();
    };
    let result =
        match wa.finish_discoverable_authentication(&cred, auth, &[DiscoverableKey::from(&key)]) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(error = %e, "passkey sign-in refused");
                return failed();
            }
        };
    key.update_credential(&result);
    if let Err(e) = passkey::used(
        &state.ctx,
        row.id,
        &serde_json::to_string(&key).unwrap_or_default(),
    )
    .await
    {
        return from_domain(e);
    }
    let c = match customer::get(&state.ctx, customer_id).await {
        Ok(c) if !c.disabled && !c.deleted => c,
        Ok(_) => return json_error(StatusCode::FORBIDDEN, "account.disabled"),
        Err(e) => return from_domain(e),
    };
    let token = async {
        let mut tx = state.ctx.db.begin().await?;
        let t = customer::start_session(
            &state.ctx,
            &mut tx,
            c.id,
            "passkey",
            &ip.to_string(),
            ua.as_deref(),
        )
        .await?;
        tx.commit().await.map_err(yiren_store::StoreError::from)?;
        Ok::<_, DomainError>(t)
    }
    .await;
    match token {
        Ok(t) => {
            if let Some(old) = current.0 {
                let _ = customer::sign_out(&state.ctx, &old.id_hash).await;
            }
            let jar = crate::cart::after_sign_in(&state, jar, &t).await;
            let jar = jar.add(security::customer_cookie(&state, t));
            (jar, Json(serde_json::json!({ "redirect": local_next(Some(&f.next).filter(|n| !n.is_empty()).map(String::as_str)) }))).into_response()
        }
        Err(e) => from_domain(e),
    }
}

// ---- second factor ----

fn pending(p: Option<Extension<PendingSecondFactor>>) -> Option<CustomerSession> {
    p.map(|e| e.0 .0)
}

#[derive(Deserialize, Default)]
pub struct NextQuery {
    next: Option<String>,
}

/// The page a half-signed-in customer sees: "confirm with your passkey".
pub async fn second_factor_page(
    State(state): State<AppState>,
    jar: CookieJar,
    pending: Option<Extension<PendingSecondFactor>>,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Response {
    if pending.is_none() {
        return Redirect::to("/account/sign-in").into_response();
    }
    let (jar, csrf) = security::pre_session_csrf(&state, jar);
    let base = page_ctx(&state, "/account/second-factor", None, &csrf).await;
    let ctx = context! { next => local_next(q.next.as_deref()), ..base };
    (
        jar,
        state.templates.render("account/second_factor.html", ctx),
    )
        .into_response()
}

pub async fn second_factor_start(
    State(state): State<AppState>,
    headers: HeaderMap,
    pending_ext: Option<Extension<PendingSecondFactor>>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    let Some(s) = pending(pending_ext) else {
        return json_error(StatusCode::UNAUTHORIZED, "error.unauthenticated");
    };
    let wa = match webauthn(&state, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let keys: Vec<Passkey> = match passkey::credentials(&state.ctx, s.customer.id).await {
        Ok(k) => k
            .iter()
            .filter_map(|r| serde_json::from_str(&r.passkey).ok())
            .collect(),
        Err(e) => return from_domain(e),
    };
    let (rcr, auth) = match wa.start_passkey_authentication(&keys) {
        Ok(x) => x,
        Err(_) => return json_error(StatusCode::BAD_REQUEST, "passkey.none"),
    };
    match save_flow(
        &state,
        "passkey_2fa",
        &s.id_hash,
        &auth,
        Some(s.customer.id),
    )
    .await
    {
        Ok(flow) => Json(serde_json::json!({ "options": rcr, "flow": flow })).into_response(),
        Err(r) => r,
    }
}

pub async fn second_factor_finish(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    pending_ext: Option<Extension<PendingSecondFactor>>,
    CsrfForm(f): CsrfForm<FinishForm>,
) -> Response {
    let Some(s) = pending(pending_ext) else {
        return json_error(StatusCode::UNAUTHORIZED, "error.unauthenticated");
    };
    let wa = match webauthn(&state, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (auth, cred): (PasskeyAuthentication, PublicKeyCredential) =
        match ceremony(&state, &f, "passkey_2fa", &s.id_hash, Some(s.customer.id)).await {
            Ok(x) => x,
            Err(r) => return r,
        };
    let result = match wa.finish_passkey_authentication(&cred, &auth) {
        Ok(r) => r,
        Err(_) => return json_error(StatusCode::UNAUTHORIZED, "passkey.failed"),
    };
    if let Ok(rows) = passkey::credentials(&state.ctx, s.customer.id).await {
        for r in rows {
            if let Ok(mut k) = serde_json::from_str::<Passkey>(&r.passkey) {
                if k.update_credential(&result).is_some() {
                    let _ = passkey::used(
                        &state.ctx,
                        r.id,
                        &serde_json::to_string(&k).unwrap_or_default(),
                    )
                    .await;
                }
            }
        }
    }
    match passkey::complete_second_factor(&state.ctx, &s).await {
        Ok(token) => {
            let jar = crate::cart::after_sign_in(&state, jar, &token).await;
            let jar = jar.add(security::customer_cookie(&state, token));
            let next = local_next(Some(&f.next).filter(|n| !n.is_empty()).map(String::as_str));
            (jar, Json(serde_json::json!({ "redirect": next }))).into_response()
        }
        Err(e) => from_domain(e),
    }
}

// ---- management (plain forms) ----

pub async fn remove(
    State(state): State<AppState>,
    CustomerAuth(s): CustomerAuth,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    let result = match customer::require_recent_sign_in(&state.ctx, &s) {
        Ok(()) => passkey::remove(&state.ctx, s.customer.id, id).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Redirect::to("/account/security?notice=account.passkey_removed").into_response(),
        Err(DomainError::Conflict { key }) => {
            crate::templates::error_page(StatusCode::CONFLICT, key)
        }
        Err(e) => domain_error_page(e),
    }
}

#[derive(Deserialize)]
pub struct SecondFactorForm {
    #[serde(default)]
    on: Option<String>,
}

pub async fn set_second_factor(
    State(state): State<AppState>,
    CustomerAuth(s): CustomerAuth,
    CsrfForm(f): CsrfForm<SecondFactorForm>,
) -> Response {
    let on = f.on.as_deref() == Some("1");
    let result = match customer::require_recent_sign_in(&state.ctx, &s) {
        Ok(()) => passkey::set_second_factor(&state.ctx, s.customer.id, on).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Redirect::to("/account/security?notice=account.saved").into_response(),
        Err(DomainError::Invalid { key, .. }) => {
            crate::templates::error_page(StatusCode::UNPROCESSABLE_ENTITY, key)
        }
        Err(e) => domain_error_page(e),
    }
}
