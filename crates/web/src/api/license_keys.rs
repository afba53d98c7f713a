//! `/license_keys` (scopes `licenses:read`, `licenses:write`): the owner's side of the licence
//! keys sold — list (newest first, by product or order), one key with its devices, turn a key off
//! or on, change its device limit or end date, release a device. Pool keys not sold yet are not
//! listed (Admin → product → Licence keys shows how many are left). The software a shop sells
//! uses the public `/licenses/*` calls instead.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yiren_core::clock;
use yiren_core::license::{self, KeyChange, Owned};
use yiren_store::license::{KeyFilter, LicenseRow};

use super::extract::{ts, ts_opt, ApiJson, ErrorBody, Principal};
use super::licenses::LicenseInstance;
use super::page::{base_url, with_link, PageQuery};
use crate::error::ApiError;
use crate::AppState;

/// A sold licence key.
#[derive(Serialize, ToSchema)]
pub struct ApiLicenseKey {
    pub id: i64,
    pub key: String,
    /// `inactive` (on no device), `active`, `expired` or `disabled`.
    pub status: String,
    pub product_id: i64,
    pub order_id: Option<i64>,
    /// Devices allowed; null: no limit.
    pub activation_limit: Option<i64>,
    pub activation_usage: i64,
    pub expires_at: Option<String>,
    /// The devices it is activated on (only in single-key answers; lists leave it empty).
    pub instances: Vec<LicenseInstance>,
    pub created_at: String,
}

/// `{"license_key": {...}}`
#[derive(Serialize, ToSchema)]
pub struct LicenseKeyResponse {
    pub license_key: ApiLicenseKey,
}

/// `{"license_keys": [...]}`
#[derive(Serialize, ToSchema)]
pub struct LicenseKeyListResponse {
    pub license_keys: Vec<ApiLicenseKey>,
}

fn json_of(
    k: &LicenseRow,
    instances: &[yiren_store::license::InstanceRow],
    now: i64,
) -> ApiLicenseKey {
    ApiLicenseKey {
        id: k.id,
        key: k.license_key.clone(),
        status: license::status_of(k, now).into(),
        product_id: k.product_id,
        order_id: k.order_id,
        activation_limit: k.activation_limit,
        activation_usage: k.activations,
        expires_at: ts_opt(k.expires_at),
        instances: instances
            .iter()
            .map(|i| LicenseInstance {
                id: i.id.clone(),
                name: i.name.clone(),
                created_at: ts(i.created_at),
            })
            .collect(),
        created_at: ts(k.assigned_at.unwrap_or(k.created_at)),
    }
}

fn respond(state: &AppState, o: &Owned) -> Json<LicenseKeyResponse> {
    Json(LicenseKeyResponse {
        license_key: json_of(&o.row, &o.instances, state.ctx.now()),
    })
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    before: i64,
    product_id: Option<i64>,
    order_id: Option<i64>,
}

/// Filters of the key list.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LicenseKeyFilter {
    pub product_id: Option<i64>,
    pub order_id: Option<i64>,
}

/// Sold keys, newest first.
#[utoipa::path(get, path = "/api/v1/license_keys", tag = "licenses", params(PageQuery, LicenseKeyFilter),
    responses((status = 200, body = LicenseKeyListResponse), (status = 403, body = ErrorBody)))]
pub async fn list_license_keys(
    State(state): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
    Query(f): Query<LicenseKeyFilter>,
) -> Result<Response, ApiError> {
    p.require("licenses:read")?;
    let paging = q.parse::<Cursor>()?;
    let (before, filter) = match paging.cursor {
        Some(c) => (
            c.before,
            KeyFilter {
                product_id: c.product_id,
                order_id: c.order_id,
            },
        ),
        None => (
            i64::MAX,
            KeyFilter {
                product_id: f.product_id,
                order_id: f.order_id,
            },
        ),
    };
    let mut rows = license::list(&state.ctx, &filter, before, paging.limit + 1).await?;
    let more = rows.len() as i64 > paging.limit;
    rows.truncate(paging.limit as usize);
    let next = more.then(|| Cursor {
        before: rows.last().map(|k| k.id).unwrap_or(0),
        product_id: filter.product_id,
        order_id: filter.order_id,
    });
    let now = state.ctx.now();
    Ok(with_link(
        Json(LicenseKeyListResponse {
            license_keys: rows.iter().map(|k| json_of(k, &[], now)).collect(),
        }),
        &base_url(state.config.public_url.as_deref(), &headers),
        "/api/v1/license_keys",
        paging.limit,
        next,
    ))
}

/// One sold key with its devices.
#[utoipa::path(get, path = "/api/v1/license_keys/{id}", tag = "licenses", params(("id" = i64, Path)),
    responses((status = 200, body = LicenseKeyResponse), (status = 404, body = ErrorBody)))]
pub async fn get_license_key(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Json<LicenseKeyResponse>, ApiError> {
    p.require("licenses:read")?;
    Ok(respond(&state, &license::owned(&state.ctx, id).await?))
}

/// A key's new settings (every field; what is left out takes its default).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LicenseKeyInput {
    /// `disabled` turns the key off; `enabled` turns it back on; left out: as it is.
    #[serde(default)]
    pub status: Option<String>,
    /// 1 to 10,000, not below the devices it is on now; null: no limit.
    #[serde(default)]
    pub activation_limit: Option<i64>,
    /// RFC 3339; null: never.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// `{"license_key": {...}}`
#[derive(Deserialize, ToSchema)]
pub struct LicenseKeyRequest {
    pub license_key: LicenseKeyInput,
}

/// Change a sold key (the order's timeline records it).
#[utoipa::path(put, path = "/api/v1/license_keys/{id}", tag = "licenses", params(("id" = i64, Path)),
    request_body = LicenseKeyRequest,
    responses((status = 200, body = LicenseKeyResponse), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_license_key(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
    body: ApiJson<LicenseKeyRequest>,
) -> Result<Json<LicenseKeyResponse>, ApiError> {
    p.require("licenses:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let i = body.0?.license_key;
    let enabled = match i.status.as_deref() {
        None => None,
        Some("enabled") | Some("active") | Some("inactive") => Some(true),
        Some("disabled") => Some(false),
        Some(_) => return Err(ApiError::invalid("error.invalid").field("status")),
    };
    let expires_at = match i.expires_at.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t) => Some(
            clock::parse_rfc3339(t)
                .ok_or_else(|| ApiError::invalid("error.invalid").field("expires_at"))?,
        ),
    };
    let c = KeyChange {
        enabled,
        activation_limit: i.activation_limit,
        expires_at,
    };
    let o = license::change(&state.ctx, id, &c, &format!("api:{}", p.staff.email)).await?;
    Ok(respond(&state, &o))
}

/// Release one device of a key, so it can be activated elsewhere.
#[utoipa::path(delete, path = "/api/v1/license_keys/{id}/instances/{instance_id}", tag = "licenses",
    params(("id" = i64, Path), ("instance_id" = String, Path)),
    responses((status = 200, body = LicenseKeyResponse), (status = 404, body = ErrorBody)))]
pub async fn release_instance(
    State(state): State<AppState>,
    p: Principal,
    Path((id, instance_id)): Path<(i64, String)>,
) -> Result<Json<LicenseKeyResponse>, ApiError> {
    p.require("licenses:write")?;
    Ok(respond(
        &state,
        &license::release(&state.ctx, id, &instance_id).await?,
    ))
}
