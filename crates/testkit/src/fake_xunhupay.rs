//! A fake 虎皮椒 (xunhupay), written from the protocol rules in `shared/specs/payments.md` §2.3
//! (its own hashing code):
//!
//! - `POST /payment/do.html` checks the app, the hash (non-empty parameters but `hash`, sorted,
//!   `k=v&…`, secret appended, MD5 lowercase), `version`, `trade_order_id` (≤ 32), `total_fee`
//!   (yuan), `title`, `time`, `notify_url`, `nonce_str`; answers `{errcode: 0, errmsg, openid,
//!   url, url_qrcode, hash}` — its answer hashed too — where `url` is the fake's payment page;
//!   the same `trade_order_id` again is the same payment.
//! - Paying (the page's button, or [`GatewayFake::pay`]) sends the customer back to
//!   `return_url` and POSTs the hashed notification (`status=OD`) until an answer is `success`,
//!   at most five times (the official demo's "最多5次"; time compressed).
//! - `POST /payment/query.html` (hashed) → `{errcode: 0, data: {status: OD|WP}}`, or errcode
//!   404 for an order it does not know.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use md5::{Digest, Md5};

use crate::fake_epay::apply;
use crate::fake_gateway::{first_missing, is_yuan, Desk, GatewayFake, Names, Notice, Trade};

pub const APPID: &str = "201906120001";
pub const SECRET: &str = "xunhu-secret-0123456789";

/// The fake; cheap to clone.
#[derive(Clone)]
pub struct FakeXunhupay {
    pub desk: Desk,
}

/// The hash rule, written here from the documentation (not shared with the code under test).
pub fn hash(params: &[(String, String)], secret: &str) -> String {
    let mut kept: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, v)| k.as_str() != "hash" && !v.is_empty())
        .collect();
    kept.sort();
    let joined: Vec<String> = kept.iter().map(|(k, v)| format!("{k}={v}")).collect();
    hex::encode(Md5::digest(
        format!("{}{secret}", joined.join("&")).as_bytes(),
    ))
}

/// An answer with its hash.
fn hashed(mut v: serde_json::Value, secret: &str) -> serde_json::Value {
    let flat: Vec<(String, String)> = v
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(k, x)| match x {
            serde_json::Value::String(s) => Some((k.clone(), s.clone())),
            serde_json::Value::Number(n) => Some((k.clone(), n.to_string())),
            _ => None,
        })
        .collect();
    v["hash"] = hash(&flat, secret).into();
    v
}

impl FakeXunhupay {
    fn by_no(&self, no: &str) -> Option<Trade> {
        self.desk.trades().into_iter().find(|t| t.no == no)
    }

    /// Check a hashed request; the app's secret.
    fn check(&self, p: &BTreeMap<String, String>) -> Result<String, (i64, &'static str)> {
        let appid = p.get("appid").cloned().unwrap_or_default();
        let Some(secret) = self.desk.key(&appid) else {
            return Err((40029, "appid 不存在"));
        };
        let list: Vec<(String, String)> = p.clone().into_iter().collect();
        if p.get("hash") != Some(&hash(&list, &secret)) {
            return Err((40029, "hash 校验失败"));
        }
        if first_missing(p, &["time", "nonce_str"]).is_some() {
            return Err((40001, "参数缺失"));
        }
        Ok(secret)
    }

    fn open(&self, p: BTreeMap<String, String>) -> Result<(Trade, String), (i64, &'static str)> {
        let secret = self.check(&p)?;
        if first_missing(
            &p,
            &[
                "version",
                "trade_order_id",
                "total_fee",
                "title",
                "notify_url",
            ],
        )
        .is_some()
        {
            return Err((40001, "参数缺失"));
        }
        let get = |k: &str| p.get(k).cloned().unwrap_or_default();
        if get("trade_order_id").len() > 32 {
            return Err((40001, "订单号过长"));
        }
        if !is_yuan(&get("total_fee")) {
            return Err((40001, "金额错误"));
        }
        let t = Trade {
            no: String::new(),
            order_ref: get("trade_order_id"),
            merchant: get("appid"),
            money: get("total_fee"),
            notify_url: get("notify_url"),
            return_url: get("return_url"),
            via: "payment/do.html",
            sent: p,
            paid: false,
            answers: vec![],
        };
        let t = self
            .desk
            .open_trade(t, "2026112")
            .map_err(|_| (40003, "订单已支付"))?;
        Ok((t, secret))
    }
}

impl GatewayFake for FakeXunhupay {
    async fn start() -> FakeXunhupay {
        let desk = Desk::open(APPID, SECRET, &[0, 150, 300, 600, 1200], |desk| {
            Router::new()
                .route("/payment/do.html", post(pay))
                .route("/payment/query.html", post(query))
                .route("/pay/{no}", get(pay_page).post(pay_now))
                .with_state(FakeXunhupay { desk })
        })
        .await;
        FakeXunhupay { desk }
    }

