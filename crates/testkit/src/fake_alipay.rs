//! A fake Alipay open platform, written from the rules in `shared/specs/payments.md` §2.5 (its
//! own RSA2 code, on keys it makes at start):
//!
//! - `POST /gateway.do` checks the app's SHA256withRSA signature (every non-empty parameter but
//!   `sign`, `sign_type` included, sorted, raw values) with the app's public key, then runs
//!   `alipay.trade.precreate` (a QR code that opens the fake's pay page), `alipay.trade.query` and
//!   `alipay.trade.refund` (once per `out_request_no`, never more than was paid). Answers are
//!   `{"<method>_response": {…}, "sign": …}`, the node signed with Alipay's private key; a bad
//!   signature gets code 40002 unsigned.
//! - `GET /gateway.do` (page and wap pay) checks the same signature and shows a cashier page.
//! - Paying POSTs the notification (`trade_status=TRADE_SUCCESS`, signed over everything but
//!   `sign` and `sign_type`) until the answer is exactly `success`, and sends the customer to
//!   `return_url`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use base64::Engine as _;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::{Signer, Verifier};

use crate::fake_epay::apply;
use crate::fake_gateway::{is_yuan, Desk, GatewayFake, Names, Notice, Trade};

pub const APP_ID: &str = "2021000123456789";

/// The fake; cheap to clone.
#[derive(Clone)]
pub struct FakeAlipay {
    pub desk: Desk,
    keys: Arc<Keys>,
    refunds: Arc<Mutex<Vec<(String, String)>>>,
}

struct Keys {
    /// Alipay's own pair (the public half goes into the shop's settings).
    alipay: PKey<Private>,
    /// The app's pair (the private half goes into the shop's settings).
    app: PKey<Private>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The text Alipay signs: non-empty parameters but `skip`, sorted, `k=v&…`, raw values.
pub fn signed_text(p: &[(String, String)], skip: &[&str]) -> String {
    let mut kept: Vec<String> = p
        .iter()
        .filter(|(k, v)| !v.is_empty() && !skip.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    kept.sort();
    kept.join("&")
}

fn sign_with(key: &PKey<Private>, text: &str) -> String {
    let mut s = Signer::new(MessageDigest::sha256(), key).unwrap();
    s.update(text.as_bytes()).unwrap();
    b64(&s.sign_to_vec().unwrap())
}

impl FakeAlipay {
    /// Sign as Alipay does (for tests that forge or roll their own).
    pub fn sign(&self, text: &str) -> String {
        sign_with(&self.keys.alipay, text)
    }

    /// Refunds made: (out_request_no, amount).
    pub fn refunds(&self) -> Vec<(String, String)> {
        self.refunds.lock().unwrap().clone()
    }

    fn app_signed(&self, p: &BTreeMap<String, String>) -> bool {
        let list: Vec<(String, String)> = p.clone().into_iter().collect();
        let Ok(sig) = base64::engine::general_purpose::STANDARD
            .decode(p.get("sign").map(String::as_str).unwrap_or(""))
        else {
            return false;
        };
        let mut v = Verifier::new(MessageDigest::sha256(), &self.keys.app).unwrap();
        v.update(signed_text(&list, &["sign"]).as_bytes()).unwrap();
        p.get("sign_type").map(String::as_str) == Some("RSA2")
            && p.get("app_id").map(String::as_str) == Some(APP_ID)
            && v.verify(&sig).unwrap_or(false)
    }

    /// An answer: the node signed with Alipay's key (or unsigned when `signed` is false).
    fn answer(&self, method: &str, node: serde_json::Value, signed: bool) -> Response {
        let node = node.to_string();
        let name = format!("{}_response", method.replace('.', "_"));
        let body = if signed {
            format!("{{\"{name}\":{node},\"sign\":\"{}\"}}", self.sign(&node))
        } else {
            format!("{{\"{name}\":{node}}}")
        };
        ([("content-type", "application/json;charset=utf-8")], body).into_response()
    }

    fn open(&self, p: &BTreeMap<String, String>, via: &'static str) -> Result<Trade, &'static str> {
        let biz: serde_json::Value =
            serde_json::from_str(p.get("biz_content").map(String::as_str).unwrap_or(""))
                .map_err(|_| "biz_content")?;
        let text = |k: &str| biz[k].as_str().unwrap_or("").to_string();
        if text("out_trade_no").is_empty()
            || text("subject").is_empty()
            || !is_yuan(&text("total_amount"))
        {
            return Err("ACQ.INVALID_PARAMETER");
        }
        let mut sent = p.clone();
        sent.insert("subject".into(), text("subject"));
        let t = Trade {
            no: String::new(),
            order_ref: text("out_trade_no"),
            merchant: APP_ID.into(),
            money: text("total_amount"),
            notify_url: p.get("notify_url").cloned().unwrap_or_default(),
            return_url: p.get("return_url").cloned().unwrap_or_default(),
            via,
            sent,
            paid: false,
            answers: vec![],
        };
        self.desk
            .open_trade(t, "2026112822001")
            .map_err(|_| "ACQ.TRADE_HAS_SUCCESS")
    }
}

impl GatewayFake for FakeAlipay {
    async fn start() -> FakeAlipay {
        let keys = Arc::new(Keys {
            alipay: PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap(),
            app: PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap(),
        });
        let refunds = Arc::new(Mutex::new(vec![]));
        let (k, r) = (keys.clone(), refunds.clone());
        let desk = Desk::open(APP_ID, "rsa", &[0, 150, 300, 600, 1200], |desk| {
            Router::new()
                .route("/gateway.do", get(cashier).post(gateway))
                .route("/pay/{no}", get(pay_page).post(pay_now))
                .with_state(FakeAlipay {
                    desk,
                    keys: k,
                    refunds: r,
                })
        })
        .await;
        FakeAlipay {
            desk,
            keys,
            refunds,
        }
    }

    fn desk(&self) -> &Desk {
        &self.desk
    }

    fn kind(&self) -> &'static str {
        "alipay"
    }

    fn settings(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        // As the owner pastes them: Alipay's public key bare base64 (what its site shows), the
        // app's private key as PKCS#1 PEM (what its key tool writes).
        let public = b64(&self.keys.alipay.public_key_to_der().unwrap());
        let private =
            String::from_utf8(self.keys.app.rsa().unwrap().private_key_to_pem().unwrap()).unwrap();
        (
            BTreeMap::from([
                (
                    "gateway_url".into(),
                    format!("{}gateway.do", self.desk.base),
                ),
                ("app_id".into(), APP_ID.into()),
                ("alipay_public_key".into(), public),
                ("product".into(), "precreate".into()),
            ]),
            BTreeMap::from([("private_key".into(), private)]),
        )
    }

    fn create_endpoint(&self) -> &'static str {
        "alipay.trade.precreate"
    }

    fn query_endpoint(&self) -> &'static str {
        "alipay.trade.query"
    }

