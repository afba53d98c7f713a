//! A fake WeChat Pay APIv3, written from the rules in `shared/specs/payments.md` §2.6 (its own
//! RSA and AES-GCM code, on keys it makes at start):
//!
//! - Every request must carry `Authorization: WECHATPAY2-SHA256-RSA2048 …` signed by the
//!   merchant's key over `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n`, with the merchant's
//!   serial number; answers are signed (`Wechatpay-*` headers) with the platform key.
//! - `POST /v3/pay/transactions/native` checks `mchid`, `appid`, `out_trade_no`, `description`,
//!   `notify_url` and `amount` (fen, CNY) and answers `{code_url}` (opening the fake's pay page);
//!   `GET /v3/pay/transactions/out-trade-no/{id}?mchid=` answers the transaction or 404
//!   `ORDER_NOT_EXIST`; `POST /v3/refund/domestic/refunds` refunds once per `out_refund_no`.
//! - Paying POSTs the `TRANSACTION.SUCCESS` event, its transaction sealed with AES-256-GCM under
//!   the APIv3 key, signed; again on its schedule until a 200 or 204.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::{Signer, Verifier};
use openssl::symm::{encrypt_aead, Cipher};

use crate::fake_gateway::{Desk, GatewayFake, Names, Notice, Trade};

pub const MCHID: &str = "1900000109";
pub const APPID: &str = "wxd678efh567hg6787";
pub const SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A72";
pub const PUB_KEY_ID: &str = "PUB_KEY_ID_0119000001092024011200000000000001";
pub const APIV3_KEY: &str = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";

