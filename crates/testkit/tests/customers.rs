//! The user pool: email-code sign-up and sign-in, passwords, sessions, profile, data export and
//! deletion, invites, admin and API (RELIABILITY AUTH-2, AUTH-3, AUTH-5, SESS-1, CSRF-1, IDOR-1 for
//! customer routes), through real HTTP on loopback, on both engines.

use yiren_core::customer::settings as methods;
use yiren_testkit::{both_engines, location, mail_header, mail_text, TestApp};

const OWNER: &str = "owner@example.com";
const PW: &str = "a long owner passphrase";

type Pairs<'a> = Vec<(&'a str, &'a str)>;

fn cookie_value(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v[name.len() + 1..].split(';').next().unwrap().to_string())
}

async fn post(
    app: &TestApp,
    c: &reqwest::Client,
    page: &str,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = app.csrf(c, page).await;
    let mut f: Vec<(&str, &str)> = vec![("_csrf", csrf.as_str())];
    f.extend_from_slice(form);
    c.post(app.url(path)).form(&f).send().await.unwrap()
}

async fn customer_id(app: &TestApp, email: &str) -> i64 {
    yiren_store::customer::find_by_email(app.state.ctx.db.read(), email)
        .await
        .unwrap()
        .expect("customer exists")
        .id
}

async fn set_methods(app: &TestApp, f: impl FnOnce(&mut methods::SignInSettings)) {
    let mut m = methods::load(&app.state.ctx).await.unwrap();
    f(&mut m);
    methods::save(&app.state.ctx, &m).await.unwrap();
}

