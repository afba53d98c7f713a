//! A fake EPay (彩虹易支付) aggregator, written from the protocol rules in
//! `shared/specs/payments.md` §2.1 — its own signing code, so a mistake in Yiren's is caught:
//!
//! - `submit.php` (GET or POST) and `mapi.php` (POST) check the merchant, the `MD5` signature
//!   (sorted names, `sign`/`sign_type`/empty values left out, raw values, key appended, lowercase
//!   hex), `out_trade_no` (`^[a-zA-Z0-9._\-|]+$`) and `money` (yuan, > 0); `submit.php` answers
//!   with a cashier page, `mapi.php` with `{code: 1, trade_no, qrcode}` (the QR opens the cashier)
//!   — or `payurl` when set so. The same `out_trade_no` again is the same trade.
//! - The cashier's pay button (or [`GatewayFake::pay`]) marks the trade paid, sends the customer
//!   back to `return_url` with the signed query, and notifies `notify_url` by GET with the signed
//!   query, again on its retry schedule (compressed; the real one is not documented) until an
//!   answer contains `success`. Every answer is recorded.
//! - `api.php?act=order` answers queries (`code` 1, 0 not found, -2 wrong key, -3 no merchant).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use md5::{Digest, Md5};

use crate::fake_gateway::{first_missing, Desk, GatewayFake, Names, Notice, Trade};

/// The merchant and key the shared suite uses.
pub const PID: &str = "1001";
pub const KEY: &str = "k3Y-epay-0123456789abcdef";

/// The fake; cheap to clone.
#[derive(Clone)]
pub struct FakeEpay {
    pub desk: Desk,
    pay_url: Arc<AtomicBool>,
    /// `api` (mapi.php, a QR code on the shop's page) or `page` (submit.php) — how the suite
    /// configures the gateway.
    pub mode: &'static str,
}