/// The fake; cheap to clone.
#[derive(Clone)]
pub struct FakeWechatpay {
    pub desk: Desk,
    keys: Arc<(PKey<Private>, PKey<Private>)>,
    refunds: Arc<Mutex<Vec<(String, i64)>>>,
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn rsa_sign(key: &PKey<Private>, text: &str) -> String {
    let mut s = Signer::new(MessageDigest::sha256(), key).unwrap();
    s.update(text.as_bytes()).unwrap();
    b64(&s.sign_to_vec().unwrap())
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Seal `plain` as an AEAD_AES_256_GCM resource under `key`.
pub fn seal(key: &str, nonce: &str, aad: &str, plain: &str) -> serde_json::Value {
    let mut tag = [0u8; 16];
    let ct = encrypt_aead(
        Cipher::aes_256_gcm(),
        key.as_bytes(),
        Some(nonce.as_bytes()),
        aad.as_bytes(),
        plain.as_bytes(),
        &mut tag,
    )
    .unwrap();
    serde_json::json!({
        "algorithm": "AEAD_AES_256_GCM", "ciphertext": b64(&[ct, tag.to_vec()].concat()),
        "associated_data": aad, "original_type": "transaction", "nonce": nonce,
    })
}

impl FakeWechatpay {
    /// The platform's signature headers over `body` at `ts`.
    pub fn signed_headers(
        &self,
        body: &str,
        ts: i64,
        key: Option<&PKey<Private>>,
    ) -> Vec<(String, String)> {
        let nonce = format!("n{ts}{}", body.len());
        let sig = rsa_sign(
            key.unwrap_or(&self.keys.1),
            &format!("{ts}\n{nonce}\n{body}\n"),
        );
        vec![
            ("Wechatpay-Timestamp".into(), ts.to_string()),
            ("Wechatpay-Nonce".into(), nonce),
            ("Wechatpay-Signature".into(), sig),
            ("Wechatpay-Serial".into(), PUB_KEY_ID.into()),
        ]
    }

    /// Refunds made: (out_refund_no, fen).
    pub fn refunds(&self) -> Vec<(String, i64)> {
        self.refunds.lock().unwrap().clone()
    }

    fn reply(&self, status: StatusCode, v: serde_json::Value) -> Response {
        let body = v.to_string();
        let mut r = (status, [("content-type", "application/json")], body.clone()).into_response();
        for (k, v) in self.signed_headers(&body, now_s(), None) {
            r.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        r
    }

    /// Whether the request is signed by the merchant.
    fn authorised(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &str) -> bool {
        let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some(params) = auth.strip_prefix("WECHATPAY2-SHA256-RSA2048 ") else {
            return false;
        };
        let p: BTreeMap<&str, &str> = params
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
            .collect();
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
        let message = format!(
            "{method}\n{path}\n{}\n{}\n{body}\n",
            p.get("timestamp").unwrap_or(&""),
            p.get("nonce_str").unwrap_or(&"")
        );
        let Ok(sig) =
            base64::engine::general_purpose::STANDARD.decode(p.get("signature").unwrap_or(&""))
        else {
            return false;
        };
        let mut v = Verifier::new(MessageDigest::sha256(), &self.keys.0).unwrap();
        v.update(message.as_bytes()).unwrap();
        p.get("mchid") == Some(&MCHID)
            && p.get("serial_no") == Some(&SERIAL)
            && v.verify(&sig).unwrap_or(false)
    }

    /// The transaction as WeChat Pay describes it.
    fn transaction(&self, t: &Trade, state: &str, money: &str) -> serde_json::Value {
        serde_json::json!({
            "mchid": MCHID, "appid": APPID, "out_trade_no": t.order_ref,
            "transaction_id": format!("42000000{}", t.no), "trade_type": "NATIVE", "trade_state": state,
            "trade_state_desc": "支付成功", "bank_type": "OTHERS", "success_time": "2026-11-28T10:00:00+08:00",
            "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
            "amount": {"total": money.parse::<i64>().unwrap(), "payer_total": money.parse::<i64>().unwrap(), "currency": "CNY", "payer_currency": "CNY"},
        })
    }

    /// The event for a trade: `changes` to the transaction (`mchid`, `trade_state`,
    /// `out_trade_no`, `total`), sealed under `apiv3` and signed at `ts` (with `key`, the
    /// platform's when None).
    pub fn event(
        &self,
        order_ref: &str,
        changes: &[(&str, &str)],
        apiv3: &str,
        ts: i64,
        key: Option<&PKey<Private>>,
    ) -> Notice {
        let t = self.desk.trade(order_ref).expect("trade");
        let mut tx = self.transaction(&t, "SUCCESS", &self.desk.money_of(&t));
        for (k, v) in changes {
            match *k {
                "total" => tx["amount"]["total"] = v.parse::<i64>().unwrap().into(),
                _ => tx[*k] = (*v).into(),
            }
        }
        let body = serde_json::json!({
            "id": format!("EV-{}", t.no), "create_time": "2026-11-28T10:00:01+08:00",
            "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
            "resource": seal(apiv3, "fGnGsq8KQ2Ds", "transaction", &tx.to_string()),
        })
        .to_string();
        let headers = self.signed_headers(&body, ts, key);
        Notice::raw("application/json", body, headers)
    }
}

impl GatewayFake for FakeWechatpay {
    async fn start() -> FakeWechatpay {
        let keys = Arc::new((
            PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap(),
            PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap(),
        ));
        let refunds = Arc::new(Mutex::new(vec![]));
        let (k, r) = (keys.clone(), refunds.clone());
        let desk = Desk::open(MCHID, APIV3_KEY, &[0, 150, 300, 600, 1200], |desk| {
            Router::new()
                .route("/v3/pay/transactions/native", post(native))
                .route("/v3/pay/transactions/out-trade-no/{id}", get(query))
                .route("/v3/refund/domestic/refunds", post(refund))
                .route("/pay/{no}", get(pay_page).post(pay_now))
                .with_state(FakeWechatpay {
                    desk,
                    keys: k,
                    refunds: r,
                })
        })
        .await;
        FakeWechatpay {
            desk,
            keys,
            refunds,
        }
    }

    fn desk(&self) -> &Desk {
        &self.desk
    }

    fn kind(&self) -> &'static str {
        "wechatpay"
    }

    fn settings(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let private = String::from_utf8(self.keys.0.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let public = String::from_utf8(self.keys.1.public_key_to_pem().unwrap()).unwrap();
        (
            BTreeMap::from([
                ("base_url".into(), self.desk.base.clone()),
                ("mchid".into(), MCHID.into()),
                ("appid".into(), APPID.into()),
                ("serial_no".into(), SERIAL.into()),
                ("public_key_id".into(), PUB_KEY_ID.into()),
                ("public_key".into(), public),
            ]),
            BTreeMap::from([
                ("private_key".into(), private),
                ("apiv3_key".into(), APIV3_KEY.into()),
            ]),
        )
    }

    fn create_endpoint(&self) -> &'static str {
        "native"
    }

    fn query_endpoint(&self) -> &'static str {
        "query"
    }

    fn notice(&self, order_ref: &str, changes: &[(&str, &str)], key: Option<&str>) -> Notice {
        let other = key.map(|_| self.keys.0.clone());
        self.event(order_ref, changes, APIV3_KEY, now_s(), other.as_ref())
    }

    fn not_paid(&self, order_ref: &str) -> Option<Notice> {
        Some(self.notice(order_ref, &[("trade_state", "NOTPAY")], None))
    }

    fn forgeries(&self, order_ref: &str) -> Vec<(&'static str, Notice)> {
        let now = now_s();
        let good = self.event(order_ref, &[], APIV3_KEY, now, None);
        let header = |n: &Notice, k: &str, v: Option<&str>| {
            let mut n = n.clone();
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
        let signed = |body: &str| {
            Notice::raw(
                "application/json",
                body.into(),
                self.signed_headers(body, now, None),
            )
        };
        let sig = good
            .headers
            .iter()
            .find(|(k, _)| k == "Wechatpay-Signature")
            .unwrap()
            .1
            .clone();
        let mut probe = good.clone();
        probe
            .headers
            .iter_mut()
            .filter(|(h, _)| h == "Wechatpay-Signature")
            .for_each(|h| h.1 = format!("WECHATPAY/SIGNTEST/{sig}"));
        let tampered_body =
            good.encoded()
                .replacen("\"ciphertext\":\"", "\"ciphertext\":\"AAAA", 1);
        vec![
            (
                "signed with another key",
                self.notice(order_ref, &[], Some("other")),
            ),
            (
                "body changed after signing",
                Notice {
                    raw: Some(("application/json", tampered_body)),
                    ..good.clone()
                },
            ),
            ("no signature", header(&good, "Wechatpay-Signature", None)),
            ("no timestamp", header(&good, "Wechatpay-Timestamp", None)),
            (
                "timestamp changed after signing",
                header(&good, "Wechatpay-Timestamp", Some(&(now + 1).to_string())),
            ),
            (
                "nonce changed after signing",
                header(&good, "Wechatpay-Nonce", Some("other")),
            ),
            (
                "another serial",
                header(&good, "Wechatpay-Serial", Some("PUB_KEY_ID_0000")),
            ),
            ("signature test probe", probe),
            (
                "older than 5 minutes, signed",
                self.event(order_ref, &[], APIV3_KEY, now - 400, None),
            ),
            (
                "from the future, signed",
                self.event(order_ref, &[], APIV3_KEY, now + 400, None),
            ),
            (
                "sealed with another APIv3 key, signed",
                self.event(
                    order_ref,
                    &[],
                    "b7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb",
                    now,
                    None,
                ),
            ),
            (
                "another merchant, signed",
                self.notice(order_ref, &[("mchid", "1900000999")], None),
            ),
            (
                "unknown order, signed",
                self.notice(order_ref, &[("out_trade_no", "424242")], None),
            ),
            ("not JSON, signed", signed("{not json")),
            ("empty, signed", signed("")),
            (
                "not encrypted, signed",
                signed(
                    &serde_json::json!({"resource": {"algorithm": "NONE", "ciphertext": "x"}})
                        .to_string(),
                ),
            ),
        ]
    }

    fn names(&self) -> Names {
        Names {
            order: "out_trade_no",
            amount: "total",
            sign: "Wechatpay-Signature",
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
        (204, "")
    }

    fn nack(&self) -> (u16, &'static str) {
        (400, "{\"code\":\"FAIL\",\"message\":\"rejected\"}")
    }

    fn acked(status: u16, _body: &str) -> bool {
        status == 200 || status == 204
    }
}

async fn native(
    State(fake): State<FakeWechatpay>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.desk.record("native");
    let body = String::from_utf8_lossy(&body).into_owned();
    if !fake.authorised(&method, &uri, &headers, &body) {
        return fake.reply(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"code": "SIGN_ERROR", "message": "签名错误"}),
        );
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let text = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let total = v["amount"]["total"].as_i64().unwrap_or(0);
    let valid = text("mchid") == MCHID
        && text("appid") == APPID
        && (1..=32).contains(&text("out_trade_no").len())
        && !text("description").is_empty()
        && text("notify_url").starts_with("http")
        && total > 0
        && v["amount"]["currency"] == "CNY";
    if !valid {
        return fake.reply(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": "PARAM_ERROR", "message": "参数错误"}),
        );
    }
    let t = Trade {
        no: String::new(),
        order_ref: text("out_trade_no"),
        merchant: MCHID.into(),
        money: total.to_string(),
        notify_url: text("notify_url"),
        return_url: String::new(),
        via: "native",
        sent: BTreeMap::from([("description".to_string(), text("description"))]),
        paid: false,
        answers: vec![],
    };
    match fake.desk.open_trade(t, "wx") {
        Ok(t) => fake.reply(
            StatusCode::OK,
            serde_json::json!({"code_url": format!("{}pay/{}", fake.desk.base, t.no)}),
        ),
        Err(_) => fake.reply(
            StatusCode::FORBIDDEN,
            serde_json::json!({"code": "ORDERPAID", "message": "该订单已支付"}),
        ),
    }
}

async fn query(
    State(fake): State<FakeWechatpay>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    fake.desk.record("query");
    if !fake.authorised(&method, &uri, &headers, "")
        || q.get("mchid").map(String::as_str) != Some(MCHID)
    {
        return fake.reply(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"code": "SIGN_ERROR", "message": "签名错误"}),
        );
    }
    match fake.desk.trade(&id) {
        None => fake.reply(
            StatusCode::NOT_FOUND,
            serde_json::json!({"code": "ORDER_NOT_EXIST", "message": "订单不存在"}),
        ),
        Some(t) => {
            let state = if t.paid { "SUCCESS" } else { "NOTPAY" };
            fake.reply(StatusCode::OK, fake.transaction(&t, state, &t.money))
        }
    }
}

