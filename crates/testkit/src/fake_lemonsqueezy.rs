//! A fake Lemon Squeezy, written from the rules in `shared/specs/payments.md` §2.9 (its own HMAC
//! code):
//!
//! - `POST /v1/checkouts` (JSON:API, Bearer API key) checks the store and variant, `custom_price`
//!   (a positive integer) and our order in `checkout_data.custom`; answers with the checkout's
//!   `url` (the fake's hosted page).
//! - Paying sends the customer to `product_options.redirect_url` and POSTs `order_created`
//!   (`X-Event-Name`, `X-Signature` = hex HMAC-SHA256 of the body) with the custom data in
//!   `meta.custom_data`, tax added on top of the price (`subtotal` is the price, `total` more);
//!   again three times at most while the answer is not a 200.
//! - Subscriptions: a checkout for [`SUBSCRIPTION_VARIANT`] (a monthly subscription variant) opens
//!   a subscription when paid: [`FakeLemonSqueezy::subscribe`] sends `subscription_created`,
//!   [`FakeLemonSqueezy::renew`] a `subscription_payment_success` (or `_failed`) with
//!   `billing_reason=renewal`, and [`FakeLemonSqueezy::expire`] `subscription_expired` — each with
//!   the checkout's custom data in `meta.custom_data`, as Lemon Squeezy passes it to every
//!   subscription event.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::fake_gateway::{Desk, GatewayFake, Names, Notice, Trade};

pub const API_KEY: &str = "lsq-test-api-key-0123456789";
pub const SIGNING_SECRET: &str = "lemon-signing-secret";
pub const STORE: &str = "12345";
pub const VARIANT: &str = "67890";
pub const SUBSCRIPTION_VARIANT: &str = "67891";

/// The fake; cheap to clone.
#[derive(Clone)]
pub struct FakeLemonSqueezy {
    pub desk: Desk,
}

