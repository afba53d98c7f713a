//! A fake EPay (彩虹易支付) aggregator, written from the protocol rules in
//! `shared/specs/payments.md` §2.1 — its own signing code, so a mistake in Yiren's is caught:
//!
//! - `submit.php` (GET or POST) and `mapi.php` (POST) check the merchant, the `MD5` signature
//!   (sorted names, `sign`/`sign_type`/empty values left out, raw values, key appended, lowercase
//!   hex), `out_trade_no` (`^[a-zA-Z0-9._\-|]+$`) and `money` (yuan, > 0); `submit.php` answers
//!   with a cashier page, `mapi.php` with `{code: 1, trade_no, qrcode}` (the QR opens the cashier)
//!   — or `payurl` when set so. The same `out_trade_no` again is the same trade.
//! - The cashier's pay button (or [`FakeEpay::pay`]) marks the trade paid, sends the customer
//!   back to `return_url` with the signed query, and notifies `notify_url` by GET with the signed
//!   query, again on its retry schedule (compressed; the real one is not documented) until an
//!   answer contains `success`. Every answer is recorded.
//! - `api.php?act=order` answers queries (`code` 1, 0 not found, -2 wrong key, -3 no merchant).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use md5::{Digest, Md5};

/// One trade the fake opened.
#[derive(Debug, Clone)]
pub struct Trade {
    pub trade_no: String,
    pub out_trade_no: String,
    pub pid: String,
    pub pay_type: String,
    pub name: String,
    pub money: String,
    pub notify_url: String,
    pub return_url: String,
    /// `submit.php` or `mapi.php`.
    pub via: &'static str,
    /// The `clientip` mapi.php was given.
    pub client_ip: String,
    pub paid: bool,
    /// The answers to each notification sent: (HTTP status, body).
    pub answers: Vec<(u16, String)>,
}

#[derive(Default)]
struct Books {
    merchants: BTreeMap<String, String>,
    trades: Vec<Trade>,
    schedule: Vec<Duration>,
    notify: bool,
    pay_url: bool,
    money_sent: Option<String>,
    next: u64,
    requests: Vec<String>,
}

/// The fake; cheap to clone.
#[derive(Clone)]
pub struct FakeEpay {
    books: Arc<Mutex<Books>>,
    /// `http://127.0.0.1:PORT/` (with the trailing slash, as the base URL is configured).
    pub base: String,
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut books = Books {
            notify: true,
            // Immediately, then again while unanswered (compressed from minutes).
            schedule: [0, 150, 300, 600, 1200]
                .into_iter()
                .map(Duration::from_millis)
                .collect(),
            ..Default::default()
        };
        books.merchants.insert(pid.into(), key.into());
        let fake = FakeEpay {
            books: Arc::new(Mutex::new(books)),
            base: format!("http://{}/", listener.local_addr().unwrap()),
        };
        let app = Router::new()
            .route("/submit.php", get(submit_get).post(submit_post))
            .route("/mapi.php", post(mapi))
            .route("/api.php", get(api))
            .route("/cashier/{trade_no}", get(cashier))
            .route("/cashier/{trade_no}/pay", post(cashier_pay))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        fake
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The delays before each notification attempt.
    pub fn set_schedule(&self, delays: &[Duration]) {
        self.books().schedule = delays.to_vec();
    }

    /// Stop (or resume) sending notifications: a lost notification, for reconciliation.
    pub fn set_notify(&self, on: bool) {
        self.books().notify = on;
    }

    /// mapi.php answers with `payurl` instead of `qrcode`.
    pub fn set_pay_url(&self, on: bool) {
        self.books().pay_url = on;
    }

    /// Notify with this `money` instead of the trade's (a misbehaving aggregator; PAY-6).
    pub fn set_money_sent(&self, money: Option<&str>) {
        self.books().money_sent = money.map(String::from);
    }

    /// Every trade.
    pub fn trades(&self) -> Vec<Trade> {
        self.books().trades.clone()
    }

    /// The trade for our order id.
    pub fn trade(&self, out_trade_no: &str) -> Option<Trade> {
        self.books()
            .trades
            .iter()
            .find(|t| t.out_trade_no == out_trade_no)
            .cloned()
    }

