//! A fake XorPay, written from the protocol rules in `shared/specs/payments.md` §2.2 (its own
//! signing code):
//!
//! - `POST /api/pay/{aid}` checks the app, the fixed-order signature
//!   `md5(name + pay_type + price + order_id + notify_url + secret)`, `pay_type` and `price`
//!   (yuan, two decimals, > 0); answers `{"status": "ok", "aoid", "expires_in", "info": {"qr"}}`
//!   (the QR opens the fake's pay page) or the documented error status (`sign_error`,
//!   `aid_not_exist`, `missing_argument`, `pay_type_error`, `order_exist`, `order_payed`).
//! - Paying (the pay page's button, or [`GatewayFake::pay`]) POSTs the notification form
//!   `aoid, order_id, pay_price, pay_time, more, detail, sign` with
//!   `sign = md5(aoid + order_id + pay_price + pay_time + secret)`, again on its schedule until
//!   an answer is 200.
//! - `GET /api/query2/{aid}?order_id=&sign=md5(order_id + secret)` → `not_exist`, `new`,
//!   `payed` (paid, notification not acknowledged) or `success`.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use md5::{Digest, Md5};

use crate::fake_epay::apply;
use crate::fake_gateway::{first_missing, is_yuan, Desk, GatewayFake, Names, Notice, Trade};

pub const AID: &str = "8848";
pub const SECRET: &str = "xor-secret-0123456789";

/// The fake; cheap to clone.
#[derive(Clone)]
pub struct FakeXorpay {
    pub desk: Desk,
}

fn md5(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

impl FakeXorpay {
    fn by_aoid(&self, aoid: &str) -> Option<Trade> {
        self.desk.trades().into_iter().find(|t| t.no == aoid)
    }

    fn open(&self, aid: &str, p: BTreeMap<String, String>) -> Result<Trade, &'static str> {
        let get = |k: &str| p.get(k).cloned().unwrap_or_default();
        let Some(secret) = self.desk.key(aid) else {
            return Err("aid_not_exist");
        };
        if first_missing(
            &p,
            &[
                "name",
                "pay_type",
                "price",
                "order_id",
                "notify_url",
                "sign",
            ],
        )
        .is_some()
        {
            return Err("missing_argument");
        }
        let expected = md5(&format!(
            "{}{}{}{}{}{secret}",
            get("name"),
            get("pay_type"),
            get("price"),
            get("order_id"),
            get("notify_url")
        ));
        if get("sign") != expected {
            return Err("sign_error");
        }
        if !["native", "alipay", "jsapi"].contains(&get("pay_type").as_str()) {
            return Err("pay_type_error");
        }
        if !is_yuan(&get("price")) {
            return Err("fee_error");
        }
        if let Some(old) = self.desk.trade(&get("order_id")) {
            return Err(if old.paid {
                "order_payed"
            } else {
                "order_exist"
            });
        }
        let t = Trade {
            no: String::new(),
            order_ref: get("order_id"),
            merchant: aid.into(),
            money: get("price"),
            notify_url: get("notify_url"),
            return_url: String::new(),
            via: "api/pay",
            sent: p,
            paid: false,
            answers: vec![],
        };
        self.desk.open_trade(t, "xor").map_err(|_| "order_payed")
    }
}

impl GatewayFake for FakeXorpay {
    async fn start() -> FakeXorpay {
        let desk = Desk::open(AID, SECRET, &[0, 150, 300, 600, 1200], |desk| {
            Router::new()
                .route("/api/pay/{aid}", post(pay))
                .route("/api/query2/{aid}", get(query2))
                .route("/pay/{aoid}", get(pay_page).post(pay_now))
                .with_state(FakeXorpay { desk })
        })
        .await;
        FakeXorpay { desk }
    }

    fn desk(&self) -> &Desk {
        &self.desk
    }

