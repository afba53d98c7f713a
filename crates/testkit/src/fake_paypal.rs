//! A fake PayPal (Orders v2), written from the rules in `shared/specs/payments.md` §2.8:
//!
//! - `POST /v1/oauth2/token` (Basic client id and secret) gives a bearer token every other call
//!   needs.
//! - `POST /v2/checkout/orders` checks `intent: CAPTURE`, one purchase unit with `custom_id` and
//!   an amount written in the currency's decimals, and a `return_url`; the same
//!   `PayPal-Request-Id` again is the same order. Answers `PAYER_ACTION_REQUIRED` with a
//!   `payer-action` link (`checkoutnow?token=ID`, the fake's approval page).
//! - Approving (the page's button, or [`GatewayFake::pay`]) sends the customer to
//!   `return_url?…&token=ID&PayerID=…` and posts `CHECKOUT.ORDER.APPROVED` to the registered
//!   webhook with transmission headers, again until a 2xx. The money moves only at
//!   `POST /v2/checkout/orders/{id}/capture` (once: `ORDER_ALREADY_CAPTURED` after;
//!   `ORDER_NOT_APPROVED` before).
//! - `POST /v1/notifications/verify-webhook-signature` answers `SUCCESS` only for a transmission
//!   the fake sent, for this webhook id and exactly this event. `GET /v2/checkout/orders/{id}`,
//!   `POST /v2/payments/captures/{id}/refund` (once per `PayPal-Request-Id`).
//! - Subscriptions: `POST /v1/catalogs/products`, `POST /v1/billing/plans` (one REGULAR cycle
//!   billed every `interval_count` MONTHs, a fixed price in the currency's decimals, a known
//!   product) and `POST /v1/billing/subscriptions` (a known plan, our order as `custom_id`, a
//!   `return_url`) with an `approve` link. Approving posts `BILLING.SUBSCRIPTION.ACTIVATED` and
//!   the first `PAYMENT.SALE.COMPLETED` (`billing_agreement_id`, `custom`); [`FakePaypal::renew`],
//!   [`FakePaypal::fail_renewal`] and [`FakePaypal::cancel`] send the later events.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::fake_gateway::{is_yuan, join, Desk, GatewayFake, Names, Notice, Trade};

pub const CLIENT_ID: &str = "AbCdEfGh-client-id";
pub const CLIENT_SECRET: &str = "EFgHiJ-client-secret";
pub const WEBHOOK_ID: &str = "8PT597110X687430LKGECATA";
const TOKEN: &str = "A21AAFake-access-token";
/// The fake's own key for its transmission signatures.
const TRANSMISSION_KEY: &str = "fake-paypal-transmission-key";

/// A billing plan: (value, currency, months).
pub type Plan = (String, String, i64);

/// The fake; cheap to clone.
#[derive(Clone)]
pub struct FakePaypal {
    pub desk: Desk,
    refunds: Arc<Mutex<Vec<(String, String)>>>,
    /// Plans by id.
    plans: Arc<Mutex<BTreeMap<String, Plan>>>,
}

fn error(status: StatusCode, issue: &str) -> Response {
    (status, Json(serde_json::json!({"name": "UNPROCESSABLE_ENTITY", "message": issue, "details": [{"issue": issue}]}))).into_response()
}

