//! `/orders`: orders in Shopify-like shapes — list (newest first, cursor pages), one order with its
//! lines, transactions, refunds, fulfilments, entitlements and licence keys; create an order for a
//! customer (priced by the server like the checkout: any price sent is ignored), refund, mark
//! sent, cancel; an order's transactions, refunds and fulfilments as their own lists, and a
//! `capture` transaction that records a manual payment as received. POSTs take
//! `Idempotency-Key`. Scopes `orders:read` / `orders:write`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yiren_core::checkout::{self, Address, Submit};
use yiren_core::order::{self, Order, Refund};
use yiren_core::{cart, delivery, license, money};

use super::extract::{ts, ApiJson, ErrorBody, Principal};
use super::page::{base_url, with_link, PageQuery};
use crate::error::ApiError;
use crate::AppState;

/// A line of an order.
#[derive(Serialize, ToSchema)]
pub struct LineItem {
    /// The line's number within the order (refunds and fulfilments by line name it).
    pub id: i64,
    pub variant_id: Option<i64>,
    pub product_id: Option<i64>,
    pub title: String,
    pub variant_title: String,
    pub sku: String,
    pub quantity: i64,
    /// Unit price, decimal string in the order's currency.
    pub price: String,
    pub total_discount: String,
    pub tax: String,
    pub requires_shipping: bool,
    /// Units sent so far.
    pub fulfilled_quantity: i64,
    /// Units refunded by line so far.
    pub refunded_quantity: i64,
}

/// Money received or returned.
#[derive(Serialize, ToSchema)]
pub struct Transaction {
    pub id: i64,
    /// `sale` or `refund`.
    pub kind: String,
    pub gateway: String,
    /// The gateway's id (a manual confirmation: `confirm:<order id>`; a refund: `refund:<key>`).
    pub authorization: String,
    pub amount: String,
    pub currency: String,
    /// Refunds: `done`, `pending` (being sent through the gateway), `manual` (the owner sends
    /// the money back), `failed` (the gateway refused; the owner sends it). Sales: `done`.
    pub status: String,
    pub created_at: String,
}

/// Units of one line, in a refund or a fulfilment.
#[derive(Serialize, ToSchema)]
pub struct LineUnitsItem {
    /// The line item's `id`.
    pub line_item_id: i64,
    pub quantity: i64,
}

/// Money given back, as the order's timeline recorded it.
#[derive(Serialize, ToSchema)]
pub struct ApiRefund {
    pub id: i64,
    /// The `refund` transaction that carries the money (its status says whether it was sent).
    pub transaction_id: Option<i64>,
    pub amount: String,
    pub currency: String,
    pub restock: bool,
    pub note: String,
    /// The units refunded by line (empty for a refund by amount).
    pub refund_line_items: Vec<LineUnitsItem>,
    pub created_at: String,
}

/// Units sent, as the order's timeline recorded them.
#[derive(Serialize, ToSchema)]
pub struct ApiFulfillment {
    pub id: i64,
    pub tracking_company: String,
    pub tracking_number: String,
    pub line_items: Vec<LineUnitsItem>,
    pub created_at: String,
}

/// What the order granted: downloads, a membership, licence keys.
#[derive(Serialize, ToSchema)]
pub struct Entitlement {
    pub id: i64,
    /// `download`, `license` or `membership`.
    pub kind: String,
    pub product_id: i64,
    pub title: String,
    pub downloads: i64,
    pub download_limit: i64,
    pub ends_at: Option<String>,
    pub revoked_at: Option<String>,
    pub license_keys: Vec<String>,
}

