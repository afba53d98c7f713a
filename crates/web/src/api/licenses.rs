//! The public licence API, for the software a shop sells to call (no token: the licence key is
//! the credential), in the spirit of Lemon Squeezy's: `POST /api/v1/licenses/activate`
//! (`license_key`, `instance_name`), `/validate` (`license_key`, optional `instance_id`),
//! `/deactivate` (`license_key`, `instance_id`). Bodies are form-encoded (as Lemon Squeezy's
//! clients send them) or JSON. Replies: `{"activated"|"valid"|"deactivated": bool, "error":
//! message or null, "error_code", "license_key", "instance", "meta"}`; refusals are 4xx with the
//! message in the caller's language. An address that sends many unknown keys is made to wait (429).

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yiren_core::license::{self, Licensed, Refusal};

use crate::security::ClientIp;
use crate::AppState;

/// What the calls take (any subset; each call reads its own fields).
#[derive(Deserialize, ToSchema, Default)]
pub struct LicenseRequest {
    #[serde(default)]
    pub license_key: String,
    #[serde(default)]
    pub instance_name: String,
    #[serde(default)]
    pub instance_id: String,
}

/// A licence key.
#[derive(Serialize, ToSchema)]
pub struct LicenseKey {
    pub id: i64,
    /// `inactive`, `active`, `expired` or `disabled`.
    pub status: String,
    pub key: String,
    /// Devices allowed; null: no limit.
    pub activation_limit: Option<i64>,
    pub activation_usage: i64,
    pub created_at: String,
    pub expires_at: Option<String>,
}

/// A device the key is activated on.
#[derive(Serialize, ToSchema)]
pub struct LicenseInstance {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

/// What the key was sold with.
#[derive(Serialize, ToSchema)]
pub struct LicenseMeta {
    pub order_id: Option<i64>,
    pub product_id: i64,
    pub product_name: String,
    pub customer_email: String,
}

/// A reply. Exactly one of `activated`, `valid`, `deactivated` is present, by call.
#[derive(Serialize, ToSchema)]
pub struct LicenseResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deactivated: Option<bool>,
    /// Why it was refused, in the caller's language; null on success.
    pub error: Option<String>,
    /// The refusal as a stable code (`license.limit_reached`, ...); null on success.
    pub error_code: Option<String>,
    pub license_key: Option<LicenseKey>,
    pub instance: Option<LicenseInstance>,
    pub meta: Option<LicenseMeta>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    Activate,
    Validate,
    Deactivate,
}

fn read(headers: &HeaderMap, body: &[u8]) -> Option<LicenseRequest> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        serde_json::from_slice(body).ok()
    } else {
        serde_urlencoded::from_bytes(body).ok()
    }
}

fn reply(call: Call, result: Result<Licensed, Refusal>) -> Response {
    let (ok, status, error, code, licensed) = match result {
        Ok(l) => (true, StatusCode::OK, None, None, Some(l)),
        Err(r) => (
            false,
            StatusCode::from_u16(r.status()).unwrap_or(StatusCode::BAD_REQUEST),
            Some(crate::locale::current().t(r.key()).to_string()),
            Some(r.key().to_string()),
            None,
        ),
    };
    let (license_key, instance, meta) = match licensed {
        Some(l) => (
            Some(LicenseKey {
                id: l.license_key.id,
                status: l.license_key.status.into(),
                key: l.license_key.key,
                activation_limit: l.license_key.activation_limit,
                activation_usage: l.license_key.activation_usage,
                created_at: l.license_key.created_at,
                expires_at: l.license_key.expires_at,
            }),
            l.instance.map(|i| LicenseInstance {
                id: i.id,
                name: i.name,
                created_at: i.created_at,
            }),
            Some(LicenseMeta {
                order_id: l.meta.order_id,
                product_id: l.meta.product_id,
                product_name: l.meta.product_name,
                customer_email: l.meta.customer_email,
            }),
        ),
        None => (None, None, None),
    };
    let flag = |c: Call| (c == call).then_some(ok);
    let body = LicenseResponse {
        activated: flag(Call::Activate),
        valid: flag(Call::Validate),
        deactivated: flag(Call::Deactivate),
        error,
        error_code: code,
        license_key,
        instance,
        meta,
    };
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

async fn run(state: &AppState, call: Call, ip: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let Some(f) = read(headers, body) else {
        return reply(call, Err(Refusal::Invalid));
    };
    let ctx = &state.ctx;
    let result = match call {
        Call::Activate => license::activate(ctx, &f.license_key, &f.instance_name, ip).await,
        Call::Validate => {
            license::validate(ctx, &f.license_key, Some(f.instance_id.as_str()), ip).await
        }
        Call::Deactivate => license::deactivate(ctx, &f.license_key, &f.instance_id, ip).await,
    };
    match result {
        Ok(r) => reply(call, r),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

/// Activate a licence key on a new device.
#[utoipa::path(post, path = "/api/v1/licenses/activate", tag = "licenses", security(()),
    request_body(content = LicenseRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = LicenseResponse), (status = 400, body = LicenseResponse),
        (status = 404, body = LicenseResponse), (status = 422, body = LicenseResponse), (status = 429, body = LicenseResponse)))]
pub async fn activate(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    run(&state, Call::Activate, &ip.to_string(), &headers, &body).await
}

/// Check a licence key, and optionally one of its devices.
#[utoipa::path(post, path = "/api/v1/licenses/validate", tag = "licenses", security(()),
    request_body(content = LicenseRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = LicenseResponse), (status = 400, body = LicenseResponse),
        (status = 404, body = LicenseResponse), (status = 422, body = LicenseResponse), (status = 429, body = LicenseResponse)))]
pub async fn validate(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    run(&state, Call::Validate, &ip.to_string(), &headers, &body).await
}

/// Release one of a licence key's devices.
#[utoipa::path(post, path = "/api/v1/licenses/deactivate", tag = "licenses", security(()),
    request_body(content = LicenseRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = LicenseResponse), (status = 404, body = LicenseResponse),
        (status = 422, body = LicenseResponse), (status = 429, body = LicenseResponse)))]
pub async fn deactivate(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    run(&state, Call::Deactivate, &ip.to_string(), &headers, &body).await
}