    fn notice(&self, order_ref: &str, changes: &[(&str, &str)], key: Option<&str>) -> Notice {
        let t = self.desk.trade(order_ref).expect("trade");
        let mut p: Vec<(String, String)> = vec![
            ("notify_time".into(), "2026-11-28 10:00:00".into()),
            ("notify_type".into(), "trade_status_sync".into()),
            (
                "notify_id".into(),
                format!("ac05099524730693a8b330c5ecf72da9{}", t.no),
            ),
            ("app_id".into(), APP_ID.into()),
            ("charset".into(), "utf-8".into()),
            ("version".into(), "1.0".into()),
            ("trade_no".into(), t.no.clone()),
            ("out_trade_no".into(), t.order_ref.clone()),
            ("trade_status".into(), "TRADE_SUCCESS".into()),
            ("total_amount".into(), self.desk.money_of(&t)),
            ("receipt_amount".into(), self.desk.money_of(&t)),
            ("subject".into(), t.field("subject").into()),
            ("buyer_id".into(), "2088102122524333".into()),
            ("gmt_payment".into(), "2026-11-28 09:59:58".into()),
        ];
        apply(&mut p, changes);
        let text = signed_text(&p, &["sign", "sign_type"]);
        let sig = match key {
            // Signed by someone else's key.
            Some(_) => sign_with(&self.keys.app, &text),
            None => self.sign(&text),
        };
        p.push(("sign".into(), sig));
        p.push(("sign_type".into(), "RSA2".into()));
        Notice::form(true, p)
    }

    fn not_paid(&self, order_ref: &str) -> Option<Notice> {
        Some(self.notice(order_ref, &[("trade_status", "WAIT_BUYER_PAY")], None))
    }

    fn forged(&self, order_ref: &str) -> Vec<(&'static str, Notice)> {
        let good = self.notice(order_ref, &[], None);
        // rsaCheckV2's text (sign_type kept) is not what trade notifications are signed over.
        let mut v2 = good.with("sign", None);
        let sig = self.sign(&signed_text(&v2.params, &["sign"]));
        v2.params.push(("sign".into(), sig));
        vec![
            (
                "status changed after signing",
                self.not_paid(order_ref)
                    .unwrap()
                    .with("trade_status", Some("TRADE_SUCCESS")),
            ),
            ("sign_type RSA", good.with("sign_type", Some("RSA"))),
            (
                "another app",
                self.notice(order_ref, &[("app_id", "2021000999999999")], None),
            ),
            ("signed with sign_type in the text", v2),
            (
                "signature not base64",
                good.with("sign", Some("!!!not base64!!!")),
            ),
        ]
    }

    fn names(&self) -> Names {
        Names {
            order: "out_trade_no",
            amount: "total_amount",
            sign: "sign",
            text: "subject",
        }
    }

