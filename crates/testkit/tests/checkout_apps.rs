//! The checkout for the owner's other apps (收银台), over real HTTP on both engines: an app
//! registered in admin sends its customer with a signed request; the customer pays through a
//! gateway (the `fakepay` protocol or the manual one); the app hears back three ways — the signed
//! return, `GET /api/v1/app-orders/{id}` with its id and secret, and a signed webhook retried
//! until it is taken. Forged, stale and malformed requests place nothing; one reference is one
//! order, however often and however concurrently it is sent.
//!
//! The test plays the app: it signs and verifies with its own HMAC code, written from the rules
//! in docs/checkout-apps.md, not with the server's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use yiren_core::catalog::Kind;
use yiren_core::order;
use yiren_testkit::fake_pay::{self, FakePay};
use yiren_testkit::{both_engines, location, product, wait_until, TestApp};

const OWNER: &str = "owner@example.com";
const PW: &str = "correct horse battery staple";
const PAY_SECRET: &str = "fakepay-secret-0123456789";

/// One webhook delivery: its headers and body.
type Delivery = (BTreeMap<String, String>, String);
/// A request's parameters, the status it gets, and words its page must say.
type Case<'a> = (Vec<(&'a str, String)>, u16, &'a str);

/// What the app's server was sent: (headers, body) per webhook delivery.
#[derive(Clone, Default)]
struct AppServer {
    hooks: Arc<Mutex<Vec<Delivery>>>,
    /// Answer the next this many deliveries with 500.
    fail: Arc<Mutex<usize>>,
    base: String,
}

async fn hook(State(s): State<AppServer>, headers: HeaderMap, body: String) -> StatusCode {
    let h = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    s.hooks.lock().unwrap().push((h, body));
    let mut fail = s.fail.lock().unwrap();
    if *fail > 0 {
        *fail -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

impl AppServer {
    async fn start() -> AppServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = AppServer {
            base: format!("http://{}", listener.local_addr().unwrap()),
            ..Default::default()
        };
        let router = axum::Router::new()
            .route("/hook", post(hook))
            .with_state(s.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.ok() });
        s
    }
    fn hooks(&self) -> Vec<Delivery> {
        self.hooks.lock().unwrap().clone()
    }
}

fn hmac_hex(secret: &str, text: &str) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(text.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// The app's side of the rule: every parameter but `sig`, sorted by name, `k=v` joined by `&`.
fn signature(secret: &str, params: &[(&str, String)]) -> String {
    let mut p: Vec<String> = params
        .iter()
        .filter(|(k, _)| *k != "sig")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    p.sort();
    hmac_hex(secret, &p.join("&"))
}

/// A signed request's query string.
fn signed(secret: &str, params: &[(&str, String)]) -> String {
    let mut p: Vec<(&str, String)> = params.to_vec();
    p.push(("sig", signature(secret, params)));
    serde_urlencoded::to_string(&p).unwrap()
}

fn now_s(app: &TestApp) -> i64 {
    yiren_core::Clock::now_ms(&app.clock) / 1000
}

fn request(
    app: &TestApp,
    reference: &str,
    amount: &str,
    title: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("ref", reference.to_string()),
        ("amount", amount.to_string()),
        ("currency", "CNY".to_string()),
        ("title", title.to_string()),
        ("ts", now_s(app).to_string()),
    ]
}