/// The transmission signature the fake gives an event for a webhook.
fn transmission_sig(id: &str, time: &str, webhook_id: &str, event: &str) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(TRANSMISSION_KEY.as_bytes()).unwrap();
    let digest = hex::encode(Sha256::digest(event.as_bytes()));
    m.update(format!("{id}|{time}|{webhook_id}|{digest}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
}

impl FakePaypal {
    /// Refunds made: (PayPal-Request-Id, value).
    pub fn refunds(&self) -> Vec<(String, String)> {
        self.refunds.lock().unwrap().clone()
    }

    fn bearer(headers: &HeaderMap) -> bool {
        headers.get("authorization").and_then(|v| v.to_str().ok())
            == Some(&format!("Bearer {TOKEN}"))
    }

    fn by_id(&self, id: &str) -> Option<Trade> {
        self.desk.trades().into_iter().find(|t| t.no == id)
    }

    fn capture_json(&self, t: &Trade) -> serde_json::Value {
        serde_json::json!({
            "id": format!("CAP{}", t.no), "status": "COMPLETED", "custom_id": t.order_ref, "final_capture": true,
            "amount": {"currency_code": t.field("currency"), "value": self.desk.money_of(t)},
        })
    }

    fn order_json(&self, t: &Trade) -> serde_json::Value {
        let captured = t.field("captured") == "yes";
        let status = if captured {
            "COMPLETED"
        } else if t.paid {
            "APPROVED"
        } else {
            "PAYER_ACTION_REQUIRED"
        };
        let mut unit = serde_json::json!({"reference_id": t.order_ref, "custom_id": t.order_ref,
            "amount": {"currency_code": t.field("currency"), "value": t.money}});
        if captured {
            unit["payments"] = serde_json::json!({"captures": [self.capture_json(t)]});
        }
        serde_json::json!({"id": t.no, "intent": "CAPTURE", "status": status, "purchase_units": [unit]})
    }

    /// A webhook event, signed for `webhook_id` (ours when None); `resource` as given.
    pub fn event(
        &self,
        kind: &str,
        resource: serde_json::Value,
        webhook_id: Option<&str>,
    ) -> Notice {
        let n = self.desk.requests().len();
        let body = serde_json::json!({
            "id": format!("WH-{n}"), "event_version": "1.0", "create_time": "2026-11-28T02:00:00.000Z",
            "resource_type": "checkout-order", "event_type": kind, "resource": resource,
        })
        .to_string();
        let (id, time) = (format!("tx-{n}"), "2026-11-28T02:00:01Z".to_string());
        let sig = transmission_sig(&id, &time, webhook_id.unwrap_or(WEBHOOK_ID), &body);
        let headers = vec![
            ("PAYPAL-TRANSMISSION-ID".to_string(), id),
            ("PAYPAL-TRANSMISSION-TIME".to_string(), time),
            ("PAYPAL-TRANSMISSION-SIG".to_string(), sig),
            (
                "PAYPAL-CERT-URL".to_string(),
                format!("{}v1/notifications/certs/CERT-fake", self.desk.base),
            ),
            ("PAYPAL-AUTH-ALGO".to_string(), "SHA256withRSA".to_string()),
        ];
        Notice::raw("application/json", body, headers)
    }

    /// An event about the subscription of `order_ref` (`resource`: the subscription).
    pub fn subscription_event(&self, order_ref: &str, kind: &str) -> Notice {
        let t = self.desk.trade(order_ref).expect("trade");
        let resource = serde_json::json!({
            "id": t.no, "plan_id": t.field("plan_id"), "custom_id": t.order_ref,
            "status": if kind.ends_with("CANCELLED") { "CANCELLED" } else { "ACTIVE" },
        });
        self.event(kind, resource, None)
    }

    /// Sale `n` (0: the first) of the subscription of `order_ref`.
    pub fn sale_event(&self, order_ref: &str, n: usize) -> Notice {
        let t = self.desk.trade(order_ref).expect("trade");
        let resource = serde_json::json!({
            "id": format!("SALE{}X{n}", t.no), "state": "completed", "billing_agreement_id": t.no,
            "custom": t.order_ref, "amount": {"total": t.money, "currency": t.field("currency")},
        });
        self.event("PAYMENT.SALE.COMPLETED", resource, None)
    }

    /// Charge period `n` of the subscription of `order_ref` (the sale delivered until acked).
    pub fn renew(&self, order_ref: &str, n: usize) {
        let t = self.desk.trade(order_ref).expect("trade");
        let notice = self.sale_event(order_ref, n);
        self.desk
            .deliver(order_ref, &t.notify_url, notice, Self::acked);
    }

    /// A renewal charge fails: `BILLING.SUBSCRIPTION.PAYMENT.FAILED`.
    pub fn fail_renewal(&self, order_ref: &str) {
        let t = self.desk.trade(order_ref).expect("trade");
        let notice = self.subscription_event(order_ref, "BILLING.SUBSCRIPTION.PAYMENT.FAILED");
        self.desk
            .deliver(order_ref, &t.notify_url, notice, Self::acked);
    }

    /// The subscription is cancelled: `BILLING.SUBSCRIPTION.CANCELLED`.
    pub fn cancel(&self, order_ref: &str) {
        let t = self.desk.trade(order_ref).expect("trade");
        let notice = self.subscription_event(order_ref, "BILLING.SUBSCRIPTION.CANCELLED");
        self.desk
            .deliver(order_ref, &t.notify_url, notice, Self::acked);
    }

    /// The plan a subscription was opened on: (value, currency, months).
    pub fn plan_of(&self, order_ref: &str) -> Option<Plan> {
        let t = self.desk.trade(order_ref)?;
        self.plans.lock().unwrap().get(t.field("plan_id")).cloned()
    }

    /// `CHECKOUT.ORDER.APPROVED` for the PayPal order of `order_ref`.
    fn approved(&self, order_ref: &str, webhook_id: Option<&str>) -> Notice {
        let t = self.desk.trade(order_ref).expect("trade");
        let mut o = self.order_json(&t);
        o["status"] = "APPROVED".into();
        self.event("CHECKOUT.ORDER.APPROVED", o, webhook_id)
    }
}

impl GatewayFake for FakePaypal {
    async fn start() -> FakePaypal {
        let refunds = Arc::new(Mutex::new(vec![]));
        let r = refunds.clone();
        let plans = Arc::new(Mutex::new(BTreeMap::new()));
        let p = plans.clone();
        let desk = Desk::open(
            CLIENT_ID,
            CLIENT_SECRET,
            &[0, 150, 300, 600, 1200],
            |desk| {
                Router::new()
                    .route("/v1/oauth2/token", post(token))
                    .route("/v2/checkout/orders", post(create))
                    .route("/v2/checkout/orders/{id}", get(order))
                    .route("/v2/checkout/orders/{id}/capture", post(capture))
                    .route("/v2/payments/captures/{id}/refund", post(refund))
                    .route("/v1/notifications/verify-webhook-signature", post(verify))
                    .route("/checkoutnow", get(approval_page).post(approve))
                    .route("/v1/catalogs/products", post(create_product))
                    .route("/v1/billing/plans", post(create_plan))
                    .route("/v1/billing/subscriptions", post(create_subscription))
                    .with_state(FakePaypal {
                        desk,
                        refunds: r,
                        plans: p,
                    })
            },
        )
        .await;
        FakePaypal {
            desk,
            refunds,
            plans,
        }
    }

    fn desk(&self) -> &Desk {
        &self.desk
    }

    fn kind(&self) -> &'static str {
        "paypal"
    }

    fn settings(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        (
            BTreeMap::from([
                ("base_url".into(), self.desk.base.clone()),
                ("client_id".into(), CLIENT_ID.into()),
                ("webhook_id".into(), WEBHOOK_ID.into()),
            ]),
            BTreeMap::from([("client_secret".into(), CLIENT_SECRET.into())]),
        )
    }

    fn create_endpoint(&self) -> &'static str {
        "create order"
    }

    fn query_endpoint(&self) -> &'static str {
        "get order"
    }

    fn notice(&self, order_ref: &str, _changes: &[(&str, &str)], key: Option<&str>) -> Notice {
        self.approved(order_ref, key.map(|_| "WH-ANOTHER-WEBHOOK"))
    }

    fn not_paid(&self, order_ref: &str) -> Option<Notice> {
        let t = self.desk.trade(order_ref).expect("trade");
        let mut c = self.capture_json(&t);
        c["status"] = "PENDING".into();
        Some(self.event("PAYMENT.CAPTURE.PENDING", c, None))
    }

    fn forgeries(&self, order_ref: &str) -> Vec<(&'static str, Notice)> {
        let good = self.approved(order_ref, None);
        let header = |k: &str, v: Option<&str>| {
            let mut n = good.clone();
            match v {
                Some(v) => n
                    .headers
                    .iter_mut()
                    .filter(|(h, _)| h == k)
                    .for_each(|h| h.1 = v.into()),
                None => n.headers.retain(|(h, _)| h != k),
            }
            n
        };
        let t = self.desk.trade(order_ref).unwrap();
        let mut unknown_capture = self.capture_json(&t);
        unknown_capture["custom_id"] = "424242".into();
        vec![
            (
                "signed for another webhook",
                self.approved(order_ref, Some("WH-ANOTHER-WEBHOOK")),
            ),
            (
                "body changed after signing",
                Notice {
                    raw: Some((
                        "application/json",
                        good.encoded().replace(&t.no, "PAYPAL9999999999"),
                    )),
                    ..good.clone()
                },
            ),
            (
                "no transmission signature",
                header("PAYPAL-TRANSMISSION-SIG", None),
            ),
            ("no transmission id", header("PAYPAL-TRANSMISSION-ID", None)),
            (
                "wrong signature",
                header("PAYPAL-TRANSMISSION-SIG", Some("bm90IGl0")),
            ),
            (
                "another transmission id",
                header("PAYPAL-TRANSMISSION-ID", Some("tx-other")),
            ),
            (
                "another time",
                header("PAYPAL-TRANSMISSION-TIME", Some("2026-11-28T03:00:00Z")),
            ),
            (
                "not JSON",
                Notice {
                    raw: Some(("application/json", "{not json".into())),
                    ..good.clone()
                },
            ),
            (
                "an order PayPal does not know, signed",
                self.event(
                    "CHECKOUT.ORDER.APPROVED",
                    serde_json::json!({"id": "NOSUCHORDER", "status": "APPROVED"}),
                    None,
                ),
            ),
            (
                "a capture for an unknown order, signed",
                self.event("PAYMENT.CAPTURE.COMPLETED", unknown_capture, None),
            ),
            (
                "overlong, signed",
                self.event(
                    "CHECKOUT.ORDER.APPROVED",
                    serde_json::json!({"id": t.no, "pad": "x".repeat(70 * 1024)}),
                    None,
                ),
            ),
        ]
    }

    fn names(&self) -> Names {
        Names {
            order: "custom_id",
            amount: "value",
            sign: "PAYPAL-TRANSMISSION-SIG",
            text: "",
        }
    }

    fn ack(&self) -> (u16, &'static str) {
        (200, "ok")
    }

    fn acked(status: u16, _body: &str) -> bool {
        (200..300).contains(&status)
    }

    /// The customer approves: PayPal sends them back with the order's token and tells the
    /// webhook (the money moves when the shop captures).
    fn pay(&self, order_ref: &str) -> String {
        self.desk.mark_paid(order_ref);
        let t = self.desk.trade(order_ref).unwrap();
        if t.via == "subscription" {
            let activated = self.subscription_event(order_ref, "BILLING.SUBSCRIPTION.ACTIVATED");
            self.desk
                .deliver(order_ref, &t.notify_url, activated, Self::acked);
            self.renew(order_ref, 0);
            return join(
                &t.return_url,
                &format!(
                    "subscription_id={}&ba_token=BA-{}&token=EC-{}",
                    t.no, t.no, t.no
                ),
            );
        }
        let notice = self.approved(order_ref, None);
        self.desk
            .deliver(order_ref, &t.notify_url, notice, Self::acked);
        join(
            &t.return_url,
            &format!("token={}&PayerID=PAYERFAKE01", t.no),
        )
    }
}

