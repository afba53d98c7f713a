//! WeChat 公众号 message login (消息上行): a fake WeChat server posts XML signed exactly as WeChat
//! does (`sha1(sort(token, timestamp, nonce))` in the query), including a wrong signature, a stale
//! one and a replayed message; callback forwarding to another site first; on both engines.

use axum::routing::post;
use yiren_core::customer::settings as methods;
use yiren_core::Clock as _;
use yiren_testkit::{both_engines, TestApp};

const TOKEN: &str = "wx-callback-token";

/// What WeChat would send: the signed query string for `timestamp` and `nonce`.
fn signed_query(token: &str, timestamp: i64, nonce: &str) -> String {
    use sha1::Digest;
    let mut parts = [token.to_string(), timestamp.to_string(), nonce.to_string()];
    parts.sort();
    let sig = hex::encode(sha1::Sha1::digest(parts.concat().as_bytes()));
    format!("signature={sig}&timestamp={timestamp}&nonce={nonce}&openid=ignored")
}

fn text_message(openid: &str, content: &str, msg_id: &str, at: i64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>\
         <CreateTime>{at}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>\
         <MsgId>{msg_id}</MsgId></xml>"
    )
}

struct Wx<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
}

impl Wx<'_> {
    fn now(&self) -> i64 {
        self.app.clock.now_ms() / 1000
    }

    async fn post(&self, token: &str, at: i64, body: String) -> reqwest::Response {
        let q = signed_query(token, at, "n0nce");
        self.http
            .post(self.app.url(&format!("/wechat/callback?{q}")))
            .header("content-type", "text/xml")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn send(&self, openid: &str, content: &str, msg_id: &str) -> (u16, String) {
        let at = self.now();
        let r = self
            .post(TOKEN, at, text_message(openid, content, msg_id, at))
            .await;
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

async fn enable(app: &TestApp, forward: &str) {
    let mut m = methods::load(&app.state.ctx).await.unwrap();
    m.wechat = methods::WechatSettings {
        enabled: true,
        token: TOKEN.into(),
        account_name: "小店服务号".into(),
        qr_image_url: "https://example.com/qr.png".into(),
        forward_url: forward.into(),
    };
    methods::save(&app.state.ctx, &m).await.unwrap();
    let stored = yiren_store::settings::get(app.state.ctx.db.read(), "customer_auth")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !stored.contains(TOKEN),
        "the callback token is encrypted at rest"
    );
}

/// Open the WeChat sign-in page in `c`, get a code; returns (code, csrf).
async fn get_code(app: &TestApp, c: &reqwest::Client, link: bool) -> (String, String) {
    let page = c
        .get(app.url(if link {
            "/account/wechat?link=1"
        } else {
            "/account/wechat"
        }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = yiren_testkit::csrf_of(&page);
    let mut form = vec![("_csrf", csrf.as_str())];
    if link {
        form.push(("link", "1"));
    }
    let page = c
        .post(app.url("/account/wechat/start"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("小店服务号") && page.contains("qr.png"));
    let start = page.find("id=\"wechat-code\"").expect("code shown");
    let strong = start + page[start..].find("<strong>").unwrap() + "<strong>".len();
    let code: String = page[strong..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert_eq!(code.len(), 6);
    (code, yiren_testkit::csrf_of(&page))
}

async fn poll(
    app: &TestApp,
    c: &reqwest::Client,
    code: &str,
    csrf: &str,
) -> (serde_json::Value, reqwest::StatusCode) {
    let r = c
        .post(app.url("/account/wechat/poll"))
        .header("accept", "application/json")
        .form(&[("_csrf", csrf), ("code", code)])
        .send()
        .await
        .unwrap();
    let st = r.status();
    (r.json().await.unwrap(), st)
}

both_engines! {
    async fn a_code_sent_to_the_account_signs_the_waiting_browser_in(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        enable(&app, "").await;
        let wx = Wx { app: &app, http: app.client() };
        // WeChat's configuration check: echo echostr only with a valid signature.
        let q = signed_query(TOKEN, wx.now(), "abc");
        let r = wx.http.get(app.url(&format!("/wechat/callback?{q}&echostr=hello123"))).send().await.unwrap();
        assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (200, "hello123".to_string()));
        let q = signed_query("wrong", wx.now(), "abc");
        assert_eq!(wx.http.get(app.url(&format!("/wechat/callback?{q}&echostr=x"))).send().await.unwrap().status(), 403);

        let browser = app.client();
        let (code, csrf) = get_code(&app, &browser, false).await;
        let (a, _) = poll(&app, &browser, &code, &csrf).await;
        assert_eq!(a["done"], false);
        // A forged message (wrong token) changes nothing.
        let at = wx.now();
        let r = wx.post("not-the-token", at, text_message("oEVIL", &code, "1", at)).await;
        assert_eq!(r.status(), 403);
        // A stale but correctly signed message is refused too (replay of an old capture).
        let old = wx.now() - 3600;
        assert_eq!(wx.post(TOKEN, old, text_message("oEVIL", &code, "2", old)).await.status(), 403);
        assert_eq!(poll(&app, &browser, &code, &csrf).await.0["done"], false);
        // The real message: bound, with a confirmation reply in XML to the sender.
        let (st, reply) = wx.send("oUSER1", &format!("登录 {code}"), "1001").await;
        assert_eq!(st, 200);
        assert!(reply.contains("<ToUserName><![CDATA[oUSER1]]></ToUserName>") && reply.contains("<FromUserName><![CDATA[gh_test]]></FromUserName>"));
        assert!(reply.contains("登录成功"), "{reply}");
        // WeChat retries (same MsgId) get the same reply and bind nothing new.
        let (_, again) = wx.send("oUSER1", &format!("登录 {code}"), "1001").await;
        assert_eq!(again, reply);
        // The browser completes without reloading: the poll answers done and sets the session.
        let (a, st) = poll(&app, &browser, &code, &csrf).await;
        assert_eq!(st, 200);
        assert_eq!(a["done"], true);
        assert_eq!(a["redirect"], "/account?notice=account.welcome");
        assert_eq!(browser.get(app.url("/account")).send().await.unwrap().status(), 200);
        // Used up: the same code cannot sign in anyone else.
        let (_, reply) = wx.send("oOTHER", &code, "1002").await;
        assert!(reply.contains("已过期") || reply.contains("错误"), "{reply}");
        assert!(yiren_store::customer::find_identity(app.state.ctx.db.read(), "wechat", "oUSER1").await.unwrap().is_some(), "identity stored");
        // Next time the same OpenID opens the same account.
        let b2 = app.client();
        let (code, csrf) = get_code(&app, &b2, false).await;
        wx.send("oUSER1", &code, "1003").await;
        let (a, _) = poll(&app, &b2, &code, &csrf).await;
        assert_eq!(a["redirect"], "/account");
        assert_eq!(yiren_core::customer::count(&app.state.ctx).await.unwrap(), 1);
    }

    async fn codes_are_bound_to_their_browser_and_expire(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        enable(&app, "").await;
        let wx = Wx { app: &app, http: app.client() };
        let browser = app.client();
        let (code, _) = get_code(&app, &browser, false).await;
        wx.send("oUSER2", &code, "2001").await;
        // Another browser that learns the code cannot collect the session.
        let thief = app.client();
        let (_, thief_csrf) = get_code(&app, &thief, false).await;
        let (a, _) = poll(&app, &thief, &code, &thief_csrf).await;
        assert_eq!((a["done"].as_bool(), a["expired"].as_bool()), (Some(false), Some(true)));
        // Expiry: a code older than 5 minutes is not bound.
        let (late, late_csrf) = get_code(&app, &thief, false).await;
        app.clock.advance(5 * 60_000 + 1_000);
        let (_, reply) = wx.send("oUSER3", &late, "2002").await;
        assert!(reply.contains("已过期"), "{reply}");
        assert_eq!(poll(&app, &thief, &late, &late_csrf).await.0["expired"], true);
        // Messages without a code get help; a follow event gets a welcome.
        let (_, reply) = wx.send("oUSER3", "你好", "2003").await;
        assert!(reply.contains("6 位验证码"));
        let at = wx.now();
        let event = format!("<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[oNEW]]></FromUserName><CreateTime>{at}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>");
        let r = wx.post(TOKEN, at, event).await;
        assert!(r.text().await.unwrap().contains("感谢关注"));
        // Junk bodies are a 400, not a crash.
        assert_eq!(wx.post(TOKEN, wx.now(), "<xml><!DOCTYPE x></xml>".into()).await.status(), 400);
    }

    async fn a_signed_in_customer_links_wechat_and_it_is_never_moved(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        enable(&app, "").await;
        let wx = Wx { app: &app, http: app.client() };
        let a = app.customer("a@example.com").await;
        let (code, csrf) = get_code(&app, &a, true).await;
        wx.send("oLINK", &code, "3001").await;
        let (ans, _) = poll(&app, &a, &code, &csrf).await;
        assert_eq!(ans["redirect"], "/account/security?notice=account.identity_linked");
        let b = app.customer("b@example.com").await;
        let (code, csrf) = get_code(&app, &b, true).await;
        wx.send("oLINK", &code, "3002").await;
        let (ans, st) = poll(&app, &b, &code, &csrf).await;
        assert_eq!(st, 409);
        assert!(ans["error"].as_str().unwrap().contains("另一个账户"));
        let owner = yiren_store::customer::find_identity(app.state.ctx.db.read(), "wechat", "oLINK").await.unwrap().unwrap().customer_id;
        assert_eq!(owner, yiren_store::customer::find_by_email(app.state.ctx.db.read(), "a@example.com").await.unwrap().unwrap().id);
    }

    async fn messages_are_offered_to_the_forward_target_first(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        // The other site handles messages that start with "other", and ignores the rest (empty body).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = format!("http://{}/wx", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen2 = seen.clone();
        let router = axum::Router::new().route("/wx", post(move |q: axum::extract::RawQuery, body: String| {
            let seen = seen2.clone();
            async move {
                seen.lock().unwrap().push(q.0.unwrap_or_default());
                if body.contains("other") { "<xml><Content><![CDATA[from the other site]]></Content></xml>".to_string() } else { String::new() }
            }
        }));
        tokio::spawn(async move { axum::serve(listener, router).await.ok() });
        enable(&app, &target).await;
        let wx = Wx { app: &app, http: app.client() };
        let (st, reply) = wx.send("oFWD", "other: hello", "4001").await;
        assert_eq!(st, 200);
        assert!(reply.contains("from the other site"), "{reply}");
        // Not handled there: handled here.
        let browser = app.client();
        let (code, csrf) = get_code(&app, &browser, false).await;
        let (_, reply) = wx.send("oFWD", &code, "4002").await;
        assert!(reply.contains("登录成功"), "{reply}");
        assert_eq!(poll(&app, &browser, &code, &csrf).await.0["done"], true);
        // The target got WeChat's signed query string, so it can check the signature itself.
        assert!(seen.lock().unwrap().iter().all(|q| q.contains("signature=") && q.contains("nonce=n0nce")));
        assert_eq!(seen.lock().unwrap().len(), 2);
        // A target that is down does not stop sign-in.
        enable(&app, "http://127.0.0.1:9/down").await;
        let b2 = app.client();
        let (code, csrf) = get_code(&app, &b2, false).await;
        let (_, reply) = wx.send("oFWD2", &code, "4003").await;
        assert!(reply.contains("登录成功"));
        assert_eq!(poll(&app, &b2, &code, &csrf).await.0["done"], true);
    }
}