/// Register an app through the admin form; its id and secret as the page shows them once.
async fn register(
    app: &TestApp,
    owner: &reqwest::Client,
    name: &str,
    server: &AppServer,
) -> (String, String) {
    let csrf = app.csrf(owner, "/admin/checkout-apps").await;
    let r = owner
        .post(app.url("/admin/checkout-apps"))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("name", name),
            ("return_url", &format!("{}/paid?from=yiren", server.base)),
            ("webhook_url", &format!("{}/hook", server.base)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let grab = |id: &str| {
        let at = page
            .find(&format!("id=\"{id}\">"))
            .unwrap_or_else(|| panic!("{id} in {page}"));
        let rest = &page[at + id.len() + 6..];
        rest[..rest.find('<').unwrap()].to_string()
    };
    (grab("new-app-id"), grab("new-app-secret"))
}

async fn app_with_gateway(engine: yiren_testkit::Engine) -> (TestApp, reqwest::Client) {
    yiren_testkit::init_logs();
    let app = TestApp::spawn_with_gateways(engine, vec![Arc::new(FakePay::new(PAY_SECRET))]).await;
    let owner = app.setup_owner(OWNER, PW).await;
    (app, owner)
}

/// The fakepay notification that the order was paid.
async fn pay_by_notification(app: &TestApp, order_id: i64, amount: &str) {
    let mut p: Vec<(String, String)> = [
        ("merchant", "M100".to_string()),
        ("order", order_id.to_string()),
        ("txn", format!("T{order_id}")),
        ("amount", amount.to_string()),
        ("currency", "CNY".to_string()),
        ("status", "paid".to_string()),
        ("t", now_s(app).to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let sig = fake_pay::sign(PAY_SECRET, &p);
    p.push(("sign".into(), sig));
    let r = app
        .client()
        .post(app.url("/payments/fakepay/notify"))
        .form(&p)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Check a webhook delivery's signature as the app would; its JSON body.
fn verified_hook(
    secret: &str,
    (headers, body): &(BTreeMap<String, String>, String),
) -> serde_json::Value {
    let sig = &headers["yiren-signature"];
    let (t, v1) = sig.split_once(",v1=").unwrap();
    let t = t.strip_prefix("t=").unwrap();
    assert_eq!(
        v1,
        hmac_hex(secret, &format!("{t}.{body}")),
        "webhook signature"
    );
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(headers["yiren-event-id"], v["id"].as_str().unwrap());
    v
}

/// Check a return URL's signature as the app would; its parameters.
fn verified_return(secret: &str, server: &AppServer, url: &str) -> BTreeMap<String, String> {
    assert!(
        url.starts_with(&format!("{}/paid?from=yiren&", server.base)),
        "{url}"
    );
    let q = url::Url::parse(url).unwrap();
    let p: Vec<(String, String)> = q.query_pairs().into_owned().collect();
    let mine: Vec<(&str, String)> = p
        .iter()
        .filter(|(k, _)| k != "from")
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let m: BTreeMap<String, String> = p.iter().cloned().collect();
    assert_eq!(m["sig"], signature(secret, &mine), "return signature");
    m
}

async fn api(app: &TestApp, id: &str, user: &str, pass: &str) -> (u16, serde_json::Value) {
    let r = app
        .client()
        .get(app.url(&format!("/api/v1/app-orders/{id}")))
        .basic_auth(user, Some(pass))
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or_default())
}

async fn app_orders(app: &TestApp) -> usize {
    app.snapshot()
        .await
        .iter()
        .filter(|r| r["table"] == "app_orders")
        .count()
}

both_engines! {
    /// End to end: the app's customer pays through a gateway; the app hears back through the
    /// signed return, the API and the signed webhook; the order is the owner's like any other.
    async fn an_app_customer_pays_and_the_app_hears_back_three_ways(engine: Engine) {
        let (app, owner) = app_with_gateway(engine).await;
        let server = AppServer::start().await;
        let (app_id, secret) = register(&app, &owner, "课程站", &server).await;
        // Write-only: the secret is in no table and not on the page again.
        assert!(!serde_json::to_string(&app.snapshot().await).unwrap().contains(&secret));
        let page = owner.get(app.url("/admin/checkout-apps")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("课程站") && !page.contains(&secret), "{page}");

        let q = signed(&secret, &request(&app, "course-42", "1990", "Rust 入门课"));
        let customer = app.client();
        let r = customer.get(app.url(&format!("/pay/{app_id}?{q}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        assert!(page.contains("Rust 入门课") && page.contains("19.90") && page.contains("课程站"), "{page}");
        assert_eq!(app_orders(&app).await, 0, "looking places nothing");

        // The form sends the signed parameters back, with the email and the gateway.
        let form = |gateway: &str| {
            let mut f: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .map(|(k, v)| (format!("p.{k}"), v))
                .collect();
            f.push(("email".into(), "learner@example.com".into()));
            f.push(("gateway".into(), gateway.into()));
            f
        };
        let r = customer.post(app.url(&format!("/pay/{app_id}"))).header("origin", app.url("")).form(&form("fakepay")).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert!(location(&r).starts_with("https://fakepay.test/pay?"), "out to the gateway: {}", location(&r));
        let orders = order::list(&app.state.ctx, None, 10, 0).await.unwrap();
        assert_eq!(orders.len(), 1);
        let o = order::get(&app.state.ctx, orders[0].id).await.unwrap();
        assert_eq!((o.row.total, o.row.currency.as_str(), o.row.email.as_str(), o.row.gateway.as_str()), (1990, "CNY", "learner@example.com", "fakepay"));
        assert_eq!((o.lines.len(), o.lines[0].title.as_str(), o.lines[0].kind.as_str(), o.lines[0].variant_id), (1, "Rust 入门课", "custom", None));
        let id = o.row.id;

        // The same request again (a reload, a second tab): the same order, at its page.
        let r = customer.post(app.url(&format!("/pay/{app_id}"))).header("origin", app.url("")).form(&form("fakepay")).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let r = customer.get(app.url(&format!("/pay/{app_id}?{q}"))).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert!(location(&r).starts_with(&format!("/orders/{id}?key=")), "{}", location(&r));
        assert_eq!(order::list(&app.state.ctx, None, 10, 0).await.unwrap().len(), 1);
        assert_eq!(app_orders(&app).await, 1);
        // Pending: the API says so; no webhook yet.
        let (s, v) = api(&app, &id.to_string(), &app_id, &secret).await;
        assert_eq!((s, v["app_order"]["status"].as_str()), (200, Some("pending")));
        assert!(server.hooks().is_empty());

        // The gateway's notification pays it.
        pay_by_notification(&app, id, "19.90").await;
        wait_until("the webhook", || async { !server.hooks().is_empty() }).await;
        let v = verified_hook(&secret, &server.hooks()[0]);
        assert_eq!(v["type"], "order.paid");
        let d = &v["data"];
        assert_eq!((d["id"].as_str(), d["app_id"].as_str(), d["ref"].as_str(), d["status"].as_str(), d["amount"].as_i64(), d["currency"].as_str()),
            (Some(id.to_string().as_str()), Some(app_id.as_str()), Some("course-42"), Some("paid"), Some(1990), Some("CNY")));
        assert!(d["paid_at"].is_string());

        // The customer's page sends them back to the app with the signed order id.
        let key = order::access_key(&app.state.ctx, id);
        let r = customer.get(app.url(&format!("/orders/{id}?key={key}"))).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let back = verified_return(&secret, &server, &location(&r));
        assert_eq!((back["order_id"].as_str(), back["ref"].as_str(), back["status"].as_str()), (id.to_string().as_str(), "course-42", "paid"));
        let status: serde_json::Value = customer.get(app.url(&format!("/orders/{id}/status?key={key}"))).send().await.unwrap().json().await.unwrap();
        verified_return(&secret, &server, status["return_url"].as_str().unwrap());
        // And the original link, used again, goes back to the app too.
        let r = customer.get(app.url(&format!("/pay/{app_id}?{q}"))).send().await.unwrap();
        assert_eq!(r.status(), 303);
        verified_return(&secret, &server, &location(&r));

        // The app confirms with one authenticated call.
        let (s, v) = api(&app, &back["order_id"], &app_id, &secret).await;
        assert_eq!(s, 200, "{v}");
        let a = &v["app_order"];
        assert_eq!((a["status"].as_str(), a["ref"].as_str(), a["amount"].as_i64(), a["title"].as_str(), a["email"].as_str(), a["number"].as_i64()),
            (Some("paid"), Some("course-42"), Some(1990), Some("Rust 入门课"), Some("learner@example.com"), Some(o.row.number)));
        // Wrong secret, no credentials, a bearer token: 401 asking for Basic; a stranger's id: 401.
        for (user, pass) in [(app_id.as_str(), "ysk_wrong"), ("1", secret.as_str()), ("x", "y")] {
            let (s, v) = api(&app, &id.to_string(), user, pass).await;
            assert_eq!(s, 401, "{user}: {v}");
        }
        let r = app.client().get(app.url(&format!("/api/v1/app-orders/{id}"))).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic "));
        let token = app.api_token(&owner, yiren_core::api_token::SCOPES).await;
        let r = app.client().get(app.url(&format!("/api/v1/app-orders/{id}"))).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 401, "the owner's token is not an app's credential");
        // Another app sees nothing of it (the same 404 as an order that does not exist).
        let (other_id, other_secret) = register(&app, &owner, "另一个应用", &server).await;
        for oid in [id.to_string(), "1".into(), "x".into()] {
            let (s, _) = api(&app, &oid, &other_id, &other_secret).await;
            assert_eq!(s, 404, "{oid}");
        }

        // The owner sees it like any other order, with where it came from.
        let list = owner.get(app.url("/admin/orders")).send().await.unwrap().text().await.unwrap();
        assert!(list.contains(&format!("#{}", o.row.number)), "{list}");
        let detail = owner.get(app.url(&format!("/admin/orders/{id}"))).send().await.unwrap().text().await.unwrap();
        assert!(detail.contains("id=\"via-app\"") && detail.contains("course-42"), "{detail}");
        let page = owner.get(app.url("/admin/checkout-apps")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("1 笔订单，已付款 1 笔") || page.contains("1 orders, 1 paid"), "{page}");
        assert_eq!(server.hooks().len(), 1, "one webhook per event");
        assert!(order::audit(&app.state.ctx).await.unwrap().is_empty());
    }

    /// Forged, stale and malformed requests — on the page and in the form — place nothing and say
    /// why in the customer's language; a disabled app takes no one; a reference is one order.
    async fn bad_requests_place_nothing_and_a_reference_is_one_order(engine: Engine) {
        let (app, owner) = app_with_gateway(engine).await;
        let server = AppServer::start().await;
        let (app_id, secret) = register(&app, &owner, "Tool", &server).await;
        let c = app.client();
        let get = |q: String, lang: &'static str| {
            let c = c.clone();
            let url = app.url(&format!("/pay/{app_id}?{q}"));
            async move {
                let r = c.get(url).header("accept-language", lang).send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        let good = request(&app, "r-1", "500", "Pro plan");
        let with = |k: &'static str, v: &str| {
            let mut p = good.clone();
            match p.iter_mut().find(|(n, _)| *n == k) {
                Some(x) => x.1 = v.to_string(),
                None => p.push((k, v.to_string())),
            }
            p
        };
        let without = |k: &str| good.iter().filter(|(n, _)| *n != k).cloned().collect::<Vec<_>>();
        // Signed by the right secret, then changed: 403.
        let tampered = signed(&secret, &good).replace("amount=500", "amount=1");
        let (s, body) = get(tampered, "en").await;
        assert_eq!(s, 403);
        assert!(body.contains("not signed by the app"), "{body}");
        let (s, body) = get(signed("ysk_someone_else", &good), "zh-CN").await;
        assert_eq!(s, 403);
        assert!(body.contains("不是它所声称的应用签发的"), "{body}");
        assert_eq!(get(serde_urlencoded::to_string(&good).unwrap(), "en").await.0, 403, "unsigned");
        let now = now_s(&app);
        let cases: Vec<Case> = vec![
            (with("ts", &(now - 31 * 60).to_string()), 400, "expired"),
            (with("ts", &(now + 31 * 60).to_string()), 400, "expired"),
            (with("ts", "yesterday"), 400, "timestamp"),
            (with("currency", "USD"), 400, "currency"),
            (with("amount", "0"), 400, "minor units"),
            (with("amount", "19.90"), 400, "minor units"),
            (with("amount", "99999999999999999999"), 400, "minor units"),
            (with("title", " "), 400, "title"),
            (without("title"), 400, "title"),
            (without("amount"), 400, "either an amount"),
            (with("product", "anything"), 400, "either an amount"),
            (with("ref", &"x".repeat(65)), 400, "reference"),
            (with("ref", "has space"), 400, "reference"),
            (with("coupon", "FREE"), 400, "parameter"),
            (with("email", "not-an-email"), 400, "email"),
        ];
        for (p, status, words) in &cases {
            let (s, body) = get(signed(&secret, p), "en").await;
            assert_eq!(s, *status, "{p:?}: {body}");
            assert!(body.to_lowercase().contains(words), "{p:?} should say {words}: {body}");
        }
        let mut repeated = signed(&secret, &good);
        repeated.push_str("&amount=500");
        assert_eq!(get(repeated, "en").await.0, 400, "a repeated parameter");
        // Unknown apps: 404.
        for other in ["1", "x", "-1"] {
            let r = c.get(app.url(&format!("/pay/{other}?{}", signed(&secret, &good)))).send().await.unwrap();
            assert_eq!(r.status(), 404, "{other}");
        }
        // The form is checked again: hidden fields changed in the browser are refused.
        let post = |fields: Vec<(String, String)>| {
            let c = c.clone();
            let url = app.url(&format!("/pay/{app_id}"));
            let origin = app.url("");
            async move { c.post(url).header("origin", origin).form(&fields).send().await.unwrap().status().as_u16() }
        };
        let fields = |q: &str, gateway: &str| {
            let mut f: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes()).into_owned().map(|(k, v)| (format!("p.{k}"), v)).collect();
            f.push(("email".into(), "buyer@example.com".into()));
            f.push(("gateway".into(), gateway.into()));
            f
        };
        let q = signed(&secret, &good);
        let mut forged = fields(&q, "manual");
        forged.iter_mut().find(|(k, _)| k == "p.amount").unwrap().1 = "1".into();
        assert_eq!(post(forged).await, 403);
        assert_eq!(post(fields(&q, "nope")).await, 422, "an unknown gateway");
        let r = c.post(app.url(&format!("/pay/{app_id}"))).header("origin", "https://evil.example").form(&fields(&q, "manual")).send().await.unwrap();
        assert_eq!(r.status(), 403, "a cross-site post");
        assert_eq!(app_orders(&app).await, 0);
        assert!(order::list(&app.state.ctx, None, 10, 0).await.unwrap().is_empty(), "nothing placed");

        // The same reference sent by 8 tabs at once: one order.
        let mut tasks = vec![];
        for _ in 0..8 {
            let f = fields(&q, "manual");
            let c = c.clone();
            let url = app.url(&format!("/pay/{app_id}"));
            let origin = app.url("");
            tasks.push(tokio::spawn(async move { c.post(url).header("origin", origin).form(&f).send().await.unwrap().status().as_u16() }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 303);
        }
        assert_eq!(order::list(&app.state.ctx, None, 10, 0).await.unwrap().len(), 1);
        assert_eq!(app_orders(&app).await, 1);
        // The same reference for something else: refused, nothing new.
        let other = signed(&secret, &request(&app, "r-1", "900", "Pro plan"));
        let (s, body) = get(other.clone(), "en").await;
        assert_eq!(s, 409);
        assert!(body.contains("already used this reference"), "{body}");
        assert_eq!(post(fields(&other, "manual")).await, 409);
        assert_eq!(order::list(&app.state.ctx, None, 10, 0).await.unwrap().len(), 1);

        // Switched off: nobody is sent to pay; its existing order still answers the API.
        let csrf = app.csrf(&owner, "/admin/checkout-apps").await;
        let r = owner.post(app.url(&format!("/admin/checkout-apps/{app_id}/disable"))).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let (s, body) = get(signed(&secret, &request(&app, "r-2", "500", "Pro plan")), "en").await;
        assert_eq!(s, 409);
        assert!(body.contains("no longer takes payments"), "{body}");
        let id = order::list(&app.state.ctx, None, 1, 0).await.unwrap()[0].id;
        assert_eq!(api(&app, &id.to_string(), &app_id, &secret).await.0, 200);
        // A new secret: the old one stops working at once.
        let r = owner.post(app.url(&format!("/admin/checkout-apps/{app_id}/secret"))).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        let page = r.text().await.unwrap();
        let at = page.find("id=\"new-app-secret\">").unwrap() + "id=\"new-app-secret\">".len();
        let fresh = page[at..at + page[at..].find('<').unwrap()].to_string();
        assert_ne!(fresh, secret);
        assert_eq!(api(&app, &id.to_string(), &app_id, &secret).await.0, 401);
        assert_eq!(api(&app, &id.to_string(), &app_id, &fresh).await.0, 200);
        // Bad registrations are refused with the reason.
        let r = owner.post(app.url("/admin/checkout-apps")).form(&[("_csrf", csrf.as_str()), ("name", "X"), ("return_url", "javascript:alert(1)"), ("webhook_url", "")]).send().await.unwrap();
        assert_eq!(r.status(), 422);
        assert!(order::audit(&app.state.ctx).await.unwrap().is_empty());
    }

    /// A product named by handle is priced from the catalog (the request carries no price); goods
    /// that ship are refused; the manual gateway works too; cancellation and refunds reach the app
    /// by webhook, retried until the app takes them.
    async fn a_product_is_priced_from_the_catalog_and_later_news_is_retried_to_the_app(engine: Engine) {
        let (app, owner) = app_with_gateway(engine).await;
        let ctx = &app.state.ctx;
        let server = AppServer::start().await;
        let (app_id, secret) = register(&app, &owner, "Ebooks", &server).await;
        let v = product(ctx, "guide", Kind::Digital, &[("G", 2_900, 100)]).await[0];
        product(ctx, "mug", Kind::Physical, &[("M", 4_900, 100)]).await;
        let req = |reference: &str, handle: &str, extra: &[(&'static str, String)]| {
            let mut p = vec![
                ("ref", reference.to_string()),
                ("product", handle.to_string()),
                ("currency", "CNY".to_string()),
                ("ts", now_s(&app).to_string()),
            ];
            p.extend_from_slice(extra);
            signed(&secret, &p)
        };
        let c = app.client();
        let page = c.get(app.url(&format!("/pay/{app_id}?{}", req("b-1", "guide", &[("quantity", "2".into())])))).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let text = page.text().await.unwrap();
        assert!(text.contains("guide") && text.contains("58.00"), "{text}");
        for (handle, extra, words) in [
            ("mug", vec![], "shipping"),
            ("nothing", vec![], "not for sale"),
            ("guide", vec![("variant", "1".to_string())], "not for sale"),
            ("guide", vec![("quantity", "0".to_string())], "quantit"),
            ("guide", vec![("amount", "1".to_string()), ("title", "cheap".to_string())], "either an amount"),
        ] {
            let r = c.get(app.url(&format!("/pay/{app_id}?{}", req("b-x", handle, &extra)))).header("accept-language", "en").send().await.unwrap();
            assert_eq!(r.status(), 400, "{handle} {extra:?}");
            let body = r.text().await.unwrap().to_lowercase();
            assert!(body.contains(words), "{handle}: {body}");
        }
        let place = |q: String, email: &'static str| {
            let c = c.clone();
            let url = app.url(&format!("/pay/{app_id}"));
            let origin = app.url("");
            async move {
                let mut f: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes()).into_owned().map(|(k, v)| (format!("p.{k}"), v)).collect();
                f.push(("email".into(), email.into()));
                f.push(("gateway".into(), "manual".into()));
                let r = c.post(url).header("origin", origin).form(&f).send().await.unwrap();
                assert_eq!(r.status(), 303);
                location(&r)
            }
        };
        let to = place(req("b-1", "guide", &[("quantity", "2".into()), ("variant", v.to_string())]), "reader@example.com").await;
        assert!(to.starts_with("/orders/"), "the manual gateway's page: {to}");
        let first = order::list(ctx, None, 1, 0).await.unwrap()[0].id;
        let o = order::get(ctx, first).await.unwrap();
        assert_eq!((o.row.total, o.lines[0].variant_id, o.lines[0].quantity), (5_800, Some(v), 2));
        place(req("b-2", "guide", &[]), "other@example.com").await;
        let second = order::list(ctx, None, 1, 0).await.unwrap()[0].id;
        assert_ne!(first, second);

        // The app's server is down for the first two deliveries: retried until taken.
        *server.fail.lock().unwrap() = 2;
        order::confirm_manual(ctx, first, OWNER).await.unwrap();
        order::cancel(ctx, second, OWNER, false).await.unwrap();
        for _ in 0..3 {
            wait_until("a delivery", || async { server.hooks().len() >= 2 }).await;
            app.clock.advance(3_600_000);
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        wait_until("both delivered", || async {
            let hooks = server.hooks();
            hooks.len() >= 4
        }).await;
        let hooks = server.hooks();
        let mut delivered: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        for h in &hooks {
            let v = verified_hook(&secret, h);
            delivered.insert(v["type"].as_str().unwrap().to_string(), v);
        }
        assert_eq!(delivered["order.paid"]["data"]["id"], first.to_string());
        assert_eq!(delivered["order.paid"]["data"]["status"], "paid");
        assert_eq!(delivered["order.cancelled"]["data"]["id"], second.to_string());
        assert_eq!(delivered["order.cancelled"]["data"]["status"], "cancelled");
        // Retried deliveries of one event carry the same event id (the app dedupes on it).
        let ids: std::collections::BTreeSet<&str> = hooks.iter().map(|(h, _)| h["yiren-event-id"].as_str()).collect();
        assert_eq!(ids.len(), 2, "{hooks:?}");
        // The cancelled order's page sends its customer back to the app, which hears `cancelled`.
        let key = order::access_key(ctx, second);
        let r = c.get(app.url(&format!("/orders/{second}?key={key}"))).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(verified_return(&secret, &server, &location(&r))["status"], "cancelled");
        assert!(order::audit(ctx).await.unwrap().is_empty());
    }
}