/// The protocol's signature, written here from the rule (not shared with the code under test).
pub fn sign(params: &[(String, String)], key: &str) -> String {
    let mut kept: Vec<(String, String)> = params
        .iter()
        .filter(|(k, v)| k != "sign" && k != "sign_type" && !v.is_empty())
        .cloned()
        .collect();
    kept.sort();
    let mut s = String::new();
    for (i, (k, v)) in kept.iter().enumerate() {
        if i > 0 {
            s.push('&');
        }
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
    s.push_str(key);
    let digest = Md5::digest(s.as_bytes());
    hex::encode(digest)
}

impl FakeEpay {
    /// Start on a random loopback port with one merchant.
    pub async fn start(pid: &str, key: &str) -> FakeEpay {
        let pay_url = Arc::new(AtomicBool::new(false));
        let flag = pay_url.clone();
        let desk = Desk::open(pid, key, &[0, 150, 300, 600, 1200], move |desk| {
            Router::new()
                .route("/submit.php", get(submit_get).post(submit_post))
                .route("/mapi.php", post(mapi))
                .route("/api.php", get(api))
                .route("/cashier/{trade_no}", get(cashier))
                .route("/cashier/{trade_no}/pay", post(cashier_pay))
                .with_state(FakeEpay {
                    desk,
                    pay_url: flag,
                    mode: "api",
                })
        })
        .await;
        FakeEpay {
            desk,
            pay_url,
            mode: "api",
        }
    }

    /// The same aggregator, configured by the suite in page mode.
    pub fn in_page_mode(mut self) -> FakeEpay {
        self.mode = "page";
        self
    }

    /// mapi.php answers with `payurl` instead of `qrcode`.
    pub fn set_pay_url(&self, on: bool) {
        self.pay_url.store(on, Ordering::Relaxed);
    }

    /// Check a create request; the trade (new, or the one already opened for its out_trade_no).
    fn open(&self, p: &[(String, String)], via: &'static str) -> Result<Trade, String> {
        let sent: BTreeMap<String, String> = p.iter().cloned().collect();
        let get = |k: &str| sent.get(k).cloned().unwrap_or_default();
        let Some(key) = self.desk.key(&get("pid")) else {
            return Err("商户不存在".into());
        };
        if get("sign_type") != "MD5" || get("sign") != sign(p, &key) {
            return Err("签名校验失败".into());
        }
        let mut need = vec!["type", "out_trade_no", "notify_url", "name", "money"];
        if via == "mapi.php" {
            need.push("clientip");
        }
        if let Some(k) = first_missing(&sent, &need) {
            return Err(format!("{k} 不能为空"));
        }
        let otn = get("out_trade_no");
        if !otn
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-|".contains(c))
        {
            return Err("订单号格式错误".into());
        }
        let money = get("money");
        let valid_money = money.chars().all(|c| c.is_ascii_digit() || c == '.')
            && money.parse::<f64>().is_ok_and(|m| m > 0.0);
        if !valid_money {
            return Err("金额不合法".into());
        }
        let t = Trade {
            no: String::new(),
            order_ref: otn,
            merchant: get("pid"),
            money,
            notify_url: get("notify_url"),
            return_url: get("return_url"),
            via,
            sent,
            paid: false,
            answers: vec![],
        };
        self.desk
            .open_trade(t, "2026")
            .map_err(|_| "该订单已支付".to_string())
    }

    fn by_no(&self, trade_no: &str) -> Option<Trade> {
        self.desk.trades().into_iter().find(|t| t.no == trade_no)
    }
}

impl GatewayFake for FakeEpay {
    async fn start() -> FakeEpay {
        FakeEpay::start(PID, KEY).await
    }

    fn desk(&self) -> &Desk {
        &self.desk
    }

    fn kind(&self) -> &'static str {
        "epay"
    }

    fn settings(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let (pid, key) = self.desk.merchant();
        (
            BTreeMap::from([
                ("base_url".into(), self.desk.base.clone()),
                ("pid".into(), pid),
                ("type".into(), "alipay".into()),
                ("mode".into(), self.mode.into()),
            ]),
            BTreeMap::from([("key".into(), key)]),
        )
    }

    fn create_endpoint(&self) -> &'static str {
        if self.mode == "page" {
            "submit.php"
        } else {
            "mapi.php"
        }
    }

    fn query_endpoint(&self) -> &'static str {
        "api.php?act=order"
    }

    fn notice(&self, order_ref: &str, changes: &[(&str, &str)], key: Option<&str>) -> Notice {
        let t = self.desk.trade(order_ref).expect("trade");
        let mut p: Vec<(String, String)> = vec![
            ("pid".into(), t.merchant.clone()),
            ("trade_no".into(), t.no.clone()),
            ("out_trade_no".into(), t.order_ref.clone()),
            ("type".into(), t.field("type").into()),
            ("name".into(), t.field("name").into()),
            ("money".into(), self.desk.money_of(&t)),
            ("trade_status".into(), "TRADE_SUCCESS".into()),
        ];
        apply(&mut p, changes);
        let key = key
            .map(String::from)
            .unwrap_or_else(|| self.desk.key(&t.merchant).unwrap());
        let s = sign(&p, &key);
        p.push(("sign".into(), s));
        p.push(("sign_type".into(), "MD5".into()));
        Notice::form(false, p)
    }

    fn not_paid(&self, order_ref: &str) -> Option<Notice> {
        Some(self.notice(order_ref, &[("trade_status", "WAIT_BUYER_PAY")], None))
    }

    fn forged(&self, order_ref: &str) -> Vec<(&'static str, Notice)> {
        let good = self.notice(order_ref, &[], None);
        vec![
            (
                "status changed after signing",
                self.not_paid(order_ref)
                    .unwrap()
                    .with("trade_status", Some("TRADE_SUCCESS")),
            ),
            ("another sign_type", good.with("sign_type", Some("RSA"))),
            (
                "another merchant",
                self.notice(order_ref, &[("pid", "2002")], None),
            ),
        ]
    }

    fn names(&self) -> Names {
        Names {
            order: "out_trade_no",
            amount: "money",
            sign: "sign",
            text: "name",
        }
    }

    fn ack(&self) -> (u16, &'static str) {
        (200, "success")
    }

    fn acked(_status: u16, body: &str) -> bool {
        body.contains("success")
    }

    fn signed_return(&self) -> bool {
        true
    }
}

