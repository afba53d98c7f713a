//! A fake Stripe, written from the API rules in `shared/specs/payments.md` §2.7 (its own
//! HMAC code):
//!
//! - `POST /v1/checkout/sessions` (Bearer secret key, form with bracketed keys) checks the key,
//!   `mode=payment`, the inline price (`unit_amount` a positive integer, a currency, a name),
//!   `quantity=1`, `success_url` and our order in `metadata[yiren_order]`; the same
//!   `Idempotency-Key` again gets the same session. Answers `{id: cs_…, url}` where `url` is the
//!   fake's hosted page; errors are `{error: {type, message}}` with 400/401.
//! - Paying (the hosted page's button, or [`GatewayFake::pay`]) sends the customer to
//!   `success_url` and POSTs a `checkout.session.completed` event to the webhook endpoint the
//!   owner registered (the suite registers the shop's notification URL), signed
//!   `Stripe-Signature: t=…,v1=hex(HMAC-SHA256(whsec, "t.body"))`, again until a 2xx.
//! - `GET /v1/payment_intents/search?query=metadata['yiren_order']:'…'` and `POST /v1/refunds`
//!   (idempotent per key; never more than was paid).
//! - Subscriptions: a `mode=subscription` session must carry a monthly recurring price
//!   (`price_data[recurring][interval]=month`, a positive `interval_count`), our order in
//!   `subscription_data[metadata][yiren_order]`, and no `payment_intent_data` (Stripe refuses
//!   it in that mode). Paid, its completed event names the `subscription` (`sub_…`) and its
//!   first `invoice` (`in_…`), with `payment_intent` null. [`FakeStripe::renew`],
//!   [`FakeStripe::fail_renewal`] and [`FakeStripe::end`] then send `invoice.paid`
//!   (`billing_reason=subscription_cycle`), `invoice.payment_failed` and
//!   `customer.subscription.deleted`, signed and retried like every event; invoices name their
//!   subscription the 2025 way (`parent.subscription_details`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::fake_gateway::{Desk, GatewayFake, Names, Notice, Trade};

pub const SECRET_KEY: &str = "sk_test_fake0123456789";
pub const WEBHOOK_SECRET: &str = "whsec_fake0123456789";

/// A refund the fake made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: String,
    pub idempotency_key: String,
    pub payment_intent: String,
    pub amount: i64,
}

/// The fake; cheap to clone.
#[derive(Clone)]
pub struct FakeStripe {
    pub desk: Desk,
    refunds: Arc<Mutex<Vec<Refund>>>,
    /// Invoices issued per subscription trade (the first is the checkout's).
    invoices: Arc<Mutex<BTreeMap<String, usize>>>,
}

/// `hex(HMAC-SHA256(secret, "{t}.{body}"))`, from the rule.
pub fn sign(secret: &str, t: i64, body: &str) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(format!("{t}.{body}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({"error": {"type": kind, "message": message}})),
    )
        .into_response()
}

impl FakeStripe {
    /// Every refund made.
    pub fn refunds(&self) -> Vec<Refund> {
        self.refunds.lock().unwrap().clone()
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        let (key, _) = self.desk.merchant();
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {key}"))
    }

    fn by_session(&self, id: &str) -> Option<Trade> {
        self.desk.trades().into_iter().find(|t| t.no == id)
    }

    /// The event for a trade: `fields` of the session changed before signing (`type` is the
    /// event's), signed with `secret` at `t`.
    pub fn event(&self, order_ref: &str, changes: &[(&str, &str)], secret: &str, t: i64) -> Notice {
        let tr = self.desk.trade(order_ref).expect("trade");
        let mut session = serde_json::json!({
            "id": tr.no, "object": "checkout.session", "client_reference_id": tr.order_ref,
            "payment_intent": tr.field("payment_intent"),
            "amount_total": self.desk.money_of(&tr).parse::<i64>().unwrap(),
            "currency": tr.field("line_items[0][price_data][currency]"),
            "payment_status": "paid", "status": "complete", "mode": "payment",
            "metadata": {"yiren_order": tr.order_ref},
        });
        if tr.field("mode") == "subscription" {
            session["mode"] = "subscription".into();
            session["payment_intent"] = serde_json::Value::Null;
            session["subscription"] = tr.field("subscription").into();
            session["invoice"] = format!("in_{}_0", tr.field("subscription")).into();
        }
        let mut kind = "checkout.session.completed".to_string();
        for (k, v) in changes {
            match *k {
                "type" => kind = v.to_string(),
                "yiren_order" => session["metadata"]["yiren_order"] = (*v).into(),
                "amount_total" => session["amount_total"] = v.parse::<i64>().unwrap().into(),
                _ => session[*k] = (*v).into(),
            }
        }
        let n = self.desk.book().requests.len();
        let body = serde_json::json!({
            "id": format!("evt_{}_{n}", tr.no), "object": "event", "type": kind, "created": t,
            "livemode": false, "data": {"object": session},
        })
        .to_string();
        let header = format!("t={t},v1={}", sign(secret, t, &body));
        Notice::raw(
            "application/json",
            body,
            vec![("Stripe-Signature".into(), header)],
        )
    }
}