    /// Every request's path and query, in order.
    pub fn requests(&self) -> Vec<String> {
        self.books().requests.clone()
    }

    /// The signed notification query for a trade, with `changes` applied before signing and
    /// signed with `key` (the merchant's when None).
    pub fn notification(
        &self,
        trade_no: &str,
        changes: &[(&str, &str)],
        key: Option<&str>,
    ) -> String {
        let b = self.books();
        let t = b
            .trades
            .iter()
            .find(|t| t.trade_no == trade_no)
            .expect("trade");
        let mut p: Vec<(String, String)> = vec![
            ("pid".into(), t.pid.clone()),
            ("trade_no".into(), t.trade_no.clone()),
            ("out_trade_no".into(), t.out_trade_no.clone()),
            ("type".into(), t.pay_type.clone()),
            ("name".into(), t.name.clone()),
            (
                "money".into(),
                b.money_sent.clone().unwrap_or(t.money.clone()),
            ),
            ("trade_status".into(), "TRADE_SUCCESS".into()),
        ];
        for (k, v) in changes {
            match p.iter_mut().find(|(n, _)| n == k) {
                Some(x) => x.1 = v.to_string(),
                None => p.push((k.to_string(), v.to_string())),
            }
        }
        let key = key
            .map(String::from)
            .unwrap_or_else(|| b.merchants[&t.pid].clone());
        let s = sign(&p, &key);
        p.push(("sign".into(), s));
        p.push(("sign_type".into(), "MD5".into()));
        serde_urlencoded::to_string(&p).unwrap()
    }

    /// The customer pays: the trade is marked paid and its notifications start. Returns the URL
    /// the customer is sent back to.
    pub fn pay(&self, trade_no: &str) -> String {
        let (notify_url, return_url) = {
            let mut b = self.books();
            let t = b
                .trades
                .iter_mut()
                .find(|t| t.trade_no == trade_no)
                .expect("trade");
            t.paid = true;
            (t.notify_url.clone(), t.return_url.clone())
        };
        let query = self.notification(trade_no, &[], None);
        let fake = self.clone();
        let trade = trade_no.to_string();
        let target = join(&notify_url, &query);
        tokio::spawn(async move { fake.notify_until_acknowledged(&trade, &target).await });
        join(&return_url, &query)
    }

    async fn notify_until_acknowledged(&self, trade_no: &str, url: &str) {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let schedule = self.books().schedule.clone();
        for delay in schedule {
            tokio::time::sleep(delay).await;
            if !self.books().notify {
                continue;
            }
            let answer = match client.get(url).send().await {
                Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                Err(e) => (0, e.to_string()),
            };
            let done = answer.1.contains("success");
            let mut b = self.books();
            if let Some(t) = b.trades.iter_mut().find(|t| t.trade_no == trade_no) {
                t.answers.push(answer);
            }
            if done {
                return;
            }
        }
    }

