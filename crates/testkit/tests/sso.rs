//! Single sign-on: Yiren as an OpenID Connect provider for the owner's other apps. A sample client
//! inside the test reads the discovery document, runs the authorization-code flow with PKCE for a
//! customer, and verifies the ID token against the JWKS with a standard JWT library
//! (`jsonwebtoken`); then refresh rotation and reuse detection, consent, key rotation, logout.

use std::collections::HashMap;

use base64::Engine as _;
use sha2::Digest;
use yiren_testkit::{both_engines, location, TestApp};

const OWNER: &str = "owner@example.com";
const PW: &str = "a long owner passphrase";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const AFTER_LOGOUT: &str = "http://127.0.0.1:9/bye";

fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn hidden_fields(page: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in page.split("<input type=\"hidden\" name=\"").skip(1) {
        let name = part.split('"').next().unwrap().to_string();
        let value = part
            .split("value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let value = value
            .replace("&amp;", "&")
            .replace("&#x2f;", "/")
            .replace("&quot;", "\"")
            .replace("&#x27;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
        out.push((name, value));
    }
    out
}

/// The owner's other app: what a relying party does with any OIDC library.
struct SampleClient {
    issuer: String,
    authorize: String,
    token: String,
    userinfo: String,
    jwks: String,
    end_session: String,
    client_id: String,
    secret: String,
    http: reqwest::Client,
}

struct Started {
    url: String,
    state: String,
    nonce: String,
    verifier: String,
}

impl SampleClient {
    async fn discover(app: &TestApp, client_id: &str, secret: &str) -> SampleClient {
        let http = reqwest::Client::new();
        let d: serde_json::Value = http
            .get(app.url("/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(d["issuer"], app.base);
        assert!(d["id_token_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&"RS256".into()));
        assert!(d["code_challenge_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&"S256".into()));
        let s = |k: &str| d[k].as_str().unwrap().to_string();
        SampleClient {
            issuer: s("issuer"),
            authorize: s("authorization_endpoint"),
            token: s("token_endpoint"),
            userinfo: s("userinfo_endpoint"),
            jwks: s("jwks_uri"),
            end_session: s("end_session_endpoint"),
            client_id: client_id.into(),
            secret: secret.into(),
            http,
        }
    }

    fn start(&self, n: u32) -> Started {
        let verifier = format!("verifier-{n}-{}", "x".repeat(50));
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        let state = format!("state-{n}");
        let nonce = format!("nonce-{n}");
        let mut u = url::Url::parse(&self.authorize).unwrap();
        u.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("scope", "openid email profile")
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Started {
            url: u.to_string(),
            state,
            nonce,
            verifier,
        }
    }

    async fn token(&self, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
        let r = self
            .http
            .post(&self.token)
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["cache-control"], "no-store");
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn exchange(&self, code: &str, verifier: &str) -> (u16, serde_json::Value) {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ])
        .await
    }

    /// Verify an ID token with the provider's JWKS, as any relying party would.
    async fn verify(&self, id_token: &str) -> serde_json::Value {
        let header = jsonwebtoken::decode_header(id_token).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
        let set: jsonwebtoken::jwk::JwkSet = self
            .http
            .get(&self.jwks)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let jwk = set
            .find(header.kid.as_deref().unwrap())
            .expect("the signing key is published");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.set_audience(&[&self.client_id]);
        v.set_issuer(&[&self.issuer]);
        v.validate_exp = false; // the test app's clock is not the real one
        jsonwebtoken::decode::<serde_json::Value>(id_token, &key, &v)
            .expect("valid ID token")
            .claims
    }

    async fn userinfo(&self, access: &str) -> (u16, serde_json::Value) {
        let r = self
            .http
            .get(&self.userinfo)
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        let st = r.status().as_u16();
        (st, r.json().await.unwrap_or(serde_json::Value::Null))
    }
}

/// Register an app through the admin form; returns (client_id, secret).
async fn register_app(app: &TestApp, first_party: bool) -> (String, String) {
    let owner = app.setup_owner(OWNER, PW).await;
    let csrf = app.csrf(&owner, "/admin/apps").await;
    let mut form = vec![
        ("_csrf", csrf.as_str()),
        ("name", "Course site"),
        ("redirect_uris", REDIRECT),
        ("post_logout_redirect_uris", AFTER_LOGOUT),
    ];
    if first_party {
        form.push(("first_party", "1"));
    }
    let page = owner
        .post(app.url("/admin/apps"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let grab = |id: &str| {
        page.split(&format!("id=\"{id}\">"))
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_string()
    };
    (grab("new-client-id"), grab("new-client-secret"))
}

/// Walk the customer's browser through the authorize step; returns the redirect back to the app.
async fn authorize(app: &TestApp, browser: &reqwest::Client, url: &str, decision: &str) -> String {
    let r = browser.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "approval page");
    let page = r.text().await.unwrap();
    let mut fields = hidden_fields(&page);
    if decision != "continue" {
        fields.push(("decision".into(), decision.into()));
    }
    let r = browser
        .post(app.url("/oauth/authorize"))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    location(&r)
}

both_engines! {
    async fn a_sample_client_signs_a_customer_in_and_verifies_the_id_token(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let (client_id, secret) = register_app(&app, false).await;
        let rp = SampleClient::discover(&app, &client_id, &secret).await;
        let s = rp.start(1);
        // Not signed in: off to the sign-in page, which comes back here.
        let browser = app.client();
        let r = browser.get(&s.url).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let next = query(&app.url(&location(&r)))["next"].clone();
        assert!(next.starts_with("/oauth/authorize?"));
        let code = app.request_code(&browser, "member@example.com").await;
        assert_eq!(app.submit_code(&browser, "member@example.com", &code).await.status(), 303);
        // A third-party app: the customer approves.
        let r = browser.get(&s.url).send().await.unwrap();
        let page = r.text().await.unwrap();
        assert!(page.contains("Course site") && page.contains("authorize-approve"));
        let back = authorize(&app, &browser, &s.url, "approve").await;
        let q = query(&back);
        assert!(back.starts_with(REDIRECT));
        assert_eq!(q["state"], s.state);
        let (st, tokens) = rp.exchange(&q["code"], &s.verifier).await;
        assert_eq!(st, 200, "{tokens}");
        assert_eq!(tokens["token_type"], "Bearer");
        let claims = rp.verify(tokens["id_token"].as_str().unwrap()).await;
        let customer = yiren_store::customer::find_by_email(app.state.ctx.db.read(), "member@example.com").await.unwrap().unwrap();
        assert_eq!(claims["sub"], customer.id.to_string());
        assert_eq!(claims["nonce"], s.nonce);
        assert_eq!(claims["email"], "member@example.com");
        assert_eq!(claims["email_verified"], true);
        let (st, info) = rp.userinfo(tokens["access_token"].as_str().unwrap()).await;
        assert_eq!((st, info["email"].as_str()), (200, Some("member@example.com")));
        // The code works once; replaying it revokes what it gave.
        let (st, err) = rp.exchange(&q["code"], &s.verifier).await;
        assert_eq!((st, err["error"].as_str()), (400, Some("invalid_grant")));
        assert_eq!(rp.userinfo(tokens["access_token"].as_str().unwrap()).await.0, 401);

        // Consent is remembered: the next sign-in continues by itself.
        let s2 = rp.start(2);
        let page = browser.get(&s2.url).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("authorize-continue") && !page.contains("authorize-approve"));
        let back = authorize(&app, &browser, &s2.url, "continue").await;
        // A wrong verifier fails (and spends the code).
        let (st, _) = rp.exchange(&query(&back)["code"], "a-wrong-verifier-that-is-long-enough-to-be-valid-xxxx").await;
        assert_eq!(st, 400);
        let s3 = rp.start(3);
        let back = authorize(&app, &browser, &s3.url, "continue").await;
        let (_, tokens) = rp.exchange(&query(&back)["code"], &s3.verifier).await;
        let first_refresh = tokens["refresh_token"].as_str().unwrap().to_string();
        // Refresh rotates...
        let (st, renewed) = rp.token(&[("grant_type", "refresh_token"), ("refresh_token", &first_refresh)]).await;
        assert_eq!(st, 200);
        let second_refresh = renewed["refresh_token"].as_str().unwrap().to_string();
        assert_ne!(second_refresh, first_refresh);
        assert_eq!(rp.verify(renewed["id_token"].as_str().unwrap()).await["sub"], customer.id.to_string());
        // ...and a reused refresh token revokes the whole family.
        let (st, _) = rp.token(&[("grant_type", "refresh_token"), ("refresh_token", &first_refresh)]).await;
        assert_eq!(st, 400);
        let (st, _) = rp.token(&[("grant_type", "refresh_token"), ("refresh_token", &second_refresh)]).await;
        assert_eq!(st, 400, "the family is revoked after reuse");
        assert_eq!(rp.userinfo(renewed["access_token"].as_str().unwrap()).await.0, 401);
    }

    async fn bad_requests_are_refused_and_keys_rotate_without_breaking_tokens(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let (client_id, secret) = register_app(&app, true).await;
        let rp = SampleClient::discover(&app, &client_id, &secret).await;
        let browser = app.client();
        let code = app.request_code(&browser, "m@example.com").await;
        app.submit_code(&browser, "m@example.com", &code).await;
        // An unregistered redirect URI is an error page, never a redirect.
        let s = rp.start(1);
        let evil = s.url.replace(&url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>(), "https%3A%2F%2Fevil.example%2Fcb");
        assert_ne!(evil, s.url);
        let r = browser.get(&evil).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let unknown = s.url.replace(&client_id, "app_unknown");
        assert_eq!(browser.get(&unknown).send().await.unwrap().status(), 400);
        // No PKCE: back to the app with invalid_request.
        let no_pkce = s.url.split("&code_challenge").next().unwrap().to_string();
        let r = browser.get(&no_pkce).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(query(&location(&r))["error"], "invalid_request");
        // The owner's own app skips approval.
        let page = browser.get(&s.url).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("authorize-continue"));
        let back = authorize(&app, &browser, &s.url, "continue").await;
        let code = query(&back)["code"].clone();
        // Wrong secret: 401 invalid_client; a code for another client is refused.
        let wrong = SampleClient { secret: "nope".into(), ..SampleClient::discover(&app, &client_id, "nope").await };
        let (st, err) = wrong.exchange(&code, &s.verifier).await;
        assert_eq!((st, err["error"].as_str()), (401, Some("invalid_client")));
        let (st, tokens) = rp.exchange(&code, &s.verifier).await;
        assert_eq!(st, 200);
        let old_id_token = tokens["id_token"].as_str().unwrap().to_string();
        let old_kid = jsonwebtoken::decode_header(&old_id_token).unwrap().kid.unwrap();
        // Rotate the signing key with the real command-line tool path (the same function).
        let new_kid = yiren_core::oidc::rotate_key(&app.state.ctx).await.unwrap();
        assert_ne!(new_kid, old_kid);
        let set: serde_json::Value = reqwest::get(&rp.jwks).await.unwrap().json().await.unwrap();
        assert_eq!(set["keys"].as_array().unwrap().len(), 2, "the old key stays published");
        rp.verify(&old_id_token).await;
        let (_, renewed) = rp.token(&[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())]).await;
        let new_token = renewed["id_token"].as_str().unwrap();
        assert_eq!(jsonwebtoken::decode_header(new_token).unwrap().kid.unwrap(), new_kid);
        rp.verify(new_token).await;
        // Disabling the customer ends their tokens at every app.
        let id = yiren_store::customer::find_by_email(app.state.ctx.db.read(), "m@example.com").await.unwrap().unwrap().id;
        yiren_core::customer::set_disabled(&app.state.ctx, id, true).await.unwrap();
        assert_eq!(rp.userinfo(renewed["access_token"].as_str().unwrap()).await.0, 401);
        let (st, _) = rp.token(&[("grant_type", "refresh_token"), ("refresh_token", renewed["refresh_token"].as_str().unwrap())]).await;
        assert_eq!(st, 400);
    }

    async fn logout_ends_the_session_and_returns_to_a_registered_address(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let (client_id, secret) = register_app(&app, true).await;
        let rp = SampleClient::discover(&app, &client_id, &secret).await;
        let browser = app.client();
        let code = app.request_code(&browser, "bye@example.com").await;
        app.submit_code(&browser, "bye@example.com", &code).await;
        let s = rp.start(1);
        let back = authorize(&app, &browser, &s.url, "continue").await;
        let (_, tokens) = rp.exchange(&query(&back)["code"], &s.verifier).await;
        let mut u = url::Url::parse(&rp.end_session).unwrap();
        u.query_pairs_mut().append_pair("id_token_hint", tokens["id_token"].as_str().unwrap()).append_pair("post_logout_redirect_uri", AFTER_LOGOUT).append_pair("state", "s-out");
        // GET only asks.
        let r = browser.get(u.as_str()).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let fields = hidden_fields(&r.text().await.unwrap());
        assert_eq!(browser.get(app.url("/account")).send().await.unwrap().status(), 200, "a GET signs nobody out");
        let r = browser.post(app.url("/oauth/logout")).form(&fields).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(location(&r), format!("{AFTER_LOGOUT}?state=s-out"));
        assert_eq!(browser.get(app.url("/account")).send().await.unwrap().status(), 303, "signed out");
        // An unregistered after-logout address is not followed.
        let code = app.request_code(&browser, "bye@example.com").await;
        app.submit_code(&browser, "bye@example.com", &code).await;
        let mut u = url::Url::parse(&rp.end_session).unwrap();
        u.query_pairs_mut().append_pair("client_id", &client_id).append_pair("post_logout_redirect_uri", "https://evil.example/");
        let fields = hidden_fields(&browser.get(u.as_str()).send().await.unwrap().text().await.unwrap());
        let r = browser.post(app.url("/oauth/logout")).form(&fields).send().await.unwrap();
        assert_eq!(location(&r), "/account/sign-in?notice=account.signed_out");
    }
}