impl FakeStripe {
    /// A signed event about the subscription the trade of `order_ref` opened: `kind` with `object`.
    fn subscription_notice(&self, kind: &str, object: serde_json::Value) -> Notice {
        let (_, whsec) = self.desk.merchant();
        let t = now_s();
        let n = self.desk.book().requests.len();
        let body = serde_json::json!({
            "id": format!("evt_sub_{n}_{}", object["id"].as_str().unwrap_or("")), "object": "event",
            "type": kind, "created": t, "livemode": false, "data": {"object": object},
        })
        .to_string();
        let header = format!("t={t},v1={}", sign(&whsec, t, &body));
        Notice::raw(
            "application/json",
            body,
            vec![("Stripe-Signature".into(), header)],
        )
    }

    /// Invoice `n` (0: the checkout's) of the subscription of `order_ref`, as an event of `kind`
    /// (`invoice.paid`, `invoice.payment_failed`).
    pub fn invoice_event(&self, order_ref: &str, kind: &str, n: usize) -> Notice {
        let tr = self.desk.trade(order_ref).expect("trade");
        let sub = tr.field("subscription").to_string();
        assert!(!sub.is_empty(), "order {order_ref} opened no subscription");
        let amount: i64 = tr.money.parse().unwrap();
        let paid = kind == "invoice.paid";
        let object = serde_json::json!({
            "id": format!("in_{sub}_{n}"), "object": "invoice",
            "billing_reason": if n == 0 { "subscription_create" } else { "subscription_cycle" },
            "amount_due": amount, "amount_paid": if paid { amount } else { 0 },
            "currency": tr.field("line_items[0][price_data][currency]"),
            "status": if paid { "paid" } else { "open" },
            "parent": {"type": "subscription_details", "subscription_details": {
                "subscription": sub, "metadata": {"yiren_order": tr.order_ref},
            }},
        });
        self.subscription_notice(kind, object)
    }