both_engines! {
    async fn an_email_code_signs_a_new_customer_up_and_works_once(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let c = app.client();
        let code = app.request_code(&c, "new@example.com").await;
        let r = app.submit_code(&c, "new@example.com", &code).await;
        assert_eq!(r.status(), 303);
        assert_eq!(location(&r), "/account?notice=account.welcome");
        let cookie = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).find(|v| v.starts_with("yiren_sid=")).expect("session cookie");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
        let page = c.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("new@example.com"));
        // Single use.
        let again = app.submit_code(&c, "new@example.com", &code).await;
        assert_eq!(again.status(), 422);
        // A text + HTML pair; the code is in the mail but stored nowhere in the database.
        let mail = app.mails_to("new@example.com").pop().unwrap();
        assert!(mail_text(&mail).contains(&code));
        assert!(mail.contains("text/html"));
        assert!(mail_header(&mail, "Subject").unwrap().contains(&code));
        let dump = serde_json::to_string(&app.snapshot().await).unwrap();
        assert!(!dump.contains(&code), "the code must not be stored in clear");
        let row = yiren_store::customer::find_by_email(app.state.ctx.db.read(), "new@example.com").await.unwrap().unwrap();
        assert!(row.email_verified_at.is_some());
    }

    async fn codes_burn_after_five_tries_expire_and_stay_with_the_browser_that_asked(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        // 20 wrong tries: the code is burned after 5, so even the right one fails afterwards.
        let a = app.client();
        let code = app.request_code(&a, "burn@example.com").await;
        let wrong = if code == "000000" { "111111" } else { "000000" };
        for i in 0..20 {
            let r = app.submit_code(&a, "burn@example.com", wrong).await;
            assert_eq!(r.status(), 422, "try {i}");
        }
        assert_eq!(app.submit_code(&a, "burn@example.com", &code).await.status(), 422, "burned");
        // Four wrong tries leave the fifth for the right code.
        let code = app.request_code(&a, "four@example.com").await;
        let wrong = if code == "000000" { "111111" } else { "000000" };
        for _ in 0..4 {
            assert_eq!(app.submit_code(&a, "four@example.com", wrong).await.status(), 422);
        }
        assert_eq!(app.submit_code(&a, "four@example.com", &code).await.status(), 303);
        // Expired at 10 min + 1 s.
        let b = app.client();
        let code = app.request_code(&b, "late@example.com").await;
        app.clock.advance(10 * 60_000 + 1_000);
        assert_eq!(app.submit_code(&b, "late@example.com", &code).await.status(), 422, "expired");
        // Bound to the browser that asked: another browser cannot use it; the right one can.
        let asker = app.client();
        let other = app.client();
        let code = app.request_code(&asker, "bound@example.com").await;
        assert_eq!(app.submit_code(&other, "bound@example.com", &code).await.status(), 422);
        // ...nor for another address.
        assert_eq!(app.submit_code(&asker, "other@example.com", &code).await.status(), 422);
        assert_eq!(app.submit_code(&asker, "bound@example.com", &code).await.status(), 303);
    }

    async fn code_sending_is_limited_per_address_and_per_ip(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let c = app.client();
        let send = |email: &'static str, c: reqwest::Client| {
            let app = &app;
            async move { post(app, &c, "/account/sign-in", "/account/code", &[("email", email)]).await.status() }
        };
        for _ in 0..4 {
            assert_eq!(send("limit@example.com", c.clone()).await, 303);
        }
        let r = post(&app, &c, "/account/sign-in", "/account/code", &[("email", "limit@example.com")]).await;
        assert_eq!(r.status(), 429, "5th code to one address within the hour");
        assert!(r.headers().contains_key("retry-after"));
        // Per IP: 20 an hour, whatever the addresses (4 used above).
        for i in 0..16 {
            let email: &'static str = Box::leak(format!("spray{i}@example.com").into_boxed_str());
            assert_eq!(send(email, c.clone()).await, 303, "code {i}");
        }
        assert_eq!(send("one-more@example.com", c.clone()).await, 429, "21st code from one IP");
        // Another IP is unaffected; an hour later the address may ask again.
        let elsewhere = app.client_from("127.0.0.2");
        assert_eq!(send("one-more@example.com", elsewhere).await, 303);
        app.clock.advance(3_600_000 + 1);
        assert_eq!(send("limit@example.com", c.clone()).await, 303);
    }

    async fn known_and_unknown_addresses_get_the_same_answers(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        app.customer("known@example.com").await;
        let c = app.client();
        let known = post(&app, &c, "/account/sign-in", "/account/code", &[("email", "known@example.com")]).await;
        let unknown = post(&app, &c, "/account/sign-in", "/account/code", &[("email", "nobody@example.com")]).await;
        assert_eq!(known.status(), unknown.status());
        assert_eq!(location(&known).replace("known", "X"), location(&unknown).replace("nobody", "X"));
        // Password sign-in: unknown email, no password set, wrong password — one answer.
        let mut bodies = Vec::new();
        for email in ["nobody@example.com", "known@example.com"] {
            let r = post(&app, &c, "/account/sign-in", "/account/sign-in", &[("email", email), ("password", "wrong password 123")]).await;
            assert_eq!(r.status(), 401);
            bodies.push(r.text().await.unwrap().replace(email, "E"));
        }
        assert_eq!(bodies[0], bodies[1]);
    }

    async fn passwords_rotate_and_end_sessions(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let a = app.customer("pw@example.com").await;
        let b = app.customer("pw@example.com").await;
        // Setting a first password right after signing in needs no current password...
        let r = post(&app, &a, "/account/security", "/account/password", &[("new_password", "a brand new passphrase")]).await;
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
        // ...and signs out every other session.
        let r = b.get(app.url("/account")).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert!(location(&r).starts_with("/account/sign-in"));
        assert_eq!(a.get(app.url("/account")).send().await.unwrap().status(), 200, "this one stays");
        // Changing it needs the current one.
        let r = post(&app, &a, "/account/security", "/account/password", &[("current_password", "nope"), ("new_password", "another long passphrase")]).await;
        assert_eq!(r.status(), 422);
        // Too common a password is refused (same rules as staff).
        let r = post(&app, &a, "/account/security", "/account/password", &[("current_password", "a brand new passphrase"), ("new_password", "password123")]).await;
        assert_eq!(r.status(), 422);
        // Password sign-in from another browser: a fresh session id; sign-out kills it for good.
        let c = app.client();
        let r = post(&app, &c, "/account/sign-in", "/account/sign-in", &[("email", "PW@example.com"), ("password", "a brand new passphrase"), ("next", "/account/security")]).await;
        assert_eq!(r.status(), 303);
        assert_eq!(location(&r), "/account/security");
        let token = cookie_value(&r, "yiren_sid").unwrap();
        let r = post(&app, &c, "/account", "/account/sign-out", &[]).await;
        assert_eq!(r.status(), 303);
        let replay = app.client().get(app.url("/account")).header("cookie", format!("yiren_sid={token}")).send().await.unwrap();
        assert_eq!(replay.status(), 303, "an old cookie after sign-out is dead");
        let replay = app.client().post(app.url("/account/sign-out")).header("cookie", format!("yiren_sid={token}")).form(&[("_csrf", "x")]).send().await.unwrap();
        assert_eq!(replay.status(), 403);
        // Open redirects are refused: `next` must be a local path.
        for evil in ["https://evil.example/", "//evil.example/", "/\\evil.example"] {
            let r = post(&app, &app.client(), "/account/sign-in", "/account/sign-in", &[("email", "pw@example.com"), ("password", "a brand new passphrase"), ("next", evil)]).await;
            assert_eq!(location(&r), "/account", "next={evil}");
        }
    }

    async fn setting_a_first_password_later_needs_a_fresh_sign_in(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let a = app.customer("late-pw@example.com").await;
        app.clock.advance(16 * 60_000);
        let r = post(&app, &a, "/account/security", "/account/password", &[("new_password", "a brand new passphrase")]).await;
        assert_eq!(r.status(), 422);
        // Idle sessions end after 14 days.
        app.clock.advance(14 * 24 * 3_600_000);
        assert_eq!(a.get(app.url("/account")).send().await.unwrap().status(), 303);
    }

    async fn customer_sessions_never_open_admin_and_staff_sessions_never_open_accounts(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let c = app.client();
        let code = app.request_code(&c, "cust@example.com").await;
        let r = app.submit_code(&c, "cust@example.com", &code).await;
        let token = cookie_value(&r, "yiren_sid").unwrap();
        for path in ["/admin", "/admin/customers", "/admin/settings"] {
            let r = app.client().get(app.url(path)).header("cookie", format!("yiren_admin={token}; yiren_sid={token}")).send().await.unwrap();
            assert_eq!(r.status(), 303, "{path}");
            assert!(location(&r).starts_with("/admin/sign-in"));
        }
        let r = owner.get(app.url("/account")).send().await.unwrap();
        assert_eq!(r.status(), 303, "the admin cookie is not a customer session");
        // Customer accounts are not staff accounts: the customer's email cannot sign in to admin.
        assert_eq!(app.sign_in(&app.client(), "cust@example.com", "whatever password").await.status(), 401);
    }

    async fn customers_see_and_revoke_only_their_own_sessions_and_identities(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let a1 = app.customer("a@example.com").await;
        let a2 = app.customer("a@example.com").await;
        let b = app.customer("b@example.com").await;
        let a = customer_id(&app, "a@example.com").await;
        let sessions = yiren_core::customer::sessions(&app.state.ctx, a).await.unwrap();
        assert_eq!(sessions.len(), 2);
        // An identity of A's, to try to unlink.
        let ext = yiren_core::customer::ExternalIdentity { provider: "github".into(), subject: "42".into(), verified_email: None, display: Some("a".into()) };
        yiren_core::customer::link_identity(&app.state.ctx, a, &ext).await.unwrap();
        let ident = yiren_core::customer::identities(&app.state.ctx, a).await.unwrap()[0].id;
        let key = yiren_core::customer::passkey::add(&app.state.ctx, a, "c0ffee", "A's phone", "{}").await.unwrap();
        // B: 404 for A's objects, and nothing changes. Every customer route with an object id is in
        // this matrix: a new one without a row fails here.
        let plan = yiren_testkit::membership_plan(&app.state.ctx, "a-monthly", a, "a@example.com").await;
        let objects = [("/account/sessions/{id}/", sessions[0].id), ("/account/identities/{id}/", ident), ("/account/passkeys/{id}/", key), ("/account/renewals/{id}/", plan)];
        let routes: Vec<&str> = yiren_web::account::FORM_ROUTES.iter().copied().filter(|r| r.contains("{id}")).collect();
        let mut paths = Vec::new();
        for r in &routes {
            let (_, id) = objects.iter().find(|(prefix, _)| r.starts_with(prefix)).unwrap_or_else(|| panic!("{r} has no row in the IDOR matrix"));
            paths.push(r.replace("{id}", &id.to_string()));
        }
        // The purchase's background work (its mails, the search index) is done first.
        yiren_testkit::wait_until("the purchase's jobs", || async {
            let due: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE (state = 'queued' AND run_at <= $1) OR state = 'running'")
                .bind(app.state.ctx.now()).fetch_one(app.state.ctx.db.read()).await.unwrap();
            due == 0
        }).await;
        let before = app.snapshot().await;
        for path in paths {
            let r = post(&app, &b, "/account", &path, &[]).await;
            assert_eq!(r.status(), 404, "{path}");
            // Anonymous: 401.
            let anon = app.client();
            let r = post(&app, &anon, "/account/sign-in", &path, &[]).await;
            assert_eq!(r.status(), 401, "{path}");
        }
        assert_eq!(app.snapshot().await, before);
        // The security page lists A's own sessions, and A can end the other one.
        let page = a1.get(app.url("/account/security")).send().await.unwrap().text().await.unwrap();
        assert_eq!(page.matches("/revoke\"").count(), 2);
        let other = sessions.iter().map(|s| s.id).max().unwrap();
        let r = post(&app, &a1, "/account", &format!("/account/sessions/{other}/revoke"), &[]).await;
        assert_eq!(r.status(), 303);
        assert_eq!(a2.get(app.url("/account")).send().await.unwrap().status(), 303, "revoked");
        assert_eq!(a1.get(app.url("/account")).send().await.unwrap().status(), 200);
        // Unlinking the last identity is fine while the email still signs in.
        let r = post(&app, &a1, "/account", &format!("/account/identities/{ident}/unlink"), &[]).await;
        assert_eq!(r.status(), 303);
    }

    async fn profile_export_and_deletion(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let c = app.customer("me@example.com").await;
        let r = post(&app, &c, "/account", "/account/profile", &[("name", "王小明"), ("phone", "+86 138-0000-0000"), ("locale", "en"), ("avatar_url", "")]).await;
        assert_eq!(r.status(), 303);
        let r = post(&app, &c, "/account", "/account/profile", &[("name", "X"), ("phone", "call me")]).await;
        assert_eq!(r.status(), 422);
        let page = c.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("王小明") && page.contains("My account"), "profile saved, page in the chosen language");
        let r = c.get(app.url("/account/data")).send().await.unwrap();
        assert!(r.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
        let data: serde_json::Value = r.json().await.unwrap();
        assert_eq!(data["customer"]["email"], "me@example.com");
        assert_eq!(data["customer"]["name"], "王小明");
        assert_eq!(data["customer"]["phone"], "+8613800000000");
        assert_eq!(data["sessions"].as_array().unwrap().len(), 1);
        let id = customer_id(&app, "me@example.com").await;
        // Wrong confirmation: nothing happens.
        assert_eq!(post(&app, &c, "/account/delete", "/account/delete", &[("confirm", "yes")]).await.status(), 422);
        let r = post(&app, &c, "/account/delete", "/account/delete", &[("confirm", "DELETE")]).await;
        assert_eq!(r.status(), 303);
        assert_eq!(c.get(app.url("/account")).send().await.unwrap().status(), 303, "signed out");
        let row = yiren_store::customer::get(app.state.ctx.db.read(), id).await.unwrap();
        assert!(row.email.is_none() && row.name.is_empty() && row.phone.is_none() && row.password_hash.is_none() && row.deleted_at.is_some());
        let dump = serde_json::to_string(&app.snapshot().await).unwrap();
        assert!(!dump.contains("me@example.com") && !dump.contains("王小明") && !dump.contains("13800000000"), "no PII left anywhere");
        // The address is free again: a new, different account.
        app.customer("me@example.com").await;
        assert_ne!(customer_id(&app, "me@example.com").await, id);
    }

    async fn invite_only_registration_records_the_inviter(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        app.customer("inviter@example.com").await;
        let inviter = customer_id(&app, "inviter@example.com").await;
        let r = post(&app, &owner, "/admin/sign-in-methods", "/admin/sign-in-methods", &[("email_code", "1"), ("password", "1"), ("passkey", "1"), ("invite_only", "1")]).await;
        assert_eq!(r.status(), 303);
        assert!(methods::load(&app.state.ctx).await.unwrap().invite_only);
        // No invite: refused (after the code), and no account is created.
        let c = app.client();
        let code = app.request_code(&c, "stranger@example.com").await;
        let r = app.submit_code(&c, "stranger@example.com", &code).await;
        assert_eq!(r.status(), 422);
        assert!(yiren_store::customer::find_by_email(app.state.ctx.db.read(), "stranger@example.com").await.unwrap().is_none());
        // Existing customers still sign in.
        app.customer("inviter@example.com").await;
        // The inviter's personal link.
        let invite = yiren_core::customer::personal_invite(&app.state.ctx, inviter).await.unwrap().unwrap();
        let profile = app.customer("inviter@example.com").await.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
        assert!(profile.contains(&invite), "the personal link is on the profile page");
        let friend = app.client();
        let r = friend.get(app.url(&format!("/invite/{invite}"))).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let code = app.request_code(&friend, "friend@example.com").await;
        assert_eq!(app.submit_code(&friend, "friend@example.com", &code).await.status(), 303);
        let f = yiren_core::customer::get(&app.state.ctx, customer_id(&app, "friend@example.com").await).await.unwrap();
        assert_eq!(f.invited_by, Some(inviter));
        let detail = owner.get(app.url(&format!("/admin/customers/{inviter}"))).send().await.unwrap().text().await.unwrap();
        assert!(detail.contains("friend@example.com"), "invite tree on the inviter's page");
        // An owner code with one use works once.
        let r = post(&app, &owner, "/admin/invites", "/admin/invites", &[("note", "launch"), ("max_uses", "1")]).await;
        assert_eq!(r.status(), 303);
        let owner_code = yiren_core::customer::owner_invites(&app.state.ctx).await.unwrap()[0].code.clone();
        for (i, email) in ["one@example.com", "two@example.com"].into_iter().enumerate() {
            let c = app.client();
            let code = app.request_code(&c, email).await;
            let csrf = app.csrf(&c, "/account/sign-in").await;
            let r = c.post(app.url("/account/verify")).form(&[("_csrf", csrf.as_str()), ("email", email), ("code", &code), ("invite", &owner_code)]).send().await.unwrap();
            assert_eq!(r.status(), if i == 0 { 303 } else { 422 }, "{email}");
        }
    }

    async fn admin_lists_searches_disables_and_signs_customers_out(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let c = app.customer("shopper@example.com").await;
        app.customer("other@example.com").await;
        let id = customer_id(&app, "shopper@example.com").await;
        let page = owner.get(app.url("/admin/customers?q=SHOPPER")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("shopper@example.com") && !page.contains("other@example.com"));
        let page = owner.get(app.url("/admin/customers?state=disabled")).send().await.unwrap().text().await.unwrap();
        assert!(!page.contains("shopper@example.com"));
        // Disabling ends every session at once, and the customer cannot sign back in.
        let r = post(&app, &owner, "/admin/customers", &format!("/admin/customers/{id}/disable"), &[]).await;
        assert_eq!(r.status(), 303);
        assert_eq!(c.get(app.url("/account")).send().await.unwrap().status(), 303);
        let again = app.client();
        let code = app.request_code(&again, "shopper@example.com").await;
        let r = app.submit_code(&again, "shopper@example.com", &code).await;
        assert_eq!(r.status(), 401);
        assert!(r.text().await.unwrap().contains("停用"), "the page says the account is disabled");
        let page = owner.get(app.url("/admin/customers?state=disabled")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("shopper@example.com"));
        let r = post(&app, &owner, "/admin/customers", &format!("/admin/customers/{id}/enable"), &[]).await;
        assert_eq!(r.status(), 303);
        let c = app.customer("shopper@example.com").await;
        let r = post(&app, &owner, "/admin/customers", &format!("/admin/customers/{id}/sign-out"), &[]).await;
        assert_eq!(r.status(), 303);
        assert_eq!(c.get(app.url("/account")).send().await.unwrap().status(), 303, "signed out everywhere");
        // Create from admin; a taken email is refused with a message.
        let r = post(&app, &owner, "/admin/customers", "/admin/customers", &[("email", "added@example.com"), ("name", "Added")]).await;
        assert_eq!(r.status(), 303);
        let r = post(&app, &owner, "/admin/customers", "/admin/customers", &[("email", "added@example.com"), ("name", "Again")]).await;
        assert_eq!(r.status(), 422);
        assert_eq!(owner.get(app.url("/admin/customers/999")).send().await.unwrap().status(), 404);
        // A helper sees customers but not the sign-in method settings.
        let r = post(&app, &owner, "/admin/staff", "/admin/staff", &[("name", "Helper"), ("email", "helper@example.com"), ("password", "a long helper passphrase")]).await;
        assert_eq!(r.status(), 303);
        let helper = app.client();
        app.sign_in(&helper, "helper@example.com", "a long helper passphrase").await;
        assert_eq!(helper.get(app.url("/admin/customers")).send().await.unwrap().status(), 200);
        assert_eq!(helper.get(app.url("/admin/sign-in-methods")).send().await.unwrap().status(), 403);
        assert_eq!(helper.get(app.url("/admin/invites")).send().await.unwrap().status(), 403);
    }

    async fn every_customer_form_refuses_missing_wrong_or_cross_site_tokens(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        set_methods(&app, |m| { m.wechat.enabled = true; m.wechat.token = "t".into(); m.providers.push(methods::OAuthProvider::github("id", "secret")); }).await;
        let c = app.customer("csrf@example.com").await;
        let good = app.csrf(&c, "/account").await;
        let before = app.snapshot().await;
        for route in yiren_web::account::FORM_ROUTES {
            let path = route.replace("{id}", "1").replace("{slug}", "github");
            let url = app.url(&path);
            let cases: Vec<(Pairs, Pairs)> = vec![
                (vec![("email", "x@example.com"), ("confirm", "DELETE")], vec![]),
                (vec![("_csrf", "wrong"), ("email", "x@example.com"), ("confirm", "DELETE")], vec![]),
                (vec![("_csrf", good.as_str()), ("email", "x@example.com"), ("confirm", "DELETE")], vec![("origin", "https://evil.example")]),
                (vec![("_csrf", good.as_str()), ("email", "x@example.com"), ("confirm", "DELETE")], vec![("sec-fetch-site", "cross-site")]),
            ];
            for (form, headers) in cases {
                let mut rb = c.post(&url).form(&form);
                for (k, v) in &headers { rb = rb.header(*k, *v); }
                let st = rb.send().await.unwrap().status();
                assert!(st == 403 || st == 401, "{path} with {form:?} {headers:?}: {st}");
            }
        }
        assert_eq!(app.snapshot().await, before, "no state change");
        assert_eq!(c.get(app.url("/account")).send().await.unwrap().status(), 200, "still signed in");
    }

    async fn the_customers_api_creates_lists_and_pages(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let token = app.api_token(&owner, &["customers:read", "customers:write"]).await;
        let weak = app.api_token(&owner, &["jobs:read"]).await;
        let api = app.client();
        let r = api.post(app.url("/api/v1/customers")).bearer_auth(&token).json(&serde_json::json!({"customer": {"email": "API@Example.com", "name": "Api", "locale": "en"}})).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let created: serde_json::Value = r.json().await.unwrap();
        assert_eq!(created["customer"]["email"], "api@example.com");
        assert_eq!(created["customer"]["state"], "enabled");
        assert!(created["customer"].get("password_hash").is_none());
        let id = created["customer"]["id"].as_i64().unwrap();
        let r = api.post(app.url("/api/v1/customers")).bearer_auth(&token).json(&serde_json::json!({"customer": {"email": "api@example.com"}})).send().await.unwrap();
        assert_eq!(r.status(), 409);
        let r = api.post(app.url("/api/v1/customers")).bearer_auth(&token).header("accept-language", "zh-CN").json(&serde_json::json!({"customer": {"email": "not an email"}})).send().await.unwrap();
        assert_eq!(r.status(), 422);
        let r = api.post(app.url("/api/v1/customers")).bearer_auth(&token).json(&serde_json::json!({"customer": {"email": "x@example.com", "is_admin": true}})).send().await.unwrap();
        assert_eq!(r.status(), 422, "unknown fields are refused, not ignored silently");
        for i in 0..3 {
            let r = api.post(app.url("/api/v1/customers")).bearer_auth(&token).json(&serde_json::json!({"customer": {"email": format!("p{i}@example.com")}})).send().await.unwrap();
            assert_eq!(r.status(), 201);
        }
        let r = api.get(app.url("/api/v1/customers?limit=2")).bearer_auth(&token).send().await.unwrap();
        let link = r.headers()["link"].to_str().unwrap().to_string();
        let page: serde_json::Value = r.json().await.unwrap();
        assert_eq!(page["customers"].as_array().unwrap().len(), 2);
        let next = link.split(['<', '>']).nth(1).unwrap().to_string();
        let page2: serde_json::Value = api.get(&next).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        assert_eq!(page2["customers"].as_array().unwrap().len(), 2);
        let r = api.get(app.url("/api/v1/customers?query=api")).bearer_auth(&token).send().await.unwrap();
        let found: serde_json::Value = r.json().await.unwrap();
        assert_eq!(found["customers"].as_array().unwrap().len(), 1);
        let count: serde_json::Value = api.get(app.url("/api/v1/customers/count")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        assert_eq!(count["count"], 4);
        assert_eq!(api.get(app.url(&format!("/api/v1/customers/{id}"))).bearer_auth(&token).send().await.unwrap().status(), 200);
        assert_eq!(api.get(app.url("/api/v1/customers/1")).bearer_auth(&token).send().await.unwrap().status(), 404);
        assert_eq!(api.get(app.url(&format!("/api/v1/customers/{id}"))).bearer_auth(&weak).send().await.unwrap().status(), 403);
        assert_eq!(api.get(app.url(&format!("/api/v1/customers/{id}"))).send().await.unwrap().status(), 401);
        // A customer session is not an API credential.
        let c = app.customer("shopper@example.com").await;
        assert_eq!(c.get(app.url("/api/v1/customers")).send().await.unwrap().status(), 401);
    }

    async fn customers_change_their_email_by_confirming_the_new_address(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        app.customer("taken@example.com").await;
        let c = app.customer("old@example.com").await;
        let seen = app.mails_to("new@example.com").len();
        let r = post(&app, &c, "/account", "/account/email", &[("email", "New@Example.com")]).await;
        assert_eq!(r.status(), 200);
        let code = yiren_testkit::code_in_mail(&app.wait_for_mail("new@example.com", seen).await);
        let wrong = if code == "000000" { "111111" } else { "000000" };
        assert_eq!(post(&app, &c, "/account", "/account/email/verify", &[("email", "new@example.com"), ("code", wrong)]).await.status(), 422);
        let r = post(&app, &c, "/account", "/account/email/verify", &[("email", "new@example.com"), ("code", &code)]).await;
        assert_eq!(r.status(), 303);
        let page = c.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("new@example.com"));
        // The new address signs in; the old one is free (a new account would be created).
        app.customer("new@example.com").await;
        assert_eq!(yiren_core::customer::count(&app.state.ctx).await.unwrap(), 2);
        // An address another account holds is never moved: confirmed or not, it is refused.
        let seen = app.mails_to("taken@example.com").len();
        post(&app, &c, "/account", "/account/email", &[("email", "taken@example.com")]).await;
        let code = yiren_testkit::code_in_mail(&app.wait_for_mail("taken@example.com", seen).await);
        let r = post(&app, &c, "/account", "/account/email/verify", &[("email", "taken@example.com"), ("code", &code)]).await;
        assert_eq!(r.status(), 409);
        // A code sent for sign-in cannot confirm an email change (another binding).
        let other = app.client();
        let code = app.request_code(&other, "third@example.com").await;
        let r = post(&app, &c, "/account", "/account/email/verify", &[("email", "third@example.com"), ("code", &code)]).await;
        assert_eq!(r.status(), 422);
        // Re-authentication: a session older than 15 minutes must sign in again first.
        app.clock.advance(16 * 60_000);
        let r = post(&app, &c, "/account", "/account/email", &[("email", "later@example.com")]).await;
        assert_eq!(r.status(), 422);
        assert!(app.mails_to("later@example.com").is_empty());
    }

    async fn password_guessing_is_throttled_without_locking_the_customer_out(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner_of_account = app.customer("victim@example.com").await;
        post(&app, &owner_of_account, "/account/security", "/account/password", &[("new_password", "the victim's own passphrase")]).await;
        let attacker = app.client_from("127.0.0.2");
        let mut statuses = Vec::new();
        for _ in 0..50 {
            let r = post(&app, &attacker, "/account/sign-in", "/account/sign-in", &[("email", "victim@example.com"), ("password", "guess guess guess")]).await;
            statuses.push(r.status().as_u16());
        }
        assert!(statuses[..5].iter().all(|s| *s == 401), "{statuses:?}");
        assert!(statuses[5..].iter().all(|s| *s == 429), "429 from attempt 6: {statuses:?}");
        // The real customer, elsewhere, still signs in.
        let victim = app.client_from("127.0.0.3");
        let r = post(&app, &victim, "/account/sign-in", "/account/sign-in", &[("email", "victim@example.com"), ("password", "the victim's own passphrase")]).await;
        assert_eq!(r.status(), 303);
        // Spraying many accounts from one address is throttled per IP.
        let sprayer = app.client_from("127.0.0.4");
        let mut last = 0;
        for i in 0..30 {
            let email = format!("user{i}@example.com");
            last = post(&app, &sprayer, "/account/sign-in", "/account/sign-in", &[("email", email.as_str()), ("password", "guess guess guess")]).await.status().as_u16();
        }
        assert_eq!(last, 429);
    }

    async fn sessions_have_an_absolute_lifetime_and_https_cookies_are_host_bound(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let c = app.customer("long@example.com").await;
        // Active every 13 days: the idle timeout never fires, the 90-day lifetime does.
        for _ in 0..6 {
            app.clock.advance(13 * 24 * 3_600_000);
            assert_eq!(c.get(app.url("/account")).send().await.unwrap().status(), 200);
        }
        app.clock.advance(13 * 24 * 3_600_000);
        assert_eq!(c.get(app.url("/account")).send().await.unwrap().status(), 303, "91 days after sign-in");
    }
}

