//! `/customers`: the user pool (Shopify-like shapes: `{"customer": {...}}`, `{"customers": [...]}`).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use yiren_core::customer::{self, Customer as DomainCustomer};
use yiren_core::Locale;
use yiren_store::customer::ListFilter;

use super::extract::{ts, ApiJson, CountResponse, Principal};
use super::page::{base_url, with_link, PageQuery};
use crate::error::ApiError;
use crate::AppState;

/// A customer. Password hashes, sessions and sign-in secrets are never exposed.
#[derive(Serialize, ToSchema)]
pub struct Customer {
    pub id: i64,
    pub email: Option<String>,
    pub verified_email: bool,
    /// Full name as the customer gave it.
    pub name: String,
    pub phone: Option<String>,
    /// Preferred language (`zh-CN`, `en`), if set.
    pub locale: Option<String>,
    /// `enabled`, `disabled` or `deleted` (deleted customers are anonymised).
    pub state: String,
    /// The customer who invited this one, if any.
    pub invited_by: Option<i64>,
    pub created_at: String,
}

impl From<DomainCustomer> for Customer {
    fn from(c: DomainCustomer) -> Self {
        Customer {
            id: c.id,
            verified_email: c.email_verified,
            state: if c.deleted {
                "deleted"
            } else if c.disabled {
                "disabled"
            } else {
                "enabled"
            }
            .into(),
            email: c.email,
            name: c.name,
            phone: c.phone,
            locale: c.locale.map(|l| l.tag().to_string()),
            invited_by: c.invited_by,
            created_at: ts(c.created_at),
        }
    }
}

/// `{"customers": [...]}`
#[derive(Serialize, ToSchema)]
pub struct CustomerListResponse {
    pub customers: Vec<Customer>,
}

/// `{"customer": {...}}`
#[derive(Serialize, ToSchema)]
pub struct CustomerResponse {
    pub customer: Customer,
}

/// Fields of a new customer.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    pub email: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub phone: Option<String>,
    /// `zh-CN` or `en`.
    #[serde(default)]
    pub locale: Option<String>,
}

/// `{"customer": {"email", "name", "phone", "locale"}}`
#[derive(Deserialize, ToSchema)]
pub struct CreateCustomerRequest {
    pub customer: CustomerInput,
}

/// Filters for the list.
#[derive(Deserialize, IntoParams)]
pub struct CustomerFilter {
    /// Substring of email, name or phone.
    pub query: Option<String>,
    /// `active`, `disabled` or `deleted` (default: all but deleted).
    pub state: Option<String>,
}

#[derive(Deserialize, Serialize)]
struct Cursor {
    before: i64,
    query: Option<String>,
    state: Option<String>,
}

/// List customers, newest first.
#[utoipa::path(get, path = "/api/v1/customers", tag = "customers", params(PageQuery, CustomerFilter),
    responses((status = 200, body = CustomerListResponse, headers(("Link" = String, description = "rel=\"next\" cursor URL when more pages exist")))))]
pub async fn list_customers(
    State(state): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
    Query(f): Query<CustomerFilter>,
) -> Result<Response, ApiError> {
    p.require("customers:read")?;
    let paging = q.parse::<Cursor>()?;
    // A cursor carries its filters, so the next page lists the same set.
    let (before, query, st) = match paging.cursor {
        Some(c) => (c.before, c.query, c.state),
        None => (0, f.query, f.state),
    };
    if st
        .as_deref()
        .is_some_and(|s| !["active", "disabled", "deleted"].contains(&s))
    {
        return Err(ApiError::invalid("error.invalid").field("state"));
    }
    let filter = ListFilter {
        query: query.clone(),
        state: st.clone(),
        invited_by: None,
    };
    let mut rows = customer::list(&state.ctx, &filter, before, paging.limit + 1).await?;
    let more = rows.len() as i64 > paging.limit;
    rows.truncate(paging.limit as usize);
    let next = more.then(|| Cursor {
        before: rows.last().map(|c| c.id).unwrap_or(0),
        query,
        state: st,
    });
    let body = Json(CustomerListResponse {
        customers: rows.into_iter().map(Customer::from).collect(),
    });
    Ok(with_link(
        body,
        &base_url(state.config.public_url.as_deref(), &headers),
        "/api/v1/customers",
        paging.limit,
        next,
    ))
}

/// Count customers (not deleted).
#[utoipa::path(get, path = "/api/v1/customers/count", tag = "customers", responses((status = 200, body = CountResponse)))]
pub async fn count_customers(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<CountResponse>, ApiError> {
    p.require("customers:read")?;
    Ok(Json(CountResponse {
        count: customer::count(&state.ctx).await?,
    }))
}

/// One customer.
#[utoipa::path(get, path = "/api/v1/customers/{id}", tag = "customers", params(("id" = i64, Path)),
    responses((status = 200, body = CustomerResponse), (status = 404, body = super::extract::ErrorBody)))]
pub async fn get_customer(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Json<CustomerResponse>, ApiError> {
    p.require("customers:read")?;
    Ok(Json(CustomerResponse {
        customer: customer::get(&state.ctx, id).await?.into(),
    }))
}

/// Create a customer (they sign in with an email code; no password is set).
#[utoipa::path(post, path = "/api/v1/customers", tag = "customers", request_body = CreateCustomerRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 hours")),
    responses((status = 201, body = CustomerResponse), (status = 409, body = super::extract::ErrorBody), (status = 422, body = super::extract::ErrorBody)))]
pub async fn create_customer(
    State(state): State<AppState>,
    p: Principal,
    body: ApiJson<CreateCustomerRequest>,
) -> Result<(StatusCode, Json<CustomerResponse>), ApiError> {
    p.require("customers:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let c = body.customer;
    let locale = match c.locale.as_deref() {
        None | Some("") => None,
        Some(l) => Some(
            Locale::parse(l)
                .ok_or_else(|| ApiError::invalid("settings.locale_invalid").field("locale"))?,
        ),
    };
    let created =
        customer::create_by_staff(&state.ctx, &c.email, &c.name, c.phone.as_deref(), locale)
            .await?;
    Ok((
        StatusCode::CREATED,
        Json(CustomerResponse {
            customer: created.into(),
        }),
    ))
}