/// `hex(HMAC-SHA256(secret, body))`, from the rule.
pub fn sign(secret: &str, body: &str) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(body.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

impl FakeLemonSqueezy {
    /// The `order_created` event for a trade: `changes` to the order's attributes (`status`,
    /// `store_id`, `subtotal`), its `id`, or `yiren_order` / `event_name` in `meta`, signed with
    /// `secret`.
    pub fn event(&self, order_ref: &str, changes: &[(&str, &str)], secret: &str) -> Notice {
        let t = self.desk.trade(order_ref).expect("trade");
        let subtotal: i64 = self.desk.money_of(&t).parse().unwrap();
        let mut meta = serde_json::json!({"event_name": "order_created", "test_mode": true, "custom_data": {"yiren_order": t.order_ref}});
        let mut a = serde_json::json!({
            "store_id": STORE.parse::<i64>().unwrap(), "identifier": format!("{}-uuid", t.no), "order_number": t.no.parse::<i64>().unwrap_or(1),
            "user_email": "buyer@example.com", "currency": "CNY", "currency_rate": "1.0000",
            "subtotal": subtotal, "tax": subtotal / 10, "total": subtotal + subtotal / 10, "status": "paid", "refunded": false,
        });
        let mut id = t.no.clone();
        for (k, v) in changes {
            match *k {
                "id" => id = v.to_string(),
                "yiren_order" => meta["custom_data"]["yiren_order"] = (*v).into(),
                "event_name" => meta["event_name"] = (*v).into(),
                "store_id" | "subtotal" => a[*k] = v.parse::<i64>().unwrap().into(),
                _ => a[*k] = (*v).into(),
            }
        }
        let body = serde_json::json!({"meta": meta, "data": {"type": "orders", "id": id, "attributes": a}}).to_string();
        let headers = vec![
            (
                "X-Event-Name".to_string(),
                meta["event_name"].as_str().unwrap_or("").to_string(),
            ),
            ("X-Signature".to_string(), sign(secret, &body)),
        ];
        Notice::raw("application/json", body, headers)
    }
}

impl FakeLemonSqueezy {
    /// A signed subscription event (`event_name`) about the subscription the trade of
    /// `order_ref` opened: `data` of `kind` with `id` and `attributes`.
    fn subscription_notice(
        &self,
        order_ref: &str,
        event_name: &str,
        kind: &str,
        id: &str,
        attributes: serde_json::Value,
    ) -> Notice {
        let meta = serde_json::json!({"event_name": event_name, "test_mode": true, "custom_data": {"yiren_order": order_ref}});
        let body = serde_json::json!({"meta": meta, "data": {"type": kind, "id": id, "attributes": attributes}}).to_string();
        let headers = vec![
            ("X-Event-Name".to_string(), event_name.to_string()),
            ("X-Signature".to_string(), sign(SIGNING_SECRET, &body)),
        ];
        Notice::raw("application/json", body, headers)
    }

    /// The subscription id of the trade of `order_ref` (it must be for the subscription variant).
    pub fn subscription_of(&self, order_ref: &str) -> String {
        let t = self.desk.trade(order_ref).expect("trade");
        assert_eq!(
            t.field("variant"),
            SUBSCRIPTION_VARIANT,
            "order {order_ref} bought no subscription"
        );
        format!("9{}", t.no)
    }

    /// `subscription_created` for the trade of `order_ref`, delivered until acknowledged.
    pub fn subscribe(&self, order_ref: &str) -> String {
        let sub = self.subscription_of(order_ref);
        let a = serde_json::json!({"store_id": STORE.parse::<i64>().unwrap(), "variant_id": SUBSCRIPTION_VARIANT.parse::<i64>().unwrap(), "status": "active", "user_email": "buyer@example.com"});
        let n =
            self.subscription_notice(order_ref, "subscription_created", "subscriptions", &sub, a);
        self.desk
            .deliver(order_ref, &self.desk.endpoint(), n, Self::acked);
        sub
    }

    /// Renewal invoice `n` of the subscription of `order_ref`: paid or failed.
    pub fn renewal_event(&self, order_ref: &str, n: usize, paid: bool) -> Notice {
        let t = self.desk.trade(order_ref).expect("trade");
        let sub = self.subscription_of(order_ref);
        let subtotal: i64 = t.money.parse().unwrap();
        let a = serde_json::json!({
            "store_id": STORE.parse::<i64>().unwrap(), "subscription_id": sub.parse::<i64>().unwrap(),
            "billing_reason": "renewal", "currency": "CNY", "subtotal": subtotal, "tax": subtotal / 10,
            "total": subtotal + subtotal / 10, "status": if paid { "paid" } else { "failed" },
        });
        let name = if paid {
            "subscription_payment_success"
        } else {
            "subscription_payment_failed"
        };
        self.subscription_notice(
            order_ref,
            name,
            "subscription-invoices",
            &format!("{sub}0{n}"),
            a,
        )
    }

    /// Send renewal invoice `n` (paid or failed), delivered until acknowledged.
    pub fn renew(&self, order_ref: &str, n: usize, paid: bool) {
        let notice = self.renewal_event(order_ref, n, paid);
        self.desk
            .deliver(order_ref, &self.desk.endpoint(), notice, Self::acked);
    }

    /// `subscription_expired` for the subscription of `order_ref`.
    pub fn expire(&self, order_ref: &str) {
        let sub = self.subscription_of(order_ref);
        let a = serde_json::json!({"store_id": STORE.parse::<i64>().unwrap(), "status": "expired"});
        let n =
            self.subscription_notice(order_ref, "subscription_expired", "subscriptions", &sub, a);
        self.desk
            .deliver(order_ref, &self.desk.endpoint(), n, Self::acked);
    }
}

impl GatewayFake for FakeLemonSqueezy {
    async fn start() -> FakeLemonSqueezy {
        let desk = Desk::open(STORE, SIGNING_SECRET, &[0, 150, 300, 600], |desk| {
            Router::new()
                .route("/v1/checkouts", post(checkout))
                .route("/checkout/{id}", get(hosted).post(hosted_pay))
                .with_state(FakeLemonSqueezy { desk })
        })
        .await;
        FakeLemonSqueezy { desk }
    }

    fn desk(&self) -> &Desk {
        &self.desk
    }

    fn kind(&self) -> &'static str {
        "lemonsqueezy"
    }

    fn settings(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        (
            BTreeMap::from([
                ("base_url".into(), self.desk.base.clone()),
                ("store_id".into(), STORE.into()),
                ("variant_id".into(), VARIANT.into()),
                (
                    "subscription_variant_id".into(),
                    SUBSCRIPTION_VARIANT.into(),
                ),
                ("currency".into(), "CNY".into()),
            ]),
            BTreeMap::from([
                ("api_key".into(), API_KEY.into()),
                ("signing_secret".into(), SIGNING_SECRET.into()),
            ]),
        )
    }

    fn create_endpoint(&self) -> &'static str {
        "v1/checkouts"
    }

    fn query_endpoint(&self) -> &'static str {
        ""
    }

    fn queries(&self) -> bool {
        false
    }

    fn notice(&self, order_ref: &str, changes: &[(&str, &str)], key: Option<&str>) -> Notice {
        self.event(order_ref, changes, key.unwrap_or(SIGNING_SECRET))
    }

    fn not_paid(&self, order_ref: &str) -> Option<Notice> {
        Some(self.notice(order_ref, &[("status", "pending")], None))
    }

    fn forgeries(&self, order_ref: &str) -> Vec<(&'static str, Notice)> {
        let good = self.notice(order_ref, &[], None);
        let sig = good.headers[1].1.clone();
        let with_sig = |s: Option<String>| {
            let mut n = good.clone();
            match s {
                Some(s) => n.headers[1].1 = s,
                None => n.headers.truncate(1),
            }
            n
        };
        let signed = |body: &str| {
            Notice::raw(
                "application/json",
                body.into(),
                vec![("X-Signature".into(), sign(SIGNING_SECRET, body))],
            )
        };
        vec![
            (
                "wrong secret",
                self.notice(order_ref, &[], Some("not-the-secret")),
            ),
            (
                "subtotal changed after signing",
                Notice {
                    raw: Some((
                        "application/json",
                        good.encoded()
                            .replace("\"subtotal\":9900", "\"subtotal\":1"),
                    )),
                    ..good.clone()
                },
            ),
            (
                "order changed after signing",
                Notice {
                    raw: Some((
                        "application/json",
                        good.encoded().replace(
                            &format!("\"yiren_order\":\"{order_ref}\""),
                            "\"yiren_order\":\"1\"",
                        ),
                    )),
                    ..good.clone()
                },
            ),
            ("no signature", with_sig(None)),
            ("empty signature", with_sig(Some(String::new()))),
            ("upper-case signature", with_sig(Some(sig.to_uppercase()))),
            (
                "unknown order, signed",
                self.notice(order_ref, &[("yiren_order", "424242")], None),
            ),
            (
                "no order id, signed",
                self.notice(order_ref, &[("id", "")], None),
            ),
            ("not JSON, signed", signed("{not json")),
            ("empty, signed", signed("")),
        ]
    }

    fn names(&self) -> Names {
        Names {
            order: "yiren_order",
            amount: "subtotal",
            sign: "X-Signature",
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
        (200, "ok")
    }

    fn acked(status: u16, _body: &str) -> bool {
        status == 200
    }
}