/// An order.
#[derive(Serialize, ToSchema)]
pub struct ApiOrder {
    pub id: i64,
    /// `#1001`.
    pub name: String,
    pub order_number: i64,
    pub email: String,
    pub customer_id: Option<i64>,
    pub currency: String,
    /// `pending`, `paid`, `partially_refunded`, `refunded`, `voided`.
    pub financial_status: String,
    /// null (nothing sent), `partial`, `fulfilled`.
    pub fulfillment_status: Option<String>,
    pub cancelled: bool,
    pub refund_review: bool,
    pub subtotal_price: String,
    pub total_discounts: String,
    pub total_shipping: String,
    pub total_tax: String,
    pub taxes_included: bool,
    pub total_price: String,
    pub total_received: String,
    pub total_refunded: String,
    pub gateway: String,
    pub shipping_method: String,
    pub shipping_address: Option<serde_json::Value>,
    pub note: String,
    pub line_items: Vec<LineItem>,
    pub transactions: Vec<Transaction>,
    pub refunds: Vec<ApiRefund>,
    pub fulfillments: Vec<ApiFulfillment>,
    pub entitlements: Vec<Entitlement>,
    pub created_at: String,
    pub updated_at: String,
}

/// `{"order": {...}}`
#[derive(Serialize, ToSchema)]
pub struct OrderResponse {
    pub order: ApiOrder,
}

/// `{"orders": [...]}`
#[derive(Serialize, ToSchema)]
pub struct OrderListResponse {
    pub orders: Vec<ApiOrder>,
}

