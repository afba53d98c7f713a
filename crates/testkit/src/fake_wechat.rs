//! A local fake of the WeChat 公众号 API for template messages: `GET /cgi-bin/token` checks the
//! appid and secret and issues an access token (7200 s, as the real one), `POST
//! /cgi-bin/message/template/send` checks the token (40001 when unknown or revoked), the openid
//! (43004 when the user does not follow the account) and the template id, and answers
//! `{"errcode":0,"errmsg":"ok","msgid":…}`. Tokens can be revoked to test the refresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

pub const APPID: &str = "wx0123456789abcdef";
pub const SECRET: &str = "wechat-app-secret";
pub const TEMPLATE_ID: &str = "TPL_new_arrivals";

#[derive(Default)]
struct Inner {
    tokens: Vec<String>,
    token_calls: usize,
    followers: Vec<String>,
    received: Vec<Value>,
}

/// The fake; cheap to clone.
#[derive(Clone)]
pub struct FakeWechat {
    inner: Arc<Mutex<Inner>>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl FakeWechat {
    /// Start on a random loopback port with these followers (openids).
    pub async fn start(followers: &[&str]) -> FakeWechat {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeWechat {
            inner: Arc::default(),
            base: format!("http://{}", listener.local_addr().unwrap()),
        };
        fake.inner.lock().unwrap().followers = followers.iter().map(|s| s.to_string()).collect();
        let app = Router::new()
            .route("/cgi-bin/token", get(token))
            .route("/cgi-bin/message/template/send", post(send))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        fake
    }

    /// Template messages accepted so far.
    pub fn received(&self) -> Vec<Value> {
        self.inner.lock().unwrap().received.clone()
    }

    /// How many tokens were issued.
    pub fn token_calls(&self) -> usize {
        self.inner.lock().unwrap().token_calls
    }

    /// Invalidate every token issued so far (as WeChat does when a token is fetched elsewhere).
    pub fn revoke_tokens(&self) {
        self.inner.lock().unwrap().tokens.clear();
    }
}

async fn token(
    State(f): State<FakeWechat>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let mut s = f.inner.lock().unwrap();
    if q.get("grant_type").map(String::as_str) != Some("client_credential") {
        return Json(json!({"errcode": 40002, "errmsg": "invalid grant_type"}));
    }
    if q.get("appid").map(String::as_str) != Some(APPID) {
        return Json(json!({"errcode": 40013, "errmsg": "invalid appid"}));
    }
    if q.get("secret").map(String::as_str) != Some(SECRET) {
        return Json(json!({"errcode": 40125, "errmsg": "invalid appsecret"}));
    }
    s.token_calls += 1;
    let t = format!("ACCESS_TOKEN_{}", s.token_calls);
    s.tokens.push(t.clone());
    Json(json!({"access_token": t, "expires_in": 7200}))
}

async fn send(
    State(f): State<FakeWechat>,
    Query(q): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let mut s = f.inner.lock().unwrap();
    let token = q.get("access_token").cloned().unwrap_or_default();
    if !s.tokens.contains(&token) {
        return Json(
            json!({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}),
        );
    }
    if body["template_id"] != TEMPLATE_ID {
        return Json(json!({"errcode": 40037, "errmsg": "invalid template_id"}));
    }
    let to = body["touser"].as_str().unwrap_or("").to_string();
    if !s.followers.contains(&to) {
        return Json(json!({"errcode": 43004, "errmsg": "require subscribe"}));
    }
    s.received.push(body);
    let id = s.received.len();
    Json(json!({"errcode": 0, "errmsg": "ok", "msgid": id}))
}