/// Apply `changes` to `p` (set, or add when absent).
pub fn apply(p: &mut Vec<(String, String)>, changes: &[(&str, &str)]) {
    for (k, v) in changes {
        match p.iter_mut().find(|(n, _)| n == k) {
            Some(x) => x.1 = v.to_string(),
            None => p.push((k.to_string(), v.to_string())),
        }
    }
}

fn cashier_page(t: &Trade) -> Response {
    Html(format!(
        "<!doctype html><html><head><title>EPay cashier</title></head><body>\
         <h1 id=\"epay-cashier\">{}</h1><p id=\"epay-money\">¥{}</p>\
         <form method=\"post\" action=\"/cashier/{}/pay\"><button type=\"submit\" id=\"epay-pay\">Pay</button></form>\
         </body></html>",
        t.field("name"),
        t.money,
        t.no
    ))
    .into_response()
}

async fn submit(fake: FakeEpay, p: Vec<(String, String)>) -> Response {
    fake.desk.record("submit.php");
    match fake.open(&p, "submit.php") {
        Ok(t) => cashier_page(&t),
        Err(msg) => (
            StatusCode::BAD_REQUEST,
            Html(format!("<p id=\"epay-error\">{msg}</p>")),
        )
            .into_response(),
    }
}

async fn submit_get(State(fake): State<FakeEpay>, RawQuery(q): RawQuery) -> Response {
    let p: Vec<(String, String)> =
        serde_urlencoded::from_str(&q.unwrap_or_default()).unwrap_or_default();
    submit(fake, p).await
}

async fn submit_post(
    State(fake): State<FakeEpay>,
    Form(p): Form<Vec<(String, String)>>,
) -> Response {
    submit(fake, p).await
}

async fn mapi(State(fake): State<FakeEpay>, Form(p): Form<Vec<(String, String)>>) -> Response {
    fake.desk.record("mapi.php");
    match fake.open(&p, "mapi.php") {
        Ok(t) => {
            let link = format!("{}cashier/{}", fake.desk.base, t.no);
            let pay_url = fake.pay_url.load(Ordering::Relaxed);
            let mut body = serde_json::json!({"code": 1, "msg": "succ", "trade_no": t.no});
            body[if pay_url { "payurl" } else { "qrcode" }] = link.into();
            Json(body).into_response()
        }
        Err(msg) => Json(serde_json::json!({"code": -1, "msg": msg})).into_response(),
    }
}

async fn api(State(fake): State<FakeEpay>, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    fake.desk.record(format!("api.php?act={}", get("act")));
    if get("act") != "order" {
        return Json(serde_json::json!({"code": -5, "msg": "act 错误"})).into_response();
    }
    let Some(key) = fake.desk.key(&get("pid")) else {
        return Json(serde_json::json!({"code": -3, "msg": "商户不存在"})).into_response();
    };
    if key != get("key") {
        return Json(serde_json::json!({"code": -2, "msg": "KEY校验失败"})).into_response();
    }
    let found = fake.desk.trades().into_iter().find(|t| {
        t.merchant == get("pid")
            && ((!get("out_trade_no").is_empty() && t.order_ref == get("out_trade_no"))
                || (!get("trade_no").is_empty() && t.no == get("trade_no")))
    });
    match found {
        None => Json(serde_json::json!({"code": 0, "msg": "订单号不存在"})).into_response(),
        Some(t) => Json(serde_json::json!({
            "code": 1, "msg": "查询订单号成功！", "trade_no": t.no, "out_trade_no": t.order_ref,
            "type": t.field("type"), "pid": t.merchant, "name": t.field("name"), "money": t.money,
            "status": if t.paid { 1 } else { 0 },
        }))
        .into_response(),
    }
}

async fn cashier(State(fake): State<FakeEpay>, Path(trade_no): Path<String>) -> Response {
    match fake.by_no(&trade_no) {
        Some(t) => cashier_page(&t),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn cashier_pay(State(fake): State<FakeEpay>, Path(trade_no): Path<String>) -> Response {
    let Some(t) = fake.by_no(&trade_no) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let back = fake.pay(&t.order_ref);
    Redirect::to(&back).into_response()
}