both_engines! {
    async fn over_https_the_customer_cookie_is_host_prefixed_and_secure(engine: Engine) {
        let app = TestApp::spawn_with(engine, |c| c.server.public_url = "https://shop.example.com".into()).await;
        let c = app.client();
        let code = app.request_code(&c, "tls@example.com").await;
        let csrf = app.csrf(&c, "/account/verify").await;
        let r = c.post(app.url("/account/verify")).form(&[("_csrf", csrf.as_str()), ("email", "tls@example.com"), ("code", code.as_str())]).send().await.unwrap();
        let cookie = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).find(|v| v.starts_with("__Host-yiren_sid=")).expect("host-prefixed session cookie");
        assert!(cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    }

    async fn the_owner_switches_sign_in_methods_off_and_on(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let c = app.customer("on@example.com").await;
        post(&app, &c, "/account/security", "/account/password", &[("new_password", "customer passphrase 1")]).await;
        // Everything off but passkeys.
        let r = post(&app, &owner, "/admin/sign-in-methods", "/admin/sign-in-methods", &[("passkey", "1")]).await;
        assert_eq!(r.status(), 303);
        let page = app.client().get(app.url("/account/sign-in")).send().await.unwrap().text().await.unwrap();
        assert!(!page.contains("id=\"send-code\"") && !page.contains("id=\"password-sign-in\"") && page.contains("passkey-sign-in"));
        let anon = app.client();
        let r = post(&app, &anon, "/account/verify", "/account/code", &[("email", "on@example.com")]).await;
        assert_eq!(r.status(), 403);
        let r = post(&app, &anon, "/account/verify", "/account/sign-in", &[("email", "on@example.com"), ("password", "customer passphrase 1")]).await;
        assert_eq!(r.status(), 403);
        assert_eq!(app.mails_to("on@example.com").len(), 1, "no mail sent while the method is off");
        // Passkeys off too: the passkey endpoints refuse.
        post(&app, &owner, "/admin/sign-in-methods", "/admin/sign-in-methods", &[]).await;
        let r = post(&app, &anon, "/account/verify", "/account/passkeys/login/start", &[]).await;
        assert_eq!(r.status(), 403);
        // Back on.
        post(&app, &owner, "/admin/sign-in-methods", "/admin/sign-in-methods", &[("email_code", "1"), ("password", "1")]).await;
        let r = post(&app, &anon, "/account/verify", "/account/sign-in", &[("email", "on@example.com"), ("password", "customer passphrase 1")]).await;
        assert_eq!(r.status(), 303);
    }
}