fn units_in(d: &serde_json::Value) -> Vec<LineUnitsItem> {
    d["lines"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .map(|l| LineUnitsItem {
                    line_item_id: l["position"].as_i64().unwrap_or(0),
                    quantity: l["quantity"].as_i64().unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The order's refunds and fulfilments, read from its timeline (oldest first).
fn history(o: &Order) -> (Vec<ApiRefund>, Vec<ApiFulfillment>) {
    let (mut refunds, mut sent) = (vec![], vec![]);
    for e in &o.events {
        let d: serde_json::Value = serde_json::from_str(&e.detail).unwrap_or_default();
        let text = |k: &str| d[k].as_str().unwrap_or("").to_string();
        match e.kind.as_str() {
            "refunded" => refunds.push(ApiRefund {
                id: e.id,
                transaction_id: d["transaction"].as_i64(),
                amount: money::format(d["amount"].as_i64().unwrap_or(0), &o.row.currency),
                currency: o.row.currency.clone(),
                restock: d["restock"].as_bool().unwrap_or(false),
                note: text("reason"),
                refund_line_items: units_in(&d),
                created_at: ts(e.created_at),
            }),
            "fulfilled" => sent.push(ApiFulfillment {
                id: e.id,
                tracking_company: text("carrier"),
                tracking_number: text("tracking"),
                line_items: units_in(&d),
                created_at: ts(e.created_at),
            }),
            _ => {}
        }
    }
    (refunds, sent)
}

fn transaction_json(t: &yiren_store::order::TransactionRow) -> Transaction {
    Transaction {
        id: t.id,
        kind: t.kind.clone(),
        gateway: t.gateway.clone(),
        authorization: t.reference.clone(),
        amount: money::format(t.amount, &t.currency),
        currency: t.currency.clone(),
        status: t.status.clone(),
        created_at: ts(t.created_at),
    }
}

async fn json_of(state: &AppState, o: &Order) -> Result<ApiOrder, ApiError> {
    let r = &o.row;
    let m = |v: i64| money::format(v, &r.currency);
    let (refunds, fulfillments) = history(o);
    let keys = license::of_order(&state.ctx, r.id).await?;
    let entitlements = delivery::entitlements(&state.ctx, r.id)
        .await?
        .into_iter()
        .map(|e| Entitlement {
            license_keys: keys
                .iter()
                .filter(|k| k.entitlement_id == Some(e.id))
                .map(|k| k.license_key.clone())
                .collect(),
            id: e.id,
            kind: e.kind,
            product_id: e.product_id,
            title: e.title,
            downloads: e.downloads,
            download_limit: e.download_limit,
            ends_at: e.ends_at.map(ts),
            revoked_at: e.revoked_at.map(ts),
        })
        .collect();
    Ok(ApiOrder {
        id: r.id,
        name: format!("#{}", r.number),
        order_number: r.number,
        email: r.email.clone(),
        customer_id: r.customer_id,
        currency: r.currency.clone(),
        financial_status: r.payment.clone(),
        fulfillment_status: match r.fulfilment.as_str() {
            "fulfilled" => Some("fulfilled".into()),
            "partially_fulfilled" => Some("partial".into()),
            _ => None,
        },
        cancelled: r.cancelled == 1,
        refund_review: r.refund_review == 1,
        subtotal_price: m(r.subtotal),
        total_discounts: m(r.discount),
        total_shipping: m(r.shipping - r.shipping_discount),
        total_tax: m(r.tax),
        taxes_included: r.tax_inclusive == 1,
        total_price: m(r.total),
        total_received: m(r.captured),
        total_refunded: m(r.refunded),
        gateway: r.gateway.clone(),
        shipping_method: r.shipping_method.clone(),
        shipping_address: serde_json::from_str(&r.address).ok(),
        note: r.note.clone(),
        line_items: o
            .lines
            .iter()
            .map(|l| LineItem {
                id: l.position,
                variant_id: l.variant_id,
                product_id: l.product_id,
                title: l.title.clone(),
                variant_title: l.variant_title.clone(),
                sku: l.sku.clone(),
                quantity: l.quantity,
                price: m(l.unit_price),
                total_discount: m(l.discount),
                tax: m(l.tax),
                requires_shipping: l.requires_shipping == 1,
                fulfilled_quantity: l.fulfilled,
                refunded_quantity: l.refunded_units,
            })
            .collect(),
        transactions: o.transactions.iter().map(transaction_json).collect(),
        refunds,
        fulfillments,
        entitlements,
        created_at: ts(r.created_at),
        updated_at: ts(r.updated_at),
    })
}

async fn respond(
    state: &AppState,
    id: i64,
    status: StatusCode,
) -> Result<(StatusCode, Json<OrderResponse>), ApiError> {
    let o = order::get(&state.ctx, id).await?;
    Ok((
        status,
        Json(OrderResponse {
            order: json_of(state, &o).await?,
        }),
    ))
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    before: i64,
    customer_id: Option<i64>,
}

/// Filters of the order list.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderFilter {
    /// Only this customer's orders.
    pub customer_id: Option<i64>,
}

/// Orders, newest first.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(PageQuery, OrderFilter),
    responses((status = 200, body = OrderListResponse), (status = 403, body = ErrorBody)))]
pub async fn list_orders(
    State(state): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
    Query(f): Query<OrderFilter>,
) -> Result<Response, ApiError> {
    p.require("orders:read")?;
    let paging = q.parse::<Cursor>()?;
    let (before, customer_id) = match paging.cursor {
        Some(c) => (c.before, c.customer_id),
        None => (i64::MAX, f.customer_id),
    };
    let mut rows = order::list_before(&state.ctx, customer_id, before, paging.limit + 1).await?;
    let more = rows.len() as i64 > paging.limit;
    rows.truncate(paging.limit as usize);
    let next = more.then(|| Cursor {
        before: rows.last().map(|o| o.id).unwrap_or(0),
        customer_id,
    });
    let mut orders = Vec::with_capacity(rows.len());
    for r in rows {
        orders.push(json_of(&state, &order::get(&state.ctx, r.id).await?).await?);
    }
    Ok(with_link(
        Json(OrderListResponse { orders }),
        &base_url(state.config.public_url.as_deref(), &headers),
        "/api/v1/orders",
        paging.limit,
        next,
    ))
}

/// One order.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", params(("id" = i64, Path)),
    responses((status = 200, body = OrderResponse), (status = 404, body = ErrorBody)))]