async fn token(headers: HeaderMap, Form(f): Form<BTreeMap<String, String>>) -> Response {
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str())
        || f.get("grant_type").map(String::as_str) != Some("client_credentials")
    {
        return (StatusCode::UNAUTHORIZED, Json(serde_json::json!({"error": "invalid_client", "error_description": "Client Authentication failed"}))).into_response();
    }
    Json(serde_json::json!({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 32400}))
        .into_response()
}

async fn create(State(fake): State<FakePaypal>, headers: HeaderMap, body: String) -> Response {
    fake.desk.record("create order");
    if !FakePaypal::bearer(&headers) {
        return error(StatusCode::UNAUTHORIZED, "INVALID_TOKEN");
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let unit = &v["purchase_units"][0];
    let currency = unit["amount"]["currency_code"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let value = unit["amount"]["value"].as_str().unwrap_or("").to_string();
    let ctx = &v["payment_source"]["paypal"]["experience_context"];
    let whole = ["JPY", "TWD", "HUF"].contains(&currency.as_str());
    let valid = v["intent"] == "CAPTURE"
        && unit["custom_id"].as_str().is_some_and(|c| !c.is_empty())
        && currency.len() == 3
        && if whole {
            value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty()
        } else {
            is_yuan(&value)
        }
        && ctx["return_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http"));
    if !valid {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_PARAMETER_VALUE");
    }
    let t = Trade {
        no: String::new(),
        order_ref: unit["custom_id"].as_str().unwrap().to_string(),
        merchant: CLIENT_ID.into(),
        money: value,
        notify_url: fake.desk.endpoint(),
        return_url: ctx["return_url"].as_str().unwrap().to_string(),
        via: "create order",
        sent: BTreeMap::from([
            ("currency".to_string(), currency),
            (
                "request_id".to_string(),
                headers
                    .get("paypal-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string(),
            ),
        ]),
        paid: false,
        answers: vec![],
    };
    match fake.desk.open_trade(t, "PAYPAL") {
        Ok(t) => (StatusCode::OK, Json(serde_json::json!({"id": t.no, "status": "PAYER_ACTION_REQUIRED", "links": [
            {"href": format!("{}v2/checkout/orders/{}", fake.desk.base, t.no), "rel": "self", "method": "GET"},
            {"href": format!("{}checkoutnow?token={}", fake.desk.base, t.no), "rel": "payer-action", "method": "GET"},
        ]}))).into_response(),
        Err(_) => error(StatusCode::UNPROCESSABLE_ENTITY, "DUPLICATE_INVOICE_ID"),
    }
}

async fn order(
    State(fake): State<FakePaypal>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    fake.desk.record("get order");
    if !FakePaypal::bearer(&headers) {
        return error(StatusCode::UNAUTHORIZED, "INVALID_TOKEN");
    }
    match fake.by_id(&id) {
        Some(t) => Json(fake.order_json(&t)).into_response(),
        None => error(StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND"),
    }
}

async fn capture(
    State(fake): State<FakePaypal>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    fake.desk.record("capture");
    if !FakePaypal::bearer(&headers) {
        return error(StatusCode::UNAUTHORIZED, "INVALID_TOKEN");
    }
    // Checked and marked under one lock: two captures at once take the money once.
    let t = {
        let mut b = fake.desk.book();
        let Some(t) = b.trades.iter_mut().find(|t| t.no == id) else {
            return error(StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
        };
        if !t.paid {
            return error(StatusCode::UNPROCESSABLE_ENTITY, "ORDER_NOT_APPROVED");
        }
        if t.field("captured") == "yes" {
            return error(StatusCode::UNPROCESSABLE_ENTITY, "ORDER_ALREADY_CAPTURED");
        }
        t.sent.insert("captured".into(), "yes".into());
        t.clone()
    };
    (StatusCode::CREATED, Json(fake.order_json(&t))).into_response()
}

async fn refund(
    State(fake): State<FakePaypal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    fake.desk.record("refund");
    if !FakePaypal::bearer(&headers) {
        return error(StatusCode::UNAUTHORIZED, "INVALID_TOKEN");
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let value = v["amount"]["value"].as_str().unwrap_or("").to_string();
    let request = headers
        .get("paypal-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let Some(t) = fake
        .desk
        .trades()
        .into_iter()
        .find(|t| format!("CAP{}", t.no) == id && t.field("captured") == "yes")
    else {
        return error(StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND");
    };
    let mut refunds = fake.refunds.lock().unwrap();
    if !refunds.iter().any(|(r, _)| *r == request) {
        let cents = |s: &str| s.replace('.', "").parse::<i64>().unwrap_or(i64::MAX);
        let before: i64 = refunds.iter().map(|(_, a)| cents(a)).sum();
        if !is_yuan(&value) || before + cents(&value) > cents(&t.money) {
            return error(StatusCode::UNPROCESSABLE_ENTITY, "REFUND_AMOUNT_EXCEEDED");
        }
        refunds.push((request.clone(), value));
    }
    (
        StatusCode::CREATED,
        Json(serde_json::json!({"id": format!("REF-{request}"), "status": "COMPLETED"})),
    )
        .into_response()
}

async fn verify(
    State(fake): State<FakePaypal>,
    headers: HeaderMap,
    Json(v): Json<serde_json::Value>,
) -> Response {
    fake.desk.record("verify");
    if !FakePaypal::bearer(&headers) {
        return error(StatusCode::UNAUTHORIZED, "INVALID_TOKEN");
    }
    let text = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let expected = transmission_sig(
        &text("transmission_id"),
        &text("transmission_time"),
        &text("webhook_id"),
        &v["webhook_event"].to_string(),
    );
    let ok = text("webhook_id") == WEBHOOK_ID
        && text("auth_algo") == "SHA256withRSA"
        && text("cert_url").starts_with(&fake.desk.base)
        && text("transmission_sig") == expected;
    Json(serde_json::json!({"verification_status": if ok { "SUCCESS" } else { "FAILURE" }}))
        .into_response()
}

/// What an approval page is for: an order (`token`) or a subscription (`ba_token=BA-<id>`).
fn approval_of(q: &BTreeMap<String, String>) -> Option<String> {
    q.get("token").cloned().or_else(|| {
        q.get("ba_token")
            .and_then(|b| b.strip_prefix("BA-"))
            .map(String::from)
    })
}

fn amount_ok(value: &str, currency: &str) -> bool {
    if ["JPY", "TWD", "HUF"].contains(&currency) {
        !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())
    } else {
        is_yuan(value)
    }
}

async fn create_product(
    State(fake): State<FakePaypal>,
    headers: HeaderMap,
    Json(v): Json<serde_json::Value>,
) -> Response {
    fake.desk.record("create product");
    if !FakePaypal::bearer(&headers) {
        return error(StatusCode::UNAUTHORIZED, "INVALID_TOKEN");
    }
    if v["name"].as_str().is_none_or(str::is_empty)
        || !["PHYSICAL", "DIGITAL", "SERVICE"].contains(&v["type"].as_str().unwrap_or(""))
    {
        return error(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    }
    (
        StatusCode::CREATED,
        Json(serde_json::json!({"id": "PROD-FAKE0001", "name": v["name"], "type": v["type"]})),
    )
        .into_response()
}

async fn create_plan(
    State(fake): State<FakePaypal>,
    headers: HeaderMap,
    Json(v): Json<serde_json::Value>,
) -> Response {
    fake.desk.record("create plan");
    if !FakePaypal::bearer(&headers) {
        return error(StatusCode::UNAUTHORIZED, "INVALID_TOKEN");
    }
    let cycle = &v["billing_cycles"][0];
    let price = &cycle["pricing_scheme"]["fixed_price"];
    let (value, currency) = (
        price["value"].as_str().unwrap_or(""),
        price["currency_code"].as_str().unwrap_or(""),
    );
    let months = cycle["frequency"]["interval_count"].as_i64().unwrap_or(0);
    let valid = v["product_id"] == "PROD-FAKE0001"
        && v["billing_cycles"].as_array().is_some_and(|c| c.len() == 1)
        && cycle["tenure_type"] == "REGULAR"
        && cycle["frequency"]["interval_unit"] == "MONTH"
        && (1..=12).contains(&months)
        && cycle["total_cycles"] == 0
        && currency.len() == 3
        && amount_ok(value, currency);
    if !valid {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_PARAMETER_VALUE");
    }
    let mut plans = fake.plans.lock().unwrap();
    let id = format!("P-FAKE{:04}", plans.len() + 1);
    plans.insert(
        id.clone(),
        (value.to_string(), currency.to_string(), months),
    );
    (
        StatusCode::CREATED,
        Json(serde_json::json!({"id": id, "status": "ACTIVE", "product_id": v["product_id"]})),
    )
        .into_response()
}

async fn create_subscription(
    State(fake): State<FakePaypal>,
    headers: HeaderMap,
    Json(v): Json<serde_json::Value>,
) -> Response {
    fake.desk.record("create subscription");
    if !FakePaypal::bearer(&headers) {
        return error(StatusCode::UNAUTHORIZED, "INVALID_TOKEN");
    }
    let plan_id = v["plan_id"].as_str().unwrap_or("").to_string();
    let Some((value, currency, _)) = fake.plans.lock().unwrap().get(&plan_id).cloned() else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_RESOURCE_ID");
    };
    let custom = v["custom_id"].as_str().unwrap_or("").to_string();
    let ret = v["application_context"]["return_url"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if custom.is_empty() || !ret.starts_with("http") {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_PARAMETER_VALUE");
    }
    let t = Trade {
        no: String::new(),
        order_ref: custom,
        merchant: CLIENT_ID.into(),
        money: value,
        notify_url: fake.desk.endpoint(),
        return_url: ret,
        via: "subscription",
        sent: BTreeMap::from([
            ("currency".to_string(), currency),
            ("plan_id".to_string(), plan_id),
        ]),
        paid: false,
        answers: vec![],
    };
    match fake.desk.open_trade(t, "I-") {
        Ok(t) => (StatusCode::CREATED, Json(serde_json::json!({"id": t.no, "status": "APPROVAL_PENDING", "links": [
            {"href": format!("{}checkoutnow?ba_token=BA-{}", fake.desk.base, t.no), "rel": "approve", "method": "GET"},
            {"href": format!("{}v1/billing/subscriptions/{}", fake.desk.base, t.no), "rel": "self", "method": "GET"},
        ]}))).into_response(),
        Err(_) => error(StatusCode::UNPROCESSABLE_ENTITY, "DUPLICATE_REQUEST_ID"),
    }
}

async fn approval_page(
    State(fake): State<FakePaypal>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    match approval_of(&q).and_then(|id| fake.by_id(&id)) {
        Some(t) => Html(format!(
            "<!doctype html><title>PayPal</title><p id=\"paypal-amount\">{} {}</p><form method=\"post\"><button id=\"paypal-approve\">Pay Now</button></form>",
            t.money, t.field("currency")
        ))
        .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn approve(
    State(fake): State<FakePaypal>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    match approval_of(&q).and_then(|id| fake.by_id(&id)) {
        Some(t) => Redirect::to(&fake.pay(&t.order_ref)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
