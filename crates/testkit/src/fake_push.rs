//! Local fakes of the push services, on one loopback server, each checking what the real service
//! checks (path, key, body, signature — verified here with the service's own rule, written out
//! independently of the client) and answering as it answers, errors and rate limits included.
//!
//! Routes: Server酱 Turbo `POST /{KEY}.send`, Server酱³ `POST /send/{KEY}.send`, PushDeer
//! `POST /message/push`, Bark `POST /push`, WeCom `POST /cgi-bin/webhook/send?key=`, Feishu
//! `POST /open-apis/bot/v2/hook/{token}`, DingTalk `POST /robot/send?access_token=&timestamp=&sign=`,
//! Telegram `POST /bot{TOKEN}/sendMessage`, generic webhook `POST /hook`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Keys and secrets the fake accepts.
pub const SC_TURBO_KEY: &str = "SCT1234TESTKEY";
pub const SC3_KEY: &str = "sctp42tTESTKEY";
pub const PUSHDEER_KEY: &str = "PDU1TESTKEY";
pub const BARK_KEY: &str = "barkDeviceKey";
pub const WECOM_KEY: &str = "wecom-robot-key";
pub const FEISHU_TOKEN: &str = "feishu-hook-token";
pub const FEISHU_SECRET: &str = "feishu-secret";
pub const DINGTALK_TOKEN: &str = "ding-token";
pub const DINGTALK_SECRET: &str = "SECding-secret";
pub const TELEGRAM_TOKEN: &str = "123456:TEST-token";
pub const WEBHOOK_SECRET: &str = "whsec_test";

#[derive(Default)]
struct Inner {
    received: Vec<(String, serde_json::Value)>,
    limit_next: HashMap<String, u32>,
    down_next: HashMap<String, u32>,
}

/// The fake; cheap to clone.
#[derive(Clone)]
pub struct FakePush {
    inner: Arc<Mutex<Inner>>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

fn now_ms() -> i64 {
    crate::real_now()
}

impl FakePush {
    /// Start on a random loopback port.
    pub async fn start() -> FakePush {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let fake = FakePush {
            inner: Arc::default(),
            base: format!("http://{}", listener.local_addr().unwrap()),
        };
        let app = Router::new()
            .route("/{file}", post(server_chan_turbo))
            .route("/send/{file}", post(server_chan_3))
            .route("/message/push", post(pushdeer))
            .route("/push", post(bark))
            .route("/cgi-bin/webhook/send", post(wecom))
            .route("/open-apis/bot/v2/hook/{token}", post(feishu))
            .route("/robot/send", post(dingtalk))
            .route("/{bot}/sendMessage", post(telegram))
            .route("/hook", post(webhook))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        fake
    }

    /// Messages accepted so far, as (channel, what was sent).
    pub fn received(&self) -> Vec<(String, serde_json::Value)> {
        self.inner.lock().unwrap().received.clone()
    }

    /// The next `n` requests to `channel` hit its rate limit.
    pub fn rate_limit_next(&self, channel: &str, n: u32) {
        self.inner
            .lock()
            .unwrap()
            .limit_next
            .insert(channel.into(), n);
    }

    /// How many of the rate-limited requests set by [`FakePush::rate_limit_next`] are still to come.
    pub fn rate_limits_left(&self, channel: &str) -> u32 {
        self.inner
            .lock()
            .unwrap()
            .limit_next
            .get(channel)
            .copied()
            .unwrap_or(0)
    }

    /// The next `n` requests to `channel` get a 502.
    pub fn down_next(&self, channel: &str, n: u32) {
        self.inner
            .lock()
            .unwrap()
            .down_next
            .insert(channel.into(), n);
    }