async fn refund(
    State(fake): State<FakeWechatpay>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.desk.record("refund");
    let body = String::from_utf8_lossy(&body).into_owned();
    if !fake.authorised(&method, &uri, &headers, &body) {
        return fake.reply(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"code": "SIGN_ERROR", "message": "签名错误"}),
        );
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let no = v["out_refund_no"].as_str().unwrap_or("").to_string();
    let amount = v["amount"]["refund"].as_i64().unwrap_or(0);
    let tx = v["transaction_id"].as_str().unwrap_or("");
    let Some(t) = fake
        .desk
        .trades()
        .into_iter()
        .find(|t| t.paid && format!("42000000{}", t.no) == tx)
    else {
        return fake.reply(
            StatusCode::NOT_FOUND,
            serde_json::json!({"code": "RESOURCE_NOT_EXISTS", "message": "订单不存在"}),
        );
    };
    let mut refunds = fake.refunds.lock().unwrap();
    if !refunds.iter().any(|(r, _)| *r == no) {
        let before: i64 = refunds.iter().map(|(_, a)| a).sum();
        if amount <= 0
            || before + amount > t.money.parse::<i64>().unwrap()
            || v["amount"]["total"].as_i64() != t.money.parse().ok()
        {
            return fake.reply(
                StatusCode::FORBIDDEN,
                serde_json::json!({"code": "NOT_ENOUGH", "message": "可退金额不足"}),
            );
        }
        refunds.push((no.clone(), amount));
    }
    fake.reply(StatusCode::OK, serde_json::json!({"refund_id": format!("50000000{no}"), "out_refund_no": no, "status": "SUCCESS"}))
}

async fn pay_page(State(fake): State<FakeWechatpay>, Path(no): Path<String>) -> Response {
    match fake.desk.trades().into_iter().find(|t| t.no == no) {
        Some(t) => Html(format!("<!doctype html><title>微信支付</title><p id=\"wx-money\">{} 分</p><form method=\"post\"><button id=\"wx-pay\">支付</button></form>", t.money)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn pay_now(State(fake): State<FakeWechatpay>, Path(no): Path<String>) -> Response {
    match fake.desk.trades().into_iter().find(|t| t.no == no) {
        Some(t) => {
            fake.pay(&t.order_ref);
            Html("<p id=\"wx-done\">支付成功</p>").into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
