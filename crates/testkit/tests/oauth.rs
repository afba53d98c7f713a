//! "Sign in with GitHub" and a generic OpenID Connect provider, against local fakes that speak the
//! provider side of the authorization-code flow (PKCE S256 checked, codes single use), configured
//! through the admin form; on both engines.

use yiren_testkit::fake_oauth::{FakeOAuth, FakePerson};
use yiren_testkit::{both_engines, location, TestApp};

const OWNER: &str = "owner@example.com";
const PW: &str = "a long owner passphrase";

fn person(id: &str, email: Option<&str>, verified: bool) -> FakePerson {
    FakePerson {
        id: id.into(),
        login: format!("user{id}"),
        email: email.map(str::to_string),
        email_verified: verified,
    }
}

/// Configure the fake as `github` (GitHub dialect) and `acme` (OIDC discovery) through admin.
async fn configure(app: &TestApp, fake: &FakeOAuth) {
    let owner = app.setup_owner(OWNER, PW).await;
    let csrf = app.csrf(&owner, "/admin/sign-in-methods").await;
    let github = [
        ("_csrf", csrf.as_str()),
        ("kind", "github"),
        ("slug", "github"),
        ("name", "GitHub"),
        ("client_id", &fake.client_id),
        ("client_secret", &fake.client_secret),
        (
            "authorize_url",
            &format!("{}/login/oauth/authorize", fake.base),
        ),
        (
            "token_url",
            &format!("{}/login/oauth/access_token", fake.base),
        ),
        ("api_base", &fake.base),
    ];
    let r = owner
        .post(app.url("/admin/sign-in-methods/providers"))
        .form(&github)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let oidc = [
        ("_csrf", csrf.as_str()),
        ("kind", "oidc"),
        ("slug", "acme"),
        ("name", "Acme ID"),
        ("client_id", &fake.client_id),
        ("client_secret", &fake.client_secret),
        ("issuer", &fake.base),
    ];
    let r = owner
        .post(app.url("/admin/sign-in-methods/providers"))
        .form(&oidc)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let page = owner
        .get(app.url("/admin/sign-in-methods"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Acme ID") && !page.contains(&fake.client_secret),
        "secrets are write-only"
    );
    let stored = yiren_store::settings::get(app.state.ctx.db.read(), "customer_auth")
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.contains("Acme ID") && !stored.contains(&fake.client_secret),
        "client secrets are encrypted at rest"
    );
}

/// Click "continue with <slug>" in `c`, let the provider approve, and return the callback response.
async fn sign_in_with(
    app: &TestApp,
    c: &reqwest::Client,
    slug: &str,
    link: bool,
) -> (reqwest::Response, String) {
    let page = if link {
        "/account/security"
    } else {
        "/account/sign-in"
    };
    let csrf = app.csrf(c, page).await;
    let mut form = vec![("_csrf", csrf.as_str()), ("next", "/account/security")];
    if link {
        form.push(("link", "1"));
    }
    let r = c
        .post(app.url(&format!("/account/oauth/{slug}/start")))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        303,
        "start: {}",
        r.text().await.unwrap_or_default()
    );
    let to_provider = location(&r);
    let q: std::collections::HashMap<String, String> = url::Url::parse(&to_provider)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["state"].len() >= 43 && q["code_challenge"].len() == 43);
    assert!(q["redirect_uri"].ends_with(&format!("/account/oauth/{slug}/callback")));
    let r = c.get(&to_provider).send().await.unwrap();
    assert_eq!(r.status(), 303, "provider redirects back");
    let callback = location(&r);
    (c.get(&callback).send().await.unwrap(), callback)
}

async fn customer_by_email(
    app: &TestApp,
    email: &str,
) -> Option<yiren_store::customer::CustomerRow> {
    yiren_store::customer::find_by_email(app.state.ctx.db.read(), email)
        .await
        .unwrap()
}