pub async fn get_order(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Json<OrderResponse>, ApiError> {
    p.require("orders:read")?;
    Ok(respond(&state, id, StatusCode::OK).await?.1)
}

/// A line to order.
#[derive(Deserialize, ToSchema)]
pub struct LineInput {
    pub variant_id: i64,
    pub quantity: i64,
}

/// Where the goods go: mainland China addresses need phone, province, city and district.
#[derive(Deserialize, ToSchema, Default)]
#[serde(default)]
pub struct AddressInput {
    pub name: String,
    pub phone: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub province: String,
    pub city: String,
    pub district: String,
    pub line1: String,
    pub line2: String,
    pub postal_code: String,
}

impl From<AddressInput> for Address {
    fn from(a: AddressInput) -> Address {
        Address {
            name: a.name,
            phone: a.phone,
            country: a.country,
            province: a.province,
            city: a.city,
            district: a.district,
            line1: a.line1,
            line2: a.line2,
            postal_code: a.postal_code,
        }
    }
}

/// An order to create. Prices, totals and discounts are computed by the server.
#[derive(Deserialize, ToSchema)]
pub struct OrderInput {
    pub email: String,
    pub customer_id: Option<i64>,
    pub line_items: Vec<LineInput>,
    #[serde(default)]
    pub shipping_address: Option<AddressInput>,
    /// The name of a shipping rate (Admin → Checkout settings).
    #[serde(default)]
    pub shipping_method: Option<String>,
    #[serde(default)]
    pub discount_code: Option<String>,
    #[serde(default)]
    pub note: String,
    /// `manual` (default) or an enabled gateway.
    #[serde(default)]
    pub gateway: Option<String>,
}

/// `{"order": {...}}`
#[derive(Deserialize, ToSchema)]
pub struct OrderRequest {
    pub order: OrderInput,
}

/// Create an order, as the checkout would (stock held, discount uses counted, mails sent).
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", request_body = OrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 hours")),
    responses((status = 201, body = OrderResponse), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_order(
    State(state): State<AppState>,
    p: Principal,
    body: ApiJson<OrderRequest>,
) -> Result<(StatusCode, Json<OrderResponse>), ApiError> {
    p.require("orders:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let i = body.order;
    let mut token = [0u8; 16];
    state.ctx.rng.fill(&mut token);
    let s = Submit {
        token: format!("api-{}", hex::encode(token)),
        email: i.email,
        customer_id: i.customer_id,
        locale: crate::locale::current(),
        lines: i
            .line_items
            .iter()
            .map(|l| cart::Line {
                variant_id: l.variant_id,
                quantity: l.quantity,
            })
            .collect(),
        address: i.shipping_address.map(Address::from),
        shipping: i.shipping_method,
        code: i.discount_code,
        note: i.note,
        gateway: i.gateway.unwrap_or_else(|| "manual".into()),
        started: None,
        app: None,
        renewal: None,
    };
    if let Some(c) = s.customer_id {
        yiren_core::customer::get(&state.ctx, c)
            .await
            .map_err(|_| ApiError::invalid("error.invalid").field("customer_id"))?;
    }
    let o = checkout::place(&state.ctx, &s).await?;
    respond(&state, o.id, StatusCode::CREATED).await
}

/// A refund to make.
#[derive(Deserialize, ToSchema)]
pub struct RefundInput {
    /// Decimal string in the order's currency; at most what is left to refund. Ignored when
    /// `refund_line_items` is given (the amount is then the lines').
    #[serde(default)]
    pub amount: String,
    /// Refund units of lines: each line's share after its discounts (plus tax when prices
    /// exclude it), computed by the server.
    #[serde(default)]
    pub refund_line_items: Vec<LineUnitsInput>,
    #[serde(default)]
    pub restock: bool,
    #[serde(default)]
    pub note: String,
}

/// Units of one order line.
#[derive(Deserialize, ToSchema)]
pub struct LineUnitsInput {
    /// The line item's `id`.
    pub line_item_id: i64,
    pub quantity: i64,
}

fn units_of(lines: &[LineUnitsInput]) -> Vec<order::LineUnits> {
    lines
        .iter()
        .map(|l| order::LineUnits {
            position: l.line_item_id,
            quantity: l.quantity,
        })
        .collect()
}

/// `{"refund": {...}}`
#[derive(Deserialize, ToSchema)]
pub struct RefundRequest {
    pub refund: RefundInput,
}

/// Refund part or all of what was received (never more). With an `Idempotency-Key` the key also
/// names the refund, so a replay after the stored response expired is still one refund.
#[utoipa::path(post, path = "/api/v1/orders/{id}/refunds", tag = "orders", params(("id" = i64, Path),
    ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 hours")),
    request_body = RefundRequest,
    responses((status = 201, body = OrderResponse), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_refund(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: ApiJson<RefundRequest>,
) -> Result<(StatusCode, Json<OrderResponse>), ApiError> {
    p.require("orders:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let o = order::get(&state.ctx, id).await?;
    let lines = units_of(&body.refund.refund_line_items);
    let amount = if lines.is_empty() {
        money::parse(&body.refund.amount, &o.row.currency, "amount")?
    } else {
        0
    };
    // The refund's own key (at most 100 characters): the token and its Idempotency-Key, hashed.
    let key = match headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        Some(k) => {
            use sha2::Digest as _;
            let h = sha2::Sha256::digest(format!("{}\0{k}", p.token.id));
            format!("api:{}", hex::encode(&h[..20]))
        }
        None => {
            let mut t = [0u8; 16];
            state.ctx.rng.fill(&mut t);
            format!("api:{}", hex::encode(t))
        }
    };
    let r = Refund {
        amount,
        key,
        restock: body.refund.restock,
        reason: body.refund.note,
        lines,
    };
    order::refund(&state.ctx, id, &r, &format!("api:{}", p.staff.email)).await?;
    respond(&state, id, StatusCode::CREATED).await
}

/// A shipment.
#[derive(Deserialize, ToSchema, Default)]
pub struct FulfillmentInput {
    #[serde(default)]
    pub tracking_company: String,
    #[serde(default)]
    pub tracking_number: String,
    /// Send only these units (none: everything not sent yet).
    #[serde(default)]
    pub line_items: Vec<LineUnitsInput>,
}

/// `{"fulfillment": {...}}`
#[derive(Deserialize, ToSchema)]
pub struct FulfillmentRequest {
    #[serde(default)]
    pub fulfillment: FulfillmentInput,
}

/// Mark units sent — the chosen line items, or everything not sent yet (the customer is mailed the
/// tracking number).
#[utoipa::path(post, path = "/api/v1/orders/{id}/fulfillments", tag = "orders", params(("id" = i64, Path),
    ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 hours")),
    request_body = FulfillmentRequest,
    responses((status = 201, body = OrderResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_fulfillment(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
    body: ApiJson<FulfillmentRequest>,
) -> Result<(StatusCode, Json<OrderResponse>), ApiError> {
    p.require("orders:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    let f = body.fulfillment;
    order::fulfil(
        &state.ctx,
        id,
        &units_of(&f.line_items),
        &f.tracking_company,
        &f.tracking_number,
        &format!("api:{}", p.staff.email),
    )
    .await?;
    respond(&state, id, StatusCode::CREATED).await
}

/// Cancel an order (held stock goes back; `restock` puts a paid order's units back too).
#[derive(Deserialize, ToSchema, Default)]
pub struct CancelRequest {
    #[serde(default)]
    pub restock: bool,
}

/// Cancel an order.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders", params(("id" = i64, Path)),
    request_body = CancelRequest,
    responses((status = 200, body = OrderResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_order(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
    body: ApiJson<CancelRequest>,
) -> Result<(StatusCode, Json<OrderResponse>), ApiError> {
    p.require("orders:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let body = body.0?;
    order::cancel(
        &state.ctx,
        id,
        &format!("api:{}", p.staff.email),
        body.restock,
    )
    .await?;
    respond(&state, id, StatusCode::OK).await
}

/// `{"transactions": [...]}`
#[derive(Serialize, ToSchema)]
pub struct TransactionListResponse {
    pub transactions: Vec<Transaction>,
}

/// `{"transaction": {...}}`
#[derive(Serialize, ToSchema)]
pub struct TransactionResponse {
    pub transaction: Transaction,
}

/// `{"refunds": [...]}`
#[derive(Serialize, ToSchema)]
pub struct RefundListResponse {
    pub refunds: Vec<ApiRefund>,
}

/// `{"fulfillments": [...]}`
#[derive(Serialize, ToSchema)]
pub struct FulfillmentListResponse {
    pub fulfillments: Vec<ApiFulfillment>,
}

/// An order's transactions: money received (`sale`) and returned (`refund`), oldest first.
#[utoipa::path(get, path = "/api/v1/orders/{id}/transactions", tag = "orders", params(("id" = i64, Path)),
    responses((status = 200, body = TransactionListResponse), (status = 404, body = ErrorBody)))]
pub async fn list_transactions(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Json<TransactionListResponse>, ApiError> {
    p.require("orders:read")?;
    let o = order::get(&state.ctx, id).await?;
    Ok(Json(TransactionListResponse {
        transactions: o.transactions.iter().map(transaction_json).collect(),
    }))
}

/// A transaction to record: only `capture` — the owner says a manual payment (the personal QR
/// code, a bank transfer) arrived, for the whole total, as the admin's "confirm receipt" does.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransactionInput {
    /// `capture`.
    pub kind: String,
    /// Optional; when given it must be the order's total (decimal string in its currency).
    #[serde(default)]
    pub amount: Option<String>,
}

/// `{"transaction": {...}}`
#[derive(Deserialize, ToSchema)]
pub struct TransactionRequest {
    pub transaction: TransactionInput,
}

/// Record a manual payment as received (once: a repeat answers 200 with the same sale).
#[utoipa::path(post, path = "/api/v1/orders/{id}/transactions", tag = "orders", params(("id" = i64, Path),
    ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 hours")),
    request_body = TransactionRequest,
    responses((status = 201, body = TransactionResponse), (status = 200, body = TransactionResponse),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_transaction(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
    body: ApiJson<TransactionRequest>,
) -> Result<(StatusCode, Json<TransactionResponse>), ApiError> {
    p.require("orders:write")?;
    // The body is read only once the token may do this (no 422 before the 403).
    let t = body.0?.transaction;
    if t.kind != "capture" {
        return Err(ApiError::invalid("error.invalid").field("kind"));
    }
    let actor = format!("api:{}", p.staff.email);
    let (paid, sale) = order::capture_manual(&state.ctx, id, t.amount.as_deref(), &actor).await?;
    let status = match paid {
        order::Paid::Applied => StatusCode::CREATED,
        order::Paid::Duplicate => StatusCode::OK,
    };
    Ok((
        status,
        Json(TransactionResponse {
            transaction: transaction_json(&sale),
        }),
    ))
}

/// An order's refunds, oldest first.
#[utoipa::path(get, path = "/api/v1/orders/{id}/refunds", tag = "orders", params(("id" = i64, Path)),
    responses((status = 200, body = RefundListResponse), (status = 404, body = ErrorBody)))]
pub async fn list_refunds(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Json<RefundListResponse>, ApiError> {
    p.require("orders:read")?;
    let o = order::get(&state.ctx, id).await?;
    Ok(Json(RefundListResponse {
        refunds: history(&o).0,
    }))
}

/// An order's fulfilments (shipments), oldest first.
#[utoipa::path(get, path = "/api/v1/orders/{id}/fulfillments", tag = "orders", params(("id" = i64, Path)),
    responses((status = 200, body = FulfillmentListResponse), (status = 404, body = ErrorBody)))]
pub async fn list_fulfillments(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Json<FulfillmentListResponse>, ApiError> {
    p.require("orders:read")?;
    let o = order::get(&state.ctx, id).await?;
    Ok(Json(FulfillmentListResponse {
        fulfillments: history(&o).1,
    }))
}