    fn take(map: &mut HashMap<String, u32>, channel: &str) -> bool {
        match map.get_mut(channel) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// Rate limit or outage due for `channel`? (checked before anything else, as a gateway would).
    fn gate(&self, channel: &str) -> (bool, bool) {
        let mut g = self.inner.lock().unwrap();
        let down = Self::take(&mut g.down_next, channel);
        let limited = !down && Self::take(&mut g.limit_next, channel);
        (down, limited)
    }

    fn accept(&self, channel: &str, v: serde_json::Value) {
        self.inner
            .lock()
            .unwrap()
            .received
            .push((channel.into(), v));
    }
}

fn down() -> Response {
    (StatusCode::BAD_GATEWAY, "upstream down").into_response()
}

async fn server_chan_turbo(
    State(f): State<FakePush>,
    Path(file): Path<String>,
    Json(v): Json<serde_json::Value>,
) -> Response {
    let Some(key) = file.strip_suffix(".send") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if f.gate("serverchan").0 {
        return down();
    }
    if key != SC_TURBO_KEY {
        return Json(serde_json::json!({"code": 40001, "message": "bad pushkey", "data": null}))
            .into_response();
    }
    if v.get("title")
        .and_then(|t| t.as_str())
        .is_none_or(str::is_empty)
    {
        return Json(serde_json::json!({"code": 20001, "message": "title required"}))
            .into_response();
    }
    f.accept("serverchan", v);
    Json(serde_json::json!({"code": 0, "message": "", "data": {"pushid": "1", "readkey": "r", "error": "SUCCESS", "errno": 0}})).into_response()
}

async fn server_chan_3(
    State(f): State<FakePush>,
    Path(file): Path<String>,
    Json(v): Json<serde_json::Value>,
) -> Response {
    let Some(key) = file.strip_suffix(".send") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if key != SC3_KEY {
        return Json(serde_json::json!({"code": 40001, "message": "bad sendkey"})).into_response();
    }
    f.accept("serverchan3", v);
    Json(serde_json::json!({"code": 0, "message": "", "errno": 0})).into_response()
}

async fn pushdeer(
    State(f): State<FakePush>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    if form.get("pushkey").map(String::as_str) != Some(PUSHDEER_KEY) {
        return Json(serde_json::json!({"code": 80501, "error": "pushkey not found"}))
            .into_response();
    }
    if form.get("text").is_none_or(|t| t.is_empty()) {
        return Json(serde_json::json!({"code": 80001, "error": "text required"})).into_response();
    }
    f.accept("pushdeer", serde_json::to_value(&form).unwrap());
    Json(serde_json::json!({"code": 0, "content": {"result": ["{\"counts\":1,\"logs\":[],\"success\":\"ok\"}"]}})).into_response()
}

async fn bark(State(f): State<FakePush>, Json(v): Json<serde_json::Value>) -> Response {
    if v.get("device_key").and_then(|k| k.as_str()) != Some(BARK_KEY) {
        return (StatusCode::BAD_REQUEST, Json(serde_json::json!({"code": 400, "message": "failed to get device token: device token not found"}))).into_response();
    }
    f.accept("bark", v);
    Json(serde_json::json!({"code": 200, "message": "success", "timestamp": now_ms() / 1000}))
        .into_response()
}

async fn wecom(
    State(f): State<FakePush>,
    Query(q): Query<HashMap<String, String>>,
    Json(v): Json<serde_json::Value>,
) -> Response {
    if q.get("key").map(String::as_str) != Some(WECOM_KEY) {
        return Json(serde_json::json!({"errcode": 93000, "errmsg": "invalid webhook url"}))
            .into_response();
    }
    if f.gate("wecom").1 {
        return Json(serde_json::json!({"errcode": 45009, "errmsg": "api freq out of limit"}))
            .into_response();
    }
    let content = v
        .pointer("/markdown/content")
        .and_then(|c| c.as_str())
        .unwrap_or("");
    if v.get("msgtype").and_then(|m| m.as_str()) != Some("markdown")
        || content.is_empty()
        || content.len() > 4096
    {
        return Json(serde_json::json!({"errcode": 40008, "errmsg": "invalid message type"}))
            .into_response();
    }
    f.accept("wecom", v);
    Json(serde_json::json!({"errcode": 0, "errmsg": "ok"})).into_response()
}

async fn feishu(
    State(f): State<FakePush>,
    Path(token): Path<String>,
    Json(v): Json<serde_json::Value>,
) -> Response {
    if token != FEISHU_TOKEN {
        return Json(serde_json::json!({"code": 19001, "msg": "param invalid: incoming webhook access token invalid"})).into_response();
    }
    // Signed bot: key = "timestamp\nsecret", message empty; timestamp within an hour.
    let ts: i64 = v
        .get("timestamp")
        .and_then(|t| t.as_str())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let expected = base64::engine::general_purpose::STANDARD
        .encode(hmac(format!("{ts}\n{FEISHU_SECRET}").as_bytes(), b""));
    let fresh = (now_ms() / 1000 - ts).abs() <= 3600;
    if v.get("sign").and_then(|s| s.as_str()) != Some(expected.as_str()) || !fresh {
        return Json(serde_json::json!({"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"})).into_response();
    }
    if f.gate("feishu").1 {
        return Json(serde_json::json!({"code": 9499, "msg": "too many request"})).into_response();
    }
    f.accept("feishu", v);
    Json(serde_json::json!({"code": 0, "msg": "success", "data": {}})).into_response()
}

async fn dingtalk(
    State(f): State<FakePush>,
    Query(q): Query<HashMap<String, String>>,
    Json(v): Json<serde_json::Value>,
) -> Response {
    if q.get("access_token").map(String::as_str) != Some(DINGTALK_TOKEN) {
        return Json(serde_json::json!({"errcode": 300001, "errmsg": "token is not exist"}))
            .into_response();
    }
    // key = secret, message = "timestamp_ms\nsecret"; the query value is URL-decoded by now.
    let ts: i64 = q.get("timestamp").and_then(|t| t.parse().ok()).unwrap_or(0);
    let expected = base64::engine::general_purpose::STANDARD.encode(hmac(
        DINGTALK_SECRET.as_bytes(),
        format!("{ts}\n{DINGTALK_SECRET}").as_bytes(),
    ));
    if q.get("sign").map(String::as_str) != Some(expected.as_str())
        || (now_ms() - ts).abs() > 3_600_000
    {
        return Json(serde_json::json!({"errcode": 310000, "errmsg": "sign not match"}))
            .into_response();
    }
    if f.gate("dingtalk").1 {
        return Json(serde_json::json!({"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"})).into_response();
    }
    f.accept("dingtalk", v);
    Json(serde_json::json!({"errcode": 0, "errmsg": "ok"})).into_response()
}

async fn telegram(
    State(f): State<FakePush>,
    Path(bot): Path<String>,
    Json(v): Json<serde_json::Value>,
) -> Response {
    if bot != format!("bot{TELEGRAM_TOKEN}") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(
                serde_json::json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
            ),
        )
            .into_response();
    }
    if f.gate("telegram").1 {
        return (StatusCode::TOO_MANY_REQUESTS, Json(serde_json::json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7", "parameters": {"retry_after": 7}}))).into_response();
    }
    let text = v
        .get("text")
        .and_then(|t| t.as_str())
        .unwrap_or("")
        .to_string();
    if v.get("chat_id").is_none() || text.is_empty() || text.chars().count() > 4096 {
        return (StatusCode::BAD_REQUEST, Json(serde_json::json!({"ok": false, "error_code": 400, "description": "Bad Request: message text is empty"}))).into_response();
    }
    f.accept("telegram", v);
    Json(serde_json::json!({"ok": true, "result": {"message_id": 1, "chat": {"id": 1}, "text": text}})).into_response()
}

async fn webhook(
    State(f): State<FakePush>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (down_now, limited) = f.gate("webhook");
    if down_now {
        return down();
    }
    if limited {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "30")],
            "slow down",
        )
            .into_response();
    }
    let sig = headers
        .get("yiren-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parts: HashMap<&str, &str> = sig.split(',').filter_map(|p| p.split_once('=')).collect();
    let ts = parts.get("t").copied().unwrap_or("");
    let mut msg = format!("{ts}.").into_bytes();
    msg.extend_from_slice(&body);
    let expected = hex::encode(hmac(WEBHOOK_SECRET.as_bytes(), &msg));
    if parts.get("v1").copied() != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    f.accept("webhook", serde_json::from_slice(&body).unwrap_or_default());
    StatusCode::NO_CONTENT.into_response()
}
