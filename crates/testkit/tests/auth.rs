//! First run, staff sign-in, sessions, throttling and CSRF (RELIABILITY AUTH-1, AUTH-2, AUTH-5,
//! SESS-1, CSRF-1), through real HTTP on loopback.

use yiren_testkit::{both_engines, csrf_of, setup_form, TestApp};

/// Form fields or headers.
type Pairs<'a> = Vec<(&'a str, &'a str)>;

const OWNER: &str = "owner@example.com";
const PW: &str = "a long owner passphrase";

fn cookie_header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

both_engines! {
    async fn the_setup_link_creates_the_owner_once_and_then_is_dead(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let url = app.setup_url.clone().expect("a fresh install prints a setup URL");
        // No default credentials: nobody can sign in before setup.
        let c = app.client();
        assert_eq!(app.sign_in(&c, "admin@example.com", "admin").await.status(), 401);
        // A second start before setup prints another link; the first stays valid until the owner exists.
        let second = yiren_core::setup::issue_token_if_needed(&app.state.ctx).await.unwrap().expect("still pending");
        let second_url = format!("{}/setup/{second}", app.base);
        assert_eq!(app.client().get(&second_url).send().await.unwrap().status(), 200);
        let owner = app.setup_owner(OWNER, PW).await;
        assert_eq!(app.client().get(&second_url).send().await.unwrap().status(), 404, "every other link dies with setup");
        assert!(yiren_core::setup::issue_token_if_needed(&app.state.ctx).await.unwrap().is_none());
        let dash = owner.get(app.url("/admin")).send().await.unwrap();
        assert_eq!(dash.status(), 200);
        let body = dash.text().await.unwrap();
        assert!(body.contains("测试小店") && body.contains("概览"), "dashboard in the chosen language");
        // The link is dead now, for GET and POST.
        let again = app.client().get(&url).send().await.unwrap();
        assert_eq!(again.status(), 404);
        let settings = yiren_core::settings::load(&app.state.ctx).await.unwrap();
        assert_eq!((settings.name.as_str(), settings.currency.as_str(), settings.time_zone.as_str()), ("测试小店", "CNY", "Asia/Shanghai"));
    }

    async fn setup_refuses_a_bad_password_and_keeps_the_link_alive(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let url = app.setup_url.clone().unwrap();
        let c = app.client();
        let csrf = csrf_of(&c.get(&url).send().await.unwrap().text().await.unwrap());
        let r = c.post(&url).header("accept-language", "en").form(&setup_form(&csrf, "S", "en", OWNER, "password123")).send().await.unwrap();
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("too common"));
        assert_eq!(app.client().get(&url).send().await.unwrap().status(), 200, "the link still works");
    }

    async fn sign_in_rotates_the_session_and_sign_out_kills_it(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        app.setup_owner(OWNER, PW).await;
        let c = app.client();
        let r = app.sign_in(&c, OWNER, PW).await;
        assert_eq!(r.status(), 303);
        let first = cookie_header(&r, "yiren_admin").expect("session cookie");
        assert!(first.contains("HttpOnly") && first.contains("SameSite=Strict") && first.contains("Path=/"), "{first}");
        let r2 = app.sign_in(&c, OWNER, PW).await;
        let second = cookie_header(&r2, "yiren_admin").unwrap();
        assert_ne!(first.split(';').next(), second.split(';').next(), "a new id on every sign-in");
        let old_cookie = first.split(';').next().unwrap().to_string();
        // Sign out, then replay the old cookie: it is dead.
        let csrf = app.csrf(&c, "/admin").await;
        assert_eq!(c.post(app.url("/admin/sign-out")).form(&[("_csrf", csrf.as_str())]).send().await.unwrap().status(), 303);
        let replay = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let second_cookie = second.split(';').next().unwrap().to_string();
        for ck in [old_cookie, second_cookie] {
            let r = replay.get(app.url("/admin")).header("cookie", ck.clone()).send().await.unwrap();
            assert_eq!(r.status(), 303, "redirected to sign-in");
            let r = replay.post(app.url("/admin/sign-out")).header("cookie", ck.clone()).form(&[("_csrf", "x")]).send().await.unwrap();
            assert!(r.status() == 401 || r.status() == 403);
        }
    }

    async fn sessions_end_after_idle_time_and_absolute_lifetime(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let c = app.setup_owner(OWNER, PW).await;
        app.clock.advance(29 * 60_000);
        assert_eq!(c.get(app.url("/admin")).send().await.unwrap().status(), 200);
        app.clock.advance(29 * 60_000);
        assert_eq!(c.get(app.url("/admin")).send().await.unwrap().status(), 200, "activity keeps it alive");
        app.clock.advance(31 * 60_000);
        assert_eq!(c.get(app.url("/admin")).send().await.unwrap().status(), 303, "idle 31 minutes");
        let c2 = app.client();
        app.sign_in(&c2, OWNER, PW).await;
        for _ in 0..25 {
            app.clock.advance(29 * 60_000);
            c2.get(app.url("/admin")).send().await.unwrap();
        }
        assert_eq!(c2.get(app.url("/admin")).send().await.unwrap().status(), 303, "absolute lifetime 12 h");
    }

    async fn a_password_change_ends_other_sessions_and_disabling_ends_all(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let a = app.setup_owner(OWNER, PW).await;
        let b = app.client();
        app.sign_in(&b, OWNER, PW).await;
        let csrf = app.csrf(&a, "/admin/account").await;
        let r = a.post(app.url("/admin/account/password")).form(&[("_csrf", csrf.as_str()), ("current_password", PW), ("new_password", "another long passphrase")]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(a.get(app.url("/admin")).send().await.unwrap().status(), 200, "this browser got a fresh session");
        assert_eq!(b.get(app.url("/admin")).send().await.unwrap().status(), 303, "the other session ended");
        assert_eq!(app.sign_in(&app.client(), OWNER, PW).await.status(), 401, "old password refused");
        // A helper account, disabled by the owner while signed in.
        let csrf = app.csrf(&a, "/admin/staff").await;
        let r = a.post(app.url("/admin/staff")).form(&[("_csrf", csrf.as_str()), ("name", "Helper"), ("email", "helper@example.com"), ("password", "helper passphrase 1")]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let h = app.client();
        assert_eq!(app.sign_in(&h, "helper@example.com", "helper passphrase 1").await.status(), 303);
        assert_eq!(h.get(app.url("/admin/settings")).send().await.unwrap().status(), 403, "staff cannot change settings");
        let id = yiren_core::auth::list_staff(&app.state.ctx, 0, 10).await.unwrap().into_iter().find(|s| s.email == "helper@example.com").unwrap().id;
        let csrf = app.csrf(&a, "/admin/staff").await;
        assert_eq!(a.post(app.url(&format!("/admin/staff/{id}/disable"))).form(&[("_csrf", csrf.as_str())]).send().await.unwrap().status(), 303);
        assert_eq!(h.get(app.url("/admin")).send().await.unwrap().status(), 303, "disabled: signed out");
        assert_eq!(app.sign_in(&app.client(), "helper@example.com", "helper passphrase 1").await.status(), 401);
    }

    async fn guessing_is_throttled_per_ip_without_locking_the_owner_out(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        app.setup_owner(OWNER, PW).await;
        let attacker = app.client_from("127.0.0.2");
        let mut statuses = Vec::new();
        for _ in 0..8 {
            statuses.push(app.sign_in(&attacker, OWNER, "wrong password!").await.status().as_u16());
        }
        assert_eq!(statuses, vec![401, 401, 401, 401, 401, 429, 429, 429]);
        let r = app.sign_in(&attacker, OWNER, PW).await;
        assert_eq!(r.status(), 429, "even the right password waits");
        assert!(r.headers().get("retry-after").is_some());
        // The real owner, from another address, signs in.
        let owner = app.client_from("127.0.0.3");
        assert_eq!(app.sign_in(&owner, OWNER, PW).await.status(), 303);
        // The block grows: after it expires, one more failure blocks for longer.
        app.clock.advance(61_000);
        assert_eq!(app.sign_in(&attacker, OWNER, "wrong again").await.status(), 401);
        app.clock.advance(61_000);
        assert_eq!(app.sign_in(&attacker, OWNER, "wrong again").await.status(), 429, "second block is 2 minutes");
        // Spraying many accounts from one IP is throttled per IP.
        let sprayer = app.client_from("127.0.0.4");
        let mut last = 0;
        for i in 0..25 {
            last = app.sign_in(&sprayer, &format!("user{i}@example.com"), "Password1!").await.status().as_u16();
        }
        assert_eq!(last, 429);
    }

    async fn unknown_account_and_wrong_password_look_the_same(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        app.setup_owner(OWNER, PW).await;
        let c = app.client_from("127.0.0.5");
        let a = app.sign_in(&c, OWNER, "wrong password!").await;
        let (sa, ba) = (a.status(), a.text().await.unwrap());
        let b = app.sign_in(&c, "nobody@example.com", "wrong password!").await;
        let (sb, bb) = (b.status(), b.text().await.unwrap());
        assert_eq!(sa, sb);
        assert_eq!(ba.replace(OWNER, "E"), bb.replace("nobody@example.com", "E"));
    }

    async fn every_form_refuses_missing_wrong_or_cross_site_tokens_and_changes_nothing(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let c = app.setup_owner(OWNER, PW).await;
        let good = app.csrf(&c, "/admin").await;
        let before = yiren_core::settings::load(&app.state.ctx).await.unwrap();
        for route in yiren_web::admin::FORM_ROUTES {
            let mut path = route.replace("{slug}", "github").replace("{code}", "ABCDEF");
            // Any other parameter is a numeric id.
            while let (Some(a), Some(b)) = (path.find('{'), path.find('}')) {
                path.replace_range(a..=b, "1");
            }
            let url = app.url(&path);
            let cases: Vec<(Pairs, Pairs)> = vec![
                (vec![("site_name", "X")], vec![]),
                (vec![("_csrf", "wrong"), ("site_name", "X")], vec![]),
                (vec![("_csrf", good.as_str()), ("site_name", "X")], vec![("origin", "https://evil.example")]),
                (vec![("_csrf", good.as_str()), ("site_name", "X")], vec![("sec-fetch-site", "cross-site")]),
            ];
            for (form, headers) in cases {
                let mut rb = c.post(&url).form(&form);
                for (k, v) in &headers { rb = rb.header(*k, *v); }
                let st = rb.send().await.unwrap().status();
                assert_eq!(st, 403, "{path} with {form:?} {headers:?}");
            }
        }
        assert_eq!(yiren_core::settings::load(&app.state.ctx).await.unwrap(), before);
        assert_eq!(c.get(app.url("/admin")).send().await.unwrap().status(), 200, "still signed in: sign-out was refused too");
    }

    async fn admin_pages_ignore_api_tokens(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let c = app.setup_owner(OWNER, PW).await;
        let token = app.api_token(&c, &["shop:read", "shop:write", "tokens:write"]).await;
        let r = app.client().get(app.url("/admin/settings")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 303, "a bearer token is not an admin session");
        // And the API ignores the admin cookie.
        let r = c.get(app.url("/api/v1/shop")).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
}

both_engines! {
    async fn over_https_the_session_cookie_is_host_prefixed_and_secure(engine: Engine) {
    let app = TestApp::spawn_with(engine, |c| {
        c.server.public_url = "https://shop.example.com".into()
    })
    .await;
    assert!(app
        .setup_url
        .as_deref()
        .unwrap()
        .starts_with("https://shop.example.com/setup/"));
    let url = app.url(&format!(
        "/setup/{}",
        app.setup_url
            .as_deref()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
    ));
    let c = app.client();
    let page = c.get(&url).send().await.unwrap();
    let csrf_cookie = cookie_header(&page, "__Host-yiren_csrf").expect("host-prefixed csrf cookie");
    assert!(csrf_cookie.contains("Secure"));
    let csrf = csrf_of(&page.text().await.unwrap());
    // reqwest will not send Secure cookies over http, so pass it by hand.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(&url)
        .header("cookie", csrf_cookie.split(';').next().unwrap())
        .form(&setup_form(&csrf, "S", "en", OWNER, PW))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let session = cookie_header(&r, "__Host-yiren_admin").expect("host-prefixed session cookie");
    assert!(
        session.contains("Secure")
            && session.contains("HttpOnly")
            && session.contains("SameSite=Strict")
            && session.contains("Path=/"),
        "{session}"
    );
}

    async fn sessions_are_stored_hashed(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let c = app.setup_owner(OWNER, PW).await;
    let r = app.sign_in(&c, OWNER, PW).await;
    let token = cookie_header(&r, "yiren_admin")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    assert!(token.len() >= 43, "256-bit token");
    let stored: Vec<String> = sqlx::query_scalar("SELECT id_hash FROM staff_sessions")
        .fetch_all(app.state.ctx.db.read())
        .await
        .unwrap();
    assert!(stored.iter().all(|h| h.len() == 64 && *h != token));
    assert!(stored.contains(&yiren_core::id::hash_token(&token)));
}
}

both_engines! {
    async fn staff_may_revoke_only_their_own_tokens(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let owner_token = app.api_token(&owner, &["jobs:read"]).await;
        let csrf = app.csrf(&owner, "/admin/staff").await;
        owner.post(app.url("/admin/staff")).form(&[("_csrf", csrf.as_str()), ("name", "H"), ("email", "h@example.com"), ("password", "helper passphrase 1")]).send().await.unwrap();
        let helper = app.client();
        app.sign_in(&helper, "h@example.com", "helper passphrase 1").await;
        let page = helper.get(app.url("/admin/tokens")).send().await.unwrap().text().await.unwrap();
        assert!(!page.contains("/revoke"), "the owner's token is not offered to staff");
        let id: i64 = sqlx::query_scalar("SELECT id FROM api_tokens").fetch_one(app.state.ctx.db.read()).await.unwrap();
        let csrf = app.csrf(&helper, "/admin/tokens").await;
        let r = helper.post(app.url(&format!("/admin/tokens/{id}/revoke"))).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 403);
        let r = reqwest::Client::new().get(app.url("/api/v1/jobs")).bearer_auth(&owner_token).send().await.unwrap();
        assert_eq!(r.status(), 200, "still valid");
        // Staff cannot mint owner-only scopes.
        let csrf = app.csrf(&helper, "/admin/tokens").await;
        let r = helper.post(app.url("/admin/tokens")).form(&[("_csrf", csrf.as_str()), ("name", "x"), ("scope", "tokens:write")]).send().await.unwrap();
        assert_eq!(r.status(), 403);
    }
}

/// Every GET route (pages, API, ops), with ids filled in.
const GET_ROUTES: &[&str] = &[
    "/",
    "/search",
    "/search?q=%E8%8C%B6&min=1&max=x&in_stock=1&page=3",
    "/products/nope",
    "/collections/nope",
    "/search?collection=nope",
    "/admin/collections",
    "/admin/collections/new",
    "/admin/collections/1",
    "/robots.txt",
    "/sitemap.xml",
    "/lang/en?next=/",
    "/healthz",
    "/readyz",
    "/assets/yiren.css",
    "/admin",
    "/admin/sign-in",
    "/admin/jobs",
    "/admin/jobs?state=dead",
    "/admin/settings",
    "/admin/staff",
    "/admin/account",
    "/admin/tokens",
    "/api/v1/openapi.json",
    "/api/v1/shop",
    "/api/v1/products",
    "/api/v1/products?status=active&kind=physical&query=x&limit=2",
    "/api/v1/products/count",
    "/api/v1/products/1",
    "/api/v1/staff",
    "/api/v1/staff/count",
    "/api/v1/jobs",
    "/api/v1/jobs/count",
    "/api/v1/jobs/1",
    "/api/v1/api_tokens",
    "/admin/products",
    "/admin/products?q=%E8%8C%B6&status=active&kind=physical&before=5",
    "/admin/products/new",
    "/admin/products/1",
    "/admin/customers",
    "/admin/customers?q=a&state=disabled",
    "/admin/customers/1",
    "/admin/sign-in-methods",
    "/admin/invites",
    "/admin/apps",
    "/admin/mail",
    "/admin/notifications",
    "/admin/mail/0000-aaaa",
    "/admin/messages",
    "/admin/messages?status=sent&channel=email&recipient=a%40b.cn",
    "/admin/messages?status=nonsense",
    "/admin/messages/1",
    "/admin/suppressions",
    "/admin/topics",
    "/admin/broadcasts",
    "/admin/broadcasts/new",
    "/admin/broadcasts/1?lang=en&channel=push",
    "/account/notifications",
    "/preferences/1.0123456789abcdef0123456789abcdef",
    "/preferences/nonsense",
    "/unsubscribe/1.0123456789abcdef0123456789abcdef/1",
    "/subscribe",
    "/subscribe/confirm/nonsense",
    "/subscribe/confirm/eyJ4IjoxfQ.0123456789abcdef0123456789abcdef",
    "/.well-known/openid-configuration",
    "/oauth/jwks.json",
    "/oauth/authorize?response_type=code&client_id=x&redirect_uri=https://a.example/cb&scope=openid",
    "/oauth/logout?post_logout_redirect_uri=https://a.example/bye",
    "/oauth/userinfo",
    "/account",
    "/account/sign-in",
    "/account/verify?email=a@example.com",
    "/account/security",
    "/account/orders",
    "/account/orders?page=2",
    "/account/data",
    "/account/delete",
    "/account/wechat",
    "/account/second-factor",
    "/assets/passkeys.js",
    "/account/oauth/github/callback",
    "/account/oauth/github/callback?state=x&code=y",
    "/invite/ABCDEF",
    "/wechat/callback?signature=x&timestamp=1&nonce=2&echostr=3",
    "/api/v1/customers",
    "/api/v1/customers/count",
    "/api/v1/customers/1",
    "/cart",
    "/checkout",
    "/orders/1?key=00",
    "/orders/abc",
    "/downloads/1/2",
    "/downloads/1/2?exp=1&sig=00",
    "/downloads/x/..%2f..%2fkeys",
    "/admin/orders",
    "/admin/orders?page=2",
    "/admin/orders/1",
    "/admin/checkout",
    "/admin/checkouts",
    "/admin/renewals",
    "/admin/payments",
    "/orders/1/status?key=00",
    "/assets/order-status.js",
    "/admin/discounts",
    "/admin/discounts/1",
    "/admin/inventory",
    "/admin/inventory?q=%E8%8C%B6&low=3&page=2",
    "/admin/products/import",
    "/admin/products/import/1",
    "/admin/products/export",
    "/media/products/1/2/medium.jpg",
    "/media/products/1/2/../../secret.key",
    "/assets/media-order.js",
    "/api/v1/products/1/images",
    "/api/v1/variants/1",
    "/api/v1/collections",
    "/api/v1/collections/1",
    "/api/v1/events",
    "/admin/checkout-apps",
    "/pay/1",
    "/pay/x?ref=a&amount=1&currency=CNY&title=t&ts=1&sig=00",
    "/api/v1/app-orders/1",
    "/api/v1/app-orders/x",
];

both_engines! {
    async fn get_and_head_never_change_state(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let setup = app.setup_url.clone().unwrap();
        let c = app.setup_owner(OWNER, PW).await;
        let token = app.api_token(&c, &["shop:read", "staff:read", "jobs:read", "tokens:read", "customers:read"]).await;
        let mut m = yiren_core::customer::settings::load(&app.state.ctx).await.unwrap();
        m.wechat.enabled = true;
        m.wechat.token = "token".into();
        m.providers.push(yiren_core::customer::settings::OAuthProvider::github("id", "secret"));
        yiren_core::customer::settings::save(&app.state.ctx, &m).await.unwrap();
        let customer = app.customer("get@example.com").await;
        let before = app.snapshot().await;
        let anon = app.client();
        for route in GET_ROUTES.iter().copied().chain([setup.trim_start_matches(&app.base)]) {
            for client in [&c, &anon, &customer] {
                for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
                    let r = client.request(method.clone(), app.url(route)).bearer_auth(&token).send().await.unwrap();
                    assert!(!r.status().is_server_error(), "{method} {route}: {}", r.status());
                }
            }
        }
        assert_eq!(app.snapshot().await, before, "a GET or HEAD changed stored state");
    }
}
