//! `/staff`: staff accounts (read-only over the API).

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use yiren_core::auth::{self, Staff};

use super::extract::{ts, CountResponse, Principal};
use super::page::{base_url, with_link, PageQuery};
use crate::error::ApiError;
use crate::AppState;

/// A staff account.
#[derive(Serialize, ToSchema)]
pub struct StaffMember {
    pub id: i64,
    pub email: String,
    pub name: String,
    /// `owner` or `staff`.
    pub role: String,
    /// Preferred language, if set.
    pub locale: Option<String>,
    /// `enabled` or `disabled`.
    pub state: String,
    pub created_at: String,
}

impl From<Staff> for StaffMember {
    fn from(s: Staff) -> Self {
        StaffMember {
            id: s.id,
            email: s.email,
            name: s.name,
            role: s.role.as_str().into(),
            locale: s.locale.map(|l| l.tag().to_string()),
            state: if s.disabled { "disabled" } else { "enabled" }.into(),
            created_at: ts(s.created_at),
        }
    }
}

/// `{"staff": [...]}`
#[derive(Serialize, ToSchema)]
pub struct StaffListResponse {
    pub staff: Vec<StaffMember>,
}

#[derive(serde::Deserialize, Serialize)]
struct Cursor {
    after: i64,
}

/// List staff accounts, oldest first.
#[utoipa::path(get, path = "/api/v1/staff", tag = "staff", params(PageQuery),
    responses((status = 200, body = StaffListResponse, headers(("Link" = String, description = "rel=\"next\" cursor URL when more pages exist")))))]
pub async fn list_staff(
    State(state): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    p.require("staff:read")?;
    let paging = q.parse::<Cursor>()?;
    let after = paging.cursor.map(|c| c.after).unwrap_or(0);
    let mut rows = auth::list_staff(&state.ctx, after, paging.limit + 1).await?;
    let more = rows.len() as i64 > paging.limit;
    rows.truncate(paging.limit as usize);
    let next = more.then(|| Cursor {
        after: rows.last().map(|s| s.id).unwrap_or(0),
    });
    let body = Json(StaffListResponse {
        staff: rows.into_iter().map(StaffMember::from).collect(),
    });
    Ok(with_link(
        body,
        &base_url(state.config.public_url.as_deref(), &headers),
        "/api/v1/staff",
        paging.limit,
        next,
    ))
}

/// Count staff accounts.
#[utoipa::path(get, path = "/api/v1/staff/count", tag = "staff", responses((status = 200, body = CountResponse)))]
pub async fn count_staff(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<CountResponse>, ApiError> {
    p.require("staff:read")?;
    let n = auth::count_staff(&state.ctx).await?;
    Ok(Json(CountResponse { count: n }))
}