    fn ack(&self) -> (u16, &'static str) {
        (200, "success")
    }

    fn acked(_status: u16, body: &str) -> bool {
        // Exactly the seven bytes.
        body == "success"
    }
}

async fn gateway(
    State(fake): State<FakeAlipay>,
    Form(p): Form<BTreeMap<String, String>>,
) -> Response {
    let method = p.get("method").cloned().unwrap_or_default();
    fake.desk.record(method.clone());
    if !fake.app_signed(&p) {
        return fake.answer(
            &method,
            serde_json::json!({"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature", "sub_msg": "验签出错"}),
            false,
        );
    }
    let biz: serde_json::Value =
        serde_json::from_str(p.get("biz_content").map(String::as_str).unwrap_or(""))
            .unwrap_or_default();
    let text = |k: &str| biz[k].as_str().unwrap_or("").to_string();
    let failed = |sub: &str| serde_json::json!({"code": "40004", "msg": "Business Failed", "sub_code": sub, "sub_msg": sub});
    let node = match method.as_str() {
        "alipay.trade.precreate" => match fake.open(&p, "precreate") {
            Ok(t) => {
                serde_json::json!({"code": "10000", "msg": "Success", "out_trade_no": t.order_ref, "qr_code": format!("{}pay/{}", fake.desk.base, t.no)})
            }
            Err(sub) => failed(sub),
        },
        "alipay.trade.query" => match fake.desk.trade(&text("out_trade_no")) {
            None => failed("ACQ.TRADE_NOT_EXIST"),
            Some(t) => serde_json::json!({
                "code": "10000", "msg": "Success", "trade_no": t.no, "out_trade_no": t.order_ref,
                "trade_status": if t.paid { "TRADE_SUCCESS" } else { "WAIT_BUYER_PAY" }, "total_amount": t.money,
            }),
        },
        "alipay.trade.refund" => {
            let mut refunds = fake.refunds.lock().unwrap();
            let request = text("out_request_no");
            let t = fake
                .desk
                .trades()
                .into_iter()
                .find(|t| t.paid && t.no == text("trade_no"));
            match t {
                None => failed("ACQ.TRADE_NOT_EXIST"),
                Some(_) if refunds.iter().any(|(r, _)| *r == request) => {
                    serde_json::json!({"code": "10000", "msg": "Success", "fund_change": "N", "out_trade_no": text("out_trade_no")})
                }
                Some(t) => {
                    let cents = |s: &str| s.replace('.', "").parse::<i64>().unwrap_or(i64::MAX);
                    let before: i64 = refunds.iter().map(|(_, a)| cents(a)).sum();
                    if !is_yuan(&text("refund_amount"))
                        || before + cents(&text("refund_amount")) > cents(&t.money)
                    {
                        failed("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
                    } else {
                        refunds.push((request, text("refund_amount")));
                        serde_json::json!({"code": "10000", "msg": "Success", "fund_change": "Y", "refund_fee": text("refund_amount"), "trade_no": t.no})
                    }
                }
            }
        }
        _ => {
            serde_json::json!({"code": "40004", "msg": "Business Failed", "sub_code": "isv.invalid-method"})
        }
    };
    fake.answer(&method, node, true)
}

async fn cashier(
    State(fake): State<FakeAlipay>,
    Query(p): Query<BTreeMap<String, String>>,
) -> Response {
    let method = p.get("method").cloned().unwrap_or_default();
    fake.desk.record(method.clone());
    if !fake.app_signed(&p)
        || !["alipay.trade.page.pay", "alipay.trade.wap.pay"].contains(&method.as_str())
    {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            Html("<p id=\"alipay-error\">验签出错</p>"),
        )
            .into_response();
    }
    match fake.open(&p, "page.pay") {
        Ok(t) => Redirect::to(&format!("/pay/{}", t.no)).into_response(),
        Err(sub) => (
            axum::http::StatusCode::BAD_REQUEST,
            Html(format!("<p id=\"alipay-error\">{sub}</p>")),
        )
            .into_response(),
    }
}

async fn pay_page(State(fake): State<FakeAlipay>, Path(no): Path<String>) -> Response {
    match fake.desk.trades().into_iter().find(|t| t.no == no) {
        Some(t) => Html(format!(
            "<!doctype html><title>支付宝</title><p id=\"alipay-money\">¥{}</p><form method=\"post\"><button id=\"alipay-pay\">付款</button></form>",
            t.money
        ))
        .into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

async fn pay_now(State(fake): State<FakeAlipay>, Path(no): Path<String>) -> Response {
    match fake.desk.trades().into_iter().find(|t| t.no == no) {
        Some(t) => {
            let back = fake.pay(&t.order_ref);
            if back.is_empty() {
                Html("<p id=\"alipay-done\">支付成功</p>").into_response()
            } else {
                Redirect::to(&back).into_response()
            }
        }
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}