both_engines! {
    async fn github_sign_in_creates_then_finds_the_account_and_takes_only_verified_email(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let fake = FakeOAuth::start().await;
        configure(&app, &fake).await;
        fake.set_person(person("1001", Some("octo@example.com"), true));
        let c = app.client();
        let (r, callback) = sign_in_with(&app, &c, "github", false).await;
        assert_eq!(r.status(), 303);
        assert_eq!(location(&r), "/account?notice=account.welcome");
        let page = c.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("octo@example.com"), "verified primary email taken");
        let row = customer_by_email(&app, "octo@example.com").await.unwrap();
        assert!(row.email_verified_at.is_some());
        // The state works once: replaying the callback is refused.
        assert_eq!(c.get(&callback).send().await.unwrap().status(), 400);
        // Signing in again finds the same account (by subject), and lands on `next`.
        let again = app.client();
        let (r, _) = sign_in_with(&app, &again, "github", false).await;
        assert_eq!(location(&r), "/account/security");
        let ids = yiren_core::customer::identities(&app.state.ctx, row.id).await.unwrap();
        assert_eq!((ids.len(), ids[0].provider.as_str(), ids[0].subject.as_str()), (1, "github", "1001"));
        // An unverified email is never taken: a new account without one.
        fake.set_person(person("1002", Some("unverified@example.com"), false));
        let (r, _) = sign_in_with(&app, &app.client(), "github", false).await;
        assert_eq!(r.status(), 303);
        assert!(customer_by_email(&app, "unverified@example.com").await.is_none());
        // GitHub's no-reply address is not taken either.
        assert_eq!(yiren_core::customer::count(&app.state.ctx).await.unwrap(), 2);
    }

    async fn oidc_sign_in_uses_discovery_and_never_trusts_an_unverified_email(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let fake = FakeOAuth::start().await;
        configure(&app, &fake).await;
        // Someone already holds victim@example.com (verified by email code).
        app.customer("victim@example.com").await;
        let victim = customer_by_email(&app, "victim@example.com").await.unwrap();
        // An OIDC account claiming that address without verifying it gets its own account.
        fake.set_person(person("sub-evil", Some("victim@example.com"), false));
        let (r, _) = sign_in_with(&app, &app.client(), "acme", false).await;
        assert_eq!(r.status(), 303);
        assert!(yiren_core::customer::identities(&app.state.ctx, victim.id).await.unwrap().is_empty(), "not linked to the victim");
        // A provider that vouches for the address (verified) signs in to the account holding it.
        fake.set_person(person("sub-real", Some("victim@example.com"), true));
        let c = app.client();
        let (r, _) = sign_in_with(&app, &c, "acme", false).await;
        assert_eq!(location(&r), "/account/security");
        let ids = yiren_core::customer::identities(&app.state.ctx, victim.id).await.unwrap();
        assert_eq!(ids.iter().map(|i| i.subject.as_str()).collect::<Vec<_>>(), vec!["sub-real"]);
        assert_eq!(c.get(app.url("/account")).send().await.unwrap().status(), 200);
    }

    async fn the_flow_is_bound_to_the_browser_and_refusals_are_clean(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let fake = FakeOAuth::start().await;
        configure(&app, &fake).await;
        fake.set_person(person("2001", None, false));
        // The callback opened in another browser (a CSRF login attempt) is refused.
        let victim = app.client();
        let attacker = app.client();
        let csrf = app.csrf(&attacker, "/account/sign-in").await;
        let r = attacker.post(app.url("/account/oauth/github/start")).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        let r = attacker.get(location(&r)).send().await.unwrap();
        let callback = location(&r);
        app.csrf(&victim, "/account/sign-in").await; // the victim has a binding cookie of their own
        assert_eq!(victim.get(&callback).send().await.unwrap().status(), 400);
        assert_eq!(fake.token_requests(), 0, "no code exchanged for a refused callback");
        // A made-up state.
        let r = victim.get(app.url("/account/oauth/github/callback?code=x&state=made-up")).send().await.unwrap();
        assert_eq!(r.status(), 400);
        // The person says no at the provider.
        fake.deny_next();
        let (r, _) = sign_in_with_denied(&app, &app.client()).await;
        assert_eq!(location(&r), "/account/sign-in?notice=account.oauth_denied");
        // An unknown or disabled provider is a 404.
        let c = app.client();
        let csrf = app.csrf(&c, "/account/sign-in").await;
        assert_eq!(c.post(app.url("/account/oauth/nope/start")).form(&[("_csrf", csrf.as_str())]).send().await.unwrap().status(), 404);
        assert_eq!(yiren_core::customer::count(&app.state.ctx).await.unwrap(), 0);
    }

    async fn linking_needs_a_session_and_never_moves_an_identity(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let fake = FakeOAuth::start().await;
        configure(&app, &fake).await;
        fake.set_person(person("3001", Some("gh@example.com"), true));
        let a = app.customer("a@example.com").await;
        let (r, _) = sign_in_with(&app, &a, "github", true).await;
        assert_eq!(location(&r), "/account/security?notice=account.identity_linked");
        let a_id = customer_by_email(&app, "a@example.com").await.unwrap().id;
        assert_eq!(yiren_core::customer::identities(&app.state.ctx, a_id).await.unwrap().len(), 1);
        // B tries to link the same GitHub account: refused, it stays with A.
        let b = app.customer("b@example.com").await;
        let (r, _) = sign_in_with(&app, &b, "github", true).await;
        assert_eq!(r.status(), 409);
        let b_id = customer_by_email(&app, "b@example.com").await.unwrap().id;
        assert!(yiren_core::customer::identities(&app.state.ctx, b_id).await.unwrap().is_empty());
        assert_eq!(yiren_core::customer::identities(&app.state.ctx, a_id).await.unwrap().len(), 1);
        // Linking without a session is refused before anything happens.
        let anon = app.client();
        let csrf = app.csrf(&anon, "/account/sign-in").await;
        let r = anon.post(app.url("/account/oauth/github/start")).form(&[("_csrf", csrf.as_str()), ("link", "1")]).send().await.unwrap();
        assert_eq!(r.status(), 401);
        // Signing in with the linked GitHub account opens A's account.
        let c = app.client();
        sign_in_with(&app, &c, "github", false).await;
        let page = c.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("a@example.com"));
    }
}