    /// Wait until a trade has `n` answers recorded (or fail after 20 s).
    pub async fn wait_answers(&self, out_trade_no: &str, n: usize) -> Vec<(u16, String)> {
        for _ in 0..400 {
            if let Some(t) = self.trade(out_trade_no) {
                if t.answers.len() >= n {
                    return t.answers;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "trade {out_trade_no} never got {n} answers: {:?}",
            self.trade(out_trade_no)
        );
    }

    /// Check a create request; the trade (new, or the one already opened for its out_trade_no).
    fn open(&self, p: &[(String, String)], via: &'static str) -> Result<Trade, String> {
        let get = |k: &str| {
            p.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let mut b = self.books();
        let pid = get("pid");
        let Some(key) = b.merchants.get(&pid).cloned() else {
            return Err("商户不存在".into());
        };
        if get("sign_type") != "MD5" || get("sign") != sign(p, &key) {
            return Err("签名校验失败".into());
        }
        for k in ["type", "out_trade_no", "notify_url", "name", "money"] {
            if get(k).is_empty() {
                return Err(format!("{k} 不能为空"));
            }
        }
        if via == "mapi.php" && get("clientip").is_empty() {
            return Err("clientip 不能为空".into());
        }
        let otn = get("out_trade_no");
        if !otn
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-|".contains(c))
        {
            return Err("订单号格式错误".into());
        }
        let money = get("money");
        let valid_money = !money.is_empty()
            && money.chars().all(|c| c.is_ascii_digit() || c == '.')
            && money.parse::<f64>().is_ok_and(|m| m > 0.0);
        if !valid_money {
            return Err("金额不合法".into());
        }
        if let Some(t) = b
            .trades
            .iter()
            .find(|t| t.out_trade_no == otn && t.pid == pid)
        {
            if t.paid {
                return Err("该订单已支付".into());
            }
            return Ok(t.clone());
        }
        b.next += 1;
        let t = Trade {
            trade_no: format!("2026{:010}", b.next),
            out_trade_no: otn,
            pid,
            pay_type: get("type"),
            name: get("name"),
            money,
            notify_url: get("notify_url"),
            return_url: get("return_url"),
            via,
            client_ip: get("clientip"),
            paid: false,
            answers: vec![],
        };
        b.trades.push(t.clone());
        Ok(t)
    }
}

fn join(url: &str, query: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

fn cashier_page(t: &Trade) -> Response {
    Html(format!(
        "<!doctype html><html><head><title>EPay cashier</title></head><body>\
         <h1 id=\"epay-cashier\">{}</h1><p id=\"epay-money\">¥{}</p>\
         <form method=\"post\" action=\"/cashier/{}/pay\"><button type=\"submit\" id=\"epay-pay\">Pay</button></form>\
         </body></html>",
        t.name, t.money, t.trade_no
    ))
    .into_response()
}

async fn submit(fake: FakeEpay, p: Vec<(String, String)>) -> Response {
    fake.books().requests.push("submit.php".into());
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
    fake.books().requests.push("mapi.php".into());
    match fake.open(&p, "mapi.php") {
        Ok(t) => {
            let link = format!("{}cashier/{}", fake.base, t.trade_no);
            let pay_url = fake.books().pay_url;
            let mut body = serde_json::json!({"code": 1, "msg": "succ", "trade_no": t.trade_no});
            body[if pay_url { "payurl" } else { "qrcode" }] = link.into();
            Json(body).into_response()
        }
        Err(msg) => Json(serde_json::json!({"code": -1, "msg": msg})).into_response(),
    }
}

async fn api(State(fake): State<FakeEpay>, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    fake.books()
        .requests
        .push(format!("api.php?act={}", get("act")));
    if get("act") != "order" {
        return Json(serde_json::json!({"code": -5, "msg": "act 错误"})).into_response();
    }
    let b = fake.books();
    let Some(key) = b.merchants.get(&get("pid")) else {
        return Json(serde_json::json!({"code": -3, "msg": "商户不存在"})).into_response();
    };
    if *key != get("key") {
        return Json(serde_json::json!({"code": -2, "msg": "KEY校验失败"})).into_response();
    }
    let found = b.trades.iter().find(|t| {
        t.pid == get("pid")
            && ((!get("out_trade_no").is_empty() && t.out_trade_no == get("out_trade_no"))
                || (!get("trade_no").is_empty() && t.trade_no == get("trade_no")))
    });
    match found {
        None => Json(serde_json::json!({"code": 0, "msg": "订单号不存在"})).into_response(),
        Some(t) => Json(serde_json::json!({
            "code": 1, "msg": "查询订单号成功！", "trade_no": t.trade_no, "out_trade_no": t.out_trade_no,
            "type": t.pay_type, "pid": t.pid, "name": t.name, "money": t.money,
            "status": if t.paid { 1 } else { 0 },
        }))
        .into_response(),
    }
}

async fn cashier(State(fake): State<FakeEpay>, Path(trade_no): Path<String>) -> Response {
    let t = fake
        .books()
        .trades
        .iter()
        .find(|t| t.trade_no == trade_no)
        .cloned();
    match t {
        Some(t) => cashier_page(&t),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn cashier_pay(State(fake): State<FakeEpay>, Path(trade_no): Path<String>) -> Response {
    if !fake.books().trades.iter().any(|t| t.trade_no == trade_no) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let back = fake.pay(&trade_no);
    Redirect::to(&back).into_response()
}