    fn desk(&self) -> &Desk {
        &self.desk
    }

    fn kind(&self) -> &'static str {
        "xunhupay"
    }

    fn settings(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let (appid, secret) = self.desk.merchant();
        (
            BTreeMap::from([
                ("base_url".into(), self.desk.base.clone()),
                ("appid".into(), appid),
            ]),
            BTreeMap::from([("appsecret".into(), secret)]),
        )
    }

    fn create_endpoint(&self) -> &'static str {
        "payment/do.html"
    }

    fn query_endpoint(&self) -> &'static str {
        "payment/query.html"
    }

    fn notice(&self, order_ref: &str, changes: &[(&str, &str)], key: Option<&str>) -> Notice {
        let t = self.desk.trade(order_ref).expect("trade");
        let mut p: Vec<(String, String)> = vec![
            ("trade_order_id".into(), t.order_ref.clone()),
            ("total_fee".into(), self.desk.money_of(&t)),
            ("transaction_id".into(), format!("4200{}", t.no)),
            ("open_order_id".into(), t.no.clone()),
            ("order_title".into(), t.field("title").into()),
            ("status".into(), "OD".into()),
            ("plugins".into(), String::new()),
            ("attach".into(), String::new()),
            ("appid".into(), t.merchant.clone()),
            ("time".into(), "1795000000".into()),
            ("nonce_str".into(), format!("n{}", t.no)),
        ];
        apply(&mut p, changes);
        let key = key
            .map(String::from)
            .unwrap_or_else(|| self.desk.key(&t.merchant).unwrap());
        let h = hash(&p, &key);
        p.push(("hash".into(), h));
        Notice::form(true, p)
    }

    fn not_paid(&self, order_ref: &str) -> Option<Notice> {
        Some(self.notice(order_ref, &[("status", "WP")], None))
    }

    fn forged(&self, order_ref: &str) -> Vec<(&'static str, Notice)> {
        vec![
            (
                "status changed after signing",
                self.notice(order_ref, &[("status", "WP")], None)
                    .with("status", Some("OD")),
            ),
            (
                "another app",
                self.notice(order_ref, &[("appid", "201906120002")], None),
            ),
        ]
    }

    fn names(&self) -> Names {
        Names {
            order: "trade_order_id",
            amount: "total_fee",
            sign: "hash",
            text: "order_title",
        }
    }

    fn ack(&self) -> (u16, &'static str) {
        (200, "success")
    }

    fn acked(_status: u16, body: &str) -> bool {
        body.trim() == "success"
    }
}

async fn pay(
    State(fake): State<FakeXunhupay>,
    Form(p): Form<BTreeMap<String, String>>,
) -> Response {
    fake.desk.record("payment/do.html");
    match fake.open(p) {
        Ok((t, secret)) => Json(hashed(
            serde_json::json!({
                "openid": t.no, "errcode": 0, "errmsg": "success!",
                "url": format!("{}pay/{}", fake.desk.base, t.no),
                "url_qrcode": format!("{}qrcode/{}.png", fake.desk.base, t.no),
            }),
            &secret,
        ))
        .into_response(),
        Err((code, msg)) => {
            Json(serde_json::json!({"errcode": code, "errmsg": msg})).into_response()
        }
    }
}

async fn query(
    State(fake): State<FakeXunhupay>,
    Form(p): Form<BTreeMap<String, String>>,
) -> Response {
    fake.desk.record("payment/query.html");
    let secret = match fake.check(&p) {
        Ok(s) => s,
        Err((code, msg)) => {
            return Json(serde_json::json!({"errcode": code, "errmsg": msg})).into_response()
        }
    };
    let order = p.get("out_trade_order").cloned().unwrap_or_default();
    match fake.desk.trade(&order) {
        None => Json(serde_json::json!({"errcode": 404, "errmsg": "订单不存在"})).into_response(),
        Some(t) => Json(hashed(
            serde_json::json!({
                "errcode": 0, "errmsg": "success!",
                "data": {"status": if t.paid { "OD" } else { "WP" }, "open_order_id": t.no},
            }),
            &secret,
        ))
        .into_response(),
    }
}

async fn pay_page(State(fake): State<FakeXunhupay>, Path(no): Path<String>) -> Response {
    match fake.by_no(&no) {
        Some(t) => Html(format!(
            "<!doctype html><title>虎皮椒</title><p id=\"xunhu-money\">¥{}</p>\
             <form method=\"post\"><button id=\"xunhu-pay\">支付</button></form>",
            t.money
        ))
        .into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

async fn pay_now(State(fake): State<FakeXunhupay>, Path(no): Path<String>) -> Response {
    match fake.by_no(&no) {
        Some(t) => Redirect::to(&fake.pay(&t.order_ref)).into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}