both_engines! {
    async fn a_plain_oauth2_provider_with_explicit_endpoints_works_too(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let fake = FakeOAuth::start().await;
        let owner = app.setup_owner(OWNER, PW).await;
        let csrf = app.csrf(&owner, "/admin/sign-in-methods").await;
        let form = [
            ("_csrf", csrf.as_str()), ("kind", "oauth2"), ("slug", "linuxdo"), ("name", "Linux.do"),
            ("client_id", &fake.client_id), ("client_secret", &fake.client_secret),
            ("authorize_url", &format!("{}/authorize", fake.base)), ("token_url", &format!("{}/token", fake.base)),
            ("userinfo_url", &format!("{}/userinfo", fake.base)), ("scopes", "user"),
        ];
        assert_eq!(owner.post(app.url("/admin/sign-in-methods/providers")).form(&form).send().await.unwrap().status(), 303);
        // Incomplete providers are refused with a message.
        let bad = [("_csrf", csrf.as_str()), ("kind", "oauth2"), ("slug", "half"), ("name", "Half"), ("client_id", "x")];
        assert_eq!(owner.post(app.url("/admin/sign-in-methods/providers")).form(&bad).send().await.unwrap().status(), 422);
        fake.set_person(person("ld-7", Some("ld@example.com"), true));
        let c = app.client();
        let (r, _) = sign_in_with(&app, &c, "linuxdo", false).await;
        assert_eq!(location(&r), "/account?notice=account.welcome");
        assert!(customer_by_email(&app, "ld@example.com").await.is_some());
        // Turning the provider off (deleting it) closes that door.
        let csrf = app.csrf(&owner, "/admin/sign-in-methods").await;
        assert_eq!(owner.post(app.url("/admin/sign-in-methods/providers/linuxdo/delete")).form(&[("_csrf", csrf.as_str())]).send().await.unwrap().status(), 303);
        let c = app.client();
        let csrf = app.csrf(&c, "/account/sign-in").await;
        assert_eq!(c.post(app.url("/account/oauth/linuxdo/start")).form(&[("_csrf", csrf.as_str())]).send().await.unwrap().status(), 404);
    }
}

async fn sign_in_with_denied(app: &TestApp, c: &reqwest::Client) -> (reqwest::Response, String) {
    let csrf = app.csrf(c, "/account/sign-in").await;
    let r = c
        .post(app.url("/account/oauth/github/start"))
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    let r = c.get(location(&r)).send().await.unwrap();
    let callback = location(&r);
    (c.get(&callback).send().await.unwrap(), callback)
}
