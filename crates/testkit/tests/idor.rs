//! RELIABILITY IDOR-1: the authorisation matrix, generated from the router itself. Every route the
//! real router holds (read from the router's own table: paths and methods) must have a row here —
//! a new route without one fails this test — and every row is checked over real HTTP on both
//! engines:
//!
//! - `/admin/…` (staff): anonymous and a signed-in customer get the sign-in redirect (or 401/403/
//!   404), never the page or the action;
//! - `/api/v1/…` (bearer token, one scope per method): no token → 401, a token with every scope but
//!   that one → 403, a token with it → neither;
//! - a customer's own things (orders, downloads, sessions, identities, passkeys, order history) and
//!   URLs that carry their own credential (order keys, signed links, tokens, licence keys): another
//!   customer or a stranger gets 404 (no existence oracle) or the sign-in page, never the object;
//! - public routes: anyone; no one's object behind them.

use std::collections::{BTreeMap, BTreeSet};

use yiren_core::catalog::Kind;
use yiren_core::checkout::{self, Submit};
use yiren_core::{cart, delivery, order};
use yiren_testkit::{both_engines, csrf_of, location, product, TestApp};

const OWNER: &str = "owner@example.com";
const PW: &str = "correct horse battery staple";

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Anyone; nobody's object is behind it.
    Public,
    /// Staff signed in to admin.
    Staff,
    /// An API token carrying this scope.
    Scope(&'static str),
    /// A customer's own object, or a URL carrying its own credential: the named check below
    /// proves strangers get nothing.
    Guarded(&'static str),
}

use Class::*;

/// The matrix: one row per (method, path) outside `/admin` (where every route is staff-only by
/// the admin router's layer, and checked one by one below).
fn row(method: &str, path: &str) -> Option<Class> {
    let api = |read: &'static str, write: &'static str| {
        Some(Scope(if method == "GET" { read } else { write }))
    };
    Some(match path {
        "/admin/sign-in" => Public,
        p if p.starts_with("/admin") => Staff,
        // Storefront, cart, checkout: the visitor's own cookie cart; nobody else's data.
        "/"
        | "/products/{handle}"
        | "/collections/{handle}"
        | "/search"
        | "/robots.txt"
        | "/sitemap.xml"
        | "/lang/{tag}"
        | "/campaigns/{handle}/widget"
        | "/campaigns/{handle}/progress"
        | "/cart"
        | "/cart/add"
        | "/cart/update"
        | "/checkout" => Public,
        "/assets/yiren.css"
        | "/assets/passkeys.js"
        | "/assets/media-order.js"
        | "/assets/order-status.js"
        | "/healthz"
        | "/readyz"
        | "/media/{*key}" => Public,
        // Payment notifications: the gateway's signature is the credential (tests: payments.rs).
        "/payments/{gateway}/notify" => Public,
        "/orders/{id}" => Guarded("order page"),
        "/orders/{id}/status" => Guarded("order status"),
        "/confirm-payment/{id}" => Guarded("confirm link"),
        "/downloads/{entitlement}/{file}" => Guarded("download"),
        "/setup/{token}" => Guarded("setup token"),
        // The owner's apps' checkout: the app's signature is the credential (tests:
        // checkout_apps.rs); their API: the app's id and secret.
        "/pay/{app}" => Guarded("app signature"),
        "/api/v1/app-orders/{id}" => Guarded("app credentials"),
        // Signing in and up: nothing of anyone's until signed in.
        "/account/sign-in"
        | "/account/code"
        | "/account/verify"
        | "/account/oauth/{slug}/start"
        | "/account/oauth/{slug}/callback"
        | "/account/wechat"
        | "/account/wechat/start"
        | "/account/wechat/poll"
        | "/wechat/callback"
        | "/account/passkeys/login/start"
        | "/account/passkeys/login/finish"
        | "/invite/{code}"
        | "/subscribe" => Public,
        // The signed-in customer's own account: anonymous → sign-in page.
        "/account"
        | "/account/sign-out"
        | "/account/profile"
        | "/account/email"
        | "/account/email/verify"
        | "/account/security"
        | "/account/password"
        | "/account/sessions/revoke-others"
        | "/account/data"
        | "/account/delete"
        | "/account/passkeys/register/start"
        | "/account/passkeys/register/finish"
        | "/account/passkeys/second-factor"
        | "/account/second-factor"
        | "/account/second-factor/start"
        | "/account/second-factor/finish"
        | "/account/notifications"
        | "/account/notifications/push"
        | "/account/notifications/push/delete" => Guarded("own account"),
        "/account/orders" => Guarded("order history"),
        "/account/sessions/{id}/revoke" => Guarded("session"),
        "/account/renewals/{id}/cancel" => Guarded("membership plan"),
        "/account/identities/{id}/unlink" => Guarded("identity"),
        "/account/passkeys/{id}/delete" => Guarded("passkey"),
        "/preferences/{token}" | "/subscribe/confirm/{token}" | "/unsubscribe/{token}/{topic}" => {
            Guarded("mail token")
        }
        // Single sign-on (OIDC): the customer's session or the client's credentials.
        "/.well-known/openid-configuration" | "/oauth/jwks.json" => Public,
        "/oauth/authorize" | "/oauth/logout" | "/oauth/token" => Public,
        "/oauth/userinfo" => Guarded("userinfo"),
        // The API.
        // The API's own fallback (a JSON 404) where it is nested.
        "/api/v1/openapi.json" | "/api/v1" => Public,
        "/api/v1/licenses/activate"
        | "/api/v1/licenses/validate"
        | "/api/v1/licenses/deactivate" => Guarded("licence key"),
        "/api/v1/shop" => return api("shop:read", "shop:write"),
        "/api/v1/staff" | "/api/v1/staff/count" => return api("staff:read", "staff:read"),
        "/api/v1/customers" | "/api/v1/customers/count" | "/api/v1/customers/{id}" => {
            return api("customers:read", "customers:write")
        }
        "/api/v1/jobs" | "/api/v1/jobs/count" | "/api/v1/jobs/{id}" | "/api/v1/jobs/{id}/retry" => {
            return api("jobs:read", "jobs:write")
        }
        "/api/v1/api_tokens" | "/api/v1/api_tokens/{id}" => {
            return api("tokens:read", "tokens:write")
        }
        "/api/v1/topics"
        | "/api/v1/topics/{id}"
        | "/api/v1/subscriptions"
        | "/api/v1/broadcasts"
        | "/api/v1/broadcasts/{id}"
        | "/api/v1/broadcasts/{id}/send"
        | "/api/v1/broadcasts/{id}/cancel" => return api("reach:read", "reach:write"),
        "/api/v1/products"
        | "/api/v1/products/count"
        | "/api/v1/products/{id}"
        | "/api/v1/products/{id}/images"
        | "/api/v1/products/{id}/images/{image_id}"
        | "/api/v1/inventory_levels/adjust"
        | "/api/v1/variants/{id}"
        | "/api/v1/collections"
        | "/api/v1/collections/{id}" => return api("products:read", "products:write"),
        "/api/v1/orders"
        | "/api/v1/orders/{id}"
        | "/api/v1/orders/{id}/refunds"
        | "/api/v1/orders/{id}/fulfillments"
        | "/api/v1/orders/{id}/transactions"
        | "/api/v1/orders/{id}/cancel" => return api("orders:read", "orders:write"),
        "/api/v1/discounts" | "/api/v1/discounts/{id}" => {
            return api("discounts:read", "discounts:write")
        }
        "/api/v1/license_keys"
        | "/api/v1/license_keys/{id}"
        | "/api/v1/license_keys/{id}/instances/{instance_id}" => {
            return api("licenses:read", "licenses:write")
        }
        "/api/v1/events" => return api("events:read", "events:read"),
        _ => return None,
    })
}

/// The real router's routes and their methods, read from the router's own table (its `Debug`
/// form lists each route id with its path and its method router).
fn router_table(app: &TestApp) -> BTreeMap<String, Vec<&'static str>> {
    let d = format!("{:?}", yiren_web::router(app.state.clone()));
    let mut paths: BTreeMap<u64, String> = BTreeMap::new();
    let mut methods: BTreeMap<u64, Vec<&'static str>> = BTreeMap::new();
    let mut rest = d.as_str();
    while let Some(i) = rest.find("RouteId(") {
        rest = &rest[i + "RouteId(".len()..];
        let Some(end) = rest.find(')') else { break };
        let Ok(id) = rest[..end].parse::<u64>() else {
            continue;
        };
        let after = &rest[end + 1..];
        if let Some(p) = after.strip_prefix(": \"") {
            paths.insert(id, p[..p.find('"').unwrap()].to_string());
        } else if let Some(m) = after.strip_prefix(": MethodRouter(MethodRouter { ") {
            let body = &m[..m.find("allow_header").unwrap_or(m.len())];
            let has = |name: &str| {
                body.contains(&format!("{name}: Route"))
                    || body.contains(&format!("{name}: BoxedHandler"))
            };
            let list: Vec<&'static str> = [
                ("get", "GET"),
                ("post", "POST"),
                ("put", "PUT"),
                ("patch", "PATCH"),
                ("delete", "DELETE"),
            ]
            .into_iter()
            .filter(|(f, _)| has(f))
            .map(|(_, m)| m)
            .collect();
            methods.insert(id, list);
        } else if after.starts_with(": Route(") {
            methods.entry(id).or_insert_with(|| vec!["GET"]);
        }
    }
    paths
        .into_iter()
        // The router's catch-all fallbacks are not routes.
        .filter(|(_, p)| !p.contains("__private__axum_fallback"))
        .map(|(id, p)| {
            let m = methods
                .get(&id)
                .cloned()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| vec!["GET"]);
            (p, m)
        })
        .collect()
}