async fn checkout(
    State(fake): State<FakeLemonSqueezy>,
    headers: HeaderMap,
    body: String,
) -> Response {
    fake.desk.record("v1/checkouts");
    let error = |status: StatusCode, detail: &str| {
        (status, Json(serde_json::json!({"errors": [{"status": status.as_u16().to_string(), "detail": detail}]}))).into_response()
    };
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {API_KEY}"))
    {
        return error(StatusCode::UNAUTHORIZED, "Unauthenticated.");
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let d = &v["data"];
    let a = &d["attributes"];
    let price = a["custom_price"].as_i64().unwrap_or(0);
    let order = a["checkout_data"]["custom"]["yiren_order"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let valid = d["type"] == "checkouts"
        && d["relationships"]["store"]["data"]["id"] == STORE
        && (d["relationships"]["variant"]["data"]["id"] == VARIANT
            || d["relationships"]["variant"]["data"]["id"] == SUBSCRIPTION_VARIANT)
        && price > 0
        && !order.is_empty()
        && a["product_options"]["redirect_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http"));
    if !valid {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "The data is invalid.");
    }
    let endpoint = fake.desk.endpoint();
    let t = Trade {
        no: String::new(),
        order_ref: order,
        merchant: STORE.into(),
        money: price.to_string(),
        notify_url: endpoint,
        return_url: a["product_options"]["redirect_url"]
            .as_str()
            .unwrap_or("")
            .into(),
        via: "v1/checkouts",
        sent: BTreeMap::from([(
            "variant".to_string(),
            d["relationships"]["variant"]["data"]["id"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        )]),
        paid: false,
        answers: vec![],
    };
    match fake.desk.open_trade(t, "") {
        Ok(t) => (StatusCode::CREATED, Json(serde_json::json!({"data": {"type": "checkouts", "id": format!("chk-{}", t.no), "attributes": {
            "store_id": STORE.parse::<i64>().unwrap(), "variant_id": VARIANT.parse::<i64>().unwrap(), "custom_price": price,
            "url": format!("{}checkout/{}", fake.desk.base, t.no),
        }}}))).into_response(),
        Err(_) => error(StatusCode::UNPROCESSABLE_ENTITY, "Already paid."),
    }
}

async fn hosted(State(fake): State<FakeLemonSqueezy>, Path(no): Path<String>) -> Response {
    match fake.desk.trades().into_iter().find(|t| t.no == no) {
        Some(t) => Html(format!("<!doctype html><title>Lemon Squeezy</title><p id=\"lemon-price\">{}</p><form method=\"post\"><button id=\"lemon-pay\">Pay</button></form>", t.money)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn hosted_pay(State(fake): State<FakeLemonSqueezy>, Path(no): Path<String>) -> Response {
    match fake.desk.trades().into_iter().find(|t| t.no == no) {
        Some(t) => Redirect::to(&fake.pay(&t.order_ref)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