    fn next_invoice(&self, order_ref: &str) -> usize {
        let mut inv = self.invoices.lock().unwrap();
        let n = inv.entry(order_ref.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    /// Charge the next period of the subscription of `order_ref`: `invoice.paid` delivered on
    /// the retry schedule until acknowledged; the invoice's number.
    pub fn renew(&self, order_ref: &str) -> usize {
        let n = self.next_invoice(order_ref);
        let notice = self.invoice_event(order_ref, "invoice.paid", n);
        self.desk
            .deliver(order_ref, &self.desk.endpoint(), notice, Self::acked);
        n
    }

    /// The next period's charge fails: `invoice.payment_failed`; the invoice's number (Stripe
    /// retries the same invoice: [`FakeStripe::retry_paid`] pays it).
    pub fn fail_renewal(&self, order_ref: &str) -> usize {
        let n = self.next_invoice(order_ref);
        let notice = self.invoice_event(order_ref, "invoice.payment_failed", n);
        self.desk
            .deliver(order_ref, &self.desk.endpoint(), notice, Self::acked);
        n
    }

    /// Invoice `n`, failed before, is paid on a later attempt.
    pub fn retry_paid(&self, order_ref: &str, n: usize) {
        let notice = self.invoice_event(order_ref, "invoice.paid", n);
        self.desk
            .deliver(order_ref, &self.desk.endpoint(), notice, Self::acked);
    }

    /// The subscription of `order_ref` ends: `customer.subscription.deleted`.
    pub fn end(&self, order_ref: &str) {
        let tr = self.desk.trade(order_ref).expect("trade");
        let object = serde_json::json!({
            "id": tr.field("subscription"), "object": "subscription", "status": "canceled",
            "metadata": {"yiren_order": tr.order_ref},
        });
        let notice = self.subscription_notice("customer.subscription.deleted", object);
        self.desk
            .deliver(order_ref, &self.desk.endpoint(), notice, Self::acked);
    }
}

impl GatewayFake for FakeStripe {
    async fn start() -> FakeStripe {
        let refunds = Arc::new(Mutex::new(vec![]));
        let r = refunds.clone();
        let invoices = Arc::new(Mutex::new(BTreeMap::new()));
        let i = invoices.clone();
        let desk = Desk::open(
            SECRET_KEY,
            WEBHOOK_SECRET,
            &[0, 150, 300, 600, 1200],
            |desk| {
                Router::new()
                    .route("/v1/checkout/sessions", axum::routing::post(create))
                    .route("/v1/payment_intents/search", get(search))
                    .route("/v1/refunds", axum::routing::post(refund))
                    .route("/pay/{session}", get(hosted).post(hosted_pay))
                    .with_state(FakeStripe {
                        desk,
                        refunds: r,
                        invoices: i,
                    })
            },
        )
        .await;
        FakeStripe {
            desk,
            refunds,
            invoices,
        }
    }

    fn desk(&self) -> &Desk {
        &self.desk
    }

    fn kind(&self) -> &'static str {
        "stripe"
    }

    fn settings(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let (key, whsec) = self.desk.merchant();
        (
            BTreeMap::from([("base_url".into(), self.desk.base.clone())]),
            BTreeMap::from([("secret_key".into(), key), ("webhook_secret".into(), whsec)]),
        )
    }

    fn create_endpoint(&self) -> &'static str {
        "v1/checkout/sessions"
    }

    fn query_endpoint(&self) -> &'static str {
        "v1/payment_intents/search"
    }

    fn notice(&self, order_ref: &str, changes: &[(&str, &str)], key: Option<&str>) -> Notice {
        let (_, whsec) = self.desk.merchant();
        self.event(order_ref, changes, key.unwrap_or(&whsec), now_s())
    }

    fn not_paid(&self, order_ref: &str) -> Option<Notice> {
        // A delayed method (a bank debit): completed, not paid yet.
        Some(self.notice(order_ref, &[("payment_status", "unpaid")], None))
    }

    fn forgeries(&self, order_ref: &str) -> Vec<(&'static str, Notice)> {
        let (_, whsec) = self.desk.merchant();
        let now = now_s();
        let good = self.event(order_ref, &[], &whsec, now);
        let body = good.encoded();
        let header = good.headers[0].1.clone();
        let sig = header.split_once(",v1=").unwrap().1.to_string();
        let with_header = |h: Option<String>| Notice {
            headers: h
                .map(|h| vec![("Stripe-Signature".to_string(), h)])
                .unwrap_or_default(),
            ..good.clone()
        };
        let with_body = |b: String| Notice {
            raw: Some(("application/json", b)),
            ..good.clone()
        };
        let signed_body = |b: &str| {
            Notice::raw(
                "application/json",
                b.to_string(),
                vec![(
                    "Stripe-Signature".into(),
                    format!("t={now},v1={}", sign(&whsec, now, b)),
                )],
            )
        };
        vec![
            (
                "wrong secret",
                self.event(order_ref, &[], "whsec_not_the_secret", now),
            ),
            (
                "amount changed after signing",
                with_body(body.replace("\"amount_total\":9900", "\"amount_total\":1")),
            ),
            (
                "order changed after signing",
                with_body(body.replace(
                    &format!("\"yiren_order\":\"{order_ref}\""),
                    "\"yiren_order\":\"1\"",
                )),
            ),
            ("status changed after signing", {
                let unpaid = self.event(order_ref, &[("payment_status", "unpaid")], &whsec, now);
                Notice {
                    raw: Some((
                        "application/json",
                        unpaid.encoded().replace("\"unpaid\"", "\"paid\""),
                    )),
                    ..unpaid
                }
            }),
            ("no signature header", with_header(None)),
            ("empty signature header", with_header(Some(String::new()))),
            (
                "only a v0 signature",
                with_header(Some(format!("t={now},v0={sig}"))),
            ),
            (
                "upper-case signature",
                with_header(Some(format!("t={now},v1={}", sig.to_uppercase()))),
            ),
            (
                "signature moved to another timestamp",
                with_header(Some(format!("t={},v1={sig}", now + 1))),
            ),
            (
                "two timestamps",
                with_header(Some(format!("t={now},t={now},v1={sig}"))),
            ),
            (
                "older than 300 s, signed",
                self.event(order_ref, &[], &whsec, now - 400),
            ),
            (
                "from the future, signed",
                self.event(order_ref, &[], &whsec, now + 400),
            ),
            (
                "unknown order",
                self.event(order_ref, &[("yiren_order", "424242")], &whsec, now),
            ),
            (
                "no payment intent, signed",
                self.event(order_ref, &[("payment_intent", "")], &whsec, now),
            ),
            ("not JSON, signed", signed_body("{not json")),
            ("empty, signed", signed_body("")),
            (
                "overlong, signed",
                signed_body(&format!("{{\"pad\":\"{}\"}}", "x".repeat(300 * 1024))),
            ),
        ]
    }

    fn names(&self) -> Names {
        Names {
            order: "yiren_order",
            amount: "amount_total",
            sign: "v1",
            text: "",
        }
    }

    fn money_sent(&self) -> &'static str {
        "9900"
    }

    fn wrong_money(&self) -> &'static str {
        "1"
    }

    fn ack(&self) -> (u16, &'static str) {
        (200, "{\"received\":true}")
    }

    fn acked(status: u16, _body: &str) -> bool {
        (200..300).contains(&status)
    }

    fn pay(&self, order_ref: &str) -> String {
        let (notify_url, _) = self.desk.mark_paid(order_ref);
        let t = self.desk.trade(order_ref).unwrap();
        let notice = self.notice(order_ref, &[], None);
        self.desk
            .deliver(order_ref, &notify_url, notice, Self::acked);
        t.return_url.replace("{CHECKOUT_SESSION_ID}", &t.no)
    }
}