/// A path with every `{param}` replaced by `1` (ids nobody has).
fn fill(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let j = rest[i..].find('}').unwrap();
        out.push('1');
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    out
}

async fn send(
    c: &reqwest::Client,
    app: &TestApp,
    method: &str,
    path: &str,
    bearer: Option<&str>,
) -> reqwest::Response {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = c
        .request(m, app.url(path))
        .header("origin", app.url(""))
        .header("idempotency-key", format!("idor-{}", rand::random::<u64>()));
    if let Some(t) = bearer {
        r = r.bearer_auth(t);
    }
    if method != "GET" && method != "DELETE" {
        r = r
            .header(
                "content-type",
                if path.starts_with("/api/") {
                    "application/json"
                } else {
                    "application/x-www-form-urlencoded"
                },
            )
            .body(if path.starts_with("/api/") { "{}" } else { "" });
    }
    r.send().await.unwrap()
}

/// Not the page or the action: a redirect to a sign-in page, or 401/403/404/405/422.
fn refused(r: &reqwest::Response, sign_in: &str) -> bool {
    match r.status().as_u16() {
        303 | 302 | 307 => location(r).starts_with(sign_in),
        401 | 403 | 404 | 405 | 422 => true,
        _ => false,
    }
}

both_engines! {
    async fn every_route_has_a_row_and_strangers_get_nothing(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = &app.state.ctx;
        let owner = app.setup_owner(OWNER, PW).await;
        let table = router_table(&app);
        assert!(table.len() > 150, "the router's table was not read: {}", table.len());

        // Every route has a row.
        let mut missing = vec![];
        let mut guards = BTreeSet::new();
        for (path, methods) in &table {
            for m in methods {
                match row(m, path) {
                    None => missing.push(format!("{m} {path}")),
                    Some(Guarded(name)) => {
                        guards.insert(name);
                    }
                    Some(_) => {}
                }
            }
        }
        assert!(missing.is_empty(), "routes without a row in the IDOR-1 matrix: {missing:#?}");

        // Two customers; A has a paid order of a digital product with a file.
        let a = app.customer("a@example.com").await;
        let b = app.customer("b@example.com").await;
        let a_id = yiren_store::customer::find_by_email(ctx.db.read(), "a@example.com").await.unwrap().unwrap().id;
        let b_id = yiren_store::customer::find_by_email(ctx.db.read(), "b@example.com").await.unwrap().unwrap().id;
        let v = product(ctx, "guide", Kind::Digital, &[("G", 1000, 100)]).await[0];
        let pid = yiren_store::catalog::get_variant(ctx.db.read(), v).await.unwrap().product_id;
        let csrf = app.csrf(&owner, &format!("/admin/products/{pid}")).await;
        let form = reqwest::multipart::Form::new().text("_csrf", csrf).part("file", reqwest::multipart::Part::bytes(b"%PDF-1.7\n%%EOF\n".to_vec()).file_name("guide.pdf"));
        let r = owner.post(app.url(&format!("/admin/products/{pid}/files"))).multipart(form).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let file = delivery::files(ctx, pid).await.unwrap()[0].id;
        let buy = |token: &str, email: &str, who: i64| Submit {
            token: token.into(),
            email: email.into(),
            customer_id: Some(who),
            lines: vec![cart::Line { variant_id: v, quantity: 1 }],
            gateway: "manual".into(),
            ..Default::default()
        };
        let a_order = checkout::place(ctx, &buy("idor-a", "a@example.com", a_id)).await.unwrap().id;
        let b_order = checkout::place(ctx, &buy("idor-b", "b@example.com", b_id)).await.unwrap().id;
        order::confirm_manual(ctx, a_order, OWNER).await.unwrap();
        order::confirm_manual(ctx, b_order, OWNER).await.unwrap();
        let a_grant = delivery::entitlements(ctx, a_order).await.unwrap().remove(0);
        let b_grant = delivery::entitlements(ctx, b_order).await.unwrap().remove(0);
        let a_number = order::get(ctx, a_order).await.unwrap().row.number;

        // Staff routes: anonymous and customer B are refused, route by route.
        let anon = app.client();
        for (path, methods) in &table {
            for m in methods {
                if row(m, path) != Some(Staff) {
                    continue;
                }
                let p = fill(path).replace("/admin/orders/1", &format!("/admin/orders/{a_order}"));
                for (who, c) in [("anonymous", &anon), ("customer B", &b)] {
                    let r = send(c, &app, m, &p, None).await;
                    assert!(refused(&r, "/admin/sign-in"), "{who} {m} {p}: {}", r.status());
                }
            }
        }

        // API routes: no token 401, every scope but the one 403, the one: neither.
        let mut all_but: BTreeMap<&str, String> = BTreeMap::new();
        let mut full = None;
        let mut api_fail = vec![];
        for (path, methods) in &table {
            for m in methods {
                let Some(Scope(scope)) = row(m, path) else { continue };
                if !all_but.contains_key(scope) {
                    let others: Vec<&str> = yiren_core::api_token::SCOPES.iter().copied().filter(|s| *s != scope).collect();
                    all_but.insert(scope, app.api_token(&owner, &others).await);
                }
                if full.is_none() {
                    full = Some(app.api_token(&owner, yiren_core::api_token::SCOPES).await);
                }
                let p = fill(path).replace("/api/v1/orders/1", &format!("/api/v1/orders/{a_order}"));
                let r = send(&anon, &app, m, &p, None).await;
                assert_eq!(r.status(), 401, "no token: {m} {p}");
                let r = send(&anon, &app, m, &p, Some(&all_but[scope])).await;
                if r.status() != 403 { api_fail.push(format!("without {scope}: {m} {p}: {}", r.status())); }
                let r = send(&anon, &app, m, &p, full.as_deref()).await;
                let s = r.status().as_u16();
                assert!(s != 401 && s != 403 && s < 500, "with {scope}: {m} {p}: {s}");
            }
        }

        assert!(api_fail.is_empty(), "{api_fail:#?}");

        // Guarded routes: one check each; every guard named in the matrix is checked here.
        let mut checked = BTreeSet::new();
        let get = |c: &reqwest::Client, p: String| { let c = c.clone(); let url = app.url(&p); async move { c.get(url).send().await.unwrap() } };

        // The order page: the key in the customer's link is the credential.
        let key = order::access_key(ctx, a_order);
        assert_eq!(get(&a, format!("/orders/{a_order}?key={key}")).await.status(), 200);
        assert_eq!(get(&anon, format!("/orders/{a_order}?key={key}")).await.status(), 200, "the guest's link");
        for (c, p) in [(&b, format!("/orders/{a_order}")), (&b, format!("/orders/{a_order}?key={}", order::access_key(ctx, b_order))), (&anon, format!("/orders/{a_order}?key=0"))] {
            assert_eq!(get(c, p.clone()).await.status(), 404, "{p}");
        }
        checked.insert("order page");

        // The order's status (the order page follows a payment with it): the same key.
        assert_eq!(get(&anon, format!("/orders/{a_order}/status?key={key}")).await.status(), 200);
        for (c, p) in [(&b, format!("/orders/{a_order}/status")), (&b, format!("/orders/{a_order}/status?key={}", order::access_key(ctx, b_order))), (&anon, format!("/orders/x/status?key={key}"))] {
            assert_eq!(get(c, p.clone()).await.status(), 404, "{p}");
        }
        checked.insert("order status");

        // The owner's confirm link: only with the server's signature.
        for p in [format!("/confirm-payment/{a_order}"), format!("/confirm-payment/{a_order}?sig=00")] {
            assert_eq!(get(&b, p.clone()).await.status(), 404, "{p}");
            let r = b.post(app.url(&p)).header("origin", app.url("")).send().await.unwrap();
            assert_eq!(r.status(), 404, "POST {p}");
        }
        checked.insert("confirm link");

        // Downloads: B's valid link with A's entitlement (or file of another order) is refused.
        let b_link = delivery::link(ctx, &b_grant, file);
        assert_eq!(get(&b, b_link.clone()).await.status(), 200);
        let swapped = b_link.replace(&format!("/downloads/{}/", b_grant.id), &format!("/downloads/{}/", a_grant.id));
        assert!(matches!(get(&b, swapped.clone()).await.status().as_u16(), 403 | 404), "{swapped}");
        let bare = format!("/downloads/{}/{file}", a_grant.id);
        assert!(matches!(get(&anon, bare.clone()).await.status().as_u16(), 403 | 404), "{bare}");
        checked.insert("download");

        // The setup link: spent, and a guessed one is nothing.
        assert_eq!(get(&anon, "/setup/0123456789abcdef".into()).await.status(), 404);
        checked.insert("setup token");

        // A customer's own account: anonymous is sent to sign in; nothing of A's shows to B.
        for (path, methods) in &table {
            for m in methods {
                if row(m, path) != Some(Guarded("own account")) {
                    continue;
                }
                let r = send(&anon, &app, m, path, None).await;
                assert!(refused(&r, "/account/sign-in"), "anonymous {m} {path}: {}", r.status());
            }
        }
        let page = get(&b, "/account".into()).await.text().await.unwrap();
        assert!(page.contains("b@example.com") && !page.contains("a@example.com"), "{page}");
        checked.insert("own account");

        // Order history: B sees B's order only.
        let page = get(&b, "/account/orders".into()).await.text().await.unwrap().replace("&#x2f;", "/");
        assert!(!page.contains(&format!("/orders/{a_order}")) && !page.contains(&format!("#{a_number}<")), "{page}");
        assert!(page.contains(&format!("/orders/{b_order}")), "{page}");
        assert!(refused(&get(&anon, "/account/orders".into()).await, "/account/sign-in"));
        checked.insert("order history");

        // A's session, identity, passkey through B's account: 404, and A stays signed in.
        let b_csrf = csrf_of(&get(&b, "/account/security".into()).await.text().await.unwrap());
        let a_session = yiren_store::customer::sessions(ctx.db.read(), a_id).await.unwrap()[0].id;
        let github = yiren_core::customer::ExternalIdentity { provider: "github".into(), subject: "a-1".into(), verified_email: None, display: Some("a".into()) };
        yiren_core::customer::link_identity(ctx, a_id, &github).await.unwrap();
        let a_identity = yiren_store::customer::identities(ctx.db.read(), a_id).await.unwrap()[0].id;
        for (name, p) in [
            ("session", format!("/account/sessions/{a_session}/revoke")),
            ("identity", format!("/account/identities/{a_identity}/unlink")),
            ("passkey", format!("/account/passkeys/{a_identity}/delete")),
        ] {
            let r = b.post(app.url(&p)).header("origin", app.url("")).form(&[("_csrf", b_csrf.as_str())]).send().await.unwrap();
            assert_eq!(r.status(), 404, "{p}");
            let r = anon.post(app.url(&p)).header("origin", app.url("")).form(&[("_csrf", b_csrf.as_str())]).send().await.unwrap();
            assert!(refused(&r, "/account/sign-in"), "anonymous {p}: {}", r.status());
            checked.insert(name);
        }
        // A's membership plan: B cannot stop it, nor can a stranger.
        let a_plan = yiren_testkit::membership_plan(ctx, "a-monthly", a_id, "a@example.com").await;
        let p = format!("/account/renewals/{a_plan}/cancel");
        let r = b.post(app.url(&p)).header("origin", app.url("")).form(&[("_csrf", b_csrf.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 404, "{p}");
        let r = anon.post(app.url(&p)).header("origin", app.url("")).form(&[("_csrf", b_csrf.as_str())]).send().await.unwrap();
        assert!(refused(&r, "/account/sign-in"), "anonymous {p}: {}", r.status());
        assert_eq!(yiren_store::recurring::get(ctx.db.read(), a_plan).await.unwrap().unwrap().status, "active");
        checked.insert("membership plan");
        assert_eq!(get(&a, "/account".into()).await.status(), 200, "A is still signed in");
        assert_eq!(yiren_store::customer::identities(ctx.db.read(), a_id).await.unwrap().len(), 1);

        // Mail links: a guessed token is nothing.
        for p in ["/preferences/0123456789abcdef", "/subscribe/confirm/0123456789abcdef", "/unsubscribe/0123456789abcdef/news"] {
            assert!(matches!(get(&anon, p.into()).await.status().as_u16(), 400 | 404), "{p}");
        }
        checked.insert("mail token");

        // Single sign-on: userinfo needs its access token.
        assert_eq!(get(&b, "/oauth/userinfo".into()).await.status(), 401);
        checked.insert("userinfo");

        // Licence API: the key is the credential; an unknown key is nothing.
        for p in ["/api/v1/licenses/validate", "/api/v1/licenses/deactivate", "/api/v1/licenses/activate"] {
            let r = anon.post(app.url(p)).form(&[("license_key", "NOT-A-KEY-0000-0000"), ("instance_id", "1"), ("instance_name", "x")]).send().await.unwrap();
            assert_eq!(r.status(), 404, "{p}");
        }
        checked.insert("licence key");

        // The app checkout: a request the app did not sign opens nothing and places nothing.
        let (app_id, secret) = match yiren_core::checkout_app::create(ctx, &yiren_core::checkout_app::AppInput { name: "A's app".into(), return_url: "https://a.example/back".into(), webhook_url: String::new() }).await {
            Ok((a, s)) => (a.id, s),
            Err(e) => panic!("{e}"),
        };
        let now = yiren_core::Clock::now_ms(&app.clock) / 1000;
        let unsigned = format!("/pay/{app_id}?ref=r1&amount=100&currency=CNY&title=t&ts={now}");
        assert_eq!(get(&b, unsigned.clone()).await.status(), 403);
        assert_eq!(get(&b, format!("{unsigned}&sig=00")).await.status(), 403);
        let r = b.post(app.url(&format!("/pay/{app_id}"))).header("origin", app.url("")).form(&[("p.ref", "r1"), ("p.amount", "100"), ("p.currency", "CNY"), ("p.title", "t"), ("p.ts", &now.to_string()), ("email", "b@example.com")]).send().await.unwrap();
        assert_eq!(r.status(), 403);
        assert!(yiren_store::checkout_app::by_ref(ctx.db.read(), app_id, "r1").await.unwrap().is_none());
        checked.insert("app signature");

        // The apps' API: no credentials 401; a customer's cookie or the owner's session is not
        // one; another app sees none of A's app's orders.
        let mut params = vec![("ref".to_string(), "r2".to_string()), ("amount".to_string(), "100".to_string()), ("currency".to_string(), "CNY".to_string()), ("title".to_string(), "t".to_string()), ("ts".to_string(), now.to_string())];
        let req = yiren_core::checkout_app::check_request(ctx, app_id, &{ let s = yiren_core::checkout_app::sign(&secret, &params); params.push(("sig".into(), s)); params.clone() }, yiren_core::Locale::ZhCn).await.unwrap();
        let placed = yiren_core::checkout_app::place(ctx, &req, &yiren_core::checkout_app::Payer { email: "a@example.com".into(), customer_id: Some(a_id), gateway: "manual".into(), locale: yiren_core::Locale::ZhCn }).await.unwrap().id;
        let (other, other_secret) = match yiren_core::checkout_app::create(ctx, &yiren_core::checkout_app::AppInput { name: "B's app".into(), return_url: "https://b.example/back".into(), webhook_url: String::new() }).await {
            Ok((a, s)) => (a.id, s),
            Err(e) => panic!("{e}"),
        };
        let p = format!("/api/v1/app-orders/{placed}");
        for c in [&anon, &a, &b, &owner] {
            assert_eq!(get(c, p.clone()).await.status(), 401, "{p}");
        }
        let r = anon.get(app.url(&p)).basic_auth(other, Some(&other_secret)).send().await.unwrap();
        assert_eq!(r.status(), 404);
        let r = anon.get(app.url(&p)).basic_auth(app_id, Some(&secret)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        checked.insert("app credentials");

        assert_eq!(guards, checked, "every guarded row has its check");
    }
}