    fn kind(&self) -> &'static str {
        "xorpay"
    }

    fn settings(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let (aid, secret) = self.desk.merchant();
        (
            BTreeMap::from([
                ("base_url".into(), self.desk.base.clone()),
                ("aid".into(), aid),
                ("pay_type".into(), "native".into()),
            ]),
            BTreeMap::from([("secret".into(), secret)]),
        )
    }

    fn create_endpoint(&self) -> &'static str {
        "api/pay"
    }

    fn query_endpoint(&self) -> &'static str {
        "api/query2"
    }

    fn notice(&self, order_ref: &str, changes: &[(&str, &str)], key: Option<&str>) -> Notice {
        let t = self.desk.trade(order_ref).expect("trade");
        let mut p: Vec<(String, String)> = vec![
            ("aoid".into(), t.no.clone()),
            ("order_id".into(), t.order_ref.clone()),
            ("pay_price".into(), self.desk.money_of(&t)),
            ("pay_time".into(), "2026-11-28 10:00:00".into()),
            ("more".into(), String::new()),
            ("detail".into(), "{\"transaction_id\": \"4200001\"}".into()),
        ];
        apply(&mut p, changes);
        let key = key
            .map(String::from)
            .unwrap_or_else(|| self.desk.key(&t.merchant).unwrap());
        let get = |k: &str| p.iter().find(|(n, _)| n == k).unwrap().1.clone();
        let sign = md5(&format!(
            "{}{}{}{}{key}",
            get("aoid"),
            get("order_id"),
            get("pay_price"),
            get("pay_time")
        ));
        p.push(("sign".into(), sign));
        Notice::form(true, p)
    }

    fn not_paid(&self, _order_ref: &str) -> Option<Notice> {
        // XorPay notifies payments only.
        None
    }

    fn forged(&self, order_ref: &str) -> Vec<(&'static str, Notice)> {
        let good = self.notice(order_ref, &[], None);
        vec![
            (
                "aoid changed after signing",
                good.with("aoid", Some("xor9999999999")),
            ),
            (
                "pay_time changed after signing",
                good.with("pay_time", Some("2026-11-29 10:00:00")),
            ),
        ]
    }

    fn names(&self) -> Names {
        Names {
            order: "order_id",
            amount: "pay_price",
            sign: "sign",
            text: "detail",
        }
    }

    fn ack(&self) -> (u16, &'static str) {
        (200, "ok")
    }

    fn acked(status: u16, _body: &str) -> bool {
        status == 200
    }
}

async fn pay(
    State(fake): State<FakeXorpay>,
    Path(aid): Path<String>,
    Form(p): Form<BTreeMap<String, String>>,
) -> Response {
    fake.desk.record("api/pay");
    match fake.open(&aid, p) {
        Ok(t) => Json(serde_json::json!({
            "status": "ok", "aoid": t.no, "expires_in": 7200,
            "info": {"qr": format!("{}pay/{}", fake.desk.base, t.no)},
        }))
        .into_response(),
        Err(status) => Json(serde_json::json!({"status": status})).into_response(),
    }
}

async fn query2(
    State(fake): State<FakeXorpay>,
    Path(aid): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    fake.desk.record("api/query2");
    let order_id = q.get("order_id").cloned().unwrap_or_default();
    let Some(secret) = fake.desk.key(&aid) else {
        return Json(serde_json::json!({"status": "aid_not_exist"})).into_response();
    };
    if q.get("sign") != Some(&md5(&format!("{order_id}{secret}"))) {
        return Json(serde_json::json!({"status": "sign_error"})).into_response();
    }
    let status = match fake.desk.trade(&order_id) {
        None => "not_exist",
        Some(t) if !t.paid => "new",
        Some(t) if t.answers.iter().any(|(s, _)| *s == 200) => "success",
        Some(_) => "payed",
    };
    Json(serde_json::json!({"status": status})).into_response()
}

async fn pay_page(State(fake): State<FakeXorpay>, Path(aoid): Path<String>) -> Response {
    match fake.by_aoid(&aoid) {
        Some(t) => Html(format!(
            "<!doctype html><title>XorPay</title><p id=\"xorpay-money\">¥{}</p>\
             <form method=\"post\"><button id=\"xorpay-pay\">支付</button></form>",
            t.money
        ))
        .into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

async fn pay_now(State(fake): State<FakeXorpay>, Path(aoid): Path<String>) -> Response {
    match fake.by_aoid(&aoid) {
        Some(t) => {
            fake.pay(&t.order_ref);
            Html("<p id=\"xorpay-done\">支付成功</p>").into_response()
        }
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}