async fn create(
    State(fake): State<FakeStripe>,
    headers: HeaderMap,
    Form(p): Form<BTreeMap<String, String>>,
) -> Response {
    fake.desk.record("v1/checkout/sessions");
    if !fake.authorised(&headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Invalid API Key provided",
        );
    }
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    let amount = get("line_items[0][price_data][unit_amount]");
    let subscription = get("mode") == "subscription";
    let recurring_ok = get("line_items[0][price_data][recurring][interval]") == "month"
        && get("line_items[0][price_data][recurring][interval_count]")
            .parse::<i64>()
            .is_ok_and(|n| n > 0)
        && !get("subscription_data[metadata][yiren_order]").is_empty()
        && !p.keys().any(|k| k.starts_with("payment_intent_data"));
    let checks = [
        (get("mode") == "payment" || subscription, "mode"),
        (!subscription || recurring_ok, "recurring price"),
        (
            subscription || !p.keys().any(|k| k.contains("[recurring]")),
            "recurring price in payment mode",
        ),
        (amount.parse::<i64>().is_ok_and(|a| a > 0), "unit_amount"),
        (
            get("line_items[0][price_data][currency]").len() == 3,
            "currency",
        ),
        (
            !get("line_items[0][price_data][product_data][name]").is_empty(),
            "name",
        ),
        (get("line_items[0][quantity]") == "1", "quantity"),
        (get("success_url").starts_with("http"), "success_url"),
        (!get("metadata[yiren_order]").is_empty(), "metadata"),
    ];
    if let Some((_, what)) = checks.iter().find(|(ok, _)| !ok) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &format!("Invalid {what}"),
        );
    }
    let (key, _) = fake.desk.merchant();
    let mut sent = p.clone();
    let n = fake.desk.trades().len() + 1;
    if subscription {
        sent.insert("subscription".into(), format!("sub_test_{n:06}"));
    } else {
        sent.insert("payment_intent".into(), format!("pi_test_{n:06}"));
    }
    sent.insert(
        "idempotency_key".into(),
        headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .into(),
    );
    let t = Trade {
        no: String::new(),
        order_ref: get("metadata[yiren_order]"),
        merchant: key,
        money: amount,
        notify_url: fake.desk.endpoint(),
        return_url: get("success_url"),
        via: "v1/checkout/sessions",
        sent,
        paid: false,
        answers: vec![],
    };
    match fake.desk.open_trade(t, "cs_test_") {
        Ok(t) => Json(serde_json::json!({
            "id": t.no, "object": "checkout.session", "url": format!("{}pay/{}", fake.desk.base, t.no),
            "payment_intent": t.field("payment_intent"), "client_reference_id": t.order_ref,
        }))
        .into_response(),
        Err(_) => error(StatusCode::BAD_REQUEST, "invalid_request_error", "This order is paid"),
    }
}

async fn search(
    State(fake): State<FakeStripe>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    fake.desk.record("v1/payment_intents/search");
    if !fake.authorised(&headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Invalid API Key provided",
        );
    }
    let query = q.get("query").cloned().unwrap_or_default();
    let Some(order) = query
        .strip_prefix("metadata['yiren_order']:'")
        .and_then(|r| r.strip_suffix('\''))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Unsupported query",
        );
    };
    let data: Vec<serde_json::Value> = fake
        .desk
        .trade(order)
        .into_iter()
        .map(|t| {
            let amount: i64 = t.money.parse().unwrap();
            serde_json::json!({
                "id": t.field("payment_intent"), "object": "payment_intent", "amount": amount,
                "amount_received": if t.paid { amount } else { 0 },
                "currency": t.field("line_items[0][price_data][currency]"),
                "status": if t.paid { "succeeded" } else { "requires_payment_method" },
                "metadata": {"yiren_order": t.order_ref},
            })
        })
        .collect();
    Json(serde_json::json!({"object": "search_result", "data": data, "has_more": false}))
        .into_response()
}

async fn refund(
    State(fake): State<FakeStripe>,
    headers: HeaderMap,
    Form(p): Form<BTreeMap<String, String>>,
) -> Response {
    fake.desk.record("v1/refunds");
    if !fake.authorised(&headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Invalid API Key provided",
        );
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut refunds = fake.refunds.lock().unwrap();
    if let Some(r) = refunds
        .iter()
        .find(|r| !key.is_empty() && r.idempotency_key == key)
    {
        return Json(serde_json::json!({"id": r.id, "object": "refund", "amount": r.amount, "status": "succeeded"}))
            .into_response();
    }
    let pi = p.get("payment_intent").cloned().unwrap_or_default();
    let Some(t) = fake
        .desk
        .trades()
        .into_iter()
        .find(|t| t.paid && t.field("payment_intent") == pi)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "No such payment_intent",
        );
    };
    let paid: i64 = t.money.parse().unwrap();
    let before: i64 = refunds
        .iter()
        .filter(|r| r.payment_intent == pi)
        .map(|r| r.amount)
        .sum();
    let amount = p
        .get("amount")
        .and_then(|a| a.parse::<i64>().ok())
        .unwrap_or(paid - before);
    if amount <= 0 || before + amount > paid {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &format!(
                "Refund amount ({amount}) is greater than unrefunded amount on charge ({})",
                paid - before
            ),
        );
    }
    let r = Refund {
        id: format!("re_test_{:06}", refunds.len() + 1),
        idempotency_key: key,
        payment_intent: pi,
        amount,
    };
    refunds.push(r.clone());
    Json(serde_json::json!({"id": r.id, "object": "refund", "amount": r.amount, "status": "succeeded"})).into_response()
}

async fn hosted(State(fake): State<FakeStripe>, Path(session): Path<String>) -> Response {
    match fake.by_session(&session) {
        Some(t) => Html(format!(
            "<!doctype html><title>Stripe Checkout</title><p id=\"stripe-amount\">{} {}</p>\
             <form method=\"post\"><button id=\"stripe-pay\">Pay</button></form>",
            t.money,
            t.field("line_items[0][price_data][currency]")
        ))
        .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn hosted_pay(State(fake): State<FakeStripe>, Path(session): Path<String>) -> Response {
    match fake.by_session(&session) {
        Some(t) => Redirect::to(&fake.pay(&t.order_ref)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
